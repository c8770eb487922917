"""Mini program: the supplier's day — my tasks, a scanned label, daily reports, nodes, problems, urges.

Object routes answer 404 for anything that is not the caller's supplier's (also for users of
another role: access.* checks the role), so a foreign id never confirms that it exists.
"""
from apiflask import APIBlueprint, Schema
from apiflask.fields import UUID, List, String
from apiflask.validators import Length, OneOf, Range
from flask import g
from marshmallow import ValidationError

from app.domain.errors import not_found
from app.domain.vocabulary import ISSUE_KINDS, TASK_STATES
from app.services import access, progress, supplier_tasks, urges
from app.web.auth import current_actor, mp_auth, wechat_role
from app.web.fields import Date, Id, Integer
from app.web.idempotency import idempotent
from app.web.paging import PageIn, paginate
from app.web.presenters import mask_nodes_for_supplier
from miniprogram_api.schemas import (
    SupplierIssueOut,
    SupplierNodeCompleted,
    SupplierReportSaved,
    SupplierTaskDetailOut,
    SupplierTaskPageOut,
    SupplierUrgeReplyOut,
)

bp = APIBlueprint("mp_supplier", __name__, tag="小程序 · 供应商")

MAX_PHOTOS = 9


def not_blank(value):
    if not value.strip():
        raise ValidationError("不能为空白")


def photo_ids():
    return List(Id(), validate=Length(max=MAX_PHOTOS),
                metadata={"description": f"POST /mp/v1/uploads 得到的照片 id，最多 {MAX_PHOTOS} 张"})


def client_id():
    return UUID(required=True, metadata={"description": "手机生成的 UUID；同一 client_id 重发只记录一次（200 返回原结果）"})


# --- input ---------------------------------------------------------------------------------------

class SupplierTaskQuery(PageIn):
    status = String(validate=OneOf(TASK_STATES + ("active",)),
                    metadata={"description": "任务状态，或 active（待生产、生产中、已暂停）"})
    q = String(validate=Length(1, 64), metadata={"description": "按任务号、订单号或产品名称搜索"})


class SupplierReportIn(Schema):
    client_id = client_id()
    report_date = Date(required=True,
                       metadata={"description": f"报工日期（中国日期）：今天或最近 {progress.REPORT_WINDOW_DAYS} 天，不能是将来"})
    qty_done = Integer(required=True, validate=Range(min=0),
                       metadata={"description": "截至当日的累计良品数量；不超过计划数量 ×（1+允差）"})
    stage = String(validate=Length(max=32), metadata={"description": "当前工序/阶段"})
    note = String(validate=Length(max=500))
    photo_ids = photo_ids()


class SupplierNodeCompleteIn(Schema):
    client_id = client_id()
    occurred_at = String(validate=Length(1, 40),
                         metadata={"description": "完成时间，ISO 8601（不带时区按北京时间）；默认现在，不能是将来"})
    note = String(validate=Length(max=500))
    photo_ids = photo_ids()


class SupplierIssueIn(Schema):
    client_id = client_id()
    kind = String(required=True, validate=OneOf(tuple(ISSUE_KINDS)),
                  metadata={"description": "；".join(f"{k} = {v}" for k, v in ISSUE_KINDS.items())})
    description = String(required=True, validate=[Length(1, 1000), not_blank])
    photo_ids = photo_ids()


class SupplierUrgeReplyIn(Schema):
    reason = String(required=True, validate=[Length(1, 500), not_blank], metadata={"description": "延误原因"})
    new_due_date = Date(required=True, metadata={"description": "新的预计完成日期（中国日期），不能早于今天"})


# --- routes --------------------------------------------------------------------------------------

NOT_FOUND = "任务不存在或不属于你的单位"


def retried(schema_name):
    """The 200 answer to a retried client_id: the stored body of the first answer."""
    return {"description": "同一 client_id 的重发：返回第一次的结果，不做任何改动",
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema_name}"}}}}


@bp.post("/tasks/<int:task_id>/reports")
@bp.auth_required(mp_auth)
@bp.input(SupplierReportIn, arg_name="body")
@idempotent("progress.report", target="{task_id}")
@bp.output(SupplierReportSaved, status_code=201, description="当日首次报工，或同日修正（revision 加 1）")
@bp.doc(responses={200: retried("SupplierReportSaved"), 404: NOT_FOUND,
                   409: "任务不在生产中（task_not_in_production），或 client_id 已用于其他操作",
                   422: "超出计划加允差（over_plan）、将来日期（future_date）、超过补报期限（too_old）、"
                        "累计数量减少（qty_decreased）、照片无效（invalid_photo）或参数不正确"})
