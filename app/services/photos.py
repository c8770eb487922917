"""Photos: upload policies, confirmation, server-side upload, validation, processing, attach, view.

Suppliers upload; customers and staff only read. Every object lives under its supplier's prefix
(`s/<supplier_id>/<yyyy>/<mm>/<uuid>.<ext>`) and is read through short-lived signed URLs.

Duplicates: the server upload spots a repeat (same supplier, same SHA-256) before storing and
returns the earlier photo. A direct OSS upload is only hashed by the processing job; a repeat found
there keeps its row (the phone already holds its id) with status "duplicate", its own object is
deleted, and thumb_key/display_key point at the earlier photo's copies — that shared pointer is
how the earlier photo is found again (no schema change needed).
"""
import hashlib
import io
import uuid
import warnings
from datetime import datetime, timezone

from PIL import Image, ImageOps

from app.errors import ApiError, not_found
from app.extensions import current, db, is_mysql
from app.models import Photo
from app.queueing import enqueue_after_commit
from app.storage import StorageError
from app.timeutil import iso_local, utcnow

MAX_BYTES = 10 * 1024 * 1024
MAX_PIXELS = 40_000_000
POLICY_TTL = 600
URL_TTL = 600
PURPOSES = ("progress", "node", "issue", "inspection")
CONTENT_TYPES = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}
FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
THUMB_SIDE = 320
DISPLAY_SIDE = 1600
PROCESS_JOB = "jobs.media.process_photo"
# Photos a report, node or issue may carry: anything not refused by validation.
USABLE = ("pending", "ready", "duplicate")


# --- for other services -------------------------------------------------------------------

def attach(photo_ids, supplier_id, *, task=None, report=None, node=None, issue=None):
    """Link the caller's photos to what they illustrate; call inside the caller's transaction.

    Only the supplier's own photos qualify that have arrived (server upload, or a confirmed direct
    upload), are not rejected and are not linked to anything else; linking again to the same target
    is harmless. Node photos become visible to the customer.
    """
    ids = list(dict.fromkeys(photo_ids or []))
    if not ids:
        return []
    targets = {"task": task, "report": report, "node": node, "issue": issue}
    arrived = (Photo.status != "pending") | Photo.size.is_null(False)  # size: uploaded or confirmed
    query = Photo.select().where(Photo.id.in_(ids) & (Photo.supplier == supplier_id) & Photo.status.in_(USABLE)
                                 & arrived)
    for name, target in targets.items():
        column = getattr(Photo, name)
        free = column.is_null() if target is None else (column.is_null() | (column == target))
        query = query.where(free)
    if is_mysql() and db.transaction_depth():
        query = query.for_update()  # two reports racing for one photo: the second waits and fails
    photos = list(query)
    if len(photos) != len(ids):
        raise ApiError(422, "invalid_photo", "照片不存在、已被使用或未通过检查，请重新上传", field="photo_ids")
    changes = {name: target for name, target in targets.items() if target is not None}
    if node is not None:
        changes["customer_visible"] = True
    Photo.update(**changes).where(Photo.id.in_(ids)).execute()
    by_id = {p.id: p for p in photos}
    for photo in photos:
        for name, value in changes.items():
            setattr(photo, name, value)
    return [by_id[i] for i in ids]


def view(photo, for_customer=False):
    """A photo for an API answer, with short-lived signed URLs (None until there is something to show).

    Customers only ever get the EXIF-stripped display copy and the thumbnail; staff and the
    supplier get the original.
    """
    storage = current().storage

    def signed(key):
        return storage.signed_url(key, expires_in=URL_TTL) if key else None

    if photo.status == "rejected":
        url, thumb = None, None
    elif for_customer:
        url, thumb = signed(photo.display_key), signed(photo.thumb_key)
    else:
        url, thumb = signed(_original_key(photo)), signed(photo.thumb_key)
    return {
        "id": photo.id,
        "url": url,
        "thumb_url": thumb,
        "status": photo.status,
        "purpose": photo.purpose,
        "created_at": iso_local(photo.created_at),
    }


