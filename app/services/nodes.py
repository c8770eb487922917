"""Order nodes: the template an order uses, its node instances with planned dates, and the
order-wide nodes every task completes for itself (NodeCompletion, a task's "part").

On an order shared by several suppliers, one supplier completing "shipped" ships only its own
part: the order's node is done when every open task's part is (vocabulary.combined_node_state),
and only then are the customers who subscribed to it told (the node-done subscribe message).
"""
from datetime import UTC, timedelta

from peewee import JOIN

from app.domain.vocabulary import DONE_NODE_STATES, SUPPLIER_NODE_CODES, combined_node_state, task_node_state
from app.extensions import current, is_mysql
from app.models import (
    Customer,
    NodeCompletion,
    NodeInstance,
    NodeSubscription,
    NodeTemplate,
    NodeTemplateItem,
    Order,
    Task,
    WechatUser,
)
from app.services import notifications
from app.timeutil import CHINA, utcnow

# The brief's default template: (code, name, share of the plan at which it is due, days).
DEFAULT_NODES = (
    ("confirmed", "订单确认", 0.0, 1),
    ("materials_ready", "物料齐套", 0.15, 2),
    ("first_article", "生产启动/首件确认", 0.25, 1),
    ("main_process", "核心工序", 0.7, 5),
    ("qc", "质检", 0.85, 1),
    ("packed", "包装入库", 0.95, 1),
    ("shipped", "物流发货", 1.0, 1),
)


def default_template():
    """The default template, created on first use."""
    template = NodeTemplate.get_or_none(NodeTemplate.is_default)
    if template is None:
        template = NodeTemplate.create(name="默认节点模板", is_default=True)
        NodeTemplateItem.insert_many(
            [
                {"template": template, "seq": seq, "code": code, "name": name, "plan_share": share, "expected_days": days}
                for seq, (code, name, share, days) in enumerate(DEFAULT_NODES, start=1)
            ]
        ).execute()
    return template


def template_for(customer_id, product_code):
    """Most specific first: customer + product, product, customer, then the default."""
    candidates = [(customer_id, product_code), (None, product_code), (customer_id, None)]
    for cust, product in candidates:
        if product is None and cust is None:
            continue
        query = NodeTemplate.select().where(
            (NodeTemplate.customer == cust if cust else NodeTemplate.customer.is_null())
            & (NodeTemplate.product_code == product if product else NodeTemplate.product_code.is_null())
            & ~NodeTemplate.is_default
        )
        template = query.first()
        if template:
            return template
    return default_template()


def planned_dates(items, start, due):
    """Spread node dates over [start, due] by each item's share of the plan."""
    span = max((due - start).days, 0)
    return [start + timedelta(days=round(span * item.plan_share)) for item in items]


def node_rows(order, items):
    """The order's node instances from its template's items, as rows to insert (many orders'
    at once in an import)."""
    dates = planned_dates(items, order.planned_start, order.due_date)
    return [{"order": order.id, "seq": item.seq, "code": item.code, "name": item.name, "planned_date": planned,
             "expected_days": item.expected_days} for item, planned in zip(items, dates, strict=False)]


def instantiate(order, template=None):
    """Create one order's node instances from its template (once)."""
    template = template or template_for(order.customer_id, order.product_code)
    NodeInstance.insert_many(node_rows(order, list(template.items.order_by(NodeTemplateItem.seq)))).execute()
    if order.node_template_id != template.id:
        order.node_template = template
        order.save(only=["node_template"])
    return template


# --- order-wide nodes: each task's part -----------------------------------------------------------

def lock_node(node_id):
    """Take the node's row lock and read it fresh: the parts of one node are counted by one
    writer at a time, so two suppliers completing their parts together cannot both see the other's
    missing (SQLite: the write transaction already holds the one write lock)."""
    query = NodeInstance.select().where(NodeInstance.id == node_id)
    return (query.for_update() if is_mysql() else query).get()


def lock_node_by_code(order_id, code):
    """lock_node for the order's node with `code`, found and locked in one statement; None if
    the order has no such node."""
    query = NodeInstance.select().where((NodeInstance.order == order_id) & (NodeInstance.code == code))
    return (query.for_update() if is_mysql() else query).first()


def open_parts(node):
    """(the ids of the order's open tasks, the node's parts of those tasks) in one statement: each
    open task joined with its part, if it has one."""
    columns = NodeCompletion._meta.sorted_fields
    query = (Task.select(Task.id, *columns)
             .join(NodeCompletion, JOIN.LEFT_OUTER,
                   on=(NodeCompletion.task == Task.id) & (NodeCompletion.node == node.id))
             .where((Task.order == node.order_id) & (Task.state != "cancelled"))
             .order_by(Task.id).tuples())
    task_ids, parts = [], []
    for task_id, *values in query:
        task_ids.append(task_id)
        if values[0] is not None:  # the part's id
            part = NodeCompletion(**{f.name: f.python_value(v) for f, v in zip(columns, values, strict=True)})
            part._dirty.clear()
            parts.append(part)
    return task_ids, parts


