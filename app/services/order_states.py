"""The order state machine and order edits (PATCH), each change audited with its reason.

Tasks follow their order's state; confirming marks the 'confirmed' node done; editing the plan
re-spreads the dates of nodes not yet done and re-hashes the order's content (order_content).
"""
from datetime import date
from decimal import Decimal, InvalidOperation

from app.domain.errors import Conflict, Invalid, not_found
from app.domain.vocabulary import FINAL_STATES, state_name
from app.models import NodeInstance, NodeTemplateItem, Order, Task
from app.services import audit, nodes
from app.services.order_content import clean, content_hash, money, money_text, stored_content
from app.timeutil import utcnow

# Where an order may go from each state; on_hold also returns to Order.resume_state.
TRANSITIONS = {
    "draft": ("confirmed", "cancelled"),
    "confirmed": ("in_production", "on_hold", "cancelled"),
    "in_production": ("completed", "on_hold", "cancelled"),
    "on_hold": ("cancelled",),
    "completed": (),
    "cancelled": (),
}
# How tasks follow their order: order's new state → {task state: new task state}.
TASKS_FOLLOW = {
    "in_production": {"pending": "in_production", "on_hold": "in_production"},
    "on_hold": {"in_production": "on_hold"},
    "cancelled": {"pending": "cancelled", "in_production": "cancelled", "on_hold": "cancelled"},
    "completed": {"pending": "completed", "in_production": "completed", "on_hold": "completed"},
}
EDITABLE_FIELDS = ("product_code", "product_name", "quantity", "unit", "planned_start", "due_date",
                   "unit_price", "notes")


def allowed_states(order):
    targets = TRANSITIONS[order.state]
    if order.state == "on_hold" and order.resume_state:
        targets = (order.resume_state,) + targets
    return targets


def transition(log, order, to, reason):
    """Move the order and its tasks, logging every change. Runs inside the caller's audit.transaction."""
    frm = order.state
    if to not in allowed_states(order):
        raise Conflict("illegal_transition", f"订单状态不能从「{state_name(frm)}」变为「{state_name(to)}」",
                       field="state", extra={"from": frm, "to": to, "allowed": list(allowed_states(order))})
    now = utcnow()
    resume = frm if to == "on_hold" else None
    # Compare-and-set: a concurrent change of the same order makes this one fail, not overwrite.
    changed = (Order.update(state=to, resume_state=resume, updated_at=now)
               .where((Order.id == order.id) & (Order.state == frm)).execute())
    if not changed:
        raise Conflict("state_changed", "订单状态已被他人修改，请刷新后重试", field="state")
    order.state, order.resume_state, order.updated_at = to, resume, now
    log.add("order.state", "order", order.id, before={"state": frm}, after={"state": to}, reason=reason)
    _tasks_follow(log, order, to, reason, now)
    if to == "confirmed":
        _mark_confirmed_node(log, order, now)


def _tasks_follow(log, order, to, reason, now):
    moves = TASKS_FOLLOW.get(to, {})
    for task in order.tasks.where(Task.state.in_(list(moves))).order_by(Task.id):
        new = moves[task.state]
        fields = {"state": new, "updated_at": now}
        if new == "in_production" and task.started_at is None:
            fields["started_at"] = now
        if new == "completed":
            fields["completed_at"] = now
        Task.update(**fields).where(Task.id == task.id).execute()
        log.add("task.state", "task", task.id, before={"state": task.state}, after={"state": new},
                reason=f"订单{state_name(to)}：{reason}", chain=audit.order_chain(order.id))


def _mark_confirmed_node(log, order, now):
    node = NodeInstance.get_or_none((NodeInstance.order == order.id) & (NodeInstance.code == "confirmed"))
    if node is None or node.state == "done":
        return
    NodeInstance.update(state="done", done_at=now, done_by=(log.actor.label or "")[:64] or None).where(
        NodeInstance.id == node.id).execute()
    log.add("node.done", "node", node.id, before={"state": node.state},
            after={"state": "done", "code": node.code}, reason="订单已确认", chain=audit.order_chain(order.id))
    nodes.notify_subscribers(NodeInstance.get_by_id(node.id))


# --- edits ---------------------------------------------------------------------------------------

def _value_out(value):
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return money_text(value)
    return value


