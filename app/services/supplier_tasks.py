"""What a supplier reads: its task list and one task with the order's nodes, recent reports,
open urges and ETA history. Never the customer, prices or other suppliers' work."""
import functools

from peewee import OP, SQL, Case, Expression, NodeList, Value, fn

from app.domain.vocabulary import ACTIVE_TASK_STATES, FINAL_STATES
from app.models import EtaRevision, NodeInstance, Order, Photo, ProgressReport, Task, Urge
from app.models.prepared import Prepared, PreparedList, Slot
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
    count of unanswered urges (`open_urges`) — the list's columns only (LIST_COLUMNS). A page and
    the count, their SQL written once per kind of filter (app/models/prepared.py)."""
    kind = "active" if status == "active" else "state" if status else None
    page, count = _list_statements(kind, bool(q))
    values = {"supplier": user.supplier_id}
    if kind == "state":
        values["state"] = status
    if q:  # LIKE '%q%' with q's own wildcards escaped, as peewee's contains() does
        values["pattern"] = "%" + q.replace("\\", "\\\\").replace("_", "\\_").replace("%", "\\%") + "%"
    return PreparedList(page, count, **values)


@functools.cache
def _list_statements(kind, searching):
    """(the page's select, the count's) for one kind of status filter, with or without a search."""

    def where():
        condition = (Task.supplier == Slot("supplier")) & (Order.state != "draft")
        if kind == "active":
            condition &= Task.state.in_(ACTIVE_TASK_STATES)
        elif kind == "state":
            condition &= Task.state == Slot("state")
        if searching:
            pattern = NodeList((Slot("pattern"), SQL("ESCAPE"), Value("\\", converter=False)))
            condition &= (Expression(Task.task_no, OP.ILIKE, pattern) | Expression(Order.product_name, OP.ILIKE, pattern)
                          | Expression(Order.order_no, OP.ILIKE, pattern))
        return condition

    def page():
        open_urges = Urge.select(fn.COUNT(Urge.id)).where((Urge.task == Task.id) & Urge.replied_at.is_null())
        closed_last = Case(None, [(Task.state.in_(FINAL_STATES), 1)], 0)
        return (Task.select(*LIST_COLUMNS, Order.id, Order.order_no, Order.product_name, open_urges.alias("open_urges"))
                .join(Order).where(where())
                .order_by(closed_last, Task.due_date, Task.id)
                .limit(Slot("limit")).offset(Slot("offset")))

    return Prepared(page), Prepared(lambda: Task.select(fn.COUNT(Task.id)).join(Order).where(where()))


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
