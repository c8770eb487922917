"""Staff API: the quality loop — inspection templates, batches (receipts, labels), QC inspections,
QC's photos, nonconformances, dispositions and releases, and a supplier's quality figures.

QC (role qc; admin always) owns templates, inspections, dispositions and releases; managers and
QC receive goods; managers, QC and executives read. ERP keys are not let in (staff only).
"""
from datetime import timedelta

from apiflask import APIBlueprint, Schema
from apiflask.fields import UUID, Boolean, File, List, Nested, String
from apiflask.validators import Length, OneOf, Range
from flask import Response, current_app, g
from marshmallow import ValidationError, validates_schema

from app import labels
from app.admin.schemas import (
    BatchDetail,
    BatchPage,
    InspectionDetail,
    InspectionPage,
    InspectionRecorded,
    InspectionTemplateChanged,
    InspectionTemplatePage,
    NonconformanceChanged,
    NonconformancePage,
    QcPhotoUploaded,
    QualityFiguresOut,
)
from app.domain.errors import not_found
from app.domain.vocabulary import (
    BATCH_STATUSES,
    CHECK_TYPES,
    DISPOSITIONS,
    INSPECTION_KINDS,
    INSPECTION_RESULTS,
    INSPECTION_SOURCES,
    QC_ROLES,
)
from app.models import Supplier
from app.services import images, photos, quality, quality_figures
from app.services.access import staff_task
from app.web.auth import api_auth, current_actor, staff_role
from app.web.fields import Date, Id, Integer, Number
from app.web.idempotency import idempotent
from app.web.inspection_input import InspectionBodyIn
from app.web.paging import PageIn, paginate

bp = APIBlueprint("admin_quality", __name__, tag="管理端 · 质量")

READ_ROLES = ("manager", "qc", "executive")
RECEIVE_ROLES = ("manager", "qc")
MAX_QTY = 10_000_000
MAX_PHOTOS = 9
MAX_PERIOD_DAYS = 366


def _not_blank(value):
    if not value.strip():
        raise ValidationError("不能为空白")


def _photo_ids(description="POST /api/v1/tasks/<task_id>/photos 得到的照片 id"):
    return List(Id(), validate=Length(max=MAX_PHOTOS), metadata={"description": f"{description}，最多 {MAX_PHOTOS} 张"})


# --- schemas: input ---------------------------------------------------------------------------------

class ItemIn(Schema):
    name = String(required=True, validate=[Length(1, 64), _not_blank])
    check_type = String(required=True, validate=OneOf(list(CHECK_TYPES)),
                        metadata={"description": "pass_fail（合格/不合格）| numeric（数值，需下限或上限）"})
    min_value = Number(allow_none=True, validate=Range(-9_999_999_999, 9_999_999_999),
                       metadata={"description": "numeric: 下限（含）"})
    max_value = Number(allow_none=True, validate=Range(-9_999_999_999, 9_999_999_999),
                       metadata={"description": "numeric: 上限（含）"})
    unit = String(allow_none=True, validate=Length(max=16), metadata={"description": "numeric: 单位，如 mm"})
    photo_required = Boolean(load_default=False, metadata={"description": "检验时必须拍照"})


class TemplateIn(Schema):
    name = String(required=True, validate=[Length(1, 64), _not_blank])
    kind = String(allow_none=True, validate=OneOf(list(INSPECTION_KINDS)),
                  metadata={"description": "检验类型；不填 = 适用于所有类型"})
    product_code = String(allow_none=True, validate=Length(max=64), metadata={"description": "不填 = 所有产品"})
    process = String(allow_none=True, validate=Length(max=32), metadata={"description": "工序；不填 = 所有工序"})
    items = List(Nested(ItemIn), required=True, validate=Length(1, 50))


class TemplateQuery(PageIn):
    kind = String(validate=OneOf(list(INSPECTION_KINDS)))
    product_code = String(validate=Length(1, 64))
    process = String(validate=Length(1, 32))
    include_retired = Boolean(load_default=False, metadata={"description": "also retired and replaced versions"})


