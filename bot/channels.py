"""Send one outbox notification over its channel. Channels are leaves: they send, they do not
decide who gets what. Each returns an Outcome the job records.

Without credentials for a channel the message is recorded (database + log) instead of sent.
"""
import logging
import re
import time
import uuid
from dataclasses import dataclass

import requests
from wechatpy.exceptions import WeChatClientException

from app.models import Supplier
from bot import render, wechat

log = logging.getLogger(__name__)

ROBOT_PER_MINUTE = 20
WECOM_TEXT_BYTES = 2048
ROBOT_MARKDOWN_BYTES = 4096

# Subscribe errors that are our own fault: retrying cannot help, the accept was not used.
SUBSCRIBE_PERMANENT = {40003, 40037, 47003, 41030}
_FIELD = re.compile(r"(data\.[A-Za-z_]+[0-9]*|miniprogram_state|lang|page|touser|template_id)")


@dataclass
class Outcome:
    status: str  # sent | recorded | retry | wait | no_quota | failed
    error: str = None
    # For subscribe messages: what to do with the quota unit taken before sending.
    quota: str = "keep"  # keep | return | clear
    wait: float = None  # status 'wait': seconds until the channel's window opens again


def _recorded(note):
    # Which row, not what it says: recipients (openids, staff ids) and payloads stay in the table.
    log.info(
        "notification %s recorded, not sent (channel not configured)", note.id,
        extra={"channel": note.channel, "template_id": note.template_id},
    )
    return Outcome("recorded")


# --- rate-limit pauses: after a 45009 the whole channel waits, shared by every worker -----------

def _pause_key(name):
    return f"wechat:pause:{name}"


def paused_for(ext, name):
    """Seconds the channel `name` must still wait after a 45009 (0: go ahead)."""
    if ext.redis is not None:
        ms = ext.redis.pttl(_pause_key(name))
        return ms / 1000 if ms and ms > 0 else 0
    return max(0, ext._wechat.setdefault("pauses", {}).get(name, 0) - time.time())


def pause(ext, name):
    """WeChat said 45009: no call on this channel until the pause is over; the rows wait (not an
    attempt, not a drop), so a rate limit never turns into a loop of refused calls."""
    seconds = ext.config["WECHAT_RATE_LIMIT_PAUSE_SECONDS"]
    if ext.redis is not None:
        ext.redis.set(_pause_key(name), 1, px=int(seconds * 1000), nx=True)
    else:  # one process (the embedded default): this app's own table
        pauses = ext._wechat.setdefault("pauses", {})
        if pauses.get(name, 0) < time.time():
            pauses[name] = time.time() + seconds
    return max(paused_for(ext, name), 1)


def _wechat_error(ext, channel, exc, permanent):
    """Our own mistakes fail at once; a rate limit waits for its window; anything else (busy,
    5xx, 43108) is retried with back-off."""
    code = exc.errcode
    if code == 45009:
        return Outcome("wait", f"wechat 45009: {exc.errmsg}", quota="return", wait=pause(ext, channel))
    if code in permanent:
        return Outcome("failed", f"wechat {code}: {exc.errmsg}", quota="return")
    if code is None:  # wechatpy's wrapper of an HTTP error status
        response = getattr(exc, "response", None)
        return Outcome("retry", f"wechat http {getattr(response, 'status_code', '?')}", quota="return")
    return Outcome("retry", f"wechat {code}: {exc.errmsg}", quota="return")


def _field_of(errmsg):
    """47003's errmsg names the field ("argument invalid! data.thing3.value invalid")."""
    match = _FIELD.search(errmsg or "")
    return match.group(1) if match else "unknown"


def send_subscribe(ext, note):
    """Mini-program one-time subscribe message. The caller has already taken one quota unit."""
    if not ext.config["WECHAT_ENABLED"]:
        return _recorded(note)
    wait = paused_for(ext, "mp_subscribe")
    if wait:
        return Outcome("wait", "waiting for the 45009 window", quota="return", wait=wait)
    body = {
        "touser": note.recipient,
        "template_id": note.template_id,
        "data": render.fit_subscribe_data(note.payload["data"]),
        "miniprogram_state": note.payload.get("miniprogram_state", "formal"),
        "lang": "zh_CN",
    }
    if note.page:
        body["page"] = note.page
    try:
        # Raw post: wechatpy's send_subscribe_message lacks miniprogram_state and lang (#817).
        wechat.mini_program(ext).post("message/subscribe/send", data=body)
    except WeChatClientException as exc:
        if exc.errcode == 43101:
            return Outcome("no_quota", "wechat 43101: user has no accepts left", quota="clear")
        if exc.errcode == 47003:
            field = _field_of(exc.errmsg)
            return Outcome("failed", f"wechat 47003 field {field}: {exc.errmsg}", quota="return")
        return _wechat_error(ext, "mp_subscribe", exc, SUBSCRIBE_PERMANENT)
    except wechat.WeChatUnavailable as exc:
        return Outcome("retry", str(exc), quota="return")
    return Outcome("sent")


