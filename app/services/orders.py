"""Orders: intake (API and file import), the order state machine, edits, urges, staff views.

Intake is idempotent by the ERP's `external_no`: the normalised content is hashed into
Order.content_hash, so a retry with the same content returns the existing order and a
repeat with other content is refused (409) instead of silently merged.
"""
import csv
import hashlib
import io
import json
import re
import secrets
import zipfile
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

from peewee import IntegrityError, fn

from app.errors import ApiError
from app.extensions import db
from app.labels import scan_url
from app.models import AuditEntry, Customer, NodeInstance, NodeTemplateItem, Order, Supplier, Task, Urge
from app.services import audit, nodes
from app.services.access import staff_order, staff_task
from app.timeutil import china_date, iso_date, iso_local, utcnow

STATE_NAMES = {
    "draft": "草稿",
    "confirmed": "已确认",
    "in_production": "生产中",
    "on_hold": "暂停",
    "completed": "已完成",
    "cancelled": "已取消",
}
TASK_STATE_NAMES = {"pending": "待生产", "in_production": "生产中", "on_hold": "暂停",
                    "completed": "已完成", "cancelled": "已取消"}
# Where an order may go from each state; on_hold also returns to Order.resume_state.
TRANSITIONS = {
    "draft": ("confirmed", "cancelled"),
    "confirmed": ("in_production", "on_hold", "cancelled"),
    "in_production": ("completed", "on_hold", "cancelled"),
    "on_hold": ("cancelled",),
    "completed": (),
    "cancelled": (),
}
FINAL_STATES = ("completed", "cancelled")
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


# --- intake: checking and normalising ---------------------------------------------------------

def _clean(text):
    """Stripped text, or None for missing/blank."""
    if text is None:
        return None
    text = str(text).strip()
    return text or None


def _money(value):
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


def _party(model, by_id, by_code, what):
    """(row, problem): look a customer or supplier up by id or code."""
    if by_id is None and by_code is None:
        return None, f"必须提供{what}（id 或编码）"
    row = model.get_or_none(model.id == by_id) if by_id is not None else model.get_or_none(model.code == by_code)
    if row is None:
        return None, f"{what} {by_code if by_id is None else by_id} 不存在"
    if by_id is not None and by_code is not None and row.code != by_code:
        return None, f"{what} id 与编码 {by_code} 不一致"
    return row, None


def _check_task(index, task, order_data, problems):
    supplier, problem = _party(Supplier, task.get("supplier_id"), _clean(task.get("supplier_code")), "供应商")
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
        task["unit_cost"] = _money(task.get("unit_cost"))
    except (ValueError, InvalidOperation) as exc:
        problems.append((index, "unit_cost", str(exc)))
    return supplier


def check_intake(data):
    """Resolve references and check the rules the schema cannot: (customer, suppliers, problems).

    Problems are (task_index or None, field, message) so the import can name rows."""
    problems = []
    customer, problem = _party(Customer, data.get("customer_id"), _clean(data.get("customer_code")), "客户")
    if problem:
        problems.append((None, "customer_id" if data.get("customer_id") is not None else "customer_code", problem))
    if not _clean(data.get("product_name")):
        problems.append((None, "product_name", "产品名称不能为空"))
    if data["due_date"] < data["planned_start"]:
        problems.append((None, "due_date", "交期不能早于计划开工日期"))
    try:
        data["unit_price"] = _money(data.get("unit_price"))
    except (ValueError, InvalidOperation) as exc:
        problems.append((None, "unit_price", str(exc)))
    suppliers = [_check_task(i, task, data, problems) for i, task in enumerate(data["tasks"])]
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


def _stored_content(order):
    """The order as it stands, in the shape of `normalise`, to say what a conflicting repeat changes."""
    tasks = order.tasks.order_by(Task.id)
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
    stored = _stored_content(order)
    return [FIELD_NAMES[k] for k in FIELD_NAMES if stored.get(k) != content.get(k)]


def conflict_error(order, content):
    changed = differences(order, content)
    detail = f"（不同之处：{'、'.join(changed)}）" if changed else ""
    return ApiError(409, "external_no_conflict",
                    f"外部单号 {order.external_no} 已对应订单 {order.order_no}，但本次内容不同{detail}；"
                    "如需修改请在订单上操作，不会自动合并",
                    field="external_no", extra={"order_id": order.id, "order_no": order.order_no, "differs": changed})


