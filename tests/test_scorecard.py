"""The supplier scorecard: a scripted November 2026 for two suppliers, replayed through the services
under `clock_at`, snapshotted by the scorecard-snapshot job (`flask jobs run … --now`), read through
GET /api/v1/suppliers/<id>/scorecard. Every KPI, score and grade below is computed by hand in the
comments (definitions: app/services/scorecard.py, README "Supplier scorecard"; default weights
on_time 25, days_late 10, cycle 5, FPY 15, acceptance 15, rework/scrap 5, material loss 5,
report compliance 10, node timeliness 5, urge response 5; working days Monday–Saturday).

Calendar: W1 = Mon 2026-11-02 … Sun 11-08, W2 = 11-09 … 11-15, W3 = 11-16 … 11-22.

Supplier A, task A1: planned 11-02 … 11-07 (Sat), 600 pieces, started 11-02 09:00.
  reports recorded the same day for 11-02, 11-03, 11-04, 11-06 (none for 11-05), and 11-07;
  order completed 11-07 20:00 (on time); nodes: materials_ready done 10:00 recorded 11:00 (1 h,
  in time), first_article done 08:00 recorded 11:00 on 11-03 (3 h, late); urged 11-04 09:00,
  answered 15:00 (6 h). Quality on 11-03: batch 1 (100) fails its first QC inspection, is
  reworked and passes; batch 2 (100) passes first time, is shipped and received (100, 5 rejected).
Supplier B, task B1: planned 11-02 … 11-04 (Wed), 300 pieces, started 11-02 09:00; reports
  recorded on 11-02, 11-05 (also one for 11-04, caught up on 11-05: does not count), 11-06;
  materials_ready done 09:30 recorded 11:00 (1.5 h); urged 11-05 10:00, answered 11-06 10:00
  (24 h); completed Mon 11-09 10:00 (working days late: 11-05, 06, 07, 09 = 4).
  Task B2: planned 11-09 … 11-14 (Sat), started 11-09 09:00, reports recorded on 11-09 … 11-13
  (none for Saturday 11-14); completed Mon 11-16 09:00 (1 working day late: 11-16).
"""
import io
import json
import secrets
import uuid
from datetime import date, datetime, timedelta

import pytest

from app import config
from app.models import Order, SupplierScore, Task
from app.services import nodes, order_states, progress, quality_figures, scorecard, urges
from app.services.actors import Actor
from app.timeutil import CHINA, china_date, clock_at, to_utc_naive
from tests import factories as f
from tests.helpers import order_body
from tests.quality_helpers import inspect, make_plant, new_batch, ship
from tests.sqlcount import statements


def at(day, hh, mm=0):
    return datetime(2026, 11, day, hh, mm, tzinfo=CHINA)


def _order(customer, supplier, start, due, qty):
    n = uuid.uuid4().hex[:6]
    o = Order.create(order_no=f"SO-SC{n}", customer=customer, product_name="钣金机箱", quantity=qty,
                     planned_start=start, due_date=due, state="in_production")
    task = Task.create(order=o, task_no=f"{o.order_no}-T1", process="冲压", supplier=supplier, planned_qty=qty,
                       planned_start=start, due_date=due, state="in_production", qr_code=secrets.token_urlsafe(16),
                       started_at=to_utc_naive(at(start.day, 9)))
    nodes.instantiate(o)
    return o, task


def _report(user, task, day, qty, recorded=None):
    with clock_at(recorded or at(day, 18)):
        progress.report(Actor.wechat(user), user, Task.get_by_id(task.id),
                        {"report_date": date(2026, 11, day), "qty_done": qty})


def _node(task, code, done, recorded):
    with clock_at(recorded):
        progress.complete_node(Actor.system("供应商"), Task.get_by_id(task.id), code, {"occurred_at": done.isoformat()})


def _urge(staff, user, task, asked, answered):
    with clock_at(asked):
        urge = urges.urge_task(Actor.staff(staff), task.id, "请加快", staff=staff)
    with clock_at(answered):
        urges.reply_urge(Actor.wechat(user), user, urge, "设备检修", date(2026, 11, 30))


def _complete(staff, order, when):
    with clock_at(when):
        order_states.update_order(Actor.staff(staff), order.id, {"state": "completed", "reason": "全部交货"})


