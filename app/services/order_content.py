"""What an order's content is: cleaned text, money, and the hash that makes intake idempotent.

Intake hashes the normalised content into Order.content_hash, so a retry with the same content
returns the existing order and a repeat with other content is refused instead of silently
merged. An edit re-hashes the order, so the ERP sending the edited content is a retry too.
"""
import hashlib
from decimal import Decimal

from app.models import Task
from app.services import audit

MAX_MONEY = Decimal("9999999999.99")
FIELD_NAMES = {
    "external_no": "外部单号", "customer_id": "客户", "product_code": "产品编码", "product_name": "产品名称",
    "quantity": "订单数量", "unit": "单位", "planned_start": "计划开工", "due_date": "交期",
    "unit_price": "单价", "notes": "备注", "tasks": "工序任务",
}


def clean(text):
    """Stripped text, or None for missing/blank."""
    if text is None:
        return None
    text = str(text).strip()
    return text or None


def money(value):
    """Decimal with at most two places, or None; raises ValueError (or InvalidOperation) with the reason."""
    if value is None or value == "":
        return None
    amount = Decimal(str(value))
    if not amount.is_finite() or amount < 0 or amount > MAX_MONEY:
        raise ValueError("金额必须在 0 到 9999999999.99 之间")
    if amount != amount.quantize(Decimal("0.01")):
        raise ValueError("金额最多两位小数")
    return amount.quantize(Decimal("0.01"))


def money_text(value):
    """Money as text with two places (SQLite hands back 12.5 for a stored 12.50)."""
    return None if value is None else str(Decimal(value).quantize(Decimal("0.01")))


def content_hash(content, confirm):
    return hashlib.sha256(audit.canonical({**content, "confirm": bool(confirm)}).encode("utf-8")).hexdigest()


def stored_content(order, tasks):
    """The order as it stands, in the shape of intake.normalise: to say what a conflicting
    repeat changes, and to re-hash it after an edit."""
    return {
        "external_no": order.external_no, "customer_id": order.customer_id, "product_code": order.product_code,
        "product_name": order.product_name, "quantity": order.quantity, "unit": order.unit,
        "planned_start": order.planned_start.isoformat(), "due_date": order.due_date.isoformat(),
        "unit_price": money_text(order.unit_price), "notes": order.notes,
        "tasks": [
            {"process": t.process, "supplier_id": t.supplier_id, "planned_qty": t.planned_qty,
             "tolerance_pct": round(t.tolerance_pct, 4), "planned_start": t.planned_start.isoformat(),
             "due_date": t.due_date.isoformat(), "requirements": t.requirements, "unit_cost": money_text(t.unit_cost)}
            for t in tasks
        ],
    }


def differences(order, content):
    """Chinese names of the fields where `content` differs from the stored order."""
    stored = stored_content(order, order.tasks.order_by(Task.id))
    return [FIELD_NAMES[k] for k in FIELD_NAMES if stored.get(k) != content.get(k)]