# --- intake: writing ------------------------------------------------------------------------------

def _order_no(order):
    """SO-<China date>-<id>: unique by construction, readable on the phone and on paper."""
    return f"SO-{china_date():%Y%m%d}-{order.id:04d}"


def _insert(actor, content, digest, *, source, staff, confirm):
    """Write the order, its tasks and nodes, and the audit entry (inside the caller's transaction)."""
    order = Order.create(
        order_no=f"new-{secrets.token_hex(8)}", external_no=content["external_no"], content_hash=digest,
        customer=content["customer_id"], product_code=content["product_code"], product_name=content["product_name"],
        quantity=content["quantity"], unit=content["unit"], planned_start=date.fromisoformat(content["planned_start"]),
        due_date=date.fromisoformat(content["due_date"]), unit_price=content["unit_price"], notes=content["notes"],
        source=source, created_by=staff, state="draft",
    )
    order.order_no = _order_no(order)
    order.save(only=[Order.order_no])
    tasks = []
    for n, spec in enumerate(content["tasks"], start=1):
        tasks.append(Task.create(
            order=order, task_no=f"{order.order_no}-T{n}", process=spec["process"], supplier=spec["supplier_id"],
            planned_qty=spec["planned_qty"], tolerance_pct=spec["tolerance_pct"],
            planned_start=date.fromisoformat(spec["planned_start"]), due_date=date.fromisoformat(spec["due_date"]),
            requirements=spec["requirements"], unit_cost=spec["unit_cost"],
            qr_code=secrets.token_urlsafe(16),  # unguessable: the label is the supplier's key to the task
        ))
    nodes.instantiate(order)
    audit.record(actor, "order.create", "order", order.id, after={
        **{k: v for k, v in content.items() if k != "tasks"},
        "order_no": order.order_no, "source": source,
        "tasks": [{"task_no": t.task_no, "process": t.process, "supplier_id": t.supplier_id,
                   "planned_qty": t.planned_qty} for t in tasks],
    })
    if confirm:
        _transition(actor, order, "confirmed", "创建时确认")
    return order


def _repeat(external_no, content, digest):
    """A second intake of the same external_no: the order when identical, else a 409."""
    existing = Order.get_or_none(Order.external_no == external_no)
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
    try:
        with db.atomic():
            order = _insert(actor, content, digest, source=source, staff=staff, confirm=confirm)
    except IntegrityError:
        # A concurrent request with the same external_no committed first: answer as its repeat.
        existing = _repeat(external_no, content, digest) if external_no else None
        if existing is None:
            raise
        return existing, False
    return Order.get_by_id(order.id), True


# --- import: reading the file ------------------------------------------------------------------

MAX_IMPORT_BYTES = 5 * 1024 * 1024
MAX_IMPORT_ROWS = 5000
MAX_IMPORT_COLUMNS = 40
# A real order sheet unpacks to a few MB; more is a decompression bomb.
MAX_XLSX_UNPACKED = 60 * 1024 * 1024
MAX_REPORTED_ERRORS = 1000


def _unreadable(message):
    return ApiError(422, "import_unreadable", message, field="file")


def _xlsx_rows(data):
    """Rows of the first sheet as lists of cell values, read lazily with caps on rows and columns."""
    import openpyxl

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            if sum(info.file_size for info in archive.infolist()) > MAX_XLSX_UNPACKED:
                raise _unreadable("Excel 文件解压后过大，疑似压缩炸弹，已拒绝")
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        sheet = book.worksheets[0]
        # One row past the limit is enough to tell the file is too long.
        rows = [list(row) for row in sheet.iter_rows(min_row=1, max_row=MAX_IMPORT_ROWS + 2,
                                                       max_col=MAX_IMPORT_COLUMNS, values_only=True)]
        book.close()
    except ApiError:
        raise
    except Exception:  # openpyxl raises many kinds on a damaged file; all mean the same to the user
        raise _unreadable("无法读取 Excel 文件，请确认是 .xlsx 格式且未损坏")
    return rows


def _csv_rows(data):
    """Rows of a CSV: UTF-8 with or without BOM; GB18030 as Excel-in-China saves 'CSV' by default."""
    if b"\x00" in data:
        raise _unreadable("文件不是 CSV 或 Excel（.xlsx）格式")
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise _unreadable("CSV 文件编码无法识别，请保存为 UTF-8")
    try:
        rows = []
        for row in csv.reader(io.StringIO(text, newline="")):
            rows.append(row[:MAX_IMPORT_COLUMNS])
            if len(rows) > MAX_IMPORT_ROWS + 1:
                break
        return rows
    except csv.Error:
        raise _unreadable("CSV 格式不正确（引号未闭合或含非法字符）")


