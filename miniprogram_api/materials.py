"""Mini program: the supplier's materials — what was issued to us and what came back, each task's
balance, confirming receipt of a scanned lot, and declaring the lots a batch used
(app/services/materials.py; README "Materials"). Customers see none of it."""
from apiflask import APIBlueprint
from flask import g

from app.domain.errors import not_found
from app.services import access, materials
from app.web.auth import current_actor, mp_auth, wechat_role
from app.web.fields import Id
from app.web.material_input import BatchLotsIn
from app.web.paging import PageIn, paginate
from miniprogram_api.schemas import (
    SupplierBatchTraceOut,
    SupplierLotScanOut,
    SupplierMaterialIssuePage,
    SupplierMaterialReceived,
    SupplierTaskMaterialsOut,
)

bp = APIBlueprint("mp_materials", __name__, tag="小程序 · 物料")


class MaterialQuery(PageIn):
    task_id = Id(strict=False)


def _supplier():
    """The caller's supplier id; anyone else (customers, unbound users) finds nothing here."""
    if g.wechat_user.role != "supplier":
        raise not_found("物料")
    return g.wechat_user.supplier_id


@bp.get("/materials")
@bp.auth_required(mp_auth)
@wechat_role("supplier")
@bp.input(MaterialQuery, location="query", arg_name="args")
@bp.output(SupplierMaterialIssuePage)
def list_materials(args):
    """Material issued to us, newest first, with what came back (optionally for one task)."""
    return paginate(materials.supplier_issues_query(g.wechat_user, args.get("task_id")), args,
                    load=materials.with_returns)


@bp.get("/tasks/<int:task_id>/materials")
@bp.auth_required(mp_auth)
@bp.output(SupplierTaskMaterialsOut)
@bp.doc(responses={404: "任务不存在或不属于你的单位"})
def task_materials(task_id):
    """Our material balance for a task, per item (issued − consumed by the plan − returned − scrapped),
    with shortage and over-consumption flags."""
    task = access.supplier_task(g.wechat_user, task_id)
    return materials.task_balance(task.id, supplier_id=g.wechat_user.supplier_id)


@bp.get("/materials/scan/<code>")
@bp.auth_required(mp_auth)
@bp.output(SupplierLotScanOut)
@bp.doc(responses={404: "物料批次不存在，或未发给你的单位"})
def scan_lot(code):
    """A scanned material lot label (codes start with "m."; task labels go to /scan/<code>): the
    lot and its issues to our tasks."""
    if len(code) > 40:
        raise not_found("物料批次")
    return materials.supplier_lot_scan(g.wechat_user, code)


@bp.post("/material-issues/<int:issue_id>/receive")
@bp.auth_required(mp_auth)
@bp.output(SupplierMaterialReceived)
@bp.doc(responses={404: "发料记录不存在或不属于你的单位"})
def confirm_receipt(issue_id):
    """Confirm the issued material arrived. Confirming again changes nothing. Audited."""
    _supplier()
    return materials.confirm_receipt(current_actor(), g.wechat_user, issue_id)


@bp.put("/batches/<int:batch_id>/materials")
@bp.auth_required(mp_auth)
@bp.input(BatchLotsIn, arg_name="body")
@bp.output(SupplierBatchTraceOut)
@bp.doc(responses={404: "批次不存在或不属于你的单位；物料批次不存在（unknown_lot）",
                   422: "物料批次未发给该任务（lot_not_issued_to_task）、用量超过发料（trace_exceeds_issue）、"
                        "重复（duplicate_lot）或数量不正确"})
def declare_batch_lots(batch_id, body):
    """Declare the material lots our batch used, with quantities (replacing an earlier declaration);
    only lots issued to the batch's task. Audited."""
    batch = materials.batch_for(batch_id, supplier_id=_supplier())
    return materials.declare_batch_lots(current_actor(), batch, body["lots"], body.get("note"))


@bp.get("/batches/<int:batch_id>/materials")
@bp.auth_required(mp_auth)
@bp.output(SupplierBatchTraceOut)
@bp.doc(responses={404: "批次不存在或不属于你的单位"})
def batch_lots(batch_id):
    """The lots our batch used (declared), or, before a declaration, the lots issued to its task."""
    return materials.batch_trace(materials.batch_for(batch_id, supplier_id=_supplier()))
