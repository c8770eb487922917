"""Manager and ERP API: orders (intake, import, list, read, change) and urges."""
from apiflask import APIBlueprint, Schema
from apiflask.fields import UUID, Boolean, File, List, Nested, String
from apiflask.validators import Length, OneOf, Range
from flask import g
from marshmallow import ValidationError, validates_schema

from app.admin.schemas import (
    ImportErrorEnvelope,
    ImportOut,
    NodeChanged,
    OrderCreatedOut,
    OrderOut,
    OrderPage,
    UrgeOut,
    UrgePage,
)
from app.domain.vocabulary import ORDER_STATES
from app.services import intake, node_reviews, order_import, order_queries, order_states, scorecard, spreadsheet, urges
from app.services.access import staff_order
from app.web.auth import api_auth, current_actor, staff_role
from app.web.fields import Amount, Date, Id, Integer, Number
from app.web.idempotency import idempotent
from app.web.paging import PageIn, paginate
from app.web.validation import FlatErrors

bp = APIBlueprint("admin_orders", __name__, tag="管理端 · 订单")

MAX_QTY = 10_000_000
WRITE_ROLES = ("manager",)


# --- schemas: intake ----------------------------------------------------------------------------

class TaskIn(Schema):
    process = String(required=True, validate=Length(1, 32), metadata={"description": "工序，如 冲压、焊接"})
    supplier_id = Id()
    supplier_code = String(validate=Length(1, 32), metadata={"description": "instead of supplier_id"})
    planned_qty = Integer(required=True, validate=Range(1, MAX_QTY))
    tolerance_pct = Number(load_default=0.0, validate=Range(0, 0.5),
                          metadata={"description": "share of planned_qty a supplier may report beyond plan (0.05 = 5 %)"})
    planned_start = Date(required=True)
    due_date = Date(required=True)
    requirements = String(allow_none=True, validate=Length(max=2000), metadata={"description": "工艺要求"})
    unit_cost = Amount(allow_none=True)


class OrderIn(FlatErrors):
    external_no = String(allow_none=True, validate=Length(1, 64),
                         metadata={"description": "the ERP's number: the same number always means the same order"})
    customer_id = Id()
    customer_code = String(validate=Length(1, 32), metadata={"description": "instead of customer_id"})
    product_code = String(allow_none=True, validate=Length(max=64))
    product_name = String(required=True, validate=Length(1, 128))
    quantity = Integer(required=True, validate=Range(1, MAX_QTY))
    unit = String(allow_none=True, validate=Length(1, 16), metadata={"description": "default 件"})
    planned_start = Date(required=True)
    due_date = Date(required=True)
    unit_price = Amount(allow_none=True)
    notes = String(allow_none=True, validate=Length(max=2000))
    confirm = Boolean(load_default=False, metadata={"description": "create as confirmed instead of draft"})
    tasks = List(Nested(TaskIn), required=True, validate=Length(1, 50),
                 metadata={"description": "one per process and supplier; dates inside the order's plan"})


class OrderPatch(FlatErrors):
    state = String(validate=OneOf(ORDER_STATES), metadata={"description": "target state; needs reason"})
    reason = String(validate=Length(1, 255), metadata={"description": "required with state; recorded with edits"})
    product_code = String(allow_none=True, validate=Length(max=64))
    product_name = String(validate=Length(1, 128))
    quantity = Integer(validate=Range(1, MAX_QTY))
    unit = String(validate=Length(1, 16))
    planned_start = Date()
    due_date = Date()
    unit_price = Amount(allow_none=True)
    notes = String(allow_none=True, validate=Length(max=2000))

    @validates_schema
    def something_to_change(self, data, **kwargs):
        if not set(data) - {"reason"}:
            raise ValidationError("请提供要修改的字段或目标状态")


class OrderQuery(PageIn):
    state = String(validate=OneOf(ORDER_STATES))
    customer_id = Id(strict=False)
    supplier_id = Id(strict=False, metadata={"description": "orders with a task at this supplier"})
    q = String(validate=Length(1, 64), metadata={"description": "part of order_no, external_no or product_name"})
    due_before = Date(metadata={"description": "due on or before"})
    due_after = Date(metadata={"description": "due on or after"})


class ImportIn(Schema):
    file = File(required=True, metadata={"description": "CSV (UTF-8, with or without BOM) or XLSX, at most 5 MB"})


class UrgeIn(Schema):
    message = String(allow_none=True, validate=Length(max=255), metadata={"description": "催单说明"})
    client_id = UUID(metadata={
        "description": "可选：调用方生成的 UUID；同一 client_id 重发只催一次、只通知一次（200 返回原结果）"})


def _not_blank(value):
    if not value.strip():
        raise ValidationError("不能为空白")


def _review_task_id():
    return Id(metadata={
        "description": "whose first article (the order's task); may be left out while only one awaits confirmation"})


class NodeConfirmIn(Schema):
    task_id = _review_task_id()
    note = String(validate=Length(max=255), metadata={"description": "recorded in the audit log"})


