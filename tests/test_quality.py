"""The quality loop end to end: a failed first article freezes its batch (no shipping, no
receiving), opens a nonconformance, raises a qc_fail alert and tells QC exactly once; rework and a
passing re-inspection release it; the order's QC node is red meanwhile; the customer sees only
passed QC inspections with their photos; templates are versioned and the most specific wins."""
import uuid
from datetime import timedelta

import pytest

from app.models import Alert, AuditEntry, Batch, Inspection, Nonconformance, Task
from app.timeutil import china_date
from tests.helpers import ready_photo
from tests.quality_helpers import (
    inspect,
    make_plant,
    new_batch,
    qc_messages,
    qc_node,
    qc_photo,
    readings,
    ready_photo_of_qc,
    ship,
)


@pytest.fixture
def plant(app, dbconn, client):
    """An order in production at one supplier (and another supplier's order), a QC inspector on
    WeCom, a manager, a supplier user of each supplier, a customer user, and a QC template."""
    return make_plant(app, client)


def test_a_failed_first_article_freezes_the_batch_opens_an_nc_and_tells_qc_once(plant):
    d = plant
    batch = new_batch(d)
    assert batch["batch_no"] == f"{d.task.task_no}-B01" and batch["status"] == "open"

    photo_id = qc_photo(d)  # through the real upload route
    res = inspect(d, batch["id"], 2.3, photo_id=photo_id, defects=[{"category": "dimension", "count": 3}])
    assert res.status_code == 201, res.json
    assert res.json["result"] == "fail" and res.json["source"] == "qc"
    assert res.json["batch"]["status"] == "frozen"
    assert [r["passed"] for r in res.json["readings"]] == [True, False]
    assert res.json["readings"][1]["value"] == "2.3"
    assert res.json["defect_qty"] == 3 and res.json["template"]["version"] == 1

    # Frozen: it may neither ship nor be received.
    refused = ship(d, batch["id"], 10)
    assert refused.status_code == 409 and refused.json["error"]["code"] == "batch_frozen"
    assert "冻结" in refused.json["error"]["message"]
    received = d.manager.post(f"/api/v1/batches/{batch['id']}/receipts", json={"qty": 10})
    assert received.status_code == 409 and received.json["error"]["code"] == "batch_frozen"
    assert Batch.get_by_id(batch["id"]).qty_shipped == 0

    # A nonconformance with owner, due date and description.
    nc = Nonconformance.get(Nonconformance.id == res.json["nonconformance_id"])
    assert (nc.owner_id, nc.status, nc.batch_id) == (d.qc_user.id, "open", batch["id"])
    assert nc.due_date == china_date() + timedelta(days=3)
    assert "板厚" in nc.description
    listed = d.manager.get("/api/v1/nonconformances?status=open").json
    assert [n["id"] for n in listed["items"]] == [nc.id]

    # QC hears of it exactly once, as a qc_fail alert.
    messages = qc_messages()
    assert len(messages) == 1, [m.payload for m in messages]
    assert "质检不合格" in messages[0].payload["content"] and batch["batch_no"] in messages[0].payload["content"]
    alert = Alert.get((Alert.task == d.task.id) & (Alert.kind == "qc_fail"))
    assert alert.status == "open"

    # The order's QC node is red; the customer sees no failure.
    order = d.manager.get(f"/api/v1/orders/{d.order.id}").json
    node = next(n for n in order["nodes"] if n["code"] == "qc")
    assert (node["state"], node["colour"]) == ("delayed", "red")
    timeline = d.client.get(f"/mp/v1/orders/{d.order.id}", headers=d.cust).json
    qc = next(n for n in timeline["nodes"] if n["code"] == "qc")
    assert qc["inspections"] == [] and qc["photos"] == []
    # Not even the colour: before its planned date the QC node is simply in progress for the customer.
    assert (qc["state"], qc["colour"]) == ("in_progress", "yellow")
    assert "nonconformance" not in str(timeline) and "板厚" not in str(timeline)

    # Audited: the inspection, the freeze, the NC.
    actions = {e.action for e in AuditEntry.select()}
    assert {"inspection.record", "batch.freeze", "nc.open", "alert.open"} <= actions


