"""The manager's side of the nodes a supplier cannot complete alone: confirming or rejecting a
task's first article (首件), and recording the order confirmation (订单确认).

Each change is audited. They are idempotent by state, so a repeated request changes nothing and
answers the node as it is: confirming a confirmed first article, rejecting a rejected one (until
the supplier submits it again), recording a confirmation already recorded. A rejection goes back
to the supplier — its task's part is in progress again, the reason shows in its task detail and
its WeChat users are sent the node message.
"""
from app.domain.errors import Conflict, Forbidden, Invalid, not_found
from app.domain.vocabulary import CONFIRMED_NODE_CODES, FINAL_STATES, state_name
from app.models import NodeCompletion, NodeInstance, Order, Supplier, Task, WechatUser
from app.services import audit, nodes, notifications, order_states
from app.timeutil import utcnow


def confirm(actor, order_id, node_id, *, task_id=None, note=None):
    """Confirm a task's first article, or record the order confirmation. → the node, its parts loaded."""
    node = _node(order_id, node_id)
    if node.code == "confirmed":
        order_states.record_confirmation(actor, order_id, note)
        return _answer(node.id)
    _check_first_article(node)
    with audit.transaction(actor, chain=audit.order_chain(node.order_id)) as log:
        node = nodes.lock_node(node.id)
        part = _part(node, task_id, settled="done")
        if part is None or part.state == "done":
            return _answer(node.id)
        if part.state == "rejected":
            raise Conflict("first_article_rejected", "该首件已退回，请等供应商重新提交后再确认", field="task_id")
        before = node.state
        _review(part, "done", actor)
        node = nodes.settle(node)
        log.add("node.confirm", "node", node.id, before={"part": part.state, "task_id": part.task_id},
                after={"part": "done", "task_id": part.task_id, "node_state": node.state,
                       "done_tasks": node.done_tasks, "total_tasks": node.total_tasks}, reason=note)
        if node.state == "done" and before != "done":
            log.add("node.done", "node", node.id, before={"state": before}, after={"state": "done", "code": node.code},
                    reason="全部任务的首件均已确认")
    return _answer(node.id)


def reject(actor, order_id, node_id, reason, *, task_id=None):
    """Send a task's first article back with a reason: its part is in progress again and the
    supplier is told why. → the node, its parts loaded."""
    node = _node(order_id, node_id)
    _check_first_article(node)
    with audit.transaction(actor, chain=audit.order_chain(node.order_id)) as log:
        node = nodes.lock_node(node.id)
        part = _part(node, task_id, settled="rejected")
        if part is None or part.state == "rejected":
            return _answer(node.id)
        if part.state == "done":
            raise Conflict("first_article_confirmed", "该首件已经确认，不能再退回", field="task_id")
        now = _review(part, "rejected", actor, reason)
        node = nodes.settle(node)
        _tell_supplier(part, node, reason, now)
        log.add("node.reject", "node", node.id, before={"part": part.state, "task_id": part.task_id},
                after={"part": "rejected", "task_id": part.task_id, "node_state": node.state,
                       "done_tasks": node.done_tasks, "total_tasks": node.total_tasks}, reason=reason)
    return _answer(node.id)


def _node(order_id, node_id):
    node = NodeInstance.get_or_none((NodeInstance.id == node_id) & (NodeInstance.order == order_id))
    if node is None:
        raise not_found("节点")
    return node


def _check_first_article(node):
    if node.code not in CONFIRMED_NODE_CODES:
        raise Forbidden("node_not_manager_owned", f"“{node.name}”不由跟单在这里确认（只有订单确认和首件确认）")
    order = Order.get_by_id(node.order_id)
    if order.state in FINAL_STATES:
        raise Conflict("order_closed", f"订单{state_name(order.state)}，不能再确认或退回首件")


def _part(node, task_id, settled):
    """The part to review: the named task's, else the one first article awaiting confirmation.
    None when nothing awaits and the node is already settled the way asked (a repeated request)."""
    if task_id is not None:
        task = Task.get_or_none((Task.id == task_id) & (Task.order == node.order_id))
        if task is None:
            raise not_found("任务")
        part = NodeCompletion.get_or_none((NodeCompletion.node == node.id) & (NodeCompletion.task == task.id))
        if part is None:
            raise Conflict("first_article_missing", f"任务 {task.task_no} 还没有提交首件", field="task_id")
        return part
    parts = list(NodeCompletion.select().where(NodeCompletion.node == node.id).order_by(NodeCompletion.task))
    awaiting = [p for p in parts if p.state == "awaiting_confirmation"]
    if len(awaiting) > 1:
        raise Invalid("task_required", "有多个任务的首件待确认，请用 task_id 指定其中一个", field="task_id",
                      extra={"task_ids": [p.task_id for p in awaiting]})
    if awaiting:
        return awaiting[0]
    if parts and all(p.state == settled for p in parts):
        return None
    raise Conflict("first_article_missing", "没有待确认的首件", field="task_id")


def _review(part, state, actor, reason=None):
    now = utcnow()
    (NodeCompletion.update(state=state, reviewed_at=now, reviewed_by=(actor.label or "")[:64] or None,
                           reject_reason=reason)
     .where(NodeCompletion.id == part.id).execute())
    return now


def _tell_supplier(part, node, reason, at):
    """The node message to each WeChat user of the task's supplier, recorded in the outbox in this
    transaction (sent after commit, if the user's quota allows)."""
    template = nodes.node_template_id()
    if template is None:
        return
    task = Task.get_by_id(part.task_id)
    users = (WechatUser.select(WechatUser.openid).join(Supplier)
             .where((WechatUser.supplier == task.supplier_id) & (WechatUser.role == "supplier") & Supplier.active))
    data = nodes.node_message(task.task_no, node.name, "被退回", at, f"退回原因：{reason}")
    for user in users:
        notifications.record("mp_subscribe", user.openid, {"data": data}, template_id=template,
                             dedup_key=f"node-reject-{part.id}-{at:%Y%m%d%H%M%S}-{user.openid}"[:128])


def _answer(node_id):
    node = NodeInstance.get_by_id(node_id)
    return nodes.load_parts([node], list(Task.select().where(Task.order == node.order_id)))[0]