def read_table(data):
    """The file's rows (header first), XLSX or CSV by content, never by file name."""
    if len(data) > MAX_IMPORT_BYTES:
        raise ApiError(413, "file_too_large", "导入文件不能超过 5 MB", field="file")
    rows = _xlsx_rows(data) if data[:4] == b"PK\x03\x04" else _csv_rows(data)
    while rows and _blank(rows[-1]):
        rows.pop()
    if not rows:
        raise _unreadable("文件是空的")
    if len(rows) > MAX_IMPORT_ROWS + 1:
        raise ApiError(422, "too_many_rows", f"一次最多导入 {MAX_IMPORT_ROWS} 行，请拆分文件", field="file")
    return rows


def _blank(row):
    return all(cell is None or str(cell).strip() == "" for cell in row)


# --- import: cells ---------------------------------------------------------------------------------

def _text(max_len):
    def parse(value):
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # Excel stores numeric-looking codes as numbers
        if isinstance(value, (datetime, date)):
            raise ValueError("应为文本")
        text = str(value).strip()
        if len(text) > max_len:
            raise ValueError(f"不能超过 {max_len} 个字符")
        return text
    return parse


def _positive_int(value):
    if isinstance(value, str):
        value = value.strip().replace(",", "")
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise ValueError("必须是正整数")
    if not number.is_finite() or number != number.to_integral_value() or number < 1 or number > 10_000_000:
        raise ValueError("必须是 1 到 10000000 之间的整数")
    return int(number)


def _date(value):
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    match = re.fullmatch(r"(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})", str(value).strip())
    try:
        return date(*(int(part) for part in match.groups()))
    except (AttributeError, ValueError):
        raise ValueError("必须是日期，如 2026-05-01")


def _share(value):
    """Tolerance as a share: 0.05 or 5%."""
    text = str(value).strip()
    try:
        share = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise ValueError("必须是比例，如 0.05 或 5%")
    if not 0 <= share <= 0.5:
        raise ValueError("必须在 0 到 0.5（50%）之间")
    return share


def _money_cell(value):
    try:
        return _money(str(value).strip().replace(",", ""))
    except (ValueError, InvalidOperation) as exc:
        raise ValueError(str(exc) if isinstance(exc, ValueError) else "必须是金额，如 12.50")


# key, Chinese header, parser, required, belongs to the order (repeated on each of its rows)
IMPORT_COLUMNS = (
    ("external_no", "外部单号", _text(64), True, True),
    ("customer_code", "客户编码", _text(32), True, True),
    ("product_code", "产品编码", _text(64), False, True),
    ("product_name", "产品名称", _text(128), True, True),
    ("quantity", "订单数量", _positive_int, True, True),
    ("unit", "单位", _text(16), False, True),
    ("planned_start", "计划开工", _date, True, True),
    ("due_date", "交期", _date, True, True),
    ("unit_price", "单价", _money_cell, False, True),
    ("notes", "备注", _text(2000), False, True),
    ("process", "工序", _text(32), True, False),
    ("supplier_code", "供应商编码", _text(32), True, False),
    ("planned_qty", "计划数量", _positive_int, True, False),
    ("tolerance_pct", "允差", _share, False, False),
    ("task_planned_start", "工序开工", _date, False, False),
    ("task_due_date", "工序交期", _date, False, False),
    ("requirements", "工艺要求", _text(2000), False, False),
    ("unit_cost", "单位成本", _money_cell, False, False),
)
_SPEC = {key: (zh, parse, required, order_level) for key, zh, parse, required, order_level in IMPORT_COLUMNS}


def _header_key(text):
    return re.sub(r"[\s_*\-]", "", str(text or "")).lower()


_ALIASES = {_header_key(name): key for key, zh, *_ in IMPORT_COLUMNS for name in (key, zh)}


