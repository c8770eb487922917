"""The chain registry (issue 11: a whole chain deleted with its head went unnoticed): the chain
"chains" records each chain's start, one entry per chain naming it (object "audit_chain", the
chain's key), so `audit verify` can tell a registered chain that is gone. From this release on the
transaction that appends a chain's first entry registers it (app/services/audit.py).

Here: one registry entry for each chain already started (entries in it, or a head that counts
some), "legacy" included, in key order, chained as the new code chains entries, and the registry's
head. A head without entries (never appended to) is left for its first entry to register. No schema
change: the previous release, running until the restart, keeps appending as before; a chain it
starts in that window is not registered (`audit verify` names it, `flask --app wsgi audit register`
registers it).
"""
import hashlib
import json
from datetime import UTC, datetime

REGISTRY = "chains"
GENESIS = "0" * 64
ACTOR = ("system", None, "migration 0014")
CHUNK = 500


def _hash(prev_hash, fields):
    # The entry hash of app/services/audit.py (canonical JSON of [previous hash, fields]), frozen here.
    material = json.dumps([prev_hash, fields], ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


def up(migrator, db):
    started = {row[0] for row in db.execute_sql("SELECT DISTINCT chain FROM audit_entry").fetchall()}
    q = db.quote[0]  # `key` is a reserved word on MySQL
    started |= {row[0] for row in db.execute_sql(f"SELECT {q}key{q} FROM audit_chain WHERE entries > 0").fetchall()}
    started.discard(REGISTRY)
    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)  # whole seconds, as utcnow()
    stored = now.strftime("%Y-%m-%d %H:%M:%S")
    prev, rows = GENESIS, []
    for key in sorted(started):
        fields = {"at": now.isoformat(), "actor": list(ACTOR), "action": "audit.chain",
                  "object": ["audit_chain", key], "reason": None, "before": None, "after": None}
        digest = _hash(prev, fields)
        rows.append((stored, REGISTRY, *ACTOR, "audit.chain", "audit_chain", key, prev, digest))
        prev = digest
    columns = "created_at, chain, actor_type, actor_id, actor_label, action, object_type, object_id, prev_hash, hash"
    marks = "(" + ", ".join([db.param] * 10) + ")"
    for start in range(0, len(rows), CHUNK):
        chunk = rows[start:start + CHUNK]
        db.execute_sql(f"INSERT INTO audit_entry ({columns}) VALUES {', '.join([marks] * len(chunk))}",
                       [value for row in chunk for value in row])
    db.execute_sql(f"INSERT INTO audit_chain (created_at, {q}key{q}, entries, last_hash) VALUES "
                   f"({db.param}, {db.param}, {db.param}, {db.param})", (stored, REGISTRY, len(rows), prev))


def down(migrator, db):
    q = db.quote[0]
    db.execute_sql(f"DELETE FROM audit_entry WHERE chain = {db.param}", (REGISTRY,))
    db.execute_sql(f"DELETE FROM audit_chain WHERE {q}key{q} = {db.param}", (REGISTRY,))
