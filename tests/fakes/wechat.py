"""Loopback fake of the WeChat mini-program and WeCom HTTP APIs (reference/wechat-platform.md §3, §7.4).

It is stateful and strict on purpose: tokens expire and overlap like the real ones, subscribe
values are validated per type and consume one-time quota, WeCom drops messages above the
per-member rate silently, and the group robot rate-limits per key. Errors come back as HTTP 200
with {"errcode", "errmsg"}, as the platform does, so wechatpy raises the same exceptions it
would in production. Request bodies are parsed from the raw bytes because wechatpy posts JSON
without a Content-Type header.

Time comes from the replaceable `clock` attribute, so tests can step over the 30-second
force-refresh spacing, the rolling per-minute limits and the 5-minute token overlap instantly.
"""
import itertools
import json
import re
import struct
import threading
import time
import unicodedata
import zlib
from collections import deque
from dataclasses import dataclass

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from .http import LoopbackServer

MP = "mini-program"
WECOM = "wecom"

TOKEN_TTL = 7200
TOKEN_OVERLAP = 300  # an old token stays valid this long after a newer one is issued
RATE_WINDOW = 60
FORCE_REFRESH_PER_DAY = 20
FORCE_REFRESH_SPACING = 30
WECOM_PER_MEMBER_PER_MINUTE = 30
ROBOT_PER_MINUTE = 20
WECOM_CONTENT_BYTES = 2048
ROBOT_CONTENT_BYTES = {"text": 2048, "markdown": 4096}
ROBOT_MSGTYPES = ("text", "markdown", "image", "news", "file")
MINIPROGRAM_STATES = ("developer", "trial", "formal")
LANGS = ("zh_CN", "en_US", "zh_HK", "zh_TW")

# The fields of the templates the product sends (README: SUBSCRIBE_TEMPLATE_IDS and "Alerts"): a
# message with any other key is a 47003, as with a real template chosen in the WeChat console.
DEFAULT_TEMPLATES = {
    "TPL_NODE_DONE": ["character_string1", "thing2", "phrase3", "time4", "thing5"],
    "TPL_DELAY": ["character_string1", "thing2", "date3", "thing4"],
}

ERRMSG = {
    -1: "system error",
    40001: "invalid credential, access_token is invalid or not latest",
    40002: "invalid grant_type",
    40003: "invalid openid",
    40008: "invalid message type",
    40013: "invalid appid",
    40014: "invalid access_token",
    40029: "invalid code",
    40037: "invalid template_id",
    40056: "invalid agentid",
    40125: "invalid appsecret",
    40169: "invalid length for scene, or the data is not json string",
    41001: "access_token missing",
    41030: "invalid page",
    42001: "access_token expired",
    43101: "user refuse to accept the msg",
    44004: "empty content",
    45002: "content size out of limit",
    45009: "api freq out of limit",
    47001: "data format error",
    81013: "user & party & tag all invalid",
    93000: "invalid webhook url",
}

_OPENID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_SCENE = re.compile(r"[0-9A-Za-z!#$&'()*+,/:;=?@\-._~]{1,32}")


def _error(code, errmsg=None):
    return {"errcode": code, "errmsg": errmsg or ERRMSG.get(code, "scripted failure")}


def _parse_json(raw):
    """The parsed body, or None when it is not JSON (callers then answer a format error)."""
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _json_response(payload):
    return Response(json.dumps(payload, ensure_ascii=False), mimetype="application/json")


def _content(body, msgtype):
    """body[msgtype]["content"] when it is a string, else None."""
    section = body.get(msgtype)
    content = section.get("content") if isinstance(section, dict) else None
    return content if isinstance(content, str) else None


