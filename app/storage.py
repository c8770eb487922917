"""Photo storage with one interface: local disk (embedded default) or Aliyun OSS (oss2).

Objects are never public: readers get short-lived signed URLs. Phones upload straight to OSS
with a PostObject policy the server signs (reference/wechat-platform.md §6); in the embedded
default they upload through the server instead.
"""
import base64
import hashlib
import hmac
import json
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import oss2

KEY_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9/_.-]{0,254}$")


class StorageError(Exception):
    pass


def check_key(key):
    """Keys are chosen by the server; refuse anything that could escape its prefix."""
    if not KEY_PATTERN.match(key) or ".." in key or "//" in key:
        raise StorageError(f"invalid storage key {key!r}")
    return key


class LocalStorage:
    """Files under a directory; signed URLs are served by GET /files/<key> (app/files.py)."""

    kind = "local"

    def __init__(self, root, secret, public_base_url):
        self.root = Path(root)
        self.secret = secret.encode()
        self.public_base_url = public_base_url.rstrip("/")

    def _path(self, key):
        return self.root / check_key(key)

    def put(self, key, data, content_type):
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".part")
        tmp.write_bytes(data)
        tmp.replace(path)  # readers never see half a file

    def get(self, key):
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise StorageError(f"no such object {key!r}")

    def exists(self, key):
        return self._path(key).is_file()

    def size(self, key):
        """The object's size in bytes; None when there is no such object."""
        path = self._path(key)
        return path.stat().st_size if path.is_file() else None

    def delete(self, key):
        """Remove an object; deleting a missing one is not an error (as on OSS)."""
        self._path(key).unlink(missing_ok=True)

    def _signature(self, key, expires):
        return hmac.new(self.secret, f"{key}\n{expires}".encode(), hashlib.sha256).hexdigest()

    def signed_url(self, key, expires_in=600):
        expires = int(time.time()) + expires_in
        return f"{self.public_base_url}/files/{quote(check_key(key))}?expires={expires}&sig={self._signature(key, expires)}"

    def verify(self, key, expires, sig):
        """True when a /files URL is genuine and not expired."""
        try:
            expires = int(expires)
        except (TypeError, ValueError):
            return False
        return expires >= time.time() and hmac.compare_digest(self._signature(key, expires), sig or "")


class OssStorage:
    """A private OSS bucket. Credentials should be a RAM key limited to this bucket."""

    kind = "oss"

    def __init__(self, endpoint, bucket, access_key_id, access_key_secret, timeout=10):
        self.endpoint = endpoint.rstrip("/")
        self.bucket_name = bucket
        self.access_key_id = access_key_id
        self.access_key_secret = access_key_secret
        self.bucket = oss2.Bucket(oss2.Auth(access_key_id, access_key_secret), self.endpoint, bucket,
                                  connect_timeout=timeout)

    def put(self, key, data, content_type):
        self.bucket.put_object(check_key(key), data, headers={"Content-Type": content_type})

    def get(self, key):
        try:
            return self.bucket.get_object(check_key(key)).read()
        except oss2.exceptions.NoSuchKey:
            raise StorageError(f"no such object {key!r}")

    def exists(self, key):
        return self.bucket.object_exists(check_key(key))

    def size(self, key):
        """The object's size in bytes, None when there is no such object: one HEAD request."""
        try:
            return self.bucket.head_object(check_key(key)).content_length
        except oss2.exceptions.NoSuchBucket:
            raise
        except oss2.exceptions.NotFound:
            # NoSuchKey, or a 404 whose HEAD answer had no x-oss-err to say which: a missing
            # object, as oss2's own object_exists takes it.
            return None

    def delete(self, key):
        self.bucket.delete_object(check_key(key))

    def signed_url(self, key, expires_in=600):
        return self.bucket.sign_url("GET", check_key(key), expires_in, slash_safe=True)

    def upload_url(self):
        """Where a phone POSTs the form: the bucket's own host (path-style for IPs, as oss2 does)."""
        if oss2.utils.is_ip_or_localhost(self.endpoint.split("://", 1)[-1].split(":")[0]):
            return f"{self.endpoint}/{self.bucket_name}"
        scheme, host = self.endpoint.split("://", 1)
        return f"{scheme}://{self.bucket_name}.{host}"

    def post_form(self, key, content_type, max_size, expires_in=600):
        """PostObject form fields that allow exactly one upload of `key`, of this type and at most
        `max_size` bytes, until the policy expires (UTC — Aliyun's own example gets this wrong).
        `x-oss-forbid-overwrite` is a field and a signed condition: a form without it is refused,
        and once the object exists a second post (a replayed form) cannot replace it."""
        expire_at = int(time.time()) + expires_in
        policy = {
            "expiration": datetime.fromtimestamp(expire_at, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "conditions": [
                {"bucket": self.bucket_name},
                ["eq", "$key", check_key(key)],
                ["content-length-range", 1, max_size],
                ["eq", "$content-type", content_type],
                ["eq", "$success_action_status", "200"],
                ["eq", "$x-oss-forbid-overwrite", "true"],
            ],
        }
        policy_b64 = base64.b64encode(json.dumps(policy).encode()).decode()
        signature = base64.b64encode(
            hmac.new(self.access_key_secret.encode(), policy_b64.encode(), hashlib.sha1).digest()
        ).decode()
        return {
            "url": self.upload_url(),
            "expires_at": expire_at,
            "fields": {
                "key": key,
                "policy": policy_b64,
                "OSSAccessKeyId": self.access_key_id,
                "signature": signature,
                "success_action_status": "200",
                "x-oss-forbid-overwrite": "true",
                "Content-Type": content_type,
            },
        }


def build(config):
    if config["OSS_ENABLED"]:
        return OssStorage(config["OSS_ENDPOINT"], config["OSS_BUCKET"], config["OSS_ACCESS_KEY_ID"],
                          config["OSS_ACCESS_KEY_SECRET"])
    return LocalStorage(config["PHOTO_DIR"], config["SECRET_KEY"], config["PUBLIC_BASE_URL"])
