"""Delay engine: a node_overdue alert is about one node, so the open-alert dedup becomes one per
task, kind and node (node_key 0 for alerts about the whole task); suppliers may have a WeCom group
robot that alerts reach them through; tasks get an index on (state, id) for the scans' batches."""
from peewee import CharField, ForeignKeyField, IntegerField, Model


def up(migrator, db):
    class NodeInstance(Model):
        class Meta:
            database = db
            table_name = "node_instance"

    migrator.migrate(
        migrator.add_column("alert", "node_id", ForeignKeyField(NodeInstance, null=True, on_delete="CASCADE",
                                                                field=NodeInstance.id)),
        migrator.add_column("alert", "node_key", IntegerField(default=0)),
        migrator.add_column("supplier", "robot_key", CharField(max_length=64, null=True)),
    )
    # The new unique index first: on MySQL the task_id foreign key needs an index at every moment.
    migrator.migrate(
        migrator.add_index("alert", ("task_id", "kind", "node_key", "open_key"), True),
    )
    migrator.migrate(migrator.drop_index("alert", "alert_task_id_kind_open_key"))
    # The scans read tasks in production in id batches: a range on this index, not a table scan.
    migrator.migrate(migrator.add_index("task", ("state", "id"), False))


def down(migrator, db):
    migrator.migrate(migrator.drop_index("task", "task_state_id"))
    migrator.migrate(migrator.add_index("alert", ("task_id", "kind", "open_key"), True))
    migrator.migrate(
        migrator.drop_index("alert", "alert_task_id_kind_node_key_open_key"),
        migrator.drop_column("alert", "node_id"),
        migrator.drop_column("alert", "node_key"),
        migrator.drop_column("supplier", "robot_key"),
    )
