"""What the staff dashboard reads: the overview, the Gantt's rows and the order page's extras.

Every figure comes from the service that defines it — progress, deviation, ETA, days late and
level from app/services/schedule.py, alerts from alert_responses, nodes from nodes, urges from
urges — and each read costs a fixed number of queries however many rows it shows (no N+1)."""
from collections import Counter
from datetime import timedelta
from typing import NamedTuple

from peewee import JOIN, Case, fn

from app.domain.errors import not_found
from app.domain.vocabulary import ALERT_LEVELS, FINAL_STATES, ORDER_STATES, TASK_STATES
from app.models import (
    Batch,
    Inspection,
    NodeInstance,
    Nonconformance,
    Order,
    Photo,
    ProgressReport,
    Supplier,
    Task,
    Urge,
)
from app.models.base import among, fast_tuples
from app.models.users import StaffUser, WechatUser
from app.services import alert_responses, materials, quality, quality_figures, schedule
from app.services.order_queries import order_detail
from app.timeutil import china_date

LIST_LIMIT = 50  # rows of each overview list (the counts say how many there are in all)
GANTT_LIMIT = 300  # tasks on one Gantt (a dozen screens; filter by order or supplier for the rest)
RUNNING = ("in_production", "on_hold")
_LEVEL_RANK = Case(Task.alert_level, (("red", 0), ("orange", 1), ("yellow", 2)), 3)


def state_counts():
    """({order state: count}, {task state: count}), every state present (0 when none): two queries."""
    orders = dict(Order.select(Order.state, fn.COUNT(Order.id)).group_by(Order.state).tuples())
    tasks = dict(Task.select(Task.state, fn.COUNT(Task.id)).group_by(Task.state).tuples())
    return ({s: orders.get(s, 0) for s in ORDER_STATES}, {s: tasks.get(s, 0) for s in TASK_STATES})


def _with_schedule(tasks, today):
    """Set each task's `schedule` (schedule.progress_many). The tasks came from `_rows_by_id(…,
    today)`, each row carrying its recent reports as one string (the delay scan's fast path:
    schedule.reports_column), so the figures cost one query more (the ETA promises), not two."""
    days = {}
    reports = {t.id: schedule.parse_reports(getattr(t, "recent_reports", None), days) for t in tasks}
    progress = schedule.progress_many(tasks, today, reports=reports)
    for task in tasks:
        task.schedule = progress.get(task.id)
    return tasks


def at_risk_tasks(today=None, limit=LIST_LIMIT):
    """Running tasks that are late or at risk: an alert level set by the delay engine, or past their
    due date unfinished; the most severe first, then the earliest due. → (count, tasks with their
    order, supplier and `schedule` loaded)."""
    today = today or china_date()
    where = (Task.state.in_(RUNNING) & (Task.alert_level.is_null(False)
                                        | ((Task.due_date < today) & (Task.qty_done < Task.planned_qty))))
    total = Task.select(fn.COUNT(Task.id)).where(where).scalar()
    ids = Task.select(Task.id).where(where).order_by(_LEVEL_RANK, Task.due_date, Task.id).limit(limit)
    return total, _with_schedule(_rows_by_id(ids, today), today)


# What the lists and the Gantt show of a task's order and supplier (not whole rows: an order's
# notes and a supplier's robot key would be read, converted and dropped for every task).
_ORDER_COLUMNS = (Order.id, Order.order_no, Order.product_name, Order.due_date, Order.state)
_SUPPLIER_COLUMNS = (Supplier.id, Supplier.code, Supplier.name)


def _rows_by_id(ids, today=None):
    """The tasks (with their order and supplier) whose ids a narrow, sorted query picked, in its
    order: MySQL sorts the ids alone, not whole joined rows, then reads only those. With `today`,
    each row also carries its reports of the schedule's window as one string (`recent_reports`)."""
    ids = [t.id for t in ids]
    if not ids:
        return []
    columns = [Task, *_ORDER_COLUMNS, *_SUPPLIER_COLUMNS]
    if today is not None:
        since = schedule.report_window(today, schedule.calendar())
        columns.append(schedule.reports_column(Task.id, since, today).alias("recent_reports"))
    rows = {t.id: t for t in Task.select(*columns).join(Order).switch(Task).join(Supplier)
            .where(among(Task.id, ids))}
    return [rows[i] for i in ids if i in rows]


