"""Materials (issue 10, item 5): a lot scanned twice is issued once; the balance per task flags
shortage and over-consumption; the trace of a batch names its lots and the trace of a lot names
its batches and orders; the material loss rate. Through the manager and mini-program APIs."""
import threading
import uuid
from datetime import timedelta
from types import SimpleNamespace

import pytest

from app.models import AuditEntry, Batch, BatchMaterial, MaterialIssue, MaterialReturn, Task
from app.services import audit, materials
from app.timeutil import china_date
from tests import factories as f


@pytest.fixture
def world(manager, client, dbconn):
    """Our supplier with a task on each of two orders, a rival supplier on the first order, a
    customer; steel (kg) and rivets (件) in the material master, one lot of steel."""
    sup, rival, cust = f.supplier(), f.supplier("无锡顺达焊接厂"), f.customer()
    order1, order2 = f.order(cust, [sup, rival]), f.order(cust, [sup])
    task = Task.get((Task.order == order1) & (Task.supplier == sup))
    w = SimpleNamespace(manager=manager, client=client, supplier=sup, rival=rival, customer=cust,
                        order1=order1, order2=order2, task=task, task2=Task.get(Task.order == order2),
                        rival_task=Task.get((Task.order == order1) & (Task.supplier == rival)),
                        user=f.wechat_user(sup), rival_user=f.wechat_user(rival), customer_user=f.wechat_user(cust))
    w.auth, w.rival_auth, w.customer_auth = f.bearer(w.user), f.bearer(w.rival_user), f.bearer(w.customer_user)
    w.steel = _ok(manager.post("/api/v1/material-items", json={"code": "ST-SPCC-1.0", "name": "冷轧钢板 1.0mm",
                                                               "unit": "kg", "spec": "SPCC"}), 201)
    w.rivet = _ok(manager.post("/api/v1/material-items", json={"code": "RV-M4", "name": "铆钉 M4", "unit": "件"}), 201)
    w.lot = _lot(w, "L-2026-001", w.steel, 500)
    return w


def _ok(res, status=200):
    assert res.status_code == status, (res.status_code, res.json)
    return res.json


def _lot(w, lot_no, item, quantity):
    return _ok(w.manager.post("/api/v1/material-lots", json={"lot_no": lot_no, "item_id": item["id"],
                                                             "quantity": quantity}), 201)


def _issue(w, lot, task, qty, unit="kg", **extra):
    return w.manager.post("/api/v1/material-issues",
                          json={"lot_code": lot["scan_url"], "task_id": task.id, "qty": qty, "unit": unit, **extra})


def _report(w, qty, task=None):
    body = {"client_id": str(uuid.uuid4()), "report_date": china_date().isoformat(), "qty_done": qty}
    return _ok(w.client.post(f"/mp/v1/tasks/{(task or w.task).id}/reports", json=body, headers=w.auth), 201)


def _actions(action):
    return AuditEntry.select().where(AuditEntry.action == action).count()


def _line(balance, code):
    return next(line for line in balance["lines"] if line["item"]["code"] == code)


# --- issuing by scanning a lot label ----------------------------------------------------------------

