"""The supplier's day: daily progress reports, node completion, production problems.

Each write takes its task's row lock, checks the rules against fresh data, changes the rows and
appends its audit entry in one audit.transaction. The web edge makes them retry-safe (the same
client_id is stored once, app/web/idempotency.py) and dumps what they return.

Rules decided here (the mini program shows them as they are):
- A report is for a China date from REPORT_WINDOW_DAYS ago up to today; older corrections go
  through the manager. The same window bounds a node's completion time.
- Quantities are cumulative, so they never go down from one day to the next: a report may not be
  below an earlier day's nor above a later day's figure. Within one day a later report amends the
  first one and may lower it (it corrects a typo), but never below the previous day.
"""
from datetime import timedelta

from app.domain.errors import Conflict, Forbidden, Invalid, not_found
from app.domain.vocabulary import (
    FINAL_STATES,
    ISSUE_KINDS,
    SUPPLIER_NODE_CODES,
    max_reportable,
    part_state_on_completion,
    state_name,
)
from app.extensions import db, is_mysql
from app.models import NodeCompletion, Order, Photo, ProgressReport, Task, TaskIssue
from app.models.prepared import Prepared, Slot, insert_new
from app.services import access, audit, nodes, photos
from app.timeutil import china_date, iso_date, iso_local, parse_instant, utcnow

REPORT_WINDOW_DAYS = 7
# Phone clocks run a little fast; a completion time this far ahead still counts as "now".
CLOCK_SKEW = timedelta(minutes=5)
# A node may be completed while the task is being prepared or produced.
NODE_TASK_STATES = ("pending", "in_production")
# …and only on an order the manager has confirmed and not put on hold.
NODE_ORDER_STATES = ("confirmed", "in_production")


def lock_task(task_id):
    """Take the task's row lock for this transaction and read it fresh, so concurrent writes to
    one task queue up: SELECT … FOR UPDATE on MySQL; SQLite has no row locks, and the write
    transaction (extensions.write_transaction) already holds its one write lock."""
    query = Task.select().where(Task.id == task_id)
    return (query.for_update() if is_mysql() else query).get()


def refuse_closed(task):
    if task.state in FINAL_STATES:
        raise Conflict("task_closed", f"任务{state_name(task.state)}，不能再提交")


# --- daily progress reports ---------------------------------------------------------------------

def report(actor, user, task, data):
    """Record (or amend) the day's cumulative good quantity on the user's own task (`task`: the
    Task or its id; anything not the user's is not found). → the report, its photos loaded.

    An amendment's photos join those the day's report already has. A new report for a day after
    the task's latest (each day's first report) costs, with the audit entry: the task's lock (also
    the ownership check, and the order chain's head as last seen), the insert, the task's figure,
    the head's move and the entry; any other also reads the day's report and its neighbours."""
    task_id = getattr(task, "id", task)
    with audit.transaction(actor) as log:
        current = access.lock_supplier_task(user, task_id, (Task.planned_qty, Task.tolerance_pct, Task.qty_rejected,
                                                            Task.qty_done, Task.last_report_date))
        log.chain = audit.order_chain(current.order_id)
        log.saw_head(current.chain_head)
        same, earlier, later = _day_and_neighbours(current, data["report_date"])
        _check_report(current, data["report_date"], data["qty_done"], earlier, later)
        row, before = _save_report(current, user, data, same)
        attached = photos.attach(data.get("photo_ids"), current.supplier_id, task=current, report=row)
        if later is None:  # this is the latest report: the task shows its figure
            _TASK_FIGURE.execute(id=current.id, qty_done=row.qty_done, day=row.report_date, now=utcnow())
        after = _report_fields(row)
        after["photo_ids"] = [p.id for p in attached]
        if before is None:
            log.add("progress.report", "task", current.id, after=after)
        else:
            log.add("progress.amend", "task", current.id, before=before, after=after,
                    reason="同日再次报工，修正当日进度")
    if before is None:  # a new report has the photos it was sent with, in their order
        row.photos = attached
        return row
    if not row.photo_count:  # the day had none: the ones just attached, as the read would order them
        row.photos = sorted(attached, key=lambda photo: photo.id)
        return row
    return photos.load_photos([row], Photo.report)[0]


_TASK_FIGURE = Prepared(lambda: Task.update(qty_done=Slot("qty_done"), last_report_date=Slot("day", Task.last_report_date),
                                             updated_at=Slot("now", Task.updated_at))
                         .where(Task.id == Slot("id")))


_AMEND = Prepared(lambda: ProgressReport.update(
    {f: Slot(f.name, f) for f in (ProgressReport.qty_done, ProgressReport.stage, ProgressReport.note,
                                  ProgressReport.reporter, ProgressReport.revision, ProgressReport.updated_at)})
    .where(ProgressReport.id == Slot("id")))


