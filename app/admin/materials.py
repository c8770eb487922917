"""Manager API: materials — the material master and lots (with QR labels), issuing a scanned lot to a
task's supplier, what comes back, each task's bill of quantities and balance, and the trace
between batches and lots (app/services/materials.py; README "Materials")."""
from apiflask import APIBlueprint, Schema
from apiflask.fields import List, Nested, String
from apiflask.validators import Length, Range, Regexp
from flask import Response, current_app, g
from marshmallow import ValidationError, validates_schema

from app import labels
from app.admin.schemas import (
    BatchTraceOut,
    LotTraceOut,
    MaterialIssuePage,
    MaterialIssueReturned,
    MaterialIssueScanned,
    MaterialItemCreated,
    MaterialItemPage,
    MaterialLotOut,
    MaterialLotPage,
    TaskBalanceOut,
    TaskBalancePage,
)
from app.domain.errors import not_found
from app.models import Supplier
from app.services import materials
from app.web.auth import api_auth, current_actor, staff_role
from app.web.fields import Id, Number, Quantity
from app.web.idempotency import idempotent
from app.web.material_input import BatchLotsIn
from app.web.paging import PageIn, paginate

bp = APIBlueprint("admin_materials", __name__, tag="管理端 · 物料")

# The warehouse works as managers; QC and executives read. ERP keys with the "orders" scope may keep
# the material master and lots and read everything; issuing, returns and the bill are staff's.
WRITE_ROLES = ("manager",)
READ_ROLES = ("manager", "qc", "executive")

CODE = [Length(1, 64), Regexp(r"^[A-Za-z0-9][A-Za-z0-9_.\-/]*$", error="编码只能用字母、数字和 _ . - /")]
UNIT = String(required=True, validate=Length(1, 16), metadata={"description": "must be the item's unit, e.g. kg"})
NOTE = String(allow_none=True, validate=Length(max=255))
CLIENT_ID = String(validate=Length(8, 64), metadata={
    "description": "optional: a retry with the same client_id is answered with the first answer, recording nothing"})


def _staff():
    return g.get("staff")


class ItemIn(Schema):
    code = String(required=True, validate=CODE, metadata={"description": "物料编码"})
    name = String(required=True, validate=Length(1, 100))
    unit = String(required=True, validate=Length(1, 16), metadata={"description": "kg, m, 张, 件 …"})
    spec = String(allow_none=True, validate=Length(max=100))


class ItemQuery(PageIn):
    q = String(validate=Length(1, 64), metadata={"description": "part of the code or name"})


class LotIn(Schema):
    lot_no = String(required=True, validate=CODE, metadata={"description": "批次号"})
    item_id = Id(required=True)
    quantity = Quantity(required=True)
    note = NOTE


class LotQuery(PageIn):
    item_id = Id(strict=False)
    q = String(validate=Length(1, 64), metadata={"description": "part of the lot number"})


class IssueIn(Schema):
    lot_code = String(validate=Length(1, 300), metadata={
        "description": "what the scanner read from the lot's label (its code or whole URL), or the lot number"})
    lot_id = Id(metadata={"description": "instead of lot_code"})
    task_id = Id(required=True)
    qty = Quantity(required=True)
    unit = UNIT
    note = NOTE

    @validates_schema
    def one_lot(self, data, **kwargs):
        if ("lot_code" in data) == ("lot_id" in data):
            raise ValidationError("请指定物料批次：lot_code（扫码）或 lot_id 之一", field_name="lot_code")


class IssueQuery(PageIn):
    task_id = Id(strict=False)
    supplier_id = Id(strict=False)
    lot_id = Id(strict=False)
    item_id = Id(strict=False)


class ReturnIn(Schema):
    good_qty = Quantity(load_default=0, metadata={"description": "good material back (合格退料)"})
    scrap_qty = Quantity(load_default=0, metadata={"description": "scrap (废料)"})
    leftover_qty = Quantity(load_default=0, metadata={"description": "leftover (余料)"})
    unit = UNIT
    note = NOTE
    client_id = CLIENT_ID


class BillLineIn(Schema):
    item_id = Id(required=True)
    qty_per_unit = Quantity(required=True, metadata={"description": "how much of the item one unit of output uses"})
    tolerance_pct = Number(load_default=0.0, validate=Range(0, 1), metadata={
        "description": "over-consumption is flagged beyond this share of the planned use so far (0.02 = 2 %)"})


class BillIn(Schema):
    lines = List(Nested(BillLineIn), required=True, validate=Length(max=200), metadata={
        "description": "the whole bill: replaces the task's earlier one ([] clears it)"})


