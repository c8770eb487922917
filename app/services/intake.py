"""Order intake: parties, checking and normalising, bulk insert (the JSON route and the file import).

Intake is idempotent by the ERP's `external_no` (see order_content): a retry with the same
content returns the existing order, a repeat with other content is a conflict. A batch of orders
costs a few statements per CHUNK orders, and its audit entries are written last.
"""
import secrets
import unicodedata
from datetime import date
from decimal import InvalidOperation

from peewee import Case, IntegrityError, chunked, fn

from app.domain.errors import Conflict, Invalid
from app.domain.vocabulary import DATE_MAX, DATE_MIN
from app.extensions import is_mysql
from app.models import Customer, NodeInstance, NodeTemplateItem, Order, Supplier, Task
from app.services import audit, nodes, order_states
from app.services.order_content import clean, content_hash, differences, money, money_text
from app.timeutil import china_date

# Rows per multi-row INSERT and values per IN (…): well inside SQLite's and MySQL's limits.
CHUNK = 1000  # rows (an order row has 16 columns: 16,000 values, under SQLite's 32,766)


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
                .load(Customer, [data.get("customer_id")], [clean(data.get("customer_code"))])
                .load(Supplier, [t.get("supplier_id") for t in tasks], [clean(t.get("supplier_code")) for t in tasks]))

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

def _check_task(index, task, order_data, parties, problems):
    supplier, problem = parties.find(Supplier, task.get("supplier_id"), clean(task.get("supplier_code")))
    key = "supplier_id" if task.get("supplier_id") is not None else "supplier_code"
    if problem:
        problems.append((index, key, problem))
    elif not supplier.active:
        problems.append((index, key, f"供应商 {supplier.code} 已停用"))
        supplier = None
    if not clean(task.get("process")):
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
    customer, problem = parties.find(Customer, data.get("customer_id"), clean(data.get("customer_code")))
    if problem:
        problems.append((None, "customer_id" if data.get("customer_id") is not None else "customer_code", problem))
    if not clean(data.get("product_name")):
        problems.append((None, "product_name", "产品名称不能为空"))
    for key in ("planned_start", "due_date"):  # an import's dates come here unchecked; tasks must lie inside
        if not DATE_MIN <= data[key] <= DATE_MAX:
            problems.append((None, key, f"日期必须在 {DATE_MIN} 至 {DATE_MAX} 之间"))
    if data["due_date"] < data["planned_start"]:
        problems.append((None, "due_date", "交期不能早于计划开工日期"))
    try:
        data["unit_price"] = money(data.get("unit_price"))
    except (ValueError, InvalidOperation) as exc:
        problems.append((None, "unit_price", str(exc)))
    suppliers = [_check_task(i, task, data, parties, problems) for i, task in enumerate(data["tasks"])]
    return customer, suppliers, problems


def raise_problems(problems):
    """Invalid, naming the first bad field, with every bad field in `fields`."""
    def path(index, field):
        return field if index is None else f"tasks[{index}].{field}"

    fields = {path(i, f): message for i, f, message in problems}
    index, field, message = problems[0]
    raise Invalid("validation_error", f"参数 {path(index, field)}：{message}", field=path(index, field),
                  extra={"fields": fields})


def normalise(data, customer, suppliers):
    """The canonical content of an intake request: what the idempotency hash covers."""
    return {
        "external_no": clean(data.get("external_no")),
        "customer_id": customer.id,
        "product_code": clean(data.get("product_code")),
        "product_name": clean(data["product_name"]),
        "quantity": data["quantity"],
        "unit": clean(data.get("unit")) or "件",
        "planned_start": data["planned_start"].isoformat(),
        "due_date": data["due_date"].isoformat(),
        "unit_price": money_text(data.get("unit_price")),
        "notes": clean(data.get("notes")),
        "tasks": [
            {
                "process": clean(task["process"]),
                "supplier_id": supplier.id,
                "planned_qty": task["planned_qty"],
                "tolerance_pct": round(float(task.get("tolerance_pct") or 0), 4),
                "planned_start": task["planned_start"].isoformat(),
                "due_date": task["due_date"].isoformat(),
                "requirements": clean(task.get("requirements")),
                "unit_cost": money_text(task.get("unit_cost")),
            }
            for task, supplier in zip(data["tasks"], suppliers, strict=False)
        ],
    }