def report(task_id, body):
    """Daily progress: the cumulative good quantity for a China date; a second report that day amends it."""
    return progress.report(current_actor(), g.wechat_user, task_id, body)


@bp.post("/tasks/<int:task_id>/nodes/<node_code>/complete")
@bp.auth_required(mp_auth)
@bp.input(SupplierNodeCompleteIn, arg_name="body")
@idempotent("node.complete", target="{task_id}.{node_code}")
@bp.output(SupplierNodeCompleted, status_code=201, description="节点已完成（首件确认：待跟单确认）")
@bp.doc(responses={200: retried("SupplierNodeCompleted"), 403: "该节点由跟单或质检完成（node_not_supplier_owned）",
                   404: "任务或节点不存在", 409: "节点已完成（node_already_done）或任务状态不允许",
                   422: "时间不正确（future_time、too_old）、照片无效或参数不正确"})
def complete_node(task_id, node_code, body):
    """Mark a node of the task's order done: materials_ready, first_article (then awaiting a
    manager's confirmation), main_process, packed or shipped. Node photos become visible to the customer."""
    return progress.complete_node(current_actor(), task_id, node_code, body, user=g.wechat_user)


@bp.post("/tasks/<int:task_id>/issues")
@bp.auth_required(mp_auth)
@bp.input(SupplierIssueIn, arg_name="body")
@idempotent("task.issue", target="{task_id}")
@bp.output(SupplierIssueOut, status_code=201)
@bp.doc(responses={200: retried("SupplierIssueOut"), 404: NOT_FOUND, 409: "任务已完成或已取消",
                   422: "照片无效或参数不正确"})
def report_issue(task_id, body):
    """Report a production problem (material shortage, machine down, quality, labour, other)."""
    task = access.supplier_task(g.wechat_user, task_id)
    return progress.report_issue(current_actor(), g.wechat_user, task, body)


@bp.post("/urges/<int:urge_id>/reply")
@bp.auth_required(mp_auth)
@bp.input(SupplierUrgeReplyIn, arg_name="body")
@bp.output(SupplierUrgeReplyOut)
@bp.doc(responses={404: "催单不存在或不属于你的单位", 409: "已回复过（urge_already_answered），或任务已结束",
                   422: "日期早于今天（past_date）或参数不正确"})
def reply_urge(urge_id, body):
    """Answer a manager's urge once with a reason and a new expected date (kept in the ETA history)."""
    urge = access.supplier_urge(g.wechat_user, urge_id)
    return urges.reply_urge(current_actor(), g.wechat_user, urge, body["reason"].strip(), body["new_due_date"])


@bp.get("/tasks")
@bp.auth_required(mp_auth)
@wechat_role("supplier")
@bp.input(SupplierTaskQuery, location="query", arg_name="args")
@bp.output(SupplierTaskPageOut)
@bp.doc(responses={403: "未绑定供应商"})
def list_tasks(args):
    """My tasks: open ones first (pending, in production, on hold), then completed and cancelled;
    each group by most urgent due date."""
    return paginate(supplier_tasks.tasks_query(g.wechat_user, args.get("status"), args.get("q")), args)


@bp.get("/tasks/<int:task_id>")
@bp.auth_required(mp_auth)
@bp.output(SupplierTaskDetailOut)
@bp.doc(responses={404: NOT_FOUND})
def task_detail(task_id):
    """One task: plan, the order's nodes, recent reports with photos, open urges, ETA and its history."""
    return _detail(access.supplier_task(g.wechat_user, task_id))


@bp.get("/scan/<code>")
@bp.auth_required(mp_auth)
@bp.output(SupplierTaskDetailOut)
@bp.doc(responses={404: "标签无效，或任务不属于你的单位"})
def scan(code):
    """The task behind a scanned QR label (the label's URL ends in /s/<code>); only for its supplier."""
    if len(code) > 32:
        raise not_found("任务")
    return _detail(access.supplier_task_by_code(g.wechat_user, code))


def _detail(task):
    task = supplier_tasks.detail(task)
    mask_nodes_for_supplier(task.node_list, task)
    return task
