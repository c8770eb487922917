"""Materials sent to suppliers: the material master, lots with QR labels, issues and what comes
back, each task's bill of quantities, and which lots a finished batch used (trace).

Quantities are decimals with three places (kg, m, 张 …), in the item's unit."""
from peewee import CharField, DateTimeField, DecimalField, FloatField, ForeignKeyField, TextField

from app.models.base import BaseModel
from app.models.orders import Task
from app.models.parties import Supplier
from app.models.quality import Batch
from app.models.users import StaffUser, WechatUser


def Qty(**kwargs):  # noqa: N802 - a field factory, read like a field class
    return DecimalField(max_digits=16, decimal_places=3, **kwargs)


class MaterialItem(BaseModel):
    """The material master: one row per material (物料编码)."""

    code = CharField(max_length=64, unique=True)
    name = CharField(max_length=100)
    unit = CharField(max_length=16)
    spec = CharField(max_length=100, null=True)


class MaterialLot(BaseModel):
    """A received lot of one material (来料批次), with its own QR label."""

    lot_no = CharField(max_length=64, unique=True)
    item = ForeignKeyField(MaterialItem, backref="lots", on_delete="RESTRICT")
    quantity = Qty()
    # Unguessable code printed in the lot's QR label: "m." + token (never a task's code).
    qr_code = CharField(max_length=40, unique=True)
    note = CharField(max_length=255, null=True)
    created_by = ForeignKeyField(StaffUser, null=True, on_delete="SET NULL")


class MaterialIssue(BaseModel):
    """Material of one lot issued to one task's supplier. One row per lot and task: scanning the
    same lot for the same task again answers this row, never a second issue."""

    lot = ForeignKeyField(MaterialLot, backref="issues", on_delete="RESTRICT")
    item = ForeignKeyField(MaterialItem, on_delete="RESTRICT")
    task = ForeignKeyField(Task, backref="material_issues", on_delete="CASCADE")
    supplier = ForeignKeyField(Supplier, backref="material_issues", on_delete="RESTRICT")
    qty = Qty()
    unit = CharField(max_length=16)
    note = CharField(max_length=255, null=True)
    issued_by = ForeignKeyField(StaffUser, null=True, on_delete="SET NULL")
    # The supplier's confirmation in the mini program that the material arrived.
    received_at = DateTimeField(null=True)
    received_by = ForeignKeyField(WechatUser, null=True, on_delete="SET NULL")

    class Meta:
        indexes = (
            (("lot", "task"), True),
            (("supplier", "task"), False),
        )


class MaterialReturn(BaseModel):
    """What came back of an issue at one time: good material, scrap, leftover (余料)."""

    issue = ForeignKeyField(MaterialIssue, backref="returns", on_delete="CASCADE")
    good_qty = Qty(default=0)
    scrap_qty = Qty(default=0)
    leftover_qty = Qty(default=0)
    note = CharField(max_length=255, null=True)
    recorded_by = ForeignKeyField(StaffUser, null=True, on_delete="SET NULL")


class MaterialBillLine(BaseModel):
    """Bill of quantities: how much of an item one unit of the task's output uses."""

    task = ForeignKeyField(Task, backref="material_bill", on_delete="CASCADE")
    item = ForeignKeyField(MaterialItem, on_delete="RESTRICT")
    qty_per_unit = Qty()
    # Over-consumption is flagged only beyond this share of the planned use so far (0.02 = 2 %).
    tolerance_pct = FloatField(default=0.0)

    class Meta:
        indexes = ((("task", "item"), True),)


class BatchMaterial(BaseModel):
    """Trace: a material lot a finished batch used, and how much of it."""

    batch = ForeignKeyField(Batch, backref="material_lots", on_delete="CASCADE")
    lot = ForeignKeyField(MaterialLot, backref="batch_uses", on_delete="RESTRICT")
    qty = Qty()
    declared_by = CharField(max_length=100, null=True)  # the actor's label: staff or supplier user
    note = TextField(null=True)

    class Meta:
        indexes = ((("batch", "lot"), True),)