ISSUE_ERRORS = {
    200: {"description": "该批次已发给该任务（同一数量）：返回原发料记录，不重复记录",
          "content": {"application/json": {"schema": {"$ref": "#/components/schemas/MaterialIssueScanned"}}}},
    404: "物料批次不存在（unknown_lot：标签无效或批次未登记）或任务不存在",
    409: "该批次已以其他数量发给该任务（lot_already_issued），或任务已完成/取消（task_closed）",
    422: "单位不符（unit_mismatch）、数量为负（negative_quantity）或为 0、超过三位小数、超过批次可发数量（lot_insufficient）",
}


# --- master data ---------------------------------------------------------------------------------

@bp.post("/material-items")
@bp.auth_required(api_auth)
@staff_role(*WRITE_ROLES, key_scope="orders")
@bp.input(ItemIn, arg_name="body")
@bp.output(MaterialItemCreated, status_code=201)
@bp.doc(responses={409: "物料编码已存在（material_code_taken）"})
def create_item(body):
    """Add a material to the master (code, name, unit). Audited."""
    return materials.create_item(current_actor(), body["code"], body["name"].strip(), body["unit"].strip(),
                                 body.get("spec")), 201


@bp.get("/material-items")
@bp.auth_required(api_auth)
@staff_role(*READ_ROLES, key_scope="orders")
@bp.input(ItemQuery, location="query", arg_name="args")
@bp.output(MaterialItemPage)
def list_items(args):
    """The material master, by code."""
    return paginate(materials.items_query(args.get("q")), args)


@bp.post("/material-lots")
@bp.auth_required(api_auth)
@staff_role(*WRITE_ROLES, key_scope="orders")
@bp.input(LotIn, arg_name="body")
@bp.output(MaterialLotOut, status_code=201)
@bp.doc(responses={404: "物料不存在", 409: "批次号已存在（lot_no_taken）",
                   422: "数量为负（negative_quantity）、为 0 或超过三位小数"})
def create_lot(body):
    """Register a received lot of a material; it gets its own QR label (label_url). Audited."""
    return materials.create_lot(current_actor(), _staff(), body["lot_no"], body["item_id"], body["quantity"],
                                body.get("note")), 201


@bp.get("/material-lots")
@bp.auth_required(api_auth)
@staff_role(*READ_ROLES, key_scope="orders")
@bp.input(LotQuery, location="query", arg_name="args")
@bp.output(MaterialLotPage)
def list_lots(args):
    """Material lots, newest first, with what each has issued and still holds."""
    return paginate(materials.lots_query(args.get("item_id"), args.get("q")), args, load=materials.with_stock)


@bp.get("/material-lots/<int:lot_id>")
@bp.auth_required(api_auth)
@staff_role(*READ_ROLES, key_scope="orders")
@bp.output(LotTraceOut)
@bp.doc(responses={404: "物料批次不存在（unknown_lot）"})
def lot_trace(lot_id):
    """A lot and where it went (forward trace): its issues to tasks and suppliers, the batches that
    used it (declared, or presumed: undeclared batches of the tasks it was issued to) and their orders."""
    return materials.lot_trace(lot_id)


@bp.get("/material-lots/<int:lot_id>/label.png")
@bp.auth_required(api_auth)
@staff_role(*READ_ROLES, key_scope="orders")
@bp.doc(responses={200: {"description": "the lot's QR label", "content": {"image/png": {}}},
                   404: "物料批次不存在（unknown_lot）"})
def lot_label(lot_id):
    """The lot's QR label (PNG), made like a task's; scanning it issues the lot (POST /material-issues)."""
    lot = materials.lot_detail(lot_id)
    png = labels.lot_png(lot, current_app.config["PUBLIC_BASE_URL"], font_path=current_app.config["LABEL_FONT_PATH"])
    return Response(png, mimetype="image/png", headers={"Content-Disposition": f'inline; filename="lot-{lot.id}.png"'})


# --- issues and returns ----------------------------------------------------------------------------

@bp.post("/material-issues")
@bp.auth_required(api_auth)
@staff_role(*WRITE_ROLES)
@bp.input(IssueIn, arg_name="body")
@bp.output(MaterialIssueScanned, status_code=201, description="发料已记录")
@bp.doc(responses=ISSUE_ERRORS)
def issue(body):
    """Issue a scanned lot to a task's supplier. One issue per lot and task: the same scan again
    (same quantity) answers 200 with the existing issue and `already_issued`, recording nothing;
    another quantity is refused (409 lot_already_issued). Audited."""
    row, created = materials.issue(current_actor(), _staff(), task_id=body["task_id"], qty=body["qty"],
                                   unit=body["unit"], lot_id=body.get("lot_id"), lot_code=body.get("lot_code"),
                                   note=body.get("note"))
    row.already_issued = not created
    return row, 201 if created else 200


