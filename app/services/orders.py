"""Orders: intake, the order state machine, edits, urges, staff views (file import: order_import).

Intake is idempotent by the ERP's `external_no`: the normalised content is hashed into
Order.content_hash, so a retry with the same content returns the existing order and a
repeat with other content is refused (409) instead of silently merged. An edit re-hashes
the order, so the ERP sending the edited content is a retry too.

Lock order: every writer changes its domain rows first and appends its audit entries last
(`writing`). The audit head is one row that every audited write locks; taking it early and
then waiting for a task row deadlocks against a progress report, which holds the task row
and waits for the head.
"""
import hashlib
import json
import secrets
import unicodedata
from contextlib import contextmanager
from datetime import date
from decimal import Decimal, InvalidOperation

from peewee import Case, IntegrityError, chunked, fn

from app.errors import ApiError
from app.extensions import db, is_mysql
from app.labels import scan_url
from app.models import AuditEntry, Customer, NodeInstance, NodeTemplateItem, Order, Supplier, Task, Urge
from app.services import audit, nodes
from app.services.access import staff_order, staff_task
from app.timeutil import china_date, iso_date, iso_local, utcnow

# Order and task states share their words; the one list of them (the mini program's too).
STATE_NAMES = {
    "draft": "草稿",
    "confirmed": "已确认",
    "pending": "待生产",
    "in_production": "生产中",
    "on_hold": "已暂停",
    "completed": "已完成",
    "cancelled": "已取消",
}
FINAL_STATES = ("completed", "cancelled")
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
URGEABLE_STATES = ("in_production", "on_hold")
EDITABLE_FIELDS = ("product_code", "product_name", "quantity", "unit", "planned_start", "due_date",
                   "unit_price", "notes")
FIELD_NAMES = {
    "external_no": "外部单号", "customer_id": "客户", "product_code": "产品编码", "product_name": "产品名称",
    "quantity": "订单数量", "unit": "单位", "planned_start": "计划开工", "due_date": "交期",
    "unit_price": "单价", "notes": "备注", "tasks": "工序任务",
}
MAX_MONEY = Decimal("9999999999.99")
HISTORY_LIMIT = 50
# Rows per multi-row INSERT and values per IN (…): well inside SQLite's and MySQL's limits.
CHUNK = 500


# --- transactions: domain rows first, audit last ----------------------------------------------

class AuditLater:
    """The audit entries of one transaction, appended by `writing` after its domain rows."""

    def __init__(self, actor):
        self.actor, self.entries = actor, []

    def add(self, action, obj_type, obj_id, **fields):
        self.entries.append((action, obj_type, obj_id, fields))


@contextmanager
def writing(actor):
    """A transaction whose audit entries (collected on the AuditLater it yields) are written
    last, so the audit head is the last lock it takes."""
    with db.atomic():
        log = AuditLater(actor)
        yield log
        for action, obj_type, obj_id, fields in log.entries:
            audit.record(actor, action, obj_type, obj_id, **fields)


# --- comparing numbers and codes as MySQL does ---------------------------------------------------

