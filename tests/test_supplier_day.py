"""The supplier's day in the mini program: my tasks, a scanned label, daily reports (retried,
amended, next day), a node with a photo, a production problem, an urge reply — and every bad
input refused with nothing stored, every foreign caller answered 404/401 with nothing changed."""
import threading
import uuid
from datetime import timedelta
from types import SimpleNamespace

import pytest

from app.models import (
    AuditEntry,
    ClientRequest,
    EtaRevision,
    NodeCompletion,
    NodeInstance,
    Photo,
    ProgressReport,
    Task,
    TaskIssue,
    Urge,
)
from app.services import audit
from app.timeutil import china_date
from tests import factories as f
from tests.helpers import ready_photo
from tests.sqlcount import sent


@pytest.fixture
def day(dbconn, client):
    """One order shared by our supplier and another; a user of each, and a customer user."""
    sup, rival, cust = f.supplier(), f.supplier("无锡顺达焊接厂"), f.customer()
    order = f.order(cust, [sup, rival])
    task = Task.get((Task.order == order) & (Task.supplier == sup))
    rival_task = Task.get((Task.order == order) & (Task.supplier == rival))
    user = f.wechat_user(sup)
    return SimpleNamespace(
        client=client, supplier=sup, rival=rival, customer=cust, order=order, task=task, rival_task=rival_task,
        user=user, auth=f.bearer(user), rival_auth=f.bearer(f.wechat_user(rival)),
        customer_auth=f.bearer(f.wechat_user(cust)), today=china_date(),
    )


def _post(d, path, body, auth=None):
    return d.client.post(path, json=body, headers=d.auth if auth is None else auth)


def _report(d, qty, report_date=None, client_id=None, auth=None, task=None, **extra):
    body = {"client_id": client_id or str(uuid.uuid4()), "report_date": (report_date or d.today).isoformat(),
            "qty_done": qty, **extra}
    return _post(d, f"/mp/v1/tasks/{(task or d.task).id}/reports", body, auth)


def _task(d):
    return Task.get_by_id(d.task.id)


def _actions(obj_type=None):
    query = AuditEntry.select().where(AuditEntry.chain != "chains")  # not the chain registry's entries
    if obj_type:
        query = query.where(AuditEntry.object_type == obj_type)
    return [e.action for e in query.order_by(AuditEntry.id)]


# --- the task list ------------------------------------------------------------------------------

def test_the_task_list_filters_searches_literally_and_pages(day):
    d = day
    extra = [f.order(d.customer, [d.supplier]).tasks[0] for _ in range(4)]
    for task, task_no, state in zip(extra, ("T-100%", "T-1_0", "T-ABC", "T-XYZ"),
                                    ("in_production", "in_production", "completed", "cancelled"), strict=True):
        Task.update(task_no=task_no, state=state).where(Task.id == task.id).execute()
    f.order(d.customer, [d.rival])  # another supplier's: never listed

    def numbers(query):
        res = d.client.get(f"/mp/v1/tasks{query}", headers=d.auth)
        assert res.status_code == 200, res.json
        return [t["task_no"] for t in res.json["items"]], res.json["total"]

    everything, total = numbers("")
    assert (everything, total) == ([d.task.task_no, "T-100%", "T-1_0", "T-ABC", "T-XYZ"], 5)  # open first
    assert numbers("?q=100%25") == (["T-100%"], 1)  # the % is a character, not a wildcard
    assert numbers("?q=1_0") == (["T-1_0"], 1)  # so is the _
    assert numbers("?q=%25")[1] == 1 and numbers("?q=_")[1] == 1
    assert numbers("?status=completed") == (["T-ABC"], 1)
    assert numbers("?status=active")[1] == 3
    assert numbers("?status=active&q=T-1") == (["T-100%", "T-1_0"], 2)
    page_two, total = numbers("?per_page=2&page=2")
    assert total == 5 and page_two == everything[2:4]
    assert numbers("?per_page=2&page=3") == (everything[4:], 5)  # the short last page is its own count
    assert numbers("?per_page=2&page=4") == ([], 5)

    # A list shorter than a page costs the token and one select; a full page also counts.
    _, short = sent(lambda: d.client.get("/mp/v1/tasks", headers=d.auth))
    _, full = sent(lambda: d.client.get("/mp/v1/tasks?per_page=5", headers=d.auth))
    assert len(short) == 2 and len(full) == 3 and "COUNT(`t1`.`id`)" in full[-1].replace('"', "`"), full


