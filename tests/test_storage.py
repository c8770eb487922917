"""Photo storage: local disk with signed links, or a private OSS bucket (through the OSS fake)."""
import time

import oss2
import pytest
import requests

from app.extensions import current
from app.storage import OssStorage, StorageError
from tests.helpers import oss_settings

JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64 + b"\xff\xd9"


@pytest.fixture
def oss_app(make_app, oss_fake):
    oss_fake.reset()
    return make_app(**oss_settings(oss_fake))


def test_local_storage_serves_only_signed_unexpired_links(app, client):
    with app.app_context():
        storage = current().storage
        storage.put("s1/2026/11/a.jpg", JPEG, "image/jpeg")
        url = storage.signed_url("s1/2026/11/a.jpg")
    path = url.split("//", 1)[1].split("/", 1)[1]

    res = client.get("/" + path)
    assert res.status_code == 200 and res.data == JPEG and res.content_type == "image/jpeg"
    assert client.get("/" + path.replace("sig=", "sig=0")).status_code == 404
    assert client.get("/files/s1/2026/11/a.jpg").status_code == 404
    expired = path.split("?")[0] + f"?expires={int(time.time()) - 1}&sig=" + path.split("sig=")[1]
    assert client.get("/" + expired).status_code == 404


def test_local_storage_tells_an_objects_size_or_its_absence(app):
    with app.app_context():
        storage = current().storage
        storage.put("s1/b.jpg", JPEG, "image/jpeg")
        assert storage.size("s1/b.jpg") == len(JPEG) and storage.size("s1/nothing.jpg") is None


def test_keys_cannot_escape_the_storage_root(app):
    with app.app_context(), pytest.raises(StorageError):
        current().storage.put("../../etc/passwd", b"x", "text/plain")


def test_oss_round_trip_and_signed_url(oss_app, oss_fake):
    with oss_app.app_context():
        storage = current().storage
        storage.put("s1/a.jpg", JPEG, "image/jpeg")
        assert storage.exists("s1/a.jpg") and not storage.exists("s1/missing.jpg")
        assert storage.size("s1/a.jpg") == len(JPEG) and storage.size("s1/missing.jpg") is None
        assert storage.get("s1/a.jpg") == JPEG
        url = storage.signed_url("s1/a.jpg", 60)
    assert requests.get(url, timeout=5).content == JPEG
    assert requests.get(url.replace("Signature=", "Signature=x"), timeout=5).status_code == 403


def test_an_oss_object_missing_is_no_size_but_a_missing_bucket_is_an_error(oss_fake):
    storage = OssStorage(oss_fake.url, oss_fake.bucket, oss_fake.access_key_id, oss_fake.access_key_secret)
    wrong = OssStorage(oss_fake.url, "no-such-bucket", oss_fake.access_key_id, oss_fake.access_key_secret)

    assert storage.size("s1/never-uploaded.jpg") is None
    with pytest.raises(oss2.exceptions.NoSuchBucket):  # a misconfiguration, not "not uploaded yet"
        wrong.size("s1/never-uploaded.jpg")


def test_oss_post_policy_allows_exactly_the_signed_upload(oss_app, oss_fake):
    with oss_app.app_context():
        form = current().storage.post_form("s1/up/p.jpg", "image/jpeg", max_size=1024)

    ok = requests.post(form["url"], data=form["fields"], files={"file": ("p.jpg", JPEG, "image/jpeg")}, timeout=5)
    assert ok.status_code == 200
    assert oss_fake.objects["s1/up/p.jpg"]["data"] == JPEG

    other_key = {**form["fields"], "key": "s2/steal.jpg"}
    assert requests.post(form["url"], data=other_key, files={"file": ("p.jpg", JPEG, "image/jpeg")}, timeout=5).status_code == 403
    too_big = requests.post(form["url"], data=form["fields"], files={"file": ("p.jpg", JPEG * 100, "image/jpeg")}, timeout=5)
    assert too_big.status_code == 403
    assert "s2/steal.jpg" not in oss_fake.objects
