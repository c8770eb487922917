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
