"""Staff responses to alerts (issue 8, item 3): GET /api/v1/alerts, acknowledging and resolving
with a note, the response time, and who may reach any of it. Alerts are raised as the engine and
the demo raise them (app.services.alerts.raise_alert)."""
import json
from datetime import datetime, timedelta

from app.models import Alert, AuditEntry, Task
from app.services import alerts
from app.services.actors import Actor
from app.services.auth import create_api_key
from app.timeutil import clock_at, utcnow
from tests import factories
from tests.sqlcount import statements

ENGINE = Actor.system("延期预警")
MESSAGE = "冲压进度落后计划 25%，预计晚 7 个工作日"


def _two_suppliers():
    """An order with two tasks: a red delay on the first, an orange delay and a missing report on the second."""
    sup1, sup2 = factories.supplier(), factories.supplier()
    order = factories.order(factories.customer(), [sup1, sup2])
    t1, t2 = order.tasks.order_by(Task.id)
    red = alerts.raise_alert(ENGINE, t1, "delay", "red", deviation_pct=25.0, days_late=7,
                             eta_date=t1.due_date + timedelta(days=9), message=MESSAGE)
    orange = alerts.raise_alert(ENGINE, t2, "delay", "orange", deviation_pct=12.5, days_late=3, message="落后 12.5%")
    missing = alerts.raise_alert(ENGINE, t2, "missing_report", "yellow", message="今天未报工")
    return order, (t1, t2), (sup1, sup2), (red, orange, missing)


def test_staff_list_alerts_with_task_order_supplier_most_severe_first_and_filter_them(manager):
    order, (t1, t2), (sup1, sup2), (red, orange, missing) = _two_suppliers()
    other = factories.order(factories.customer(), [sup1]).tasks.get()
    alerts.raise_alert(ENGINE, other, "qc_fail", "yellow", message="首件尺寸超差")

    page = manager.get("/api/v1/alerts").json
    assert page["total"] == 4 and page["page"] == 1
    assert [(a["kind"], a["level"]) for a in page["items"]] == [
        ("delay", "red"), ("delay", "orange"), ("qc_fail", "yellow"), ("missing_report", "yellow")]
    first = page["items"][0]
    assert first == {**first, "id": red.id, "task_id": t1.id, "task_no": t1.task_no, "order_id": order.id,
                     "order_no": order.order_no, "kind_name": "延期预警", "status": "open", "deviation_pct": 25.0,
                     "days_late": 7, "eta_date": (t1.due_date + timedelta(days=9)).isoformat(), "message": MESSAGE,
                     "escalation_level": 0, "acknowledged_at": None, "acknowledged_by": None, "resolved_at": None,
                     "resolved_by": None, "response_seconds": None}
    assert first["supplier"] == {"id": sup1.id, "code": sup1.code, "name": sup1.name}
    assert first["opened_at"].endswith("+08:00")

    def ids(**query):
        answer = manager.get("/api/v1/alerts", query_string=query)
        assert answer.status_code == 200, answer.json
        return [a["id"] for a in answer.json["items"]]

    assert ids(kind="delay") == [red.id, orange.id]
    assert ids(level="yellow", supplier_id=sup2.id) == [missing.id]
    assert ids(order_id=order.id, kind="missing_report") == [missing.id]
    assert ids(status="acknowledged") == []
    assert ids(per_page=1, page=2) == [orange.id]
    assert manager.get("/api/v1/alerts", query_string={"level": "purple"}).status_code == 422
    assert manager.get(f"/api/v1/alerts/{orange.id}").json["message"] == "落后 12.5%"
    missing_one = manager.get("/api/v1/alerts/999999")
    assert missing_one.status_code == 404 and missing_one.json["error"]["code"] == "not_found"


def test_acknowledging_records_who_when_and_the_response_time_once(manager, dbconn):
    opened = datetime(2026, 6, 1, 1, 0, 0)  # 09:00 China time
    task = factories.order(factories.customer(), [factories.supplier()]).tasks.get()
    with clock_at(opened):
        alert = alerts.raise_alert(ENGINE, task, "delay", "orange", deviation_pct=15.0)

    with clock_at(opened + timedelta(minutes=42, seconds=5)):
        answer = manager.post(f"/api/v1/alerts/{alert.id}/ack", json={"note": "  已电话联系供应商  "})
    assert answer.status_code == 200, answer.json
    assert answer.json["status"] == "acknowledged" and answer.json["response_seconds"] == 42 * 60 + 5
    assert answer.json["acknowledged_by"]["name"] == "张经理" and answer.json["ack_note"] == "已电话联系供应商"
    assert answer.json["acknowledged_at"] == "2026-06-01T09:42:05+08:00"

    with clock_at(opened + timedelta(hours=3)):  # a second click, later: nothing moves
        again = manager.post(f"/api/v1/alerts/{alert.id}/ack", json={})
    assert again.status_code == 200 and again.json == answer.json
    assert manager.get(f"/api/v1/alerts/{alert.id}").json == answer.json
    assert manager.get("/api/v1/alerts", query_string={"status": "acknowledged"}).json["total"] == 1
    entries = AuditEntry.select().where(AuditEntry.action == "alert.ack")
    assert [(e.object_id, e.actor_label, e.reason) for e in entries] == [(str(alert.id), "张经理", "已电话联系供应商")]