# --- the whole day ------------------------------------------------------------------------------

def test_a_suppliers_whole_day(day):
    d, yesterday = day, day.today - timedelta(days=1)
    urge = Urge.create(task=d.task, message="客户催货，请加快")

    # My tasks: only my supplier's, with the open urge counted.
    listing = d.client.get("/mp/v1/tasks?status=active", headers=d.auth)
    assert listing.status_code == 200, listing.json
    assert [t["task_no"] for t in listing.json["items"]] == [d.task.task_no]
    item = listing.json["items"][0]
    assert item["open_urges"] == 1 and item["state"] == "in_production" and item["order_no"] == d.order.order_no
    assert d.client.get(f"/mp/v1/tasks?q={d.task.task_no}", headers=d.auth).json["total"] == 1
    assert d.client.get("/mp/v1/tasks?q=没有这个", headers=d.auth).json["total"] == 0
    assert d.client.get("/mp/v1/tasks?status=completed", headers=d.auth).json["total"] == 0

    # Scanning the label opens the same task detail.
    detail = d.client.get(f"/mp/v1/tasks/{d.task.id}", headers=d.auth)
    assert detail.status_code == 200
    assert d.client.get(f"/mp/v1/scan/{d.task.qr_code}", headers=d.auth).json == detail.json
    assert detail.json["plan"]["max_reportable_qty"] == 1050
    assert [n["code"] for n in detail.json["nodes"]][:2] == ["confirmed", "materials_ready"]
    assert detail.json["open_urges"][0]["message"] == "客户催货，请加快"
    assert "unit_price" not in detail.text and "12.50" not in detail.text and d.customer.name not in detail.text

    # Yesterday's report, sent twice on a bad network (same client_id): stored once.
    photo = ready_photo(d.supplier)
    first_id = str(uuid.uuid4())
    first = _report(d, 300, yesterday, first_id, stage="冲压", note="夜班补产", photo_ids=[photo.id])
    assert first.status_code == 201, first.json
    assert first.json["revision"] == 1 and first.json["photos"][0]["id"] == photo.id
    again = _report(d, 300, yesterday, first_id, stage="冲压", note="夜班补产", photo_ids=[photo.id])
    assert again.status_code == 200 and again.json == first.json
    assert ProgressReport.select().count() == 1
    assert _actions("task") == ["progress.report"]

    # A second report for the same day amends it (new client_id): revision 2, audited before/after.
    amended = _report(d, 320, yesterday, note="夜班补产，复核后更正")
    assert amended.status_code == 201, amended.json
    assert amended.json["id"] == first.json["id"] and amended.json["revision"] == 2
    assert amended.json["stage"] == "冲压"  # left out → kept
    amend_entry = AuditEntry.select().where(AuditEntry.action == "progress.amend").get()
    assert '"qty_done":300' in amend_entry.before and '"qty_done":320' in amend_entry.after
    assert ProgressReport.select().count() == 1

    # The next day (today) is a new report; the task shows the latest day's figure.
    today = _report(d, 450, stage="冲压")
    assert today.status_code == 201 and today.json["revision"] == 1
    task = _task(d)
    assert (task.qty_done, task.last_report_date) == (450, d.today)

    # A node with a photo: done for this task (the order's node waits for the other supplier's
    # task), the photo now customer-visible.
    node_photo = ready_photo(d.supplier, "node")
    node = _post(d, f"/mp/v1/tasks/{d.task.id}/nodes/materials_ready/complete",
                 {"client_id": str(uuid.uuid4()), "note": "钢板到齐", "photo_ids": [node_photo.id]})
    assert node.status_code == 201, node.json
    assert (node.json["state"], node.json["colour"]) == ("done", "green")
    assert node.json["photos"][0]["id"] == node_photo.id
    stored = NodeInstance.get((NodeInstance.order == d.order) & (NodeInstance.code == "materials_ready"))
    assert stored.state == "in_progress"
    part = NodeCompletion.get(NodeCompletion.node == stored)
    assert part.task_id == d.task.id and part.done_by == "测试用户" and part.done_at is not None
    assert Photo.get_by_id(node_photo.id).customer_visible

    # A production problem.
    issue = _post(d, f"/mp/v1/tasks/{d.task.id}/issues",
                  {"client_id": str(uuid.uuid4()), "kind": "equipment_failure", "description": "冲床模具崩角，维修中"})
    assert issue.status_code == 201 and issue.json["kind"] == "equipment_failure"

    # Answering the urge with a new date: ETA set and kept in the history.
    new_date = d.today + timedelta(days=25)
    reply = _post(d, f"/mp/v1/urges/{urge.id}/reply", {"reason": "模具维修两天", "new_due_date": new_date.isoformat()})
    assert reply.status_code == 200, reply.json
    assert reply.json["eta_date"] == new_date.isoformat()
    assert reply.json["eta_history"][0]["source"] == "supplier"

    # The detail now shows the whole day.
    detail = d.client.get(f"/mp/v1/tasks/{d.task.id}", headers=d.auth).json
    assert [r["qty_done"] for r in detail["recent_reports"]] == [450, 320]
    assert detail["recent_reports"][1]["photos"][0]["url"]
    assert detail["open_urges"] == [] and detail["eta_date"] == new_date.isoformat()
    assert [h["reason"] for h in detail["eta_history"]] == ["模具维修两天"]
    materials = next(n for n in detail["nodes"] if n["code"] == "materials_ready")
    assert materials["state"] == "done" and materials["can_complete"] is False
    assert _actions() == ["progress.report", "progress.amend", "progress.report", "node.complete", "task.issue",
                          "urge.reply"]
    assert audit.verify() == []