class InspectionIn(InspectionBodyIn):
    client_id = UUID(metadata={"description": "可选：同一 client_id 重发只记录一次（200 返回原结果）"})
    nc_owner_id = Id(allow_none=True, metadata={"description": "if it fails: the nonconformance's owner (default: you)"})
    nc_due_date = Date(allow_none=True, metadata={"description": "if it fails: when the NC is due (default: in 3 days)"})
    nc_description = String(allow_none=True, validate=Length(max=1000),
                            metadata={"description": "if it fails: the NC's description (default: the failed items)"})
    nc_photo_ids = _photo_ids("if it fails: photos for the nonconformance")


class InspectionQuery(PageIn):
    supplier_id = Id(strict=False)
    task_id = Id(strict=False)
    batch_id = Id(strict=False)
    result = String(validate=OneOf(list(INSPECTION_RESULTS)))
    source = String(validate=OneOf(list(INSPECTION_SOURCES)))
    kind = String(validate=OneOf(list(INSPECTION_KINDS)))


class ReceiptIn(Schema):
    qty = Integer(required=True, validate=Range(-MAX_QTY, MAX_QTY), metadata={"description": "本次收到的数量（> 0）"})
    qty_rejected = Integer(load_default=0, validate=Range(-MAX_QTY, MAX_QTY),
                           metadata={"description": "其中拒收的数量（默认 0）"})
    note = String(allow_none=True, validate=Length(max=255))
    client_id = UUID(metadata={"description": "可选：同一 client_id 重发只收一次（200 返回原结果）"})


class DispositionIn(Schema):
    disposition = String(required=True, validate=OneOf(list(DISPOSITIONS)),
                         metadata={"description": "；".join(f"{k} = {v}" for k, v in DISPOSITIONS.items())})
    reason = String(required=True, validate=[Length(1, 255), _not_blank], metadata={"description": "处置理由（审计）"})


class ReleaseIn(Schema):
    reason = String(required=True, validate=[Length(1, 255), _not_blank], metadata={"description": "放行理由（审计）"})


class NcQuery(PageIn):
    status = String(validate=OneOf(["open", "closed"]))
    supplier_id = Id(strict=False)
    task_id = Id(strict=False)
    batch_id = Id(strict=False)


class NcPatch(Schema):
    owner_id = Id(metadata={"description": "责任人（员工 id）"})
    due_date = Date()
    description = String(validate=[Length(1, 1000), _not_blank])
    photo_ids = _photo_ids()
    reason = String(validate=Length(max=255), metadata={"description": "recorded in the audit log"})

    @validates_schema
    def something_to_change(self, data, **kwargs):
        if not set(data) - {"reason"}:
            raise ValidationError("请提供要修改的字段")


class BatchQuery(PageIn):
    status = String(validate=OneOf(list(BATCH_STATUSES)))


class PhotoIn(Schema):
    file = File(required=True, metadata={"description": "a JPEG, PNG or WebP photo, at most 10 MB"})
    purpose = String(load_default="inspection", validate=OneOf(["inspection", "nonconformance"]))


class FiguresQuery(Schema):
    start = Date(required=True, data_key="from", metadata={"description": "first China date of the period"})
    end = Date(required=True, data_key="to", metadata={"description": "last China date of the period (included)"})

    @validates_schema
    def ordered(self, data, **kwargs):
        if "start" in data and "end" in data:
            if data["end"] < data["start"]:
                raise ValidationError("to 不能早于 from")
            if data["end"] - data["start"] > timedelta(days=MAX_PERIOD_DAYS):
                raise ValidationError(f"期间最长 {MAX_PERIOD_DAYS} 天")


# --- templates ----------------------------------------------------------------------------------------

TEMPLATE_ERRORS = {403: "当前角色无权修改检验模板（质检）",
                   422: "数值项目缺少上下限（limits_required）、上下限颠倒（limits_reversed）、"
                        "合格/不合格项目设了上下限（limits_not_numeric）、项目重复（duplicate_item）或参数不正确"}


