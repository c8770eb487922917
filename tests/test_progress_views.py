"""Where the progress model shows: the manager's order detail and the supplier's task detail show
expected, actual, deviation, ETA and level; the customer sees a predicted ship date and nothing
about suppliers or deviation.

Every day is a working day here (WORK_WEEKDAYS=1-7), so the dates are plain arithmetic. The order:
2000 pieces per task from 10 days ago to 9 days ahead (20 days, 100 a day). Task 1's supplier has
made 50 a day, task 2's 100 a day, each reporting every day up to yesterday."""
import json
from datetime import timedelta
from types import SimpleNamespace

import pytest

from app.models import EtaRevision, ProgressReport, Task
from app.timeutil import china_date
from tests import factories as f
from tests.sqlcount import statements


@pytest.fixture
def app_settings():
    return {"WORK_WEEKDAYS": "1-7"}


@pytest.fixture
def plant(dbconn, client):
    slow, steady = f.supplier("昆山宏达钣金厂"), f.supplier("苏州精工冲压厂")
    cust = f.customer()
    order = f.order(cust, [slow, steady], days_before=10, days_after=9, qty=2000)
    tasks = list(Task.select().where(Task.order == order.id).order_by(Task.id))
    today = china_date()
    for task, per_day in zip(tasks, (50, 100), strict=True):
        _report_daily(task, per_day, today - timedelta(days=10), today - timedelta(days=1))
    return SimpleNamespace(client=client, order=order, tasks=tasks, today=today, slow=slow, steady=steady,
                           customer=cust, slow_auth=f.bearer(f.wechat_user(slow)), cust_auth=f.bearer(f.wechat_user(cust)))


def _report_daily(task, per_day, first, last):
    qty, day = 0, first
    while day <= last:
        qty += per_day
        ProgressReport.create(task=task, report_date=day, qty_done=qty)
        day += timedelta(days=1)
    Task.update(qty_done=qty, last_report_date=last).where(Task.id == task.id).execute()


def test_the_manager_sees_expected_actual_deviation_eta_and_level(plant, manager):
    res = manager.get(f"/api/v1/orders/{plant.order.id}")
    assert res.status_code == 200, res.json
    slow, steady = (t["progress"] for t in res.json["tasks"])
    # Ten days gone: 1000 expected. The slow one made 500: 25 % behind; 1500 left at 50 a day is
    # 30 days from yesterday, 20 days after the due date: red.
    assert slow == {"expected_qty": 1000, "actual_qty": 500, "deviation_pct": 25.0,
                    "eta_date": (plant.today + timedelta(days=29)).isoformat(), "days_late": 20, "level": "red",
                    "rate_per_day": 50.0, "reported_on": (plant.today - timedelta(days=1)).isoformat()}
    assert (steady["actual_qty"], steady["deviation_pct"], steady["eta_date"], steady["level"]) == (
        1000, 0.0, plant.order.due_date.isoformat(), None)


def test_a_pending_task_has_no_progress(dbconn, manager):
    order = f.order(f.customer(), [f.supplier()], state="confirmed")
    res = manager.get(f"/api/v1/orders/{order.id}")
    assert res.json["tasks"][0]["progress"] is None


def test_the_supplier_sees_its_own_progress(plant):
    slow_task = plant.tasks[0]
    res = plant.client.get(f"/mp/v1/tasks/{slow_task.id}", headers=plant.slow_auth)
    assert res.status_code == 200, res.json
    p = res.json["progress"]
    assert (p["expected_qty"], p["actual_qty"], p["deviation_pct"], p["days_late"], p["level"]) == (1000, 500, 25.0, 20, "red")
    assert p["eta_date"] == (plant.today + timedelta(days=29)).isoformat()


def test_the_supplier_promise_moves_the_eta(plant):
    # The steady supplier answered an urge: a die broke, it needs until 12 days after the due date.
    steady = plant.tasks[1]
    promise = plant.order.due_date + timedelta(days=12)
    EtaRevision.create(task=steady, new_eta=promise, source="supplier", reason="模具损坏")
    res = plant.client.get(f"/mp/v1/tasks/{steady.id}", headers=f.bearer(f.wechat_user(plant.steady)))
    assert (res.json["progress"]["eta_date"], res.json["progress"]["days_late"]) == (promise.isoformat(), 12)


def test_the_customer_sees_a_predicted_ship_date_and_nothing_about_suppliers(plant):
    res = plant.client.get(f"/mp/v1/orders/{plant.order.id}", headers=plant.cust_auth)
    assert res.status_code == 200, res.json
    # The order ships when its slowest task is done.
    assert res.json["predicted_ship_date"] == (plant.today + timedelta(days=29)).isoformat()
    text = json.dumps(res.json, ensure_ascii=False)
    for secret in ("deviation", "expected_qty", "rate_per_day", "days_late", plant.slow.name, plant.steady.name):
        assert secret not in text
    listed = plant.client.get("/mp/v1/orders", headers=plant.cust_auth).json["items"]
    assert [o["predicted_ship_date"] for o in listed] == [(plant.today + timedelta(days=29)).isoformat()]


def test_an_order_on_hold_predicts_nothing(dbconn, client):
    cust = f.customer()
    order = f.order(cust, [f.supplier()], state="on_hold")
    res = client.get(f"/mp/v1/orders/{order.id}", headers=f.bearer(f.wechat_user(cust)))
    assert res.json["predicted_ship_date"] is None


def test_the_customers_order_list_costs_the_same_queries_for_1_or_6_orders(dbconn, client):
    cust = f.customer()
    auth = f.bearer(f.wechat_user(cust))
    today = china_date()

    def add_order():
        order = f.order(cust, [f.supplier(), f.supplier()], days_before=10, days_after=9, qty=2000)
        for task in Task.select().where(Task.order == order.id):
            _report_daily(task, 80, today - timedelta(days=10), today - timedelta(days=1))

    def count():
        _, seen = statements(lambda: client.get("/mp/v1/orders", headers=auth))
        return len(seen)

    add_order()
    one = count()
    for _ in range(5):
        add_order()
    assert count() == one


def test_the_manager_order_detail_costs_the_same_queries_for_1_or_6_tasks(dbconn, manager):
    today = china_date()

    def order_with(n):
        order = f.order(f.customer(), [f.supplier() for _ in range(n)], days_before=10, days_after=9, qty=2000)
        for task in Task.select().where(Task.order == order.id):
            _report_daily(task, 80, today - timedelta(days=10), today - timedelta(days=1))
        return order

    small, big = order_with(1), order_with(6)
    _, few = statements(lambda: manager.get(f"/api/v1/orders/{small.id}"))
    _, many = statements(lambda: manager.get(f"/api/v1/orders/{big.id}"))
    assert len(few) == len(many)
