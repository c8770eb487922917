"""Photos: upload policies, confirmation, server-side upload, processing, attaching to what they show.

Suppliers upload; customers and staff only read. Every object lives under its supplier's prefix
(`s/<supplier_id>/<yyyy>/<mm>/<uuid>.<ext>`) and is read through short-lived signed URLs (built
by the web edge's presenters). What a file is and how it is rendered: images.py.

Duplicates: the server upload spots a repeat (same supplier, same SHA-256) before storing and
returns the earlier photo while that is not attached to anything. The processing job hashes every
upload; a repeat of a ready photo found there keeps its row (the phone already holds its id) with
status "duplicate", its own object is deleted, and thumb_key/display_key point at the earlier
photo's copies — that shared pointer is how the earlier photo is found again (no schema change
needed).
"""
import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from app.domain.errors import Conflict, Invalid, not_found
from app.extensions import current, db, is_mysql
from app.models import Photo
from app.queueing import enqueue_after_commit, enqueue_now
from app.services.images import MAX_BYTES, render, sniff, too_big
from app.storage import StorageError
from app.timeutil import utcnow

POLICY_TTL = 600
PURPOSES = ("progress", "node", "issue", "inspection", "nonconformance")
CONTENT_TYPES = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}
# Photos a report, node or issue may carry: anything not refused by validation.
USABLE = ("pending", "ready", "duplicate")
# sweep_pending: an arrived photo waits this long for its job before it is queued again …
PROCESSING_GRACE = timedelta(minutes=10)
# … and a direct-upload policy nobody confirmed is given up this long after it was issued.
STALE_AFTER = timedelta(days=1)
SWEEP_BATCH = 1000  # photos one sweep looks at; the next sweep takes the rest


# --- for other services -------------------------------------------------------------------

# Photos a customer may see: those a node or passed inspection shows, once processed into an
# EXIF-free display copy; and the columns CustomerPhotoOut reads of them (a column not selected
# would read as None).
CUSTOMER_VISIBLE = (Photo.customer_visible & Photo.status.in_(("ready", "duplicate")) & Photo.display_key.is_null(False))
CUSTOMER_COLUMNS = (Photo.id, Photo.status, Photo.purpose, Photo.created_at, Photo.thumb_key, Photo.display_key)

# What a photo may be linked to (a Photo column each); a photo illustrates one thing.
TARGETS = ("task", "report", "node", "issue", "inspection", "inspection_result", "nonconformance")


def attach(photo_ids, supplier_id, *, task=None, report=None, node=None, issue=None, inspection=None,
           inspection_result=None, nonconformance=None, by_staff=False):
    """Link the caller's photos to what they illustrate; call inside the caller's transaction.

    Only the supplier's own photos qualify that have arrived (server upload, or a confirmed direct
    upload), are not rejected and are not linked to anything else; linking again to the same target
    is harmless. Node photos become visible to the customer. `by_staff` False (the default): only the
    supplier's own uploads — never a photo QC stored under the supplier; True: only photos staff
    uploaded (QC's, under the task's supplier); None: either (staff acting for the supplier).
    """
    ids = list(dict.fromkeys(photo_ids or []))
    if not ids:
        return []
    targets = {"task": task, "report": report, "node": node, "issue": issue, "inspection": inspection,
               "inspection_result": inspection_result, "nonconformance": nonconformance}
    arrived = (Photo.status != "pending") | Photo.size.is_null(False)  # size: uploaded or confirmed
    query = Photo.select().where(Photo.id.in_(ids) & (Photo.supplier == supplier_id) & Photo.status.in_(USABLE)
                                 & arrived)
    if by_staff is not None:
        query = query.where(Photo.uploaded_by_staff.is_null(not by_staff))
    for name, target in targets.items():
        column = getattr(Photo, name)
        free = column.is_null() if target is None else (column.is_null() | (column == target))
        query = query.where(free)
    if is_mysql() and db.transaction_depth():
        query = query.for_update()  # two reports racing for one photo: the second waits and fails
    photos = list(query)
    if len(photos) != len(ids):
        raise Invalid("invalid_photo", "照片不存在、已被使用或未通过检查，请重新上传", field="photo_ids")
    changes = {name: target for name, target in targets.items() if target is not None}
    if node is not None:
        changes["customer_visible"] = True
    Photo.update(**changes).where(Photo.id.in_(ids)).execute()
    by_id = {p.id: p for p in photos}
    for photo in photos:
        for name, value in changes.items():
            setattr(photo, name, value)
    return [by_id[i] for i in ids]


