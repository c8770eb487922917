"""Append-only audit log chained by hash; idempotency records for retried writes; KPI snapshots."""
from peewee import CharField, DateField, FloatField, ForeignKeyField, IntegerField, TextField

from app.models.base import BaseModel
from app.models.parties import Supplier

# The chain of the entries written before per-chain heads (migration 0011): kept as it was.
LEGACY_CHAIN = "legacy"


class AuditEntry(BaseModel):
    """One change. `hash` covers every field and the previous entry's hash in the same `chain`
    (an order's entries are one chain, see app/services/audit.py)."""

    chain = CharField(max_length=64)

    actor_type = CharField(max_length=16)  # staff | wechat | api_key | system
    actor_id = CharField(max_length=64, null=True)
    actor_label = CharField(max_length=100, null=True)
    action = CharField(max_length=64)
    object_type = CharField(max_length=32)
    object_id = CharField(max_length=64)
    reason = CharField(max_length=255, null=True)
    # Canonical JSON text (sorted keys), not a JSON column: MySQL would re-serialise it
    # and the hash would no longer match.
    before = TextField(null=True)
    after = TextField(null=True)
    prev_hash = CharField(max_length=64)
    hash = CharField(max_length=64, unique=True)

    class Meta:
        indexes = ((("object_type", "object_id"), False), (("chain", "id"), False))


class ClientRequest(BaseModel):
    """A phone's retried write (same client_id) returns the stored result and changes nothing."""

    actor_key = CharField(max_length=64)  # e.g. "wechat:12"
    client_id = CharField(max_length=64)
    kind = CharField(max_length=32)
    object_id = CharField(max_length=64, null=True)
    status_code = IntegerField()
    response = TextField()

    class Meta:
        indexes = ((("actor_key", "client_id"), True),)


class SupplierScore(BaseModel):
    """A supplier's KPIs and grade over one period (app/services/scorecard.py, written by the
    scorecard-snapshot job): an ISO week (Monday–Sunday) or a calendar month, China dates."""

    supplier = ForeignKeyField(Supplier, backref="scores", on_delete="CASCADE")
    period = CharField(max_length=8)  # week | month
    period_start = DateField()
    period_end = DateField()
    metrics = TextField()  # canonical JSON of the KPI values
    score = FloatField(null=True)  # None: no KPI had data in the period
    grade = CharField(max_length=2, null=True)
    task_count = IntegerField(default=0)

    class Meta:
        indexes = ((("supplier", "period", "period_start"), True),)


class AuditChain(BaseModel):
    """One chain's head: its entry count and last hash. Appenders to a chain lock its head row
    (SELECT … FOR UPDATE on MySQL; SQLite's one write lock), which serialises appends to that
    chain only, and lets `audit verify` notice a deleted last entry."""

    key = CharField(max_length=64, unique=True)
    entries = IntegerField(default=0)
    last_hash = CharField(max_length=64, default="0" * 64)