def _map_header(header, errors):
    """Column index → key; unknown or repeated headers and missing required columns are row-1 errors."""
    columns = {}
    for index, title in enumerate(header):
        if title is None or str(title).strip() == "":
            continue
        key = _ALIASES.get(_header_key(title))
        if key is None:
            errors.append({"row": 1, "field": str(title), "message": "无法识别的列名"})
        elif key in columns.values():
            errors.append({"row": 1, "field": str(title), "message": "列重复"})
        else:
            columns[index] = key
    for key, (zh, _, required, _) in _SPEC.items():
        if required and key not in columns.values():
            errors.append({"row": 1, "field": zh, "message": f"缺少必填列「{zh}」（或 {key}）"})
    return columns


def _parse_row(row_no, row, columns, titles, errors):
    """(values, keys of cells that failed to parse)."""
    values, failed = {}, set()
    for index, key in columns.items():
        zh, parse, required, _ = _SPEC[key]
        cell = row[index] if index < len(row) else None
        if cell is None or str(cell).strip() == "":
            if required:
                errors.append({"row": row_no, "field": titles[key], "message": "不能为空"})
            continue
        try:
            values[key] = parse(cell)
        except ValueError as exc:
            failed.add(key)
            errors.append({"row": row_no, "field": titles[key], "message": str(exc)})
    return values, failed


# --- import: rows → orders ------------------------------------------------------------------------

def _group(parsed, titles, errors):
    """Rows by external_no, checking that each order's own columns agree across its rows."""
    groups = {}
    for row_no, values, failed in parsed:
        external_no = values.get("external_no")
        if not external_no:
            continue  # already reported as a missing required cell
        group = groups.setdefault(external_no, {"rows": [], "first": values, "first_row": row_no,
                                                "first_failed": failed})
        group["rows"].append((row_no, values))
        unreadable = failed | group["first_failed"]  # already reported; no echo as a mismatch
        for key, (_, _, _, order_level) in _SPEC.items():
            if order_level and key in titles and key not in unreadable and values.get(key) != group["first"].get(key):
                errors.append({"row": row_no, "field": titles[key],
                               "message": f"与第 {group['first_row']} 行（同一外部单号）不一致"})
    return groups


def _intake_data(group):
    first = group["first"]
    data = {key: first.get(key) for key, (_, _, _, order_level) in _SPEC.items() if order_level}
    data["tasks"] = [
        {"process": v.get("process"), "supplier_code": v.get("supplier_code"), "planned_qty": v.get("planned_qty"),
         "tolerance_pct": v.get("tolerance_pct", 0.0), "requirements": v.get("requirements"),
         "unit_cost": v.get("unit_cost"),
         "planned_start": v.get("task_planned_start") or first.get("planned_start"),
         "due_date": v.get("task_due_date") or first.get("due_date")}
        for _, v in group["rows"]
    ]
    return data


# Intake field → the import column it came from.
_IMPORT_FIELD = {"customer_id": "customer_code", "supplier_id": "supplier_code"}
_TASK_DATE_FIELD = {"planned_start": "task_planned_start", "due_date": "task_due_date"}


def _import_key(group, index, field):
    """The column to blame for an intake problem. A task date the row left blank came from the
    order: blame the row's other task date if it has one, else nothing (the order's error says it)."""
    key = _IMPORT_FIELD.get(field, field)
    if index is None or key not in _TASK_DATE_FIELD:
        return key
    values = group["rows"][index][1]
    for candidate in (_TASK_DATE_FIELD[key], *(v for v in _TASK_DATE_FIELD.values() if v != _TASK_DATE_FIELD[key])):
        if candidate in values:
            return candidate
    return None


def _check_group(group, titles, errors):
    """Semantic checks of one order; returns (data, content, digest, existing) or None when bad."""
    data = _intake_data(group)
    customer, suppliers, problems = check_intake(data)
    rows = [row_no for row_no, _ in group["rows"]]
    for index, field, message in problems:
        key = _import_key(group, index, field)
        if key is None:
            continue
        for row_no in rows if index is None else [rows[index]]:
            errors.append({"row": row_no, "field": titles.get(key, _SPEC.get(key, (key,))[0]), "message": message})
    if problems:
        return None
    content = normalise(data, customer, suppliers)
    digest = content_hash(content, False)
    existing = Order.get_or_none(Order.external_no == content["external_no"])
    if existing is not None and existing.content_hash != digest:
        changed = differences(existing, content)
        errors.append({"row": rows[0], "field": titles["external_no"],
                       "message": f"外部单号已导入为订单 {existing.order_no}，但内容不同（{'、'.join(changed) or '内容'}）"})
        return None
    return data, content, digest, existing