def load_photos(rows, column, condition=None):
    """Set `row.photos` to the list of each row's photos (oldest first), in one query.
    `column` is the Photo column that points at the rows (Photo.report, Photo.node …)."""
    by_row = {row.id: [] for row in rows}
    if by_row:
        where = column.in_(list(by_row))
        if condition is not None:
            where &= condition
        for photo in Photo.select().where(where).order_by(Photo.id):
            by_row[photo.__data__[column.name]].append(photo)
    for row in rows:
        row.photos = by_row[row.id]
    return rows


def original_key(photo):
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


@dataclass
class UploadPolicy:
    """How the phone uploads one photo. `method` "oss_post": post `fields` and the file to `url`,
    then confirm `photo_id`; "server": upload through our own route (its URL is the web edge's)."""

    method: str
    fields: dict = field(default_factory=dict)
    url: str = None
    photo_id: int = None
    expires_at: datetime = None  # naive UTC
    max_size: int = MAX_BYTES


def upload_policy(user, purpose, content_type, size):
    """An OSS PostObject form for exactly one key, or (embedded default, local disk) the server
    upload. The direct path creates the pending row now so the phone can confirm it; the server
    path creates its row when the bytes arrive."""
    if size > MAX_BYTES:
        raise too_big()
    storage = current().storage
    if storage.kind != "oss":
        return UploadPolicy(method="server", fields={"purpose": purpose})
    key = new_key(user.supplier_id, CONTENT_TYPES[content_type])
    with db.atomic():
        photo = Photo.create(storage_key=key, supplier=user.supplier_id, uploader=user.id, purpose=purpose,
                             content_type=content_type)
    form = storage.post_form(key, content_type, MAX_BYTES, expires_in=POLICY_TTL)
    expires = datetime.fromtimestamp(form["expires_at"], UTC).replace(tzinfo=None)
    return UploadPolicy(method="oss_post", url=form["url"], fields=form["fields"], photo_id=photo.id,
                        expires_at=expires)


def own_photo(user, photo_id):
    photo = Photo.get_or_none((Photo.id == photo_id) & (Photo.supplier == user.supplier_id))
    if photo is None or user.role != "supplier":
        raise not_found("照片")
    return photo


def mark_duplicate(photo, reused=False):
    """Set `photo.duplicate`, the one rule both upload paths answer with: the picture had already
    been uploaded by this supplier — the answer is that earlier photo (`reused`), or this photo
    was found to share an earlier one's copies (status "duplicate"). → the photo."""
    photo.duplicate = reused or photo.status == "duplicate"
    return photo


def confirm(user, photo_id):
    """The phone says its direct upload is done: check the object really is there, then process it.
    → the photo, `duplicate` set."""
    photo = own_photo(user, photo_id)
    if photo.status == "pending":
        size = current().storage.size(photo.storage_key)  # one HEAD: there, and how big
        if size is None:
            raise Conflict("upload_missing", "还没有收到这张照片，请重新上传后再确认")
        if size > MAX_BYTES:
            _reject(photo)
            raise too_big()
        if photo.size is not None and size != photo.size:
            _reject(photo)  # confirmed once with other bytes: someone replaced the object since
            raise Conflict("upload_changed", "照片在确认后被替换，已作废，请重新上传")
        with db.atomic():
            # The size marks the upload as arrived (attach accepts it from now on).
            Photo.update(size=size).where((Photo.id == photo.id) & (Photo.status == "pending")).execute()
            enqueue_after_commit("process-photo", photo.id, job_id=process_job_id(photo.id))
        photo = Photo.get_by_id(photo.id)  # the embedded default has processed it by now
    return mark_duplicate(photo)


def _unattached():
    condition = None
    for name in TARGETS:
        free = getattr(Photo, name).is_null()
        condition = free if condition is None else condition & free
    return condition


def staff_upload(staff, supplier_id, data, purpose="inspection"):
    """A QC inspector's photo (the dashboard's upload), stored and processed like a supplier's,
    under the supplier whose goods it shows. → (photo, created) as upload."""
    return _store(supplier_id, {"uploaded_by_staff": staff.id}, Photo.uploaded_by_staff.is_null(False), data, purpose)