def _tiny_png():
    """A valid 1×1 grey PNG: enough for callers that check the signature or open the image."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    pixels = zlib.compress(b"\x00\x80")  # one scanline: filter byte 0, one grey pixel
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


PNG_BYTES = _tiny_png()


# --- subscribe value rules (§3.4); one rule per key type, the type being key.rstrip(digits) ---

_HOUR = r"(?:[01]?[0-9]|2[0-3])"
_CLOCK = rf"{_HOUR}:[0-5][0-9](?::[0-5][0-9])?"
_YEAR = r"[0-9]{4}"
_MONTH = r"(?:0?[1-9]|1[0-2])"
_DAY = r"(?:0?[1-9]|[12][0-9]|3[01])"
_DAY_FORMS = (
    rf"{_YEAR}年{_MONTH}月{_DAY}日",
    rf"{_YEAR}年{_MONTH}月",
    rf"{_MONTH}月{_DAY}日",
    rf"{_YEAR}-{_MONTH}-{_DAY}",
    rf"{_YEAR}/{_MONTH}/{_DAY}",
    rf"{_YEAR}\.{_MONTH}\.{_DAY}",
    rf"{_YEAR}-{_MONTH}",
    rf"{_MONTH}-{_DAY}",
)
_DATE = "(?:" + "|".join(_DAY_FORMS) + ")"
_TIME_POINT = rf"(?:{_DATE}\s*)?{_CLOCK}"
_DATE_POINT = rf"{_DATE}(?:\s*{_CLOCK})?"
_TIME_VALUE = re.compile(rf"{_TIME_POINT}(?:\s*~\s*{_TIME_POINT})?")
_DATE_VALUE = re.compile(rf"{_DATE_POINT}(?:\s*~\s*{_DATE_POINT})?")
_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_LETTERS = re.compile(r"[A-Za-z]{1,32}")
_AMOUNT = re.compile(r"[¥￥$€£]?[0-9]{1,10}(?:\.[0-9]+)?元?")
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")
_CAR_NUMBER = re.compile(r"[\u4e00-\u9fffA-Za-z0-9][A-Za-z0-9]{0,6}[\u4e00-\u9fffA-Za-z0-9]?")


def _is_symbol(ch):
    """A "symbol" in WeChat's sense: neither a letter, a digit nor a Chinese character."""
    return ch == " " or unicodedata.category(ch)[0] in "PS"


def _is_cjk(ch):
    return bool(_CJK.fullmatch(ch))


VALUE_RULES = {
    "thing": lambda v: len(v) <= 20,
    "short_thing": lambda v: len(v) <= 5,
    "number": lambda v: bool(_NUMBER.fullmatch(v)) and sum(c.isdigit() for c in v) <= 32,
    "letter": lambda v: bool(_LETTERS.fullmatch(v)),
    "symbol": lambda v: len(v) <= 5 and all(_is_symbol(c) for c in v),
    "character_string": lambda v: len(v) <= 32 and v.isascii() and v.isprintable(),
    "time": lambda v: bool(_TIME_VALUE.fullmatch(v)),
    "date": lambda v: bool(_DATE_VALUE.fullmatch(v)),
    "amount": lambda v: bool(_AMOUNT.fullmatch(v)),
    "phone_number": lambda v: len(v) <= 17 and all(c in "0123456789" or _is_symbol(c) for c in v),
    "car_number": lambda v: bool(_CAR_NUMBER.fullmatch(v)),
    "name": lambda v: len(v) <= (20 if v.isascii() else 10),
    "phrase": lambda v: len(v) <= 5 and all(_is_cjk(c) for c in v),
}


def _valid_value(key, item):
    """{"value": "<non-empty string without control characters>"} that fits the key's type rule.

    Types without a rule here (enum, enum_string) depend on the template's enum list, which
    the fake does not know, so any clean string passes.
    """
    value = item.get("value") if isinstance(item, dict) else None
    if not isinstance(value, str) or not value.strip():
        return False
    if any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in value):
        return False
    rule = VALUE_RULES.get(key.rstrip("0123456789"))
    return rule is None or rule(value)


def _data_error(data, template_keys):
    if not isinstance(data, dict):
        return _error(47003, "argument invalid! data invalid")
    for key, item in data.items():
        if key not in template_keys or not _valid_value(key, item):
            return _error(47003, f"argument invalid! data.{key}.value invalid")
    return None


def _option_error(body, field, allowed):
    if field in body and body[field] not in allowed:
        return _error(47003, f"argument invalid! {field} invalid")
    return None