def send_wecom_app(ext, note):
    """WeCom app message (markdown) to named staff. Unknown members are written on the row."""
    cfg = ext.config
    if not cfg["WECOM_ENABLED"]:
        return _recorded(note)
    wait = paused_for(ext, "wecom_app")
    if wait:
        return Outcome("wait", "waiting for the 45009 window", wait=wait)
    body = {
        "touser": note.recipient,
        "toparty": "",
        "totag": "",
        "agentid": cfg["WECOM_AGENT_ID"],
        "msgtype": "markdown",
        "markdown": {"content": render.cut_bytes(note.payload["content"], WECOM_TEXT_BYTES)},
    }
    try:
        result = wechat.wecom(ext).post("message/send", data=body)
    except WeChatClientException as exc:
        if exc.errcode == 81013:
            return Outcome("failed", f"wecom 81013: no such WeCom user: {note.recipient}"[:255])
        return _wechat_error(ext, "wecom_app", exc, {40056, 45002})
    except wechat.WeChatUnavailable as exc:
        return Outcome("retry", str(exc))
    if result.get("invaliduser"):
        log.warning("wecom recipients unknown", extra={"invaliduser": result["invaliduser"]})
        return Outcome("sent", f"no such WeCom user: {result['invaliduser']}"[:255])
    return Outcome("sent")


# Atomically: forget slots older than the window; take one if fewer than `limit` are in it,
# else answer when the oldest leaves. One script, so two workers never both take the 20th slot.
_SLOT_SCRIPT = """
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('ZADD', KEYS[1], now, ARGV[4])
  redis.call('EXPIRE', KEYS[1], math.ceil(window) + 60)
  return '0'
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return tostring(tonumber(oldest[2]) + window - now)
"""


def _robot_slot(ext, key):
    """Rolling window per robot key (20 messages per WECOM_ROBOT_WINDOW_SECONDS), shared through
    Redis by every worker. Returns seconds to wait, 0 when a slot was taken."""
    window = ext.config["WECOM_ROBOT_WINDOW_SECONDS"]
    now = time.time()
    if ext.redis is None:
        slots = ext._wechat.setdefault("robot_slots", {})
        stamps = slots[key] = [t for t in slots.get(key, []) if t > now - window]
        if len(stamps) < ROBOT_PER_MINUTE:
            stamps.append(now)
            return 0
        return max(0.05, stamps[0] + window - now)
    if "robot_slot" not in ext._wechat:
        ext._wechat["robot_slot"] = ext.redis.register_script(_SLOT_SCRIPT)
    answer = ext._wechat["robot_slot"](keys=[f"wecom:robot:{key[-8:]}"],
                                       args=[now, window, ROBOT_PER_MINUTE, uuid.uuid4().hex])
    return max(0.05, float(answer)) if float(answer) > 0 else 0


def _robot_key(cfg, recipient):
    """Whose group robot: "supplier:<id>" is that supplier's own group (its key is kept on the
    supplier, never in the outbox); anything else is the company's WECOM_ROBOT_KEY. Suppliers'
    robots are used by a deployment that uses WeCom; without it (the embedded default) their
    messages are recorded like every other."""
    kind, _, party_id = recipient.partition(":")
    if kind == "supplier":
        if not cfg["WECOM_ENABLED"]:
            return None
        supplier = Supplier.get_or_none(Supplier.id == int(party_id))
        return supplier.robot_key if supplier is not None else None
    return cfg["WECOM_ROBOT_KEY"]


def send_wecom_robot(ext, note):
    """WeCom group robot webhook (no token; key in the URL; 20 messages a minute). A full window
    or a 45009 puts the row back until the window opens: a queue, never a drop."""
    cfg = ext.config
    key = _robot_key(cfg, note.recipient)
    if not key:
        return _recorded(note)
    wait = paused_for(ext, "wecom_robot") or _robot_slot(ext, key)
    if wait:
        return Outcome("wait", "robot window full", wait=wait)
    content = render.cut_bytes(note.payload["content"], ROBOT_MARKDOWN_BYTES)
    try:
        res = requests.post(
            f"{cfg['WECOM_API_BASE_URL'].rstrip('/')}/cgi-bin/webhook/send",
            params={"key": key},
            json={"msgtype": "markdown", "markdown": {"content": content}},
            timeout=cfg["WECHAT_HTTP_TIMEOUT"],
        )
        res.raise_for_status()
        result = res.json()
    except requests.HTTPError as exc:
        return Outcome("retry", f"robot http {exc.response.status_code}")
    except (requests.RequestException, ValueError) as exc:
        return Outcome("retry", f"robot request failed: {type(exc).__name__}")
    code = result.get("errcode", -1)
    if code == 0:
        return Outcome("sent")
    if code == 93000:
        return Outcome("failed", "robot key invalid (93000)")
    if code == 45009:
        return Outcome("wait", "robot 45009: api freq out of limit", wait=pause(ext, "wecom_robot"))
    return Outcome("retry", f"robot {code}: {result.get('errmsg')}")


SENDERS = {
    "mp_subscribe": send_subscribe,
    "wecom_app": send_wecom_app,
    "wecom_robot": send_wecom_robot,
}
