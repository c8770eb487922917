"""How tasks and orders look from the mini program.

Suppliers see their own tasks with the plan, the order's nodes, reports and urges, but never the
customer, prices or other suppliers' work. Customers see their orders as a timeline of nodes with
QC photos, masked: no supplier name, code or id, no costs or prices, no person names, no notes.
Everything returned is JSON-ready (dates and times as strings) because idempotent writes store
the body they answered with.
"""
from collections import defaultdict
from decimal import Decimal
from math import floor

from peewee import Case, fn

from app.models import EtaRevision, NodeInstance, Order, Photo, ProgressReport, Task, Urge
from app.services import photos
from app.services.nodes import NODE_COLOURS
from app.services.orders import FINAL_STATES, STATE_NAMES
from app.timeutil import china_date, iso_date, iso_local

# Task states a supplier still works on ("active" in the task list filter).
ACTIVE_STATES = ("pending", "in_production", "on_hold")
# One source for state names: the order service.
STATE_LABELS = STATE_NAMES
NODE_STATE_LABELS = {
    "pending": "未开始",
    "in_progress": "进行中",
    "done": "已完成",
    "delayed": "已延误",
    "awaiting_confirmation": "待确认",
}
# Nodes a supplier may complete from the mini program; 'confirmed' and 'qc' belong to managers and QC.
SUPPLIER_NODE_CODES = ("materials_ready", "first_article", "main_process", "packed", "shipped")
DONE_NODE_STATES = ("done", "awaiting_confirmation")
RECENT_REPORTS = 10


def max_reportable(task):
    """The most a supplier may report: the plan plus its tolerance, rounded down. Decimal, so
    that e.g. 100 × 1.15 is 115 and not 114.999…"""
    factor = 1 + Decimal(repr(task.tolerance_pct or 0.0))
    return floor(task.planned_qty * factor)


def progress_pct(qty_done, planned_qty):
    if not planned_qty:
        return 0
    return min(100, round(qty_done * 100 / planned_qty))


# --- supplier ------------------------------------------------------------------------------------

def supplier_tasks(user, status=None, q=None):
    """The supplier's tasks, most urgent due date first, with the count of unanswered urges."""
    open_urges = Urge.select(fn.COUNT(Urge.id)).where((Urge.task == Task.id) & Urge.replied_at.is_null())
    query = (Task.select(Task, Order, open_urges.alias("open_urges"))
             .join(Order)
             .where((Task.supplier == user.supplier_id) & (Order.state != "draft"))
             .order_by(Task.due_date, Task.id))
    if status == "active":
        query = query.where(Task.state.in_(ACTIVE_STATES))
    elif status:
        query = query.where(Task.state == status)
    if q:
        query = query.where(Task.task_no.contains(q) | Order.product_name.contains(q) | Order.order_no.contains(q))
    return query


def task_item(task):
    """One row of the supplier's task list (`task` from supplier_tasks)."""
    return {
        "id": task.id,
        "task_no": task.task_no,
        "order_no": task.order.order_no,
        "product_name": task.order.product_name,
        "process": task.process,
        "planned_qty": task.planned_qty,
        "qty_done": task.qty_done,
        "progress_pct": progress_pct(task.qty_done, task.planned_qty),
        "due_date": iso_date(task.due_date),
        "state": task.state,
        "alert_level": task.alert_level,
        "eta_date": iso_date(task.eta_date),
        "open_urges": task.open_urges,
        "last_report_date": iso_date(task.last_report_date),
    }


def task_detail(task):
    """Everything the supplier needs on one screen for one task."""
    order = task.order
    return {
        "id": task.id,
        "task_no": task.task_no,
        "process": task.process,
        "state": task.state,
        "qty_done": task.qty_done,
        "progress_pct": progress_pct(task.qty_done, task.planned_qty),
        "last_report_date": iso_date(task.last_report_date),
        "alert_level": task.alert_level,
        "eta_date": iso_date(task.eta_date),
        "plan": {
            "planned_qty": task.planned_qty,
            "tolerance_pct": task.tolerance_pct,
            "max_reportable_qty": max_reportable(task),
            "planned_start": iso_date(task.planned_start),
            "due_date": iso_date(task.due_date),
            "requirements": task.requirements,
        },
        "order": {
            "order_no": order.order_no,
            "product_code": order.product_code,
            "product_name": order.product_name,
            "quantity": order.quantity,
            "unit": order.unit,
        },
        "nodes": [supplier_node(node, task) for node in order.nodes.order_by(NodeInstance.seq)],
        "recent_reports": recent_reports(task),
        "open_urges": [
            {"id": u.id, "message": u.message, "created_at": iso_local(u.created_at)}
            for u in task.urges.where(Urge.replied_at.is_null()).order_by(Urge.id)
        ],
        "eta_history": eta_history(task),
    }


def supplier_node(node, task, node_photos=None):
    """A node as the supplier sees it. Who completed it is shown only for this task's own
    completions: on an order shared by several suppliers the others stay anonymous."""
    view = {
        "code": node.code,
        "name": node.name,
        "state": node.state,
        "colour": NODE_COLOURS.get(node.state, "grey"),
        "planned_date": iso_date(node.planned_date),
        "done_at": iso_local(node.done_at),
        "done_by": node.done_by if node.task_id == task.id else None,
        "can_complete": node.code in SUPPLIER_NODE_CODES and node.state not in DONE_NODE_STATES,
    }
    if node_photos is not None:
        view["photos"] = [photos.view(p) for p in node_photos]
    return view


def recent_reports(task):
    reports = list(task.reports.order_by(ProgressReport.report_date.desc()).limit(RECENT_REPORTS))
    by_report = {}
    if reports:
        for photo in Photo.select().where(Photo.report.in_([r.id for r in reports])).order_by(Photo.id):
            by_report.setdefault(photo.report_id, []).append(photo)
    return [report_view(r, by_report.get(r.id, [])) for r in reports]