def test_a_lot_scanned_twice_is_issued_once(world, auth):
    w = world
    assert w.lot["qr_code"].startswith("m.") and w.lot["scan_url"].endswith("/s/" + w.lot["qr_code"])
    label = w.manager.get(w.lot["label_url"])
    assert label.status_code == 200 and label.mimetype == "image/png" and label.data[:8] == b"\x89PNG\r\n\x1a\n"

    first = _ok(_issue(w, w.lot, w.task, 200), 201)
    assert first["already_issued"] is False and first["qty"] == 200 and first["unit"] == "kg"
    assert first["supplier"]["id"] == w.supplier.id and first["task"]["task_no"] == w.task.task_no

    # The same label scanned again — by the same person, or by a colleague on another device.
    again = _ok(_issue(w, w.lot, w.task, 200), 200)
    assert again["already_issued"] is True and again["id"] == first["id"]
    colleague = f.staff_client(w.client.application.test_client(), "manager")
    by_code = _ok(colleague.post("/api/v1/material-issues", json={
        "lot_code": w.lot["qr_code"], "task_id": w.task.id, "qty": 200.0, "unit": "kg"}), 200)
    assert by_code["id"] == first["id"]
    # Another quantity of the same lot for the same task is refused, not a second issue.
    other = _issue(w, w.lot, w.task, 150)
    assert other.status_code == 409 and other.json["error"]["code"] == "lot_already_issued"
    assert "不会重复发料" in other.json["error"]["message"]
    assert MaterialIssue.select().count() == 1 and _actions("material.issue") == 1

    # The lot shows what it issued and still holds; the same lot may go to another task.
    _ok(_issue(w, w.lot, w.task2, 250), 201)
    lot = _ok(w.manager.get(f"/api/v1/material-lots/{w.lot['id']}"))
    assert (lot["issued_qty"], lot["available_qty"]) == (450, 50)
    too_much = _issue(w, w.lot, w.rival_task, 60)
    assert too_much.status_code == 422 and too_much.json["error"]["code"] == "lot_insufficient"

    # The supplier sees what was issued to it and confirms receipt once.
    mine = _ok(w.client.get("/mp/v1/materials", headers=w.auth))
    assert mine["total"] == 2 and {i["task"]["id"] for i in mine["items"]} == {w.task.id, w.task2.id}
    scanned = _ok(w.client.get(f"/mp/v1/materials/scan/{w.lot['qr_code']}", headers=w.auth))
    assert scanned["lot"]["lot_no"] == "L-2026-001" and len(scanned["issues"]) == 2
    received = _ok(w.client.post(f"/mp/v1/material-issues/{first['id']}/receive", headers=w.auth))
    assert received["received_at"].endswith("+08:00")
    assert _ok(w.client.post(f"/mp/v1/material-issues/{first['id']}/receive", headers=w.auth)) == received
    assert _actions("material.receive") == 1
    assert audit.verify() == []


