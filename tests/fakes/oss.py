"""Loopback fake of Aliyun OSS for tests.

A real HTTP server on 127.0.0.1 so that the production code path is exercised
unchanged: oss2 signs and sends genuine V1 requests, and a test can POST a
PostObject form exactly as the mini program's ``wx.uploadFile`` would.
The fake is strict on purpose: it verifies signatures, policies and
expirations the way OSS does, so signing bugs fail in tests rather than in
production.  See the integration reference ``wechat-platform.md`` §6 and §7.
"""

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import NamedTuple
from urllib.parse import quote
from xml.sax.saxutils import escape

from werkzeug.http import http_date
from werkzeug.sansio.multipart import Data, Epilogue, Field, File, MultipartDecoder
from werkzeug.wrappers import Request, Response

from tests.fakes.http import LoopbackServer

_OBJECT_METHODS = frozenset({"PUT", "GET", "HEAD", "DELETE"})
_SIGNED_URL_PARAMS = ("OSSAccessKeyId", "Expires", "Signature")
# oss2's object_exists() sends HEAD ?objectMeta; no other sub-resource is served.
_SUBRESOURCES = frozenset({"objectMeta"})
_EXPIRATION_FORMATS = ("%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M:%SZ")
_POST_AUTH_FIELDS = ("ossaccesskeyid", "policy", "signature")
# Policy operator -> (type the expected value must have, predicate on the form value).
_MATCHERS = {
    "eq": (str, lambda actual, expected: actual == expected),
    "starts-with": (str, lambda actual, expected: actual.startswith(expected)),
    "in": (list, lambda actual, expected: actual in expected),
}


class OSSError(Exception):
    """An OSS error answer, raised anywhere in a handler and rendered once.

    Raising keeps every check a one-liner instead of threading error
    responses back through each helper.
    """

    def __init__(self, status, code, message, **extra):
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra

    def to_response(self, request, request_id):
        """Render the OSS error XML; HEAD gets it base64'd in ``x-oss-err``.

        HEAD responses carry no body, and oss2 reads ``x-oss-err`` to tell
        NoSuchKey from NoSuchBucket (``object_exists`` depends on that).
        """
        elements = {"Code": self.code, "Message": self.message,
                    "RequestId": request_id, "HostId": request.host, **self.extra}
        xml = '<?xml version="1.0" encoding="UTF-8"?>\n<Error>' + "".join(
            f"<{name}>{escape(str(value))}</{name}>" for name, value in elements.items()
        ) + "</Error>"
        if request.method == "HEAD":
            response = Response(status=self.status)
            response.headers["x-oss-err"] = base64.b64encode(xml.encode()).decode()
            return response
        return Response(xml, status=self.status, content_type="application/xml")


class _Upload(NamedTuple):
    """A parsed PostObject form: lower-cased text fields and the file part."""

    fields: dict
    data: bytes
    content_type: str


def _sign(secret, message):
    """Base64(HMAC-SHA1(secret, message)), the V1 signature of both APIs."""
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha1).digest()).decode()


def _etag(data):
    """Upper-case hex MD5, as real OSS reports for simple uploads."""
    return hashlib.md5(data).hexdigest().upper()


def _policy_failed(condition):
    """The AccessDenied OSS returns for a violated policy condition."""
    return OSSError(403, "AccessDenied", "Invalid according to Policy: Policy Condition failed: "
                    + json.dumps(condition, ensure_ascii=False))


def _invalid_policy(message):
    """The 400 OSS returns for a policy it cannot read (error 0006-00000207 and kin)."""
    return OSSError(400, "InvalidPolicyDocument", f"Invalid Policy: {message}")


def _parse_authorization(header):
    """Split ``OSS <AccessKeyId>:<signature>``; anything else is malformed."""
    scheme, _, credential = header.partition(" ")
    access_key_id, _, signature = credential.partition(":")
    if scheme != "OSS" or not access_key_id or not signature:
        raise OSSError(400, "InvalidArgument", "Authorization header is invalid.")
    return access_key_id, signature


def _string_to_sign(request, date, resource):
    """V1 string to sign; headers travel as latin-1 on the wire, the key as UTF-8."""
    oss_headers = sorted((name.lower(), value) for name, value in request.headers.items()
                         if name.lower().startswith("x-oss-"))
    subresources = sorted(name for name in request.args if name in _SUBRESOURCES)
    if subresources:
        resource += "?" + "&".join(subresources)
    head = "\n".join([request.method, request.headers.get("Content-MD5", ""),
                      request.headers.get("Content-Type", ""), date, ""])
    head += "".join(f"{name}:{value}\n" for name, value in oss_headers)
    return head.encode("latin-1") + resource.encode("utf-8")


