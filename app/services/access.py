"""Ownership checks for every object lookup. Anything the caller may not see is "not found"."""
import functools

from app.domain.errors import not_found
from app.extensions import is_mysql
from app.models import Order, Task, Urge
from app.models.prepared import Prepared, Slot
from app.services import audit


def _supplier_task(user, condition):
    """A task of the user's own supplier, on an order past draft (drafts are still being planned)."""
    task = (Task.select(Task, Order).join(Order)
            .where(condition & (Task.supplier == user.supplier_id) & (Order.state != "draft"))
            .first())
    if task is None or user.role != "supplier":
        raise not_found("任务")
    return task


def supplier_task(user, task_id):
    return _supplier_task(user, Task.id == task_id)


@functools.cache
def _task_lock(names):
    """The supplier's task with these columns (all when none) under its row lock, and its order
    chain's head as `chain_head` (read without a lock, for audit's AuditLog.saw_head): one
    statement per column set, its SQL written once (app/models/prepared.py)."""
    columns = (Task.id, Task.order, Task.supplier, Task.state, *(Task._meta.fields[n] for n in names)) if names else ()

    def build():
        head = audit.order_head(Task.order).alias("chain_head")
        query = (Task.select(*(columns or (Task,)), head)
                 .where((Task.id == Slot("id", Task.id)) & (Task.supplier == Slot("supplier"))))
        return query.for_update() if is_mysql() else query

    return Prepared(build)


def lock_supplier_task(user, task_id, fields=()):
    """The user's own task under its row lock, for a write transaction: the ownership check and
    the lock in one statement (SELECT … FOR UPDATE on MySQL; SQLite's write transaction already
    holds its one write lock). Only a pending task can be on a draft order (tasks follow their
    order: they start production when it does), so only then is the order looked at. `fields`:
    the columns the caller uses besides id, order, supplier and state (default: all). The task
    comes with `chain_head`, its order chain's last hash (see _task_lock)."""
    if user.role != "supplier":
        raise not_found("任务")
    assert all(f.model is Task for f in fields), "columns of Task only"
    task = _task_lock(tuple(f.name for f in fields)).first(id=task_id, supplier=user.supplier_id)
    if task is None or (task.state == "pending"
                        and Order.select(Order.state).where(Order.id == task.order_id).scalar() == "draft"):
        raise not_found("任务")
    return task


def supplier_task_by_code(user, code):
    return _supplier_task(user, Task.qr_code == code)


def supplier_urge(user, urge_id):
    urge = (Urge.select().join(Task)
            .where((Urge.id == urge_id) & (Task.supplier == user.supplier_id))
            .first())
    if urge is None or user.role != "supplier":
        raise not_found("催单")
    return urge


@functools.cache
def _customer_order(names):
    """The customer's order with these columns (all when none): one statement per column set, its
    SQL written once (app/models/prepared.py)."""
    columns = (Order.id, *(Order._meta.fields[n] for n in names)) if names else (Order,)
    return Prepared(lambda: Order.select(*columns).where(
        (Order.id == Slot("id", Order.id)) & (Order.customer == Slot("customer")) & (Order.state != "draft")))


def customer_order(user, order_id, fields=()):
    """An order of the user's own customer (never a draft: customers see confirmed work). `fields`:
    the columns the caller uses besides id (default: all; one not read is None on the model)."""
    assert all(f.model is Order for f in fields), "columns of Order only"
    order = _customer_order(tuple(f.name for f in fields if f is not Order.id)).first(
        id=order_id, customer=user.customer_id)
    if order is None or user.role != "customer":
        raise not_found("订单")
    return order


def staff_order(order_id):
    order = Order.get_or_none(Order.id == order_id)
    if order is None:
        raise not_found("订单")
    return order


def staff_task(task_id):
    task = Task.get_or_none(Task.id == task_id)
    if task is None:
        raise not_found("任务")
    return task