def open_alerts(limit=LIST_LIMIT):
    """(count, the unresolved alerts — most severe first — with their task, order, supplier, people)."""
    query = alert_responses.alerts_query(status="unresolved")
    total = query.count()
    return total, alert_responses.with_people(list(query.limit(limit)))


def missing_reports_today(today=None, limit=LIST_LIMIT):
    """Tasks in production that should report today and have not yet (a working day, the plan
    started, the plan not reached, no report dated today). Whether that is late is the delay
    engine's call at the report cut-off (missing_report alerts); this is the day's to-do list.
    → (count, tasks with their order and supplier)."""
    today = today or china_date()
    if not schedule.calendar().is_working_day(today):
        return 0, []
    where = ((Task.state == "in_production") & (Task.planned_start <= today) & (Task.qty_done < Task.planned_qty)
             & (Task.last_report_date.is_null() | (Task.last_report_date < today)))
    total = Task.select(fn.COUNT(Task.id)).where(where).scalar()
    # In id order: the index (state, id) yields the first rows without sorting every running task.
    return total, _rows_by_id(Task.select(Task.id).where(where).order_by(Task.id).limit(limit))


def overview(today=None):
    """Everything on the overview page, in a fixed number of queries."""
    today = today or china_date()
    orders_by_state, tasks_by_state = state_counts()
    late_count, late = at_risk_tasks(today)
    alert_count, alerts = open_alerts()
    missing_count, missing = missing_reports_today(today)
    frozen_count, frozen = frozen_batches()
    levels = Counter(t.alert_level for t in late if t.alert_level)
    return {"today": today, "orders_by_state": orders_by_state, "tasks_by_state": tasks_by_state,
            "late_count": late_count, "late": late, "late_levels": {lv: levels.get(lv, 0) for lv in ALERT_LEVELS},
            "alert_count": alert_count, "alerts": alerts, "missing_count": missing_count, "missing": missing,
            "frozen_count": frozen_count, "frozen": frozen}


# --- quality and materials ---------------------------------------------------------------------------

def frozen_batches(supplier_id=None, limit=LIST_LIMIT):
    """Batches frozen by a failed QC inspection and waiting for QC (the longest frozen first), with
    their task, order and supplier, and `open_ncs` (their open nonconformances with the owner).
    → (count, batches); three queries."""
    where = Batch.status == "frozen"
    counted = Batch.select(fn.COUNT(Batch.id))
    if supplier_id is not None:
        where &= Task.supplier == supplier_id
        counted = counted.join(Task)
    total = counted.where(where).scalar()
    rows = list(Batch.select(Batch, Task, Order, Supplier).join(Task).join(Order).switch(Task).join(Supplier)
                .where(where).order_by(Batch.frozen_at, Batch.id).limit(limit))
    by_batch = {b.id: [] for b in rows}
    if rows:
        for nc in (Nonconformance.select(Nonconformance, StaffUser)
                   .join(StaffUser, JOIN.LEFT_OUTER, on=(Nonconformance.owner == StaffUser.id))
                   .where(among(Nonconformance.batch, list(by_batch)) & (Nonconformance.status == "open"))
                   .order_by(Nonconformance.id)):
            by_batch[nc.batch_id].append(nc)
    for batch in rows:
        batch.open_ncs = by_batch[batch.id]
    return total, rows