def test_rework_and_a_passing_reinspection_release_the_batch(plant):
    d = plant
    batch = new_batch(d)
    failed = inspect(d, batch["id"], 2.4)
    assert failed.json["result"] == "fail"

    early = d.qc.post(f"/api/v1/batches/{batch['id']}/release", json={"reason": "急用"})
    assert early.status_code == 409 and early.json["error"]["code"] == "disposition_required"
    no_reason = d.qc.post(f"/api/v1/batches/{batch['id']}/disposition", json={"disposition": "rework"})
    assert no_reason.status_code == 422
    rework = d.qc.post(f"/api/v1/batches/{batch['id']}/disposition",
                       json={"disposition": "rework", "reason": "板厚超差，返工校平"})
    assert rework.status_code == 200, rework.json
    assert (rework.json["status"], rework.json["disposition"]) == ("frozen", "rework")
    assert ship(d, batch["id"], 10).json["error"]["code"] == "batch_frozen"
    manual = d.qc.post(f"/api/v1/batches/{batch['id']}/release", json={"reason": "已返工"})
    assert manual.status_code == 409 and manual.json["error"]["code"] == "reinspection_required"

    photo = ready_photo_of_qc(d)
    passed = inspect(d, batch["id"], 2.0, photo_id=photo)
    assert passed.status_code == 201, passed.json
    assert passed.json["result"] == "pass" and passed.json["batch"]["status"] == "released"
    assert Nonconformance.get_by_id(failed.json["nonconformance_id"]).status == "closed"
    assert Alert.get((Alert.task == d.task.id) & (Alert.kind == "qc_fail")).status == "resolved"
    assert qc_node(d).state == "in_progress"
    assert len(qc_messages()) == 1  # the pass tells nobody

    # Released: it ships, and a partial receipt keeps the task open.
    assert ship(d, batch["id"], 120).status_code == 200
    over = d.manager.post(f"/api/v1/batches/{batch['id']}/receipts", json={"qty": 121})
    assert over.status_code == 422 and over.json["error"]["code"] == "over_shipped"
    got = d.manager.post(f"/api/v1/batches/{batch['id']}/receipts", json={"qty": 100, "qty_rejected": 2})
    assert got.status_code == 200, got.json
    assert (got.json["qty_received"], got.json["qty_accepted"], got.json["qty_rejected"]) == (100, 98, 2)
    assert Task.get_by_id(d.task.id).state == "in_production"

    # The customer sees the passed inspection with its photo, never the failure.
    timeline = d.client.get(f"/mp/v1/orders/{d.order.id}", headers=d.cust).json
    qc = next(n for n in timeline["nodes"] if n["code"] == "qc")
    assert [(i["kind"], i["result"]) for i in qc["inspections"]] == [("first_article", "pass")]
    assert len(qc["inspections"][0]["photos"]) == 1 and qc["inspections"][0]["photos"][0]["url"]
    assert "inspector" not in qc["inspections"][0]


def test_a_passing_final_inspection_completes_the_qc_node(plant):
    d = plant
    batch = new_batch(d)
    res = inspect(d, batch["id"], 2.05, kind="final")
    assert res.json["result"] == "pass"
    node = qc_node(d)
    assert node.state == "done" and node.done_by == d.qc_user.display_name


def test_concession_needs_a_release_and_return_closes_the_batch(plant):
    d = plant
    first, second = new_batch(d, 100), new_batch(d, 100)
    inspect(d, first["id"], 2.2)
    inspect(d, second["id"], 2.2)
    concession = d.qc.post(f"/api/v1/batches/{first['id']}/disposition",
                           json={"disposition": "concession", "reason": "客户同意让步接收"})
    assert concession.json["status"] == "frozen"
    released = d.qc.post(f"/api/v1/batches/{first['id']}/release", json={"reason": "让步放行"})
    assert released.status_code == 200 and released.json["status"] == "released"
    assert qc_node(d).state == "delayed"  # the second batch is still frozen

    returned = d.qc.post(f"/api/v1/batches/{second['id']}/disposition", json={"disposition": "return", "reason": "退回重做"})
    assert returned.json["status"] == "returned"
    assert ship(d, second["id"], 1).json["error"]["code"] == "batch_closed"
    assert qc_node(d).state == "in_progress"
    again = d.qc.post(f"/api/v1/batches/{second['id']}/disposition", json={"disposition": "scrap", "reason": "x"})
    assert again.status_code == 409 and again.json["error"]["code"] == "batch_not_frozen"
    assert {e.reason for e in AuditEntry.select().where(AuditEntry.action == "batch.dispose")} == {
        "客户同意让步接收", "退回重做"}


def test_a_self_check_is_recorded_but_never_the_verdict(plant):
    d = plant
    batch = new_batch(d)
    photo = ready_photo(d.supplier, purpose="inspection").id
    res = d.client.post(f"/mp/v1/batches/{batch['id']}/self-checks", headers=d.sup, json={
        "client_id": str(uuid.uuid4()), "kind": "patrol", "sample_qty": 5,
        "readings": [{"item_id": d.items["外观"], "passed": False, "photo_ids": [photo]},
                     {"item_id": d.items["板厚"], "value": 2.5}]})
    assert res.status_code == 201, res.json
    assert (res.json["source"], res.json["result"]) == ("self_check", "fail")
    assert Batch.get_by_id(batch["id"]).status == "open"
    assert Nonconformance.select().count() == 0 and qc_messages() == []
    assert ship(d, batch["id"], 10).status_code == 200
    detail = d.client.get(f"/mp/v1/batches/{batch['id']}", headers=d.sup).json
    assert [i["source"] for i in detail["inspections"]] == ["self_check"]
    assert d.manager.get("/api/v1/inspections?source=qc").json["total"] == 0


