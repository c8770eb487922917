"""Order import from a CSV or XLSX file: all rows or none, every bad row reported by its row number.

One row per task; the order's columns repeat on each of its rows. Rows are grouped into orders by
external_no compared as MySQL compares it (intake.fold), so SQLite and MySQL installs agree.
A file costs a few statements per intake.CHUNK orders plus one audit entry per order, written last.
"""
import re
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

from peewee import IntegrityError

from app.domain.errors import Conflict, Invalid
from app.models import Customer, Supplier
from app.services import audit, intake
from app.services.order_content import content_hash, differences, money
from app.services.spreadsheet import blank, read_table

MAX_REPORTED_ERRORS = 1000


# --- cells ---------------------------------------------------------------------------------------

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
        return money(str(value).strip().replace(",", ""))
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


# --- rows → orders ----------------------------------------------------------------------------

def _same_number_message(spelling, other, where):
    return (f"外部单号「{spelling}」与{where}的「{other}」只有大小写（或全角、重音）不同，"
            "系统视为同一单号；请统一写法")


def _group(parsed, titles, errors):
    """Rows by external_no, checking that each order's own columns agree across its rows."""
    groups = {}
    for row_no, values, failed in parsed:
        external_no = values.get("external_no")
        if not external_no:
            continue  # already reported as a missing required cell
        group = groups.setdefault(intake.fold(external_no), {"rows": [], "first": values, "first_row": row_no,
                                                             "first_failed": failed})
        group["rows"].append((row_no, values))
        first = group["first"]
        if external_no != first["external_no"]:
            # Meant as another order or not, it cannot be one: say so, not how its columns differ.
            errors.append({"row": row_no, "field": titles["external_no"], "message": _same_number_message(
                external_no, first["external_no"], f"第 {group['first_row']} 行")})
            continue
        unreadable = failed | group["first_failed"]  # already reported; no echo as a mismatch
        for key, (_, _, _, order_level) in _SPEC.items():
            if (order_level and key in titles and key not in unreadable
                    and values.get(key) != first.get(key)):
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


def _check_group(group, titles, errors, parties, existing):
    """Semantic checks of one order; returns (content, digest, existing order or None) or None when bad."""
    data = _intake_data(group)
    customer, suppliers, problems = intake.check_intake(data, parties)
    rows = [row_no for row_no, _ in group["rows"]]
    for index, field, message in problems:
        key = _import_key(group, index, field)
        if key is None:
            continue
        for row_no in rows if index is None else [rows[index]]:
            errors.append({"row": row_no, "field": titles.get(key, _SPEC.get(key, (key,))[0]), "message": message})
    if problems:
        return None
    content = intake.normalise(data, customer, suppliers)
    digest = content_hash(content, False)
    before = existing.get(intake.fold(content["external_no"]))
    if before is not None and before.content_hash != digest:
        if before.external_no != content["external_no"]:
            message = _same_number_message(content["external_no"], before.external_no, f"已有订单 {before.order_no}")
        else:
            changed = differences(before, content)
            message = f"外部单号已导入为订单 {before.order_no}，但内容不同（{'、'.join(changed) or '内容'}）"
        errors.append({"row": rows[0], "field": titles["external_no"], "message": message})
        return None
    return content, digest, before


def _check_references(row_no, values, titles, errors, parties):
    """Unknown or inactive customer/supplier codes, reported on every row that names them."""
    for key, model in (("customer_code", Customer), ("supplier_code", Supplier)):
        code = values.get(key)
        if code is None:
            continue
        row, problem = parties.find(model, None, code)
        if problem is None and model is Supplier and not row.active:
            problem = f"供应商 {row.code} 已停用"
        if problem:
            errors.append({"row": row_no, "field": titles[key], "message": problem})


def _validate_import(rows):
    """Every problem of the file as {row, field, message}, and its orders as (content, digest, existing).

    Cells and references are checked on every row; the rules that need a whole order (dates
    inside the plan, an external_no imported before) on every order whose rows are clean.
    Customers, suppliers and earlier orders are fetched once for the whole file."""
    errors = []
    columns = _map_header(rows[0], errors)
    titles = {key: str(rows[0][index]).strip() for index, key in columns.items()}
    if errors:
        return errors, []
    parsed = []
    for row_no, row in enumerate(rows[1:], start=2):
        if not blank(row):
            values, failed = _parse_row(row_no, row, columns, titles, errors)
            parsed.append((row_no, values, failed))
    if not parsed:
        errors.append({"row": 2, "field": "file", "message": "文件没有数据行"})
    parties = (intake.Parties()
               .load(Customer, codes=[values.get("customer_code") for _, values, _ in parsed])
               .load(Supplier, codes=[values.get("supplier_code") for _, values, _ in parsed]))
    for row_no, values, _ in parsed:
        _check_references(row_no, values, titles, errors, parties)
    groups = _group(parsed, titles, errors)
    existing = intake.existing_orders(group["first"]["external_no"] for group in groups.values())
    bad_rows = {e["row"] for e in errors}
    checked = [_check_group(group, titles, errors, parties, existing) for group in groups.values()
               if not bad_rows.intersection(row_no for row_no, _ in group["rows"])]
    unique = list({(e["row"], e["field"], e["message"]): e for e in errors}.values())
    return unique, checked


def import_orders(actor, data, *, staff=None):
    """All or nothing: any bad row → Invalid listing every problem; else create what is new.

    Returns {"created", "skipped", "orders"}; an order already imported with the same content
    is skipped, so importing the same file twice creates nothing the second time."""
    rows = read_table(data)
    for attempt in (1, 2):
        errors, checked = _validate_import(rows)
        if errors:
            errors.sort(key=lambda e: e["row"])
            raise Invalid(
                "import_invalid", f"导入文件有 {len(errors)} 处错误，未导入任何数据，请修改后重新导入",
                field="file", extra={"errors": errors[:MAX_REPORTED_ERRORS], "error_count": len(errors)})
        new = [(content, digest) for content, digest, before in checked if before is None]
        steps = intake.node_steps(content for content, _ in new)
        try:
            with audit.transaction(actor) as log:
                created = intake.insert_orders(log, new, steps, source="import", staff=staff)
        except IntegrityError:
            # A concurrent import took one of these external_nos: check again, once.
            if attempt == 2:
                raise Conflict("import_conflict", "有其他导入正在写入相同的外部单号，请稍后重试")
            continue
        return {"created": len(created), "skipped": len(checked) - len(new), "orders": created}
