"""Mini program: the supplier's batches — record a batch, ship it, self-check it, scan its label.

A self-check is the supplier's own record, never the QC verdict: it changes nothing about the
batch. Object routes answer 404 for anything that is not the caller's supplier's.
"""
from apiflask import APIBlueprint, Schema
from apiflask.fields import UUID, String
from apiflask.validators import Length, OneOf, Range
from flask import g

from app.domain.errors import Invalid, not_found
from app.domain.vocabulary import INSPECTION_KINDS
from app.services import access, quality
from app.web.auth import current_actor, mp_auth, wechat_role
from app.web.fields import Integer
from app.web.idempotency import idempotent
from app.web.inspection_input import InspectionBodyIn
from app.web.paging import PageIn, paginate
from miniprogram_api.schemas import (
    SupplierBatchDetailOut,
    SupplierBatchPageOut,
    SupplierBatchSaved,
    SupplierSelfCheckOut,
    SupplierTemplateForTask,
)

bp = APIBlueprint("mp_supplier_quality", __name__, tag="小程序 · 供应商批次与自检")

MAX_QTY = 10_000_000
NOT_FOUND = "批次不存在或不属于你的单位"


def client_id():
    return UUID(required=True, metadata={"description": "手机生成的 UUID；同一 client_id 重发只记录一次（200 返回原结果）"})


def retried(schema_name):
    return {"description": "同一 client_id 的重发：返回第一次的结果，不做任何改动",
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema_name}"}}}}


class BatchIn(Schema):
    client_id = client_id()
    qty = Integer(required=True, validate=Range(-MAX_QTY, MAX_QTY), metadata={"description": "本批生产数量（> 0）"})
    note = String(validate=Length(max=255))


class ShipIn(Schema):
    client_id = client_id()
    qty = Integer(required=True, validate=Range(-MAX_QTY, MAX_QTY), metadata={"description": "本次发货数量（> 0）"})
    note = String(validate=Length(max=255))


class SelfCheckIn(InspectionBodyIn):
    client_id = client_id()


class TemplateQuery(Schema):
    kind = String(required=True, validate=OneOf(list(INSPECTION_KINDS)))


@bp.get("/tasks/<int:task_id>/batches")
@bp.auth_required(mp_auth)
@bp.input(PageIn, location="query", arg_name="args")
@bp.output(SupplierBatchPageOut)
@bp.doc(responses={404: "任务不存在或不属于你的单位"})
def list_batches(task_id, args):
    """The task's batches, oldest first."""
    task = access.supplier_task(g.wechat_user, task_id)
    return paginate(quality.batches_query(task.id), args)


@bp.post("/tasks/<int:task_id>/batches")
@bp.auth_required(mp_auth)
@bp.input(BatchIn, arg_name="body")
@idempotent("batch.create", target="{task_id}")
@bp.output(SupplierBatchSaved, status_code=201)
@bp.doc(responses={200: retried("SupplierBatchSaved"), 404: "任务不存在或不属于你的单位",
                   409: "任务已完成或已取消（task_closed）",
                   422: "数量不为正（invalid_quantity）、各批合计超出计划加允差（over_plan）或参数不正确"})
def create_batch(task_id, body):
    """Record a batch of the task's output (its made quantity); it gets its own QR label."""
    task = access.supplier_task(g.wechat_user, task_id)
    return quality.create_batch(current_actor(), g.wechat_user, task, body)


@bp.get("/tasks/<int:task_id>/inspection-template")
@bp.auth_required(mp_auth)
@bp.input(TemplateQuery, location="query", arg_name="args")
@bp.output(SupplierTemplateForTask)
@bp.doc(responses={404: "任务不存在或不属于你的单位", 422: "没有适用的模板（template_missing）"})
def inspection_template(task_id, args):
    """The check items to fill in for an inspection of this kind on this task."""
    task = access.supplier_task(g.wechat_user, task_id)
    template = quality.template_for(task, args["kind"])
    if template is None:
        raise Invalid("template_missing", f"没有适用于该任务的{INSPECTION_KINDS[args['kind']]}模板", field="kind")
    return template


@bp.get("/batches/<int:batch_id>")
@bp.auth_required(mp_auth)
@bp.output(SupplierBatchDetailOut)
@bp.doc(responses={404: NOT_FOUND})
def batch_detail(batch_id):
    """One batch: quantities, status, its inspections (QC results and self-checks), shipments and receipts."""
    return quality.load_batch(quality.batch_of_supplier(g.wechat_user, batch_id).id)


@bp.get("/batches/scan/<code>")
@bp.auth_required(mp_auth)
@wechat_role("supplier")
@bp.output(SupplierBatchDetailOut)
@bp.doc(responses={403: "未绑定供应商", 404: "标签无效，或批次不属于你的单位"})
def scan_batch(code):
    """The batch behind a scanned batch label (its URL ends in /s/<code>, the code starting "B.")."""
    if len(code) > 32:
        raise not_found("批次")
    return quality.load_batch(quality.batch_of_supplier_by_code(g.wechat_user, code).id)


@bp.post("/batches/<int:batch_id>/ship")
@bp.auth_required(mp_auth)
@bp.input(ShipIn, arg_name="body")
@idempotent("batch.ship", target="{batch_id}")
@bp.output(SupplierBatchSaved)
@bp.doc(responses={200: "发货已记录（同一 client_id 重发返回第一次的结果）", 404: NOT_FOUND,
                   409: "批次质检不合格已冻结（batch_frozen）或已退货/报废（batch_closed）",
                   422: "数量不为正（invalid_quantity）、超过批次剩余数量（over_batch）或参数不正确"})
def ship(batch_id, body):
    """Ship (part of) a batch. A frozen batch cannot ship until QC has decided."""
    batch = quality.batch_of_supplier(g.wechat_user, batch_id)
    return quality.ship(current_actor(), g.wechat_user, batch, body["qty"], body.get("note"))


@bp.post("/batches/<int:batch_id>/self-checks")
@bp.auth_required(mp_auth)
@bp.input(SelfCheckIn, arg_name="body")
@idempotent("inspection.self", target="{batch_id}")
@bp.output(SupplierSelfCheckOut, status_code=201)
@bp.doc(responses={200: retried("SupplierSelfCheckOut"), 404: NOT_FOUND,
                   409: "批次已退货/报废（batch_closed）",
                   422: "读数类型不对（wrong_reading_type）、未知检验项目（unknown_check_item）、缺少读数（reading_missing）、"
                        "缺少必拍照片（photo_required）、照片无效（invalid_photo）、没有适用模板（template_missing）或参数不正确"})
def self_check(batch_id, body):
    """Record the factory's own check of a batch, from the same template QC uses. It is kept as a
    self-check and never counts as the QC verdict (it freezes and releases nothing)."""
    batch = quality.batch_of_supplier(g.wechat_user, batch_id)
    return quality.inspect(current_actor(), batch, body, wechat_user=g.wechat_user)