def _run_job(app, now):
    res = app.test_cli_runner().invoke(args=["jobs", "run", "scorecard-snapshot", "--now", now])
    assert res.exit_code == 0, res.output
    return res.output


@pytest.fixture
def history(app, dbconn, client):
    d = make_plant(app, client)  # supplier A (with QC template, QC and manager clients), another supplier
    # The plant's own orders are dated around the real today: out of this history.
    Task.update(state="cancelled").where(Task.id.in_([d.task.id, d.other_task.id])).execute()
    a = d.supplier
    b = f.supplier("无锡顺达焊接厂")
    staff = f.staff("gen-zhang", "long-enough-pw", "manager")
    user_a, user_b = f.wechat_user(a), f.wechat_user(b)
    cust = f.customer()

    order_a, a1 = _order(cust, a, date(2026, 11, 2), date(2026, 11, 7), 600)
    order_b1, b1 = _order(cust, b, date(2026, 11, 2), date(2026, 11, 4), 300)
    order_b2, b2 = _order(cust, b, date(2026, 11, 9), date(2026, 11, 14), 600)

    # Supplier A, W1.
    _node(a1, "materials_ready", at(2, 10), at(2, 11))
    for day, qty in ((2, 100), (3, 200), (4, 300), (6, 500)):
        _report(user_a, a1, day, qty)
    _node(a1, "first_article", at(3, 8), at(3, 11))
    _urge(staff, user_a, a1, at(4, 9), at(4, 15))
    d.task = a1
    with clock_at(at(3, 14)):
        reworked, clean = new_batch(d, 100), new_batch(d, 100)
        assert inspect(d, reworked["id"], 2.5).json["result"] == "fail"
        assert d.qc.post(f"/api/v1/batches/{reworked['id']}/disposition",
                         json={"disposition": "rework", "reason": "返工"}).status_code == 200
        assert inspect(d, reworked["id"], 2.0).json["result"] == "pass"
        assert inspect(d, clean["id"], 2.0).json["result"] == "pass"
        assert ship(d, clean["id"], 100).status_code in (200, 201)
        received = d.manager.post(f"/api/v1/batches/{clean['id']}/receipts", json={"qty": 100, "qty_rejected": 5})
        assert received.status_code in (200, 201), received.json
    _report(user_a, a1, 7, 600)
    _complete(staff, order_a, at(7, 20))

    # Supplier B.
    _node(b1, "materials_ready", at(2, 9, 30), at(2, 11))
    _report(user_b, b1, 2, 50)
    _report(user_b, b1, 4, 120, recorded=at(5, 9))  # caught up the next morning
    _report(user_b, b1, 5, 200)
    _urge(staff, user_b, b1, at(5, 10), at(6, 10))
    _report(user_b, b1, 6, 300)
    _complete(staff, order_b1, at(9, 10))
    for day, qty in ((9, 100), (10, 200), (11, 300), (12, 400), (13, 500)):
        _report(user_b, b2, day, qty)
    _complete(staff, order_b2, at(16, 9))

    d.a, d.b, d.staff, d.cust = a, b, staff, cust
    return d


def kpis(body):
    return {k["key"]: (k["value"], k["score"]) for k in body["kpis"]}


TODAY = date(2026, 11, 24)  # the trend's "today" in these tests: Tuesday of W4 (11-23 … 11-29)


def read(client, url):
    """GET `url` as on TODAY: the trend is the 12 periods up to the current one."""
    with clock_at(at(TODAY.day, 10)):
        answer = client.get(url)
    assert answer.status_code == 200, answer.get_data()[:300]
    return answer


def scored(trend):
    return [p for p in trend if p["has_data"]]


