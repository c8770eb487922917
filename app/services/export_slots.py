"""How many exports may run at once: one per caller (a staff user or an ERP key), and at most
EXPORT_MAX_CONCURRENT in the whole deployment. A big export holds a sync web worker for tens of
seconds; without a cap a few of them (or one caller clicking again) take every worker.

`acquire(caller)` takes a slot or refuses at once (RateLimited `export_busy`, nothing else done).
A slot is a lease: it lapses LEASE_SECONDS after it was taken or last renewed, so a worker that dies
mid-export frees its slot by itself; the export renews it as it reads rows and sends the file
(`renewing`, `holding`). `release` is idempotent: the web edge calls it when the response ends
(finished, or the client gone) and on any error before that.

With Redis (REDIS_URL) the leases are shared by every web process and machine: a sorted set of
lease tokens scored by expiry (Redis's own clock) and one key per caller, changed only by the Lua
scripts below, so a check and its take are one step. Without Redis (the embedded default is one
process) the leases are this app's, under a thread lock.
"""
import logging
import threading
import time
import uuid

from app.domain.errors import RateLimited
from app.extensions import current

log = logging.getLogger(__name__)

LEASE_SECONDS = 60  # a dead worker's slot is free again after this
RENEW_SECONDS = 10  # a running export renews its lease at most this often
RETRY_AFTER_SECONDS = 30  # what a refused caller is told to wait (an export takes seconds to a minute)
SLOTS_KEY = "{export}:slots"  # one hash tag: the scripts' keys stay in one Redis Cluster slot
CALLER_KEY = "{export}:caller:"

_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('EXISTS', KEYS[2]) == 1 then return 1 end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 2 end
redis.call('ZADD', KEYS[1], now + lease, ARGV[1])
redis.call('PEXPIRE', KEYS[1], lease)
redis.call('SET', KEYS[2], ARGV[1], 'PX', lease)
return 0
"""
_RENEW = """
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[2])
redis.call('PEXPIRE', KEYS[2], lease)
redis.call('ZADD', KEYS[1], now + lease, ARGV[1])
redis.call('PEXPIRE', KEYS[1], lease)
return 1
"""
_RELEASE = """
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
redis.call('ZREM', KEYS[1], ARGV[1])
return 1
"""
_local_lock = threading.Lock()


def _busy(own):
    message = "您已有一个导出正在进行，请等它完成后再试" if own else "已有导出正在进行，请稍后再试"
    return RateLimited("export_busy", message, extra={"retry_after": RETRY_AFTER_SECONDS})


def acquire(caller):
    """A slot for `caller` ("staff:<id>" or "key:<id>"), or RateLimited export_busy when the caller
    already has an export running or EXPORT_MAX_CONCURRENT are running."""
    limit = current().config["EXPORT_MAX_CONCURRENT"]
    redis = current().redis
    slot = (_RedisSlot(redis, caller) if redis is not None
            else _LocalSlot(current().__dict__.setdefault("export_leases", {}), caller))
    refused = slot.take(limit)
    if refused:
        raise _busy(own=refused == 1)
    return slot


class _Slot:
    def __init__(self, caller):
        self.caller = caller
        self.token = uuid.uuid4().hex
        self.renewed = time.monotonic()
        self.released = False

    def keep(self):
        """Renew the lease if RENEW_SECONDS have passed since it was last renewed. A lease that has
        already lapsed (the export stalled longer than LEASE_SECONDS) is not taken back: the export
        goes on, and the cap may be exceeded by it until it ends."""
        if not self.released and time.monotonic() - self.renewed >= RENEW_SECONDS:
            self.renewed = time.monotonic()
            try:
                self.renew()
            except Exception:  # a Redis blip must not cut a download short: the lease lapses at worst
                log.warning("export slot of %s: lease not renewed", self.caller, exc_info=True)

    def renewing(self, items):
        """`items`, renewing the lease as they are read."""
        for item in items:
            self.keep()
            yield item

    def holding(self, pieces):
        """A response body: `pieces`, renewing the lease, and releasing the slot when the body is
        done or closed (the client went away)."""
        try:
            yield from self.renewing(pieces)
        finally:
            self.release()

    def release(self):
        if not self.released:
            self.released = True
            try:
                self.free()
            except Exception:  # never hides the error the export ended with; the lease lapses
                log.warning("export slot of %s: not freed, its lease lapses", self.caller, exc_info=True)


class _RedisSlot(_Slot):
    def __init__(self, redis, caller):
        super().__init__(caller)
        self.redis = redis  # kept: the release may run after the request's app context is gone
        self.keys = [SLOTS_KEY, CALLER_KEY + caller]

    def take(self, limit):
        return int(self.redis.eval(_ACQUIRE, 2, *self.keys, self.token, limit, int(LEASE_SECONDS * 1000)))

    def renew(self):
        self.redis.eval(_RENEW, 2, *self.keys, self.token, int(LEASE_SECONDS * 1000))

    def free(self):
        self.redis.eval(_RELEASE, 2, *self.keys, self.token)


class _LocalSlot(_Slot):
    def __init__(self, leases, caller):
        super().__init__(caller)
        self.leases = leases  # token → (caller, lapses at: monotonic seconds)

    def take(self, limit):
        now = time.monotonic()
        with _local_lock:
            for token, (_, until) in list(self.leases.items()):
                if until <= now:
                    del self.leases[token]
            if any(caller == self.caller for caller, _ in self.leases.values()):
                return 1
            if len(self.leases) >= limit:
                return 2
            self.leases[self.token] = (self.caller, now + LEASE_SECONDS)
            return 0

    def renew(self):
        with _local_lock:
            if self.token in self.leases:
                self.leases[self.token] = (self.caller, time.monotonic() + LEASE_SECONDS)

    def free(self):
        with _local_lock:
            self.leases.pop(self.token, None)
