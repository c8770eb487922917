"""Tests of the OSS fake itself, driven by oss2 and by raw PostObject forms.

The app's tests trust FakeOSS to reject what real OSS rejects, so these tests
pin down that it accepts genuine oss2 signatures and refuses the rest.
"""

import base64
import hashlib
import hmac
import json
import threading
import time
import xml.etree.ElementTree as ElementTree

import oss2
import pytest
import requests

from tests.fakes.oss import FakeOSS

KEY = "progress/42/20240101/a b.jpg"
JPEG = b"\xff\xd8\xff\xe0 fake jpeg bytes"


@pytest.fixture(scope="module")
def server():
    """One server per module: stopping a werkzeug server costs half a second."""
    with FakeOSS() as started:
        yield started


@pytest.fixture
def fake(server):
    server.reset()
    return server


@pytest.fixture
def bucket(fake):
    return oss2.Bucket(oss2.Auth(fake.access_key_id, fake.access_key_secret), fake.url, fake.bucket)


def error_code(response):
    return ElementTree.fromstring(response.content).findtext("Code")


def error_message(response):
    return ElementTree.fromstring(response.content).findtext("Message")


def make_policy(fake, conditions=None, expires_in=600):
    """Policy and signature built exactly as the reference (§6.2) shows."""
    expire = int(time.time()) + expires_in
    policy = {"expiration": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(expire)),
              "conditions": conditions if conditions is not None else [
                  {"bucket": fake.bucket},
                  ["content-length-range", 1, 10 * 1024 * 1024],
                  ["starts-with", "$key", "progress/42/"]]}
    policy_b64 = base64.b64encode(json.dumps(policy).encode()).decode()
    signature = base64.b64encode(hmac.new(fake.access_key_secret.encode(), policy_b64.encode(),
                                          hashlib.sha1).digest()).decode()
    return policy_b64, signature


def form(fake, key=KEY, **overrides):
    policy_b64, signature = make_policy(fake)
    fields = {"key": key, "policy": policy_b64, "OSSAccessKeyId": fake.access_key_id,
              "signature": signature}
    fields.update(overrides)
    return fields


def post(fake, fields, data=JPEG, content_type="image/jpeg", url=None):
    return requests.post(url or fake.post_url, data=fields,
                         files={"file": ("photo.jpg", data, content_type)}, timeout=5)


# -- object API through oss2 ---------------------------------------------------------


def test_oss2_round_trip(fake, bucket):
    result = bucket.put_object(KEY, JPEG, headers={"Content-Type": "image/jpeg"})
    assert result.status == 200
    assert result.etag == hashlib.md5(JPEG).hexdigest().upper()
    assert result.request_id
    assert fake.objects[KEY] == {"data": JPEG, "content_type": "image/jpeg", "etag": result.etag}

    assert bucket.get_object(KEY).read() == JPEG
    head = bucket.head_object(KEY)
    assert (head.content_length, head.content_type, head.etag) == (len(JPEG), "image/jpeg",
                                                                   result.etag)
    assert bucket.object_exists(KEY)

    bucket.delete_object(KEY)
    assert not bucket.object_exists(KEY)
    assert KEY not in fake.objects
    assert [(r["method"], r["key"], r["status"]) for r in fake.requests] == [
        ("PUT", KEY, 200), ("GET", KEY, 200), ("HEAD", KEY, 200), ("HEAD", KEY, 200),
        ("DELETE", KEY, 204), ("HEAD", KEY, 404)]
    assert fake.requests[0]["path"] == f"/{fake.bucket}/{KEY}"


def test_signed_headers_and_unicode_keys_are_verified(fake, bucket):
    key = "进度/42/照片.jpg"
    headers = {"Content-Type": "image/jpeg", "x-oss-meta-order": "42",
               "Content-MD5": base64.b64encode(hashlib.md5(JPEG).digest()).decode()}
    bucket.put_object(key, JPEG, headers=headers)
    assert bucket.get_object(key).read() == JPEG

    with pytest.raises(oss2.exceptions.OssError) as raised:
        bucket.put_object(key, b"corrupted", headers=headers)
    assert (raised.value.status, raised.value.code) == (400, "InvalidDigest")


def test_seeded_object_is_served(fake, bucket):
    fake.put("seed.png", b"png", content_type="image/png")
    obj = bucket.get_object("seed.png")
    assert obj.read() == b"png"
    assert obj.content_type == "image/png"
    assert "x-oss-hash-crc64ecma" not in obj.headers