def _clean_edits(order, edits):
    """The edits that change something, checked and normalised like an intake."""
    if order.state in FINAL_STATES:
        raise Conflict("order_closed", f"订单{state_name(order.state)}，不能再修改")
    if "unit_price" in edits:
        try:
            edits["unit_price"] = money(edits["unit_price"])
        except (ValueError, InvalidOperation) as exc:
            raise Invalid("validation_error", f"参数 unit_price：{exc}", field="unit_price")
    for key in ("product_name", "product_code", "unit", "notes"):
        if key in edits:
            edits[key] = clean(edits[key])
    if "product_name" in edits and not edits["product_name"]:
        raise Invalid("validation_error", "产品名称不能为空", field="product_name")
    if "unit" in edits:
        edits["unit"] = edits["unit"] or "件"
    return {k: v for k, v in edits.items() if getattr(order, k) != v}


def _apply_edits(log, order, edits, reason):
    """Change the editable fields that differ; re-spread pending node dates when the plan moves;
    re-hash the content so the ERP sending the edited order is answered as a retry."""
    changes = _clean_edits(order, edits)
    if not changes:
        return
    tasks = list(order.tasks.order_by(Task.id))
    _check_plan(changes, order, tasks)
    # The hash also covers the intake's `confirm` flag, which is not stored: keep the one it had.
    confirmed_intake = order.content_hash == content_hash(stored_content(order, tasks), True)
    before = {k: _value_out(getattr(order, k)) for k in changes}
    for key, value in changes.items():
        setattr(order, key, value)
    order.updated_at = utcnow()
    order.content_hash = content_hash(stored_content(order, tasks), confirmed_intake)
    order.save(only=list(changes) + ["updated_at", "content_hash"])
    if "planned_start" in changes or "due_date" in changes:
        _respread_nodes(order)
    log.add("order.update", "order", order.id, before=before,
            after={k: _value_out(v) for k, v in changes.items()}, reason=reason)


def _check_plan(changes, order, tasks):
    start = changes.get("planned_start", order.planned_start)
    due = changes.get("due_date", order.due_date)
    if due < start:
        raise Invalid("validation_error", "交期不能早于计划开工日期", field="due_date")
    if tasks and start > min(t.planned_start for t in tasks):
        raise Invalid("validation_error", "计划开工不能晚于任务的开工日期", field="planned_start")
    if tasks and due < max(t.due_date for t in tasks):
        raise Invalid("validation_error", "交期不能早于任务的交期", field="due_date")


def _respread_nodes(order):
    """Nodes not yet done keep their place in the plan: new dates from the template's shares."""
    if order.node_template_id is None:
        return
    items = list(NodeTemplateItem.select().where(NodeTemplateItem.template == order.node_template_id)
                 .order_by(NodeTemplateItem.seq))
    for item, planned in zip(items, nodes.planned_dates(items, order.planned_start, order.due_date), strict=False):
        (NodeInstance.update(planned_date=planned)
         .where((NodeInstance.order == order.id) & (NodeInstance.code == item.code)
                & (NodeInstance.state != "done"))
         .execute())


def record_confirmation(actor, order_id, note=None):
    """Record the order confirmation (订单确认) node: a draft order is confirmed (the state change
    marks the node); on a live order whose node is not done yet it is marked; otherwise nothing
    changes (a repeat)."""
    with audit.transaction(actor, chain=audit.order_chain(order_id)) as log:
        order = _lock_order(order_id)
        node = NodeInstance.get_or_none((NodeInstance.order == order.id) & (NodeInstance.code == "confirmed"))
        if order.state == "draft":
            transition(log, order, "confirmed", note or "跟单确认订单")
        elif node is not None and node.state != "done":
            if order.state in FINAL_STATES:
                raise Conflict("order_closed", f"订单{state_name(order.state)}，不能再确认")
            _mark_confirmed_node(log, order, utcnow())
    return order


def _lock_order(order_id):
    """The order's row lock first: concurrent changes of one order queue up."""
    Order.update(updated_at=Order.updated_at).where(Order.id == order_id).execute()
    order = Order.get_or_none(Order.id == order_id)
    if order is None:
        raise not_found("订单")
    return order


def update_order(actor, order_id, changes):
    """PATCH: field edits and/or a state change, in one transaction, each audited with the reason."""
    state, reason = changes.pop("state", None), clean(changes.pop("reason", None))
    edits = {k: changes[k] for k in EDITABLE_FIELDS if k in changes}
    if state is not None and not reason:
        raise Invalid("validation_error", "变更订单状态必须填写原因", field="reason")
    with audit.transaction(actor, chain=audit.order_chain(order_id)) as log:
        # Concurrent edits of one order queue up, and each re-hashes what the other wrote.
        order = _lock_order(order_id)
        if edits:
            _apply_edits(log, order, edits, reason)
        if state is not None and state != order.state:
            transition(log, order, state, reason)
    return Order.get_by_id(order.id)