REPORT_COLUMNS = ("id", "report_date", "qty_done", "stage", "note", "revision", "updated_at")


def _day_and_neighbours(task, report_date):
    """(the day's report, the nearest earlier one, the nearest later one), each None when there
    is none. The task row carries its latest report's date and figure (`_TASK_FIGURE`, the only
    writer of both, keeps them so), so a report for a later day — each day's first, the usual
    one — needs no read: no same-day or later report, and the latest is the earlier one.
    Otherwise one statement: the first three reports from the nearest earlier day on (or from
    the day itself when there is none). A UNION of two ordered, limited subqueries said the same
    and cost the database four times the CPU (MariaDB materialises each derived table)."""
    if task.last_report_date is not None and report_date > task.last_report_date:
        return None, ProgressReport(task=task.id, report_date=task.last_report_date, qty_done=task.qty_done), None
    task_id = task.id
    cols = ", ".join(REPORT_COLUMNS)
    p = db.param
    # How many photos each has: an amendment of a day without photos answers without reading them.
    photo_count = "(SELECT COUNT(*) FROM photo WHERE photo.report_id = progress_report.id) AS photo_count"
    sql = (f"SELECT {cols}, {photo_count} FROM progress_report WHERE task_id = {p} AND report_date >= COALESCE("
           f"(SELECT MAX(report_date) FROM progress_report WHERE task_id = {p} AND report_date < {p}), {p}) "
           f"ORDER BY report_date LIMIT 3")
    same = earlier = later = None
    for row in ProgressReport.raw(sql, task_id, task_id, report_date, report_date):
        row.task_id = task_id
        if row.report_date == report_date:
            same = row
        elif row.report_date < report_date:
            earlier = row
        elif later is None:
            later = row
    return same, earlier, later


def _check_report(task, report_date, qty, earlier, later):
    if task.state != "in_production":
        raise Conflict("task_not_in_production", f"任务{state_name(task.state)}，只有生产中的任务可以报工")
    today = china_date()
    if report_date > today:
        raise Invalid("future_date", f"报工日期不能晚于今天（{today.isoformat()}）", field="report_date")
    if report_date < today - timedelta(days=REPORT_WINDOW_DAYS):
        raise Invalid("too_old", f"只能补报最近 {REPORT_WINDOW_DAYS} 天的进度，更早的请联系跟单员修改",
                       field="report_date")
    limit = max_reportable(task)
    if qty > limit:
        raise Invalid("over_plan", f"累计数量 qty_done={qty} 超过计划数量加允差的上限 {limit}",
                       field="qty_done", extra={"max_qty": limit})
    if earlier and qty < earlier.qty_done:
        raise Invalid("qty_decreased",
                       f"累计数量 qty_done={qty} 不能少于 {earlier.report_date.isoformat()} 已报的 {earlier.qty_done}",
                       field="qty_done")
    if later and qty > later.qty_done:
        raise Invalid("qty_above_later_report",
                       f"累计数量 qty_done={qty} 不能多于 {later.report_date.isoformat()} 已报的 {later.qty_done}",
                       field="qty_done")


def _report_fields(row):
    return {"report_date": iso_date(row.report_date), "qty_done": row.qty_done, "stage": row.stage,
            "note": row.note, "revision": row.revision}


def _save_report(task, user, data, row):
    """Create the day's report, or amend `row` (the day's). → (row, fields before the amendment or None)."""
    if row is None:
        row = insert_new(ProgressReport(task=task, report_date=data["report_date"], qty_done=data["qty_done"],
                                        stage=data.get("stage"), note=data.get("note"), reporter=user.id))
        return row, None
    before = _report_fields(row)
    # An amendment that leaves out stage or note keeps what the first report said.
    changes = {"qty_done": data["qty_done"], "stage": data.get("stage", row.stage), "note": data.get("note", row.note),
               "reporter": user.id, "revision": row.revision + 1, "updated_at": utcnow()}
    _AMEND.execute(id=row.id, **changes)
    for name, value in changes.items():
        setattr(row, name, value)
    return row, before


# --- nodes ----------------------------------------------------------------------------------------

