"""Master data managers keep: suppliers, customers, invites for their WeChat users, node templates."""
from peewee import IntegrityError

from app.domain.errors import Conflict, Invalid, NotFound, not_found
from app.extensions import db
from app.models import Customer, NodeTemplate, NodeTemplateItem, Supplier
from app.services import audit, nodes
from app.services.auth import create_invite
from app.services.intake import Parties
from app.services.order_content import clean

PARTY_FIELDS = ("code", "name", "contact_name", "contact_phone")


# --- suppliers and customers ----------------------------------------------------------------

def _create_party(model, actor, data, what, extra=()):
    """One supplier or customer; its code is unique (a clash is a conflict, not a crash)."""
    fields = {k: (data.get(k) or "").strip() or None for k in PARTY_FIELDS + tuple(extra)}
    if not fields["name"]:
        raise Invalid("validation_error", "名称不能为空", field="name")
    try:
        with audit.transaction(actor) as log:
            party = model.create(**fields)
            log.add(f"{what}.create", what, party.id, after=_loggable(fields))
    except IntegrityError:
        label = "供应商" if model is Supplier else "客户"
        raise Conflict("duplicate_code", f"{label}编码 {fields['code']} 已存在", field="code")
    return party


def _loggable(fields):
    """The robot key is a credential: the audit log says whether one is set, never which."""
    if fields.get("robot_key"):
        return {**fields, "robot_key": "(set)"}
    return fields


def create_supplier(actor, data):
    return _create_party(Supplier, actor, data, "supplier", extra=("robot_key",))


def set_robot_key(actor, supplier_id, robot_key):
    """Set (or clear, with None) the key of the supplier's WeCom group robot: alerts reach the
    supplier there when none of its WeChat users can get a subscribe message (README "Alerts")."""
    robot_key = (robot_key or "").strip() or None
    with audit.transaction(actor) as log:
        supplier = Supplier.get_or_none(Supplier.id == supplier_id)
        if supplier is None:
            raise not_found("供应商")
        if supplier.robot_key != robot_key:
            Supplier.update(robot_key=robot_key).where(Supplier.id == supplier.id).execute()
            log.add("supplier.robot", "supplier", supplier.id, before={"robot": supplier.has_robot},
                    after={"robot": bool(robot_key)})
    return Supplier.get_by_id(supplier_id)


def create_customer(actor, data):
    return _create_party(Customer, actor, data, "customer")


def set_active(actor, model, party_id, active, reason):
    """Deactivate or reactivate a supplier or customer, with the reason. A deactivated party's
    WeChat users are refused at once (every request checks, auth.refuse_deactivated), new tasks
    cannot go to a deactivated supplier and no invites are issued for it."""
    what = "supplier" if model is Supplier else "customer"
    with audit.transaction(actor) as log:
        party = model.get_or_none(model.id == party_id)
        if party is None:
            raise not_found("供应商" if model is Supplier else "客户")
        if party.active != active:
            model.update(active=active).where(model.id == party.id).execute()
            log.add(f"{what}.{'reactivate' if active else 'deactivate'}", what, party.id,
                    before={"active": party.active}, after={"active": active}, reason=reason)
    return model.get_by_id(party_id)


def suppliers_query(active=None, q=None):
    query = Supplier.select().order_by(Supplier.code)
    if active is not None:
        query = query.where(Supplier.active == active)
    if q:
        query = query.where(Supplier.code.contains(q) | Supplier.name.contains(q))
    return query


def customers_query(active=None, q=None):
    query = Customer.select().order_by(Customer.code)
    if active is not None:
        query = query.where(Customer.active == active)
    if q:
        query = query.where(Customer.code.contains(q) | Customer.name.contains(q))
    return query


# --- invites -----------------------------------------------------------------------------------

