"""Photos: direct upload to OSS (through the fake) with confirmation, server-side upload, content
sniffing, size and decompression-bomb limits, duplicates, processing, attach and signed views."""
import base64
import hashlib
import io
import json
import os
import struct
import time
import zlib
from datetime import UTC, datetime, timedelta

import pytest
import requests
from PIL import ExifTags, Image

from app.domain.errors import DomainError
from app.models import NodeInstance, Photo, ProgressReport
from app.services import images, photos
from app.timeutil import china_date
from jobs.media import process_photo
from miniprogram_api.schemas import CustomerPhotoOut, PhotoOut
from tests import factories
from tests.helpers import oss_settings, picture

MB = 1024 * 1024


def view(photo, for_customer=False):
    """A photo as the API shows it to its supplier, or to a customer."""
    return (CustomerPhotoOut if for_customer else PhotoOut)().dump(photo)


# --- pictures, made in memory ------------------------------------------------------------------

def jpeg(size=(400, 300), gps=False, orientation=None):
    """A noisy JPEG (every call a different picture), optionally with a GPS block and a rotation tag."""
    img = Image.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3))
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "TestCam"
    if orientation:
        exif[ExifTags.Base.Orientation] = orientation
    if gps:
        block = exif.get_ifd(ExifTags.IFD.GPSInfo)
        block.update({ExifTags.GPS.GPSLatitudeRef: "N", ExifTags.GPS.GPSLatitude: (31.0, 14.0, 30.0),
                      ExifTags.GPS.GPSLongitudeRef: "E", ExifTags.GPS.GPSLongitude: (121.0, 28.0, 0.0)})
    out = io.BytesIO()
    img.save(out, "JPEG", exif=exif, quality=80)
    return out.getvalue()


def png_chunk(kind, body):
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_bomb(width, height, rgba=False):
    """A valid PNG declaring a huge canvas (1-bit grey, or 8-bit RGBA); its few rows of zeros
    compress to well under a KB (the rows that would follow never matter: it is refused first)."""
    depth, colour_type, channels = (8, 6, 4) if rgba else (1, 0, 1)
    rows = zlib.compress(b"\x00" * ((width * channels * depth + 7) // 8 + 1) * 16, 9)
    header = struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", rows)
            + png_chunk(b"IEND", b""))


def transparent_png(width, height):
    """A complete 1-bit palette PNG of a few KB however large its canvas: the top half
    transparent, the bottom half opaque red."""
    row_bytes = (width + 7) // 8
    deflate = zlib.compressobj(9)
    body = b"".join(deflate.compress(b"\x00" + fill * row_bytes)
                    for fill in [b"\x00"] * (height // 2) + [b"\xff"] * (height - height // 2))
    header = struct.pack(">IIBBBBB", width, height, 1, 3, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header)
            + png_chunk(b"PLTE", b"\x00\x00\x00\xff\x00\x00") + png_chunk(b"tRNS", b"\x00")
            + png_chunk(b"IDAT", body + deflate.flush()) + png_chunk(b"IEND", b""))


def mpo(size=(400, 300)):
    """A multi-picture JPEG as phone cameras write it: the photo, then a second picture."""
    frames = [Image.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3)), Image.new("RGB", size, "gray")]
    out = io.BytesIO()
    frames[0].save(out, "MPO", save_all=True, append_images=frames[1:], quality=80)
    return out.getvalue()


def webp(size):
    out = io.BytesIO()
    Image.new("RGB", size, "orange").save(out, "WEBP", lossless=True, method=0)
    return out.getvalue()


def has_gps(data):
    exif = Image.open(io.BytesIO(data)).getexif()
    return ExifTags.IFD.GPSInfo in exif or bool(exif.get_ifd(ExifTags.IFD.GPSInfo))


# --- helpers -------------------------------------------------------------------------------------

@pytest.fixture
def oss_app(make_app, oss_fake):
    oss_fake.reset()
    return make_app(**oss_settings(oss_fake))


@pytest.fixture
def process_jobs(backend, request):
    """Let queued media jobs run: a real RQ worker on mysql (given the app's storage settings);
    the embedded default already ran them in process right after commit."""

    def run(**env):
        if backend["name"] == "mysql":
            request.getfixturevalue("run_worker")({"PHOTO_DIR": backend["config"]["PHOTO_DIR"], **env})

    return run


def supplier_user():
    sup = factories.supplier()
    return sup, factories.wechat_user(sup)