def test_scripted_history_scores_match_the_hand_computed_figures(app, history):
    d = history
    for now in ("2026-11-10T02:00:00+08:00", "2026-11-17T02:00:00+08:00", "2026-11-24T02:00:00+08:00"):
        _run_job(app, now)

    a_week = read(d.manager, f"/api/v1/suppliers/{d.a.id}/scorecard?period=week").json
    # A's last week with a snapshot is W1 (11-02 … 11-08): it had no activity after it.
    assert [p["period_start"] for p in scored(a_week["trend"])] == ["2026-11-02"]
    # The trend still lists the 12 weeks up to TODAY's, the ones without a snapshot marked.
    assert len(a_week["trend"]) == 12
    assert a_week["trend"][0]["period_start"] == "2026-09-07" and a_week["trend"][8]["period_start"] == "2026-11-02"
    assert a_week["trend"][-1] == {"period_start": "2026-11-23", "period_end": "2026-11-29", "score": None,
                                   "grade": None, "task_count": None, "has_data": False}
    w1 = a_week["latest"]
    assert (w1["period_start"], w1["period_end"], w1["task_count"]) == ("2026-11-02", "2026-11-08", 1)
    assert kpis(w1) == {
        "on_time_rate": (1.0, 100.0),           # 1 of 1 completed on or before its due date
        "avg_days_late": (0.0, 100.0),          # none late
        "delivery_cycle": (6.0, 100.0),         # 11-02 … 11-07 = 6 days; planned 6 → 100 × min(1, 6/6)
        "first_pass_yield": (0.5, 50.0),        # batch 1 failed first, batch 2 passed: 1/2
        "acceptance_rate": (0.95, 95.0),        # 95 of 100 received accepted
        "rework_scrap_rate": (0.5, 0.0),        # 100 reworked of 200 inspected; 100 × (1 − 5 × 0.5) < 0 → 0
        "material_loss_rate": (None, None),     # no material issued: left out
        "report_compliance": (0.8, 80.0),       # working days 11-02 … 11-06 (before completion): 4 of 5
        "node_timeliness": (0.5, 50.0),         # 1 h in time, 3 h late
        "urge_response": (6.0, 88.0),           # 6 hours → 100 − 2 × 6
    }
    # Weights with data: 25+10+5+15+15+5+10+5+5 = 95.
    # 25×100 + 10×100 + 5×100 + 15×50 + 15×95 + 5×0 + 10×80 + 5×50 + 5×88
    # = 2500 + 1000 + 500 + 750 + 1425 + 0 + 800 + 250 + 440 = 7665; 7665 / 95 = 80.68 → 80.7, grade B.
    assert (w1["score"], w1["grade"]) == (80.7, "B")
    weights = {k["key"]: k["effective_weight"] for k in w1["kpis"]}
    assert weights["material_loss_rate"] == 0.0 and weights["on_time_rate"] == round(2500 / 95, 2)

    b_week = read(d.manager, f"/api/v1/suppliers/{d.b.id}/scorecard?period=week").json
    assert [p["period_start"] for p in scored(b_week["trend"])] == ["2026-11-02", "2026-11-09", "2026-11-16"]
    b1, b2, b3 = scored(b_week["trend"])
    # W1: nothing completed, no quality. Compliance: B1's working days 11-02 … 11-07 = 6, reported on
    # the day: 11-02, 11-05, 11-06 = 3 → 0.5 → 50 (w 10); node 1.5 h → 1.0 → 100 (w 5); urge 24 h →
    # 100 − 48 = 52 (w 5). (10×50 + 5×100 + 5×52) / 20 = 1260 / 20 = 63.0 → C.
    assert (b1["score"], b1["grade"], b1["task_count"]) == (63.0, "C", 1)
    # W2: B1 completed 11-09, 4 working days late (11-05, 06, 07, 09): on time 0/1 → 0 (w 25); days late
    # 4 → 100 − 40 = 60 (w 10); cycle 11-02 … 11-09 = 8 days vs planned 3 → 100 × 3/8 = 37.5 (w 5);
    # compliance B2 11-09 … 11-14 = 6 working days, 5 reported → 0.8333 → 83.33 (w 10).
    # (0 + 600 + 187.5 + 833.3) / 50 = 1620.8 / 50 = 32.416 → 32.4 → D.
    assert (b2["score"], b2["grade"], b2["task_count"]) == (32.4, "D", 2)
    # W3: B2 completed 11-16, 1 working day late: on time 0 (w 25); days late 1 → 90 (w 10); cycle
    # 11-09 … 11-16 = 8 days vs planned 6 → 75 (w 5); no report days (it completed on the 16th).
    # (0 + 900 + 375) / 40 = 31.875 → 31.9 → D.
    assert (b3["score"], b3["grade"], b3["task_count"]) == (31.9, "D", 1)
    assert kpis(b_week["latest"]) == {
        "on_time_rate": (0.0, 0.0), "avg_days_late": (1.0, 90.0), "delivery_cycle": (8.0, 75.0),
        "first_pass_yield": (None, None), "acceptance_rate": (None, None), "rework_scrap_rate": (None, None),
        "material_loss_rate": (None, None), "report_compliance": (None, None), "node_timeliness": (None, None),
        "urge_response": (None, None),
    }

    b_month = read(d.manager, f"/api/v1/suppliers/{d.b.id}/scorecard?period=month").json
    month = b_month["latest"]
    assert (month["period_start"], month["period_end"]) == ("2026-11-01", "2026-11-30")
    assert kpis(month) == {
        "on_time_rate": (0.0, 0.0),             # 0 of 2 on time
        "avg_days_late": (2.5, 75.0),           # (4 + 1) / 2
        "delivery_cycle": (8.0, 56.25),         # (8 + 8) / 2; planned 3 + 6 = 9 of 16 days
        "first_pass_yield": (None, None), "acceptance_rate": (None, None), "rework_scrap_rate": (None, None),
        "material_loss_rate": (None, None),
        "report_compliance": (0.6667, 66.67),   # B1 3/6 + B2 5/6 = 8/12
        "node_timeliness": (1.0, 100.0),
        "urge_response": (24.0, 52.0),
    }
    # (0 + 750 + 281.25 + 666.7 + 500 + 260) / 60 = 2457.95 / 60 = 40.97 → 41.0 → D.
    assert (month["score"], month["grade"], month["task_count"]) == (41.0, "D", 2)
    # A's month holds the same as its W1.
    a_month = read(d.manager, f"/api/v1/suppliers/{d.a.id}/scorecard?period=month").json["latest"]
    assert (a_month["score"], a_month["grade"]) == (80.7, "B")

    # The dashboard's two functions read the same snapshots.
    assert scorecard.latest(d.b.id, "month").score == 41.0
    assert [r.period_start for r in scorecard.trend(d.b.id, "week", today=TODAY) if r.has_data] == [
        date(2026, 11, 2), date(2026, 11, 9), date(2026, 11, 16)]
    assert [(r.period_start, r.has_data) for r in scorecard.trend(d.b.id, "week", n=2, today=TODAY)] == [
        (date(2026, 11, 16), True), (date(2026, 11, 23), False)]