def fold(text):
    """external_no as MySQL's utf8mb4_unicode_ci compares it (case, width and accents ignored):
    its unique index takes 'ERP-1' and 'erp-1' for one number, so SQLite installs do too."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()


def existing_orders(external_nos):
    """{fold(external_no): Order} of the orders these numbers already name, in one query per CHUNK."""
    found = {}
    for part in chunked(sorted(set(external_nos)), CHUNK):
        if is_mysql():
            where = Order.external_no.in_(part)  # the column's collation ignores case; keeps the index
        else:
            where = fn.LOWER(Order.external_no).in_([no.lower() for no in part])
        found.update((fold(o.external_no), o) for o in Order.select().where(where))
    return found


class Parties:
    """The customers and suppliers an intake names, fetched in a few queries (a whole import
    file shares one). Codes match case-insensitively on both backends, as MySQL's collation
    matches them; they are ASCII (master data allows letters, digits, '_', '.', '-')."""

    WHAT = {Customer: "客户", Supplier: "供应商"}

    def __init__(self):
        self._by_id = {Customer: {}, Supplier: {}}
        self._by_code = {Customer: {}, Supplier: {}}

    @classmethod
    def named_by(cls, data):
        """Everything one intake request names."""
        tasks = data["tasks"]
        return (cls()
                .load(Customer, [data.get("customer_id")], [_clean(data.get("customer_code"))])
                .load(Supplier, [t.get("supplier_id") for t in tasks], [_clean(t.get("supplier_code")) for t in tasks]))

    def load(self, model, ids=(), codes=()):
        ids = {i for i in ids if i is not None} - set(self._by_id[model])
        codes = {c.lower() for c in codes if c} - set(self._by_code[model])
        for part in chunked(sorted(ids), CHUNK):
            self._keep(model, model.select().where(model.id.in_(part)))
        for part in chunked(sorted(codes), CHUNK):
            self._keep(model, model.select().where(fn.LOWER(model.code).in_(part)))
        return self

    def _keep(self, model, rows):
        for row in rows:
            self._by_id[model][row.id] = row
            self._by_code[model][row.code.lower()] = row

    def find(self, model, by_id, by_code):
        """(row, problem): a customer or supplier by id or code, from what `load` fetched."""
        what = self.WHAT[model]
        if by_id is None and by_code is None:
            return None, f"必须提供{what}（id 或编码）"
        row = self._by_id[model].get(by_id) if by_id is not None else self._by_code[model].get(by_code.lower())
        if row is None:
            return None, f"{what} {by_code if by_id is None else by_id} 不存在"
        if by_id is not None and by_code is not None and row.code.lower() != by_code.lower():
            return None, f"{what} id 与编码 {by_code} 不一致"
        return row, None


# --- intake: checking and normalising ---------------------------------------------------------

def _clean(text):
    """Stripped text, or None for missing/blank."""
    if text is None:
        return None
    text = str(text).strip()
    return text or None


def money(value):
    """Decimal with at most two places, or None; raises ValueError with the reason."""
    if value is None or value == "":
        return None
    amount = Decimal(str(value))
    if not amount.is_finite() or amount < 0 or amount > MAX_MONEY:
        raise ValueError("金额必须在 0 到 9999999999.99 之间")
    if amount != amount.quantize(Decimal("0.01")):
        raise ValueError("金额最多两位小数")
    return amount.quantize(Decimal("0.01"))


def _money_text(value):
    """Money as text with two places (SQLite hands back 12.5 for a stored 12.50)."""
    return None if value is None else str(Decimal(value).quantize(Decimal("0.01")))


def _check_task(index, task, order_data, parties, problems):
    supplier, problem = parties.find(Supplier, task.get("supplier_id"), _clean(task.get("supplier_code")))
    key = "supplier_id" if task.get("supplier_id") is not None else "supplier_code"
    if problem:
        problems.append((index, key, problem))
    elif not supplier.active:
        problems.append((index, key, f"供应商 {supplier.code} 已停用"))
        supplier = None
    if not _clean(task.get("process")):
        problems.append((index, "process", "工序不能为空"))
    start, due = task["planned_start"], task["due_date"]
    if due < start:
        problems.append((index, "due_date", "任务交期不能早于任务开工日期"))
    if start < order_data["planned_start"]:
        problems.append((index, "planned_start", "任务开工日期不能早于订单计划开工日期"))
    if due > order_data["due_date"]:
        problems.append((index, "due_date", "任务交期不能晚于订单交期"))
    try:
        task["unit_cost"] = money(task.get("unit_cost"))
    except (ValueError, InvalidOperation) as exc:
        problems.append((index, "unit_cost", str(exc)))
    return supplier


def check_intake(data, parties=None):
    """Resolve references and check the rules the schema cannot: (customer, suppliers, problems).

    Problems are (task_index or None, field, message) so the import can name rows."""
    parties = parties or Parties.named_by(data)
    problems = []
    customer, problem = parties.find(Customer, data.get("customer_id"), _clean(data.get("customer_code")))
    if problem:
        problems.append((None, "customer_id" if data.get("customer_id") is not None else "customer_code", problem))
    if not _clean(data.get("product_name")):
        problems.append((None, "product_name", "产品名称不能为空"))
    if data["due_date"] < data["planned_start"]:
        problems.append((None, "due_date", "交期不能早于计划开工日期"))
    try:
        data["unit_price"] = money(data.get("unit_price"))
    except (ValueError, InvalidOperation) as exc:
        problems.append((None, "unit_price", str(exc)))
    suppliers = [_check_task(i, task, data, parties, problems) for i, task in enumerate(data["tasks"])]
    return customer, suppliers, problems


def _raise_problems(problems):
    """The JSON route's answer: 422 naming the first bad field, every bad field in `fields`."""
    def path(index, field):
        return field if index is None else f"tasks[{index}].{field}"

    fields = {path(i, f): message for i, f, message in problems}
    index, field, message = problems[0]
    raise ApiError(422, "validation_error", f"参数 {path(index, field)}：{message}", field=path(index, field),
                   extra={"fields": fields})