def test_resolving_closes_the_alert_and_the_task_shows_what_is_still_open(manager, dbconn):
    _, (t1, t2), _, (red, orange, missing) = _two_suppliers()

    no_note = manager.post(f"/api/v1/alerts/{orange.id}/resolve", json={"note": "   "})
    assert no_note.status_code == 422 and no_note.json["error"]["field"] == "note"
    assert manager.post(f"/api/v1/alerts/{orange.id}/resolve", json={}).status_code == 422

    done = manager.post(f"/api/v1/alerts/{orange.id}/resolve", json={"note": "供应商加班，已追上"})
    assert done.status_code == 200, done.json
    body = done.json
    assert body["status"] == "resolved" and body["resolve_note"] == "供应商加班，已追上"
    assert body["resolved_by"]["name"] == "张经理" and body["resolved_at"]
    # Resolving an unacknowledged alert was the response: acknowledged at the same moment.
    assert body["acknowledged_at"] == body["resolved_at"] and body["response_seconds"] is not None
    assert Task.get_by_id(t2.id).alert_level == "yellow"  # the missing report is still open
    assert Alert.get_by_id(orange.id).open_key is None

    # The next finding of that kind opens a new alert.
    reopened = alerts.raise_alert(ENGINE, t2, "delay", "red", deviation_pct=22.0)
    assert reopened.id != orange.id and Task.get_by_id(t2.id).alert_level == "red"

    # The same resolution again (a retry) is answered unchanged; another one is a conflict.
    assert manager.post(f"/api/v1/alerts/{orange.id}/resolve", json={"note": "供应商加班，已追上"}).json == body
    other = manager.post(f"/api/v1/alerts/{orange.id}/resolve", json={"note": "另一个说明"})
    assert other.status_code == 409 and other.json["error"]["code"] == "alert_resolved"
    assert "张经理" in other.json["error"]["message"]
    late_ack = manager.post(f"/api/v1/alerts/{orange.id}/ack", json={})
    assert late_ack.status_code == 409 and late_ack.json["error"]["code"] == "alert_resolved"

    for alert in (reopened, missing):
        assert manager.post(f"/api/v1/alerts/{alert.id}/resolve", json={"note": "已处理"}).status_code == 200
    assert Task.get_by_id(t2.id).alert_level is None and Task.get_by_id(t1.id).alert_level == "red"
    listed = manager.get("/api/v1/alerts").json["items"]
    assert [(a["id"], a["status"]) for a in listed][:1] == [(red.id, "open")]  # unresolved first
    assert manager.get("/api/v1/alerts", query_string={"status": "unresolved"}).json["total"] == 1
    assert AuditEntry.select().where(AuditEntry.action == "alert.resolve").count() == 3
    level_changes = [json.loads(e.after) for e in AuditEntry.select().where(
        (AuditEntry.action == "task.alert") & (AuditEntry.object_id == str(t2.id))).order_by(AuditEntry.id)]
    assert level_changes[-1] == {"alert_level": None}


def test_a_response_to_an_alert_the_system_resolved_is_a_conflict(manager, dbconn):
    task = factories.order(factories.customer(), [factories.supplier()]).tasks.get()
    alert = alerts.raise_alert(ENGINE, task, "missing_report", "yellow")
    # What the engine's auto-resolve leaves: resolved, by nobody.
    Alert.update(status="resolved", open_key=None, resolved_at=utcnow()).where(Alert.id == alert.id).execute()

    shown = manager.get(f"/api/v1/alerts/{alert.id}").json
    assert shown["status"] == "resolved" and shown["resolved_by"] is None and shown["response_seconds"] is None
    answer = manager.post(f"/api/v1/alerts/{alert.id}/resolve", json={"note": "已处理"})
    assert answer.status_code == 409 and "系统" in answer.json["error"]["message"]


