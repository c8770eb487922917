"""Quality loop: inspection templates, inspections and results, batches, nonconformances."""
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
from app.models.orders import Photo, Task
from app.models.users import StaffUser, WechatUser


class InspectionTemplate(BaseModel):
    name = CharField(max_length=64)
    kind = CharField(max_length=16)  # first_article | patrol | final | receiving
    product_code = CharField(max_length=64, null=True)
    active = BooleanField(default=True)


class InspectionItem(BaseModel):
    template = ForeignKeyField(InspectionTemplate, backref="items", on_delete="CASCADE")
    seq = IntegerField()
    name = CharField(max_length=64)
    check_type = CharField(max_length=16)  # pass_fail | numeric | photo
    min_value = DecimalField(max_digits=14, decimal_places=4, null=True)
    max_value = DecimalField(max_digits=14, decimal_places=4, null=True)
    unit = CharField(max_length=16, null=True)
    photo_required = BooleanField(default=False)


class Batch(BaseModel):
    """A lot of a task's output; frozen by a failed inspection until a disposition."""

    task = ForeignKeyField(Task, backref="batches", on_delete="CASCADE")
    batch_no = CharField(max_length=40, unique=True)
    qty = IntegerField()
    status = CharField(max_length=16, default="open")  # open | frozen | released | shipped | received
    disposition = CharField(max_length=16, null=True)  # rework | return | concession | scrap
    frozen_at = DateTimeField(null=True)
    released_at = DateTimeField(null=True)


class Inspection(BaseModel):
    task = ForeignKeyField(Task, backref="inspections", on_delete="CASCADE")
    batch = ForeignKeyField(Batch, null=True, backref="inspections", on_delete="SET NULL")
    template = ForeignKeyField(InspectionTemplate, null=True, on_delete="SET NULL")
    kind = CharField(max_length=16)
    inspector = ForeignKeyField(StaffUser, null=True, on_delete="SET NULL")
    self_check_by = ForeignKeyField(WechatUser, null=True, on_delete="SET NULL")  # supplier self-check
    result = CharField(max_length=16, default="pending")  # pending | pass | fail
    sample_qty = IntegerField(null=True)
    defect_qty = IntegerField(null=True)
    note = TextField(null=True)
    inspected_at = DateTimeField(null=True)

    class Meta:
        indexes = ((("task", "kind"), False),)


class InspectionResult(BaseModel):
    inspection = ForeignKeyField(Inspection, backref="results", on_delete="CASCADE")
    item = ForeignKeyField(InspectionItem, null=True, on_delete="SET NULL")
    name = CharField(max_length=64)
    passed = BooleanField(null=True)
    value = DecimalField(max_digits=14, decimal_places=4, null=True)
    note = CharField(max_length=255, null=True)
    photo = ForeignKeyField(Photo, null=True, on_delete="SET NULL")


class Nonconformance(BaseModel):
    task = ForeignKeyField(Task, backref="nonconformances", on_delete="CASCADE")
    inspection = ForeignKeyField(Inspection, null=True, on_delete="SET NULL")
    batch = ForeignKeyField(Batch, null=True, on_delete="SET NULL")
    owner = ForeignKeyField(StaffUser, null=True, on_delete="SET NULL")
    description = TextField()
    due_date = DateField()
    disposition = CharField(max_length=16, null=True)
    status = CharField(max_length=16, default="open")  # open | closed
    closed_at = DateTimeField(null=True)