def normalise(data, customer, suppliers):
    """The canonical content of an intake request: what the idempotency hash covers."""
    return {
        "external_no": _clean(data.get("external_no")),
        "customer_id": customer.id,
        "product_code": _clean(data.get("product_code")),
        "product_name": _clean(data["product_name"]),
        "quantity": data["quantity"],
        "unit": _clean(data.get("unit")) or "件",
        "planned_start": data["planned_start"].isoformat(),
        "due_date": data["due_date"].isoformat(),
        "unit_price": _money_text(data.get("unit_price")),
        "notes": _clean(data.get("notes")),
        "tasks": [
            {
                "process": _clean(task["process"]),
                "supplier_id": supplier.id,
                "planned_qty": task["planned_qty"],
                "tolerance_pct": round(float(task.get("tolerance_pct") or 0), 4),
                "planned_start": task["planned_start"].isoformat(),
                "due_date": task["due_date"].isoformat(),
                "requirements": _clean(task.get("requirements")),
                "unit_cost": _money_text(task.get("unit_cost")),
            }
            for task, supplier in zip(data["tasks"], suppliers)
        ],
    }


def content_hash(content, confirm):
    return hashlib.sha256(audit.canonical({**content, "confirm": bool(confirm)}).encode("utf-8")).hexdigest()


def _stored_content(order, tasks):
    """The order as it stands, in the shape of `normalise`: to say what a conflicting repeat
    changes, and to re-hash it after an edit."""
    return {
        "external_no": order.external_no, "customer_id": order.customer_id, "product_code": order.product_code,
        "product_name": order.product_name, "quantity": order.quantity, "unit": order.unit,
        "planned_start": order.planned_start.isoformat(), "due_date": order.due_date.isoformat(),
        "unit_price": _money_text(order.unit_price), "notes": order.notes,
        "tasks": [
            {"process": t.process, "supplier_id": t.supplier_id, "planned_qty": t.planned_qty,
             "tolerance_pct": round(t.tolerance_pct, 4), "planned_start": t.planned_start.isoformat(),
             "due_date": t.due_date.isoformat(), "requirements": t.requirements, "unit_cost": _money_text(t.unit_cost)}
            for t in tasks
        ],
    }


def differences(order, content):
    """Chinese names of the fields where `content` differs from the stored order."""
    stored = _stored_content(order, order.tasks.order_by(Task.id))
    return [FIELD_NAMES[k] for k in FIELD_NAMES if stored.get(k) != content.get(k)]


def conflict_error(order, content):
    changed = differences(order, content)
    detail = f"（不同之处：{'、'.join(changed)}）" if changed else ""
    return ApiError(409, "external_no_conflict",
                    f"外部单号 {order.external_no} 已对应订单 {order.order_no}，但本次内容不同{detail}；"
                    "如需修改请在订单上操作，不会自动合并",
                    field="external_no", extra={"order_id": order.id, "order_no": order.order_no, "differs": changed})


# --- intake: writing ------------------------------------------------------------------------------

def _template_key(content):
    return content["customer_id"], content["product_code"]


def node_steps(contents):
    """{(customer_id, product_code): (template id, its items)} for new orders' nodes. Read before
    the writing transaction: on SQLite (WAL) a transaction that reads before its first write
    fails at once, instead of waiting, when another writer commits in between."""
    templates = {key: nodes.template_for(*key) for key in {_template_key(c) for c in contents}}
    items = {tid: list(t.items.order_by(NodeTemplateItem.seq))
             for tid, t in {t.id: t for t in templates.values()}.items()}
    return {key: (t.id, items[t.id]) for key, t in templates.items()}