def upload(user, data, purpose):
    """Server-side upload: validate the bytes, store the original, process it after commit.

    Returns (photo, created), `photo.duplicate` set (mark_duplicate). A picture this supplier
    already uploaded and has not attached to anything yet returns that earlier photo and stores
    nothing (created False, duplicate True), so a retried
    upload costs no space. Once the earlier photo illustrates something it cannot be attached
    again, so the repeat becomes a photo of its own: stored and processed like any upload, and the
    processing job then finds the earlier copy, deletes the new original and points the new row at
    the earlier copies (status "duplicate"). That reuses the one dedup path direct uploads take.
    """
    return _store(user.supplier_id, {"uploader": user.id}, Photo.uploaded_by_staff.is_null(), data, purpose)


def _store(supplier_id, owner, same_owner, data, purpose):
    content_type = sniff(data)
    digest = hashlib.sha256(data).hexdigest()
    earlier = (Photo.select()
               .where((Photo.supplier == supplier_id) & (Photo.sha256 == digest) & same_owner
                      & Photo.status.in_(USABLE) & _unattached())
               .order_by(Photo.id).first())
    if earlier is not None:
        return mark_duplicate(earlier, reused=True), False
    storage = current().storage
    key = new_key(supplier_id, CONTENT_TYPES[content_type])
    storage.put(key, data, content_type)
    try:
        with db.atomic():
            photo = Photo.create(storage_key=key, supplier=supplier_id, purpose=purpose,
                                 content_type=content_type, size=len(data), sha256=digest, **owner)
            enqueue_after_commit("process-photo", photo.id, job_id=process_job_id(photo.id))
    except Exception:
        storage.delete(key)  # no row, no object
        raise
    # The embedded default has processed it by now, and may have found it a duplicate.
    return mark_duplicate(Photo.get_by_id(photo.id)), True


# --- processing (the "process-photo" job) ----------------------------------------------------

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
    digest = hashlib.sha256(data).hexdigest()
    if (photo.size is not None and len(data) != photo.size) or (photo.sha256 and digest != photo.sha256):
        # Not the bytes that were confirmed or uploaded: the object was replaced behind our back.
        return _reject(photo)
    try:
        content_type = sniff(data)
        rendered = render(data)
    except Exception:
        # A direct upload can hold anything, and a file that passes the header checks may still
        # fail to decode in many ways; what is not a usable picture is not kept.
        return _reject(photo)
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


def process_job_id(photo_id):
    """One processing job per photo at a time, however often it is asked for."""
    return f"process-photo-{photo_id}"


def sweep_pending(now=None):
    """Periodic: what a lost job or an unused policy left pending. An arrived photo (server upload
    or confirmed) still unprocessed after PROCESSING_GRACE is queued again (once: the job id is
    the photo's); a direct-upload policy nobody confirmed within STALE_AFTER is given up and any
    object behind it deleted. An arrived photo is never given up: it may already illustrate a
    report. → counts."""
    now = now or utcnow()
    pending = Photo.select().where(Photo.status == "pending")
    arrived = pending.where(Photo.size.is_null(False) & (Photo.created_at < now - PROCESSING_GRACE))
    requeued = 0
    for photo in arrived.order_by(Photo.id).limit(SWEEP_BATCH):
        enqueue_now("process-photo", photo.id, job_id=process_job_id(photo.id))
        requeued += 1
    unused = pending.where(Photo.size.is_null() & (Photo.created_at < now - STALE_AFTER))
    rejected = sum(_reject(photo) == "rejected" for photo in unused.order_by(Photo.id).limit(SWEEP_BATCH))
    return {"requeued": requeued, "rejected": rejected}


def _finish(photo, status, **fields):
    with db.atomic():
        Photo.update(status=status, **fields).where((Photo.id == photo.id) & (Photo.status == "pending")).execute()
    return status


def _reject(photo):
    """Reject a pending photo and delete its object — only if it was still pending, so a photo
    a concurrent job has just finished keeps its object."""
    with db.atomic():
        claimed = Photo.update(status="rejected").where((Photo.id == photo.id) & (Photo.status == "pending")).execute()
    if not claimed:
        return Photo.get_by_id(photo.id).status
    current().storage.delete(photo.storage_key)
    return "rejected"
