"""Bad input to the quality loop is a clear Chinese error with a stable code and stores nothing;
and nobody sees or does more than their part: a supplier only its own batches and inspections,
never a disposition or release; a manager neither; a customer never a failure."""
import uuid

import pytest

from app.models import AuditEntry, Batch, BatchMovement, Inspection, InspectionResult, Nonconformance, Photo
from app.timeutil import china_date
from tests.quality_helpers import inspect, make_plant, new_batch, qc_messages, qc_photo, ready_photo_of_qc, ship


@pytest.fixture
def plant(app, dbconn, client):
    return make_plant(app, client)


def nothing_stored(batch_id, shipped=0, received=0):
    batch = Batch.get_by_id(batch_id)
    assert (batch.status, batch.qty_shipped, batch.qty_received) == ("open", shipped, received)
    assert Inspection.select().count() == 0 and InspectionResult.select().count() == 0
    assert Nonconformance.select().count() == 0 and qc_messages() == []
    assert not AuditEntry.select().where(AuditEntry.action.in_(("inspection.record", "batch.freeze"))).exists()


def post_inspection(d, batch_id, readings, **extra):
    return d.qc.post(f"/api/v1/batches/{batch_id}/inspections",
                     json={"kind": "first_article", "sample_qty": 10, "readings": readings, **extra})


@pytest.mark.parametrize("thickness", ["2.0", True, None, [2.0]])
def test_a_reading_of_the_wrong_type_is_refused(plant, thickness):
    d = plant
    batch = new_batch(d)
    photo = ready_photo_of_qc(d)
    res = post_inspection(d, batch["id"], [{"item_id": d.items["外观"], "passed": True, "photo_ids": [photo]},
                                           {"item_id": d.items["板厚"], "value": thickness}])
    assert res.status_code == 422, res.json
    assert res.json["error"]["code"] == "wrong_reading_type"
    assert "板厚" in res.json["error"]["message"] and "数值" in res.json["error"]["message"]
    nothing_stored(batch["id"])
    assert Photo.get_by_id(photo).inspection_id is None


def test_a_pass_fail_item_given_a_number_is_refused(plant):
    d = plant
    batch = new_batch(d)
    res = post_inspection(d, batch["id"], [{"item_id": d.items["外观"], "value": 1, "photo_ids": [ready_photo_of_qc(d)]},
                                           {"item_id": d.items["板厚"], "value": 2.0}])
    assert res.status_code == 422 and res.json["error"]["code"] == "wrong_reading_type"
    assert "合格/不合格" in res.json["error"]["message"]
    nothing_stored(batch["id"])


def test_an_unknown_check_item_is_refused(plant):
    d = plant
    batch = new_batch(d)
    res = post_inspection(d, batch["id"], [{"item_id": d.items["外观"], "passed": True, "photo_ids": [ready_photo_of_qc(d)]},
                                           {"item_id": d.items["板厚"], "value": 2.0},
                                           {"item_id": 987654, "passed": True}])
    assert res.status_code == 422 and res.json["error"]["code"] == "unknown_check_item"
    assert "987654" in res.json["error"]["message"]
    nothing_stored(batch["id"])


def test_a_missing_reading_is_refused(plant):
    d = plant
    batch = new_batch(d)
    res = post_inspection(d, batch["id"], [{"item_id": d.items["板厚"], "value": 2.0}])
    assert res.status_code == 422 and res.json["error"]["code"] == "reading_missing"
    nothing_stored(batch["id"])


def test_a_missing_required_photo_is_refused_even_for_a_failure(plant):
    d = plant
    batch = new_batch(d)
    res = post_inspection(d, batch["id"], [{"item_id": d.items["外观"], "passed": False},
                                           {"item_id": d.items["板厚"], "value": 2.5}])
    assert res.status_code == 422 and res.json["error"]["code"] == "photo_required"
    assert "外观" in res.json["error"]["message"] and "拍照" in res.json["error"]["message"]
    nothing_stored(batch["id"])


def test_a_photo_of_another_supplier_is_refused_and_nothing_is_stored(plant):
    d = plant
    batch = new_batch(d)
    foreign = Photo.create(storage_key=f"s/x/{uuid.uuid4().hex}.jpg", supplier=d.other_task.supplier_id,
                           purpose="inspection", status="ready", uploaded_by_staff=d.qc_user.id)
    res = post_inspection(d, batch["id"], [{"item_id": d.items["外观"], "passed": False, "photo_ids": [foreign.id]},
                                           {"item_id": d.items["板厚"], "value": 2.5}])
    assert res.status_code == 422 and res.json["error"]["code"] == "invalid_photo"
    nothing_stored(batch["id"])


