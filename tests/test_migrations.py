"""Migrations build the schema the models describe, on MySQL and on SQLite."""
import pytest
from playhouse.schema_diff import diff_models

from app import create_app
from app.extensions import db
from app.migrate import status, upgrade
from app.models import ALL_MODELS
from tests.helpers import BACKENDS, SECRET


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_migrations_create_the_schema_on_a_fresh_database(fresh_database, backend_name):
    create_app({"APP_ENV": "test", "SECRET_KEY": SECRET, "DATABASE_URL": fresh_database(backend_name)})

    assert upgrade() == ["0001_initial", "0002_audit_head", "0003_access_control", "0004_node_completions",
                         "0005_delay_engine", "0006_alert_responses", "0007_delivery",
                         "0008_order_node_alerts", "0009_quality", "0010_materials",
                         "0013_task_rejected"]
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
