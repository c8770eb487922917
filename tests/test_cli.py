"""The operator commands: demo data, API keys, staff users, settings; a failure is one clear line."""
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from app.domain.vocabulary import ALERT_LEVELS, ISSUE_KINDS
from app.extensions import db
from app.models import (
    Alert,
    AuditEntry,
    Batch,
    MaterialIssue,
    MaterialReturn,
    NodeInstance,
    Nonconformance,
    Order,
    ProgressReport,
    StaffUser,
    Supplier,
    Task,
    TaskIssue,
    WechatUser,
)
from app.services import audit, materials
from app.timeutil import CHINA, china_date, clock_at, utcnow
from tests import factories
from tests.helpers import SECRET

ROOT = Path(__file__).resolve().parent.parent


def test_demo_seeds_a_realistic_factory_once(app, dbconn):
    runner = app.test_cli_runner()

    first = runner.invoke(args=["demo"])

    assert first.exit_code == 0, first.output
    assert "manager / demo-manager-pw" in first.output
    assert Supplier.select().count() == 3
    assert Order.select().count() >= 12
    states = {o.state for o in Order.select()}
    assert {"draft", "in_production", "completed"} <= states
    assert Task.select().where(Task.state == "in_production").count() >= 3
    assert Alert.select().where(Alert.status == "open").count() >= 1  # some tasks are late
    assert ProgressReport.select().count() > 0
    assert NodeInstance.select().count() == 7 * Order.select().count()  # the default template everywhere

    again = runner.invoke(args=["demo"])
    assert "already present" in again.output
    assert Supplier.select().count() == 3


def test_demo_is_history_made_through_the_services(app, dbconn):
    """Every change is in an intact audit log, dated when it happened, in the domain's words."""
    assert app.test_cli_runner().invoke(args=["demo"]).exit_code == 0

    assert audit.verify() == []
    reports = list(ProgressReport.select())
    assert AuditEntry.select().where(AuditEntry.action == "progress.report").count() == len(reports)
    today = china_date()
    assert all(r.report_date < today and china_date(r.created_at) == r.report_date for r in reports)
    assert min(r.report_date for r in reports) < today - timedelta(days=20)  # weeks of history
    stamps = [e.created_at for e in AuditEntry.select().order_by(AuditEntry.id)]
    assert stamps == sorted(stamps) and stamps[-1] <= utcnow()
    issues = list(TaskIssue.select())
    assert issues and all(i.kind in ISSUE_KINDS for i in issues)
    # This morning's scans are the delay engine's own: every open alert has a level, a task shows the
    # highest of its open alerts, and a late task carries an ETA (its delay alert's, or the supplier's
    # answer to this morning's urge).
    open_alerts = list(Alert.select().where(Alert.status == "open"))
    assert {a.kind for a in open_alerts} >= {"delay"}
    for alert in open_alerts:
        task = Task.get_by_id(alert.task_id)
        levels = [a.level for a in open_alerts if a.task_id == task.id]
        assert alert.level in ALERT_LEVELS and task.alert_level == max(levels, key=ALERT_LEVELS.index)
        assert alert.kind != "delay" or task.eta_date


def test_demo_fills_the_dashboard_with_a_frozen_batch_and_material_balances(app, dbconn):
    """The overview's frozen batches, the supplier and order pages' material balance: seeded."""
    app.test_cli_runner().invoke(args=["demo"])
    frozen = Batch.get(Batch.status == "frozen")  # one batch, frozen by QC's failed patrol inspection
    assert Batch.select().where(Batch.status == "frozen").count() == 1
    assert Nonconformance.get(Nonconformance.batch == frozen.id).status == "open"
    tasks = list(Task.select().where(Task.id.in_(MaterialIssue.select(MaterialIssue.task))).order_by(Task.id))
    balances = materials.balances(tasks)
    assert len(tasks) == 2 and MaterialReturn.select().count() >= 1
    assert [b.shortage for b in balances].count(True) == 1 and all(b.lines for b in balances)
    short = next(b for b in balances if b.shortage)

    client = app.test_client()
    manager = StaffUser.get(StaffUser.username == "manager")
    with client.session_transaction() as session:
        session.update(staff_id=manager.id, v=manager.session_version, at=int(time.time()))
    overview = client.get("/dashboard/").get_data(as_text=True)
    assert frozen.batch_no in overview and "没有冻结的批次" not in overview
    supplier = client.get(f"/dashboard/suppliers/{short.task.supplier_id}").get_data(as_text=True)
    assert frozen.batch_no in supplier and short.lines[0].item.name in supplier and "缺料" in supplier
    order = client.get(f"/dashboard/orders/{short.task.order_id}").get_data(as_text=True)
    assert "物料平衡" in order and all(b.lines[0].item.name in order for b in balances) and "缺料" in order


