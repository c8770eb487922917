"""Delivery at scale: a sender claims outbox rows in batches under a claim token, and a
subscribe row remembers that it holds one unit of quota (a reclaimed row does not take a second)."""
from peewee import BooleanField, CharField


def up(migrator, db):
    migrator.migrate(
        migrator.add_column("notification", "claim_token", CharField(max_length=32, null=True)),
        # Nullable: the previous release, still running while this migration is applied, inserts
        # rows without it (NULL reads as "holds no unit").
        migrator.add_column("notification", "quota_held", BooleanField(null=True)),
        migrator.add_index("notification", ("claim_token",), False),
    )


def down(migrator, db):
    migrator.migrate(
        migrator.drop_index("notification", "notification_claim_token"),
        migrator.drop_column("notification", "claim_token"),
        migrator.drop_column("notification", "quota_held"),
    )
