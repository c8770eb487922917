"""The append-only, hash-chained audit log, and the one way to write audited changes.

    with audit.transaction(actor) as log:
        ...change domain rows...
        log.add("order.state", "order", order.id, before=..., after=..., reason=...)

The entries collected on `log` are appended when the block ends, inside its transaction: the
audit head is one row every audited write locks, so it must be the *last* lock a transaction
takes (taking it first and then waiting for a task row deadlocks against a progress report,
which holds the task row and waits for the head). Nothing else appends.

Each entry's hash covers its fields and the previous entry's hash, so editing an entry breaks
its own hash and deleting one breaks the next entry's link; the head row's count and last hash
catch a deleted last entry.
"""
import hashlib
import json
from contextlib import contextmanager, nullcontext
from datetime import date, datetime
from decimal import Decimal

from app.extensions import db, is_mysql, write_transaction
from app.models import AuditEntry, AuditHead
from app.timeutil import utcnow

GENESIS = "0" * 64


def canonical(value):
    """Stable JSON text for hashing and storage (sorted keys, dates as ISO strings)."""
    if value is None:
        return None

    def default(obj):
        if isinstance(obj, (date, datetime)):
            return obj.isoformat()
        if isinstance(obj, Decimal):
            return str(obj)
        raise TypeError(f"not JSON serialisable: {type(obj).__name__}")

    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=default)


def _hash(prev_hash, fields):
    material = canonical([prev_hash, fields])
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


def _fields(entry):
    return {
        "at": entry.created_at.isoformat(),
        "actor": [entry.actor_type, entry.actor_id, entry.actor_label],
        "action": entry.action,
        "object": [entry.object_type, entry.object_id],
        "reason": entry.reason,
        "before": entry.before,
        "after": entry.after,
    }


def _lock_head():
    """Read the head row under a lock, so concurrent appenders wait their turn instead of
    forking the chain: SELECT … FOR UPDATE on MySQL; on SQLite the write transaction already
    holds the database's single write lock (extensions.write_transaction)."""
    query = AuditHead.select().where(AuditHead.id == 1)
    return (query.for_update() if is_mysql() else query).first()


def _head():
    head = _lock_head()
    if head is None:  # first entry ever
        insert = AuditHead.insert(id=1, entries=0, last_hash=GENESIS, created_at=utcnow())
        if is_mysql():
            # ON DUPLICATE KEY UPDATE waits for the winner's row with an exclusive lock. INSERT IGNORE
            # would take a shared one, and two losers upgrading theirs to lock the head deadlock.
            insert.on_conflict(update={AuditHead.id: AuditHead.id}).execute()
        else:
            insert.on_conflict_ignore().execute()
        head = _lock_head()
    return head


class AuditLog:
    """The audit entries of one transaction, appended by `transaction` after its domain rows."""

    def __init__(self, actor):
        self.actor, self.entries = actor, []

    def add(self, action, obj_type, obj_id, before=None, after=None, reason=None):
        self.entries.append((action, obj_type, obj_id, before, after, reason))


@contextmanager
def transaction(actor):
    """A write transaction whose audit entries are written last, so the audit head is the last
    lock it takes. Inside an open transaction it joins it, without a savepoint: an error raised
    in the block must end that whole transaction (never catch it and carry on, or the rows written
    before it would commit without their entries)."""
    with write_transaction() if not db.in_transaction() else nullcontext():
        log = AuditLog(actor)
        yield log
        if log.entries:
            head = _head()
            for entry in log.entries:
                head = _append(head, actor, *entry)


def _append(head, actor, action, obj_type, obj_id, before, after, reason):
    """Chain one entry after `head` (locked by the caller's transaction); → the new head state."""
    entry = AuditEntry(
        created_at=utcnow(),
        actor_type=actor.type,
        actor_id=actor.id,
        actor_label=(actor.label or "")[:100] or None,
        action=action,
        object_type=obj_type,
        object_id=str(obj_id),
        reason=(reason or "")[:255] or None,
        before=canonical(before),
        after=canonical(after),
        prev_hash=head.last_hash,
    )
    entry.hash = _hash(entry.prev_hash, _fields(entry))
    entry.save()
    (AuditHead.update(entries=AuditHead.entries + 1, last_hash=entry.hash)
     .where(AuditHead.id == 1)
     .execute())
    head.last_hash = entry.hash
    return head


def verify(batch=1000):
    """Walk the chain; return a list of problems (empty when intact)."""
    problems = []
    prev, count, last_id = GENESIS, 0, 0
    while True:
        entries = list(AuditEntry.select().where(AuditEntry.id > last_id).order_by(AuditEntry.id).limit(batch))
        if not entries:
            break
        for entry in entries:
            count += 1
            if entry.prev_hash != prev:
                problems.append(f"entry {entry.id}: does not follow the previous entry (one was deleted or altered)")
            if _hash(entry.prev_hash, _fields(entry)) != entry.hash:
                problems.append(f"entry {entry.id}: content does not match its hash (edited)")
            prev, last_id = entry.hash, entry.id
    head = AuditHead.get_or_none(AuditHead.id == 1)
    expected = (head.entries, head.last_hash) if head else (0, GENESIS)
    if expected != (count, prev):
        problems.append(f"chain has {count} entries ending {prev[:12]}, head says {expected[0]} ending {expected[1][:12]}")
    return problems