def settle(node, open_now=None):
    """Store the order's node as its open tasks' parts make it (the caller holds the node's lock):
    its state, when it started and, once submitted by every task, when and by whom the last part
    came. Tells the subscribers when it has just become done. `open_now`: (open task ids, parts)
    as the caller has just made them (open_parts, then its own change), else read here. → the
    node, with `done_tasks` and `total_tasks` set."""
    task_ids, parts = open_now or open_parts(node)
    parts = sorted(parts, key=lambda p: (p.done_at, p.id))
    before = node.state
    fields = {"state": combined_node_state([p.state for p in parts], len(task_ids), node.state),
              "done_at": None, "done_by": None, "task": None}
    if parts and node.started_at is None:
        fields["started_at"] = parts[0].done_at
    if fields["state"] in DONE_NODE_STATES:
        last = parts[-1]
        fields.update(done_at=last.done_at, done_by=last.done_by, task=last.task_id)
    NodeInstance.update(**fields).where(NodeInstance.id == node.id).execute()
    for name, value in fields.items():  # what was just written, without reading it back
        setattr(node, name, value)
    node.done_tasks, node.total_tasks = sum(p.state == "done" for p in parts), len(task_ids)
    if node.state == "done" and before != "done":
        notify_subscribers(node)
    return node


def load_parts(nodes, tasks):
    """Set on each order-wide node its `parts` (one per open task that has one, task order),
    `done_tasks` and `total_tasks` (None on nodes a manager or QC completes), in one query.
    `tasks` are the order's tasks; cancelled ones do not count."""
    open_ids = [t.id for t in tasks if t.state != "cancelled"]
    shared = [n for n in nodes if n.code in SUPPLIER_NODE_CODES]
    by_node = {n.id: [] for n in shared}
    if by_node and open_ids:
        query = (NodeCompletion.select()
                 .where(NodeCompletion.node.in_(list(by_node)) & NodeCompletion.task.in_(open_ids))
                 .order_by(NodeCompletion.task, NodeCompletion.id))
        for part in query:
            by_node[part.node_id].append(part)
    for node in nodes:
        parts = by_node.get(node.id)
        node.parts = parts or []
        node.done_tasks = None if parts is None else sum(p.state == "done" for p in parts)
        node.total_tasks = None if parts is None else len(open_ids)
    return nodes


def as_seen_by_task(nodes, task, parts=None):
    """The order's nodes as one task's supplier sees them (in memory only, nothing is saved): an
    order-wide node shows that task's own part — its state, when, by whom, and why a first
    article was sent back — never another supplier's. One query, none when the caller passes the
    task's `parts` of these nodes (it has just written them)."""
    if parts is None:
        parts = NodeCompletion.select().where(
            (NodeCompletion.task == task.id) & NodeCompletion.node.in_([n.id for n in nodes]))
    parts = {p.node_id: p for p in parts}
    for node in nodes:
        node.reject_reason = node.rejected_at = None
        if node.code not in SUPPLIER_NODE_CODES:
            continue
        part = parts.get(node.id)
        node.state = task_node_state(part.state if part else None, node.state)
        if part is None:
            if node.state != "done":
                node.done_at = node.done_by = node.task = None
            continue
        node.done_at, node.done_by, node.task = part.done_at, part.done_by, task.id
        if part.state == "rejected":
            node.done_at = node.done_by = None
            node.reject_reason, node.rejected_at = part.reject_reason, part.reviewed_at
    return nodes


# --- messages about nodes ---------------------------------------------------------------------------

def node_message(number, node_name, status, at, detail):
    """The node subscribe message's fields (the first of SUBSCRIBE_TEMPLATE_IDS; README): order or
    task number, node, status (≤ 5 Chinese characters), China time, and a note."""
    local = at.replace(tzinfo=UTC).astimezone(CHINA)
    return {"character_string1": number, "thing2": node_name, "phrase3": status,
            "time4": f"{local:%Y-%m-%d %H:%M}", "thing5": detail}


def node_template_id():
    templates = current().config["SUBSCRIBE_TEMPLATE_IDS"]
    return templates[0] if templates else None


def order_page(order_id):
    """Where the customer's message opens: the order's page in the mini program (MP_ORDER_PAGE)."""
    return f"{current().config['MP_ORDER_PAGE']}?id={order_id}"


def notify_subscribers(node):
    """The order's node has just become done: one message to each customer user who subscribed to
    it and has not been told yet, recorded in the outbox in the caller's transaction (sent after
    commit, if the user's quota allows). Told once: notified_at, and the outbox's dedup key."""
    template = node_template_id()
    if template is None:
        return 0
    order = Order.get_by_id(node.order_id)
    subscriptions = list(
        NodeSubscription.select(NodeSubscription, WechatUser).join(WechatUser).join(Customer)
        .where((NodeSubscription.order == order.id) & (NodeSubscription.node_code == node.code)
               & NodeSubscription.notified_at.is_null() & (WechatUser.role == "customer")
               & (WechatUser.customer == order.customer_id) & Customer.active))
    data = node_message(order.order_no, node.name, "已完成", node.done_at or utcnow(), order.product_name)
    for sub in subscriptions:
        notifications.record("mp_subscribe", sub.user.openid, {"data": data}, template_id=template,
                             page=order_page(order.id), dedup_key=f"node-done-{node.id}-{sub.user_id}")
    if subscriptions:
        (NodeSubscription.update(notified_at=utcnow())
         .where(NodeSubscription.id.in_([s.id for s in subscriptions])).execute())
    return len(subscriptions)
