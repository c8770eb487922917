"""Quality loop: inspection templates (versioned) and their check items, batches and their
movements, inspections and their readings, nonconformances (app/services/quality.py)."""
from peewee import (
    BooleanField,
    CharField,
    DateField,
    DateTimeField,
    DecimalField,
    ForeignKeyField,
    IntegerField,
    TextField,
)

from app.models.base import BaseModel
from app.models.fields import JSONTextField
from app.models.orders import Task
from app.models.users import StaffUser, WechatUser


class InspectionTemplate(BaseModel):
    """One version of a list of check items. Editing creates the next version of the same family
    (family_id = the first version's id) and retires the previous one (active False), so an
    inspection keeps the version it used. Applies to a product and/or a process and/or a kind of
    inspection; NULL means any (the most specific active template wins)."""

    family_id = IntegerField(null=True)  # the first version's id (set right after it is created)
    version = IntegerField(default=1)
    name = CharField(max_length=64)
    kind = CharField(max_length=16, null=True)  # first_article | patrol | final | receiving; NULL = any
    product_code = CharField(max_length=64, null=True)
    process = CharField(max_length=32, null=True)
    active = BooleanField(default=True)
    created_by = ForeignKeyField(StaffUser, null=True, on_delete="SET NULL")

    class Meta:
        indexes = ((("family_id", "version"), True),)


class InspectionItem(BaseModel):
    """A check item of one template version (never changed: a new version has new items)."""

    template = ForeignKeyField(InspectionTemplate, backref="items", on_delete="CASCADE")
    seq = IntegerField()
    name = CharField(max_length=64)
    check_type = CharField(max_length=16)  # pass_fail | numeric (vocabulary.CHECK_TYPES)
    min_value = DecimalField(max_digits=14, decimal_places=4, null=True)
    max_value = DecimalField(max_digits=14, decimal_places=4, null=True)
    unit = CharField(max_length=16, null=True)
    photo_required = BooleanField(default=False)


class Batch(BaseModel):
    """A lot of a task's output: made (qty), shipped by the supplier, received by us (accepted +
    rejected). Frozen by a failed QC inspection until a disposition; returned and scrapped
    batches are closed. The QR label carries qr_code."""

    task = ForeignKeyField(Task, backref="batches", on_delete="CASCADE")
    batch_no = CharField(max_length=40, unique=True)
    qty = IntegerField()  # made
    qty_shipped = IntegerField(default=0)
    qty_received = IntegerField(default=0)
    qty_accepted = IntegerField(default=0)
    qty_rejected = IntegerField(default=0)
    status = CharField(max_length=16, default="open")  # open | frozen | released | returned | scrapped
    disposition = CharField(max_length=16, null=True)  # rework | return | concession | scrap (the latest)
    qr_code = CharField(max_length=32, null=True, unique=True)
    frozen_at = DateTimeField(null=True)
    released_at = DateTimeField(null=True)


class BatchMovement(BaseModel):
    """A shipment by the supplier or a receipt by us (the quantities' history, for the figures)."""

    batch = ForeignKeyField(Batch, backref="movements", on_delete="CASCADE")
    kind = CharField(max_length=16)  # ship | receive
    qty = IntegerField()
    qty_rejected = IntegerField(default=0)  # receive: of qty, how many were rejected
    by_staff = ForeignKeyField(StaffUser, null=True, on_delete="SET NULL")
    by_wechat = ForeignKeyField(WechatUser, null=True, on_delete="SET NULL")
    note = CharField(max_length=255, null=True)

    class Meta:
        indexes = ((("kind", "created_at"), False),)


class Inspection(BaseModel):
    """One inspection of a batch: by QC staff (source "qc": the verdict) or the supplier's
    self-check (source "self_check": recorded, never the QC verdict)."""

    task = ForeignKeyField(Task, backref="inspections", on_delete="CASCADE")
    batch = ForeignKeyField(Batch, backref="inspections", on_delete="CASCADE")
    template = ForeignKeyField(InspectionTemplate, on_delete="RESTRICT")
    kind = CharField(max_length=16)
    source = CharField(max_length=16)  # qc | self_check
    inspector = ForeignKeyField(StaffUser, null=True, on_delete="SET NULL")
    self_check_by = ForeignKeyField(WechatUser, null=True, on_delete="SET NULL")
    result = CharField(max_length=16)  # pass | fail
    sample_qty = IntegerField()
    defect_qty = IntegerField(default=0)
    defects = JSONTextField(null=True)  # [{"category", "count"}]
    note = TextField(null=True)
    inspected_at = DateTimeField()

    class Meta:
        indexes = ((("task", "kind"), False), (("batch", "source", "inspected_at"), False),
                   (("source", "inspected_at"), False))


class InspectionResult(BaseModel):
    """One check item's reading in an inspection."""

    inspection = ForeignKeyField(Inspection, backref="results", on_delete="CASCADE")
    item = ForeignKeyField(InspectionItem, on_delete="RESTRICT")
    name = CharField(max_length=64)
    passed = BooleanField()
    value = DecimalField(max_digits=14, decimal_places=4, null=True)
    note = CharField(max_length=255, null=True)


class Nonconformance(BaseModel):
    """Opened by a failed QC inspection; closed by a disposition that ends the batch's freeze
    (return, scrap), a release after a concession, or a passing re-inspection after rework."""

    task = ForeignKeyField(Task, backref="nonconformances", on_delete="CASCADE")
    inspection = ForeignKeyField(Inspection, null=True, on_delete="SET NULL")
    batch = ForeignKeyField(Batch, null=True, backref="nonconformances", on_delete="SET NULL")
    owner = ForeignKeyField(StaffUser, null=True, on_delete="SET NULL")
    description = TextField()
    due_date = DateField()
    disposition = CharField(max_length=16, null=True)
    disposition_reason = CharField(max_length=255, null=True)
    disposed_at = DateTimeField(null=True)
    status = CharField(max_length=16, default="open")  # open | closed
    closed_at = DateTimeField(null=True)

    class Meta:
        indexes = ((("status", "created_at"), False),)