def _original_key(photo):
    """A duplicate's own object is gone: show the earlier photo whose copies it shares."""
    if photo.status != "duplicate":
        return photo.storage_key
    original = (Photo.select(Photo.storage_key)
                .where((Photo.display_key == photo.display_key) & (Photo.status == "ready"))
                .order_by(Photo.id).first())
    return original.storage_key if original else photo.display_key


# --- uploads --------------------------------------------------------------------------------

def new_key(supplier_id, ext):
    """Where a new original goes: the server picks it, under the supplier's own prefix."""
    now = utcnow()
    return f"s/{supplier_id}/{now:%Y}/{now:%m}/{uuid.uuid4().hex}.{ext}"


def upload_policy(user, purpose, content_type, size):
    """How the phone uploads one photo: an OSS PostObject form for exactly one key, or (embedded
    default, local disk) the server upload route. The direct path creates the pending row now so
    the phone can confirm it; the server path creates its row when the bytes arrive."""
    if size > MAX_BYTES:
        raise _too_big()
    storage = current().storage
    if storage.kind != "oss":
        return {"photo_id": None, "method": "server", "url": "/mp/v1/uploads", "fields": {"purpose": purpose},
                "expires_at": None, "max_size": MAX_BYTES}
    key = new_key(user.supplier_id, CONTENT_TYPES[content_type])
    with db.atomic():
        photo = Photo.create(storage_key=key, supplier=user.supplier_id, uploader=user.id, purpose=purpose,
                             content_type=content_type)
    form = storage.post_form(key, content_type, MAX_BYTES, expires_in=POLICY_TTL)
    expires = datetime.fromtimestamp(form["expires_at"], timezone.utc).replace(tzinfo=None)
    return {"photo_id": photo.id, "method": "oss_post", "url": form["url"], "fields": form["fields"],
            "expires_at": iso_local(expires), "max_size": MAX_BYTES}


def own_photo(user, photo_id):
    photo = Photo.get_or_none((Photo.id == photo_id) & (Photo.supplier == user.supplier_id))
    if photo is None or user.role != "supplier":
        raise not_found("照片")
    return photo


def confirm(user, photo_id):
    """The phone says its direct upload is done: check the object really is there, then process it."""
    photo = own_photo(user, photo_id)
    if photo.status == "pending":
        storage = current().storage
        if not storage.exists(photo.storage_key):
            raise ApiError(409, "upload_missing", "还没有收到这张照片，请重新上传后再确认")
        size = storage.size(photo.storage_key)
        if size > MAX_BYTES:
            _reject(photo)
            raise _too_big()
        with db.atomic():
            # The size marks the upload as arrived (attach accepts it from now on).
            Photo.update(size=size).where((Photo.id == photo.id) & (Photo.status == "pending")).execute()
            enqueue_after_commit(PROCESS_JOB, photo.id, queue="media")
        photo = Photo.get_by_id(photo.id)  # the embedded default has processed it by now
    return {"photo_id": photo.id, "status": photo.status}


def upload(user, data, purpose):
    """Server-side upload: validate the bytes, store the original once, process it after commit.

    Returns (photo, duplicate): a picture this supplier already uploaded returns the earlier photo
    and stores nothing.
    """
    content_type = sniff(data)
    digest = hashlib.sha256(data).hexdigest()
    earlier = (Photo.select()
               .where((Photo.supplier == user.supplier_id) & (Photo.sha256 == digest)
                      & Photo.status.in_(("pending", "ready")))
               .order_by(Photo.id).first())
    if earlier is not None:
        return earlier, True
    storage = current().storage
    key = new_key(user.supplier_id, CONTENT_TYPES[content_type])
    storage.put(key, data, content_type)
    try:
        with db.atomic():
            photo = Photo.create(storage_key=key, supplier=user.supplier_id, uploader=user.id, purpose=purpose,
                                 content_type=content_type, size=len(data), sha256=digest)
            enqueue_after_commit(PROCESS_JOB, photo.id, queue="media")
    except Exception:
        storage.delete(key)  # no row, no object
        raise
    return Photo.get_by_id(photo.id), False


# --- validation -------------------------------------------------------------------------------

def _too_big():
    return ApiError(413, "file_too_large", f"照片不能超过 {MAX_BYTES // (1024 * 1024)} MB", field="file")