def complete_node(actor, task, code, data, user=None):
    """Complete this task's part of one of the order's nodes (first article: awaiting a manager's
    confirmation; a rejected one may be submitted again). The order's node follows its tasks'
    parts (nodes.settle). `task`: the Task or its id; with `user`, it must be the user's own (the
    ownership check is the task's lock). → the node as this task sees it, its photos loaded."""
    task_id = getattr(task, "id", task)
    with audit.transaction(actor) as log:
        current = access.lock_supplier_task(user, task_id) if user is not None else lock_task(task_id)
        log.chain = audit.order_chain(current.order_id)
        log.saw_head(getattr(current, "chain_head", None))  # read with the supplier's task lock
        node = nodes.lock_node_by_code(current.order_id, code)
        if node is None:
            raise not_found("节点")
        _check_node(current, node)
        done_at = _occurred_at(data.get("occurred_at"))
        task_ids, parts = nodes.open_parts(node)  # this task is open: its part is among them
        part = next((p for p in parts if p.task_id == current.id), None)
        # Without a part of this task the order's node is done only if it was marked before the
        # parts existed (migrated history): it stays done.
        if (part is not None and part.state != "rejected") or (part is None and node.state == "done"):
            raise _node_already_done(node)
        before = {"part": part.state if part else None, "node_state": node.state}
        fields = {"state": part_state_on_completion(code), "done_at": done_at,
                  "done_by": (actor.label or "")[:64] or None, "note": data.get("note"),
                  "reviewed_at": None, "reviewed_by": None, "reject_reason": None}
        if part is None:
            mine = NodeCompletion.create(node=node.id, task=current.id, **fields)
        else:
            NodeCompletion.update(**fields).where(NodeCompletion.id == part.id).execute()
            mine = NodeCompletion(id=part.id, node=node.id, task=current.id, **fields)
        # A supplier attaches only its own uploads; staff completing for it may use either.
        attached = photos.attach(data.get("photo_ids"), current.supplier_id, task=current, node=node,
                                 by_staff=None if user is None else False)
        node = nodes.settle(node, (task_ids, [p for p in parts if p.task_id != current.id] + [mine]))
        log.add("node.complete", "node", node.id, before=before,
                after={"part": fields["state"], "task_id": current.id, "done_at": iso_local(done_at),
                       "note": data.get("note"), "photo_ids": [p.id for p in attached], "node_state": node.state,
                       "done_tasks": node.done_tasks, "total_tasks": node.total_tasks})
        if node.state == "done" and before["node_state"] != "done":
            log.add("node.done", "node", node.id, before={"state": before["node_state"]},
                    after={"state": "done", "code": node.code}, reason="订单的全部任务均已完成该节点")
    [seen] = nodes.as_seen_by_task([node], current, parts=[mine])
    if part is None:  # a first completion has the photos it was sent with, nothing else
        seen.photos = attached
        return seen
    return photos.load_photos([seen], Photo.node, Photo.task == current.id)[0]


def _check_node(task, node):
    if node.code not in SUPPLIER_NODE_CODES:
        raise Forbidden("node_not_supplier_owned", f"“{node.name}”由跟单或质检完成，供应商不能标记")
    if task.state not in NODE_TASK_STATES or Order.select(Order.state).where(
            Order.id == task.order_id).scalar() not in NODE_ORDER_STATES:
        raise Conflict("task_not_active", f"任务{state_name(task.state)}，不能标记节点完成")


def _node_already_done(node):
    return Conflict("node_already_done", f"“{node.name}”已经标记完成")


def _occurred_at(text):
    """When the node really completed: now by default, never in the future, within the window."""
    now = utcnow()
    if not text:
        return now
    try:
        at = parse_instant(text)
    except ValueError:
        raise Invalid("validation_error", "参数 occurred_at 必须是 ISO 8601 时间，如 2026-05-01T14:30:00+08:00",
                      field="occurred_at")
    if at > now + CLOCK_SKEW:
        raise Invalid("future_time", "完成时间不能晚于现在", field="occurred_at")
    if at < now - timedelta(days=REPORT_WINDOW_DAYS):
        raise Invalid("too_old", f"只能补记最近 {REPORT_WINDOW_DAYS} 天内完成的节点", field="occurred_at")
    return min(at, now).replace(microsecond=0)  # whole seconds, as stored: settle orders parts by it


# --- production problems ----------------------------------------------------------------------------

def report_issue(actor, user, task, data):
    """A production problem (material short, machine down …) with optional photos. → the issue,
    its photos loaded."""
    with audit.transaction(actor) as log:
        current = lock_task(task.id)
        refuse_closed(current)
        issue = TaskIssue.create(task=current, kind=data["kind"], description=data["description"],
                                 reporter=user.id)
        attached = photos.attach(data.get("photo_ids"), current.supplier_id, task=current, issue=issue)
        log.add("task.issue", "task", current.id,
                after={"issue_id": issue.id, "kind": issue.kind, "description": issue.description,
                       "photo_ids": [p.id for p in attached]},
                reason=ISSUE_KINDS[issue.kind])
    issue.photos = attached
    return issue