def test_demo_users_can_log_in_and_see_their_role(app, dbconn):
    app.test_cli_runner().invoke(args=["demo"])
    client = app.test_client()
    for openid, role in (("demo-supplier-1", "supplier"), ("demo-customer-1", "customer")):
        res = client.post("/mp/v1/auth/demo-login", json={"openid": openid})
        assert res.status_code == 200, res.json
        assert res.json["user"]["role"] == role
    assert WechatUser.select().where(WechatUser.openid.startswith("demo-")).count() == 5
    staff = client.post("/api/v1/auth/login", json={"username": "manager", "password": "demo-manager-pw"})
    assert staff.status_code == 200 and staff.json["role"] == "manager"


def test_create_api_key_prints_a_key_that_works_once_shown(app, dbconn):
    result = app.test_cli_runner().invoke(args=["create-api-key", "erp-sap"])
    assert result.exit_code == 0, result.output
    key = result.output.strip().splitlines()[-1]

    res = app.test_client().get("/api/v1/me", headers={"Authorization": f"Bearer {key}"})
    assert res.status_code == 200 and res.json["name"] == "erp-sap"


def test_create_staff_reads_the_password_from_the_environment(app, dbconn, monkeypatch):
    monkeypatch.setenv("NEW_STAFF_PW", "long-enough-pw")
    result = app.test_cli_runner().invoke(args=["create-staff", "qc2", "--role", "qc", "--password-env", "NEW_STAFF_PW"])
    assert result.exit_code == 0, result.output
    res = app.test_client().post("/api/v1/auth/login", json={"username": "qc2", "password": "long-enough-pw"})
    assert res.status_code == 200 and res.json["role"] == "qc"


def test_demo_reset_empties_the_database_and_seeds_it_again(app, dbconn):
    runner = app.test_cli_runner()
    assert runner.invoke(args=["demo"]).exit_code == 0
    orders = Order.select().count()
    extra = factories.supplier()  # something made after the demo
    Order.delete().where(Order.id == Order.select().first().id).execute()

    result = runner.invoke(args=["demo", "--reset", "--yes"])

    assert result.exit_code == 0, result.output
    assert Supplier.select().count() == 3 and Supplier.get_or_none(code=extra.code) is None
    assert Order.select().count() == orders
    assert audit.verify() == []


def invoke(app, args, **kwargs):
    """Run a command of `app` as `flask` would: in that app's context."""
    with app.app_context():
        return app.test_cli_runner().invoke(args=args, **kwargs)


def test_demo_reset_asks_first_and_is_refused_in_production(make_app):
    app = make_app()
    assert invoke(app, ["demo"]).exit_code == 0
    declined = invoke(app, ["demo", "--reset"], input="n\n")
    assert declined.exit_code == 1 and "Delete every row" in declined.output
    refused = invoke(make_app(APP_ENV="production"), ["demo", "--reset", "--yes"])
    assert refused.exit_code == 1 and "APP_ENV=production" in refused.output
    with db.connection_context():
        assert Supplier.select().count() == 3