class NodeRejectIn(Schema):
    task_id = _review_task_id()
    reason = String(required=True, validate=[Length(1, 255), _not_blank],
                    metadata={"description": "退回原因：供应商在任务详情和微信消息中看到"})



def _staff():
    return g.get("staff")


# --- orders ------------------------------------------------------------------------------------------

@bp.post("/orders")
@bp.auth_required(api_auth)
@staff_role(*WRITE_ROLES, key_scope="orders")
@bp.input(OrderIn, arg_name="body")
@bp.output(OrderCreatedOut, status_code=201)
@bp.doc(responses={
    200: {"description": "this external_no was already created with the same content: the existing order, unchanged",
          "content": {"application/json": {"schema": OrderCreatedOut}}},
    403: "当前角色无权创建订单",
    404: "客户或供应商不存在",
    409: "external_no 已用于内容不同的订单（external_no_conflict，differs 列出不同之处）",
})
def create_order(body):
    """Create an order with its tasks and nodes (draft, or confirmed with `confirm: true`).

    Idempotent by `external_no`: the same number with the same content answers 200 with the
    existing order; with other content 409 `external_no_conflict`. Customer and suppliers by id
    or code; each task needs dates inside the order's plan. A task given to a supplier whose latest
    monthly scorecard grade is D is still created; the answer's `warnings` says so
    (`supplier_grade_d`)."""
    source = "manual" if _staff() else "api"
    order, created = intake.create_order(current_actor(), body, source=source, staff=_staff())
    detail = order_queries.order_detail(order)
    detail.warnings = scorecard.grade_warnings(detail.task_list)
    return detail, 201 if created else 200


@bp.post("/orders/import")
@bp.auth_required(api_auth)
@staff_role(*WRITE_ROLES, key_scope="orders")
@bp.input(ImportIn, location="files", arg_name="files")
@bp.output(ImportOut, status_code=201)
@bp.doc(responses={
    200: {"description": "every order in the file was already imported with the same content: nothing created",
          "content": {"application/json": {"schema": ImportOut}}},
    413: "文件超过 5 MB，或 Excel 解压后过大（样式表、共享字符串或工作表超限，疑似压缩炸弹）：file_too_large",
    422: {"description": "import_invalid (every bad row, nothing imported), import_unreadable or too_many_rows",
          "content": {"application/json": {"schema": ImportErrorEnvelope}}},
})
def import_orders(files):
    """Import orders from a CSV or XLSX file: all rows or none.

    One row per task; the order's columns repeat on each of its rows and must agree. Headers
    in Chinese or English (either per column), row 1 is the header:

    | 中文 | English | required | notes |
    |---|---|---|---|
    | 外部单号 | external_no | yes | groups rows into orders; re-importing the same content is skipped |
    | 客户编码 | customer_code | yes | |
    | 产品编码 | product_code | | selects the node template with the customer |
    | 产品名称 | product_name | yes | |
    | 订单数量 | quantity | yes | integer |
    | 单位 | unit | | default 件 |
    | 计划开工 | planned_start | yes | 2026-05-01 or 2026/5/1 or an Excel date |
    | 交期 | due_date | yes | |
    | 单价 | unit_price | | at most 2 decimals |
    | 备注 | notes | | |
    | 工序 | process | yes | task |
    | 供应商编码 | supplier_code | yes | task |
    | 计划数量 | planned_qty | yes | task, integer |
    | 允差 | tolerance_pct | | task, 0.05 or 5 % (at most 50 %) |
    | 工序开工 | task_planned_start | | task, default the order's planned_start |
    | 工序交期 | task_due_date | | task, default the order's due_date |
    | 工艺要求 | requirements | | task |
    | 单位成本 | unit_cost | | task |

    The file type is detected from its content (UTF-8 CSV with or without BOM, GB18030 CSV as
    Excel saves it, or XLSX). At most 5 MB and 5000 data rows; an XLSX that unpacks to more
    than 40 MB (styles 2 MB, shared strings 10 MB, a sheet 20 MB) is refused unread (413).
    外部单号, customer and supplier codes are compared regardless of case, as MySQL compares
    them: rows whose 外部单号 differ only in case are reported, not imported as two orders.
    Any bad row → 422 `import_invalid` with `errors: [{row, field, message}]` and nothing is
    imported. 201 when at least one order was created; 200 when the whole file had been imported
    before (`created: 0`, every order `skipped`). Tasks given to a supplier whose latest monthly
    scorecard grade is D are imported; `warnings` says so (`supplier_grade_d`)."""
    data = files["file"].stream.read(spreadsheet.MAX_IMPORT_BYTES + 1)
    result = order_import.import_orders(current_actor(), data, staff=_staff())
    result["warnings"] = scorecard.order_warnings([o.id for o in result["orders"]])
    return result, 201 if result["created"] else 200