@bp.get("/inspection-templates")
@bp.auth_required(api_auth)
@staff_role(*READ_ROLES)
@bp.input(TemplateQuery, location="query", arg_name="args")
@bp.output(InspectionTemplatePage)
def list_templates(args):
    """Inspection templates (current versions; `include_retired` for every version), by family, newest version first."""
    query = quality.templates_query(kind=args.get("kind"), product_code=args.get("product_code"),
                                    process=args.get("process"), include_retired=args["include_retired"])
    return paginate(query, args, load=quality.with_items)


@bp.post("/inspection-templates")
@bp.auth_required(api_auth)
@staff_role(*QC_ROLES)
@bp.input(TemplateIn, arg_name="body")
@bp.output(InspectionTemplateChanged, status_code=201)
@bp.doc(responses=TEMPLATE_ERRORS)
def create_template(body):
    """Create an inspection template (version 1): check items of type pass/fail or numeric (with
    limits and unit), each optionally requiring a photo; for a product and/or process and/or kind
    (left out = any). QC. Audited."""
    return quality.create_template(current_actor(), g.staff, body)


@bp.get("/inspection-templates/<int:template_id>")
@bp.auth_required(api_auth)
@staff_role(*READ_ROLES)
@bp.output(InspectionTemplateChanged)
@bp.doc(responses={404: "检验模板不存在"})
def get_template(template_id):
    """One template version (also a retired one: old inspections point at it)."""
    return quality.get_template(template_id)


@bp.put("/inspection-templates/<int:template_id>")
@bp.auth_required(api_auth)
@staff_role(*QC_ROLES)
@bp.input(TemplateIn, arg_name="body")
@bp.output(InspectionTemplateChanged, status_code=201, description="the new version")
@bp.doc(responses={**TEMPLATE_ERRORS, 404: "检验模板不存在",
                   409: "不是当前版本（template_outdated：已停用或已有新版本）"})
def revise_template(template_id, body):
    """Edit a template: creates its next version with these fields and items, and retires the
    edited one; inspections keep the version they used. QC. Audited."""
    return quality.revise_template(current_actor(), g.staff, template_id, body)


@bp.delete("/inspection-templates/<int:template_id>")
@bp.auth_required(api_auth)
@staff_role(*QC_ROLES)
@bp.output(InspectionTemplateChanged)
@bp.doc(responses={403: "当前角色无权修改检验模板（质检）", 404: "检验模板不存在"})
def retire_template(template_id):
    """Retire a template version: no new inspection uses it (nothing is deleted). Repeatable. QC. Audited."""
    return quality.retire_template(current_actor(), template_id)


# --- batches ------------------------------------------------------------------------------------------

@bp.get("/tasks/<int:task_id>/batches")
@bp.auth_required(api_auth)
@staff_role(*READ_ROLES)
@bp.input(BatchQuery, location="query", arg_name="args")
@bp.output(BatchPage)
@bp.doc(responses={404: "任务不存在"})
def list_batches(task_id, args):
    """The task's batches, oldest first, with their quantities and quality status."""
    staff_task(task_id)
    return paginate(quality.batches_query(task_id, args.get("status")), args)


@bp.get("/batches/<int:batch_id>")
@bp.auth_required(api_auth)
@staff_role(*READ_ROLES)
@bp.output(BatchDetail)
@bp.doc(responses={404: "批次不存在"})
def get_batch(batch_id):
    """One batch: quantities, status, its inspections (QC and self-checks), nonconformances, shipments and receipts."""
    return quality.load_batch(quality.staff_batch(batch_id).id)


@bp.get("/batches/<int:batch_id>/label.png")
@bp.auth_required(api_auth)
@staff_role(*READ_ROLES)
@bp.doc(responses={200: {"description": "the batch's QR label", "content": {"image/png": {}}}, 404: "批次不存在"})
def batch_label(batch_id):
    """The batch's QR label (PNG), drawn like a task's. The QR opens the batch in the mini program
    (GET /mp/v1/batches/scan/<code>; batch codes start with "B.")."""
    batch = quality.load_batch(quality.staff_batch(batch_id).id)
    png = labels.batch_png(batch, current_app.config["PUBLIC_BASE_URL"], font_path=current_app.config["LABEL_FONT_PATH"])
    return Response(png, mimetype="image/png", headers={"Content-Disposition": f'inline; filename="{batch.batch_no}.png"'})