# --- reports: the rules ------------------------------------------------------------------------------

def _nothing_stored(d, qty_before=0):
    assert ProgressReport.select().count() == 0
    assert _task(d).qty_done == qty_before
    assert AuditEntry.select().count() == 0
    assert ClientRequest.select().count() == 0


@pytest.mark.parametrize("case, status, code, field", [
    ("over_plan", 422, "over_plan", "qty_done"),
    ("future_date", 422, "future_date", "report_date"),
    ("too_old", 422, "too_old", "report_date"),
    ("negative", 422, "validation_error", "qty_done"),
    ("bad_date", 422, "validation_error", "report_date"),
    ("bad_client_id", 422, "validation_error", "client_id"),
    ("long_stage", 422, "validation_error", "stage"),
    ("ten_photos", 422, "validation_error", "photo_ids"),
    ("unknown_photo", 422, "invalid_photo", "photo_ids"),
    ("rivals_photo", 422, "invalid_photo", "photo_ids"),
])
def test_bad_reports_are_refused_with_nothing_stored(day, case, status, code, field):
    d = day
    body = {"client_id": str(uuid.uuid4()), "report_date": d.today.isoformat(), "qty_done": 100}
    if case == "over_plan":
        body["qty_done"] = 1051  # plan 1000 + 5 % = 1050
    elif case == "future_date":
        body["report_date"] = (d.today + timedelta(days=1)).isoformat()
    elif case == "too_old":
        body["report_date"] = (d.today - timedelta(days=8)).isoformat()
    elif case == "negative":
        body["qty_done"] = -1
    elif case == "bad_date":
        body["report_date"] = "2026/11/01"
    elif case == "bad_client_id":
        body["client_id"] = "not-a-uuid"
    elif case == "long_stage":
        body["stage"] = "工" * 33
    elif case == "ten_photos":
        body["photo_ids"] = list(range(1, 11))
    elif case == "unknown_photo":
        body["photo_ids"] = [999999]
    elif case == "rivals_photo":
        body["photo_ids"] = [ready_photo(d.rival).id]

    res = _post(d, f"/mp/v1/tasks/{d.task.id}/reports", body)

    assert res.status_code == status, res.json
    assert res.json["error"]["code"] == code
    assert res.json["error"]["field"] == field
    if code == "over_plan":
        assert "qty_done" in res.json["error"]["message"] and "1050" in res.json["error"]["message"]
    _nothing_stored(d)
    assert Photo.select().where(Photo.report.is_null(False)).count() == 0


