"""Migrations build the schema the models describe, on MySQL and on SQLite."""
import pytest
from playhouse.schema_diff import diff_models

from app import create_app
from app.extensions import db
from app.migrate import status, upgrade
from app.models import ALL_MODELS
from tests.helpers import BACKENDS, SECRET
from tests.helpers import insert_row as _insert


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_migrations_create_the_schema_on_a_fresh_database(fresh_database, backend_name):
    create_app({"APP_ENV": "test", "SECRET_KEY": SECRET, "DATABASE_URL": fresh_database(backend_name)})

    assert upgrade() == ["0001_initial", "0002_audit_head", "0003_access_control", "0004_node_completions",
                         "0005_delay_engine", "0006_alert_responses", "0007_delivery",
                         "0008_order_node_alerts", "0009_quality", "0010_materials", "0011_audit_chains",
                         "0012_scorecard", "0013_task_rejected", "0014_audit_registry"]
    assert upgrade() == []  # a second run changes nothing
    assert all(m.applied for m in status())

    with db.connection_context():
        tables = set(db.get_tables())
        assert {m._meta.table_name for m in ALL_MODELS} <= tables
        drift = diff_models(db.obj, ALL_MODELS)
        assert not drift, f"schema differs from the models:\n{drift}"
        # The delay scan and the lists filter on these.
        task_indexes = {tuple(i.columns) for i in db.get_indexes("task")}
        assert ("state", "due_date") in task_indexes
        assert ("supplier_id", "state") in task_indexes


def test_mysql_tables_are_utf8mb4(fresh_database):
    if "mysql" not in BACKENDS:
        pytest.skip("MySQL not in TEST_BACKENDS")
    create_app({"APP_ENV": "test", "SECRET_KEY": SECRET, "DATABASE_URL": fresh_database("mysql")})
    upgrade()
    with db.connection_context():
        rows = db.execute_sql(
            "SELECT table_name, table_collation FROM information_schema.tables WHERE table_schema = DATABASE()"
        ).fetchall()
    assert rows and all(collation.startswith("utf8mb4") for _, collation in rows), rows


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_0013_fills_each_tasks_rejected_pieces_and_the_previous_release_still_inserts_tasks(
        fresh_database, backend_name):
    from app.migrate import runner

    create_app({"APP_ENV": "test", "SECRET_KEY": SECRET, "DATABASE_URL": fresh_database(backend_name)})
    with db.connection_context():
        runner().up("0012_scorecard")  # the last migration before 0013
        customer = _insert("customer", code="C1", name="客户")
        supplier = _insert("supplier", name="供应商")
        order = _insert("order", order_no="SO-1", customer_id=customer, state="in_production")
        tasks = [_insert("task", order_id=order, task_no=f"SO-1-T{n}", supplier_id=supplier, qr_code=f"q{n}",
                         planned_qty=1000) for n in (1, 2, 3)]
        for n, (task, qty, rejected, status) in enumerate([
                (tasks[0], 100, 5, "released"), (tasks[0], 50, 0, "scrapped"), (tasks[1], 30, 0, "returned"),
                (tasks[1], 40, 40, "frozen")]):
            _insert("batch", task_id=task, batch_no=f"B{n}", qty=qty, qty_rejected=rejected, status=status)
        known = {c.name for c in db.get_columns("task")}  # what the previous release inserts
        assert runner().up("0013_task_rejected") == ["0013_task_rejected"]
        rows = db.execute_sql("SELECT id, qty_rejected FROM task ORDER BY id").fetchall()
        # Refused at receipt, plus every piece of a returned or scrapped batch; nothing for the third.
        assert [r[1] for r in rows] == [5 + 50, 30 + 40, 0]
        # The previous release inserts tasks without the column: the database default holds.
        late = _insert("task", known, order_id=order, task_no="SO-1-T9", supplier_id=supplier, qr_code="q9", planned_qty=10)
        assert db.execute_sql(f"SELECT qty_rejected FROM task WHERE id = {int(late)}").fetchone()[0] == 0
