"""Order intake, the order state machine, edits, lists and urges through the manager/ERP API."""
import re
import threading
import time
import uuid
from datetime import date, timedelta

import pytest

from app.extensions import db
from app.models import AuditChain, AuditEntry, NodeInstance, Order, Supplier, Task, Urge
from app.services.auth import create_api_key
from app.services.nodes import DEFAULT_NODES
from app.timeutil import china_date
from tests import factories
from tests.helpers import order_body
from tests.sqlcount import statements as _statements


@pytest.fixture
def parties(dbconn):
    return {"customer": factories.customer(), "suppliers": [factories.supplier(), factories.supplier("无锡焊接厂")]}


def audit_count():
    return AuditEntry.select().count()


# --- intake ----------------------------------------------------------------------------------------

def test_manager_creates_an_order_with_tasks_and_default_nodes(manager, parties):
    body = order_body(parties["customer"], parties["suppliers"])

    res = manager.post("/api/v1/orders", json=body)

    assert res.status_code == 201, res.json
    order = res.json
    assert re.fullmatch(r"SO-\d{8}-\d{4,}", order["order_no"])
    assert order["state"] == "draft" and order["source"] == "manual"
    assert order["unit_price"] == "12.50" and order["customer"]["id"] == parties["customer"].id
    assert [t["task_no"] for t in order["tasks"]] == [f"{order['order_no']}-T1", f"{order['order_no']}-T2"]
    assert [t["supplier"]["id"] for t in order["tasks"]] == [s.id for s in parties["suppliers"]]
    codes = [Task.get_by_id(t["id"]).qr_code for t in order["tasks"]]
    assert len(set(codes)) == 2 and all(len(c) >= 20 for c in codes)
    assert order["tasks"][0]["scan_url"].endswith(f"/s/{codes[0]}")

    nodes = order["nodes"]
    assert [n["code"] for n in nodes] == [code for code, *_ in DEFAULT_NODES]
    dates = [date.fromisoformat(n["planned_date"]) for n in nodes]
    assert dates[0] == date.fromisoformat(body["planned_start"]) and dates[-1] == date.fromisoformat(body["due_date"])
    assert dates == sorted(dates) and len(set(dates)) > 3  # spread over the plan, not bunched
    assert {n["state"] for n in nodes} == {"pending"} and {n["colour"] for n in nodes} == {"grey"}

    created = order["history"][0]
    assert created["action"] == "order.create" and created["actor"]["label"] == "张经理"
    assert Order.select().count() == 1 and Task.select().count() == 2


def test_retrying_the_same_external_no_returns_the_same_order(manager, parties):
    body = order_body(parties["customer"], parties["suppliers"])
    first = manager.post("/api/v1/orders", json=body)
    entries = audit_count()
    # The same content, written differently (number instead of text, code instead of id).
    retry = {k: v for k, v in body.items() if k != "customer_id"}
    retry.update(unit_price=12.5, customer_code=parties["customer"].code)

    again = manager.post("/api/v1/orders", json=retry)

    assert again.status_code == 200, again.json
    assert again.json["id"] == first.json["id"] and again.json["order_no"] == first.json["order_no"]
    assert Order.select().count() == 1 and Task.select().count() == 2
    assert audit_count() == entries


def test_the_same_external_no_with_other_content_is_refused(manager, parties):
    body = order_body(parties["customer"], parties["suppliers"])
    first = manager.post("/api/v1/orders", json=body).json
    changed = order_body(parties["customer"], parties["suppliers"], quantity=1200)
    changed["tasks"][1]["planned_qty"] = 900

    res = manager.post("/api/v1/orders", json=changed)

    assert res.status_code == 409
    error = res.json["error"]
    assert error["code"] == "external_no_conflict" and error["order_no"] == first["order_no"]
    assert "订单数量" in error["message"] and "工序任务" in error["message"]
    assert Order.select().count() == 1
    assert Order.get_by_id(first["id"]).quantity == 1000
    assert [t.planned_qty for t in Task.select().order_by(Task.id)] == [1000, 1000]