def _parse_form(request):
    """Parse multipart in wire order, because OSS requires ``file`` to be last."""
    boundary = request.mimetype_params.get("boundary")
    if request.mimetype != "multipart/form-data" or not boundary:
        raise OSSError(400, "InvalidArgument", "The body of your POST request is not "
                       "well-formed multipart/form-data.")
    decoder = MultipartDecoder(boundary.encode())
    decoder.receive_data(request.get_data())
    decoder.receive_data(None)
    parts = []
    try:
        event = decoder.next_event()
        while not isinstance(event, Epilogue):
            if isinstance(event, (Field, File)):
                parts.append((event.name.lower(), event.headers, bytearray()))
            elif isinstance(event, Data):
                parts[-1][2].extend(event.data)
            event = decoder.next_event()
    except ValueError as error:
        raise OSSError(400, "InvalidArgument", "The body of your POST request is not "
                       f"well-formed multipart/form-data: {error}") from error
    names = [name for name, _, _ in parts]
    if "file" not in names:
        raise OSSError(400, "InvalidArgument", "The file field is required.")
    if names.index("file") != len(names) - 1:
        raise OSSError(400, "InvalidArgument", "The file field must be the last form field.")
    *fields, (_, file_headers, data) = parts
    return _Upload(fields={name: bytes(value).decode("utf-8") for name, _, value in fields},
                   data=bytes(data), content_type=file_headers.get("Content-Type", ""))


def _decode_policy(policy_b64):
    """Decode the form's policy; OSS needs both ``expiration`` and ``conditions``."""
    try:
        policy = json.loads(base64.b64decode(policy_b64, validate=True))
    except ValueError as error:
        raise _invalid_policy("policy is not base64-encoded JSON.") from error
    if (not isinstance(policy, dict) or "expiration" not in policy
            or not isinstance(policy.get("conditions"), list)):
        raise _invalid_policy("policy must contain expiration and a conditions list.")
    return policy


def _check_condition(condition, values, size):
    """Enforce one policy condition against the form values and file size."""
    if isinstance(condition, dict):
        for name, expected in condition.items():
            if values.get(name.lower(), "") != expected:
                raise _policy_failed(condition)
        return
    if not isinstance(condition, list) or not condition:
        raise _invalid_policy(f"unsupported condition {condition!r}.")
    operator = str(condition[0]).lower()
    if operator == "content-length-range":
        _check_length_range(condition, size)
        return
    if (operator not in _MATCHERS or len(condition) != 3
            or not str(condition[1]).startswith("$")
            or not isinstance(condition[2], _MATCHERS[operator][0])):
        raise _invalid_policy(f"unsupported condition {condition!r}.")
    actual = values.get(condition[1][1:].lower(), "")
    if not _MATCHERS[operator][1](actual, condition[2]):
        raise _policy_failed(condition)


def _check_length_range(condition, size):
    """``["content-length-range", min, max]`` bounds the file part's byte size."""
    if (len(condition) != 3
            or not all(isinstance(bound, int) for bound in condition[1:])):
        raise _invalid_policy(f"unsupported condition {condition!r}.")
    if not condition[1] <= size <= condition[2]:
        raise _policy_failed(condition)