def policy(client, user, data, content_type="image/jpeg", purpose="progress"):
    return client.post("/mp/v1/uploads/policy", headers=factories.bearer(user),
                       json={"purpose": purpose, "content_type": content_type, "size": len(data)})


def post_form(answer, data, name="photo.jpg", content_type="image/jpeg"):
    """What wx.uploadFile sends: the form fields, then the file part."""
    return requests.post(answer["url"], data=answer["fields"], files={"file": (name, data, content_type)}, timeout=5)


def confirm(client, user, photo_id):
    return client.post(f"/mp/v1/uploads/{photo_id}/confirm", headers=factories.bearer(user))


def upload(client, user, data, name="photo.jpg", content_type="image/jpeg", **form):
    return client.post("/mp/v1/uploads", headers=factories.bearer(user), content_type="multipart/form-data",
                       data={"file": (io.BytesIO(data), name, content_type), **form})


def stored_files(backend):
    """Every file under the local photo directory."""
    root = backend["config"]["PHOTO_DIR"]
    return sorted(os.path.join(folder, name) for folder, _, names in os.walk(root) for name in names)


def url_path(url):
    """A local signed URL → the path the test client fetches."""
    return "/" + url.split("//", 1)[1].split("/", 1)[1]


# --- direct upload to OSS --------------------------------------------------------------------------

def test_direct_upload_to_oss_end_to_end(oss_app, oss_fake, dbconn, process_jobs):
    client = oss_app.test_client()
    sup, user = supplier_user()
    _, stranger = supplier_user()
    original = jpeg(gps=True, orientation=6)  # shot in portrait: stored 400x300, shown 300x400

    answer = policy(client, user, original).json
    assert answer["method"] == "oss_post"
    key = answer["fields"]["key"]
    assert key.startswith(f"s/{sup.id}/") and key.endswith(".jpg")
    conditions = json.loads(base64.b64decode(answer["fields"]["policy"]))["conditions"]
    assert ["content-length-range", 1, 10 * MB] in conditions and ["eq", "$key", key] in conditions
    expires = datetime.fromisoformat(answer["expires_at"])
    assert abs(expires - (datetime.now(UTC) + timedelta(seconds=600))) < timedelta(minutes=1)

    asked = len(oss_fake.requests)
    early = confirm(client, user, answer["photo_id"])
    assert early.status_code == 409 and early.json["error"]["code"] == "upload_missing"
    assert [r["method"] for r in oss_fake.requests[asked:]] == ["HEAD"]  # one question to OSS
    assert "上传" in early.json["error"]["message"]
    assert Photo.get_by_id(answer["photo_id"]).status == "pending"
    order = factories.order(factories.customer(), [sup])
    with pytest.raises(DomainError):  # nothing arrived yet: a report cannot show it
        photos.attach([answer["photo_id"]], sup.id, task=order.tasks.get())

    assert post_form(answer, original).status_code == 200
    assert oss_fake.objects[key]["data"] == original
    assert confirm(client, stranger, answer["photo_id"]).status_code == 404

    asked = len(oss_fake.requests)
    res = confirm(client, user, answer["photo_id"])
    assert res.status_code == 200 and res.json["photo_id"] == answer["photo_id"]
    # There, and its size, in one HEAD (in process, the embedded jobs then process it: GET, PUTs).
    assert [r["method"] for r in oss_fake.requests[asked:] if r["method"] == "HEAD"] == ["HEAD"]
    process_jobs(**oss_settings(oss_fake))

    photo = Photo.get_by_id(answer["photo_id"])
    assert photo.status == "ready" and photo.supplier_id == sup.id and photo.uploader_id == user.id
    assert photo.sha256 == hashlib.sha256(original).hexdigest() and photo.size == len(original)
    assert (photo.width, photo.height) == (300, 400)
    display = oss_fake.objects[photo.display_key]["data"]
    thumb = oss_fake.objects[photo.thumb_key]["data"]
    assert has_gps(original) and not has_gps(display) and not Image.open(io.BytesIO(display)).getexif()
    assert Image.open(io.BytesIO(display)).size == (300, 400)
    assert Image.open(io.BytesIO(thumb)).size == (240, 320)

    with oss_app.app_context():
        staff_view, customer_view = view(photo), view(photo, for_customer=True)
    assert requests.get(staff_view["url"], timeout=5).content == original
    assert requests.get(customer_view["url"], timeout=5).content == display
    assert requests.get(customer_view["thumb_url"], timeout=5).content == thumb
    assert requests.get(customer_view["url"].split("?")[0], timeout=5).status_code == 403  # never public

    again = confirm(client, user, answer["photo_id"])
    assert again.status_code == 200 and again.json["status"] == "ready"
    assert len(oss_fake.objects) == 3
    assert photos.attach([photo.id], sup.id, task=order.tasks.get())[0].task_id == order.tasks.get().id


