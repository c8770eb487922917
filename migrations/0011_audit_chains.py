"""Audit chains: one hash chain per order (or per object outside orders), each with its own head
row, instead of one chain whose single head row every audited write locked.

The entries already written keep their hashes and links: they become the chain "legacy", and the
old head's count and last hash become that chain's head. Nothing is re-hashed (re-hashing would
also bless any edit made before the migration); `audit verify` checks the legacy chain as before.
"""
from peewee import *

LEGACY = "legacy"
GENESIS = "0" * 64


def up(migrator, db):
    TABLE_SETTINGS = ["DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci"] if isinstance(db, MySQLDatabase) else []

    class AuditChain(Model):
        created_at = DateTimeField()
        key = CharField(max_length=64, unique=True)
        entries = IntegerField(default=0)
        last_hash = CharField(max_length=64, default=GENESIS)

        class Meta:
            database = db
            table_name = "audit_chain"
            table_settings = TABLE_SETTINGS

    db.create_tables([AuditChain])
    # Existing rows get the legacy chain from the column default, which is then dropped: every new
    # entry names its chain.
    migrator.migrate(
        migrator.add_column("audit_entry", "chain", CharField(max_length=64, default=LEGACY)),
    )
    migrator.migrate(
        migrator.add_index("audit_entry", ("chain", "id"), False),
    )
    if isinstance(db, MySQLDatabase):
        db.execute_sql("ALTER TABLE `audit_entry` ALTER COLUMN `chain` DROP DEFAULT")
    head = db.execute_sql("SELECT entries, last_hash, created_at FROM audit_head WHERE id = 1").fetchone()
    if head is not None:
        AuditChain.insert(key=LEGACY, entries=head[0], last_hash=head[1], created_at=head[2]).execute()
    migrator.migrate(migrator.drop_table("audit_head"))


def down(migrator, db):
    """Back to one head: only possible while every entry is still in the legacy chain."""
    chains = [row[0] for row in db.execute_sql("SELECT DISTINCT chain FROM audit_entry").fetchall()]
    if any(chain != LEGACY for chain in chains):
        raise RuntimeError("audit entries were written in per-order chains; they cannot be merged back into one chain")
    TABLE_SETTINGS = ["DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci"] if isinstance(db, MySQLDatabase) else []

    class AuditHead(Model):
        created_at = DateTimeField()
        entries = IntegerField(default=0)
        last_hash = CharField(max_length=64, default=GENESIS)

        class Meta:
            database = db
            table_name = "audit_head"
            table_settings = TABLE_SETTINGS

    db.create_tables([AuditHead])
    legacy = db.execute_sql("SELECT entries, last_hash, created_at FROM audit_chain WHERE `key` = %s" % "'legacy'").fetchone()
    if legacy is not None:
        AuditHead.insert(id=1, entries=legacy[0], last_hash=legacy[1], created_at=legacy[2]).execute()
    migrator.migrate(
        migrator.drop_index("audit_entry", "audit_entry_chain_id"),
        migrator.drop_column("audit_entry", "chain"),
        migrator.drop_table("audit_chain"),
    )
