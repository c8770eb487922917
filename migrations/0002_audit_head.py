"""The audit chain's head row (serialises appends; detects a deleted last entry)."""
from peewee import *


def up(migrator, db):
    TABLE_SETTINGS = ["DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci"] if isinstance(db, MySQLDatabase) else []

    class AuditHead(Model):
        created_at = DateTimeField()
        entries = IntegerField(default=0)
        last_hash = CharField(max_length=64, default="0" * 64)

        class Meta:
            database = db
            table_name = "audit_head"
            table_settings = TABLE_SETTINGS

    db.create_tables([AuditHead])


def down(migrator, db):
    migrator.migrate(migrator.drop_table("audit_head"))
