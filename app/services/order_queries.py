"""What managers read about orders: the filtered list, and one order with its tasks, nodes and history."""
from peewee import fn

from app.models import AuditEntry, Customer, NodeInstance, Order, Supplier, Task, Urge
from app.services import nodes, schedule
from app.services.order_states import allowed_states
from app.timeutil import china_date

HISTORY_LIMIT = 50


def orders_query(state=None, customer_id=None, supplier_id=None, q=None, due_before=None, due_after=None):
    """Orders newest first, each with its customer and `task_count`."""
    task_count = Task.select(fn.COUNT(Task.id)).where(Task.order == Order.id)
    return (Order.select(Order, Customer, task_count.alias("task_count"))
            .join(Customer).where(orders_where(state, customer_id, supplier_id, q, due_before, due_after))
            .order_by(Order.id.desc()))


def orders_where(state=None, customer_id=None, supplier_id=None, q=None, due_before=None, due_after=None):
    """The list's filters as one condition on Order (exports pick ids with it, without joins)."""
    where = Order.id.is_null(False)
    if state:
        where &= Order.state == state
    if customer_id:
        where &= Order.customer == customer_id
    if supplier_id:
        where &= Order.id.in_(Task.select(Task.order).where(Task.supplier == supplier_id))
    if q:
        where &= Order.order_no.contains(q) | Order.external_no.contains(q) | Order.product_name.contains(q)
    if due_before:
        where &= Order.due_date <= due_before
    if due_after:
        where &= Order.due_date >= due_after
    return where


def order_detail(order):
    """Everything a manager sees about one order (prices and costs included: staff only), in a
    fixed number of queries however many tasks it has. → the order with `task_list` (each task
    with its supplier, `open_urges` and `schedule`: its schedule.Progress today, None unless in
    production, on hold or completed), `node_list` (order-wide nodes with each task's `parts`),
    `history`, `allowed_states` and `task_count` loaded."""
    open_urges = (Urge.select(fn.COUNT(Urge.id))
                  .where((Urge.task == Task.id) & Urge.replied_at.is_null()))
    order.task_list = list(Task.select(Task, Supplier, open_urges.alias("open_urges")).join(Supplier)
                           .where(Task.order == order.id).order_by(Task.id))
    progress = schedule.progress_many(order.task_list, china_date())
    for task in order.task_list:
        task.schedule = progress.get(task.id)
    order.node_list = nodes.load_parts(list(order.nodes.order_by(NodeInstance.seq)), order.task_list)
    order.history = history(order, order.task_list, order.node_list)
    order.allowed_states = list(allowed_states(order))
    order.task_count = len(order.task_list)
    return order


def history(order, tasks, order_nodes, limit=HISTORY_LIMIT):
    """Recent audit entries of the order, its tasks and its nodes, newest first."""
    task_ids = [str(t.id) for t in tasks]
    node_ids = [str(n.id) for n in order_nodes]
    where = (AuditEntry.object_type == "order") & (AuditEntry.object_id == str(order.id))
    if task_ids:
        where |= (AuditEntry.object_type == "task") & AuditEntry.object_id.in_(task_ids)
    if node_ids:
        where |= (AuditEntry.object_type == "node") & AuditEntry.object_id.in_(node_ids)
    return list(AuditEntry.select().where(where).order_by(AuditEntry.id.desc()).limit(limit))