def _check_references(row_no, values, titles, errors, cache):
    """Unknown or inactive customer/supplier codes, reported on every row that names them."""
    for key, model, what in (("customer_code", Customer, "客户"), ("supplier_code", Supplier, "供应商")):
        code = values.get(key)
        if code is None:
            continue
        if (key, code) not in cache:
            row, problem = _party(model, None, code, what)
            if problem is None and what == "供应商" and not row.active:
                problem = f"供应商 {code} 已停用"
            cache[(key, code)] = problem
        if cache[(key, code)]:
            errors.append({"row": row_no, "field": titles[key], "message": cache[(key, code)]})


def _validate_import(rows):
    """Every problem of the file as {row, field, message}, and the orders it would create.

    Cells and references are checked on every row; the rules that need a whole order (dates
    inside the plan, an external_no imported before) on every order whose rows are clean."""
    errors = []
    columns = _map_header(rows[0], errors)
    titles = {key: str(rows[0][index]).strip() for index, key in columns.items()}
    if errors:
        return errors, []
    parsed, cache = [], {}
    for row_no, row in enumerate(rows[1:], start=2):
        if not _blank(row):
            values, failed = _parse_row(row_no, row, columns, titles, errors)
            _check_references(row_no, values, titles, errors, cache)
            parsed.append((row_no, values, failed))
    if not parsed:
        errors.append({"row": 2, "field": "file", "message": "文件没有数据行"})
    groups = _group(parsed, titles, errors)
    bad_rows = {e["row"] for e in errors}
    checked = [_check_group(group, titles, errors) for group in groups.values()
               if not bad_rows.intersection(row_no for row_no, _ in group["rows"])]
    unique = list({(e["row"], e["field"], e["message"]): e for e in errors}.values())
    return unique, checked


def import_orders(actor, data, *, staff=None):
    """All or nothing: any bad row → 422 listing every problem; else create what is new.

    Returns {"created", "skipped", "orders"}; an order already imported with the same content
    is skipped, so importing the same file twice creates nothing the second time."""
    rows = read_table(data)
    for attempt in (1, 2):
        errors, checked = _validate_import(rows)
        if errors:
            errors.sort(key=lambda e: e["row"])
            raise ApiError(
                422, "import_invalid", f"导入文件有 {len(errors)} 处错误，未导入任何数据，请修改后重新导入",
                field="file", extra={"errors": errors[:MAX_REPORTED_ERRORS], "error_count": len(errors)})
        try:
            with db.atomic():
                return _create_checked(actor, checked, staff)
        except IntegrityError:
            # A concurrent import took one of these external_nos: check again, once.
            if attempt == 2:
                raise ApiError(409, "import_conflict", "有其他导入正在写入相同的外部单号，请稍后重试")


def _create_checked(actor, checked, staff):
    created, skipped = [], []
    for data, content, digest, existing in checked:
        if existing is not None:
            skipped.append(existing)
        else:
            created.append(_insert(actor, content, digest, source="import", staff=staff, confirm=False))
    brief = [{"id": o.id, "order_no": o.order_no, "external_no": o.external_no} for o in created]
    return {"created": len(created), "skipped": len(skipped), "orders": brief}


# --- state machine ---------------------------------------------------------------------------------

def allowed_states(order):
    targets = TRANSITIONS[order.state]
    if order.state == "on_hold" and order.resume_state:
        targets = (order.resume_state,) + targets
    return targets


def _transition(actor, order, to, reason):
    """Move the order and its tasks; record every change. Runs inside the caller's transaction."""
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
    audit.record(actor, "order.state", "order", order.id, before={"state": frm}, after={"state": to}, reason=reason)
    _tasks_follow(actor, order, to, reason, now)
    if to == "confirmed":
        _mark_confirmed_node(actor, order, now)


def _tasks_follow(actor, order, to, reason, now):
    moves = TASKS_FOLLOW.get(to, {})
    for task in order.tasks.where(Task.state.in_(list(moves))).order_by(Task.id):
        new = moves[task.state]
        fields = {"state": new, "updated_at": now}
        if new == "in_production" and task.started_at is None:
            fields["started_at"] = now
        if new == "completed":
            fields["completed_at"] = now
        Task.update(**fields).where(Task.id == task.id).execute()
        audit.record(actor, "task.state", "task", task.id, before={"state": task.state},
                     after={"state": new}, reason=f"订单{STATE_NAMES[to]}：{reason}")