def order_quality(order, inspection_limit=200):
    """Beside each task of the order page (`order.task_list`): `batch_list` (quantities, status,
    open nonconformances), `inspection_list` (QC inspections and self-checks, newest first, with
    inspector and photos) and `balance` (materials.balances: the material balance with its
    shortage and over-consumption flags). A fixed number of queries."""
    tasks = order.task_list
    ids = [t.id for t in tasks]
    for task in tasks:
        task.batch_list, task.inspection_list = [], []
    if not ids:
        return order
    by_task = {t.id: t for t in tasks}
    batches = list(Batch.select().where(among(Batch.task, ids)).order_by(Batch.id))
    open_ncs = Counter(nc.batch_id for nc in Nonconformance.select(Nonconformance.batch)
                       .where(among(Nonconformance.task, ids) & (Nonconformance.status == "open")))
    batch_nos = {}
    for batch in batches:
        batch.open_nc_count = open_ncs.get(batch.id, 0)
        batch_nos[batch.id] = batch.batch_no
        by_task[batch.task_id].batch_list.append(batch)
    rows = list(Inspection.select().where(among(Inspection.task, ids))
                .order_by(Inspection.inspected_at.desc(), Inspection.id.desc()).limit(inspection_limit))
    self_checkers = {r.self_check_by_id for r in rows} - {None}
    people = {u.id: u for u in WechatUser.select().where(WechatUser.id.in_(self_checkers))} if self_checkers else {}
    for row in quality.load_inspections(rows):
        row.batch_no = batch_nos.get(row.batch_id, "")
        row.who = (row.inspector.display_name if row.inspector_id else
                   (people[row.self_check_by_id].display_name or "供应商") if row.self_check_by_id in people else "")
        row.all_photos = row.photos + [p for res in row.result_list for p in res.photos]
        by_task[row.task_id].inspection_list.append(row)
    for balance in materials.balances(tasks):
        balance.task.balance = balance
    return order


SUPPLIER_PERIOD_DAYS = 30


def supplier_page(supplier_id, today=None, limit=LIST_LIMIT):
    """A supplier's page: its quality figures for the last 30 days (today included:
    quality_figures.figures), its open problems — unresolved alerts, open nonconformances, frozen
    batches — and the material balance of its tasks with material (open first). Any supplier for
    staff; an unknown one is not found."""
    today = today or china_date()
    supplier = Supplier.get_or_none(Supplier.id == supplier_id)
    if supplier is None:
        raise not_found("供应商")
    start = today - timedelta(days=SUPPLIER_PERIOD_DAYS - 1)
    alerts_q = alert_responses.alerts_query(status="unresolved", supplier_id=supplier_id)
    ncs_q = quality.ncs_query(status="open", supplier_id=supplier_id)
    frozen_count, frozen = frozen_batches(supplier_id, limit)
    ncs = quality.with_nc_photos(list(ncs_q.limit(limit)))
    tasks = list(materials.supplier_tasks_with_materials(supplier_id).limit(limit))
    return {"supplier": supplier, "start": start, "end": today,
            "figures": quality_figures.figures(supplier_id, start, today),
            "alert_count": alerts_q.count(), "alerts": alert_responses.with_people(list(alerts_q.limit(limit))),
            "nc_count": ncs_q.count(), "ncs": ncs, "frozen_count": frozen_count, "frozen": frozen,
            "balances": materials.balances(tasks)}


def suppliers_list():
    """Every supplier (active first, by name) with its count of frozen batches and open
    nonconformances: three queries."""
    frozen = dict(Batch.select(Task.supplier, fn.COUNT(Batch.id)).join(Task)
                  .where(Batch.status == "frozen").group_by(Task.supplier).tuples())
    ncs = dict(Nonconformance.select(Task.supplier, fn.COUNT(Nonconformance.id)).join(Task)
               .where(Nonconformance.status == "open").group_by(Task.supplier).tuples())
    rows = list(Supplier.select().order_by(Supplier.active.desc(), Supplier.name, Supplier.id))
    for s in rows:
        s.frozen_count, s.nc_count = frozen.get(s.id, 0), ncs.get(s.id, 0)
    return rows


# --- Gantt -----------------------------------------------------------------------------------------

class GanttNode(NamedTuple):
    order_id: int
    code: str
    name: str
    planned_date: object
    state: str


