"""The operator commands: demo data, API keys, staff users."""
from app.models import Alert, NodeInstance, Order, ProgressReport, Supplier, Task, WechatUser


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