@pytest.mark.parametrize("ak_id, secret, code", [
    ("fake-ak-id", "wrong-secret", "SignatureDoesNotMatch"),
    ("other-ak-id", "fake-ak-secret", "InvalidAccessKeyId"),
])
def test_bad_credentials_are_refused(fake, ak_id, secret, code):
    intruder = oss2.Bucket(oss2.Auth(ak_id, secret), fake.url, fake.bucket)
    with pytest.raises(oss2.exceptions.OssError) as raised:
        intruder.put_object(KEY, JPEG)
    assert (raised.value.status, raised.value.code) == (403, code)
    assert fake.objects == {}


def test_missing_key_is_no_such_key(fake, bucket):
    with pytest.raises(oss2.exceptions.NoSuchKey) as raised:
        bucket.get_object("nope.jpg")
    assert raised.value.status == 404
    assert raised.value.message == "The specified key does not exist."
    with pytest.raises(oss2.exceptions.NotFound):
        bucket.head_object("nope.jpg")

    response = requests.get(bucket.sign_url("GET", "nope.jpg", 600), timeout=5)
    root = ElementTree.fromstring(response.content)
    assert response.status_code == 404
    assert [child.tag for child in root][:4] == ["Code", "Message", "RequestId", "HostId"]
    assert root.findtext("Code") == "NoSuchKey"


def test_wrong_bucket_is_no_such_bucket(fake):
    other = oss2.Bucket(oss2.Auth(fake.access_key_id, fake.access_key_secret), fake.url, "other")
    with pytest.raises(oss2.exceptions.NoSuchBucket):
        other.get_object(KEY)
    with pytest.raises(oss2.exceptions.NoSuchBucket):
        other.object_exists(KEY)


def test_anonymous_request_is_refused(fake):
    fake.put(KEY, JPEG)
    response = requests.get(f"{fake.post_url}/{KEY}", timeout=5)
    assert (response.status_code, error_code(response)) == (403, "AccessDenied")


def test_signed_url_works_until_it_expires(fake, bucket):
    fake.put(KEY, JPEG)
    url = bucket.sign_url("GET", KEY, 600, slash_safe=True)
    response = requests.get(url, timeout=5)
    assert (response.status_code, response.content) == (200, JPEG)
    assert response.headers["ETag"] == f'"{fake.objects[KEY]["etag"]}"'
    assert response.headers["x-oss-request-id"]

    fake.clock = lambda: time.time() + 601
    expired = requests.get(url, timeout=5)
    assert (expired.status_code, error_code(expired)) == (403, "AccessDenied")
    assert error_message(expired) == "Request has expired."


def test_tampered_signed_url_is_refused(fake, bucket):
    fake.put(KEY, JPEG)
    url = bucket.sign_url("GET", KEY, 600, slash_safe=True).replace(
        "progress/42", "progress/43")
    response = requests.get(url, timeout=5)
    assert (response.status_code, error_code(response)) == (403, "SignatureDoesNotMatch")


def test_concurrent_uploads_are_all_stored(fake, bucket):
    keys = [f"progress/42/{n}.jpg" for n in range(20)]
    threads = [threading.Thread(target=bucket.put_object, args=(key, key.encode()))
               for key in keys]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(fake.objects) == sorted(keys)
    assert len(fake.requests) == len(keys)


# -- PostObject --------------------------------------------------------------------------


def test_post_object_default_answers_204(fake, bucket):
    response = post(fake, form(fake, **{"x:order_id": "42"}))
    assert (response.status_code, response.content) == (204, b"")
    assert fake.objects[KEY]["data"] == JPEG
    assert fake.objects[KEY]["content_type"] == "image/jpeg"
    assert bucket.head_object(KEY).content_length == len(JPEG)
    assert fake.requests[0] == {"method": "POST", "path": f"/{fake.bucket}", "key": KEY,
                                "status": 204}


def test_post_object_201_returns_post_response(fake):
    response = post(fake, form(fake, success_action_status="201"))
    root = ElementTree.fromstring(response.content)
    assert response.status_code == 201
    assert root.tag == "PostResponse"
    assert (root.findtext("Bucket"), root.findtext("Key")) == (fake.bucket, KEY)
    assert root.findtext("ETag") == f'"{fake.objects[KEY]["etag"]}"'
    assert root.findtext("Location").startswith(fake.post_url + "/progress/42/")