def _mark_confirmed_node(actor, order, now):
    node = NodeInstance.get_or_none((NodeInstance.order == order.id) & (NodeInstance.code == "confirmed"))
    if node is None or node.state == "done":
        return
    NodeInstance.update(state="done", done_at=now, done_by=(actor.label or "")[:64] or None).where(
        NodeInstance.id == node.id).execute()
    audit.record(actor, "node.done", "node", node.id, before={"state": node.state},
                 after={"state": "done", "code": node.code}, reason="订单已确认")


# --- edits ---------------------------------------------------------------------------------------

def _value_out(value):
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return _money_text(value)
    return value


def _apply_edits(actor, order, edits, reason):
    """Change the editable fields that differ; re-spread pending node dates when the plan moves."""
    if order.state in FINAL_STATES:
        raise ApiError(409, "order_closed", f"订单已{STATE_NAMES[order.state]}，不能再修改")
    if "unit_price" in edits:
        try:
            edits["unit_price"] = _money(edits["unit_price"])
        except (ValueError, InvalidOperation) as exc:
            raise ApiError(422, "validation_error", f"参数 unit_price：{exc}", field="unit_price")
    for key in ("product_name", "product_code", "unit", "notes"):
        if key in edits:
            edits[key] = _clean(edits[key])
    if "product_name" in edits and not edits["product_name"]:
        raise ApiError(422, "validation_error", "产品名称不能为空", field="product_name")
    if "unit" in edits:
        edits["unit"] = edits["unit"] or "件"
    changes = {k: v for k, v in edits.items() if getattr(order, k) != v}
    if not changes:
        return
    _check_plan(order, changes)
    before = {k: _value_out(getattr(order, k)) for k in changes}
    for key, value in changes.items():
        setattr(order, key, value)
    order.updated_at = utcnow()
    order.save(only=list(changes) + ["updated_at"])
    audit.record(actor, "order.update", "order", order.id, before=before,
                 after={k: _value_out(v) for k, v in changes.items()}, reason=reason)
    if "planned_start" in changes or "due_date" in changes:
        _respread_nodes(order)


def _check_plan(order, changes):
    start = changes.get("planned_start", order.planned_start)
    due = changes.get("due_date", order.due_date)
    if due < start:
        raise ApiError(422, "validation_error", "交期不能早于计划开工日期", field="due_date")
    tasks = list(order.tasks)
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
    with db.atomic():
        order = staff_order(order_id)
        if edits:
            _apply_edits(actor, order, edits, reason)
        if state is not None and state != order.state:
            _transition(actor, order, state, reason)
    return Order.get_by_id(order.id)


# --- urges -----------------------------------------------------------------------------------------

def urge_task(actor, task_id, message=None, *, staff=None, via="dashboard"):
    """A manager's 催单 on a running task; the supplier sees it in the task and answers there."""
    with db.atomic():
        task = staff_task(task_id)
        if task.state not in URGEABLE_STATES:
            raise ApiError(409, "task_not_active",
                           f"只能催办生产中或暂停的任务（当前：{TASK_STATE_NAMES.get(task.state, task.state)}）")
        urge = Urge.create(task=task, by_staff=staff, via=via, message=_clean(message))
        audit.record(actor, "task.urge", "task", task.id, after={"urge_id": urge.id, "message": urge.message},
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


def task_view(task, base_url):
    progress = round(100 * task.qty_done / task.planned_qty, 1) if task.planned_qty else 0.0
    open_urges = task.urges.where(Urge.replied_at.is_null()).count()
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
        "state_name": TASK_STATE_NAMES.get(task.state, task.state),
        "qty_done": task.qty_done,
        "progress_pct": progress,
        "last_report_date": iso_date(task.last_report_date),
        "eta_date": iso_date(task.eta_date),
        "alert_level": task.alert_level,
        "requirements": task.requirements,
        "unit_cost": _money_text(task.unit_cost),
        "open_urges": open_urges,
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


def history(order, limit=HISTORY_LIMIT):
    """Recent audit entries of the order, its tasks and its nodes, newest first."""
    task_ids = [str(t.id) for t in order.tasks]
    node_ids = [str(n.id) for n in order.nodes]
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
    """Everything a manager sees about one order (prices and costs included: staff only)."""
    tasks = list(order.tasks.order_by(Task.id))
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
        nodes=[node_view(n) for n in order.nodes.order_by(NodeInstance.seq)],
        history=history(order),
    )
    return view
