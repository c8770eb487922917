"""Master data managers keep: suppliers, customers, invites for their WeChat users, node templates."""
from peewee import IntegrityError

from app.errors import ApiError, not_found
from app.extensions import db
from app.models import Customer, NodeTemplate, NodeTemplateItem, Supplier
from app.services import audit, nodes
from app.services.auth import create_invite
from app.timeutil import iso_local

PARTY_FIELDS = ("code", "name", "contact_name", "contact_phone")


# --- suppliers and customers ----------------------------------------------------------------

def _create_party(model, actor, data, what):
    """One supplier or customer; its code is unique (a clash is a 409, not a crash)."""
    fields = {k: (data.get(k) or "").strip() or None for k in PARTY_FIELDS}
    if not fields["name"]:
        raise ApiError(422, "validation_error", "名称不能为空", field="name")
    try:
        with db.atomic():
            party = model.create(**fields)
            audit.record(actor, f"{what}.create", what, party.id, after=fields)
    except IntegrityError:
        label = "供应商" if model is Supplier else "客户"
        raise ApiError(409, "duplicate_code", f"{label}编码 {fields['code']} 已存在", field="code")
    return party


def create_supplier(actor, data):
    return _create_party(Supplier, actor, data, "supplier")


def create_customer(actor, data):
    return _create_party(Customer, actor, data, "customer")


def suppliers_query(active=None, q=None):
    query = Supplier.select().order_by(Supplier.code)
    if active is not None:
        query = query.where(Supplier.active == active)
    if q:
        query = query.where(Supplier.code.contains(q) | Supplier.name.contains(q))
    return query


def customers_query(q=None):
    query = Customer.select().order_by(Customer.code)
    if q:
        query = query.where(Customer.code.contains(q) | Customer.name.contains(q))
    return query


def party_view(party):
    view = {k: getattr(party, k) for k in ("id",) + PARTY_FIELDS}
    if isinstance(party, Supplier):
        view["active"] = party.active
    view["created_at"] = iso_local(party.created_at)
    return view


# --- invites -----------------------------------------------------------------------------------

def issue_invite(actor, *, supplier_id=None, customer_id=None, max_uses=1, ttl_days=14, staff=None):
    """An invite code for one supplier (only an active one) or one customer."""
    if supplier_id is not None:
        party = Supplier.get_or_none(Supplier.id == supplier_id)
        if party is None:
            raise not_found("供应商")
        if not party.active:
            raise ApiError(409, "supplier_inactive", "该供应商已停用，不能发放邀请码", field="supplier_id")
    else:
        party = Customer.get_or_none(Customer.id == customer_id)
        if party is None:
            raise not_found("客户")
    with db.atomic():
        invite = create_invite(party, created_by=staff, ttl_days=ttl_days, max_uses=max_uses)
        # The code itself stays out of the log: it is a credential until used.
        audit.record(actor, "invite.create", "invite", invite.id,
                     after={"kind": invite.kind, "party_id": party.id, "max_uses": max_uses, "ttl_days": ttl_days})
    return invite


def invite_view(invite):
    party = invite.supplier if invite.kind == "supplier" else invite.customer
    return {
        "id": invite.id,
        "code": invite.code,
        "kind": invite.kind,
        "party": {"id": party.id, "code": party.code, "name": party.name},
        "max_uses": invite.max_uses,
        "uses": invite.uses,
        "expires_at": iso_local(invite.expires_at),
        "created_at": iso_local(invite.created_at),
    }


# --- node templates -----------------------------------------------------------------------------

def check_template_items(items):
    """Item codes unique, shares within 0–1 and never decreasing (nodes follow the plan in order)."""
    seen = set()
    for index, item in enumerate(items):
        if item["code"] in seen:
            raise ApiError(422, "validation_error", f"节点编码 {item['code']} 重复", field=f"items[{index}].code")
        seen.add(item["code"])
        if index and item["plan_share"] < items[index - 1]["plan_share"]:
            raise ApiError(422, "validation_error", "节点的计划进度比例必须按顺序不减",
                           field=f"items[{index}].plan_share")


def create_template(actor, data):
    """A template for one customer, one product code, or both; one template per such scope."""
    customer_id, product_code = data.get("customer_id"), data.get("product_code") or None
    if customer_id is None and product_code is None:
        raise ApiError(422, "validation_error", "请指定客户或产品编码（默认模板已内置）", field="customer_id")
    if customer_id is not None and Customer.get_or_none(Customer.id == customer_id) is None:
        raise not_found("客户")
    check_template_items(data["items"])
    scope = ((NodeTemplate.customer == customer_id) if customer_id else NodeTemplate.customer.is_null()) & (
        (NodeTemplate.product_code == product_code) if product_code else NodeTemplate.product_code.is_null())
    with db.atomic():
        if NodeTemplate.select().where(scope & (NodeTemplate.is_default == False)).exists():  # noqa: E712
            raise ApiError(409, "template_exists", "该客户/产品已有节点模板", field="product_code")
        template = NodeTemplate.create(name=data["name"], customer=customer_id, product_code=product_code)
        NodeTemplateItem.insert_many([
            {"template": template, "seq": seq, "code": item["code"], "name": item["name"],
             "plan_share": item["plan_share"], "expected_days": item["expected_days"]}
            for seq, item in enumerate(data["items"], start=1)
        ]).execute()
        audit.record(actor, "node_template.create", "node_template", template.id,
                     after={"name": template.name, "customer_id": customer_id, "product_code": product_code,
                            "items": [item["code"] for item in data["items"]]})
    return template


def templates_query():
    """All templates, the default first (created on first use, as for orders)."""
    with db.atomic():
        nodes.default_template()
    return NodeTemplate.select().order_by(NodeTemplate.is_default.desc(), NodeTemplate.id)


def template_view(template):
    items = template.items.order_by(NodeTemplateItem.seq)
    return {
        "id": template.id,
        "name": template.name,
        "customer_id": template.customer_id,
        "product_code": template.product_code,
        "is_default": template.is_default,
        "items": [{"seq": i.seq, "code": i.code, "name": i.name, "plan_share": i.plan_share,
                   "expected_days": i.expected_days} for i in items],
    }
