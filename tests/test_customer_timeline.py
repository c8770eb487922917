"""GET /mp/v1/orders/<id>, the customer's timeline, read cheaply: its answer is the one the generic
readers give (whole rows through photos.load_photos, nodes.load_parts, schedule.progress_many and
the passed QC inspections read by task ids — the reference below), for an order with everything a timeline shows,
in a fixed number of statements."""
import re
import uuid
from datetime import timedelta
from types import SimpleNamespace

import pytest

from app.models import (
    EtaRevision,
    Inspection,
    NodeCompletion,
    NodeInstance,
    Order,
    Photo,
    ProgressReport,
    Task,
)
from app.services import customer_orders, nodes, photos, quality, schedule
from app.services.photos import load_photos
from app.timeutil import china_date, utcnow
from miniprogram_api.schemas import CustomerTimelineOut
from tests import factories as f
from tests.helpers import ready_photo
from tests.quality_helpers import inspect, new_batch, ready_photo_of_qc
from tests.sqlcount import statements


@pytest.fixture
def rich(app, dbconn, client):
    """An order shared by two suppliers (and a cancelled third task): reports over ten days, a
    supplier's ETA promises, a node completed by one supplier with a photo (and an unprocessed one),
    a failed QC inspection (the QC node turns red) and a passed one with a photo."""
    sup, sup2, sup3 = f.supplier("昆山宏达钣金厂"), f.supplier("无锡顺达焊接厂"), f.supplier("常州精密")
    cust = f.customer()
    order = f.order(cust, [sup, sup2, sup3], qty=500)
    task, task2, task3 = Task.select().where(Task.order == order).order_by(Task.id)
    Task.update(state="cancelled").where(Task.id == task3.id).execute()
    qc_user = f.staff("qc-li", "long-enough-pw", "qc")
    d = SimpleNamespace(client=client, order=order, customer=cust, supplier=sup, task=task, qc_user=qc_user,
                        qc=f.staff_session(app.test_client(), qc_user), sup=f.bearer(f.wechat_user(sup)),
                        auth=f.bearer(f.wechat_user(cust)), today=china_date())
    template = d.qc.post("/api/v1/inspection-templates", json={"name": "机箱通用检验", "items": [
        {"name": "外观", "check_type": "pass_fail", "photo_required": True},
        {"name": "板厚", "check_type": "numeric", "min_value": 1.9, "max_value": 2.1, "unit": "mm"}]})
    assert template.status_code == 201, template.json
    d.items = {i["name"]: i["id"] for i in template.json["items"]}

    # Reports: the first supplier today through the route, the second on earlier days.
    report = client.post(f"/mp/v1/tasks/{task.id}/reports", headers=d.sup, json={
        "client_id": str(uuid.uuid4()), "report_date": d.today.isoformat(), "qty_done": 120})
    assert report.status_code == 201, report.json
    for day in range(1, 9):
        ProgressReport.create(task=task2, report_date=d.today - timedelta(days=10 - day), qty_done=day * 30)
    Task.update(qty_done=240, last_report_date=d.today - timedelta(days=2)).where(Task.id == task2.id).execute()
    for new_eta in (d.today + timedelta(days=25), d.today + timedelta(days=45)):  # the latest counts
        EtaRevision.create(task=task2, new_eta=new_eta, source="supplier", reason="设备检修")
    EtaRevision.create(task=task, new_eta=d.today + timedelta(days=40), source="engine")

    # A node the first supplier completed with a photo; an unprocessed photo stays hidden.
    photo = ready_photo(sup, "node")
    done = client.post(f"/mp/v1/tasks/{task.id}/nodes/materials_ready/complete", headers=d.sup, json={
        "client_id": str(uuid.uuid4()), "note": "王师傅签收", "photo_ids": [photo.id]})
    assert done.status_code == 201, done.json
    sup2_auth = f.bearer(f.wechat_user(sup2))
    for code in ("materials_ready", "first_article"):
        done = client.post(f"/mp/v1/tasks/{task2.id}/nodes/{code}/complete", headers=sup2_auth, json={
            "client_id": str(uuid.uuid4())})
        assert done.status_code == 201, done.json
    node = NodeInstance.get((NodeInstance.order == order) & (NodeInstance.code == "materials_ready"))
    pending = ready_photo(sup, "node")
    Photo.update(status="pending", display_key=None, node=node, customer_visible=True).where(
        Photo.id == pending.id).execute()
    # The cancelled task's part does not count.
    NodeCompletion.create(node=node, task=task3, state="done", done_at=utcnow())

    # Columns the figures use that the above leaves empty: pieces QC rejected, a task ETA, and a
    # fourth supplier's task completed two days ago (it counts in `total_tasks` from now on).
    Task.update(qty_rejected=20).where(Task.id == task2.id).execute()
    Task.update(eta_date=d.today + timedelta(days=15)).where(Task.id == task.id).execute()
    Task.create(order=order, task_no=f"{order.order_no}-T4", process="焊接", supplier=f.supplier("南通焊接"),
                planned_qty=500, tolerance_pct=0.05, planned_start=task.planned_start, due_date=task.due_date,
                state="completed", qty_done=500, last_report_date=d.today - timedelta(days=2),
                completed_at=utcnow() - timedelta(days=2), qr_code=uuid.uuid4().hex, unit_cost="3.00")

    # QC: a failure on one batch (hidden), a pass with a photo on another.
    failed = inspect(d, new_batch(d)["id"], 2.4)
    assert failed.status_code == 201 and failed.json["result"] == "fail", failed.json
    passed = inspect(d, new_batch(d)["id"], 2.0, photo_id=ready_photo_of_qc(d))
    assert passed.status_code == 201 and passed.json["result"] == "pass", passed.json
    # Neither a supplier's self-check nor an inspection of the cancelled task shows.
    row = Inspection.get_by_id(passed.json["id"])
    for task_id, source in ((task.id, "self_check"), (task3.id, "qc")):
        Inspection.create(task=task_id, batch=row.batch_id, template=row.template_id, kind="final", source=source,
                          result="pass", sample_qty=5, defect_qty=0, inspected_at=utcnow())
    return d