def test_the_plan_plus_tolerance_is_reportable_exactly(day):
    d = day
    assert _report(d, 1050).status_code == 201
    # 100 × 1.15 is 114.99999… in floating point; the limit is still 115.
    Task.update(planned_qty=100, tolerance_pct=0.15).where(Task.id == d.rival_task.id).execute()
    rival = f.wechat_user(d.rival)
    assert _report(d, 115, task=d.rival_task, auth=f.bearer(rival)).status_code == 201
    over = _report(d, 116, task=d.rival_task, auth=f.bearer(rival), report_date=d.today - timedelta(days=1))
    assert over.json["error"]["code"] == "over_plan"


@pytest.mark.parametrize("state", ["pending", "on_hold", "completed", "cancelled"])
def test_only_a_task_in_production_takes_reports(day, state):
    d = day
    Task.update(state=state).where(Task.id == d.task.id).execute()
    res = _report(d, 10)
    assert res.status_code == 409 and res.json["error"]["code"] == "task_not_in_production"
    _nothing_stored(d)


def test_the_cumulative_quantity_never_goes_back_but_today_may_be_corrected(day):
    d = day
    two_days_ago, yesterday = d.today - timedelta(days=2), d.today - timedelta(days=1)
    assert _report(d, 200, yesterday).status_code == 201

    lower = _report(d, 150)
    assert lower.status_code == 422 and lower.json["error"]["code"] == "qty_decreased"
    assert lower.json["error"]["field"] == "qty_done" and "200" in lower.json["error"]["message"]

    assert _report(d, 400).status_code == 201
    corrected = _report(d, 300)  # a typo fixed the same day: allowed, still ≥ yesterday
    assert corrected.status_code == 201 and corrected.json["revision"] == 2
    assert _report(d, 199).json["error"]["code"] == "qty_decreased"

    # Back-filling an earlier day cannot exceed what the later day already says.
    late = _report(d, 250, two_days_ago)
    assert late.status_code == 422 and late.json["error"]["code"] == "qty_above_later_report"
    assert _report(d, 180, two_days_ago).status_code == 201
    # The task keeps the latest day's figure, whatever order the reports came in.
    assert _task(d).qty_done == 300 and _task(d).last_report_date == d.today


def test_a_client_id_used_for_another_kind_of_write_is_refused(day):
    d = day
    cid = str(uuid.uuid4())
    assert _report(d, 10, client_id=cid).status_code == 201
    res = _post(d, f"/mp/v1/tasks/{d.task.id}/issues", {"client_id": cid, "kind": "other", "description": "x"})
    assert res.status_code == 409 and res.json["error"]["code"] == "client_id_reused"
    assert TaskIssue.select().count() == 0


# --- nodes ---------------------------------------------------------------------------------------

def _complete(d, code, auth=None, **body):
    body.setdefault("client_id", str(uuid.uuid4()))
    return _post(d, f"/mp/v1/tasks/{d.task.id}/nodes/{code}/complete", body, auth)


def test_node_completion_rules(day):
    d = day
    qc = _complete(d, "qc")
    assert qc.status_code == 403 and qc.json["error"]["code"] == "node_not_supplier_owned"
    assert _complete(d, "no_such_node").status_code == 404

    cid = str(uuid.uuid4())
    first = _complete(d, "first_article", client_id=cid, occurred_at=f"{d.today.isoformat()}T00:00:00+08:00")
    assert first.status_code == 201, first.json
    assert (first.json["state"], first.json["colour"]) == ("awaiting_confirmation", "blue")
    assert first.json["done_at"] == f"{d.today.isoformat()}T00:00:00+08:00"
    assert _complete(d, "first_article", client_id=cid).status_code == 200  # a retry
    again = _complete(d, "first_article")
    assert again.status_code == 409 and again.json["error"]["code"] == "node_already_done"
    # The other supplier of the order submits its own first article.
    rival = _post(d, f"/mp/v1/tasks/{d.rival_task.id}/nodes/first_article/complete",
                  {"client_id": str(uuid.uuid4())}, d.rival_auth)
    assert rival.status_code == 201 and rival.json["state"] == "awaiting_confirmation"
    assert _actions() == ["node.complete", "node.complete"]


