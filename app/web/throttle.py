"""Staff login throttling: failures counted per (username, address) and per address.

Five failures for one username from one address, or twenty from one address whatever the
usernames, lock that pair or address for LOCK_SECONDS (429). A username alone is never locked:
an attacker elsewhere cannot keep a manager out, and the manager's own address stays usable.
Counts live in Redis when configured (shared by every web process), else in the app (the
embedded default is one process).
"""
import threading
import time

from flask import request

from app.extensions import current
from app.web.errors import ApiError

LOCK_SECONDS = 15 * 60
PAIR_LIMIT = 5
ADDRESS_LIMIT = 20
_lock = threading.Lock()


def _keys(username):
    address = request.remote_addr or "unknown"
    return ((f"login-fail:{username.lower()}:{address}", PAIR_LIMIT), (f"login-fail-ip:{address}", ADDRESS_LIMIT))


def _local():
    """key → (count, first failure time), for an app without Redis."""
    return current().__dict__.setdefault("login_failures", {})


def _count(key):
    redis = current().redis
    if redis is not None:
        return int(redis.get(key) or 0)
    with _lock:
        count, since = _local().get(key, (0, 0))
    return count if time.time() - since < LOCK_SECONDS else 0


def refuse_if_locked(username):
    """429 before the password is even checked, while too many failures stand."""
    for key, limit in _keys(username):
        if _count(key) >= limit:
            raise ApiError(429, "login_locked", f"登录失败次数过多，请 {LOCK_SECONDS // 60} 分钟后再试",
                           extra={"retry_after": LOCK_SECONDS})


def failed(username):
    redis = current().redis
    for key, _ in _keys(username):
        if redis is not None:
            with redis.pipeline() as pipe:
                pipe.set(key, 0, ex=LOCK_SECONDS, nx=True)  # the window starts at the first failure
                pipe.incr(key)
                pipe.execute()
        else:
            with _lock:
                count, since = _local().get(key, (0, 0))
                if time.time() - since >= LOCK_SECONDS:
                    count, since = 0, time.time()
                _local()[key] = (count + 1, since)


def succeeded(username):
    """A right password clears this pair's count (not the address's: spraying stays counted)."""
    key, _ = _keys(username)[0]
    redis = current().redis
    if redis is not None:
        redis.delete(key)
    else:
        with _lock:
            _local().pop(key, None)