def insert_orders(log, items, steps, *, source, staff):
    """Write new orders — items are (content, digest), steps from node_steps — with their tasks
    and nodes, a few statements per CHUNK orders, inside the caller's `writing`. → the orders."""
    created = []
    for part in chunked(items, CHUNK):
        created += _insert_chunk(log, part, steps, source, staff)
    return created


def _insert_chunk(log, items, steps, source, staff):
    orders = _insert_numbered([_order_row(content, digest, steps, source, staff) for content, digest in items])
    tasks = [[_task_row(order, n, spec) for n, spec in enumerate(content["tasks"], start=1)]
             for order, (content, _) in zip(orders, items)]
    node_rows = [row for order, (content, _) in zip(orders, items)
                 for row in _node_rows(order, steps[_template_key(content)][1])]
    for model, rows in ((Task, [row for rows in tasks for row in rows]), (NodeInstance, node_rows)):
        for part in chunked(rows, CHUNK):
            model.insert_many(part).execute()
    for order, (content, _), order_tasks in zip(orders, items, tasks):
        log.add("order.create", "order", order.id, after={
            **{k: v for k, v in content.items() if k != "tasks"}, "order_no": order.order_no, "source": source,
            "tasks": [{"task_no": t["task_no"], "process": t["process"], "supplier_id": t["supplier"],
                       "planned_qty": t["planned_qty"]} for t in order_tasks]})
    return orders


def _insert_numbered(rows):
    """Insert order rows, then number them SO-<China date>-<id>: unique by construction and
    readable. Their provisional numbers find the ids (a multi-row INSERT reports only one)."""
    Order.insert_many(rows).execute()
    ids = dict(Order.select(Order.order_no, Order.id).where(Order.order_no.in_([r["order_no"] for r in rows]))
               .tuples())
    prefix = f"SO-{china_date():%Y%m%d}-"
    orders = [Order(**{**row, "id": ids[row["order_no"]], "order_no": f"{prefix}{ids[row['order_no']]:04d}"})
              for row in rows]
    (Order.update(order_no=Case(Order.id, [(o.id, o.order_no) for o in orders]))
     .where(Order.id.in_([o.id for o in orders])).execute())
    return orders


def _order_row(content, digest, steps, source, staff):
    return {
        "order_no": f"new-{secrets.token_hex(8)}", "external_no": content["external_no"], "content_hash": digest,
        "customer": content["customer_id"], "product_code": content["product_code"],
        "product_name": content["product_name"], "quantity": content["quantity"], "unit": content["unit"],
        "planned_start": date.fromisoformat(content["planned_start"]),
        "due_date": date.fromisoformat(content["due_date"]), "unit_price": content["unit_price"],
        "notes": content["notes"], "source": source, "created_by": staff, "state": "draft",
        "node_template": steps[_template_key(content)][0],
    }


def _task_row(order, n, spec):
    return {
        "order": order.id, "task_no": f"{order.order_no}-T{n}", "process": spec["process"],
        "supplier": spec["supplier_id"], "planned_qty": spec["planned_qty"], "tolerance_pct": spec["tolerance_pct"],
        "planned_start": date.fromisoformat(spec["planned_start"]), "due_date": date.fromisoformat(spec["due_date"]),
        "requirements": spec["requirements"], "unit_cost": spec["unit_cost"],
        "qr_code": secrets.token_urlsafe(16),  # unguessable: the label is the supplier's key to the task
    }


def _node_rows(order, steps):
    """The order's node instances as nodes.instantiate makes them, to insert many orders' at once."""
    dates = nodes.planned_dates(steps, order.planned_start, order.due_date)
    return [{"order": order.id, "seq": step.seq, "code": step.code, "name": step.name, "planned_date": planned,
             "expected_days": step.expected_days} for step, planned in zip(steps, dates)]


def _repeat(external_no, content, digest):
    """A second intake of the same external_no: the order when identical, else a 409."""
    existing = existing_orders([external_no]).get(fold(external_no))
    if existing is not None and existing.content_hash != digest:
        raise conflict_error(existing, content)
    return existing