def test_post_object_200_and_bucket_inferred_from_root(fake):
    response = post(fake, form(fake, success_action_status="200"), url=fake.url + "/")
    assert (response.status_code, response.content) == (200, b"")
    assert KEY in fake.objects


def test_post_object_content_type_field_wins_and_is_policed(fake):
    policy_b64, signature = make_policy(fake, [["in", "$content-type", ["image/jpeg"]]])
    fields = form(fake, policy=policy_b64, signature=signature)
    ok = post(fake, {**fields, "Content-Type": "image/jpeg"}, content_type="text/plain")
    assert ok.status_code == 204
    assert fake.objects[KEY]["content_type"] == "image/jpeg"

    refused = post(fake, fields, content_type="image/png")
    assert (refused.status_code, error_code(refused)) == (403, "AccessDenied")


def test_expired_policy_is_refused(fake):
    fields = form(fake)
    fake.clock = lambda: time.time() + 601
    response = post(fake, fields)
    assert (response.status_code, error_code(response)) == (403, "AccessDenied")
    assert error_message(response) == "Invalid according to Policy: Policy expired."
    assert fake.objects == {}


def test_key_outside_prefix_is_refused(fake):
    response = post(fake, form(fake, key="progress/43/a.jpg"))
    assert (response.status_code, error_code(response)) == (403, "AccessDenied")
    assert error_message(response).startswith(
        "Invalid according to Policy: Policy Condition failed: ")
    assert "starts-with" in error_message(response)
    assert fake.objects == {}


def test_oversized_file_is_refused(fake):
    policy_b64, signature = make_policy(fake, [["content-length-range", 1, 10]])
    response = post(fake, form(fake, policy=policy_b64, signature=signature), data=b"x" * 11)
    assert (response.status_code, error_code(response)) == (403, "AccessDenied")
    assert "content-length-range" in error_message(response)


def test_tampered_signature_is_refused(fake):
    fields = form(fake)
    fields["signature"] = base64.b64encode(b"\0" * 20).decode()
    response = post(fake, fields)
    assert (response.status_code, error_code(response)) == (403, "SignatureDoesNotMatch")


def test_signature_over_json_instead_of_base64_is_refused(fake):
    fields = form(fake)
    policy_json = base64.b64decode(fields["policy"])
    fields["signature"] = base64.b64encode(hmac.new(
        fake.access_key_secret.encode(), policy_json, hashlib.sha1).digest()).decode()
    response = post(fake, fields)
    assert (response.status_code, error_code(response)) == (403, "SignatureDoesNotMatch")


def test_credentials_must_come_together(fake):
    fields = form(fake)
    del fields["signature"]
    response = post(fake, fields)
    assert (response.status_code, error_code(response)) == (403, "AccessDenied")


def test_policy_without_conditions_is_invalid(fake):
    policy_b64 = base64.b64encode(json.dumps({"expiration": "2999-01-01T00:00:00.000Z"})
                                  .encode()).decode()
    signature = base64.b64encode(hmac.new(fake.access_key_secret.encode(), policy_b64.encode(),
                                          hashlib.sha1).digest()).decode()
    response = post(fake, form(fake, policy=policy_b64, signature=signature))
    assert (response.status_code, error_code(response)) == (400, "InvalidPolicyDocument")


def test_success_status_condition_is_enforced(fake):
    policy_b64, signature = make_policy(fake, [["eq", "$success_action_status", "200"]])
    fields = form(fake, policy=policy_b64, signature=signature)
    assert post(fake, fields).status_code == 403
    assert post(fake, {**fields, "success_action_status": "200"}).status_code == 200


def test_fields_after_file_are_refused(fake):
    fields = form(fake)
    parts = [(name, (None, value)) for name, value in fields.items() if name != "signature"]
    parts += [("file", ("photo.jpg", JPEG, "image/jpeg")), ("signature", (None, fields["signature"]))]
    response = requests.post(fake.post_url, files=parts, timeout=5)
    assert (response.status_code, error_code(response)) == (400, "InvalidArgument")


def test_reset_forgets_state(fake):
    fake.put(KEY, JPEG)
    post(fake, form(fake))
    fake.clock = lambda: 0
    fake.reset()
    assert (fake.objects, fake.requests, fake.clock) == ({}, [], time.time)