@pytest.mark.parametrize("occurred_at, code", [
    ("2999-01-01T08:00:00+08:00", "future_time"),
    ("2020-01-01T08:00:00+08:00", "too_old"),
    ("yesterday", "validation_error"),
])
def test_a_node_time_in_the_future_or_long_ago_is_refused(day, occurred_at, code):
    res = _complete(day, "packed", occurred_at=occurred_at)
    assert res.status_code == 422 and res.json["error"]["code"] == code
    assert res.json["error"]["field"] == "occurred_at"
    assert NodeInstance.get((NodeInstance.order == day.order) & (NodeInstance.code == "packed")).state == "pending"
    assert AuditEntry.select().count() == 0


def test_a_node_with_a_foreign_photo_is_not_completed(day):
    res = _complete(day, "packed", photo_ids=[ready_photo(day.rival).id])
    assert res.status_code == 422 and res.json["error"]["code"] == "invalid_photo"
    assert NodeInstance.get((NodeInstance.order == day.order) & (NodeInstance.code == "packed")).state == "pending"


# --- problems and urges -------------------------------------------------------------------------------

def test_problem_reports_are_validated_and_stored_once(day):
    d = day
    bad = _post(d, f"/mp/v1/tasks/{d.task.id}/issues", {"client_id": str(uuid.uuid4()), "kind": "weather",
                                                        "description": "下雨"})
    assert bad.status_code == 422 and bad.json["error"]["field"] == "kind"
    blank = _post(d, f"/mp/v1/tasks/{d.task.id}/issues", {"client_id": str(uuid.uuid4()), "kind": "other",
                                                          "description": "   "})
    assert blank.status_code == 422 and blank.json["error"]["field"] == "description"

    photo = ready_photo(d.supplier, "issue")
    body = {"client_id": str(uuid.uuid4()), "kind": "material_shortage", "description": "镀锌板缺 200 张",
            "photo_ids": [photo.id]}
    first = _post(d, f"/mp/v1/tasks/{d.task.id}/issues", body)
    assert first.status_code == 201 and first.json["photos"][0]["id"] == photo.id
    assert _post(d, f"/mp/v1/tasks/{d.task.id}/issues", body).status_code == 200
    assert TaskIssue.select().count() == 1 and _actions() == ["task.issue"]


def test_an_urge_is_answered_once_with_a_date_not_in_the_past(day):
    d = day
    urge = Urge.create(task=d.task, message="请加快")
    Task.update(eta_date=d.today + timedelta(days=3)).where(Task.id == d.task.id).execute()

    past = _post(d, f"/mp/v1/urges/{urge.id}/reply",
                 {"reason": "设备故障", "new_due_date": (d.today - timedelta(days=1)).isoformat()})
    assert past.status_code == 422 and past.json["error"]["code"] == "past_date"
    blank = _post(d, f"/mp/v1/urges/{urge.id}/reply", {"reason": " ", "new_due_date": d.today.isoformat()})
    assert blank.status_code == 422 and blank.json["error"]["field"] == "reason"
    assert Urge.get_by_id(urge.id).replied_at is None and EtaRevision.select().count() == 0

    new_date = d.today + timedelta(days=6)
    ok = _post(d, f"/mp/v1/urges/{urge.id}/reply", {"reason": "设备故障", "new_due_date": new_date.isoformat()})
    assert ok.status_code == 200, ok.json
    assert ok.json["eta_history"] == [{
        "old_eta": (d.today + timedelta(days=3)).isoformat(), "new_eta": new_date.isoformat(), "reason": "设备故障",
        "source": "supplier", "urge_id": urge.id, "created_at": ok.json["eta_history"][0]["created_at"],
    }]
    stored = Urge.get_by_id(urge.id)
    assert stored.replied_by_id == d.user.id and stored.new_due_date == new_date

    twice = _post(d, f"/mp/v1/urges/{urge.id}/reply", {"reason": "再说一次", "new_due_date": new_date.isoformat()})
    assert twice.status_code == 409 and twice.json["error"]["code"] == "urge_already_answered"
    assert EtaRevision.select().count() == 1 and _actions() == ["urge.reply"]