@bp.post("/batches/<int:batch_id>/receipts")
@bp.auth_required(api_auth)
@staff_role(*RECEIVE_ROLES)
@bp.input(ReceiptIn, arg_name="body")
@idempotent("batch.receive", target="{batch_id}", optional=True)
@bp.output(BatchDetail)
@bp.doc(responses={404: "批次不存在", 409: "批次已冻结（batch_frozen）或已退货/报废（batch_closed）",
                   422: "数量不为正（invalid_quantity）、超过已发未收（over_shipped）、拒收多于收货（over_received）"})
def receive(batch_id, body):
    """Receive (part of) what the supplier shipped: partial receipts are normal and never close the
    task. A frozen batch is refused. Managers and QC. Audited."""
    batch = quality.staff_batch(batch_id)
    return quality.receive(current_actor(), g.staff, batch, body["qty"], body["qty_rejected"], body.get("note"))


@bp.post("/batches/<int:batch_id>/inspections")
@bp.auth_required(api_auth)
@staff_role(*QC_ROLES)
@bp.input(InspectionIn, arg_name="body")
@idempotent("inspection.qc", target="{batch_id}", optional=True)
@bp.output(InspectionRecorded, status_code=201)
@bp.doc(responses={403: "当前角色无权检验（质检）", 404: "批次不存在",
                   409: "批次已冻结待处置（batch_frozen）、已退货/报废（batch_closed）或任务已取消",
                   422: "读数类型不对（wrong_reading_type）、未知检验项目（unknown_check_item）、缺少读数（reading_missing）、"
                        "缺少必拍照片（photo_required）、照片无效（invalid_photo）、没有适用模板（template_missing）、"
                        "抽样超过批次（sample_too_large）、缺陷多于抽样（defects_exceed_sample）或参数不正确"})
def inspect(batch_id, body):
    """Record a QC inspection of a batch. The result follows from the readings; a failure freezes
    the batch, opens a nonconformance (owner, due date, description, photos), raises a qc_fail
    alert and sends QC one WeCom message; a passing re-inspection of a batch sent to rework
    releases it. Nothing is stored when the input is refused. QC. Audited."""
    batch = quality.staff_batch(batch_id)
    return quality.inspect(current_actor(), batch, body, staff=g.staff)


@bp.post("/batches/<int:batch_id>/disposition")
@bp.auth_required(api_auth)
@staff_role(*QC_ROLES)
@bp.input(DispositionIn, arg_name="body")
@bp.output(BatchDetail)
@bp.doc(responses={403: "当前角色无权处置（质检）", 404: "批次不存在", 409: "批次未冻结（batch_not_frozen）"})
def dispose(batch_id, body):
    """Decide a frozen batch: rework (a passing re-inspection then releases it), concession (then
    release it), return or scrap (the batch is closed; what was received counts as rejected). QC.
    Audited with the reason."""
    batch = quality.staff_batch(batch_id)
    return quality.dispose(current_actor(), g.staff, batch, body["disposition"], body["reason"].strip())


@bp.post("/batches/<int:batch_id>/release")
@bp.auth_required(api_auth)
@staff_role(*QC_ROLES)
@bp.input(ReleaseIn, arg_name="body")
@bp.output(BatchDetail)
@bp.doc(responses={403: "当前角色无权放行（质检）", 404: "批次不存在",
                   409: "批次未冻结（batch_not_frozen）、未处置（disposition_required）或返工待复检（reinspection_required）"})
def release(batch_id, body):
    """Release a frozen batch accepted by concession: it may ship and be received again; its
    nonconformance closes. QC. Audited with the reason."""
    batch = quality.staff_batch(batch_id)
    return quality.release(current_actor(), g.staff, batch, body["reason"].strip())


# --- inspections --------------------------------------------------------------------------------------

