"""The operator commands: demo data, API keys, staff users."""
import threading
from datetime import UTC, date, datetime, timedelta

from app.domain.vocabulary import ALERT_LEVELS, ISSUE_KINDS
from app.models import Alert, AuditEntry, NodeInstance, Order, ProgressReport, Supplier, Task, TaskIssue, WechatUser
from app.services import audit
from app.timeutil import CHINA, china_date, clock_at, utcnow


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
    for alert in Alert.select().where(Alert.status == "open"):
        task = Task.get_by_id(alert.task_id)
        assert alert.level in ALERT_LEVELS and task.alert_level == alert.level and task.eta_date


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
