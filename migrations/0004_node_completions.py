"""Node completions: each task of an order completes an order-wide node (materials ready, first
article, main process, packed, shipped) for itself; the order's node is done when every open
task's part is.

Existing data: a node a supplier completed becomes that task's part. On an order still open with
several tasks, such a node was marked done for the whole order by one supplier; it goes back to
in progress (its first completion kept as started_at) until the other tasks complete it too.
"""
from peewee import *

SUPPLIER_NODE_CODES = ("materials_ready", "first_article", "main_process", "packed", "shipped")
DONE_NODE_STATES = ("done", "awaiting_confirmation")


def up(migrator, db):
    TABLE_SETTINGS = ["DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci"] if isinstance(db, MySQLDatabase) else []

    class Order(Model):
        state = CharField(max_length=16)

        class Meta:
            database = db
            table_name = "order"

    class Task(Model):
        order = ForeignKeyField(Order, on_delete="CASCADE")
        state = CharField(max_length=16)

        class Meta:
            database = db
            table_name = "task"

    class NodeInstance(Model):
        order = ForeignKeyField(Order, on_delete="CASCADE")
        task = ForeignKeyField(Task, null=True, on_delete="CASCADE")
        code = CharField(max_length=32)
        state = CharField(max_length=24)
        started_at = DateTimeField(null=True)
        done_at = DateTimeField(null=True)
        done_by = CharField(null=True, max_length=64)
        note = TextField(null=True)

        class Meta:
            database = db
            table_name = "node_instance"

    class NodeCompletion(Model):
        created_at = DateTimeField()
        node = ForeignKeyField(NodeInstance, on_delete="CASCADE")
        task = ForeignKeyField(Task, on_delete="CASCADE")
        state = CharField(max_length=24)
        done_at = DateTimeField()
        done_by = CharField(null=True, max_length=64)
        note = TextField(null=True)
        reviewed_at = DateTimeField(null=True)
        reviewed_by = CharField(null=True, max_length=64)
        reject_reason = CharField(null=True, max_length=255)

        class Meta:
            database = db
            table_name = "node_completion"
            table_settings = TABLE_SETTINGS
            indexes = ((("node", "task"), True),)

    db.create_tables([NodeCompletion])

    completed_by_a_task = (NodeInstance.task.is_null(False) & NodeInstance.done_at.is_null(False)
                           & NodeInstance.code.in_(SUPPLIER_NODE_CODES) & NodeInstance.state.in_(DONE_NODE_STATES))
    with db.atomic():
        NodeCompletion.insert_from(
            NodeInstance.select(NodeInstance.done_at, NodeInstance.id, NodeInstance.task, NodeInstance.state,
                                NodeInstance.done_at, NodeInstance.done_by, NodeInstance.note)
            .where(completed_by_a_task),
            [NodeCompletion.created_at, NodeCompletion.node, NodeCompletion.task, NodeCompletion.state,
             NodeCompletion.done_at, NodeCompletion.done_by, NodeCompletion.note],
        ).execute()
        shared = (Task.select(Task.order).where(Task.state != "cancelled")
                  .group_by(Task.order).having(fn.COUNT(Task.id) > 1))
        open_orders = Order.select(Order.id).where(Order.state.not_in(("completed", "cancelled")))
        # started_at first: MySQL assigns left to right, so it must read done_at before it is cleared.
        (NodeInstance.update({NodeInstance.started_at: fn.COALESCE(NodeInstance.started_at, NodeInstance.done_at),
                              NodeInstance.state: "in_progress", NodeInstance.done_at: None,
                              NodeInstance.done_by: None, NodeInstance.task: None})
         .where(completed_by_a_task & NodeInstance.order.in_(shared) & NodeInstance.order.in_(open_orders))
         .execute())


def down(migrator, db):
    migrator.migrate(migrator.drop_table("node_completion"))