@pytest.mark.parametrize("qty", [0, -5])
def test_a_batch_needs_a_positive_quantity_within_the_plan(plant, qty):
    d = plant
    res = d.client.post(f"/mp/v1/tasks/{d.task.id}/batches", headers=d.sup, json={"client_id": str(uuid.uuid4()), "qty": qty})
    assert res.status_code == 422 and res.json["error"]["code"] == "invalid_quantity"
    over = d.client.post(f"/mp/v1/tasks/{d.task.id}/batches", headers=d.sup,
                         json={"client_id": str(uuid.uuid4()), "qty": 1051})  # plan 1000 + 5 %
    assert over.status_code == 422 and over.json["error"]["code"] == "over_plan"
    assert Batch.select().count() == 0


def test_shipping_more_than_the_batch_or_a_negative_quantity_is_refused(plant):
    d = plant
    batch = new_batch(d, 100)
    assert ship(d, batch["id"], 60).status_code == 200
    over = ship(d, batch["id"], 41)
    assert over.status_code == 422 and over.json["error"]["code"] == "over_batch"
    assert "40" in over.json["error"]["message"]
    negative = ship(d, batch["id"], -1)
    assert negative.status_code == 422 and negative.json["error"]["code"] == "invalid_quantity"
    assert Batch.get_by_id(batch["id"]).qty_shipped == 60
    assert BatchMovement.select().count() == 1


def test_receiving_more_than_shipped_is_refused(plant):
    d = plant
    batch = new_batch(d, 100)
    ship(d, batch["id"], 30)
    for body, code in (({"qty": 31}, "over_shipped"), ({"qty": -3}, "invalid_quantity"),
                       ({"qty": 10, "qty_rejected": 11}, "over_received")):
        res = d.manager.post(f"/api/v1/batches/{batch['id']}/receipts", json=body)
        assert res.status_code == 422 and res.json["error"]["code"] == code, res.json
    nothing_stored(batch["id"], shipped=30)
    assert d.manager.post(f"/api/v1/batches/{batch['id']}/receipts", json={"qty": 30}).status_code == 200
    more = d.manager.post(f"/api/v1/batches/{batch['id']}/receipts", json={"qty": 1})
    assert more.json["error"]["code"] == "over_shipped"


def test_disposition_of_a_batch_that_is_not_frozen_is_refused(plant):
    d = plant
    batch = new_batch(d)
    for verb, body in (("disposition", {"disposition": "scrap", "reason": "外观不良"}), ("release", {"reason": "放行"})):
        res = d.qc.post(f"/api/v1/batches/{batch['id']}/{verb}", json=body)
        assert res.status_code == 409 and res.json["error"]["code"] == "batch_not_frozen"
        assert "未冻结" in res.json["error"]["message"]
    assert Batch.get_by_id(batch["id"]).disposition is None


def test_template_items_must_make_sense(plant):
    d = plant
    for items, code in (([{"name": "板厚", "check_type": "numeric"}], "limits_required"),
                        ([{"name": "板厚", "check_type": "numeric", "min_value": 3, "max_value": 2}], "limits_reversed"),
                        ([{"name": "外观", "check_type": "pass_fail", "max_value": 2}], "limits_not_numeric"),
                        ([{"name": "外观", "check_type": "pass_fail"}] * 2, "duplicate_item")):
        res = d.qc.post("/api/v1/inspection-templates", json={"name": "t", "items": items})
        assert res.status_code == 422 and res.json["error"]["code"] == code, res.json


# --- authorization ---------------------------------------------------------------------------------------

def test_a_supplier_sees_and_moves_only_its_own_batches(plant):
    d = plant
    batch = new_batch(d)
    inspect(d, batch["id"], 2.5)  # failed: frozen
    other = d.other_sup
    assert d.client.get(f"/mp/v1/batches/{batch['id']}", headers=other).status_code == 404
    assert d.client.get(f"/mp/v1/tasks/{d.task.id}/batches", headers=other).status_code == 404
    assert ship(d, batch["id"], 1, headers=other).status_code == 404
    res = d.client.post(f"/mp/v1/batches/{batch['id']}/self-checks", headers=other,
                        json={"client_id": str(uuid.uuid4()), "kind": "patrol", "sample_qty": 1, "readings": []})
    assert res.status_code == 404
    res = d.client.post(f"/mp/v1/tasks/{d.task.id}/batches", headers=other, json={"client_id": str(uuid.uuid4()), "qty": 1})
    assert res.status_code == 404
    # Its own batch: it sees the QC result (to rework), but no nonconformance.
    own = d.client.get(f"/mp/v1/batches/{batch['id']}", headers=d.sup).json
    assert own["status"] == "frozen" and own["inspections"][0]["result"] == "fail"
    assert "nonconformances" not in own