def test_a_tampered_or_expired_policy_is_refused_by_oss(oss_app, oss_fake, dbconn):
    client = oss_app.test_client()
    _, user = supplier_user()
    data = jpeg()
    answer = policy(client, user, data).json
    fields = answer["fields"]

    other_key = {**fields, "key": "s/999/2026/01/mine.jpg"}
    looser = json.loads(base64.b64decode(fields["policy"]))
    looser["conditions"] = [c for c in looser["conditions"] if "content-length-range" not in c]
    forged = {**fields, "policy": base64.b64encode(json.dumps(looser).encode()).decode()}
    for tampered in (other_key, forged):
        assert post_form({**answer, "fields": tampered}, data).status_code == 403

    oss_fake.clock = lambda: time.time() + 601
    assert post_form(answer, data).status_code == 403
    assert oss_fake.objects == {}


def test_a_direct_upload_that_is_not_an_image_is_rejected_and_deleted(oss_app, oss_fake, dbconn, process_jobs):
    client = oss_app.test_client()
    _, user = supplier_user()
    fake = b"<html>definitely not a photo</html>" * 10
    answer = policy(client, user, fake).json
    assert post_form(answer, fake).status_code == 200

    assert confirm(client, user, answer["photo_id"]).status_code == 200
    process_jobs(**oss_settings(oss_fake))

    photo = Photo.get_by_id(answer["photo_id"])
    assert photo.status == "rejected" and oss_fake.objects == {}
    with oss_app.app_context():
        assert view(photo)["url"] is None
        process_photo(photo.id)  # running again changes nothing
    assert Photo.get_by_id(photo.id).status == "rejected"


def test_the_same_picture_uploaded_directly_twice_is_kept_once(oss_app, oss_fake, dbconn, process_jobs):
    client = oss_app.test_client()
    _, user = supplier_user()
    data = jpeg()
    first = policy(client, user, data).json
    assert post_form(first, data).status_code == 200 and confirm(client, user, first["photo_id"]).status_code == 200
    process_jobs(**oss_settings(oss_fake))
    second = policy(client, user, data).json
    assert post_form(second, data).status_code == 200 and confirm(client, user, second["photo_id"]).status_code == 200
    process_jobs(**oss_settings(oss_fake))

    earlier, repeat = Photo.get_by_id(first["photo_id"]), Photo.get_by_id(second["photo_id"])
    assert earlier.status == "ready" and repeat.status == "duplicate"
    assert repeat.sha256 == earlier.sha256 and repeat.display_key == earlier.display_key
    assert second["fields"]["key"] not in oss_fake.objects and len(oss_fake.objects) == 3
    with oss_app.app_context():
        assert requests.get(view(repeat)["url"], timeout=5).content == data
        assert process_photo(repeat.id) == "duplicate"


def test_a_duplicate_answers_alike_on_both_upload_paths(oss_app, oss_fake, dbconn, process_jobs):
    """Direct upload + confirm and the server upload answer in one shape, with one `duplicate`
    flag that agrees with the status."""
    client = oss_app.test_client()
    _, user = supplier_user()
    data = jpeg()
    first = policy(client, user, data).json
    assert post_form(first, data).status_code == 200
    confirmed = confirm(client, user, first["photo_id"])
    assert confirmed.status_code == 200 and confirmed.json["duplicate"] is False
    process_jobs(**oss_settings(oss_fake))

    second = policy(client, user, data).json
    assert post_form(second, data).status_code == 200
    assert confirm(client, user, second["photo_id"]).status_code == 200
    process_jobs(**oss_settings(oss_fake))
    repeat = confirm(client, user, second["photo_id"])  # repeatable: now processed
    assert repeat.status_code == 200, repeat.json
    assert (repeat.json["status"], repeat.json["duplicate"]) == ("duplicate", True)
    assert requests.get(repeat.json["url"], timeout=5).content == data

    other = jpeg()
    uploaded = upload(client, user, other)
    assert uploaded.status_code == 201 and uploaded.json["duplicate"] is False
    again = upload(client, user, other)
    assert again.status_code == 200 and again.json["duplicate"] is True
    assert again.json["photo_id"] == uploaded.json["photo_id"]
    assert set(repeat.json) == set(again.json) == set(uploaded.json)


