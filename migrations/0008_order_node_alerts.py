"""Order-level node alerts: a node that belongs to staff (订单确认, 质检) is one node for the whole
order, so its overdue alert is about the order, not a task — alert.task_id may be NULL, and the
one-open-alert rule for such alerts is a second unique index (order_id, kind, node_key,
order_open_key), order_open_key being "open" while an order-level alert is unresolved.

And the delay scan reads each task's recent reports (date, quantity) from a covering index on
progress_report, never the report rows."""
from peewee import CharField


def up(migrator, db):
    migrator.migrate(
        migrator.add_column("alert", "order_open_key", CharField(max_length=8, null=True)),
        migrator.drop_not_null("alert", "task_id"),
    )
    migrator.migrate(migrator.add_index("alert", ("order_id", "kind", "node_key", "order_open_key"), True))
    migrator.migrate(migrator.add_index("progress_report", ("task_id", "report_date", "qty_done"), False))


def down(migrator, db):
    migrator.migrate(migrator.drop_index("progress_report", "progress_report_task_id_report_date_qty_done"))
    # Alerts about a whole order have no task to keep them under the previous schema.
    db.execute_sql("DELETE FROM alert WHERE task_id IS NULL")
    migrator.migrate(migrator.drop_index("alert", "alert_order_id_kind_node_key_order_open_key"))
    migrator.migrate(
        migrator.drop_column("alert", "order_open_key"),
        migrator.add_not_null("alert", "task_id"),
    )