def _reference_inspections(tasks):
    """Passed QC inspections of the tasks (newest first), with the photos a customer may see."""
    ids = [t.id for t in tasks]
    if not ids:
        return []
    rows = list(Inspection.select().where(Inspection.task.in_(ids) & (Inspection.source == "qc")
                                          & (Inspection.result == "pass"))
                .order_by(Inspection.inspected_at.desc(), Inspection.id.desc()))
    return load_photos(rows, Photo.inspection, photos.CUSTOMER_VISIBLE)


def _reference(order_id, customer_id):
    """The timeline as the generic readers give it, whole rows (the code before the timeline's own reads)."""
    order = Order.get((Order.id == order_id) & (Order.customer == customer_id) & (Order.state != "draft"))
    tasks = list(Task.select().where((Task.order == order.id) & (Task.state != "cancelled")))
    order.node_list = load_photos(list(NodeInstance.select().where(NodeInstance.order == order.id)
                                       .order_by(NodeInstance.seq)), Photo.node, photos.CUSTOMER_VISIBLE)
    nodes.load_parts(order.node_list, tasks)
    for node in order.node_list:
        node.inspections = _reference_inspections(tasks) if node.code == quality.QC_NODE else []
        customer_orders._hide_qc_failure(node)
    customer_orders._summarise(order, tasks, order.node_list, schedule.progress_many(tasks, china_date()))
    return CustomerTimelineOut().dump(order)


def _unsigned(value):
    """The answer with each signed link's expiry and signature left out (they follow the clock)."""
    if isinstance(value, dict):
        return {k: _unsigned(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unsigned(v) for v in value]
    if isinstance(value, str):
        return re.sub(r"\?expires=.*$", "", value)
    return value


def test_the_timeline_answers_as_the_generic_readers_do(rich):
    d = rich
    res = d.client.get(f"/mp/v1/orders/{d.order.id}", headers=d.auth)
    assert res.status_code == 200, res.json
    body = _unsigned(res.json)
    assert body == _unsigned(_reference(d.order.id, d.customer.id))

    # The order has everything a timeline shows (else the comparison proves little).
    by_code = {n["code"]: n for n in body["nodes"]}
    materials, qc = by_code["materials_ready"], by_code["qc"]
    assert (materials["done_tasks"], materials["total_tasks"], materials["done_by"]) == (2, 3, "工厂")
    assert (by_code["first_article"]["done_tasks"], by_code["first_article"]["state"]) == (0, "in_progress")
    assert len(materials["photos"]) == 1 and materials["photos"][0]["url"] and materials["photos"][0]["thumb_url"]
    assert [(i["kind"], i["result"], len(i["photos"])) for i in qc["inspections"]] == [("first_article", "pass", 1)]
    assert qc["state"] == "in_progress" and by_code["confirmed"]["done_tasks"] is None
    # The second supplier's latest promise sets the predicted ship date.
    assert body["progress"] == 56 and body["predicted_ship_date"] == (d.today + timedelta(days=45)).isoformat()
    assert body["eta_date"] == (d.today + timedelta(days=15)).isoformat() and body["late"] is False
    assert body["current_node"] == "订单确认" and body["order_no"] == d.order.order_no


def test_the_timeline_costs_a_fixed_number_of_statements(rich):
    d = rich
    res, seen = statements(lambda: d.client.get(f"/mp/v1/orders/{d.order.id}", headers=d.auth))
    assert res.status_code == 200
    # The caller's token; the order; its tasks with their recent reports and latest ETA promise;
    # its nodes with their done parts; the nodes' photos; passed QC inspections; their photos.
    assert len(seen) == 7, "\n".join(seen)


def test_tasks_without_recent_reports_answer_as_the_generic_readers_do(dbconn, client):
    """Figures that come from the task rows alone: a task stalled since before the window of reports
    the model reads (its last report is on the task row) and one completed without any report."""
    cust, today = f.customer(), china_date()
    auth = f.bearer(f.wechat_user(cust))
    stalled = f.order(cust, [f.supplier("昆山宏达钣金厂")], days_before=60, days_after=5)
    ProgressReport.create(task=Task.get(Task.order == stalled), report_date=today - timedelta(days=40), qty_done=300)
    Task.update(qty_done=300, last_report_date=today - timedelta(days=40)).where(Task.order == stalled).execute()
    done = f.order(cust, [f.supplier("无锡顺达焊接厂")], days_after=20)
    completed_at = utcnow() - timedelta(days=3)
    Task.update(state="completed", qty_done=1000, completed_at=completed_at).where(Task.order == done).execute()

    answers = {}
    for order in (stalled, done):
        res = client.get(f"/mp/v1/orders/{order.id}", headers=auth)
        assert res.status_code == 200, res.json
        assert _unsigned(res.json) == _unsigned(_reference(order.id, cust.id))
        answers[order.id] = res.json
    # The stalled task restarting at the plan's pace finishes weeks after its due date.
    assert answers[stalled.id]["predicted_ship_date"] > (stalled.due_date + timedelta(days=14)).isoformat()
    assert answers[done.id]["predicted_ship_date"] == china_date(completed_at).isoformat()