def test_two_scanners_at_once_record_one_issue(world):
    """Two warehouse devices scan the same lot for the same task at the same moment."""
    w = world
    clients = [f.staff_client(w.client.application.test_client(), "manager") for _ in range(3)]
    barrier, results = threading.Barrier(len(clients)), []

    def scan(client):
        barrier.wait()
        res = client.post("/api/v1/material-issues",
                          json={"lot_code": w.lot["qr_code"], "task_id": w.task.id, "qty": 120, "unit": "kg"})
        results.append((res.status_code, res.json.get("id")))

    threads = [threading.Thread(target=scan, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(code for code, _ in results) == [200, 200, 201], results
    assert len({issue_id for _, issue_id in results}) == 1
    assert MaterialIssue.select().count() == 1 and _actions("material.issue") == 1


# --- balance ------------------------------------------------------------------------------------

def test_the_balance_flags_shortage_then_over_consumption(world):
    w = world
    bill = {"lines": [{"item_id": w.steel["id"], "qty_per_unit": 0.5, "tolerance_pct": 0.02}]}
    balance = _ok(w.manager.put(f"/api/v1/tasks/{w.task.id}/material-bill", json=bill))
    steel = _line(balance, "ST-SPCC-1.0")
    assert steel["issued"] == 0 and steel["remaining_need"] == 500 and steel["shortage"] is True  # nothing issued yet
    assert _actions("material.bill") == 1

    issue = _ok(_issue(w, w.lot, w.task, 300), 201)
    rivets = _lot(w, "RV-001", w.rivet, 5000)
    _ok(_issue(w, rivets, w.task, 1000, unit="件"), 201)  # not on the bill: never flagged
    _report(w, 400)  # 400 of 1000 made: 200 kg used by the plan, 300 kg to go for the other 600

    balance = _ok(w.manager.get(f"/api/v1/tasks/{w.task.id}/materials"))
    steel = _line(balance, "ST-SPCC-1.0")
    assert balance["produced_qty"] == 400 and balance["supplier"]["id"] == w.supplier.id
    assert (steel["issued"], steel["consumed"], steel["balance"], steel["remaining_need"]) == (300, 200, 100, 300)
    assert steel["shortage"] is True and steel["shortage_qty"] == 200 and steel["over_consumption"] is False
    assert balance["shortage"] is True and balance["over_consumption"] is False
    rivet = _line(balance, "RV-M4")
    assert rivet["qty_per_unit"] is None and rivet["balance"] == 1000 and not rivet["shortage"]

    # 20 kg come back as scrap; then 700 are made: 350 kg by the plan, but only 280 kg were left.
    _ok(w.manager.post(f"/api/v1/material-issues/{issue['id']}/returns",
                       json={"scrap_qty": 20, "unit": "kg", "note": "冲压废料"}), 201)
    _report(w, 700)
    balance = _ok(w.manager.get(f"/api/v1/tasks/{w.task.id}/materials"))
    steel = _line(balance, "ST-SPCC-1.0")
    assert (steel["consumed"], steel["scrapped"], steel["balance"]) == (350, 20, -70)
    assert steel["over_consumption"] is True and steel["over_qty"] == 70  # beyond 2 % of 350 kg
    assert steel["shortage"] is True and steel["shortage_qty"] == 150

    # A loose tolerance (25 % of 350 kg = 87.5 kg) covers the 70 kg.
    bill["lines"][0]["tolerance_pct"] = 0.25
    relaxed = _line(_ok(w.manager.put(f"/api/v1/tasks/{w.task.id}/material-bill", json=bill)), "ST-SPCC-1.0")
    assert relaxed["over_consumption"] is False and relaxed["balance"] == -70

    # The supplier sees the same balance; the staff list per supplier has the task.
    own = _ok(w.client.get(f"/mp/v1/tasks/{w.task.id}/materials", headers=w.auth))
    own_steel = next(line for line in own["lines"] if line["item"]["code"] == "ST-SPCC-1.0")
    assert (own_steel["balance"], own_steel["shortage"], own["produced_qty"]) == (-70, True, 700)
    page = _ok(w.manager.get(f"/api/v1/suppliers/{w.supplier.id}/materials"))
    assert [t["task"]["id"] for t in page["items"]] == [w.task.id]


# --- trace ---------------------------------------------------------------------------------------

def test_the_trace_of_a_batch_names_its_lots_and_a_lot_names_its_batches_and_orders(world):
    w = world
    lot2 = _lot(w, "L-2026-002", w.steel, 300)
    _ok(_issue(w, w.lot, w.task, 200), 201)
    _ok(_issue(w, lot2, w.task, 100), 201)
    _ok(_issue(w, w.lot, w.task2, 150), 201)
    b1 = Batch.create(task=w.task, batch_no="B-T1-01", qty=300)
    b2 = Batch.create(task=w.task, batch_no="B-T1-02", qty=200)
    b3 = Batch.create(task=w.task2, batch_no="B-T2-01", qty=250)

    # Staff declare batch 1; the supplier declares batch 3 from the mini program, by scanning.
    t1 = _ok(w.manager.put(f"/api/v1/batches/{b1.id}/materials",
                           json={"lots": [{"lot_id": w.lot["id"], "qty": 120}, {"lot_code": lot2["scan_url"], "qty": 40}]}))
    assert t1["declared"] is True and t1["order"]["order_no"] == w.order1.order_no
    assert [(x["lot"]["lot_no"], x["qty"], x["item"]["code"]) for x in t1["lots"]] == [
        ("L-2026-001", 120, "ST-SPCC-1.0"), ("L-2026-002", 40, "ST-SPCC-1.0")]
    t3 = _ok(w.client.put(f"/mp/v1/batches/{b3.id}/materials", headers=w.auth,
                          json={"lots": [{"lot_code": w.lot["qr_code"], "qty": 150}]}))
    assert t3["declared"] is True and [x["lot"]["lot_no"] for x in t3["lots"]] == ["L-2026-001"]
    assert _ok(w.manager.get(f"/api/v1/batches/{b3.id}/trace"))["lots"][0]["qty"] == 150
    assert _actions("batch.materials") == 2

    # Batch 2 declared nothing: its trace shows the lots issued to its task, presumed.
    t2 = _ok(w.manager.get(f"/api/v1/batches/{b2.id}/trace"))
    assert t2["declared"] is False
    assert [(x["lot"]["lot_no"], x["qty"], x["declared"]) for x in t2["lots"]] == [
        ("L-2026-001", None, False), ("L-2026-002", None, False)]

    # Forward: lot 1 went into batches 1 and 3 (declared) and, presumed, batch 2; orders 1 and 2.
    forward = _ok(w.manager.get(f"/api/v1/material-lots/{w.lot['id']}"))
    assert [(b["batch"]["batch_no"], b["qty"], b["declared"]) for b in forward["batches"]] == [
        ("B-T1-01", 120, True), ("B-T2-01", 150, True), ("B-T1-02", None, False)]
    assert [o["order_no"] for o in forward["orders"]] == [w.order1.order_no, w.order2.order_no]
    assert {b["order_no"] for b in forward["batches"]} == {w.order1.order_no, w.order2.order_no}
    assert [(i["task"]["id"], i["qty"]) for i in forward["issues"]] == [(w.task.id, 200), (w.task2.id, 150)]
    lot2_forward = _ok(w.manager.get(f"/api/v1/material-lots/{lot2['id']}"))
    assert [(b["batch"]["batch_no"], b["declared"]) for b in lot2_forward["batches"]] == [
        ("B-T1-01", True), ("B-T1-02", False)]
    assert [o["order_no"] for o in lot2_forward["orders"]] == [w.order1.order_no]

    # Declaring again replaces; a lot never issued to the task (or unknown: they answer alike, so
    # nobody learns of other suppliers' lots), or more than was issued, is refused.
    rivets = _lot(w, "RV-002", w.rivet, 10)
    for lots, code in (([{"lot_id": rivets["id"], "qty": 1}], "lot_not_issued_to_task"),
                       ([{"lot_id": w.lot["id"], "qty": 81}], "trace_exceeds_issue"),  # 120 used by batch 1 of 200
                       ([{"lot_code": "m.nope", "qty": 1}], "lot_not_issued_to_task")):
        res = w.manager.put(f"/api/v1/batches/{b2.id}/materials", json={"lots": lots})
        assert res.status_code == 422 and res.json["error"]["code"] == code, res.json
        assert "RV-002" not in res.json["error"]["message"]
    assert BatchMaterial.select().where(BatchMaterial.batch == b2.id).count() == 0
    _ok(w.manager.put(f"/api/v1/batches/{b2.id}/materials", json={"lots": [{"lot_id": w.lot["id"], "qty": 80}]}))
    assert _ok(w.manager.get(f"/api/v1/batches/{b2.id}/trace"))["declared"] is True


# --- bad input --------------------------------------------------------------------------------------

def _nothing_changes():
    return (MaterialIssue.select().count(), MaterialReturn.select().count(), AuditEntry.select().count())


def test_bad_material_input_is_refused_with_a_clear_error_and_nothing_stored(world):
    w = world
    issue = _ok(_issue(w, w.lot, w.task, 100), 201)
    _ok(w.manager.post(f"/api/v1/material-issues/{issue['id']}/returns",
                       json={"good_qty": 30, "leftover_qty": 10.5, "unit": "kg"}), 201)
    before = _nothing_changes()
    returns = f"/api/v1/material-issues/{issue['id']}/returns"
    cases = [
        # returning more than was issued: 100 issued, 40.5 back, 60 more is too much
        (w.manager.post(returns, json={"good_qty": 50, "scrap_qty": 10, "unit": "kg"}), 422, "return_exceeds_issue"),
        (w.manager.post(returns, json={"scrap_qty": -1, "unit": "kg"}), 422, "negative_quantity"),
        (w.manager.post(returns, json={"good_qty": 0, "unit": "kg"}), 422, "empty_return"),
        (w.manager.post(returns, json={"good_qty": 1, "unit": "吨"}), 422, "unit_mismatch"),
        (_issue(w, w.lot, w.task2, -5), 422, "negative_quantity"),
        (_issue(w, w.lot, w.task2, 1.2345), 422, "too_many_decimals"),
        (_issue(w, w.lot, w.task2, 5, unit="件"), 422, "unit_mismatch"),
        (w.manager.post("/api/v1/material-issues", json={"lot_code": "https://x/s/m.unknown", "task_id": w.task2.id,
                                                         "qty": 5, "unit": "kg"}), 404, "unknown_lot"),
        (w.manager.post("/api/v1/material-lots", json={"lot_no": "L-NEG", "item_id": w.steel["id"], "quantity": -3}),
         422, "negative_quantity"),
        (w.manager.put(f"/api/v1/tasks/{w.task.id}/material-bill",
                       json={"lines": [{"item_id": w.steel["id"], "qty_per_unit": -0.5}]}), 422, "negative_quantity"),
    ]
    for res, status, code in cases:
        assert res.status_code == status and res.json["error"]["code"] == code, (code, res.status_code, res.json)
        assert any("\u4e00" <= ch <= "\u9fff" for ch in res.json["error"]["message"]), res.json
    over = cases[0][0].json["error"]["message"]
    assert "发料 100 kg" in over and "已退回 40.5 kg" in over and "本次 60 kg" in over
    assert "「kg」" in cases[3][0].json["error"]["message"]
    assert _nothing_changes() == before
    assert _ok(w.manager.get(f"/api/v1/material-lots/{w.lot['id']}"))["available_qty"] == 440.5


# --- authorization ----------------------------------------------------------------------------------

def test_suppliers_see_only_their_own_materials_and_customers_none(world):
    w = world
    issue = _ok(_issue(w, w.lot, w.task, 100), 201)
    batch = Batch.create(task=w.task, batch_no="B-OWN", qty=10)
    ours = [("GET", f"/mp/v1/tasks/{w.task.id}/materials", None),
            ("GET", f"/mp/v1/materials/scan/{w.lot['qr_code']}", None),
            ("POST", f"/mp/v1/material-issues/{issue['id']}/receive", None),
            ("GET", f"/mp/v1/batches/{batch.id}/materials", None),
            ("PUT", f"/mp/v1/batches/{batch.id}/materials", {"lots": [{"lot_id": w.lot["id"], "qty": 1}]})]
    before = (_nothing_changes(), BatchMaterial.select().count(), MaterialIssue.get_by_id(issue["id"]).received_at)
    for method, path, body in ours:
        for headers in (w.rival_auth, w.customer_auth):
            res = w.client.open(path, method=method, json=body, headers=headers)
            assert res.status_code == 404 and res.json["error"]["code"] == "not_found", (path, res.json)
        assert w.client.open(path, method=method, json=body).status_code == 401
    assert (_nothing_changes(), BatchMaterial.select().count(),
            MaterialIssue.get_by_id(issue["id"]).received_at) == before
    # The rival's list is empty; a customer has no materials list at all.
    assert _ok(w.client.get("/mp/v1/materials", headers=w.rival_auth))["total"] == 0
    denied = w.client.get("/mp/v1/materials", headers=w.customer_auth)
    assert denied.status_code == 403 and denied.json["error"]["code"] == "wrong_role"
    # Mini-program tokens never reach the staff routes; QC reads but does not issue.
    assert w.client.get(f"/api/v1/tasks/{w.task.id}/materials", headers=w.auth).status_code == 401
    qc = f.staff_client(w.client.application.test_client(), "qc")
    assert qc.get(f"/api/v1/tasks/{w.task.id}/materials").status_code == 200
    refused = _issue(SimpleNamespace(manager=qc), w.lot, w.task2, 1)
    assert refused.status_code == 403 and MaterialIssue.select().count() == 1
    # The owner reaches every one of them (so the 404s above are about ownership).
    for method, path, body in ours:
        assert w.client.open(path, method=method, json=body, headers=w.auth).status_code == 200, path


# --- loss rate ------------------------------------------------------------------------------------

def test_material_loss_rate_counts_scrap_and_unaccounted_material_of_completed_tasks(world):
    w = world
    w.manager.put(f"/api/v1/tasks/{w.task.id}/material-bill",
                  json={"lines": [{"item_id": w.steel["id"], "qty_per_unit": 0.9}]})
    steel = _ok(_issue(w, w.lot, w.task, 100), 201)
    rivets = _lot(w, "RV-003", w.rivet, 50)
    rivet_issue = _ok(_issue(w, rivets, w.task, 10, unit="件"), 201)
    _report(w, 100)  # 90 kg used by the plan
    _ok(w.manager.post(f"/api/v1/material-issues/{steel['id']}/returns",
                       json={"good_qty": 2, "scrap_qty": 4, "unit": "kg"}), 201)
    _ok(w.manager.post(f"/api/v1/material-issues/{rivet_issue['id']}/returns",
                       json={"leftover_qty": 10, "unit": "件"}), 201)
    _ok(w.manager.patch(f"/api/v1/orders/{w.order1.id}", json={"state": "completed", "reason": "全部交货"}))
    assert Task.get_by_id(w.task.id).completed_at is not None

    # Steel: (4 scrap + 4 unaccounted: 100 − 90 − 2 − 4) / 100 = 8 %; rivets all back: 0 %; mean 4 %.
    today = china_date()
    assert materials.loss_rate(w.supplier.id, today, today) == 0.04
    # The supplier's quality figures (the scorecard's inputs) carry the same figure.
    quality = _ok(w.manager.get(f"/api/v1/suppliers/{w.supplier.id}/quality",
                                query_string={"from": today.isoformat(), "to": today.isoformat()}))
    assert quality["material_loss_rate"] == 0.04
    figures = materials.loss_figures(w.supplier.id, today - timedelta(days=30), today)
    assert figures.lines == 2 and figures.scrapped_by_unit["kg"] == 4 and figures.unaccounted_by_unit["kg"] == 4
    assert figures.issued_by_unit == {"kg": 100, "件": 10}
    # Other periods, and a supplier whose task was completed without material, have nothing to measure.
    assert materials.loss_rate(w.supplier.id, today + timedelta(days=1), today + timedelta(days=30)) is None
    assert materials.loss_rate(w.supplier.id, today - timedelta(days=30), today - timedelta(days=1)) is None
    assert materials.loss_rate(w.rival.id, today, today) is None