@bp.get("/orders")
@bp.auth_required(api_auth)
@bp.input(OrderQuery, location="query", arg_name="args")
@bp.output(OrderPage)
def list_orders(args):
    """Orders, newest first, filtered by state, customer, supplier, text and due date."""
    filters = {k: args.get(k) for k in ("state", "customer_id", "supplier_id", "q", "due_before", "due_after")}
    return paginate(order_queries.orders_query(**filters), args)


@bp.get("/orders/<int:order_id>")
@bp.auth_required(api_auth)
@bp.output(OrderOut)
@bp.doc(responses={404: "订单不存在"})
def get_order(order_id):
    """One order with its tasks, nodes (state and colour) and recent change history."""
    return order_queries.order_detail(staff_order(order_id))


@bp.patch("/orders/<int:order_id>")
@bp.auth_required(api_auth)
@staff_role(*WRITE_ROLES, key_scope="orders")
@bp.input(OrderPatch, arg_name="body")
@bp.output(OrderOut)
@bp.doc(responses={
    403: "当前角色无权修改订单",
    404: "订单不存在",
    409: "illegal_transition（不允许的状态变更）、order_closed（已完成/已取消的订单不能修改）或 state_changed",
})
def update_order(order_id, body):
    """Change an order's state (with a reason) and/or its editable fields; every change is audited.

    States: draft → confirmed | cancelled; confirmed → in_production | on_hold | cancelled;
    in_production → completed | on_hold | cancelled; on_hold → the state it left | cancelled.
    Tasks follow the order; confirming marks the 'confirmed' node done."""
    return order_queries.order_detail(order_states.update_order(current_actor(), order_id, body))


# --- nodes the manager confirms ---------------------------------------------------------------------

NODE_REVIEW_ERRORS = {
    403: "只有跟单经理可以操作（forbidden），或该节点不由跟单确认（node_not_manager_owned）",
    404: "订单、节点或任务不存在",
    409: "首件尚未提交（first_article_missing）、已退回待重新提交（first_article_rejected）、"
         "已确认不能退回（first_article_confirmed）或订单已完成/已取消（order_closed）",
    422: "有多个任务的首件待确认，需要 task_id（task_required）或参数不正确",
}


@bp.post("/orders/<int:order_id>/nodes/<int:node_id>/confirm")
@bp.auth_required(api_auth)
@staff_role(*WRITE_ROLES)
@bp.input(NodeConfirmIn, arg_name="body")
@bp.output(NodeChanged)
@bp.doc(responses=NODE_REVIEW_ERRORS)
def confirm_node(order_id, node_id, body):
    """Confirm a task's first article (首件确认), or record the order confirmation (订单确认).

    First article: the task's part becomes done; the order's node is done once every task's
    first article is confirmed (then subscribed customers are told). Order confirmation: a draft
    order is confirmed (as PATCH state=confirmed), else the node is marked done. Repeating a
    confirmation changes nothing. Audited."""
    return node_reviews.confirm(current_actor(), order_id, node_id, task_id=body.get("task_id"),
                                note=(body.get("note") or "").strip() or None)


@bp.post("/orders/<int:order_id>/nodes/<int:node_id>/reject")
@bp.auth_required(api_auth)
@staff_role(*WRITE_ROLES)
@bp.input(NodeRejectIn, arg_name="body")
@bp.output(NodeChanged)
@bp.doc(responses=NODE_REVIEW_ERRORS)
def reject_node(order_id, node_id, body):
    """Reject a task's first article with a reason: its part is back in progress (yellow), the
    supplier sees the reason in the task detail, is sent a WeChat message and may submit again.
    Rejecting a rejected first article again changes nothing. Audited."""
    return node_reviews.reject(current_actor(), order_id, node_id, body["reason"].strip(), task_id=body.get("task_id"))


# --- urges ---------------------------------------------------------------------------------------------

@bp.post("/tasks/<int:task_id>/urges")
@bp.auth_required(api_auth)
@staff_role(*WRITE_ROLES, key_scope="orders")
@bp.input(UrgeIn, arg_name="body")
@idempotent("task.urge", target="{task_id}", optional=True)
@bp.output(UrgeOut, status_code=201)
@bp.doc(responses={403: "当前角色无权催单", 404: "任务不存在", 409: "任务不在生产中或暂停状态（task_not_active）"})
def urge_task(task_id, body):
    """Urge (催单) the supplier of a task in production or on hold: the supplier is told at once (subscribe
    message, else its group robot; `supplier_reached` says which, or `unreached`) and answers in the mini
    program; the answer is sent to the urging manager on WeCom."""
    via = "api" if g.get("api_key") is not None else "dashboard"
    return urges.urge_task(current_actor(), task_id, body.get("message"), staff=_staff(), via=via), 201


@bp.get("/tasks/<int:task_id>/urges")
@bp.auth_required(api_auth)
@bp.input(PageIn, location="query", arg_name="args")
@bp.output(UrgePage)
@bp.doc(responses={404: "任务不存在"})
def list_urges(task_id, args):
    """A task's urges and the supplier's answers, newest first."""
    return paginate(urges.urges_query(task_id), args)