# --- who may do what ---------------------------------------------------------------------------------

def _snapshot(d, urge):
    return (
        ProgressReport.select().count(),
        TaskIssue.select().count(),
        [(n.state, n.done_at) for n in NodeInstance.select().order_by(NodeInstance.id)],
        Urge.get_by_id(urge.id).replied_at,
        [(t.qty_done, t.eta_date) for t in Task.select().order_by(Task.id)],
        AuditEntry.select().count(),
    )


@pytest.mark.parametrize("caller", ["rival", "customer", "unbound", "nobody"])
def test_nobody_but_the_tasks_supplier_reaches_its_routes(day, caller):
    d = day
    urge = Urge.create(task=d.task, message="请加快")
    auth = {"rival": d.rival_auth, "customer": d.customer_auth, "unbound": f.bearer(f.wechat_user()),
            "nobody": {}}[caller]
    expected = 401 if caller == "nobody" else 404
    before = _snapshot(d, urge)
    t = d.task.id
    calls = [
        ("get", f"/mp/v1/tasks/{t}", None),
        ("get", f"/mp/v1/scan/{d.task.qr_code}", None),
        ("post", f"/mp/v1/tasks/{t}/reports",
         {"client_id": str(uuid.uuid4()), "report_date": d.today.isoformat(), "qty_done": 5}),
        ("post", f"/mp/v1/tasks/{t}/nodes/packed/complete", {"client_id": str(uuid.uuid4())}),
        ("post", f"/mp/v1/tasks/{t}/issues", {"client_id": str(uuid.uuid4()), "kind": "other", "description": "x"}),
        ("post", f"/mp/v1/urges/{urge.id}/reply", {"reason": "x", "new_due_date": d.today.isoformat()}),
    ]
    for method, path, body in calls:
        res = getattr(d.client, method)(path, json=body, headers=auth)
        assert res.status_code == expected, (path, res.json)
        # The same answer as for an id that does not exist: nothing is confirmed.
        assert res.json["error"]["code"] == ("unauthorized" if caller == "nobody" else "not_found")
    assert _snapshot(d, urge) == before

    listing = d.client.get("/mp/v1/tasks", headers=auth)
    if caller == "rival":
        assert [i["id"] for i in listing.json["items"]] == [d.rival_task.id]
    else:
        assert listing.status_code in (401, 403)


def test_a_supplier_cannot_reach_ids_that_do_not_exist(day):
    d = day
    assert d.client.get("/mp/v1/tasks/999999", headers=d.auth).json["error"]["code"] == "not_found"
    assert d.client.get("/mp/v1/scan/" + "x" * 40, headers=d.auth).status_code == 404
    assert d.client.get(f"/mp/v1/scan/{d.rival_task.qr_code}", headers=d.auth).status_code == 404


def test_the_task_list_is_paged_and_sorted_by_due_date(day):
    d = day
    for days_after in (30, 5, 12):
        f.order(d.customer, [d.supplier], days_after=days_after)
    page = d.client.get("/mp/v1/tasks?per_page=2", headers=d.auth).json
    assert page["total"] == 4 and page["per_page"] == 2 and len(page["items"]) == 2
    everything = d.client.get("/mp/v1/tasks?per_page=100", headers=d.auth).json["items"]
    dues = [i["due_date"] for i in everything]
    assert dues == sorted(dues)
    bad = d.client.get("/mp/v1/tasks?status=sleeping", headers=d.auth)
    assert bad.status_code == 422 and bad.json["error"]["field"] == "status"


def test_open_tasks_come_before_finished_ones_in_the_task_list(day):
    """Yesterday's finished work does not push today's work off the first page."""
    d = day
    finished = Task.get(Task.order == f.order(d.customer, [d.supplier], state="completed", days_after=-5))
    cancelled = Task.get(Task.order == f.order(d.customer, [d.supplier], state="cancelled", days_after=-8))
    held = Task.get(Task.order == f.order(d.customer, [d.supplier], state="on_hold", days_after=40))
    confirmed = Task.get(Task.order == f.order(d.customer, [d.supplier], state="confirmed", days_after=60))

    listed = d.client.get("/mp/v1/tasks?per_page=100", headers=d.auth).json["items"]
    assert [t["id"] for t in listed] == [d.task.id, held.id, confirmed.id, cancelled.id, finished.id]
    first_page = d.client.get("/mp/v1/tasks?per_page=2", headers=d.auth).json["items"]
    assert [t["state"] for t in first_page] == ["in_production", "on_hold"]


