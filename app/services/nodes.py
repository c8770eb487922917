"""Order nodes: the template an order uses, and its node instances with planned dates."""
from datetime import timedelta

from app.models import NodeInstance, NodeTemplate, NodeTemplateItem

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

# What each state looks like in the mini program and the dashboard.
NODE_COLOURS = {
    "pending": "grey",
    "in_progress": "yellow",
    "done": "green",
    "delayed": "red",
    "awaiting_confirmation": "blue",
}


def default_template():
    """The default template, created on first use."""
    template = NodeTemplate.get_or_none(NodeTemplate.is_default == True)  # noqa: E712
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
            & (NodeTemplate.is_default == False)  # noqa: E712
        )
        template = query.first()
        if template:
            return template
    return default_template()


def planned_dates(items, start, due):
    """Spread node dates over [start, due] by each item's share of the plan."""
    span = max((due - start).days, 0)
    return [start + timedelta(days=round(span * item.plan_share)) for item in items]


def instantiate(order, template=None):
    """Create the order's node instances from its template (once)."""
    template = template or template_for(order.customer_id, order.product_code)
    items = list(template.items.order_by(NodeTemplateItem.seq))
    dates = planned_dates(items, order.planned_start, order.due_date)
    NodeInstance.insert_many(
        [
            {
                "order": order,
                "seq": item.seq,
                "code": item.code,
                "name": item.name,
                "planned_date": planned,
                "expected_days": item.expected_days,
            }
            for item, planned in zip(items, dates)
        ]
    ).execute()
    if order.node_template_id != template.id:
        order.node_template = template
        order.save(only=["node_template"])
    return template