def gantt_tasks(*, group="order", order_id=None, supplier_id=None, include_finished=False, today=None,
                limit=GANTT_LIMIT):
    """The tasks of a Gantt: confirmed work (pending, running; finished ones too when asked) on
    orders past draft, grouped by order (earliest due first) or by supplier, each with its
    `schedule` and its order's nodes (`gantt_nodes`: planned date, state) loaded — five queries in
    all, the tasks picked by a narrow sorted query first. → (tasks, truncated)."""
    today = today or china_date()
    states = TASK_STATES if include_finished else ("pending", *RUNNING)
    query = (Task.select(Task.id).join(Order)
             .where(Task.state.in_(states) & (Order.state != "draft") & (Task.state != "cancelled")))
    if order_id is not None:
        query = query.where(Task.order == order_id)
    if supplier_id is not None:
        query = query.where(Task.supplier == supplier_id)
    if group == "supplier":
        query = query.switch(Task).join(Supplier)
        order_by = (Supplier.name, Supplier.id, Task.planned_start, Task.id)
    else:
        order_by = (Order.due_date, Order.id, Task.id)
    ids = list(query.order_by(*order_by).limit(limit + 1))
    truncated = len(ids) > limit
    tasks = _with_schedule(_rows_by_id(ids[:limit], today), today)
    by_order = {}
    order_ids = {t.order_id for t in tasks}
    if order_ids:
        # Plain tuples: a chart of 300 tasks carries a thousand or two nodes.
        for node in fast_tuples(NodeInstance.select(NodeInstance.order, NodeInstance.code, NodeInstance.name,
                                                    NodeInstance.planned_date, NodeInstance.state)
                                .where(among(NodeInstance.order, order_ids)).order_by(NodeInstance.seq)):
            node = GanttNode(*node)
            by_order.setdefault(node.order_id, []).append(node)
    for task in tasks:
        task.gantt_nodes = by_order.get(task.order_id, [])
    return tasks, truncated


def is_late(task, today):
    """Late (red on the Gantt): unfinished, and the schedule model gives it a delay level (at least
    DELAY_THRESHOLD_DAYS working days late, actual or predicted), or its due date has passed. A
    task with only other alerts (a missed report, an overdue node) is at risk, not late."""
    if task.state in FINAL_STATES:
        return False
    progress = getattr(task, "schedule", None)
    return bool((progress is not None and progress.level)
                or (task.due_date < today and task.qty_done < task.planned_qty))


# --- the order page ---------------------------------------------------------------------------------

def order_page(order, photo_limit=200):
    """The order as the API's detail loads it (tasks with progress, nodes with parts, history),
    plus what the page shows beside: each task's reports with their photos, urges with the
    supplier's answers, the order's open alerts. A fixed number of queries."""
    order = order_detail(order)
    task_ids = [t.id for t in order.task_list]
    tasks = {t.id: t for t in order.task_list}
    reports, urges, photos = [], [], []
    if task_ids:
        reports = list(ProgressReport.select(ProgressReport, WechatUser)
                       .join(WechatUser, JOIN.LEFT_OUTER, on=(ProgressReport.reporter == WechatUser.id))
                       .where(among(ProgressReport.task, task_ids))
                       .order_by(ProgressReport.report_date.desc(), ProgressReport.id.desc()).limit(300))
        photos = list(Photo.select().where(among(Photo.task, task_ids) & Photo.status.in_(("ready", "duplicate")))
                      .order_by(Photo.id).limit(photo_limit))
        urges = list(Urge.select(Urge, StaffUser).join(StaffUser, JOIN.LEFT_OUTER, on=(Urge.by_staff == StaffUser.id))
                     .where(among(Urge.task, task_ids)).order_by(Urge.id.desc()))
    by_report, by_node = {}, {}
    for photo in photos:
        if photo.report_id:
            by_report.setdefault(photo.report_id, []).append(photo)
        elif photo.node_id:
            by_node.setdefault(photo.node_id, []).append(photo)
    for report in reports:
        report.task_ref = tasks[report.task_id]
        report.photo_list = by_report.get(report.id, [])
    for urge in urges:
        urge.task_ref = tasks[urge.task_id]
    for node in order.node_list:
        node.photo_list = by_node.get(node.id, [])
    order.report_list, order.urge_list = reports, urges
    order.object_names = {("order", str(order.id)): order.order_no,
                          **{("task", str(t.id)): t.task_no for t in order.task_list},
                          **{("node", str(n.id)): f"节点 {n.name}" for n in order.node_list}}
    order.alert_list = alert_responses.with_people(list(
        alert_responses.alerts_query(status="unresolved", order_id=order.id)))
    return order


def first_articles_awaiting(order):
    """(node, task) pairs of the order whose first article waits for the manager's confirmation."""
    tasks = {t.id: t for t in order.task_list}
    return [(node, tasks[part.task_id]) for node in order.node_list if node.code == "first_article"
            for part in node.parts if part.state == "awaiting_confirmation" and part.task_id in tasks]