def report_view(report, report_photos):
    return {
        "id": report.id,
        "report_date": iso_date(report.report_date),
        "qty_done": report.qty_done,
        "stage": report.stage,
        "note": report.note,
        "revision": report.revision,
        "updated_at": iso_local(report.updated_at),
        "photos": [photos.view(p) for p in report_photos],
    }


def issue_view(issue, issue_photos):
    return {
        "id": issue.id,
        "kind": issue.kind,
        "description": issue.description,
        "status": issue.status,
        "created_at": iso_local(issue.created_at),
        "photos": [photos.view(p) for p in issue_photos],
    }


def eta_history(task):
    return [
        {
            "old_eta": iso_date(rev.old_eta),
            "new_eta": iso_date(rev.new_eta),
            "reason": rev.reason,
            "source": rev.source,
            "urge_id": rev.urge_id,
            "created_at": iso_local(rev.created_at),
        }
        for rev in task.eta_revisions.order_by(EtaRevision.id)
    ]


def urge_view(urge, task):
    return {
        "id": urge.id,
        "message": urge.message,
        "created_at": iso_local(urge.created_at),
        "replied_at": iso_local(urge.replied_at),
        "reply_reason": urge.reply_reason,
        "new_due_date": iso_date(urge.new_due_date),
        "task_id": task.id,
        "eta_date": iso_date(task.eta_date),
        "eta_history": eta_history(task),
    }


# --- customer --------------------------------------------------------------------------------------

def customer_orders(user, state=None):
    """The customer's orders (never drafts): open ones first, then by due date."""
    closed_last = Case(None, [(Order.state.in_(FINAL_STATES), 1)], 0)
    query = (Order.select()
             .where((Order.customer == user.customer_id) & (Order.state != "draft"))
             .order_by(closed_last, Order.due_date, Order.id))
    if state:
        query = query.where(Order.state == state)
    return query


def _live_tasks(order):
    return list(order.tasks.where(Task.state != "cancelled"))


def _order_progress(order, tasks):
    """0–100: the mean of the tasks' progress (each process counts the same); 100 once completed."""
    if order.state == "completed":
        return 100
    if not tasks:
        return 0
    return round(sum(progress_pct(t.qty_done, t.planned_qty) for t in tasks) / len(tasks))


def _order_eta(tasks):
    """The order is ready when its last task is: the latest task ETA."""
    etas = [t.eta_date for t in tasks if t.eta_date]
    return max(etas) if etas else None


def _is_late(order, eta):
    if order.state in FINAL_STATES:
        return False
    return china_date() > order.due_date or bool(eta and eta > order.due_date)


def _current_node(nodes):
    """The first node not yet done (the last one once all are)."""
    for node in nodes:
        if node.state != "done":
            return node
    return nodes[-1] if nodes else None


def _order_summary(order, tasks, nodes):
    eta = _order_eta(tasks)
    current = _current_node(nodes)
    return {
        "id": order.id,
        "order_no": order.order_no,
        "product_name": order.product_name,
        "quantity": order.quantity,
        "unit": order.unit,
        "due_date": iso_date(order.due_date),
        "state": order.state,
        "state_label": STATE_LABELS.get(order.state, order.state),
        "progress": _order_progress(order, tasks),
        "eta_date": iso_date(eta),
        "late": _is_late(order, eta),
        "current_node": current.name if current else None,
        "current_node_code": current.code if current else None,
    }


def customer_order_items(orders):
    """List items for a page of orders, with their nodes and tasks loaded in two queries."""
    ids = [o.id for o in orders]
    nodes, tasks = defaultdict(list), defaultdict(list)
    for node in NodeInstance.select().where(NodeInstance.order.in_(ids)).order_by(NodeInstance.seq):
        nodes[node.order_id].append(node)
    for task in Task.select().where(Task.order.in_(ids) & (Task.state != "cancelled")):
        tasks[task.order_id].append(task)
    return [_order_summary(o, tasks[o.id], nodes[o.id]) for o in orders]


def customer_timeline(order):
    """The order as a timeline of nodes with their customer-visible photos, masked."""
    nodes = list(order.nodes.order_by(NodeInstance.seq))
    shown = _customer_photos([n.id for n in nodes])
    body = _order_summary(order, _live_tasks(order), nodes)
    body["nodes"] = [
        {
            "code": n.code,
            "name": n.name,
            "state": n.state,
            "state_label": NODE_STATE_LABELS.get(n.state, n.state),
            "colour": NODE_COLOURS.get(n.state, "grey"),
            "planned_date": iso_date(n.planned_date),
            "done_at": iso_local(n.done_at),
            "done_by": _customer_actor(n),
            "photos": shown.get(n.id, []),
        }
        for n in nodes
    ]
    return body


def _customer_actor(node):
    """Who completed a node, as the customer reads it: a role, never a person or a company."""
    if node.done_at is None:
        return None
    if node.task_id:
        return "工厂"
    return "质检" if node.code == "qc" else "跟单"


def _customer_photos(node_ids):
    """Node id → display copies of its customer-visible photos; unprocessed ones are skipped."""
    shown = {}
    if not node_ids:
        return shown
    query = (Photo.select()
             .where(Photo.node.in_(node_ids) & (Photo.customer_visible == True)  # noqa: E712
                    & Photo.status.in_(("ready", "duplicate")))
             .order_by(Photo.id))
    for photo in query:
        view = photos.view(photo, for_customer=True)
        if view and view["url"]:
            shown.setdefault(photo.node_id, []).append(view)
    return shown