@dataclass
class _Token:
    family: str  # MP or WECOM: the API family that accepts it
    origin: str  # the endpoint that issued it; a newer token only overlaps tokens of the same origin
    expires_at: float


_ROUTES = Map(
    [
        Rule("/cgi-bin/token", methods=["GET"], endpoint="token"),
        Rule("/cgi-bin/stable_token", methods=["POST"], endpoint="stable_token"),
        Rule("/cgi-bin/gettoken", methods=["GET"], endpoint="wecom_token"),
        Rule("/sns/jscode2session", methods=["GET"], endpoint="jscode2session"),
        Rule("/cgi-bin/message/subscribe/send", methods=["POST"], endpoint="subscribe_send"),
        Rule("/wxa/getwxacodeunlimit", methods=["POST"], endpoint="wxacode_unlimit"),
        Rule("/cgi-bin/message/send", methods=["POST"], endpoint="wecom_send"),
        Rule("/cgi-bin/webhook/send", methods=["POST"], endpoint="robot_send"),
    ]
)

_TOKEN_ENDPOINTS = ("token", "stable_token", "wecom_token")
_SENDS = ("subscribe_send", "wecom_send", "robot_send")

# Token-authenticated endpoints and the API family whose tokens they accept.
_BUSINESS = {"subscribe_send": MP, "wxacode_unlimit": MP, "wecom_send": WECOM}


