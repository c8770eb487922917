"""Alert responses: staff acknowledge an alert with an optional note and resolve it with a
required one (POST /api/v1/alerts/<id>/ack and /resolve); the notes are kept on the alert."""
from peewee import CharField


def up(migrator, db):
    migrator.migrate(
        migrator.add_column("alert", "ack_note", CharField(max_length=500, null=True)),
        migrator.add_column("alert", "resolve_note", CharField(max_length=500, null=True)),
    )


def down(migrator, db):
    migrator.migrate(
        migrator.drop_column("alert", "ack_note"),
        migrator.drop_column("alert", "resolve_note"),
    )
