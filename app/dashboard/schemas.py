"""What the dashboard's pages take: query strings and the buttons' form posts (one schema per shape)."""
from apiflask import Schema
from apiflask.fields import String
from apiflask.validators import Length, OneOf, Range
from marshmallow import ValidationError

from app.domain.vocabulary import DISPOSITIONS, ORDER_STATES
from app.web import fields
from app.web.fields import Date, Id

ORDERS_PER_PAGE = 30
MAX_QTY = 10_000_000  # as the API's receipts (app/admin/quality.py)


def _not_blank(value):
    if not value.strip():
        raise ValidationError("不能为空白")


class NextQuery(Schema):
    next = String(validate=Length(max=500), metadata={"description": "the dashboard page to open after logging in"})


class CsrfForm(Schema):
    csrf_token = String(required=True, validate=Length(1, 100), metadata={"description": "the page's form token"})
    next = String(validate=Length(max=500), metadata={"description": "the dashboard page to return to"})


class LoginForm(CsrfForm):
    username = String(required=True, validate=Length(1, 64))
    password = String(required=True, validate=Length(1, 128))


class AckForm(CsrfForm):
    note = String(validate=Length(max=500))


class ResolveForm(CsrfForm):
    note = String(required=True, validate=[Length(1, 500), _not_blank], metadata={"description": "what was done"})


class UrgeForm(CsrfForm):
    message = String(validate=Length(max=255), metadata={"description": "催单说明"})


class ConfirmForm(CsrfForm):
    task_id = Id(strict=False)
    note = String(validate=Length(max=255))


class DispositionForm(CsrfForm):
    disposition = String(required=True, validate=OneOf(list(DISPOSITIONS)),
                         metadata={"description": "；".join(f"{k} = {v}" for k, v in DISPOSITIONS.items())})
    reason = String(required=True, validate=[Length(1, 255), _not_blank], metadata={"description": "处置理由（审计）"})


class ReleaseForm(CsrfForm):
    reason = String(required=True, validate=[Length(1, 255), _not_blank], metadata={"description": "放行理由（审计）"})


class ReceiptForm(CsrfForm):
    qty = fields.Integer(strict=False, required=True, validate=Range(-MAX_QTY, MAX_QTY),
                         metadata={"description": "本次收到的数量（> 0）"})
    qty_rejected = fields.Integer(strict=False, load_default=0, validate=Range(-MAX_QTY, MAX_QTY),
                                  metadata={"description": "其中拒收的数量（默认 0）"})
    note = String(validate=Length(max=255))


class GanttPageQuery(Schema):
    group = String(load_default="order", validate=OneOf(("order", "supplier")))
    order_id = Id(strict=False)
    supplier_id = Id(strict=False)


class SupplierPageQuery(Schema):
    period = String(load_default="month", validate=OneOf(("week", "month")),
                    metadata={"description": "the scorecard's period: week (ISO week) | month"})


class OrderListQuery(Schema):
    """The order list's filters (the page's form leaves out the fields left empty: dashboard.js)."""

    page = fields.Integer(strict=False, load_default=1, validate=Range(1, 100_000))
    state = String(validate=OneOf(ORDER_STATES))
    customer_id = Id(strict=False)
    supplier_id = Id(strict=False)
    q = String(validate=Length(1, 64))
    due_before = Date()
    due_after = Date()