def create_order(actor, data, *, source="api", staff=None):
    """Create the order (→ (order, True)) or return the one this external_no made (→ (order, False))."""
    customer, suppliers, problems = check_intake(data)
    if problems:
        _raise_problems(problems)
    content = normalise(data, customer, suppliers)
    confirm = bool(data.get("confirm"))
    digest = content_hash(content, confirm)
    external_no = content["external_no"]
    if external_no and (existing := _repeat(external_no, content, digest)):
        return existing, False
    steps = node_steps([content])
    try:
        with writing(actor) as log:
            [order] = insert_orders(log, [(content, digest)], steps, source=source, staff=staff)
            if confirm:
                _transition(log, order, "confirmed", "创建时确认")
    except IntegrityError:
        # A concurrent request with the same external_no committed first: answer as its repeat.
        existing = _repeat(external_no, content, digest) if external_no else None
        if existing is None:
            raise
        return existing, False
    return Order.get_by_id(order.id), True


# --- state machine ---------------------------------------------------------------------------------

def allowed_states(order):
    targets = TRANSITIONS[order.state]
    if order.state == "on_hold" and order.resume_state:
        targets = (order.resume_state,) + targets
    return targets


def _transition(log, order, to, reason):
    """Move the order and its tasks, logging every change. Runs inside the caller's `writing`."""
    frm = order.state
    if to not in allowed_states(order):
        raise ApiError(409, "illegal_transition",
                       f"订单状态不能从「{STATE_NAMES[frm]}」变为「{STATE_NAMES.get(to, to)}」",
                       field="state", extra={"from": frm, "to": to, "allowed": list(allowed_states(order))})
    now = utcnow()
    resume = frm if to == "on_hold" else None
    # Compare-and-set: a concurrent change of the same order makes this one fail, not overwrite.
    changed = (Order.update(state=to, resume_state=resume, updated_at=now)
               .where((Order.id == order.id) & (Order.state == frm)).execute())
    if not changed:
        raise ApiError(409, "state_changed", "订单状态已被他人修改，请刷新后重试", field="state")
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
                reason=f"订单{STATE_NAMES[to]}：{reason}")


def _mark_confirmed_node(log, order, now):
    node = NodeInstance.get_or_none((NodeInstance.order == order.id) & (NodeInstance.code == "confirmed"))
    if node is None or node.state == "done":
        return
    NodeInstance.update(state="done", done_at=now, done_by=(log.actor.label or "")[:64] or None).where(
        NodeInstance.id == node.id).execute()
    log.add("node.done", "node", node.id, before={"state": node.state},
            after={"state": "done", "code": node.code}, reason="订单已确认")


# --- edits ---------------------------------------------------------------------------------------

def _value_out(value):
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return _money_text(value)
    return value


def _clean_edits(order, edits):
    """The edits that change something, checked and normalised like an intake."""
    if order.state in FINAL_STATES:
        raise ApiError(409, "order_closed", f"订单{STATE_NAMES[order.state]}，不能再修改")
    if "unit_price" in edits:
        try:
            edits["unit_price"] = money(edits["unit_price"])
        except (ValueError, InvalidOperation) as exc:
            raise ApiError(422, "validation_error", f"参数 unit_price：{exc}", field="unit_price")
    for key in ("product_name", "product_code", "unit", "notes"):
        if key in edits:
            edits[key] = _clean(edits[key])
    if "product_name" in edits and not edits["product_name"]:
        raise ApiError(422, "validation_error", "产品名称不能为空", field="product_name")
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
    confirmed_intake = order.content_hash == content_hash(_stored_content(order, tasks), True)
    before = {k: _value_out(getattr(order, k)) for k in changes}
    for key, value in changes.items():
        setattr(order, key, value)
    order.updated_at = utcnow()
    order.content_hash = content_hash(_stored_content(order, tasks), confirmed_intake)
    order.save(only=list(changes) + ["updated_at", "content_hash"])
    if "planned_start" in changes or "due_date" in changes:
        _respread_nodes(order)
    log.add("order.update", "order", order.id, before=before,
            after={k: _value_out(v) for k, v in changes.items()}, reason=reason)


def _check_plan(changes, order, tasks):
    start = changes.get("planned_start", order.planned_start)
    due = changes.get("due_date", order.due_date)
    if due < start:
        raise ApiError(422, "validation_error", "交期不能早于计划开工日期", field="due_date")
    if tasks and start > min(t.planned_start for t in tasks):
        raise ApiError(422, "validation_error", "计划开工不能晚于任务的开工日期", field="planned_start")
    if tasks and due < max(t.due_date for t in tasks):
        raise ApiError(422, "validation_error", "交期不能早于任务的交期", field="due_date")