@bp.get("/material-issues")
@bp.auth_required(api_auth)
@staff_role(*READ_ROLES, key_scope="orders")
@bp.input(IssueQuery, location="query", arg_name="args")
@bp.output(MaterialIssuePage)
def list_issues(args):
    """Material issues, newest first, with what came back; filtered by task, supplier, lot and item."""
    filters = {k: args.get(k) for k in ("task_id", "supplier_id", "lot_id", "item_id")}
    return paginate(materials.issues_query(**filters), args, load=materials.with_returns)


@bp.post("/material-issues/<int:issue_id>/returns")
@bp.auth_required(api_auth)
@staff_role(*WRITE_ROLES)
@bp.input(ReturnIn, arg_name="body")
@idempotent("material.return", target="{issue_id}", optional=True)
@bp.output(MaterialIssueReturned, status_code=201, description="退回已记录；返回该发料记录")
@bp.doc(responses={404: "发料记录不存在",
                   422: "退回超过发料（return_exceeds_issue）、单位不符（unit_mismatch）、数量为负（negative_quantity）、"
                        "全为 0（empty_return）或超过三位小数"})
def record_return(issue_id, body):
    """Material back from the supplier against an issue: good, scrap and leftover (each ≥ 0, not all
    0, in the issue's unit). Together they never exceed what was issued. Audited."""
    return materials.record_return(current_actor(), _staff(), issue_id, unit=body["unit"],
                                   good_qty=body["good_qty"], scrap_qty=body["scrap_qty"],
                                   leftover_qty=body["leftover_qty"], note=body.get("note")), 201


# --- bill of quantities and balance ----------------------------------------------------------------

@bp.put("/tasks/<int:task_id>/material-bill")
@bp.auth_required(api_auth)
@staff_role(*WRITE_ROLES)
@bp.input(BillIn, arg_name="body")
@bp.output(TaskBalanceOut)
@bp.doc(responses={404: "任务或物料不存在", 422: "同一物料重复（duplicate_item）、单位用量为负或为 0"})
def set_bill(task_id, body):
    """Set the task's bill of quantities (planned use per unit of output, per item), replacing the
    earlier one; answers the task's material balance. Audited."""
    return materials.set_bill(current_actor(), task_id, body["lines"])


@bp.get("/tasks/<int:task_id>/materials")
@bp.auth_required(api_auth)
@staff_role(*READ_ROLES, key_scope="orders")
@bp.output(TaskBalanceOut)
@bp.doc(responses={404: "任务不存在"})
def task_materials(task_id):
    """The task's material balance per item (issued − consumed by the bill − returned − scrapped),
    with the shortage and over-consumption flags, and its issues."""
    return materials.task_balance(task_id)


@bp.get("/suppliers/<int:supplier_id>/materials")
@bp.auth_required(api_auth)
@staff_role(*READ_ROLES, key_scope="orders")
@bp.input(PageIn, location="query", arg_name="args")
@bp.output(TaskBalancePage)
@bp.doc(responses={404: "供应商不存在"})
def supplier_materials(supplier_id, args):
    """A supplier's material balance per task (tasks with material issued or a bill: open ones first)."""
    if Supplier.get_or_none(Supplier.id == supplier_id) is None:
        raise not_found("供应商")
    return paginate(materials.supplier_tasks_with_materials(supplier_id), args, load=materials.balances)


# --- trace ---------------------------------------------------------------------------------------

@bp.put("/batches/<int:batch_id>/materials")
@bp.auth_required(api_auth)
@staff_role(*WRITE_ROLES)
@bp.input(BatchLotsIn, arg_name="body")
@bp.output(BatchTraceOut)
@bp.doc(responses={404: "批次或物料批次不存在（unknown_lot）",
                   422: "物料批次未发给该任务（lot_not_issued_to_task）、用量超过发料（trace_exceeds_issue）、"
                        "重复（duplicate_lot）或数量不正确"})
def declare_batch_lots(batch_id, body):
    """Declare the material lots a batch used, with quantities (replacing an earlier declaration).
    Only lots issued to the batch's task. Audited."""
    batch = materials.batch_for(batch_id)
    return materials.declare_batch_lots(current_actor(), batch, body["lots"], body.get("note"))


@bp.get("/batches/<int:batch_id>/trace")
@bp.auth_required(api_auth)
@staff_role(*READ_ROLES, key_scope="orders")
@bp.output(BatchTraceOut)
@bp.doc(responses={404: "批次不存在"})
def batch_trace(batch_id):
    """Backward trace: the lots a batch used. Without a declaration (`declared` false) the lots
    issued to its task are shown, without quantities."""
    return materials.batch_trace(materials.batch_for(batch_id))
