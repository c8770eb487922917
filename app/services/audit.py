"""The append-only, hash-chained audit log, and the one way to write audited changes.

    with audit.transaction(actor) as log:
        ...change domain rows...
        log.add("order.state", "order", order.id, before=..., after=..., reason=...)

Chains, not one log: every entry belongs to one chain, and each chain has its own head row
(AuditChain). An order's entries — the order, its tasks, reports, nodes, urges, alerts — form the
chain "order:<id>"; callers that know the order say so (`transaction(actor, chain=order_chain(id))`
or `log.add(..., chain=...)`); an entry without one goes to the chain of its own object
("supplier:3", "inspection:12"). So writes to different orders never wait for each other: there
is no global lock, only the order's (or the object's) head.

The entries collected on `log` are appended when the block ends, inside its transaction: a head
is a row the transaction locks, so it must be the *last* lock it takes (taking it first and then
waiting for a task row deadlocks against a progress report, which holds the task row and waits
for the head). A transaction writing to several chains locks their heads in key order.

Each entry's hash covers its fields and the previous entry's hash in its chain, so editing an
entry breaks its own hash and deleting one breaks the next entry's link; each head's count and
last hash catch a deleted last entry. Entries written before migration 0011 form the chain
"legacy", unchanged.

A whole chain deleted (its entries and its head) would leave nothing to check, so each chain's
start is recorded in the registry, itself a chain ("chains", one entry per chain, the chain's key
as its object id): the transaction that appends a chain's first entry (its head still at GENESIS,
whether `_heads` just inserted it or not) appends the registry entry too, in the same INSERT. The
registry's head is locked only then (once per order or object, not on every write), and *last*,
after the chains' heads, so nothing waits for a chain's head while holding the registry's. (Blocks
that join an open transaction each append on exit: a second append after one that started a chain
would lock heads after the registry's, as a second append can already lock heads out of key
order — keep one audited block per transaction.) Migration 0014 registered the chains written
before it; `register_unlisted` registers any started without it (by the previous release between
the upgrade and the restart).
"""
import hashlib
import json
from contextlib import contextmanager, nullcontext
from datetime import date, datetime
from decimal import Decimal

from peewee import Case, Value

from app.extensions import db, is_mysql, write_transaction
from app.models import AuditChain, AuditEntry
from app.models.prepared import Prepared, Slot, insert_new
from app.timeutil import utcnow

GENESIS = "0" * 64
REGISTRY = "chains"  # the chain recording each chain's start (no ":", so no object's own chain)


def order_chain(order_id):
    """The chain of everything that happens to one order."""
    return f"order:{order_id}"


def order_head(order_column):
    """A column for a query that names an order: the last hash of that order's chain (None before
    its first entry), read without a lock. A writer that reads it with its own row lock hands it to
    `AuditLog.saw_head`, and the append then costs no locking read of the head."""
    key = Value("order:").concat(order_column)  # order_chain's key, written by the database
    return AuditChain.select(AuditChain.last_hash).where(AuditChain.key == key)


def _default_chain(obj_type, obj_id):
    return order_chain(obj_id) if obj_type == "order" else f"{obj_type}:{obj_id}"[:64]


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


def _lock_heads(keys):
    """Read chains' heads under a lock, so concurrent appenders to a chain wait their turn instead
    of forking it: SELECT … FOR UPDATE on MySQL (rows locked in key order, the unique index's);
    on SQLite the write transaction already holds the database's single write lock
    (extensions.write_transaction)."""
    if len(keys) == 1:  # the usual case, its SQL written once (app/models/prepared.py)
        return {head.key: head for head in _ONE_HEAD.rows(key=keys[0])}
    return {head.key: head for head in _locked(_heads_query(AuditChain.key.in_(keys)))}


def _heads_query(where):
    return AuditChain.select(AuditChain.id, AuditChain.key, AuditChain.last_hash).where(where)


def _locked(query):
    return query.for_update() if is_mysql() else query


_ONE_HEAD = Prepared(lambda: _locked(_heads_query(AuditChain.key == Slot("key"))))
_MOVE_HEAD = Prepared(lambda: AuditChain.update(entries=AuditChain.entries + Slot("added"), last_hash=Slot("last"))
                      .where(AuditChain.id == Slot("id")))
# The head moved only if it is still where the transaction saw it: the UPDATE takes the head's lock
# (waiting for a transaction that holds it) and then matches no row if another append moved it.
_MOVE_SEEN_HEAD = Prepared(lambda: AuditChain.update(entries=AuditChain.entries + Slot("added"), last_hash=Slot("last"))
                           .where((AuditChain.key == Slot("key")) & (AuditChain.last_hash == Slot("seen"))))