def _respread_nodes(order):
    """Nodes not yet done keep their place in the plan: new dates from the template's shares."""
    if order.node_template_id is None:
        return
    items = list(NodeTemplateItem.select().where(NodeTemplateItem.template == order.node_template_id)
                 .order_by(NodeTemplateItem.seq))
    for item, planned in zip(items, nodes.planned_dates(items, order.planned_start, order.due_date)):
        (NodeInstance.update(planned_date=planned)
         .where((NodeInstance.order == order.id) & (NodeInstance.code == item.code)
                & (NodeInstance.state != "done"))
         .execute())


def update_order(actor, order_id, changes):
    """PATCH: field edits and/or a state change, in one transaction, each audited with the reason."""
    state, reason = changes.pop("state", None), _clean(changes.pop("reason", None))
    edits = {k: changes[k] for k in EDITABLE_FIELDS if k in changes}
    if state is not None and not reason:
        raise ApiError(422, "validation_error", "变更订单状态必须填写原因", field="reason")
    with writing(actor) as log:
        # The order's row lock first: concurrent edits of one order queue up and each re-hashes
        # what the other wrote.
        Order.update(updated_at=Order.updated_at).where(Order.id == order_id).execute()
        order = staff_order(order_id)
        if edits:
            _apply_edits(log, order, edits, reason)
        if state is not None and state != order.state:
            _transition(log, order, state, reason)
    return Order.get_by_id(order.id)


# --- urges -----------------------------------------------------------------------------------------

def urge_task(actor, task_id, message=None, *, staff=None, via="dashboard"):
    """A manager's 催单 on a running task; the supplier sees it in the task and answers there."""
    with writing(actor) as log:
        # The task's row lock, so an order change that stops the task cannot slip in between.
        Task.update(updated_at=Task.updated_at).where(Task.id == task_id).execute()
        task = staff_task(task_id)
        if task.state not in URGEABLE_STATES:
            raise ApiError(409, "task_not_active",
                           f"只能催办生产中或暂停的任务（当前：{STATE_NAMES.get(task.state, task.state)}）")
        urge = Urge.create(task=task, by_staff=staff, via=via, message=_clean(message))
        log.add("task.urge", "task", task.id, after={"urge_id": urge.id, "message": urge.message},
                reason=urge.message)
    return urge


def urges_query(task_id):
    staff_task(task_id)
    return Urge.select().where(Urge.task == task_id).order_by(Urge.id.desc())


def urge_view(urge):
    return {
        "id": urge.id,
        "task_id": urge.task_id,
        "message": urge.message,
        "via": urge.via,
        "by": urge.by_staff.display_name if urge.by_staff_id else None,
        "created_at": iso_local(urge.created_at),
        "replied_at": iso_local(urge.replied_at),
        "reply_reason": urge.reply_reason,
        "new_due_date": iso_date(urge.new_due_date),
    }


# --- lists and views for staff ------------------------------------------------------------------

def orders_query(state=None, customer_id=None, supplier_id=None, q=None, due_before=None, due_after=None):
    task_count = Task.select(fn.COUNT(Task.id)).where(Task.order == Order.id)
    query = (Order.select(Order, Customer, task_count.alias("task_count"))
             .join(Customer).order_by(Order.id.desc()))
    if state:
        query = query.where(Order.state == state)
    if customer_id:
        query = query.where(Order.customer == customer_id)
    if supplier_id:
        query = query.where(Order.id.in_(Task.select(Task.order).where(Task.supplier == supplier_id)))
    if q:
        query = query.where(Order.order_no.contains(q) | Order.external_no.contains(q)
                            | Order.product_name.contains(q))
    if due_before:
        query = query.where(Order.due_date <= due_before)
    if due_after:
        query = query.where(Order.due_date >= due_after)
    return query


def order_summary(order):
    return {
        "id": order.id,
        "order_no": order.order_no,
        "external_no": order.external_no,
        "customer": {"id": order.customer.id, "code": order.customer.code, "name": order.customer.name},
        "product_code": order.product_code,
        "product_name": order.product_name,
        "quantity": order.quantity,
        "unit": order.unit,
        "planned_start": iso_date(order.planned_start),
        "due_date": iso_date(order.due_date),
        "state": order.state,
        "state_name": STATE_NAMES.get(order.state, order.state),
        "source": order.source,
        "task_count": getattr(order, "task_count", None),
        "created_at": iso_local(order.created_at),
        "updated_at": iso_local(order.updated_at),
    }