def test_templates_are_versioned_and_the_most_specific_wins(plant):
    d = plant
    batch = new_batch(d)
    first = inspect(d, batch["id"], 2.0, kind="patrol")
    assert first.json["template"] == {"id": d.template["id"], "name": "机箱通用检验", "version": 1}

    edited = d.qc.put(f"/api/v1/inspection-templates/{d.template['id']}", json={
        "name": "机箱通用检验", "items": [{"name": "板厚", "check_type": "numeric", "min_value": 1.95, "max_value": 2.05,
                                          "unit": "mm"}]})
    assert edited.status_code == 201, edited.json
    assert (edited.json["version"], edited.json["family_id"], edited.json["active"]) == (2, d.template["id"], True)
    stale = d.qc.put(f"/api/v1/inspection-templates/{d.template['id']}", json={
        "name": "x", "items": [{"name": "外观", "check_type": "pass_fail"}]})
    assert stale.status_code == 409 and stale.json["error"]["code"] == "template_outdated"

    # The old inspection keeps version 1 and its items.
    old = d.manager.get(f"/api/v1/inspections/{first.json['id']}").json
    assert old["template"]["version"] == 1 and len(old["readings"]) == 2

    # A template for this product and process beats the general one.
    specific = d.qc.post("/api/v1/inspection-templates", json={
        "name": "P-CHS-450 冲压终检", "kind": "final", "product_code": "P-CHS-450", "process": "冲压",
        "items": [{"name": "毛刺", "check_type": "pass_fail"}]})
    assert specific.status_code == 201
    chosen = d.client.get(f"/mp/v1/tasks/{d.task.id}/inspection-template?kind=final", headers=d.sup).json
    assert chosen["id"] == specific.json["id"]
    patrol = d.client.get(f"/mp/v1/tasks/{d.task.id}/inspection-template?kind=patrol", headers=d.sup).json
    assert (patrol["id"], patrol["version"]) == (edited.json["id"], 2)


def test_each_batch_has_its_own_qr_label(plant):
    d = plant
    batch = new_batch(d)
    detail = d.manager.get(f"/api/v1/batches/{batch['id']}").json
    code = detail["scan_url"].rsplit("/s/", 1)[1]
    assert code.startswith("B.") and code != d.task.qr_code
    png = d.manager.get(detail["label_url"])
    assert png.status_code == 200 and png.mimetype == "image/png" and png.data[:8] == b"\x89PNG\r\n\x1a\n"
    scanned = d.client.get(f"/mp/v1/batches/scan/{code}", headers=d.sup)
    assert scanned.status_code == 200 and scanned.json["id"] == batch["id"]
    assert d.client.get(f"/mp/v1/batches/scan/{code}", headers=d.other_sup).status_code == 404


def test_an_inspection_counts_once_under_retries(plant):
    d = plant
    batch = new_batch(d)
    body = {"kind": "patrol", "sample_qty": 5, "readings": readings(d, 2.5, ready_photo_of_qc(d)),
            "client_id": str(uuid.uuid4())}
    first = d.qc.post(f"/api/v1/batches/{batch['id']}/inspections", json=body)
    again = d.qc.post(f"/api/v1/batches/{batch['id']}/inspections", json=body)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json == first.json
    assert Inspection.select().count() == 1 and len(qc_messages()) == 1


def test_a_failed_reinspection_keeps_the_batch_frozen_with_a_new_nc(plant):
    d = plant
    batch = new_batch(d)
    first = inspect(d, batch["id"], 2.5).json
    d.qc.post(f"/api/v1/batches/{batch['id']}/disposition", json={"disposition": "rework", "reason": "返工"})
    again = inspect(d, batch["id"], 2.4)
    assert again.status_code == 201 and again.json["result"] == "fail"
    assert (again.json["batch"]["status"], again.json["batch"]["disposition"]) == ("frozen", None)
    assert Nonconformance.get_by_id(first["nonconformance_id"]).status == "closed"
    assert Nonconformance.get_by_id(again.json["nonconformance_id"]).status == "open"
    assert len(qc_messages()) == 2  # one per nonconformance
    assert ship(d, batch["id"], 1).json["error"]["code"] == "batch_frozen"
