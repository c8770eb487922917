"""GET /files/<key>: the embedded default's signed photo URLs (OSS serves its own)."""
import mimetypes

from apiflask import APIBlueprint
from flask import Response, request

from app.domain.errors import not_found
from app.extensions import current
from app.storage import LocalStorage, StorageError

bp = APIBlueprint("files", __name__, tag="文件")


@bp.get("/files/<path:key>")
@bp.doc(responses={200: {"description": "the image bytes", "content": {"image/jpeg": {}, "image/png": {}, "image/webp": {}}},
                   404: "unknown, expired or tampered link"})
def get_file(key):
    """A stored photo, for a link signed by the server (expires, sig)."""
    storage = current().storage
    if not isinstance(storage, LocalStorage) or not storage.verify(key, request.args.get("expires"), request.args.get("sig")):
        raise not_found("文件")
    try:
        data = storage.get(key)
    except StorageError:
        raise not_found("文件")
    content_type = mimetypes.guess_type(key)[0] or "application/octet-stream"
    # nosniff: a browser shows the bytes as the declared image type, never as HTML or script.
    return Response(data, content_type=content_type,
                    headers={"Cache-Control": "private, max-age=300", "X-Content-Type-Options": "nosniff"})
