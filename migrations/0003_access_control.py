"""Access control: customers can be deactivated like suppliers; logout revokes staff sessions
(a version per user); ERP keys carry scopes (existing keys get "orders": creating invites now
needs a key with the "invites" scope)."""
from peewee import BooleanField, CharField, IntegerField


def up(migrator, db):
    migrator.migrate(
        migrator.add_column("customer", "active", BooleanField(default=True)),
        migrator.add_column("staff_user", "session_version", IntegerField(default=0)),
        migrator.add_column("api_key", "scopes", CharField(max_length=64, default="orders")),
    )


def down(migrator, db):
    migrator.migrate(
        migrator.drop_column("customer", "active"),
        migrator.drop_column("staff_user", "session_version"),
        migrator.drop_column("api_key", "scopes"),
    )