def test_running_the_job_twice_changes_nothing(app, history):
    first = _run_job(app, "2026-11-17T02:00:00+08:00")
    assert "'created': " in first
    rows = [(r.id, r.metrics, r.score, r.grade, r.task_count) for r in SupplierScore.select().order_by(SupplierScore.id)]
    again = _run_job(app, "2026-11-17T02:00:00+08:00")
    assert "'created': 0, 'updated': 0" in again
    assert [(r.id, r.metrics, r.score, r.grade, r.task_count)
            for r in SupplierScore.select().order_by(SupplierScore.id)] == rows
    assert all(json.loads(r[1]) for r in rows)


def test_a_new_task_for_a_d_supplier_answers_with_a_warning_and_is_still_created(app, history):
    d = history
    _run_job(app, "2026-11-24T02:00:00+08:00")  # B's November: D; A's: B
    res = d.manager.post("/api/v1/orders", json=order_body(d.cust, [d.b, d.a], external_no="ERP-SC-1"))
    assert res.status_code == 201, res.json
    assert len(res.json["tasks"]) == 2
    [warning] = res.json["warnings"]
    assert warning["code"] == "supplier_grade_d" and warning["supplier_id"] == d.b.id
    assert warning["task_nos"] == [res.json["tasks"][0]["task_no"]]
    assert "评级为 D" in warning["message"] and d.b.name in warning["message"]

    fine = d.manager.post("/api/v1/orders", json=order_body(d.cust, [d.a], external_no="ERP-SC-2"))
    assert fine.status_code == 201 and fine.json["warnings"] == []

    # An import warns the same way.
    start = china_date() + timedelta(days=1)
    csv = ("外部单号,客户编码,产品名称,订单数量,计划开工,交期,工序,供应商编码,计划数量\n"
           f"ERP-SC-3,{d.cust.code},钣金机箱,100,{start},{start + timedelta(days=10)},焊接,{d.b.code},100\n")
    imported = d.manager.post("/api/v1/orders/import", content_type="multipart/form-data",
                              data={"file": (io.BytesIO(csv.encode("utf-8")), "orders.csv")})
    assert imported.status_code == 201, imported.json
    [warning] = imported.json["warnings"]
    assert (warning["code"], warning["supplier_id"]) == ("supplier_grade_d", d.b.id)