def test_qc_responds_only_to_qc_failures_and_executives_to_everything(client, auth, dbconn):
    task = factories.order(factories.customer(), [factories.supplier()]).tasks.get()
    delay = alerts.raise_alert(ENGINE, task, "delay", "red", deviation_pct=30.0)
    qc_fail = alerts.raise_alert(ENGINE, task, "qc_fail", "orange", message="首件尺寸超差")

    qc = auth.login("qc")
    assert qc.get("/api/v1/alerts").json["total"] == 2  # QC reads every alert
    refused = qc.post(f"/api/v1/alerts/{delay.id}/ack", json={})
    assert refused.status_code == 403 and refused.json["error"]["code"] == "forbidden"
    assert qc.post(f"/api/v1/alerts/{qc_fail.id}/resolve", json={"note": "返工后复检合格"}).status_code == 200

    executive = factories.staff_client(client, "executive")
    answer = executive.post(f"/api/v1/alerts/{delay.id}/ack", json={"note": "我来跟进"})
    assert answer.status_code == 200 and answer.json["acknowledged_by"]["name"].startswith("executive")
    assert Alert.get_by_id(delay.id).status == "acknowledged"


def test_suppliers_customers_and_erp_keys_without_the_alerts_scope_cannot_reach_alerts(client, dbconn):
    _, _, (sup1, _), (red, _, _) = _two_suppliers()
    customer = factories.order(factories.customer(), [sup1]).customer
    routes = [("get", "/api/v1/alerts", None), ("get", f"/api/v1/alerts/{red.id}", None),
              ("post", f"/api/v1/alerts/{red.id}/ack", {}), ("post", f"/api/v1/alerts/{red.id}/resolve", {"note": "x"})]
    _, order_key = create_api_key("erp-sync", ("orders", "invites"))
    _, alerts_key = create_api_key("erp-alerts", ("alerts",))
    callers = {
        "nobody": ({}, (401, "unauthorized")),
        "supplier": (factories.bearer(factories.wechat_user(sup1)), (401, "wrong_credential")),
        "customer": (factories.bearer(factories.wechat_user(customer)), (401, "wrong_credential")),
        "erp key (orders, invites)": ({"Authorization": f"Bearer {order_key}"}, (403, "api_key_scope")),
    }
    for who, (headers, expected) in callers.items():
        for method, path, body in routes:
            answer = getattr(client, method)(path, headers=headers, json=body)
            assert (answer.status_code, answer.json["error"]["code"]) == expected, (who, method, path)

    # The "alerts" scope reads; responding stays a person's.
    erp = {"Authorization": f"Bearer {alerts_key}"}
    assert client.get("/api/v1/alerts", headers=erp).json["total"] == 3
    assert client.get(f"/api/v1/alerts/{red.id}", headers=erp).status_code == 200
    for _, path, body in routes[2:]:
        answer = client.post(path, headers=erp, json=body)
        assert (answer.status_code, answer.json["error"]["code"]) == (403, "api_key_scope")
    assert Alert.get_by_id(red.id).status == "open"


def test_the_customer_sees_nothing_of_alerts_in_the_mini_program(client, dbconn):
    sup = factories.supplier()
    order = factories.order(factories.customer(), [sup])
    task = order.tasks.get()
    alerts.raise_alert(ENGINE, task, "delay", "red", deviation_pct=27.5, days_late=6, message=f"{sup.name} {MESSAGE}")
    headers = factories.bearer(factories.wechat_user(order.customer))

    answers = [client.get(path, headers=headers) for path in
               ("/mp/v1/me", "/mp/v1/orders", f"/mp/v1/orders/{order.id}")]
    assert all(a.status_code == 200 for a in answers), [a.json for a in answers]
    text = " ".join(a.get_data(as_text=True) for a in answers)
    assert order.order_no in text  # the customer does see the order …
    for secret in (sup.name, sup.code, "27.5", "deviation", "alert", "落后", '"red"', "延期预警"):
        assert secret not in text, secret  # … but nothing of the alert or the supplier


def test_the_list_costs_the_same_queries_for_2_or_20_alerts(manager, dbconn):
    def queries():
        status, seen = statements(lambda: manager.get("/api/v1/alerts").status_code)
        assert status == 200
        return len(seen)

    def responded_alerts(n):
        for _ in range(n):
            task = factories.order(factories.customer(), [factories.supplier()]).tasks.get()
            alert = alerts.raise_alert(ENGINE, task, "delay", "orange")
            manager.post(f"/api/v1/alerts/{alert.id}/resolve", json={"note": "已处理"})

    responded_alerts(2)
    few = queries()
    responded_alerts(18)
    assert manager.get("/api/v1/alerts").json["total"] == 20
    assert queries() == few + 1  # no query per alert; a full page also counts them (a short one is its own count)