def _heads(keys):
    """The locked heads of `keys` (sorted), created for chains that have none yet."""
    heads = _lock_heads(keys)
    missing = [key for key in keys if key not in heads]
    if missing:  # first entries of these chains
        now = utcnow()
        insert = AuditChain.insert_many([{"key": key, "entries": 0, "last_hash": GENESIS, "created_at": now}
                                         for key in missing])
        if is_mysql():
            # ON DUPLICATE KEY UPDATE waits for the winner's row with an exclusive lock. INSERT IGNORE
            # would take a shared one, and two losers upgrading theirs to lock the head deadlock.
            insert.on_conflict(update={AuditChain.key: AuditChain.key}).execute()
        else:
            insert.on_conflict_ignore().execute()
        heads.update(_lock_heads(missing))
    return heads


def _register(heads, by_chain):
    """Record in the registry the chains whose first entries these are (head still at GENESIS:
    exactly one transaction appends a chain's first entry, whoever inserted its head), one entry
    each, locking the registry's head after the chains' heads. → the keys to append to besides
    the chains' own: [REGISTRY], or [] when no chain starts here (the usual case: no statement).
    The registry's head exists from migration 0014 on. Were it deleted, the next chain start
    inserts it again, and on MySQL that insert can land in the gap before a new chain's head that
    another transaction waits for: a deadlock InnoDB breaks by rolling one back — only after a
    tampering that `audit verify` reports anyway."""
    new = [key for key in sorted(by_chain) if heads[key].last_hash == GENESIS and key != REGISTRY]
    if not new:
        return []
    heads.update(_heads([REGISTRY]))
    by_chain[REGISTRY] = [("audit.chain", "audit_chain", key, None, None, None) for key in new]
    return [REGISTRY]


class AuditLog:
    """The audit entries of one transaction, appended by `transaction` after its domain rows."""

    def __init__(self, actor, chain=None):
        self.actor, self.chain, self.entries = actor, chain, []
        self.seen_head = None

    def saw_head(self, last_hash):
        """The transaction's chain's last hash as read (without a lock) after its own row lock
        (`order_head`): the append then moves the head with one conditional UPDATE, and locks and
        reads it only if another transaction has moved it since. None (no chain yet) changes nothing."""
        self.seen_head = last_hash

    def add(self, action, obj_type, obj_id, before=None, after=None, reason=None, chain=None):
        """Log one change. `chain`: the chain it belongs to (default: the transaction's, else the
        object's own — an order's for obj_type "order")."""
        chain = chain or self.chain or _default_chain(obj_type, obj_id)
        if chain == REGISTRY:  # written only by `_register`, its head locked last
            raise ValueError(f"the audit chain {REGISTRY!r} is the registry of chains")
        self.entries.append((chain, action, obj_type, obj_id, before, after, reason))


@contextmanager
def transaction(actor, chain=None):
    """A write transaction whose audit entries are written last, so the chain heads are the last
    locks it takes. `chain`: where its entries go unless `log.add` says otherwise (e.g.
    order_chain(task.order_id)). Inside an open transaction it joins it, without a savepoint: an
    error raised in the block must end that whole transaction (never catch it and carry on, or the
    rows written before it would commit without their entries)."""
    with write_transaction() if not db.in_transaction() else nullcontext():
        log = AuditLog(actor, chain)
        yield log
        if log.entries and not _append_to_seen_head(log):
            _append(actor, log.entries)


def _append_to_seen_head(log):
    """The usual write — entries for one existing chain whose head the transaction has seen — in
    two statements: the head's conditional move, then the entries. → False when that does not
    apply or the head moved meanwhile (nothing written: `_append` does it the long way)."""
    seen, key = log.seen_head, log.chain
    if seen in (None, GENESIS) or any(entry[0] != key for entry in log.entries):
        return False
    rows, last = _chained(log.actor, key, seen, [entry[1:] for entry in log.entries], utcnow())
    if not _MOVE_SEEN_HEAD.execute(key=key, seen=seen, added=len(rows), last=last):
        return False
    _insert(rows)
    return True


def _chained(actor, key, prev, items, now):
    """The entries of one chain after the hash `prev`. → (the AuditEntry rows, the last hash)."""
    rows = []
    for action, obj_type, obj_id, before, after, reason in items:
        entry = AuditEntry(
            created_at=now,
            chain=key,
            actor_type=actor.type,
            actor_id=actor.id,
            actor_label=(actor.label or "")[:100] or None,
            action=action,
            object_type=obj_type,
            object_id=str(obj_id),
            reason=(reason or "")[:255] or None,
            before=canonical(before),
            after=canonical(after),
            prev_hash=prev,
        )
        entry.hash = prev = _hash(entry.prev_hash, _fields(entry))
        rows.append(entry)
    return rows, prev