def issue_invite(actor, *, supplier_id=None, supplier_code=None, customer_id=None, customer_code=None,
                 max_uses=1, ttl_days=14, staff=None):
    """An invite code for one supplier (only an active one) or one customer, named by id or by
    code as orders name them (intake.Parties: codes regardless of case; both must agree)."""
    if supplier_id is not None or supplier_code is not None:
        party = _invited_party(Supplier, supplier_id, supplier_code, "supplier")
        if not party.active:
            raise Conflict("supplier_inactive", "该供应商已停用，不能发放邀请码", field=_party_field("supplier", supplier_id))
    else:
        party = _invited_party(Customer, customer_id, customer_code, "customer")
        if not party.active:
            raise Conflict("customer_inactive", "该客户已停用，不能发放邀请码", field=_party_field("customer", customer_id))
    with audit.transaction(actor) as log:
        invite = create_invite(party, created_by=staff, ttl_days=ttl_days, max_uses=max_uses)
        # The code itself stays out of the log: it is a credential until used.
        log.add("invite.create", "invite", invite.id,
                after={"kind": invite.kind, "party_id": party.id, "max_uses": max_uses, "ttl_days": ttl_days})
    return invite


def _party_field(kind, party_id):
    return f"{kind}_id" if party_id is not None else f"{kind}_code"


def _invited_party(model, party_id, code, kind):
    """The supplier or customer an invite names: unknown → not found; an id and a code naming
    two different parties → invalid."""
    code = clean(code)
    parties = Parties().load(model, [party_id], [code])
    party, problem = parties.find(model, party_id, code)
    if party is not None:
        return party
    if party_id is not None and code is not None and parties.find(model, party_id, None)[0] is not None:
        raise Invalid("validation_error", problem, field=f"{kind}_code")
    raise NotFound("not_found", problem)


# --- node templates -----------------------------------------------------------------------------

def check_template_items(items):
    """Item codes unique, shares within 0–1 and never decreasing (nodes follow the plan in order)."""
    seen = set()
    for index, item in enumerate(items):
        if item["code"] in seen:
            raise Invalid("validation_error", f"节点编码 {item['code']} 重复", field=f"items[{index}].code")
        seen.add(item["code"])
        if index and item["plan_share"] < items[index - 1]["plan_share"]:
            raise Invalid("validation_error", "节点的计划进度比例必须按顺序不减",
                           field=f"items[{index}].plan_share")


def create_template(actor, data):
    """A template for one customer, one product code, or both; one template per such scope."""
    customer_id, product_code = data.get("customer_id"), data.get("product_code") or None
    if customer_id is None and product_code is None:
        raise Invalid("validation_error", "请指定客户或产品编码（默认模板已内置）", field="customer_id")
    if customer_id is not None and Customer.get_or_none(Customer.id == customer_id) is None:
        raise not_found("客户")
    check_template_items(data["items"])
    scope = ((NodeTemplate.customer == customer_id) if customer_id else NodeTemplate.customer.is_null()) & (
        (NodeTemplate.product_code == product_code) if product_code else NodeTemplate.product_code.is_null())
    with audit.transaction(actor) as log:
        if NodeTemplate.select().where(scope & ~NodeTemplate.is_default).exists():
            raise Conflict("template_exists", "该客户/产品已有节点模板", field="product_code")
        template = NodeTemplate.create(name=data["name"], customer=customer_id, product_code=product_code)
        NodeTemplateItem.insert_many([
            {"template": template, "seq": seq, "code": item["code"], "name": item["name"],
             "plan_share": item["plan_share"], "expected_days": item["expected_days"]}
            for seq, item in enumerate(data["items"], start=1)
        ]).execute()
        log.add("node_template.create", "node_template", template.id,
                after={"name": template.name, "customer_id": customer_id, "product_code": product_code,
                       "items": [item["code"] for item in data["items"]]})
    return template


def templates_query():
    """All templates, the default first (created on first use, as for orders)."""
    with db.atomic():
        nodes.default_template()
    return NodeTemplate.select().order_by(NodeTemplate.is_default.desc(), NodeTemplate.id)




def with_items(templates):
    """Load each template's items in sequence order (`item_list`), in one query."""
    by_template = {t.id: [] for t in templates}
    if by_template:
        query = (NodeTemplateItem.select().where(NodeTemplateItem.template.in_(list(by_template)))
                 .order_by(NodeTemplateItem.template, NodeTemplateItem.seq))
        for item in query:
            by_template[item.template_id].append(item)
    for template in templates:
        template.item_list = by_template[template.id]
    return templates