def conflict_error(order, content):
    changed = differences(order, content)
    detail = f"（不同之处：{'、'.join(changed)}）" if changed else ""
    return Conflict("external_no_conflict",
                    f"外部单号 {order.external_no} 已对应订单 {order.order_no}，但本次内容不同{detail}；"
                    "如需修改请在订单上操作，不会自动合并",
                    field="external_no", extra={"order_id": order.id, "order_no": order.order_no, "differs": changed})


# --- intake: writing ------------------------------------------------------------------------------

def _template_key(content):
    return content["customer_id"], content["product_code"]


def node_steps(contents):
    """{(customer_id, product_code): (template id, its items)} for new orders' nodes. Read before
    the write transaction begins, which keeps it short (on SQLite it holds the one write lock)."""
    templates = {key: nodes.template_for(*key) for key in {_template_key(c) for c in contents}}
    items = {tid: list(t.items.order_by(NodeTemplateItem.seq))
             for tid, t in {t.id: t for t in templates.values()}.items()}
    return {key: (t.id, items[t.id]) for key, t in templates.items()}


def insert_orders(log, items, steps, *, source, staff):
    """Write new orders — items are (content, digest), steps from node_steps — with their tasks
    and nodes, a few statements per CHUNK orders, inside the caller's audit.transaction. → the orders."""
    created = []
    for part in chunked(items, CHUNK):
        created += _insert_chunk(log, part, steps, source, staff)
    return created


def _insert_chunk(log, items, steps, source, staff):
    orders = _insert_numbered([_order_row(content, digest, steps, source, staff) for content, digest in items])
    tasks = [[_task_row(order, n, spec) for n, spec in enumerate(content["tasks"], start=1)]
             for order, (content, _) in zip(orders, items, strict=False)]
    node_rows = [row for order, (content, _) in zip(orders, items, strict=False)
                 for row in nodes.node_rows(order, steps[_template_key(content)][1])]
    task_rows = [row for order_tasks in tasks for row in order_tasks]
    for model, rows in ((Task, task_rows), (NodeInstance, node_rows)):
        for part in chunked(rows, CHUNK):
            model.insert_many(part).execute()
    for order, (content, _), order_tasks in zip(orders, items, tasks, strict=False):
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


def _repeat(external_no, content, digest):
    """A second intake of the same external_no: the order when identical, else a conflict."""
    existing = existing_orders([external_no]).get(fold(external_no))
    if existing is not None and existing.content_hash != digest:
        raise conflict_error(existing, content)
    return existing


def create_order(actor, data, *, source="api", staff=None):
    """Create the order (→ (order, True)) or return the one this external_no made (→ (order, False))."""
    customer, suppliers, problems = check_intake(data)
    if problems:
        raise_problems(problems)
    content = normalise(data, customer, suppliers)
    confirm = bool(data.get("confirm"))
    digest = content_hash(content, confirm)
    external_no = content["external_no"]
    if external_no and (existing := _repeat(external_no, content, digest)):
        return existing, False
    steps = node_steps([content])
    try:
        with audit.transaction(actor) as log:
            [order] = insert_orders(log, [(content, digest)], steps, source=source, staff=staff)
            if confirm:
                order_states.transition(log, order, "confirmed", "创建时确认")
    except IntegrityError:
        # A concurrent request with the same external_no committed first: answer as its repeat.
        existing = _repeat(external_no, content, digest) if external_no else None
        if existing is None:
            raise
        return existing, False
    return Order.get_by_id(order.id), True
