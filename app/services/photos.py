"""Photos: upload policies, confirmation, server-side upload, validation, processing, attach, view.

Suppliers upload; customers and staff only read. Every object lives under its supplier's prefix
(`s/<supplier_id>/<yyyy>/<mm>/<uuid>.<ext>`) and is read through short-lived signed URLs.

Duplicates: the server upload spots a repeat (same supplier, same SHA-256) before storing and
returns the earlier photo while that is not attached to anything. The processing job hashes every
upload; a repeat of a ready photo found there keeps its row (the phone already holds its id) with
status "duplicate", its own object is deleted, and thumb_key/display_key point at the earlier
photo's copies — that shared pointer is how the earlier photo is found again (no schema change
needed).
"""
import hashlib
import io
import uuid
import warnings
from datetime import datetime, timezone

from PIL import ExifTags, Image, ImageOps

from app.errors import ApiError, not_found
from app.extensions import current, db, is_mysql
from app.models import Photo
from app.queueing import enqueue_after_commit
from app.storage import StorageError
from app.timeutil import iso_local, utcnow

MAX_BYTES = 10 * 1024 * 1024
# 48–50 MP phone photos (8160 × 6120) pass; a JPEG is decoded scaled down, so its size in memory
# does not grow with its pixel count (see _shrink).
MAX_PIXELS = 64_000_000
# PNG and WebP cannot be decoded scaled: Pillow holds the whole canvas, 1 byte a pixel for grey
# and palette PNGs, 4 for colour ones, and about 16 for WebP (libwebp's canvas, a bytes copy and
# the image). Their pixel limit keeps that under MAX_DECODE_BYTES.
MAX_DECODE_BYTES = 128_000_000
WEBP_BYTES_PER_PIXEL = 16
POLICY_TTL = 600
URL_TTL = 600
PURPOSES = ("progress", "node", "issue", "inspection")
CONTENT_TYPES = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}
# Pillow names a phone camera's multi-picture JPEG (main image plus depth map or preview) "MPO";
# its first picture is an ordinary JPEG, and that is what browsers and the copies show.
FORMATS = {"JPEG": "image/jpeg", "MPO": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
JPEG_FORMATS = ("JPEG", "MPO")
SWAPPED = (5, 6, 7, 8)  # EXIF orientations that turn the picture a quarter: width and height swap
STRIP_ROWS = 64  # rows of a PNG/WebP reduced at a time
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
    """Server-side upload: validate the bytes, store the original, process it after commit.

    Returns (photo, duplicate). A picture this supplier already uploaded and has not attached to
    anything yet returns that earlier photo and stores nothing (duplicate: true), so a retried
    upload costs no space. Once the earlier photo illustrates something it cannot be attached
    again, so the repeat becomes a photo of its own: stored and processed like any upload, and the
    processing job then finds the earlier copy, deletes the new original and points the new row at
    the earlier copies (status "duplicate"). That reuses the one dedup path direct uploads take.
    """
    content_type = sniff(data)
    digest = hashlib.sha256(data).hexdigest()
    earlier = (Photo.select()
               .where((Photo.supplier == user.supplier_id) & (Photo.sha256 == digest)
                      & Photo.status.in_(USABLE) & Photo.task.is_null() & Photo.report.is_null()
                      & Photo.node.is_null() & Photo.issue.is_null())
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
            # Belt and braces: the pixel limit below already refuses what Pillow would only warn about.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                if img.format not in FORMATS:
                    raise ApiError(422, "unsupported_image_type", "只支持 JPEG、PNG 或 WebP 格式的照片", field="file")
                width, height = img.size
                limit = _pixel_limit(img)
                if width * height > limit:
                    raise _bomb(limit)
                img.verify()
                return FORMATS[img.format]
    except ApiError:
        raise
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise _bomb()
    except Exception:
        # Pillow signals a broken or foreign file with many exception types; all mean "not an image".
        raise ApiError(422, "not_an_image", "文件不是有效的图片，请重新拍照上传", field="file")


def _pixel_limit(img):
    """How many pixels this file may have: MAX_PIXELS, and for formats decoded whole, what fits
    in MAX_DECODE_BYTES."""
    if img.format in JPEG_FORMATS:
        return MAX_PIXELS
    if img.format == "WEBP":
        per_pixel = WEBP_BYTES_PER_PIXEL
    else:
        per_pixel = 1 if img.mode in ("1", "L", "P") else 4
    return min(MAX_PIXELS, MAX_DECODE_BYTES // per_pixel)


def _bomb(limit=MAX_PIXELS):
    return ApiError(422, "image_too_large", f"图片像素过多（上限 {limit // 1_000_000} 百万像素）", field="file")


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
    """(width, height) as shown, thumbnail JPEG, display JPEG.

    Memory stays bounded whatever canvas a small file declares: the picture is shrunk to display
    size first (see _shrink) and only the small copy is flattened, turned upright and encoded.
    Fresh RGB pixels are saved without `exif=`, so no metadata (GPS included) reaches the copies.
    """
    with Image.open(io.BytesIO(data)) as img:
        width, height = img.size  # read before _shrink: a JPEG draft changes img.size
        orientation = img.getexif().get(ExifTags.Base.Orientation, 1)
        display = _orient(_shrink(img, DISPLAY_SIDE), orientation)
    if orientation in SWAPPED:
        width, height = height, width
    thumb = display.copy()
    thumb.thumbnail((THUMB_SIDE, THUMB_SIDE))
    return (width, height), _jpeg(thumb, 80), _jpeg(display, 85)


def _shrink(img, side):
    """The picture as RGB on white, at most `side` pixels on its longer side.

    A JPEG is decoded straight at 1/2, 1/4 or 1/8 scale (libjpeg's DCT scaling, via draft), so a
    50 MP photo never exists at full size in memory. PNG and WebP cannot be decoded scaled: they
    are decoded once, then box-reduced a strip at a time, each strip flattened first, so no second
    full-size copy is made (Pillow's own resize and exif_transpose copy the whole canvas, and a
    palette or RGBA canvas is converted whole first). Flattening before averaging is exact: the
    mean of colours composited on white is the composite of the mean.
    """
    if img.format in JPEG_FORMATS:
        img.draft("RGB", _within(img.size, side))
    img.load()
    width, height = img.size
    factor = max(1, max(width, height) // side)  # leaves between side and 2 × side for thumbnail()
    small = Image.new("RGB", (-(-width // factor), -(-height // factor)), "white")
    rows = factor * max(1, STRIP_ROWS // factor)  # whole reduction blocks per strip
    for top in range(0, height, rows):
        strip = _flatten(img.crop((0, top, width, min(top + rows, height))))
        small.paste(strip.reduce(factor), (0, top // factor))
    small.thumbnail((side, side))
    return small


def _within(size, side):
    """`size` scaled to fit a side × side box, aspect kept (what thumbnail() will produce)."""
    scale = min(1, side / max(size))
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def _orient(img, orientation):
    """Turn the shrunk picture upright. ImageOps.exif_transpose reads the tag from the image it
    is given, and the shrunk copy has no EXIF of its own, so the original's tag is handed over."""
    img.getexif()[ExifTags.Base.Orientation] = orientation
    return ImageOps.exif_transpose(img)


def _flatten(img):
    """RGB on a white background (JPEG has no transparency)."""
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, "white")
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    return img.convert("RGB")


def _jpeg(img, quality):
    out = io.BytesIO()
    img.save(out, "JPEG", quality=quality, optimize=True)
    return out.getvalue()