def test_the_server_upload_also_works_on_oss(oss_app, oss_fake, dbconn, process_jobs):
    _, user = supplier_user()
    data = jpeg()
    res = upload(oss_app.test_client(), user, data)
    assert res.status_code == 201, res.json
    process_jobs(**oss_settings(oss_fake))
    photo = Photo.get_by_id(res.json["photo_id"])
    assert photo.status == "ready" and oss_fake.objects[photo.storage_key]["data"] == data


# --- policy input ---------------------------------------------------------------------------------

def test_the_embedded_default_sends_the_phone_to_the_server_upload(client, dbconn):
    _, user = supplier_user()
    res = policy(client, user, b"x" * 1000)
    assert res.status_code == 200
    assert res.json["method"] == "server" and res.json["url"] == "/mp/v1/uploads" and res.json["photo_id"] is None
    assert Photo.select().count() == 0


@pytest.mark.parametrize("body, status, field", [
    ({"purpose": "progress", "content_type": "image/gif", "size": 100}, 422, "content_type"),
    ({"purpose": "selfie", "content_type": "image/jpeg", "size": 100}, 422, "purpose"),
    ({"purpose": "progress", "content_type": "image/jpeg", "size": 0}, 422, "size"),
    ({"purpose": "progress", "content_type": "image/jpeg", "size": 11 * MB}, 413, "file"),
])
def test_a_policy_for_a_file_we_would_refuse_is_not_issued(oss_app, dbconn, body, status, field):
    _, user = supplier_user()
    res = oss_app.test_client().post("/mp/v1/uploads/policy", headers=factories.bearer(user), json=body)
    assert res.status_code == status and res.json["error"]["field"] == field
    assert Photo.select().count() == 0


# --- server upload ----------------------------------------------------------------------------------

def test_server_upload_stores_processes_and_serves_the_photo(app, client, dbconn, backend, process_jobs):
    sup, user = supplier_user()
    data = jpeg(gps=True)
    res = upload(client, user, data, purpose="issue")
    assert res.status_code == 201, res.json
    assert res.json["duplicate"] is False and res.json["purpose"] == "issue"
    assert client.get(url_path(res.json["url"])).data == data
    process_jobs()

    photo = Photo.get_by_id(res.json["photo_id"])
    assert photo.status == "ready" and photo.storage_key.startswith(f"s/{sup.id}/")
    assert photo.sha256 == hashlib.sha256(data).hexdigest() and photo.content_type == "image/jpeg"
    with app.app_context():
        shown = view(photo, for_customer=True)
    display = client.get(url_path(shown["url"])).data
    assert not has_gps(display) and Image.open(io.BytesIO(display)).size == (400, 300)
    assert Image.open(io.BytesIO(client.get(url_path(shown["thumb_url"])).data)).size == (320, 240)