def _snapshot(supplier, period, start, score, grade):
    _, end = scorecard.period_of(period, start)
    return SupplierScore.create(supplier=supplier, period=period, period_start=start, period_end=end, metrics="{}",
                                score=score, grade=grade, task_count=1, created_at=to_utc_naive(at(1, 0)))


def test_the_trend_lists_the_last_12_periods_with_the_gaps_marked(app, dbconn):
    """Snapshots exist only for periods with activity; the trend still lists each of the last 12
    weeks or months, oldest first, those without a snapshot present with null figures. One query."""
    sup = f.supplier()
    today = date(2027, 2, 10)  # a Wednesday; week 2027-02-08 … 02-14, month 2027-02
    _snapshot(sup, "week", date(2027, 2, 1), 72.5, "B")      # last week
    _snapshot(sup, "week", date(2027, 1, 18), 48.0, "D")     # three weeks ago
    _snapshot(sup, "week", date(2026, 11, 16), 90.0, "A")    # 12 weeks ago: just outside
    _snapshot(sup, "month", date(2026, 3, 1), 66.0, "C")     # the oldest month of the 12
    _snapshot(sup, "month", date(2026, 12, 1), 88.0, "A")    # across the year's end

    weeks, seen = statements(lambda: scorecard.trend(sup.id, "week", today=today))
    assert len(seen) == 1
    assert [r.period_start for r in weeks] == [date(2026, 11, 23) + timedelta(weeks=i) for i in range(12)]
    assert [(r.period_start, r.score, r.grade) for r in weeks if r.has_data] == [
        (date(2027, 1, 18), 48.0, "D"), (date(2027, 2, 1), 72.5, "B")]
    gap = weeks[-1]  # this week: no snapshot yet
    assert (gap.period_start, gap.period_end, gap.score, gap.grade, gap.task_count, gap.has_data) == (
        date(2027, 2, 8), date(2027, 2, 14), None, None, None, False)

    months = scorecard.trend(sup.id, "month", today=today)
    assert [r.period_start for r in months] == [date(2026, m, 1) for m in range(3, 13)] + [date(2027, 1, 1),
                                                                                       date(2027, 2, 1)]
    assert [r.period_end for r in months][-3:] == [date(2026, 12, 31), date(2027, 1, 31), date(2027, 2, 28)]
    assert [r.has_data for r in months] == [True] + [False] * 8 + [True, False, False]

    # The API answers the same, and its latest is the newest snapshot even when it is not this period's.
    manager = f.staff_client(app.test_client(), "manager")
    with clock_at(datetime(2027, 2, 10, 10, tzinfo=CHINA)):
        body = manager.get(f"/api/v1/suppliers/{sup.id}/scorecard?period=week").json
    assert [p["has_data"] for p in body["trend"]] == [r.has_data for r in weeks]
    assert body["latest"]["period_start"] == "2027-02-01" and body["latest"]["has_data"] is True
    assert body["trend"][-1] == {"period_start": "2027-02-08", "period_end": "2027-02-14", "score": None,
                                 "grade": None, "task_count": None, "has_data": False}
    # A supplier idle for all 12 weeks still shows its last snapshot as the latest.
    with clock_at(datetime(2027, 6, 2, 10, tzinfo=CHINA)):
        idle = manager.get(f"/api/v1/suppliers/{sup.id}/scorecard?period=week").json
    assert idle["latest"]["period_start"] == "2027-02-01" and not any(p["has_data"] for p in idle["trend"])


def test_only_staff_read_a_scorecard_and_the_period_is_checked(app, dbconn, client):
    sup, cust = f.supplier(), f.customer()
    manager = f.staff_client(app.test_client(), "manager")
    executive = f.staff_client(app.test_client(), "executive")
    url = f"/api/v1/suppliers/{sup.id}/scorecard"
    empty = read(manager, url).json
    assert {k: empty[k] for k in ("supplier_id", "period", "latest")} == {"supplier_id": sup.id, "period": "month",
                                                                         "latest": None}
    assert [p["period_start"] for p in empty["trend"]] == [f"{y}-{m:02}-01" for y, m in
                                                          [(2025, 12)] + [(2026, m) for m in range(1, 12)]]
    assert not any(p["has_data"] or p["score"] is not None for p in empty["trend"])
    assert executive.get(url + "?period=week").status_code == 200
    assert manager.get(url + "?period=year").status_code == 422
    assert manager.get("/api/v1/suppliers/999999/scorecard").status_code == 404
    assert client.get(url, headers=f.bearer(f.wechat_user(sup))).status_code == 401
    assert client.get(url, headers=f.bearer(f.wechat_user(cust))).status_code == 401
    assert client.get(url).status_code == 401