@pytest.mark.parametrize("same_client_id", [False, True])
def test_reports_racing_for_one_day_end_as_one_report(day, app, same_client_id):
    """Two phones (or one phone's retry) sending at the same moment: no error, one row."""
    d = day
    barrier = threading.Barrier(2)
    ids = [str(uuid.uuid4())] * 2 if same_client_id else [str(uuid.uuid4()), str(uuid.uuid4())]
    statuses = []

    def send(qty, client_id):
        client = app.test_client()
        barrier.wait()
        statuses.append(client.post(f"/mp/v1/tasks/{d.task.id}/reports", headers=d.auth, json={
            "client_id": client_id, "report_date": d.today.isoformat(), "qty_done": qty}).status_code)

    threads = [threading.Thread(target=send, args=(qty, cid)) for qty, cid in zip((100, 200), ids, strict=False)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    [row] = list(ProgressReport.select())
    if same_client_id:
        assert sorted(statuses) == [200, 201] and row.revision == 1
    else:
        assert statuses == [201, 201] and row.revision == 2
    assert _task(d).qty_done == row.qty_done


# --- review follow-ups ------------------------------------------------------------------------------

def test_a_draft_orders_task_is_invisible_to_its_supplier(day):
    draft = f.order(day.customer, [day.supplier], state="draft")
    task = Task.get(Task.order == draft)
    listed = day.client.get("/mp/v1/tasks?per_page=100", headers=day.auth).json["items"]
    assert task.id not in [t["id"] for t in listed]
    assert day.client.get(f"/mp/v1/tasks/{task.id}", headers=day.auth).status_code == 404
    assert day.client.get(f"/mp/v1/scan/{task.qr_code}", headers=day.auth).status_code == 404


def test_nodes_cannot_be_completed_while_the_order_is_on_hold(day):
    Task.update(state="pending").where(Task.id == day.task.id).execute()
    day.order.state = "on_hold"
    day.order.save()
    res = day.client.post(f"/mp/v1/tasks/{day.task.id}/nodes/shipped/complete",
                          json={"client_id": str(uuid.uuid4())}, headers=day.auth)
    assert res.status_code == 409 and res.json["error"]["code"] == "task_not_active"
    assert NodeInstance.get((NodeInstance.order == day.order) & (NodeInstance.code == "shipped")).state == "pending"


def test_a_client_id_replayed_against_another_task_is_refused(day):
    other = Task.get(Task.order == f.order(day.customer, [day.supplier]))
    body = {"client_id": str(uuid.uuid4()), "report_date": day.today.isoformat(), "qty_done": 10}
    assert day.client.post(f"/mp/v1/tasks/{day.task.id}/reports", json=body, headers=day.auth).status_code == 201

    res = day.client.post(f"/mp/v1/tasks/{other.id}/reports", json=body, headers=day.auth)

    assert res.status_code == 409 and res.json["error"]["code"] == "client_id_reused"
    assert ProgressReport.select().where(ProgressReport.task == other.id).count() == 0


def test_an_urge_reply_retried_after_a_lost_answer_is_answered_again(day):
    urge = Urge.create(task=day.task, message="请加快")
    body = {"reason": "模具维修两天", "new_due_date": (day.today + timedelta(days=3)).isoformat()}
    first = day.client.post(f"/mp/v1/urges/{urge.id}/reply", json=body, headers=day.auth)
    again = day.client.post(f"/mp/v1/urges/{urge.id}/reply", json=body, headers=day.auth)
    assert first.status_code == again.status_code == 200 and first.json == again.json
    changed = day.client.post(f"/mp/v1/urges/{urge.id}/reply", json={**body, "reason": "改主意了"}, headers=day.auth)
    assert changed.status_code == 409 and changed.json["error"]["code"] == "urge_already_answered"
    assert EtaRevision.select().count() == 1