def test_a_tiny_png_with_a_huge_transparent_canvas_is_shrunk_to_a_correct_thumbnail(app, client, dbconn,
                                                                                       process_jobs):
    _, user = supplier_user()
    data = transparent_png(7000, 5700)  # 39.9 MP declared in a few KB
    assert len(data) < 10_000

    res = upload(client, user, data, name="big.png", content_type="image/png")
    assert res.status_code == 201, res.json
    process_jobs()

    photo = Photo.get_by_id(res.json["photo_id"])
    assert photo.status == "ready" and (photo.width, photo.height) == (7000, 5700)
    with app.app_context():
        shown = view(photo, for_customer=True)
    display = Image.open(io.BytesIO(client.get(url_path(shown["url"])).data)).convert("RGB")
    thumb = Image.open(io.BytesIO(client.get(url_path(shown["thumb_url"])).data)).convert("RGB")
    assert display.size == (1600, 1303) and thumb.size == (320, 261)
    for image in (display, thumb):
        w, h = image.size
        top, bottom = image.getpixel((w // 2, h // 4)), image.getpixel((w // 2, 3 * h // 4))
        assert min(top) > 240  # transparent → white, not black
        assert bottom[0] > 230 and max(bottom[1:]) < 25


def test_a_50_megapixel_phone_photo_is_accepted_and_turned_upright(app, client, dbconn, process_jobs):
    _, user = supplier_user()
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6  # held upright: stored landscape, shown portrait
    out = io.BytesIO()
    Image.new("L", (8160, 6120), 90).save(out, "JPEG", exif=exif, quality=70)  # 49.9 MP

    res = upload(client, user, out.getvalue())
    assert res.status_code == 201, res.json
    process_jobs()

    photo = Photo.get_by_id(res.json["photo_id"])
    assert photo.status == "ready" and (photo.width, photo.height) == (6120, 8160)
    with app.app_context():
        shown = view(photo, for_customer=True)
    assert Image.open(io.BytesIO(client.get(url_path(shown["url"])).data)).size == (1200, 1600)
    assert Image.open(io.BytesIO(client.get(url_path(shown["thumb_url"])).data)).size == (240, 320)


def test_a_multi_picture_jpeg_from_a_phone_camera_is_a_jpeg(app, client, dbconn, process_jobs):
    _, user = supplier_user()
    data = mpo()
    assert Image.open(io.BytesIO(data)).format == "MPO"

    res = upload(client, user, data)
    assert res.status_code == 201, res.json
    process_jobs()

    photo = Photo.get_by_id(res.json["photo_id"])
    assert photo.status == "ready" and photo.content_type == "image/jpeg" and photo.storage_key.endswith(".jpg")
    with app.app_context():
        shown = view(photo, for_customer=True)
    display = Image.open(io.BytesIO(client.get(url_path(shown["url"])).data))
    assert display.format == "JPEG" and display.size == (400, 300)


def test_the_same_picture_uploaded_twice_is_detected(client, dbconn, backend):
    _, user = supplier_user()
    _, other = supplier_user()
    data = jpeg()
    first = upload(client, user, data)
    files = stored_files(backend)

    again = upload(client, user, data, name="again.jpg")
    assert again.status_code == 200 and again.json["duplicate"] is True
    assert again.json["photo_id"] == first.json["photo_id"]
    assert stored_files(backend) == files and Photo.select().count() == 1
    # Another supplier's identical picture is theirs, not a duplicate of ours.
    assert upload(client, other, data).status_code == 201


def test_a_picture_already_attached_can_be_uploaded_again_for_a_later_report(app, client, dbconn, backend,
                                                                              process_jobs):
    sup, user = supplier_user()
    task = factories.order(factories.customer(), [sup]).tasks.get()
    data = jpeg()
    first = upload(client, user, data).json["photo_id"]
    process_jobs()
    yesterday = ProgressReport.create(task=task, report_date=china_date() - timedelta(days=1), qty_done=10)
    photos.attach([first], sup.id, task=task, report=yesterday)
    files = stored_files(backend)

    again = upload(client, user, data, name="again.jpg")
    # A new photo (201); the embedded default has processed it already and says it is a duplicate,
    # a worker does so later: the flag always agrees with the status.
    assert again.status_code == 201 and again.json["duplicate"] is (again.json["status"] == "duplicate")
    assert again.json["photo_id"] != first
    process_jobs()

    today = ProgressReport.create(task=task, report_date=china_date(), qty_done=20)
    assert photos.attach([again.json["photo_id"]], sup.id, task=task, report=today)[0].report_id == today.id
    earlier, repeat = Photo.get_by_id(first), Photo.get_by_id(again.json["photo_id"])
    assert earlier.report_id == yesterday.id
    assert repeat.status == "duplicate" and repeat.display_key == earlier.display_key
    assert stored_files(backend) == files  # the repeat's own copy of the bytes was not kept
    with app.app_context():
        assert client.get(url_path(view(repeat)["url"])).data == data


@pytest.mark.parametrize("make, name, content_type, status, code", [
    (lambda: b"this is a text file, not a photo\n" * 20, "photo.jpg", "image/jpeg", 422, "not_an_image"),
    (lambda: picture("GIF"), "photo.gif", "image/gif", 422, "unsupported_image_type"),
    (lambda: picture("BMP"), "photo.jpg", "image/jpeg", 422, "unsupported_image_type"),
    (lambda: b"\xff\xd8\xff\xe0" + os.urandom(11 * MB), "big.jpg", "image/jpeg", 413, "file_too_large"),
    (lambda: png_bomb(20000, 20000), "bomb.png", "image/png", 422, "image_too_large"),
    (lambda: png_bomb(9000, 8000), "big.png", "image/png", 422, "image_too_large"),
    # Colour PNG and WebP are decoded whole (4 and ~16 bytes a pixel): their limit is lower.
    (lambda: png_bomb(7000, 5700, rgba=True), "rgba.png", "image/png", 422, "image_too_large"),
    (lambda: webp((3000, 3000)), "photo.webp", "image/webp", 422, "image_too_large"),
], ids=["text-named-jpg", "gif", "bmp", "11mb", "bomb-400mp", "72mp", "rgba-png-40mp", "webp-9mp"])
def test_bad_uploads_are_refused_and_nothing_is_stored(client, dbconn, backend, make, name, content_type, status, code):
    _, user = supplier_user()
    data = make()
    files = stored_files(backend)

    res = upload(client, user, data, name=name, content_type=content_type)

    assert res.status_code == status, res.json
    assert res.json["error"]["code"] == code and res.json["error"]["field"] == "file"
    assert any("\u4e00" <= ch <= "\u9fff" for ch in res.json["error"]["message"])
    assert Photo.select().count() == 0 and stored_files(backend) == files


def test_the_bomb_is_small_but_declares_a_huge_canvas():
    data = png_bomb(20000, 20000)
    assert len(data) < 10_000
    with pytest.raises(DomainError) as err:
        images.sniff(data)
    assert err.value.code == "image_too_large"


def test_an_upload_without_a_file_names_the_field(client, dbconn):
    _, user = supplier_user()
    res = client.post("/mp/v1/uploads", headers=factories.bearer(user), content_type="multipart/form-data",
                      data={"purpose": "progress"})
    assert res.status_code == 422 and res.json["error"]["field"] == "file"


def test_only_suppliers_upload(client, dbconn):
    customer_user = factories.wechat_user(factories.customer())
    for res in (upload(client, customer_user, jpeg()), policy(client, customer_user, b"x" * 10)):
        assert res.status_code == 403 and res.json["error"]["code"] == "wrong_role"
    assert client.post("/mp/v1/uploads", data={}).status_code == 401
    assert confirm(client, customer_user, 1).status_code == 404  # an object route: never confirm it exists
    assert Photo.select().count() == 0


# --- attach and view ----------------------------------------------------------------------------------

def test_attach_takes_only_the_suppliers_own_free_photos(app, client, dbconn):
    sup, user = supplier_user()
    other_sup, other_user = supplier_user()
    order = factories.order(factories.customer(), [sup])
    task = order.tasks.get()
    node = NodeInstance.get((NodeInstance.order == order) & (NodeInstance.code == "packed"))
    mine = [upload(client, user, jpeg()).json["photo_id"] for _ in range(3)]
    theirs = upload(client, other_user, jpeg()).json["photo_id"]
    rejected = Photo.create(storage_key=f"s/{sup.id}/x/rejected.jpg", supplier=sup, purpose="progress",
                            status="rejected")

    for bad in ([theirs], [rejected.id], [mine[0], 999999]):
        with pytest.raises(DomainError) as err:
            photos.attach(bad, sup.id, task=task)
        assert err.value.code == "invalid_photo" and err.value.field == "photo_ids"

    report = ProgressReport.create(task=task, report_date=china_date(), qty_done=10)
    attached = photos.attach([mine[0], mine[1]], sup.id, task=task, report=report)
    assert [p.id for p in attached] == mine[:2]
    assert photos.attach([mine[0]], sup.id, task=task, report=report)[0].report_id == report.id  # again: harmless
    with pytest.raises(DomainError):
        photos.attach([mine[0]], other_sup.id, task=task, report=report)
    with pytest.raises(DomainError):
        photos.attach([mine[0]], sup.id, task=task, node=node)  # already shows the report

    on_node = photos.attach([mine[2]], sup.id, task=task, node=node)[0]
    assert on_node.customer_visible and not Photo.get_by_id(mine[0]).customer_visible
    assert Photo.get_by_id(mine[2]).node_id == node.id
    assert photos.attach([], sup.id, task=task) == []


def test_a_customer_view_never_shows_the_original(app, client, dbconn, process_jobs):
    _, user = supplier_user()
    data = jpeg(gps=True)
    photo_id = upload(client, user, data).json["photo_id"]
    process_jobs()
    pending = Photo.create(storage_key="s/1/x/pending.jpg", purpose="node")
    with app.app_context():
        photo = Photo.get_by_id(photo_id)
        mine, theirs = view(photo), view(photo, for_customer=True)
        assert view(pending, for_customer=True)["url"] is None
    assert set(theirs) == {"id", "url", "thumb_url", "status", "purpose", "created_at"}
    assert "+08:00" in theirs["created_at"]
    assert theirs["url"] != mine["url"] and not has_gps(client.get(url_path(theirs["url"])).data)
    assert client.get(url_path(mine["url"])).data == data