def test_concurrent_duplicates_create_one_order(app, parties):
    create_api_key("erp")
    _, key = create_api_key("erp-2")
    body = order_body(parties["customer"], parties["suppliers"], external_no="ERP-RACE")
    barrier, results = threading.Barrier(4), []

    def post():
        client = app.test_client()
        barrier.wait()
        res = client.post("/api/v1/orders", json=body, headers={"Authorization": f"Bearer {key}"})
        results.append((res.status_code, res.json.get("id")))

    threads = [threading.Thread(target=post) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert sorted(code for code, _ in results) == [200, 200, 200, 201], results
    assert len({order_id for _, order_id in results}) == 1
    assert Order.select().where(Order.external_no == "ERP-RACE").count() == 1


def test_codes_match_regardless_of_case_on_every_backend(manager, parties):
    """MySQL's collation finds CUST-1 for cust-1; SQLite installs now find it too."""
    body = order_body(parties["customer"], parties["suppliers"])
    body.pop("customer_id")
    body["customer_code"] = parties["customer"].code.lower()
    for task, supplier in zip(body["tasks"], parties["suppliers"], strict=False):
        task.pop("supplier_id")
        task["supplier_code"] = supplier.code.lower()

    res = manager.post("/api/v1/orders", json=body)

    assert res.status_code == 201, res.json
    assert res.json["customer"]["id"] == parties["customer"].id
    assert [t["supplier"]["id"] for t in res.json["tasks"]] == [s.id for s in parties["suppliers"]]


def test_an_external_no_differing_only_in_case_is_the_same_number(manager, parties):
    first = manager.post("/api/v1/orders", json=order_body(parties["customer"], parties["suppliers"])).json

    res = manager.post("/api/v1/orders", json=order_body(parties["customer"], parties["suppliers"],
                                                         external_no="erp-2026-0001"))

    assert res.status_code == 409 and res.json["error"]["order_no"] == first["order_no"]
    assert res.json["error"]["differs"] == ["外部单号"]
    assert Order.select().count() == 1


@pytest.mark.parametrize("confirm", [False, True])
def test_the_erp_sending_an_edited_order_again_gets_it_back(manager, parties, confirm):
    """After a manager's edit the order's content is the edited one: the ERP sending that content
    is a retry (200), sending the old content is a conflict naming what the edit changed."""
    body = order_body(parties["customer"], parties["suppliers"], confirm=confirm)
    order_id = manager.post("/api/v1/orders", json=body).json["id"]
    new_due = (date.fromisoformat(body["due_date"]) + timedelta(days=5)).isoformat()
    assert _patch(manager, order_id, notes="加急", due_date=new_due, reason="客户改交期").status_code == 200

    again = manager.post("/api/v1/orders", json={**body, "notes": "加急", "due_date": new_due})
    old = manager.post("/api/v1/orders", json=body)

    assert again.status_code == 200, again.json
    assert again.json["id"] == order_id and again.json["notes"] == "加急"
    assert old.status_code == 409 and old.json["error"]["differs"] == ["交期", "备注"]
    assert Order.select().count() == 1


def _task_change(body, **changes):
    body["tasks"][0].update(changes)
    return body


@pytest.mark.parametrize("change, field", [
    (lambda b: b.pop("product_name"), "product_name"),
    (lambda b: b.update(quantity=0), "quantity"),
    (lambda b: b.update(external_no="E" * 65), "external_no"),
    (lambda b: b.update(due_date=b["planned_start"], planned_start=b["due_date"]), "due_date"),
    (lambda b: b.update(tasks=[]), "tasks"),
    (lambda b: b.update(unit_price="12.345"), "unit_price"),
    (lambda b: b.update(customer_id=999999), "customer_id"),
    (lambda b: _task_change(b, planned_qty=0), "tasks[0].planned_qty"),
    (lambda b: _task_change(b, tolerance_pct=0.6), "tasks[0].tolerance_pct"),
    (lambda b: _task_change(b, process="工" * 33), "tasks[0].process"),
    (lambda b: _task_change(b, supplier_id=None, supplier_code="NO-SUCH"), "tasks[0].supplier_code"),
    (lambda b: _task_change(b, due_date=(date.fromisoformat(b["due_date"]) + timedelta(days=1)).isoformat()),
     "tasks[0].due_date"),
])
def test_bad_intake_names_the_field_and_stores_nothing(manager, parties, change, field):
    body = order_body(parties["customer"], parties["suppliers"])
    change(body)
    if body["tasks"] and body["tasks"][0].get("supplier_id") is None:
        body["tasks"][0].pop("supplier_id", None)

    res = manager.post("/api/v1/orders", json=body)

    assert res.status_code == 422, res.json
    assert res.json["error"]["code"] == "validation_error"
    assert res.json["error"]["field"] == field
    assert Order.select().count() == 0 and Task.select().count() == 0


def test_an_inactive_supplier_cannot_get_new_tasks(manager, parties):
    Supplier.update(active=False).where(Supplier.id == parties["suppliers"][1].id).execute()
    res = manager.post("/api/v1/orders", json=order_body(parties["customer"], parties["suppliers"]))
    assert res.status_code == 422 and res.json["error"]["field"] == "tasks[1].supplier_id"
    assert "停用" in res.json["error"]["message"]
    assert Order.select().count() == 0


def test_an_order_can_be_created_confirmed(manager, parties):
    res = manager.post("/api/v1/orders", json=order_body(parties["customer"], parties["suppliers"], confirm=True))
    assert res.status_code == 201
    assert res.json["state"] == "confirmed"
    assert res.json["nodes"][0]["code"] == "confirmed" and res.json["nodes"][0]["colour"] == "green"


# --- the state machine -----------------------------------------------------------------------------

def _patch(client, order_id, **body):
    return client.patch(f"/api/v1/orders/{order_id}", json=body)


def _create(client, parties, **changes):
    res = client.post("/api/v1/orders", json=order_body(parties["customer"], parties["suppliers"], **changes))
    assert res.status_code == 201, res.json
    return res.json["id"]


def _task_states(order_id):
    return [t.state for t in Task.select().where(Task.order == order_id).order_by(Task.id)]


def _last_state_entry(order_id):
    return (AuditEntry.select().where((AuditEntry.action == "order.state") & (AuditEntry.object_id == str(order_id)))
            .order_by(AuditEntry.id.desc()).first())


def test_an_order_walks_its_life_and_tasks_follow(manager, parties):
    order_id = _create(manager, parties)
    steps = [
        ("confirmed", "客户已确认", ["pending", "pending"]),
        ("in_production", "物料到齐", ["in_production", "in_production"]),
        ("on_hold", "客户要求暂停", ["on_hold", "on_hold"]),
        ("in_production", "恢复生产", ["in_production", "in_production"]),
        ("completed", "全部交货", ["completed", "completed"]),
    ]
    for state, reason, task_states in steps:
        res = _patch(manager, order_id, state=state, reason=reason)
        assert res.status_code == 200, res.json
        assert res.json["state"] == state
        assert _task_states(order_id) == task_states
        entry = _last_state_entry(order_id)
        assert entry.reason == reason and entry.actor_label == "张经理" and entry.actor_type == "staff"
        assert f'"state":"{state}"' in entry.after
        if state == "confirmed":
            node = NodeInstance.get((NodeInstance.order == order_id) & (NodeInstance.code == "confirmed"))
            assert node.state == "done" and node.done_at is not None
        if state == "on_hold":
            assert res.json["allowed_states"] == ["in_production", "cancelled"]
            # The same words as the mini program shows.
            assert res.json["state_name"] == res.json["tasks"][0]["state_name"] == "已暂停"
    tasks = list(Task.select().where(Task.order == order_id))
    assert all(t.started_at and t.completed_at for t in tasks)
    task_entries = AuditEntry.select().where((AuditEntry.action == "task.state")
                                             & AuditEntry.object_id.in_([str(t.id) for t in tasks]))
    assert task_entries.count() == 2 * 4  # every task change recorded, with the order's reason
    history = manager.get(f"/api/v1/orders/{order_id}").json["history"]
    assert history[0]["action"] in ("task.state", "order.state") and history[0]["reason"]


@pytest.mark.parametrize("path", [
    ["cancelled"],
    ["confirmed", "cancelled"],
    ["confirmed", "on_hold", "confirmed", "in_production", "cancelled"],
    ["confirmed", "in_production", "on_hold", "cancelled"],
])
def test_other_legal_paths_work_and_cancelling_cancels_open_tasks(manager, parties, path):
    order_id = _create(manager, parties)
    for state in path:
        res = _patch(manager, order_id, state=state, reason=f"改为{state}")
        assert res.status_code == 200, (state, res.json)
        assert _last_state_entry(order_id).reason == f"改为{state}"
    assert _task_states(order_id) == ["cancelled", "cancelled"]


@pytest.mark.parametrize("path, illegal", [
    ([], "in_production"),
    ([], "completed"),
    ([], "on_hold"),
    (["confirmed"], "completed"),
    (["confirmed"], "draft"),
    (["confirmed", "on_hold"], "in_production"),  # back only to where it left: confirmed
    (["cancelled"], "confirmed"),
    (["confirmed", "in_production", "completed"], "in_production"),
    (["confirmed", "in_production", "completed"], "cancelled"),
])
def test_illegal_transitions_are_refused_and_change_nothing(manager, parties, path, illegal):
    order_id = _create(manager, parties)
    for state in path:
        assert _patch(manager, order_id, state=state, reason="准备").status_code == 200
    before_state, before_tasks, entries = Order.get_by_id(order_id).state, _task_states(order_id), audit_count()

    res = _patch(manager, order_id, state=illegal, reason="试试")

    assert res.status_code == 409
    assert res.json["error"]["code"] == "illegal_transition"
    assert res.json["error"]["from"] == before_state and res.json["error"]["to"] == illegal
    assert "不能从「" in res.json["error"]["message"]
    assert Order.get_by_id(order_id).state == before_state
    assert _task_states(order_id) == before_tasks
    assert audit_count() == entries


def test_a_state_change_needs_a_reason(manager, parties):
    order_id = _create(manager, parties)
    for body in ({"state": "confirmed"}, {"state": "confirmed", "reason": "   "}):
        res = manager.patch(f"/api/v1/orders/{order_id}", json=body)
        assert res.status_code == 422 and res.json["error"]["field"] == "reason"
    assert Order.get_by_id(order_id).state == "draft"


# --- edits ---------------------------------------------------------------------------------------

def test_editing_fields_is_audited_and_moves_pending_nodes(manager, parties):
    order_id = _create(manager, parties)
    order = Order.get_by_id(order_id)
    new_due = order.due_date + timedelta(days=10)

    res = _patch(manager, order_id, notes="加急", due_date=new_due.isoformat(), reason="客户改交期")

    assert res.status_code == 200, res.json
    assert res.json["notes"] == "加急" and res.json["due_date"] == new_due.isoformat()
    assert res.json["nodes"][-1]["planned_date"] == new_due.isoformat()
    entry = AuditEntry.get((AuditEntry.action == "order.update") & (AuditEntry.object_id == str(order_id)))
    assert entry.reason == "客户改交期"
    assert '"notes":"首批"' in entry.before and '"notes":"加急"' in entry.after
    assert order.due_date.isoformat() in entry.before


def test_edits_must_keep_the_plan_consistent(manager, parties):
    order_id = _create(manager, parties)
    order = Order.get_by_id(order_id)
    res = _patch(manager, order_id, due_date=(order.due_date - timedelta(days=1)).isoformat())
    assert res.status_code == 422 and res.json["error"]["field"] == "due_date"
    assert Order.get_by_id(order_id).due_date == order.due_date


def test_a_closed_order_cannot_be_edited(manager, parties):
    order_id = _create(manager, parties)
    _patch(manager, order_id, state="cancelled", reason="客户取消")
    res = _patch(manager, order_id, notes="改一下")
    assert res.status_code == 409 and res.json["error"]["code"] == "order_closed"
    assert Order.get_by_id(order_id).notes == "首批"


# --- reading -------------------------------------------------------------------------------------

def test_orders_are_listed_and_filtered(manager, parties, dbconn):
    customer, (sup_a, sup_b) = parties["customer"], parties["suppliers"]
    other = factories.customer("杭州远景")
    running = factories.order(customer, [sup_a], state="in_production", days_after=5)
    factories.order(customer, [sup_b], state="draft", days_after=40)
    factories.order(other, [sup_a, sup_b], state="confirmed", days_after=20, product_code="P-9")

    def ids(**query):
        res = manager.get("/api/v1/orders", query_string=query)
        assert res.status_code == 200, res.json
        return res.json

    everything = ids()
    assert everything["total"] == 3 and everything["items"][0]["task_count"] == 2
    assert [o["id"] for o in ids(state="in_production")["items"]] == [running.id]
    assert ids(customer_id=other.id)["total"] == 1
    assert ids(supplier_id=sup_a.id)["total"] == 2
    assert ids(q=running.order_no)["items"][0]["id"] == running.id
    assert ids(due_before=(china_date() + timedelta(days=10)).isoformat())["total"] == 1
    assert ids(due_after=(china_date() + timedelta(days=10)).isoformat())["total"] == 2
    page = ids(page=2, per_page=2)
    assert page["total"] == 3 and len(page["items"]) == 1
    assert manager.get("/api/v1/orders", query_string={"state": "lost"}).json["error"]["field"] == "state"


def test_an_orders_page_costs_the_same_queries_for_1_or_5_tasks(manager, parties, dbconn):
    small = factories.order(parties["customer"], parties["suppliers"][:1])
    large = factories.order(parties["customer"], parties["suppliers"] + [factories.supplier() for _ in range(3)])
    for task in large.tasks:
        Urge.create(task=task, message="请加快")

    def read(order):
        res = manager.get(f"/api/v1/orders/{order.id}")
        assert res.status_code == 200, res.json
        return res.json

    _, few = _statements(lambda: read(small))
    detail, many = _statements(lambda: read(large))

    assert len(many) == len(few)
    tasks = detail["tasks"]
    assert len(tasks) == 5 and {t["open_urges"] for t in tasks} == {1}
    assert [t["supplier"]["id"] for t in tasks] == [t.supplier_id for t in large.tasks.order_by(Task.id)]


def test_an_unknown_order_is_a_404(manager):
    assert manager.get("/api/v1/orders/424242").status_code == 404
    assert _patch(manager, 424242, notes="x").status_code == 404


# --- who may ---------------------------------------------------------------------------------------

def test_qc_staff_may_read_but_not_create_or_change(auth, parties):
    order = factories.order(parties["customer"], parties["suppliers"], state="draft")
    client = auth.login("qc")

    assert client.get(f"/api/v1/orders/{order.id}").status_code == 200
    assert client.post("/api/v1/orders", json=order_body(parties["customer"], parties["suppliers"])).status_code == 403
    assert _patch(client, order.id, state="confirmed", reason="x").status_code == 403
    assert Order.select().count() == 1 and Order.get_by_id(order.id).state == "draft"


def test_an_erp_key_creates_orders_as_the_api(client, parties):
    _, key = create_api_key("erp")
    res = client.post("/api/v1/orders", json=order_body(parties["customer"], parties["suppliers"]),
                      headers={"Authorization": f"Bearer {key}"})
    assert res.status_code == 201 and res.json["source"] == "api"
    assert res.json["history"][0]["actor"] == {"type": "api_key", "id": str(_key_id()), "label": "erp"}


def _key_id():
    from app.models import ApiKey
    return ApiKey.get(ApiKey.name == "erp").id


STAFF_ROUTES = [
    ("get", "/api/v1/orders"),
    ("post", "/api/v1/orders"),
    ("get", "/api/v1/orders/{order}"),
    ("patch", "/api/v1/orders/{order}"),
    ("post", "/api/v1/orders/import"),
    ("get", "/api/v1/orders/{order}/labels.pdf"),
    ("get", "/api/v1/tasks/{task}/label.png"),
    ("post", "/api/v1/tasks/{task}/urges"),
    ("get", "/api/v1/tasks/{task}/urges"),
    ("get", "/api/v1/node-templates"),
    ("post", "/api/v1/node-templates"),
    ("get", "/api/v1/suppliers"),
    ("post", "/api/v1/suppliers"),
    ("get", "/api/v1/customers"),
    ("post", "/api/v1/customers"),
    ("post", "/api/v1/invites"),
]


@pytest.mark.parametrize("who", ["nobody", "supplier", "customer"])
def test_mini_program_users_and_strangers_get_401_on_staff_routes(client, parties, who):
    order = factories.order(parties["customer"], parties["suppliers"], state="in_production")
    task = order.tasks.first()
    party = {"supplier": parties["suppliers"][0], "customer": parties["customer"]}.get(who)
    headers = factories.bearer(factories.wechat_user(party)) if party else {}
    expected = "wrong_credential" if party else "unauthorized"
    entries = audit_count()

    for method, path in STAFF_ROUTES:
        url = path.format(order=order.id, task=task.id)
        res = getattr(client, method)(url, json={} if method != "get" else None, headers=headers)
        assert res.status_code == 401, (method, url, res.status_code)
        assert res.json["error"]["code"] == expected

    assert Order.get_by_id(order.id).state == "in_production" and Urge.select().count() == 0
    assert audit_count() == entries


# --- urges --------------------------------------------------------------------------------------

def test_a_manager_urges_a_running_task(manager, parties, dbconn):
    order = factories.order(parties["customer"], parties["suppliers"], state="in_production")
    task = order.tasks.order_by(Task.id).first()

    res = manager.post(f"/api/v1/tasks/{task.id}/urges", json={"message": "请本周五前交货"})

    assert res.status_code == 201, res.json
    assert res.json["via"] == "dashboard" and res.json["by"] == "张经理" and res.json["replied_at"] is None
    urge = Urge.get_by_id(res.json["id"])
    assert urge.task_id == task.id and urge.message == "请本周五前交货"
    entry = AuditEntry.get(AuditEntry.action == "task.urge")
    assert entry.object_id == str(task.id) and entry.actor_label == "张经理"
    listed = manager.get(f"/api/v1/tasks/{task.id}/urges").json
    assert listed["total"] == 1 and listed["items"][0]["id"] == urge.id
    detail = manager.get(f"/api/v1/orders/{order.id}").json
    assert detail["tasks"][0]["open_urges"] == 1


def test_only_running_or_held_tasks_can_be_urged(manager, parties, dbconn):
    draft = factories.order(parties["customer"], parties["suppliers"][:1], state="confirmed")
    task = draft.tasks.first()
    res = manager.post(f"/api/v1/tasks/{task.id}/urges", json={})
    assert res.status_code == 409 and res.json["error"]["code"] == "task_not_active"
    assert Urge.select().count() == 0
    assert manager.post("/api/v1/tasks/999999/urges", json={}).status_code == 404


def test_an_erp_urge_is_marked_as_from_the_api(client, parties):
    order = factories.order(parties["customer"], parties["suppliers"][:1], state="on_hold")
    _, key = create_api_key("erp")
    res = client.post(f"/api/v1/tasks/{order.tasks.first().id}/urges", json={"message": "ERP 催单"},
                      headers={"Authorization": f"Bearer {key}"})
    assert res.status_code == 201 and res.json["via"] == "api" and res.json["by"] is None


# --- lock order: domain rows first, the audit head last ---------------------------------------------

def _lock_waits():
    """Transactions of this test's database waiting for a row lock now (MySQL)."""
    return db.execute_sql(
        "SELECT COUNT(*) FROM information_schema.INNODB_TRX t "
        "JOIN information_schema.PROCESSLIST p ON p.ID = t.trx_mysql_thread_id "
        "WHERE p.DB = DATABASE() AND t.trx_state = 'LOCK WAIT'").fetchone()[0]


def _wait_for_lock_waits(n):
    deadline = time.monotonic() + 10
    # InnoDB refreshes INNODB_TRX only after 0.1 s without readers: read it sooner and it may
    # still show the waits of the race just before (the suite is fast enough for that now).
    time.sleep(0.15)
    while _lock_waits() < n:
        assert time.monotonic() < deadline, f"expected {n} transactions waiting for a lock"
        time.sleep(0.15)


def _race(order_id, first, second):
    """Run two requests so that they interleave the way that deadlocked: the order's audit head is held
    while `first` runs until it waits for a lock, then `second` runs until it waits too, then
    both go on. Returns their responses."""
    results = {}
    threads = [threading.Thread(target=lambda name=name, call=call: results.__setitem__(name, call()))
               for name, call in (("first", first), ("second", second))]
    with db.atomic():
        AuditChain.select().where(AuditChain.key == f"order:{order_id}").for_update().get()
        threads[0].start()
        _wait_for_lock_waits(1)
        threads[1].start()
        _wait_for_lock_waits(2)
    for t in threads:
        t.join()
    return results["first"], results["second"]


@pytest.fixture
def running(app, manager, parties, backend):
    """(order id, its first task, the task supplier's auth) for an order in production; MySQL only."""
    if backend["name"] != "mysql":
        pytest.skip("SQLite has one writer at a time: writers queue, they cannot deadlock")
    order_id = _create(manager, parties)
    for step in ("confirmed", "in_production"):
        assert _patch(manager, order_id, state=step, reason="开工").status_code == 200
    task = Task.select().where(Task.order == order_id).order_by(Task.id).first()
    return order_id, task, factories.bearer(factories.wechat_user(task.supplier))


@pytest.mark.parametrize("state", ["on_hold", "cancelled"])
def test_a_state_change_racing_a_progress_report_does_not_deadlock(app, manager, running, state):
    """The order change locks order and tasks, the report locks the task; both take the audit
    head last. With the head taken between order and tasks, this interleaving was a deadlock
    (MySQL error 1213) and one of the two requests failed with a 500."""
    order_id, task, supplier_auth = running

    change, report = _race(
        order_id,
        lambda: _patch(manager, order_id, state=state, reason="客户通知"),
        lambda: app.test_client().post(f"/mp/v1/tasks/{task.id}/reports", headers=supplier_auth, json={
            "client_id": str(uuid.uuid4()), "report_date": china_date().isoformat(), "qty_done": 100}))

    assert change.status_code == 200, change.json
    assert report.status_code == 409 and report.json["error"]["code"] == "task_not_in_production", report.json
    task = Task.get_by_id(task.id)
    assert task.state == state and task.qty_done == 0


def test_an_edit_racing_a_node_completion_does_not_deadlock(app, manager, running):
    """The edit locks the order and its pending nodes; the supplier's node completion locks the
    task and its node; both take the audit head last."""
    order_id, task, supplier_auth = running
    new_due = Order.get_by_id(order_id).due_date + timedelta(days=7)

    edit, node = _race(
        order_id,
        lambda: _patch(manager, order_id, due_date=new_due.isoformat(), reason="客户改交期"),
        lambda: app.test_client().post(f"/mp/v1/tasks/{task.id}/nodes/materials_ready/complete",
                                       headers=supplier_auth, json={"client_id": str(uuid.uuid4())}))

    assert edit.status_code == 200, edit.json
    assert node.status_code == 201, node.json
    assert Order.get_by_id(order_id).due_date == new_due
    # Done for this task; the order's node waits for the order's other task.
    assert NodeInstance.get((NodeInstance.order == order_id) & (NodeInstance.code == "materials_ready")).state \
        == "in_progress"
