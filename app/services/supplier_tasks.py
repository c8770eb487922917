"""What a supplier reads: its task list and one task with the order's nodes, recent reports,
open urges and ETA history. Never the customer, prices or other suppliers' work."""
from peewee import Case, fn

from app.domain.vocabulary import ACTIVE_TASK_STATES, FINAL_STATES
from app.models import EtaRevision, NodeInstance, Order, Photo, ProgressReport, Task, Urge
from app.services import nodes, schedule
from app.services.photos import load_photos
from app.timeutil import china_date

RECENT_REPORTS = 10


# What a row of the supplier's task list shows: reading only these (no long texts) halves what
# the database sorts and the driver decodes for a page.
LIST_COLUMNS = (Task.id, Task.order, Task.task_no, Task.process, Task.planned_qty, Task.qty_done, Task.due_date,
                Task.state, Task.alert_level, Task.eta_date, Task.last_report_date)


def tasks_query(user, status=None, q=None):
    """The supplier's tasks (never of drafts): open ones first (completed and cancelled after
    them), each group by most urgent due date; each with its order's number and product and the
    count of unanswered urges (`open_urges`) — the list's columns only (LIST_COLUMNS)."""
    open_urges = Urge.select(fn.COUNT(Urge.id)).where((Urge.task == Task.id) & Urge.replied_at.is_null())
    closed_last = Case(None, [(Task.state.in_(FINAL_STATES), 1)], 0)
    query = (Task.select(*LIST_COLUMNS, Order.id, Order.order_no, Order.product_name, open_urges.alias("open_urges"))
             .join(Order)
             .where((Task.supplier == user.supplier_id) & (Order.state != "draft"))
             .order_by(closed_last, Task.due_date, Task.id))
    if status == "active":
        query = query.where(Task.state.in_(ACTIVE_TASK_STATES))
    elif status:
        query = query.where(Task.state == status)
    if q:
        query = query.where(Task.task_no.contains(q) | Order.product_name.contains(q) | Order.order_no.contains(q))
    return query


def detail(task):
    """Everything the supplier needs on one screen for one task. → the task with `node_list` (the
    order's nodes as this task's own parts show them), `recent_reports` (each with its `photos`),
    `open_urge_list`, `eta_history` and `schedule` (its schedule.Progress today, or None) loaded."""
    task.node_list = nodes.as_seen_by_task(list(task.order.nodes.order_by(NodeInstance.seq)), task)
    reports = task.reports.order_by(ProgressReport.report_date.desc()).limit(RECENT_REPORTS)
    task.recent_reports = load_photos(list(reports), Photo.report)
    task.open_urge_list = list(task.urges.where(Urge.replied_at.is_null()).order_by(Urge.id))
    task.eta_history = list(task.eta_revisions.order_by(EtaRevision.id))
    task.schedule = schedule.progress_many([task], china_date()).get(task.id)
    return task