class FakeWeChat:
    """WeChat (api.weixin.qq.com) and WeCom (qyapi.weixin.qq.com) on one loopback URL.

    Configuration is fixed at construction; `reset()` clears state and logs between tests.
    All state changes happen under one lock because the server answers on several threads.
    """

    def __init__(
        self,
        appid="wx_fake_app",
        secret="fake-app-secret",
        corp_id="ww_fake_corp",
        corp_secret="fake-corp-secret",
        agent_id=1000002,
        robot_keys=("fake-robot-key",),
        wecom_users=("zhangsan", "lisi", "wangwu"),
        templates=None,
    ):
        self.appid = appid
        self.secret = secret
        self.corp_id = corp_id
        self.corp_secret = corp_secret
        self.agent_id = agent_id
        self.robot_keys = tuple(robot_keys)
        self.wecom_users = tuple(wecom_users)
        self.templates = {tid: list(keys) for tid, keys in (templates or DEFAULT_TEMPLATES).items()}
        self.clock = time.time
        self._lock = threading.RLock()
        # Never reset: a token cached before reset() must not collide with one issued after it.
        self._serial = itertools.count(1)
        self._server = LoopbackServer(self._wsgi_app)
        self.reset()

    # --- lifecycle ---

    @property
    def url(self):
        return self._server.url

    def start(self):
        self._server.start()
        return self

    def stop(self):
        self._server.stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()

    def reset(self):
        """Forget tokens, codes, quota, rate windows, scripted failures and logs.

        Scripted failures: `fail_business_calls_with` (an errcode for every token-authenticated
        call), `fail_token_calls_with` (an errcode, or "outage" for HTTP 503, for every token endpoint),
        `fail_next(...)` (the next n sends answer one failure each). `latency` (seconds) delays every
        send's answer, concurrently; `robot_window` shortens the robot's 60 s window for fast tests;
        `pages` are the mini program's pages a subscribe message may open (any other is a 41030)."""
        with self._lock:
            self.fail_business_calls_with = None
            self.fail_token_calls_with = None
            self.latency = 0
            self.robot_window = RATE_WINDOW
            self.timeout_seconds = 2.0
            # The published mini program's pages: a subscribe message opening any other is a 41030.
            self.pages = {"pages/order/detail", "pages/task/detail", "pages/index/index"}
            self._scripted = deque()
            self.robot_refusals = 0
            self.token_requests = []
            self.login_requests = []
            self.business_requests = []
            self.subscribe_messages = []
            self.wecom_messages = []
            self.robot_messages = []
            self._tokens = {}
            self._current_stable = None
            self._current_wecom = None
            self._force_refreshes = []
            self._login_codes = {}
            self._quota = {}
            self._windows = {}

    # --- test controls ---

    def add_login_code(self, code, openid, session_key="c2Vzc2lvbmtleQ==", unionid=None):
        """Register a wx.login code; jscode2session accepts it once."""
        session = {"openid": openid, "session_key": session_key}
        if unionid is not None:
            session["unionid"] = unionid
        with self._lock:
            self._login_codes[code] = session

    def grant_quota(self, openid, template_id, n=1):
        """Record n subscribe acceptances, as wx.requestSubscribeMessage would on the platform."""
        with self._lock:
            self._quota[(openid, template_id)] = self._quota.get((openid, template_id), 0) + n

    def quota(self, openid, template_id):
        with self._lock:
            return self._quota.get((openid, template_id), 0)

    def fail_next(self, failure, n=1):
        """The next n sends (subscribe, WeCom app or robot) fail, each with `failure`: an errcode
        (answered as WeChat does), "5xx" (HTTP 502 without JSON) or "timeout" (no answer for
        `timeout_seconds`, then an error: longer than the client waits). Nothing is delivered."""
        with self._lock:
            self._scripted.extend([failure] * n)

    def expire_tokens(self):
        """Make every token issued so far expired (42001); token endpoints then issue new ones."""
        with self._lock:
            now = self.clock()
            for token in self._tokens.values():
                token.expires_at = min(token.expires_at, now)

    # --- HTTP plumbing ---

    def _wsgi_app(self, environ, start_response):
        request = Request(environ)
        try:
            endpoint, _ = _ROUTES.bind_to_environ(environ).match()
        except HTTPException as exc:
            return exc(environ, start_response)
        if endpoint in _SENDS and self.latency:
            time.sleep(self.latency)  # outside the lock: calls wait concurrently, as on the platform
        with self._lock:
            scripted = self._scripted.popleft() if endpoint in _SENDS and self._scripted else None
            if scripted is not None:
                self.business_requests.append({"path": request.path, "scripted": scripted})
        if scripted == "timeout":
            time.sleep(self.timeout_seconds)
            return Response("gateway timeout", status=504)(environ, start_response)
        if scripted == "5xx":
            return Response("bad gateway", status=502)(environ, start_response)
        if scripted is not None:
            return _json_response(_error(scripted))(environ, start_response)
        with self._lock:
            if endpoint in _BUSINESS:
                result = self._business_call(request, endpoint)
            elif endpoint in _TOKEN_ENDPOINTS and self.fail_token_calls_with is not None:
                result = self._token_refusal(request)
            else:
                result = getattr(self, f"_on_{endpoint}")(request)
        response = result if isinstance(result, Response) else _json_response(result)
        return response(environ, start_response)

    def _business_call(self, request, endpoint):
        """Log the call, refuse it when scripted or the token is bad, else run the handler."""
        body = _parse_json(request.get_data())
        entry = {"path": request.path, "params": request.args.to_dict(), "body": body}
        self.business_requests.append(entry)
        refusal = self._refusal(request.args.get("access_token"), _BUSINESS[endpoint])
        result = refusal or getattr(self, f"_on_{endpoint}")(body)
        entry["errcode"] = result.get("errcode", 0) if isinstance(result, dict) else 0
        return result

    def _refusal(self, value, family):
        if self.fail_business_calls_with is not None:
            return _error(self.fail_business_calls_with)
        if not value:
            return _error(41001)
        token = self._tokens.get(value)
        if token is None:
            return _error(40001 if family == MP else 40014)
        if token.family != family:
            return _error(40014)
        if self.clock() >= token.expires_at:
            return _error(42001)
        return None

    # --- tokens ---

    def _token_refusal(self, request):
        """Scripted token failure, still logged as a token request: an errcode (45009: the
        quota is spent) answered as WeChat does, or "outage": an HTTP 503 without a JSON body."""
        self.token_requests.append({"path": request.path, "force_refresh": None, "refused": True})
        if self.fail_token_calls_with == "outage":
            return Response("service unavailable", status=503)
        return _error(self.fail_token_calls_with)

    def _issue(self, prefix, family, origin):
        value = f"{prefix}{next(self._serial)}"
        self._tokens[value] = _Token(family, origin, self.clock() + TOKEN_TTL)
        return value

    def _remaining(self, value):
        return max(0, int(self._tokens[value].expires_at - self.clock()))

    def _overlap_older(self, origin):
        """A new token shortens the life of older ones from the same endpoint to 5 minutes."""
        limit = self.clock() + TOKEN_OVERLAP
        for token in self._tokens.values():
            if token.origin == origin:
                token.expires_at = min(token.expires_at, limit)

    def _app_credentials_error(self, grant_type, appid, secret, bad_secret_code):
        if grant_type != "client_credential":
            return _error(40002)
        if appid != self.appid:
            return _error(40013)
        if secret != self.secret:
            return _error(bad_secret_code)
        return None

    def _on_token(self, request):
        args = request.args
        self.token_requests.append({"path": request.path, "force_refresh": False})
        error = self._app_credentials_error(args.get("grant_type"), args.get("appid"), args.get("secret"), 40001)
        if error:
            return error
        self._overlap_older("token")
        return {"access_token": self._issue("MPTOKEN", MP, "token"), "expires_in": TOKEN_TTL}

    def _on_stable_token(self, request):
        """The same token for everyone until it is within 5 minutes of expiry or force-refreshed."""
        body = _parse_json(request.get_data())
        body = body if isinstance(body, dict) else {}
        force = body.get("force_refresh") is True
        self.token_requests.append({"path": request.path, "force_refresh": force})
        error = self._app_credentials_error(body.get("grant_type"), body.get("appid"), body.get("secret"), 40125)
        if error:
            return error
        if force:
            error = self._force_refresh_refusal()
            if error:
                return error
        current = self._current_stable
        if force or current is None or self._remaining(current) <= TOKEN_OVERLAP:
            self._overlap_older("stable_token")
            current = self._current_stable = self._issue("MPSTABLE", MP, "stable_token")
        return {"access_token": current, "expires_in": self._remaining(current)}

    def _force_refresh_refusal(self):
        """At most 20 forced refreshes per (UTC) day, at least 30 s apart; counts the accepted one."""
        now = self.clock()
        today = [t for t in self._force_refreshes if t // 86400 == now // 86400]
        if len(today) >= FORCE_REFRESH_PER_DAY:
            return _error(45009, "reach max api daily quota limit")
        if self._force_refreshes and now - self._force_refreshes[-1] < FORCE_REFRESH_SPACING:
            return _error(45009, "reach max api minute quota limit: force_refresh needs 30s spacing")
        self._force_refreshes.append(now)
        return None

    def _on_wecom_token(self, request):
        """WeCom returns the same token while it is valid and a new one once it has expired."""
        args = request.args
        self.token_requests.append({"path": request.path, "force_refresh": False})
        if args.get("corpid") != self.corp_id:
            return _error(40013, "invalid corpid")
        if args.get("corpsecret") != self.corp_secret:
            return _error(40001, "invalid secret")
        current = self._current_wecom
        if current is None or self._remaining(current) == 0:
            current = self._current_wecom = self._issue("WWTOKEN", WECOM, "gettoken")
        return {"errcode": 0, "errmsg": "ok", "access_token": current, "expires_in": self._remaining(current)}

    # --- mini program ---

    def _on_jscode2session(self, request):
        """wx.login code → session; an access_token parameter is ignored, like WeChat does
        (logged in login_requests, so tests can see whether one was sent)."""
        args = request.args
        self.login_requests.append({"params": sorted(args)})
        if args.get("appid") != self.appid:
            return _error(40013)
        if args.get("secret") != self.secret:
            return _error(40125)
        if args.get("grant_type") != "authorization_code":
            return _error(40002)
        session = self._login_codes.pop(args.get("js_code", ""), None)
        return dict(session) if session else _error(40029)

    def _on_subscribe_send(self, body):
        if not isinstance(body, dict):
            return _error(47001)
        touser = body.get("touser")
        if not isinstance(touser, str) or not _OPENID.fullmatch(touser):
            return _error(40003)
        template_id = body.get("template_id")
        keys = self.templates.get(template_id) if isinstance(template_id, str) else None
        if keys is None:
            return _error(40037)
        error = (
            _option_error(body, "miniprogram_state", MINIPROGRAM_STATES)
            or _option_error(body, "lang", LANGS)
            or _data_error(body.get("data"), keys)
        )
        if error:
            return error
        page = body.get("page")
        if page is not None and (not isinstance(page, str) or page.split("?")[0] not in self.pages):
            return _error(41030)
        if self._quota.get((touser, template_id), 0) <= 0:
            return _error(43101)
        self._quota[(touser, template_id)] -= 1
        self.subscribe_messages.append(body)
        return {"errcode": 0, "errmsg": "ok", "msgid": next(self._serial)}

    def _on_wxacode_unlimit(self, body):
        scene = body.get("scene") if isinstance(body, dict) else None
        if not isinstance(scene, str) or not _SCENE.fullmatch(scene):
            return _error(40169)
        return Response(PNG_BYTES, mimetype="image/png")

    # --- WeCom ---

    def _on_wecom_send(self, body):
        """App message: unknown members are reported but do not fail the call; members over
        30 messages a minute are dropped without any error, as WeCom does."""
        if not isinstance(body, dict):
            return _error(47001)
        if str(body.get("agentid")) != str(self.agent_id):
            return _error(40056)
        msgtype = body.get("msgtype")
        if msgtype not in ("text", "markdown"):
            return _error(40008)
        content = _content(body, msgtype)
        if not content:
            return _error(44004)
        if len(content.encode("utf-8")) > WECOM_CONTENT_BYTES:
            return _error(45002)
        valid, invalid = self._split_members(body.get("touser"))
        if not valid:
            return _error(81013)
        delivered = [m for m in valid if self._admit(("wecom", self.agent_id, m), WECOM_PER_MEMBER_PER_MINUTE)]
        self.wecom_messages.append({**body, "delivered_to": delivered})
        return {
            "errcode": 0,
            "errmsg": "ok",
            "invaliduser": "|".join(invalid),
            # The fake has no departments or tags, so any requested are invalid.
            "invalidparty": str(body.get("toparty") or ""),
            "invalidtag": str(body.get("totag") or ""),
            "unlicenseduser": "",
            "msgid": f"WWMSG{next(self._serial)}",
        }

    def _split_members(self, touser):
        """("a|b|@all") → (known members, unknown ids), each in request order without repeats."""
        names = list(dict.fromkeys(n for n in touser.split("|") if n)) if isinstance(touser, str) else []
        if "@all" in names:
            return list(self.wecom_users), []
        return [n for n in names if n in self.wecom_users], [n for n in names if n not in self.wecom_users]

    def _on_robot_send(self, request):
        """Group robot: the key is the only credential. Every call past the key check counts
        toward the 20-per-minute limit, except the ones that limit itself refuses."""
        key = request.args.get("key", "")
        if key not in self.robot_keys:
            return _error(93000)
        if not self._admit(("robot", key), ROBOT_PER_MINUTE, self.robot_window):
            self.robot_refusals += 1
            return _error(45009)
        body = _parse_json(request.get_data())
        if not isinstance(body, dict):
            return _error(47001)
        msgtype = body.get("msgtype")
        if msgtype not in ROBOT_MSGTYPES:
            return _error(40008)
        if msgtype in ROBOT_CONTENT_BYTES:
            content = _content(body, msgtype)
            if not content:
                return _error(44004)
            if len(content.encode("utf-8")) > ROBOT_CONTENT_BYTES[msgtype]:
                return _error(45002)
        self.robot_messages.append({**body, "key": key})
        return {"errcode": 0, "errmsg": "ok"}

    def _admit(self, window_key, limit, window=RATE_WINDOW):
        """Count one event in a rolling window (60 s); False (and not counted) when it is full."""
        now = self.clock()
        stamps = self._windows.setdefault(window_key, deque())
        while stamps and stamps[0] <= now - window:
            stamps.popleft()
        if len(stamps) >= limit:
            return False
        stamps.append(now)
        return True
