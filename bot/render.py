"""Fit message content into WeChat's field limits (reference/wechat-platform.md §3.4, §3.8, §3.9).

One bad subscribe field rejects the whole message (47003), so values are cleaned and cut
here, by code points, before sending; WeCom limits are in UTF-8 bytes.
"""
import re

# Subscribe value limits by key type (the key minus its trailing digits).
SUBSCRIBE_LIMITS = {
    "thing": 20,
    "number": 32,
    "letter": 32,
    "symbol": 5,
    "character_string": 32,
    "phone_number": 17,
    "car_number": 8,
    "name": 10,
    "phrase": 5,
}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Emoji and joiners: no official rule, and a ZWJ sequence counts as several characters.
_EMOJI = re.compile("[\U0001F000-\U0001FAFF\u2600-\u27BF\u200d\ufe0f]")
_NOT_ASCII = re.compile(r"[^\x20-\x7e]")
_NOT_CHINESE = re.compile(r"[^\u4e00-\u9fff]")


def fit_subscribe_value(key, value):
    kind = key.rstrip("0123456789")
    text = _CONTROL.sub(" ", str(value)).strip()
    if kind in ("thing", "name"):
        text = _EMOJI.sub("", text)
    if kind == "character_string":
        text = _NOT_ASCII.sub("", text)
    if kind == "phrase":
        text = _NOT_CHINESE.sub("", text)
    limit = SUBSCRIBE_LIMITS.get(kind)
    if limit and len(text) > limit:
        text = text[: limit - 1] + "…" if kind == "thing" else text[:limit]
    return text or ("无" if kind == "phrase" else "-")


def fit_subscribe_data(data):
    """{"thing1": "很长的名字…", …} → {"thing1": {"value": "…"}, …}, every value valid."""
    return {key: {"value": fit_subscribe_value(key, value)} for key, value in data.items()}


def cut_bytes(text, limit):
    """Cut UTF-8 text to at most `limit` bytes without splitting a character."""
    raw = text.encode("utf-8")
    if len(raw) <= limit:
        return text
    return raw[: limit - 3].decode("utf-8", "ignore") + "…"