def sniff(data):
    """The real content type of an upload, read from its bytes (never the name or the declared
    type). Refuses anything but JPEG/PNG/WebP, oversized files and decompression bombs: a small
    file may declare a huge canvas, so the pixel count is checked before anything is decoded."""
    if len(data) > MAX_BYTES:
        raise _too_big()
    try:
        with warnings.catch_warnings():
            # Belt and braces: MAX_PIXELS below already refuses what Pillow would only warn about.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                if img.format not in FORMATS:
                    raise ApiError(422, "unsupported_image_type", "只支持 JPEG、PNG 或 WebP 格式的照片", field="file")
                width, height = img.size
                if width * height > MAX_PIXELS:
                    raise _bomb()
                img.verify()
                return FORMATS[img.format]
    except ApiError:
        raise
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise _bomb()
    except Exception:
        # Pillow signals a broken or foreign file with many exception types; all mean "not an image".
        raise ApiError(422, "not_an_image", "文件不是有效的图片，请重新拍照上传", field="file")


def _bomb():
    return ApiError(422, "image_too_large", f"图片像素过多（上限 {MAX_PIXELS // 1_000_000} 百万像素）", field="file")


# --- processing (jobs.media.process_photo) ----------------------------------------------------

def process(photo_id):
    """Validate, hash and render one pending photo: thumbnail and customer display copy (EXIF and
    GPS stripped, orientation applied). Idempotent: anything but a pending photo is left alone."""
    photo = Photo.get_or_none(Photo.id == photo_id)
    if photo is None or photo.status != "pending":
        return photo.status if photo else "missing"
    storage = current().storage
    try:
        data = storage.get(photo.storage_key)
    except StorageError:
        return _reject(photo)  # storage trouble other than a missing object raises: RQ records it
    try:
        content_type = sniff(data)
        rendered = _render(data)
    except Exception:
        # A direct upload can hold anything, and a file that passes the header checks may still
        # fail to decode in many ways; what is not a usable picture is not kept.
        return _reject(photo)
    digest = hashlib.sha256(data).hexdigest()
    earlier = (Photo.select()
               .where((Photo.supplier == photo.supplier_id) & (Photo.sha256 == digest)
                      & (Photo.status == "ready") & (Photo.id != photo.id))
               .order_by(Photo.id).first())
    if earlier is not None:
        storage.delete(photo.storage_key)
        return _finish(photo, "duplicate", sha256=digest, size=earlier.size, width=earlier.width,
                       height=earlier.height, content_type=earlier.content_type,
                       thumb_key=earlier.thumb_key, display_key=earlier.display_key)
    (width, height), thumb, display = rendered
    # Derived copies live under a neutral prefix: customers get links to them, and the
    # original's per-supplier prefix would reveal which supplier made the part.
    base = "d/" + photo.storage_key.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    storage.put(f"{base}.thumb.jpg", thumb, "image/jpeg")
    storage.put(f"{base}.display.jpg", display, "image/jpeg")
    return _finish(photo, "ready", sha256=digest, size=len(data), width=width, height=height,
                   content_type=content_type, thumb_key=f"{base}.thumb.jpg", display_key=f"{base}.display.jpg")


def _finish(photo, status, **fields):
    with db.atomic():
        Photo.update(status=status, **fields).where((Photo.id == photo.id) & (Photo.status == "pending")).execute()
    return status


def _reject(photo):
    current().storage.delete(photo.storage_key)
    return _finish(photo, "rejected")


def _render(data):
    """(width, height) as shown, thumbnail JPEG, display JPEG. Fresh RGB pixels saved without
    `exif=`, so no metadata (GPS included) reaches the copies."""
    with Image.open(io.BytesIO(data)) as img:
        img = ImageOps.exif_transpose(img)
        rgb = _flatten(img)
    size = rgb.size
    return size, _jpeg(rgb, THUMB_SIDE, 80), _jpeg(rgb, DISPLAY_SIDE, 85)


def _flatten(img):
    """RGB on a white background (JPEG has no transparency)."""
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, "white")
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    return img.convert("RGB")


def _jpeg(img, side, quality):
    copy = img.copy()
    copy.thumbnail((side, side))
    out = io.BytesIO()
    copy.save(out, "JPEG", quality=quality, optimize=True)
    return out.getvalue()
