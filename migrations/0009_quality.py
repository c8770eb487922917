"""Quality loop: versioned inspection templates (per product and/or process), inspections of a
batch by QC or as a supplier self-check, batch quantities (made, shipped, received, accepted,
rejected) and movements, a QR code per batch, nonconformance dispositions, and photos of
inspections, readings and nonconformances.

No code wrote the quality tables before this release, so the inspection and nonconformance
tables are rebuilt (the migration refuses to run if any holds a row). The batch table is altered,
not rebuilt: other tables may point at it."""
from peewee import (
    BooleanField,
    CharField,
    DateField,
    DateTimeField,
    DecimalField,
    ForeignKeyField,
    IntegerField,
    Model,
    MySQLDatabase,
    TextField,
)

REBUILT = ("inspection_result", "nonconformance", "inspection", "inspection_item", "inspection_template")


def _stub(db, name):
    class Stub(Model):
        class Meta:
            database = db
            table_name = name
    return Stub


def _refuse_if_used(db):
    existing = set(db.get_tables())
    for table in REBUILT:
        if table in existing and db.execute_sql(f"SELECT COUNT(*) FROM {table}").fetchone()[0]:
            raise RuntimeError(f"0009_quality: table {table} holds rows; it would be rebuilt. Move them first.")


def up(migrator, db):
    settings = ["DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci"] if isinstance(db, MySQLDatabase) else []
    _refuse_if_used(db)
    for table in REBUILT:
        db.execute_sql(f"DROP TABLE IF EXISTS {table}")

    Task, StaffUser, WechatUser = _stub(db, "task"), _stub(db, "staff_user"), _stub(db, "wechat_user")
    Batch, Photo = _stub(db, "batch"), _stub(db, "photo")

    migrator.migrate(
        migrator.add_column("batch", "qty_shipped", IntegerField(default=0)),
        migrator.add_column("batch", "qty_received", IntegerField(default=0)),
        migrator.add_column("batch", "qty_accepted", IntegerField(default=0)),
        migrator.add_column("batch", "qty_rejected", IntegerField(default=0)),
        migrator.add_column("batch", "qr_code", CharField(max_length=32, null=True)),
    )
    migrator.migrate(migrator.add_index("batch", ("qr_code",), True))

    class InspectionTemplate(Model):
        created_at = DateTimeField()
        family_id = IntegerField(null=True)
        version = IntegerField(default=1)
        name = CharField(max_length=64)
        kind = CharField(max_length=16, null=True)
        product_code = CharField(max_length=64, null=True)
        process = CharField(max_length=32, null=True)
        active = BooleanField(default=True)
        created_by = ForeignKeyField(StaffUser, null=True, on_delete="SET NULL")

        class Meta:
            database = db
            table_name = "inspection_template"
            table_settings = settings
            indexes = ((("family_id", "version"), True),)

    class InspectionItem(Model):
        created_at = DateTimeField()
        template = ForeignKeyField(InspectionTemplate, on_delete="CASCADE")
        seq = IntegerField()
        name = CharField(max_length=64)
        check_type = CharField(max_length=16)
        min_value = DecimalField(max_digits=14, decimal_places=4, null=True)
        max_value = DecimalField(max_digits=14, decimal_places=4, null=True)
        unit = CharField(max_length=16, null=True)
        photo_required = BooleanField(default=False)

        class Meta:
            database = db
            table_name = "inspection_item"
            table_settings = settings

    class BatchMovement(Model):
        created_at = DateTimeField()
        batch = ForeignKeyField(Batch, on_delete="CASCADE")
        kind = CharField(max_length=16)
        qty = IntegerField()
        qty_rejected = IntegerField(default=0)
        by_staff = ForeignKeyField(StaffUser, null=True, on_delete="SET NULL")
        by_wechat = ForeignKeyField(WechatUser, null=True, on_delete="SET NULL")
        note = CharField(max_length=255, null=True)

        class Meta:
            database = db
            table_name = "batch_movement"
            table_settings = settings
            indexes = ((("kind", "created_at"), False),)

    class Inspection(Model):
        created_at = DateTimeField()
        task = ForeignKeyField(Task, on_delete="CASCADE")
        batch = ForeignKeyField(Batch, on_delete="CASCADE")
        template = ForeignKeyField(InspectionTemplate, on_delete="RESTRICT")
        kind = CharField(max_length=16)
        source = CharField(max_length=16)
        inspector = ForeignKeyField(StaffUser, null=True, on_delete="SET NULL")
        self_check_by = ForeignKeyField(WechatUser, null=True, on_delete="SET NULL")
        result = CharField(max_length=16)
        sample_qty = IntegerField()
        defect_qty = IntegerField(default=0)
        defects = TextField(null=True)
        note = TextField(null=True)
        inspected_at = DateTimeField()

        class Meta:
            database = db
            table_name = "inspection"
            table_settings = settings
            indexes = ((("task", "kind"), False), (("batch", "source", "inspected_at"), False),
                       (("source", "inspected_at"), False))

    class InspectionResult(Model):
        created_at = DateTimeField()
        inspection = ForeignKeyField(Inspection, on_delete="CASCADE")
        item = ForeignKeyField(InspectionItem, on_delete="RESTRICT")
        name = CharField(max_length=64)
        passed = BooleanField()
        value = DecimalField(max_digits=14, decimal_places=4, null=True)
        note = CharField(max_length=255, null=True)

        class Meta:
            database = db
            table_name = "inspection_result"
            table_settings = settings

    class Nonconformance(Model):
        created_at = DateTimeField()
        task = ForeignKeyField(Task, on_delete="CASCADE")
        inspection = ForeignKeyField(Inspection, null=True, on_delete="SET NULL")
        batch = ForeignKeyField(Batch, null=True, on_delete="SET NULL")
        owner = ForeignKeyField(StaffUser, null=True, on_delete="SET NULL")
        description = TextField()
        due_date = DateField()
        disposition = CharField(max_length=16, null=True)
        disposition_reason = CharField(max_length=255, null=True)
        disposed_at = DateTimeField(null=True)
        status = CharField(max_length=16, default="open")
        closed_at = DateTimeField(null=True)

        class Meta:
            database = db
            table_name = "nonconformance"
            table_settings = settings
            indexes = ((("status", "created_at"), False),)

    db.create_tables([InspectionTemplate, InspectionItem, BatchMovement, Inspection, InspectionResult,
                      Nonconformance])
    migrator.migrate(
        migrator.add_column("photo", "inspection_id",
                            ForeignKeyField(Inspection, null=True, on_delete="SET NULL", field=Inspection.id)),
        migrator.add_column("photo", "inspection_result_id",
                            ForeignKeyField(InspectionResult, null=True, on_delete="SET NULL",
                                            field=InspectionResult.id)),
        migrator.add_column("photo", "nonconformance_id",
                            ForeignKeyField(Nonconformance, null=True, on_delete="SET NULL",
                                            field=Nonconformance.id)),
    )


def down(migrator, db):
    for column in ("inspection_id", "inspection_result_id", "nonconformance_id"):
        migrator.migrate(migrator.drop_column("photo", column))
    for table in ("nonconformance", "inspection_result", "inspection", "batch_movement", "inspection_item",
                  "inspection_template"):
        db.execute_sql(f"DROP TABLE IF EXISTS {table}")
    migrator.migrate(migrator.drop_index("batch", "batch_qr_code"))
    for column in ("qty_shipped", "qty_received", "qty_accepted", "qty_rejected", "qr_code"):
        migrator.migrate(migrator.drop_column("batch", column))
    # The tables as 0001 made them (unused before this release) are not rebuilt: run 0001's
    # definitions again by hand if an older release must run on this database.
