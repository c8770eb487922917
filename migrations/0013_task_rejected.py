"""QC rejections move the delay engine (issue 10, item 7): each task carries the pieces QC
rejected that must be made again (received and refused, or in a returned or scrapped batch), so
the delay scan reads them in the task's own row. Filled from the batches already recorded.

The column has a database default (0): the previous release, still running between the upgrade
and the restart, inserts tasks without it."""


def up(migrator, db):
    db.execute_sql("ALTER TABLE task ADD COLUMN qty_rejected INTEGER NOT NULL DEFAULT 0")
    db.execute_sql(
        "UPDATE task SET qty_rejected = (SELECT COALESCE(SUM(CASE WHEN b.status IN ('returned', 'scrapped') "
        "THEN b.qty ELSE b.qty_rejected END), 0) FROM batch b WHERE b.task_id = task.id) "
        "WHERE EXISTS (SELECT 1 FROM batch b2 WHERE b2.task_id = task.id)")


def down(migrator, db):
    migrator.migrate(migrator.drop_column("task", "qty_rejected"))