class FakeOSS:
    """One private bucket served path-style on a loopback port.

    State (``objects``, ``requests``) is public for assertions and guarded
    by a lock because the server handles each request on its own thread.
    ``clock`` decides policy and signed-URL expiry so tests can move time.
    """

    def __init__(self, bucket="fake-bucket", access_key_id="fake-ak-id",
                 access_key_secret="fake-ak-secret"):
        self.bucket = bucket
        self.access_key_id = access_key_id
        self.access_key_secret = access_key_secret
        self.objects = {}
        self.requests = []
        self.clock = time.time
        self._modified = {}
        self._lock = threading.Lock()
        self._server = None

    # -- lifecycle -----------------------------------------------------------

    def start(self):
        self._server = LoopbackServer(self._wsgi)
        self._server.start()
        return self

    def stop(self):
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()

    @property
    def url(self):
        """Endpoint for oss2; an IP endpoint makes oss2 use path-style URLs."""
        if self._server is None:
            raise RuntimeError("FakeOSS is not started")
        return self._server.url

    @property
    def post_url(self):
        """Form upload target, the path-style equivalent of the bucket host."""
        return f"{self.url}/{self.bucket}"

    # -- state ----------------------------------------------------------------

    def put(self, key, data, content_type="image/jpeg"):
        """Seed an object without going through HTTP; returns its ETag (unquoted)."""
        return self._store(key, data, content_type)

    def reset(self):
        """Forget objects and recorded requests and restore the real clock."""
        with self._lock:
            self.objects.clear()
            self._modified.clear()
            self.requests.clear()
            self.clock = time.time

    def _store(self, key, data, content_type):
        etag = _etag(data)
        with self._lock:
            self.objects[key] = {"data": data, "content_type": content_type, "etag": etag}
            self._modified[key] = self.clock()
        return etag

    # -- HTTP entry point -------------------------------------------------------

    def _wsgi(self, environ, start_response):
        """Dispatch, turn OSSError into XML, stamp the request id, record the call."""
        request = Request(environ)
        # Read the body up front: the dev server closes every connection, and
        # closing with unread input resets it, hiding our error from the client.
        request.get_data()
        request_id = uuid.uuid4().hex[:24].upper()
        entry = {"method": request.method, "path": request.path, "key": None, "status": None}
        try:
            response = self._dispatch(request, entry)
        except OSSError as error:
            response = error.to_response(request, request_id)
        response.headers["x-oss-request-id"] = request_id
        entry["status"] = response.status_code
        with self._lock:
            self.requests.append(entry)
        return response(environ, start_response)

    def _dispatch(self, request, entry):
        """Route by path shape: ``/<bucket>/<key>`` objects, ``/[<bucket>]`` forms."""
        bucket, _, key = request.path[1:].partition("/")
        if request.method == "POST" and not key:
            return self._post_object(request, bucket or self.bucket, entry)
        if request.method in _OBJECT_METHODS and bucket and key:
            entry["key"] = key
            return self._object_api(request, bucket, key)
        raise OSSError(501, "NotImplemented",
                       f"FakeOSS does not implement {request.method} {request.path}")

    def _check_bucket(self, bucket):
        if bucket != self.bucket:
            raise OSSError(404, "NoSuchBucket", "The specified bucket does not exist.",
                           BucketName=bucket)

    # -- object API -------------------------------------------------------------

    def _object_api(self, request, bucket, key):
        self._check_bucket(bucket)
        self._authenticate(request, bucket, key)
        if request.method == "PUT":
            return self._put_object(request, key)
        if request.method == "DELETE":
            return self._delete_object(key)
        return self._get_object(key)

    def _authenticate(self, request, bucket, key):
        """Verify a V1 ``Authorization`` header or a V1 signed-URL query."""
        unsupported = [name for name in request.args
                       if name not in _SUBRESOURCES and name not in _SIGNED_URL_PARAMS]
        if unsupported:
            raise OSSError(501, "NotImplemented",
                           f"FakeOSS does not support query parameters {unsupported}")
        if "Authorization" in request.headers:
            access_key_id, signature = _parse_authorization(request.headers["Authorization"])
            date = request.headers.get("x-oss-date") or request.headers.get("Date", "")
        elif all(name in request.args for name in _SIGNED_URL_PARAMS):
            access_key_id, signature = request.args["OSSAccessKeyId"], request.args["Signature"]
            date = self._check_url_expiry(request.args["Expires"])
        else:
            raise OSSError(403, "AccessDenied",
                           "You have no right to access this object because of bucket acl.")
        self._check_access_key_id(access_key_id)
        string_to_sign = _string_to_sign(request, date, f"/{bucket}/{key}")
        if not hmac.compare_digest(signature, _sign(self.access_key_secret, string_to_sign)):
            raise OSSError(403, "SignatureDoesNotMatch",
                           "The request signature we calculated does not match the signature "
                           "you provided. Check your key and signing method.",
                           OSSAccessKeyId=access_key_id,
                           StringToSign=string_to_sign.decode("utf-8", "replace"))

    def _check_url_expiry(self, expires):
        """Return the ``Expires`` value, which signed URLs sign in place of Date."""
        if not expires.isdigit():
            raise OSSError(400, "InvalidArgument", "Expires must be epoch seconds.")
        if self.clock() > int(expires):
            raise OSSError(403, "AccessDenied", "Request has expired.",
                           Expires=expires, ServerTime=int(self.clock()))
        return expires

    def _check_access_key_id(self, access_key_id):
        if access_key_id != self.access_key_id:
            raise OSSError(403, "InvalidAccessKeyId",
                           "The OSS Access Key Id you provided does not exist in our records.",
                           OSSAccessKeyId=access_key_id)

    def _put_object(self, request, key):
        data = request.get_data()
        content_md5 = request.headers.get("Content-MD5")
        if content_md5 and content_md5 != base64.b64encode(hashlib.md5(data).digest()).decode():
            raise OSSError(400, "InvalidDigest", "The Content-MD5 you specified was invalid.")
        content_type = request.headers.get("Content-Type") or "application/octet-stream"
        return Response(status=200, headers={"ETag": f'"{self._store(key, data, content_type)}"'})

    def _get_object(self, key):
        """GET and HEAD alike; werkzeug drops the body of a HEAD response.

        No ``x-oss-hash-crc64ecma`` header is sent, so oss2 skips CRC checks.
        """
        with self._lock:
            stored = self.objects.get(key)
            modified = self._modified.get(key, self.clock())
        if stored is None:
            raise OSSError(404, "NoSuchKey", "The specified key does not exist.", Key=key)
        response = Response(stored["data"], status=200)
        response.headers.update({"Content-Type": stored["content_type"],
                                 "ETag": f'"{stored["etag"]}"',
                                 "Last-Modified": http_date(modified),
                                 "x-oss-object-type": "Normal"})
        return response

    def _delete_object(self, key):
        """OSS answers 204 whether or not the key existed."""
        with self._lock:
            self.objects.pop(key, None)
            self._modified.pop(key, None)
        return Response(status=204)

    # -- PostObject ---------------------------------------------------------------

    def _post_object(self, request, bucket, entry):
        """Browser/mini-program form upload, checked like OSS checks it."""
        self._check_bucket(bucket)
        upload = _parse_form(request)
        key = entry["key"] = upload.fields.get("key")
        if not key:
            raise OSSError(400, "InvalidArgument", "The key field is required.")
        self._check_post_signature(upload.fields)
        policy = _decode_policy(upload.fields["policy"])
        self._check_policy_expiration(policy["expiration"])
        content_type = (upload.fields.get("content-type") or upload.content_type
                        or "application/octet-stream")
        values = {**upload.fields, "bucket": bucket, "content-type": content_type}
        for condition in policy["conditions"]:
            _check_condition(condition, values, len(upload.data))
        if "callback" in upload.fields:
            raise OSSError(501, "NotImplemented", "FakeOSS does not call upload callbacks.")
        if upload.fields.get("x-oss-forbid-overwrite", "").lower() == "true" and key in self.objects:
            raise OSSError(409, "FileAlreadyExists",
                           "The object you specified already exists and can not be overwritten.")
        etag = self._store(key, upload.data, content_type)
        return self._post_response(upload.fields.get("success_action_status"), bucket, key, etag)

    def _check_post_signature(self, fields):
        """The form signs the base64 policy string itself, not the decoded JSON."""
        if not all(fields.get(name) for name in _POST_AUTH_FIELDS):
            raise OSSError(403, "AccessDenied",
                           "OSSAccessKeyId, policy and Signature must be sent together.")
        self._check_access_key_id(fields["ossaccesskeyid"])
        policy = fields["policy"]
        if not hmac.compare_digest(fields["signature"],
                                   _sign(self.access_key_secret, policy.encode())):
            raise OSSError(403, "SignatureDoesNotMatch",
                           "The request signature we calculated does not match the signature "
                           "you provided. Check your key and signing method.",
                           OSSAccessKeyId=fields["ossaccesskeyid"], StringToSign=policy)

    def _check_policy_expiration(self, expiration):
        """Parse the ISO 8601 UTC expiration and compare it with ``clock``."""
        for layout in _EXPIRATION_FORMATS:
            try:
                parsed = datetime.strptime(str(expiration), layout)
                break
            except ValueError:
                continue
        else:
            raise _invalid_policy(f"expiration {expiration!r} is not ISO 8601 UTC.")
        if self.clock() > parsed.replace(tzinfo=UTC).timestamp():
            raise OSSError(403, "AccessDenied", "Invalid according to Policy: Policy expired.")

    def _post_response(self, success_action_status, bucket, key, etag):
        """204 by default; 200 empty; 201 with the PostResponse XML."""
        headers = {"ETag": f'"{etag}"'}
        if success_action_status == "200":
            return Response(status=200, headers=headers)
        if success_action_status != "201":
            return Response(status=204, headers=headers)
        location = f"{self.url}/{bucket}/{quote(key)}"
        xml = ('<?xml version="1.0" encoding="UTF-8"?>\n<PostResponse>'
               f"<Bucket>{escape(bucket)}</Bucket><Location>{escape(location)}</Location>"
               f"<Key>{escape(key)}</Key><ETag>\"{etag}\"</ETag></PostResponse>")
        return Response(xml, status=201, headers=headers, content_type="application/xml")
