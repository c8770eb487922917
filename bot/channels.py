"""Send one outbox notification over its channel. Channels are leaves: they send, they do not
decide who gets what. Each returns an Outcome the job records.

Without credentials for a channel the message is recorded (database + log) instead of sent.
"""
import logging
import time
from dataclasses import dataclass

import requests
from wechatpy.exceptions import WeChatClientException

from bot import render, wechat

log = logging.getLogger(__name__)

ROBOT_PER_MINUTE = 20
WECOM_TEXT_BYTES = 2048
ROBOT_MARKDOWN_BYTES = 4096

# Subscribe errors that are our own fault: retrying cannot help, the accept was not used.
SUBSCRIBE_PERMANENT = {40003, 40037, 47003, 41030}


@dataclass
class Outcome:
    status: str  # sent | recorded | retry | no_quota | failed
    error: str = None
    # For subscribe messages: what to do with the quota unit taken before sending.
    quota: str = "keep"  # keep | return | clear


def _recorded(note):
    # Which row, not what it says: recipients (openids, staff ids) and payloads stay in the table.
    log.info(
        "notification %s recorded, not sent (channel not configured)", note.id,
        extra={"channel": note.channel, "template_id": note.template_id},
    )
    return Outcome("recorded")


def _wechat_error(exc, permanent):
    """Our own mistakes fail at once; anything else (busy, rate limits, 43108) is retried later."""
    status = "failed" if exc.errcode in permanent else "retry"
    return Outcome(status, f"wechat {exc.errcode}: {exc.errmsg}", quota="return")


def send_subscribe(ext, note):
    """Mini-program one-time subscribe message. The caller has already taken one quota unit."""
    if not ext.config["WECHAT_ENABLED"]:
        return _recorded(note)
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
        return _wechat_error(exc, SUBSCRIBE_PERMANENT)
    except wechat.WeChatUnavailable as exc:
        return Outcome("retry", str(exc), quota="return")
    return Outcome("sent")


def send_wecom_app(ext, note):
    """WeCom app message (markdown) to named staff."""
    cfg = ext.config
    if not cfg["WECOM_ENABLED"]:
        return _recorded(note)
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
        return _wechat_error(exc, {81013, 40056, 45002})
    except wechat.WeChatUnavailable as exc:
        return Outcome("retry", str(exc))
    if result.get("invaliduser"):
        log.warning("wecom recipients unknown", extra={"invaliduser": result["invaliduser"]})
    return Outcome("sent")


def _robot_slot(ext, key):
    """Rolling 60-second window per robot key, shared through Redis: 20 messages a minute.
    Returns seconds to wait, 0 when a slot was taken."""
    if ext.redis is None:
        return 0
    name = f"wecom:robot:{key[-8:]}"
    now = time.time()
    pipe = ext.redis.pipeline()
    pipe.zremrangebyscore(name, 0, now - 60)
    pipe.zrange(name, 0, 0, withscores=True)
    pipe.zcard(name)
    _, oldest, count = pipe.execute()
    if count >= ROBOT_PER_MINUTE:
        return max(1, int(oldest[0][1] + 60 - now) + 1)
    ext.redis.zadd(name, {f"{now}": now})
    ext.redis.expire(name, 120)
    return 0


def send_wecom_robot(ext, note):
    """WeCom group robot webhook (no token; key in the URL; 20 messages a minute)."""
    cfg = ext.config
    key = cfg["WECOM_ROBOT_KEY"]
    if not key:
        return _recorded(note)
    wait = _robot_slot(ext, key)
    if wait:
        return Outcome("retry", f"robot rate limit, wait {wait}s")
    content = render.cut_bytes(note.payload["content"], ROBOT_MARKDOWN_BYTES)
    try:
        res = requests.post(
            f"{cfg['WECOM_API_BASE_URL'].rstrip('/')}/cgi-bin/webhook/send",
            params={"key": key},
            json={"msgtype": "markdown", "markdown": {"content": content}},
            timeout=cfg["WECHAT_HTTP_TIMEOUT"],
        )
        result = res.json()
    except (requests.RequestException, ValueError) as exc:
        return Outcome("retry", f"robot request failed: {type(exc).__name__}")
    code = result.get("errcode", -1)
    if code == 0:
        return Outcome("sent")
    if code == 93000:
        return Outcome("failed", "robot key invalid (93000)")
    return Outcome("retry", f"robot {code}: {result.get('errmsg')}")


SENDERS = {
    "mp_subscribe": send_subscribe,
    "wecom_app": send_wecom_app,
    "wecom_robot": send_wecom_robot,
}