def test_config_shows_our_settings_with_secrets_hidden(make_app):
    app = make_app(WECHAT_APP_ID="wx123", WECHAT_APP_SECRET="very-secret", OSS_ACCESS_KEY_SECRET="oss-secret")
    output = invoke(app, ["config"]).output

    settings = dict(line.split("=", 1) for line in output.splitlines())
    assert settings["WECHAT_APP_ID"] == "wx123" and settings["WECHAT_ENABLED"] == "True"
    assert settings["SECRET_KEY"] == settings["WECHAT_APP_SECRET"] == settings["OSS_ACCESS_KEY_SECRET"] == "***"
    assert "very-secret" not in output and SECRET not in output
    assert {"DATABASE_URL", "REDIS_URL", "PUBLIC_BASE_URL", "STAFF_SESSION_HOURS", "PRICE_ROLES"} <= set(settings)
    # Flask's and APIFlask's own settings are not ours to show.
    assert not {"SESSION_COOKIE_NAME", "PROPAGATE_EXCEPTIONS", "SWAGGER_UI_CSS", "JSON_AS_ASCII"} & set(settings)


# --- a failing command ends in one clear line --------------------------------------------------------

def one_line_error(result):
    """The command failed with click's one "Error: …" line (exit 1), not an exception's traceback."""
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.exception
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return lines[0]


def test_create_staff_failures_are_one_line(app, dbconn, monkeypatch):
    runner = app.test_cli_runner()
    monkeypatch.setenv("SHORT_PW", "short")
    monkeypatch.setenv("GOOD_PW", "long-enough-pw")

    def create(role, env):
        return runner.invoke(args=["create-staff", "qc2", "--role", role, "--password-env", env])

    assert "密码至少 8 位" in one_line_error(create("qc", "SHORT_PW"))
    assert "NO_SUCH_VAR" in one_line_error(create("qc", "NO_SUCH_VAR"))
    assert create("qc", "GOOD_PW").exit_code == 0
    assert "qc2 已存在" in one_line_error(create("manager", "GOOD_PW"))
    assert StaffUser.get(StaffUser.username == "qc2").role == "qc"


def test_jobs_run_with_a_bad_time_is_one_line(app, dbconn):
    runner = app.test_cli_runner()
    for bad in ("yesterday", "2026-13-01", "0001-01-01T00:00:00+14:00"):
        line = one_line_error(runner.invoke(args=["jobs", "run", "flush-outbox", "--now", bad]))
        assert "ISO 8601" in line and bad in line


def test_an_unreachable_database_is_one_line(make_app):
    app = make_app(DATABASE_URL="mysql://root@127.0.0.1:9/nowhere")  # port 9: nothing listens
    for args in (["db", "status"], ["db", "upgrade"], ["create-api-key", "erp"], ["audit", "verify"], ["audit", "register"],
                 ["jobs", "run", "sweep-photos"]):
        assert "database:" in one_line_error(invoke(app, args)), args


def test_a_real_shell_sees_one_line_and_no_traceback(tmp_path):
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}", "SECRET_KEY": SECRET, "PW": "short"}
    run = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "create-staff", "x", "--role", "qc",
                          "--password-env", "PW"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    assert "Traceback" not in run.stderr and run.stderr.strip() == "Error: 密码至少 8 位 (validation_error)"


# --- the clock seam the demo replays its history with ---------------------------------------------

def test_clock_at_sets_now_in_this_thread_only():
    def real_now():
        return datetime.now(UTC).replace(tzinfo=None)

    other_thread = []
    with clock_at(datetime(2026, 1, 2, 18, 30, tzinfo=CHINA)):
        assert utcnow() == datetime(2026, 1, 2, 10, 30)
        assert china_date() == date(2026, 1, 2)
        with clock_at(datetime(2025, 6, 1)):  # naive means UTC; blocks nest
            assert utcnow() == datetime(2025, 6, 1)
        assert utcnow() == datetime(2026, 1, 2, 10, 30)
        thread = threading.Thread(target=lambda: other_thread.append(utcnow()))
        thread.start()
        thread.join()
    assert abs(other_thread[0] - real_now()) < timedelta(seconds=5)
    assert abs(utcnow() - real_now()) < timedelta(seconds=5)
