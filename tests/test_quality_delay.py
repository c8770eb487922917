"""QC rejections move the delay engine (issue 10, item 7): a task on plan whose batch QC returns or
scraps must make those pieces again, so on the next delay scan it is behind (deviation, ETA, a
delay alert), the customer's predicted ship date moves and the
customer is warned early — in plain words, never a failure, a nonconformance or a rejection. A
frozen batch does not count until QC disposes of it; remade pieces reported catch the task up."""
import uuid
from datetime import date

import pytest

from app.models import Alert, Batch, NodeSubscription, Notification, Task, WechatUser
from app.services import delay_engine, schedule
from app.timeutil import china_date
from tests.quality_helpers import inspect, make_plant, new_batch, ship

# (质检 is the QC node's own name on the timeline, so it is not among them.)
FAILURE_WORDS = ("不合格", "报废", "退货", "退回", "冻结", "拒收", "重做", "返工", "让步", "缺陷",
                 "nonconformance", "scrap", "reject", "frozen", "fail", "defect")


@pytest.fixture
def plant(app, dbconn, client):
    return make_plant(app, client)


def report(d, qty):
    res = d.client.post(f"/mp/v1/tasks/{d.task.id}/reports", headers=d.sup, json={
        "client_id": str(uuid.uuid4()), "report_date": china_date().isoformat(), "qty_done": qty})
    assert res.status_code in (200, 201), res.json
    return res


def delay_alert(d):
    return Alert.get_or_none((Alert.task == d.task.id) & (Alert.kind == "delay") & Alert.open_key.is_null(False))


def customer_view(d):
    """What the customer reads: the order list and the order's timeline."""
    listed = d.client.get("/mp/v1/orders", headers=d.cust)
    timeline = d.client.get(f"/mp/v1/orders/{d.order.id}", headers=d.cust)
    assert listed.status_code == 200 and timeline.status_code == 200
    return listed.json, timeline.json


def assert_no_failure(*answers):
    text = " ".join(str(a) for a in answers).lower()
    assert not [w for w in FAILURE_WORDS if w in text], text


def test_a_scrapped_batch_puts_a_task_on_plan_behind_and_moves_the_customers_date(plant):
    d = plant
    task = Task.get_by_id(d.task.id)
    cal = schedule.calendar()
    on_plan = schedule.expected_qty(task, china_date(), cal)
    assert on_plan > 200  # about a third into a plan of 1000: more than the batch scrapped below
    report(d, on_plan)
    buyer = WechatUser.get((WechatUser.role == "customer") & (WechatUser.customer == d.order.customer_id))
    NodeSubscription.create(user=buyer, order=d.order.id, node_code="shipped")

    # A batch made, shipped and received; QC's receiving inspection fails it.
    batch = new_batch(d, 200)
    assert ship(d, batch["id"], 200).status_code == 200
    assert d.manager.post(f"/api/v1/batches/{batch['id']}/receipts", json={"qty": 200}).status_code == 200
    delay_engine.scan_delays()
    assert delay_alert(d) is None
    _, before = customer_view(d)
    # On plan: the pace finishes at most a working day after the due date (rounding), not late to chase.
    assert cal.working_days_between(task.due_date, date.fromisoformat(before["predicted_ship_date"])) < 2

    failed = inspect(d, batch["id"], 2.4, kind="receiving")
    assert failed.json["result"] == "fail" and failed.json["batch"]["status"] == "frozen"
    # Frozen is not lost yet (rework or a concession keeps the pieces): the plan still holds.
    delay_engine.scan_delays()
    assert delay_alert(d) is None and Task.get_by_id(task.id).qty_rejected == 0

    scrapped = d.qc.post(f"/api/v1/batches/{batch['id']}/disposition",
                         json={"disposition": "scrap", "reason": "板厚超差，无法返工"})
    assert scrapped.status_code == 200 and scrapped.json["status"] == "scrapped"
    assert Task.get_by_id(task.id).qty_rejected == 200

    # The next scan: 200 good pieces fewer than reported, so behind the plan and late.
    stats = delay_engine.scan_delays()
    assert stats["opened"] == 1
    alert = delay_alert(d)
    assert alert is not None and alert.level in ("yellow", "orange", "red")
    assert float(alert.deviation_pct) == pytest.approx(20.0, abs=0.2)  # 200 of 1000 behind
    assert alert.days_late >= 2 and alert.eta_date > task.due_date
    assert f"已完成 {on_plan - 200}/1000 件" in alert.message and "须重做的 200 件" in alert.message

    # The customer: a later predicted date, a lower progress, and an early warning in plain words.
    listed, after = customer_view(d)
    assert after["predicted_ship_date"] > before["predicted_ship_date"]
    assert date.fromisoformat(after["predicted_ship_date"]) == alert.eta_date
    assert after["progress"] < before["progress"]
    assert delay_engine.scan_early_warnings()["warned"] == 1
    warning = Alert.get((Alert.order == d.order.id) & (Alert.kind == "customer_early_warning"))
    to_customer = list(Notification.select().where(Notification.recipient == buyer.openid))
    assert len(to_customer) == 1 and f"{alert.eta_date:%m月%d日}" in to_customer[0].payload["text"]
    assert_no_failure(listed, after, warning.message, [n.payload for n in to_customer])

    # The pieces made again and reported (the plan's limit grows by the rejected): caught up.
    assert report(d, 1000 + 200).status_code in (200, 201)
    assert delay_engine.scan_delays()["resolved"] == 1 and delay_alert(d) is None


def test_pieces_refused_at_receipt_and_a_returned_batch_count_as_rejected(plant):
    d = plant
    report(d, 300)
    first, second = new_batch(d, 100), new_batch(d, 150)
    ship(d, first["id"], 100)
    got = d.manager.post(f"/api/v1/batches/{first['id']}/receipts", json={"qty": 100, "qty_rejected": 7})
    assert got.status_code == 200, got.json
    assert Task.get_by_id(d.task.id).qty_rejected == 7

    inspect(d, second["id"], 2.4)  # a failed first article, nothing shipped yet
    returned = d.qc.post(f"/api/v1/batches/{second['id']}/disposition",
                         json={"disposition": "return", "reason": "退回重做"})
    assert returned.status_code == 200
    # Every piece of the returned batch is made again, shipped or not.
    assert Batch.get_by_id(second["id"]).qty_shipped == 0
    assert Task.get_by_id(d.task.id).qty_rejected == 7 + 150
    p = schedule.progress(Task.get_by_id(d.task.id), china_date())
    assert p.actual_qty == 300 - 157

    # The supplier may record batches and report beyond the plan by the pieces to make again.
    limit = 1050 + 157  # plan 1000 with 5 % tolerance, plus the rejected
    over = d.client.post(f"/mp/v1/tasks/{d.task.id}/batches", headers=d.sup,
                         json={"client_id": str(uuid.uuid4()), "qty": limit - 250 + 1})
    assert over.status_code == 422 and over.json["error"]["max_qty"] == limit - 250