def test_only_qc_dispositions_and_releases(plant):
    d = plant
    batch = new_batch(d)
    inspect(d, batch["id"], 2.5)
    body = {"disposition": "concession", "reason": "让步"}
    # A supplier's mini-program token does not open the staff API.
    res = d.client.post(f"/api/v1/batches/{batch['id']}/disposition", headers=d.sup, json=body)
    assert res.status_code == 401 and res.json["error"]["code"] == "wrong_credential"
    # A manager may receive goods, but not decide quality.
    for verb, payload in (("disposition", body), ("release", {"reason": "放行"})):
        res = d.manager.post(f"/api/v1/batches/{batch['id']}/{verb}", json=payload)
        assert res.status_code == 403 and res.json["error"]["code"] == "forbidden"
    res = d.manager.post(f"/api/v1/batches/{batch['id']}/inspections", json={
        "kind": "patrol", "sample_qty": 1, "readings": []})
    assert res.status_code == 403
    assert d.manager.post("/api/v1/inspection-templates", json={
        "name": "t", "items": [{"name": "a", "check_type": "pass_fail"}]}).status_code == 403
    assert Batch.get_by_id(batch["id"]).disposition is None


def test_a_customer_never_sees_a_failure_or_another_customers_order(plant):
    d = plant
    failing, passing = new_batch(d, 100), new_batch(d, 100)
    inspect(d, failing["id"], 2.5)
    inspect(d, passing["id"], 2.0, kind="patrol")
    timeline = d.client.get(f"/mp/v1/orders/{d.order.id}", headers=d.cust).json
    qc = next(n for n in timeline["nodes"] if n["code"] == "qc")
    assert [(i["kind"], i["result"]) for i in qc["inspections"]] == [("patrol", "pass")]
    assert "fail" not in str(timeline) and "不合格" not in str(timeline)
    other_order = d.other_task.order_id
    assert d.client.get(f"/mp/v1/orders/{other_order}", headers=d.cust).status_code == 404
    # Customers and suppliers have no way into the staff API's quality routes.
    assert d.client.get("/api/v1/nonconformances", headers=d.cust).status_code == 401
    assert d.client.get(f"/api/v1/batches/{failing['id']}", headers=d.sup).status_code == 401


def test_a_supplier_cannot_attach_a_photo_qc_took_of_its_goods(plant):
    """QC's photos are stored under the task's supplier (so a QC photo of a defect is "theirs"),
    but a supplier's report, node or problem may only carry the supplier's own uploads: a QC
    defect photo must never ride a node completion to the customer."""
    d = plant
    photo_id = qc_photo(d)
    from app.models import ProgressReport
    report = d.client.post(f"/mp/v1/tasks/{d.task.id}/reports", headers=d.sup,
                           json={"client_id": str(uuid.uuid4()), "report_date": china_date().isoformat(),
                                 "qty_done": 10, "photo_ids": [photo_id]})
    assert report.status_code == 422 and report.json["error"]["code"] == "invalid_photo", report.json
    assert ProgressReport.select().where(ProgressReport.task == d.task.id).count() == 0
    node = d.client.post(f"/mp/v1/tasks/{d.task.id}/nodes/materials_ready/complete", headers=d.sup,
                         json={"client_id": str(uuid.uuid4()), "photo_ids": [photo_id]})
    assert node.status_code == 422 and node.json["error"]["code"] == "invalid_photo", node.json
    assert Photo.get_by_id(photo_id).node_id is None and Photo.get_by_id(photo_id).report_id is None


def test_a_template_made_for_another_product_or_process_is_refused(plant):
    """Naming a lenient template of another product would let QC pass this one: refused, nothing stored."""
    d = plant
    batch = new_batch(d)
    other = d.qc.post("/api/v1/inspection-templates", json={
        "name": "别的产品终检", "kind": "final", "product_code": "P-OTHER-1",
        "items": [{"name": "外观", "check_type": "pass_fail"}]})
    assert other.status_code == 201, other.json
    res = d.qc.post(f"/api/v1/batches/{batch['id']}/inspections", json={
        "kind": "final", "sample_qty": 5, "template_id": other.json["id"],
        "readings": [{"item_id": other.json["items"][0]["id"], "passed": True}]})
    assert res.status_code == 422 and res.json["error"]["code"] == "template_not_for_task", res.json
    nothing_stored(batch["id"])
