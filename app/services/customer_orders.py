"""What a customer reads: its orders (never drafts) and an order's node timeline with QC photos
(the QC node shows passed QC inspections; failures and nonconformances never).

Progress, the expected finish and lateness are worked out here; what a customer may not see
(supplier identity, prices, costs, people) is left out by the customer schemas and presenters.
"""
from collections import defaultdict

from peewee import Case, fn

from app.domain.vocabulary import FINAL_STATES, SUPPLIER_NODE_CODES, good_qty, progress_pct
from app.models import EtaRevision, NodeCompletion, NodeInstance, Order, Photo, ProgressReport, Task
from app.models.prepared import Prepared, Slot
from app.services import quality, schedule
from app.services.photos import CUSTOMER_COLUMNS, CUSTOMER_VISIBLE
from app.timeutil import china_date


def orders_query(user, state=None):
    """The customer's orders (never drafts): open ones first, then by due date."""
    closed_last = Case(None, [(Order.state.in_(FINAL_STATES), 1)], 0)
    query = (Order.select()
             .where((Order.customer == user.customer_id) & (Order.state != "draft"))
             .order_by(closed_last, Order.due_date, Order.id))
    if state:
        query = query.where(Order.state == state)
    return query


def summarise(orders):
    """Load a page of orders' nodes and tasks (and the tasks' progress) in four queries and work out
    each order's `progress`, `eta_date`, `predicted_ship_date`, `late` and `current_node`. → the orders."""
    ids = [o.id for o in orders]
    nodes, tasks = defaultdict(list), defaultdict(list)
    for node in NodeInstance.select().where(NodeInstance.order.in_(ids)).order_by(NodeInstance.seq):
        nodes[node.order_id].append(node)
    for task in Task.select().where(Task.order.in_(ids) & (Task.state != "cancelled")):
        tasks[task.order_id].append(task)
    progress = schedule.progress_many([t for group in tasks.values() for t in group], china_date())
    for order in orders:
        _summarise(order, tasks[order.id], nodes[order.id], progress)
    return orders


# The timeline's reads, each of a fixed shape keyed by the order so that its SQL is written once
# (app/models/prepared.py), and each with only the columns the answer (CustomerTimelineOut) and
# the figures worked out here use: a column not selected would read as None on the model.
ORDER_FIELDS = (Order.order_no, Order.product_name, Order.quantity, Order.unit, Order.due_date, Order.state)
_TIMELINE_TASKS = Prepared(lambda: Task.select(
    Task.id, Task.state, Task.planned_qty, Task.planned_start, Task.due_date, Task.qty_done, Task.qty_rejected,
    Task.eta_date, Task.last_report_date, Task.completed_at,
    schedule.reports_column(Task.id, Slot("since", ProgressReport.report_date),
                            Slot("today", ProgressReport.report_date)).alias("recent_reports"),
    schedule.promise_column(Task.id).alias("supplier_eta"),
).where((Task.order == Slot("order")) & (Task.state != "cancelled")))


def _done_parts():
    """How many of an order-wide node's parts the order's open tasks have done (what
    nodes.load_parts counts as `done_tasks`), as a column of the node's row."""
    return (NodeCompletion.select(fn.COUNT(NodeCompletion.id)).join(Task, on=(NodeCompletion.task == Task.id))
            .where((NodeCompletion.node == NodeInstance.id) & (NodeCompletion.state == "done")
                   & (Task.order == NodeInstance.order) & (Task.state != "cancelled")))


_TIMELINE_NODES = Prepared(lambda: NodeInstance.select(
    NodeInstance.id, NodeInstance.code, NodeInstance.name, NodeInstance.state, NodeInstance.planned_date,
    NodeInstance.done_at, NodeInstance.task, _done_parts().alias("done_parts"),
).where(NodeInstance.order == Slot("order")).order_by(NodeInstance.seq))
_TIMELINE_NODE_PHOTOS = Prepared(lambda: Photo.select(*CUSTOMER_COLUMNS, Photo.node).where(
    Photo.node.in_(NodeInstance.select(NodeInstance.id).where(NodeInstance.order == Slot("order")))
    & CUSTOMER_VISIBLE).order_by(Photo.id))