@bp.get("/inspections")
@bp.auth_required(api_auth)
@staff_role(*READ_ROLES)
@bp.input(InspectionQuery, location="query", arg_name="args")
@bp.output(InspectionPage)
def list_inspections(args):
    """Inspections, newest first, filtered by supplier, task, batch, result, source and kind."""
    filters = {k: args.get(k) for k in ("supplier_id", "task_id", "batch_id", "result", "source", "kind")}
    return paginate(quality.inspections_query(**filters), args, load=quality.load_inspections)


@bp.get("/inspections/<int:inspection_id>")
@bp.auth_required(api_auth)
@staff_role(*READ_ROLES)
@bp.output(InspectionDetail)
@bp.doc(responses={404: "检验记录不存在"})
def get_inspection(inspection_id):
    """One inspection with its readings and photos, and the template version it used."""
    return quality.get_inspection(inspection_id)


@bp.post("/tasks/<int:task_id>/photos")
@bp.auth_required(api_auth)
@staff_role(*QC_ROLES)
@bp.input(PhotoIn, location="files", arg_name="body")
@bp.output(QcPhotoUploaded, status_code=201)
@bp.doc(responses={200: {"description": "the same picture was uploaded before and not used yet: that photo",
                         "content": {"application/json": {"schema": {"$ref": "#/components/schemas/QcPhotoUploaded"}}}},
                   404: "任务不存在", 413: "照片过大（file_too_large）",
                   422: "不是图片（not_an_image）、格式不支持或像素过多"})
def upload_photo(task_id, body):
    """QC's photo of the task's goods (for an inspection, a reading or a nonconformance), stored
    like a supplier's under the task's supplier. Attach it with photo_ids. QC."""
    task = staff_task(task_id)
    data = body["file"].stream.read(images.MAX_BYTES + 1)
    photo, created = photos.staff_upload(g.staff, task.supplier_id, data, body["purpose"])
    return photo if created else (photo, 200)


# --- nonconformances ----------------------------------------------------------------------------------

@bp.get("/nonconformances")
@bp.auth_required(api_auth)
@staff_role(*READ_ROLES)
@bp.input(NcQuery, location="query", arg_name="args")
@bp.output(NonconformancePage)
def list_ncs(args):
    """Nonconformances: open before closed, then by due date."""
    filters = {k: args.get(k) for k in ("status", "supplier_id", "task_id", "batch_id")}
    return paginate(quality.ncs_query(**filters), args, load=quality.with_nc_photos)


@bp.get("/nonconformances/<int:nc_id>")
@bp.auth_required(api_auth)
@staff_role(*READ_ROLES)
@bp.output(NonconformanceChanged)
@bp.doc(responses={404: "不合格单不存在"})
def get_nc(nc_id):
    """One nonconformance."""
    return quality.get_nc(nc_id)


@bp.patch("/nonconformances/<int:nc_id>")
@bp.auth_required(api_auth)
@staff_role(*QC_ROLES)
@bp.input(NcPatch, arg_name="body")
@bp.output(NonconformanceChanged)
@bp.doc(responses={403: "当前角色无权修改（质检）", 404: "不合格单不存在", 409: "不合格单已关闭（nc_closed）",
                   422: "责任人不存在（unknown_owner）、照片无效（invalid_photo）或参数不正确"})
def update_nc(nc_id, body):
    """Change an open nonconformance's owner, due date or description, or add photos. QC. Audited."""
    return quality.update_nc(current_actor(), nc_id, body)


# --- figures ------------------------------------------------------------------------------------------

@bp.get("/suppliers/<int:supplier_id>/quality")
@bp.auth_required(api_auth)
@staff_role(*READ_ROLES)
@bp.input(FiguresQuery, location="query", arg_name="args")
@bp.output(QualityFiguresOut)
@bp.doc(responses={404: "供应商不存在"})
def supplier_quality(supplier_id, args):
    """A supplier's quality figures for a period of China dates (from … to, both included, at most
    a year): first-pass yield (first QC result per batch only), acceptance rate, rework and scrap
    rates, nonconformances and their closure time. Definitions: README "Quality loop"."""
    if Supplier.get_or_none(Supplier.id == supplier_id) is None:
        raise not_found("供应商")
    return quality_figures.figures(supplier_id, args["start"], args["end"])

