"""Materials (issue 10, item 5): the material master, lots with QR labels, issues to a task's
supplier (one per lot and task), returns (good, scrap, leftover), each task's bill of quantities,
and the trace from a batch to the lots it used."""
from peewee import (
    CharField,
    DateTimeField,
    DecimalField,
    FloatField,
    ForeignKeyField,
    Model,
    MySQLDatabase,
    TextField,
)


def _stub(db, name):
    """An existing table, only as a foreign-key target."""
    return type(name, (Model,), {"Meta": type("Meta", (), {"database": db, "table_name": name})})


def _qty(**kwargs):
    return DecimalField(max_digits=16, decimal_places=3, **kwargs)


def up(migrator, db):
    settings = ["DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci"] if isinstance(db, MySQLDatabase) else []
    # Not named like the fields: a class body looks its own assigned names up in module globals.
    task_t, supplier_t, staff_t, wechat_t, batch_t = (
        _stub(db, n) for n in ("task", "supplier", "staff_user", "wechat_user", "batch"))

    def meta(table, indexes=()):
        return type("Meta", (), {"database": db, "table_name": table, "table_settings": settings,
                                 "indexes": indexes})

    class MaterialItem(Model):
        created_at = DateTimeField()
        code = CharField(max_length=64, unique=True)
        name = CharField(max_length=100)
        unit = CharField(max_length=16)
        spec = CharField(max_length=100, null=True)
        Meta = meta("material_item")

    class MaterialLot(Model):
        created_at = DateTimeField()
        lot_no = CharField(max_length=64, unique=True)
        item = ForeignKeyField(MaterialItem, on_delete="RESTRICT")
        quantity = _qty()
        qr_code = CharField(max_length=40, unique=True)
        note = CharField(max_length=255, null=True)
        created_by = ForeignKeyField(staff_t, null=True, on_delete="SET NULL")
        Meta = meta("material_lot")

    class MaterialIssue(Model):
        created_at = DateTimeField()
        lot = ForeignKeyField(MaterialLot, on_delete="RESTRICT")
        item = ForeignKeyField(MaterialItem, on_delete="RESTRICT")
        task = ForeignKeyField(task_t, on_delete="CASCADE")
        supplier = ForeignKeyField(supplier_t, on_delete="RESTRICT")
        qty = _qty()
        unit = CharField(max_length=16)
        note = CharField(max_length=255, null=True)
        issued_by = ForeignKeyField(staff_t, null=True, on_delete="SET NULL")
        received_at = DateTimeField(null=True)
        received_by = ForeignKeyField(wechat_t, null=True, on_delete="SET NULL")
        Meta = meta("material_issue", ((("lot", "task"), True), (("supplier", "task"), False)))

    class MaterialReturn(Model):
        created_at = DateTimeField()
        issue = ForeignKeyField(MaterialIssue, on_delete="CASCADE")
        good_qty = _qty(default=0)
        scrap_qty = _qty(default=0)
        leftover_qty = _qty(default=0)
        note = CharField(max_length=255, null=True)
        recorded_by = ForeignKeyField(staff_t, null=True, on_delete="SET NULL")
        Meta = meta("material_return")

    class MaterialBillLine(Model):
        created_at = DateTimeField()
        task = ForeignKeyField(task_t, on_delete="CASCADE")
        item = ForeignKeyField(MaterialItem, on_delete="RESTRICT")
        qty_per_unit = _qty()
        tolerance_pct = FloatField(default=0.0)
        Meta = meta("material_bill_line", ((("task", "item"), True),))

    class BatchMaterial(Model):
        created_at = DateTimeField()
        batch = ForeignKeyField(batch_t, on_delete="CASCADE")
        lot = ForeignKeyField(MaterialLot, on_delete="RESTRICT")
        qty = _qty()
        declared_by = CharField(max_length=100, null=True)
        note = TextField(null=True)
        Meta = meta("batch_material", ((("batch", "lot"), True),))

    db.create_tables([MaterialItem, MaterialLot, MaterialIssue, MaterialReturn, MaterialBillLine, BatchMaterial])


def down(migrator, db):
    for table in ("batch_material", "material_bill_line", "material_return", "material_issue", "material_lot",
                  "material_item"):
        migrator.migrate(migrator.drop_table(table))