def test_a_batch_of_suppliers_costs_the_same_queries_as_one_besides_the_quality_figures(app, history):
    d = history
    start, now = date(2026, 11, 1), to_utc_naive(at(24, 2))

    def own_statements(ids):
        cards, seen = statements(lambda: scorecard.compute(ids, "month", start, now))
        quality = sum(len(statements(lambda i=i: quality_figures.figures(i, start, date(2026, 11, 30)))[1])
                      for i in ids)
        return cards, len(seen) - quality

    both, n_both = own_statements([d.a.id, d.b.id])
    _, n_one = own_statements([d.b.id])
    assert n_both == n_one == 5  # tasks, first reports, reports, node parts, urges
    assert (both[d.a.id]["grade"], both[d.b.id]["grade"]) == ("B", "D")


@pytest.mark.parametrize("weights, problem", [
    ("on_time_rate=30", "sum to 100"),
    ("on_time_rate=35,avg_days_late=0", None),
    ("speed=10", "unknown KPI"),
    ("on_time_rate=-5,avg_days_late=40", "negative"),
])
def test_weights_must_name_known_kpis_and_sum_to_100(weights, problem):
    if problem is None:
        assert config.parse_weights(weights)["avg_days_late"] == 0
        return
    with pytest.raises(config.ConfigError, match=problem):
        config.parse_weights(weights)
    with pytest.raises(config.ConfigError):
        config.parse_bands("50,70,85")


def test_the_demo_has_scorecards_with_a_trend(app, dbconn):
    assert app.test_cli_runner().invoke(args=["demo"]).exit_code == 0
    graded = [r for r in SupplierScore.select().where(SupplierScore.period == "week") if r.grade]
    assert graded, "the demo's suppliers have graded weeks"
    def scored_weeks(supplier_id):
        return [r.period_start for r in scorecard.trend(supplier_id, "week") if r.has_data]

    busiest = max({r.supplier_id for r in graded}, key=lambda s: len(scored_weeks(s)))
    weeks = scored_weeks(busiest)
    assert len(weeks) >= 3 and weeks == sorted(weeks)
    assert scorecard.latest(busiest, "month") is not None


def test_the_supplier_page_shows_the_grade_its_kpis_and_the_trend(app, history, auth):
    """The dashboard's supplier page reads the job's snapshots: B's November is a D, with every KPI
    and a bar per week of its trend; the week view is one click away."""
    d = history
    for now in ("2026-11-10T02:00:00+08:00", "2026-11-17T02:00:00+08:00", "2026-11-24T02:00:00+08:00"):
        _run_job(app, now)
    page = auth.login("manager")
    html = read(page, f"/dashboard/suppliers/{d.b.id}").get_data(as_text=True)
    card = html.split('id="scorecard"')[1].split("</section>")[0]
    month = scorecard.latest(d.b.id, "month")
    assert month.grade == "D" and 'class="grade grade-D">D<' in card and f"{month.score:.1f}" in card
    assert "D 级供应商" in card
    assert all(name in card for name in ("准时交付率", "一次合格率", "报工及时率", "催单响应时间（小时）"))
    weeks = scorecard.trend(d.b.id, "week", today=TODAY)
    week_html = read(page, f"/dashboard/suppliers/{d.b.id}?period=week").get_data(as_text=True)
    bars = week_html.split('id="scorecard-trend"')[1].split("</section>")[0]
    # Twelve weeks, oldest first: a bar for each of B's three scored weeks, "无" for the nine without.
    assert len(weeks) == 12 and bars.count('class="trend-bar"') == 3 and bars.count('class="trend-bar no-data"') == 9
    assert bars.index("09-07") < bars.index("11-02") < bars.index("11-16") < bars.index("11-23")
    assert page.get(f"/dashboard/suppliers/{d.b.id}?period=year").status_code == 422
    # A supplier never scored says so instead of showing figures.
    fresh = f.supplier("新来的供应商")
    assert "还没有评分" in page.get(f"/dashboard/suppliers/{fresh.id}").get_data(as_text=True)