def _detail_tasks(order):
    """The order's tasks with their supplier and open-urge count, in one query."""
    open_urges = (Urge.select(fn.COUNT(Urge.id))
                  .where((Urge.task == Task.id) & Urge.replied_at.is_null()))
    return list(Task.select(Task, Supplier, open_urges.alias("open_urges")).join(Supplier)
                .where(Task.order == order.id).order_by(Task.id))


def task_view(task, base_url):
    """A task as `_detail_tasks` reads it."""
    progress = round(100 * task.qty_done / task.planned_qty, 1) if task.planned_qty else 0.0
    return {
        "id": task.id,
        "task_no": task.task_no,
        "process": task.process,
        "supplier": {"id": task.supplier.id, "code": task.supplier.code, "name": task.supplier.name},
        "planned_qty": task.planned_qty,
        "tolerance_pct": task.tolerance_pct,
        "planned_start": iso_date(task.planned_start),
        "due_date": iso_date(task.due_date),
        "state": task.state,
        "state_name": STATE_NAMES.get(task.state, task.state),
        "qty_done": task.qty_done,
        "progress_pct": progress,
        "last_report_date": iso_date(task.last_report_date),
        "eta_date": iso_date(task.eta_date),
        "alert_level": task.alert_level,
        "requirements": task.requirements,
        "unit_cost": _money_text(task.unit_cost),
        "open_urges": task.open_urges,
        "started_at": iso_local(task.started_at),
        "completed_at": iso_local(task.completed_at),
        "scan_url": scan_url(base_url, task.qr_code),
        "label_url": f"/api/v1/tasks/{task.id}/label.png",
    }


def node_view(node):
    return {
        "id": node.id,
        "seq": node.seq,
        "code": node.code,
        "name": node.name,
        "planned_date": iso_date(node.planned_date),
        "expected_days": node.expected_days,
        "state": node.state,
        "colour": nodes.NODE_COLOURS.get(node.state, "grey"),
        "started_at": iso_local(node.started_at),
        "done_at": iso_local(node.done_at),
        "done_by": node.done_by,
        "task_id": node.task_id,
        "note": node.note,
    }


def history(order, tasks, order_nodes, limit=HISTORY_LIMIT):
    """Recent audit entries of the order, its tasks and its nodes, newest first."""
    task_ids = [str(t.id) for t in tasks]
    node_ids = [str(n.id) for n in order_nodes]
    where = (AuditEntry.object_type == "order") & (AuditEntry.object_id == str(order.id))
    if task_ids:
        where |= (AuditEntry.object_type == "task") & AuditEntry.object_id.in_(task_ids)
    if node_ids:
        where |= (AuditEntry.object_type == "node") & AuditEntry.object_id.in_(node_ids)
    entries = AuditEntry.select().where(where).order_by(AuditEntry.id.desc()).limit(limit)
    return [
        {
            "at": iso_local(e.created_at),
            "actor": {"type": e.actor_type, "id": e.actor_id, "label": e.actor_label},
            "action": e.action,
            "object": {"type": e.object_type, "id": e.object_id},
            "reason": e.reason,
            "before": json.loads(e.before) if e.before else None,
            "after": json.loads(e.after) if e.after else None,
        }
        for e in entries
    ]


def order_detail(order, base_url):
    """Everything a manager sees about one order (prices and costs included: staff only), in a
    fixed number of queries however many tasks it has."""
    tasks = _detail_tasks(order)
    order_nodes = list(order.nodes.order_by(NodeInstance.seq))
    view = order_summary(order)
    view.update(
        task_count=len(tasks),
        unit_price=_money_text(order.unit_price),
        notes=order.notes,
        resume_state=order.resume_state,
        allowed_states=list(allowed_states(order)),
        node_template=({"id": order.node_template.id, "name": order.node_template.name}
                       if order.node_template_id else None),
        tasks=[task_view(t, base_url) for t in tasks],
        nodes=[node_view(n) for n in order_nodes],
        history=history(order, tasks, order_nodes),
    )
    return view