def _insert(rows):
    if len(rows) == 1:
        insert_new(rows[0])
    else:
        AuditEntry.insert_many([row.__data__ for row in rows]).execute()


def _append(actor, entries):
    """Chain the entries after their chains' heads, in a fixed number of statements however many
    entries and chains: one SELECT … FOR UPDATE of the heads (plus an INSERT and a SELECT for new
    chains, and the registry's SELECT … FOR UPDATE), one INSERT of the entries, one UPDATE of the
    heads."""
    by_chain = {}
    for entry in entries:
        by_chain.setdefault(entry[0], []).append(entry[1:])
    keys = sorted(by_chain)
    heads = _heads(keys)
    keys += _register(heads, by_chain)  # the registry last
    now, rows, moved = utcnow(), [], {}
    for key in keys:
        chained, last = _chained(actor, key, heads[key].last_hash, by_chain[key], now)
        rows += chained
        moved[heads[key].id] = (len(chained), last)
    _insert(rows)
    if len(moved) == 1:
        (head_id, (added, last)), = moved.items()
        _MOVE_HEAD.execute(id=head_id, added=added, last=last)
    else:
        (AuditChain.update(entries=AuditChain.entries + Case(AuditChain.id, [(i, n) for i, (n, _) in moved.items()]),
                           last_hash=Case(AuditChain.id, [(i, h) for i, (_, h) in moved.items()]))
         .where(AuditChain.id.in_(list(moved))).execute())


def verify(batch=2000):
    """Walk every chain, the registry too; return a list of problems (empty when intact)."""
    problems, state, registered = [], {}, set()  # state: chain → (entries seen, last hash)
    last_id = 0
    while True:
        entries = list(AuditEntry.select().where(AuditEntry.id > last_id).order_by(AuditEntry.id).limit(batch))
        if not entries:
            break
        for entry in entries:
            count, prev = state.get(entry.chain, (0, GENESIS))
            if entry.prev_hash != prev:
                problems.append(f"entry {entry.id} (chain {entry.chain}): does not follow the previous entry "
                                "(one was deleted or altered)")
            if _hash(entry.prev_hash, _fields(entry)) != entry.hash:
                problems.append(f"entry {entry.id} (chain {entry.chain}): content does not match its hash (edited)")
            if entry.chain == REGISTRY:
                registered.add(entry.object_id)
            state[entry.chain] = (count + 1, entry.hash)
            last_id = entry.id
    heads = {head.key: (head.entries, head.last_hash) for head in AuditChain.select()}
    for key in sorted(set(heads) | set(state) | registered):
        seen = state.get(key, (0, GENESIS))
        expected = heads.get(key, (0, GENESIS))
        if key not in heads and seen[0]:
            problems.append(f"chain {key}: {seen[0]} entries but no head (the head row was deleted)")
        elif key not in heads:  # only the registry still names it
            problems.append(f"chain {key}: registered but has no head and no entries (the whole chain was deleted)")
        elif seen != expected:
            problems.append(f"chain {key}: has {seen[0]} entries ending {seen[1][:12]}, its head says "
                            f"{expected[0]} ending {expected[1][:12]}")
        elif key in registered and not seen[0]:  # registered with its first entry, so never empty
            problems.append(f"chain {key}: registered but empty, its head reset (its entries were deleted)")
        if seen[0] and key != REGISTRY and key not in registered:
            problems.append(f"chain {key}: {seen[0]} entries but not in the chain registry (started by a release "
                            "before migration 0014, or written behind the log's back)")
    return problems


def register_unlisted(actor):
    """Register the started chains (a head with entries) that the registry does not name: those the
    previous release started between migration 0014 and the restart. Locks only the registry's
    head, so it waits for no chain. → their keys."""
    with write_transaction():
        _heads([REGISTRY])  # locked (or created) before reading what it names
        named = AuditEntry.select(AuditEntry.object_id).where(AuditEntry.chain == REGISTRY)
        started = AuditChain.select(AuditChain.key).where((AuditChain.entries > 0) & (AuditChain.key != REGISTRY))
        unlisted = sorted({h.key for h in started} - {e.object_id for e in named})
        if unlisted:
            _append(actor, [(REGISTRY, "audit.chain", "audit_chain", key, None, None, None) for key in unlisted])
    return unlisted


def chain_count():
    return AuditChain.select().count()
