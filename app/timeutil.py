"""Time rules: store naive UTC (second precision, as MySQL DATETIME keeps it); business dates are China dates.

The clock seam: `with clock_at(instant):` makes utcnow() and china_date() answer that instant, in
this thread (and asyncio task) only, until the block ends. It exists to replay history through
the services with their rules in force (the demo seed reports "yesterday" at yesterday's 18:00);
no production path sets it, and without it utcnow() is the real clock.
"""
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

CHINA = ZoneInfo("Asia/Shanghai")

# The instant `clock_at` set (naive UTC), or None: the real clock. A ContextVar is per thread, so
# a request served by another thread never sees a replay's time.
_clock = ContextVar("clock_at", default=None)


def utcnow():
    """Naive UTC now, truncated to whole seconds so it survives a MySQL round trip unchanged."""
    fixed = _clock.get()
    if fixed is not None:
        return fixed
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0)


@contextmanager
def clock_at(instant):
    """Within the block, "now" is `instant` (aware, or naive UTC), standing still; blocks nest."""
    token = _clock.set(to_utc_naive(instant))
    try:
        yield
    finally:
        _clock.reset(token)


def to_utc_naive(dt):
    """Aware datetime → naive UTC; naive input is taken as already UTC."""
    if dt.tzinfo is not None:
        dt = dt.astimezone(UTC).replace(tzinfo=None)
    return dt.replace(microsecond=0)


def china_date(dt_utc=None):
    """The China business date of a naive-UTC instant (default: now)."""
    dt_utc = dt_utc or utcnow()
    return dt_utc.replace(tzinfo=UTC).astimezone(CHINA).date()


def iso_local(dt_utc):
    """ISO 8601 with the +08:00 offset, for showing stored UTC instants."""
    if dt_utc is None:
        return None
    return dt_utc.replace(tzinfo=UTC).astimezone(CHINA).isoformat()


def iso_date(d):
    return d.isoformat() if isinstance(d, date) else None


def parse_instant(text):
    """Parse an ISO 8601 instant; a value without offset is China time. Returns naive UTC.
    An instant of year 1 or 9999 whose UTC falls outside what datetime holds is the earliest or
    latest datetime, so that callers' own rules (not in the future, not too old) refuse it."""
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=CHINA)
    try:
        return to_utc_naive(dt)
    except OverflowError:
        return datetime.min if dt.year == datetime.min.year else datetime.max