def timeline(order):
    """The order as a timeline: its summary and `node_list`, each node with the `photos` a
    customer may see and, on nodes every task completes, how many tasks have (`done_tasks` of
    `total_tasks`: a shared order's node is done only when all are). `order` needs ORDER_FIELDS.

    The same answer as the generic readers give (photos.load_photos, nodes.load_parts,
    schedule.progress_many reading its reports and promises; tests/test_customer_timeline.py), in
    three statements and one or two for the QC node's inspections: the tasks carry their recent
    reports and latest ETA promise, the nodes their done parts."""
    today = china_date()
    cal = schedule.calendar()
    tasks = _TIMELINE_TASKS.rows(order=order.id, since=schedule.report_window(today, cal), today=today)
    days, reports, promises = {}, {}, {}
    for task in tasks:
        reports[task.id] = schedule.parse_reports(task.recent_reports, days)
        if task.supplier_eta is not None:
            promises[task.id] = EtaRevision.new_eta.python_value(task.supplier_eta)
    order.node_list = _TIMELINE_NODES.rows(order=order.id)
    by_node = {node.id: node for node in order.node_list}
    for node in order.node_list:
        node.photos = []
        shared = node.code in SUPPLIER_NODE_CODES  # as nodes.load_parts: None on a manager's or QC's node
        node.done_tasks = node.done_parts if shared else None
        node.total_tasks = len(tasks) if shared else None
    if by_node:
        for photo in _TIMELINE_NODE_PHOTOS.rows(order=order.id):
            by_node[photo.node_id].photos.append(photo)
    inspections = None
    for node in order.node_list:  # the QC node: passed QC inspections with their photos, nothing else
        if node.code == quality.QC_NODE:
            if inspections is None:
                inspections = quality.customer_inspections(order.id) if tasks else []
            node.inspections = inspections
        else:
            node.inspections = []
        _hide_qc_failure(node)
    _summarise(order, tasks, order.node_list,
               schedule.progress_many(tasks, today, cal=cal, reports=reports, promises=promises))
    return order


def _hide_qc_failure(node):
    """The QC node turns red while a batch is frozen (a failed inspection): staff see that, a
    customer must not. Before its planned date the customer sees it in progress; after it, red
    says only what any late node says — it is late (the delay, not its cause). In memory only."""
    if node.code == quality.QC_NODE and node.state == "delayed" and (
            node.planned_date is None or node.planned_date >= china_date()):
        node.state = "in_progress"


def _summarise(order, tasks, nodes, progress):
    order.progress = _progress(order, tasks)
    order.eta_date = _eta(tasks)
    order.predicted_ship_date = _predicted_ship_date(order, tasks, progress)
    order.late = _is_late(order, order.eta_date)
    order.current_node = _current_node(nodes)


def _progress(order, tasks):
    """0–100: the mean of the tasks' progress (each process counts the same); 100 once completed.
    A task's progress counts its good output (pieces QC rejected are made again, vocabulary.good_qty),
    like its predicted finish; the customer is never told why."""
    if order.state == "completed":
        return 100
    if not tasks:
        return 0
    return round(sum(progress_pct(good_qty(t.qty_done, t.qty_rejected), t.planned_qty) for t in tasks) / len(tasks))


def _eta(tasks):
    """The order is ready when its last task is: the latest task ETA."""
    etas = [t.eta_date for t in tasks if t.eta_date]
    return max(etas) if etas else None


def _predicted_ship_date(order, tasks, progress):
    """When the order should be ready to ship: the latest of its open tasks' predicted finishes
    (schedule.progress); a task without a prediction yet counts at its due date, a stalled one at
    the earliest it could still finish (its due date plus its days late). None once the order is
    closed or on hold (no prediction while paused). Nothing about which task or supplier sets it."""
    if order.state in FINAL_STATES or order.state == "on_hold" or not tasks:
        return None
    cal = schedule.calendar()
    finishes = []
    for task in tasks:
        p = progress.get(task.id)
        if p is None:
            finishes.append(task.due_date)
        elif p.eta_date is not None:
            finishes.append(p.eta_date)
        else:
            finishes.append(cal.add_working_days(task.due_date, p.days_late))
    return max(finishes)


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
