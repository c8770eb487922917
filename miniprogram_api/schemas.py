"""What the mini program receives: one output schema per shape, for suppliers, customers and uploads.

Schemas dump model objects (and the few extras services load onto them); presenters add signed
links and masking. Supplier schemas never carry customer or price fields; customer schemas never
carry supplier identity, costs, prices, people or notes.
"""
from apiflask import Schema
from apiflask.fields import Boolean, Date, Dict, Float, Function, Integer, List, Nested, String

from app.domain.vocabulary import (
    BATCH_STATUSES,
    DEFECT_CATEGORIES,
    DISPOSITIONS,
    INSPECTION_KINDS,
    INSPECTION_RESULTS,
    INSPECTION_SOURCES,
    NODE_STATE_NAMES,
    STATE_NAMES,
    max_reportable,
    node_colour,
    progress_pct,
    supplier_can_complete,
)
from app.web import presenters
from app.web.fields import Label, LocalTime, QuantityOut, Whole, decimal_text
from app.web.paging import page_of

NODE_STATES_DOC = "pending | in_progress | done | delayed | awaiting_confirmation"
COLOURS_DOC = "grey | yellow | green | red | blue"


def _colour():
    return Function(lambda node: node_colour(node.state), metadata={"type": "string", "description": COLOURS_DOC})


# --- photos --------------------------------------------------------------------------------------

class PhotoOut(Schema):
    """A photo as its supplier sees it: the original, by a short-lived signed link."""

    id = Integer()
    url = Function(presenters.photo_url, metadata={"type": ["string", "null"],
                                                   "description": "短时有效的签名地址"})
    thumb_url = Function(presenters.thumb_url, metadata={"type": ["string", "null"]})
    status = String(metadata={"description": "pending | ready | duplicate | rejected"})
    purpose = String()
    created_at = LocalTime()


class CustomerPhotoOut(PhotoOut):
    """A photo as a customer sees it: only the EXIF-free display copy."""

    url = Function(presenters.display_url, metadata={"type": "string",
                                                     "description": "去除 EXIF 的展示图，短时有效的签名地址"})


# --- supplier --------------------------------------------------------------------------------------

class SupplierTaskItemOut(Schema):
    id = Integer()
    task_no = String()
    order_no = String(attribute="order.order_no")
    product_name = String(attribute="order.product_name")
    process = String()
    planned_qty = Integer()
    qty_done = Integer()
    progress_pct = Function(lambda t: progress_pct(t.qty_done, t.planned_qty),
                            metadata={"type": "integer", "description": "0–100"})
    due_date = Date()
    state = String()
    alert_level = String(allow_none=True, metadata={"description": "yellow | orange | red"})
    eta_date = Date(allow_none=True)
    open_urges = Integer(metadata={"description": "未回复的催单数"})
    last_report_date = Date(allow_none=True)


SupplierTaskPageOut = page_of(SupplierTaskItemOut, "SupplierTaskPageOut")


class SupplierPlanOut(Schema):
    planned_qty = Integer()
    tolerance_pct = Float(metadata={"description": "允差比例，0.05 = 5 %"})
    max_reportable_qty = Function(max_reportable, metadata={"type": "integer", "description": "可报的最大累计数量"})
    planned_start = Date()
    due_date = Date()
    requirements = String(allow_none=True)


class SupplierTaskOrderOut(Schema):
    order_no = String()
    product_code = String(allow_none=True)
    product_name = String()
    quantity = Integer()
    unit = String()


class SupplierNodeOut(Schema):
    code = String()
    name = String()
    state = String(metadata={"description": NODE_STATES_DOC})
    colour = _colour()
    planned_date = Date()
    done_at = LocalTime(allow_none=True, metadata={"description": "ISO 8601, +08:00"})
    done_by = String(allow_none=True, metadata={"description": "本任务完成时显示完成人"})
    can_complete = Function(supplier_can_complete, metadata={"type": "boolean", "description": "供应商可在小程序标记完成"})
    reject_reason = String(allow_none=True, metadata={"description": "首件被跟单退回的原因（重新提交后清空）"})
    rejected_at = LocalTime(allow_none=True)


class SupplierNodeCompleted(SupplierNodeOut):
    """The completed node with its photos."""

    photos = List(Nested(PhotoOut))


class SupplierReportOut(Schema):
    id = Integer()
    report_date = Date()
    qty_done = Integer()
    stage = String(allow_none=True)
    note = String(allow_none=True)
    revision = Integer(metadata={"description": "同日修正次数 + 1"})
    updated_at = LocalTime()
    photos = List(Nested(PhotoOut))


# The answers of the write routes are subclasses: APIFlask would register a class that is also
# nested in the task detail a second time (as "…Out1") and warn.
class SupplierReportSaved(SupplierReportOut):
    """The stored report."""


class SupplierOpenUrgeOut(Schema):
    id = Integer()
    message = String(allow_none=True)
    created_at = LocalTime()


class SupplierEtaRevisionOut(Schema):
    old_eta = Date(allow_none=True)
    new_eta = Date()
    reason = String(allow_none=True)
    source = String(metadata={"description": "supplier | engine | manager"})
    urge_id = Integer(allow_none=True)
    created_at = LocalTime()


class SupplierProgressOut(Schema):
    """The task against its plan today (same figures as the manager's)."""

    expected_qty = Integer(metadata={"description": "按计划到上一个完整工作日应完成的累计数量"})
    actual_qty = Integer(metadata={"description": "最近一次报工的累计数量"})
    deviation_pct = Float(metadata={"description": "进度偏差 = (应完成 − 实际) / 计划数量 × 100，正数为落后"})
    eta_date = Date(allow_none=True, metadata={"description": "按近期产能预计的完成日期；停滞或暂停时为 null"})
    days_late = Integer(metadata={"description": "预计完成晚于交期的工作日数，0 = 按期"})
    level = String(allow_none=True, metadata={"description": "yellow | orange | red：预计延期达到阈值时才有"})
    rate_per_day = Function(lambda p: None if p.rate_per_day is None else round(p.rate_per_day, 1), metadata={
        "type": ["number", "null"], "description": "近期每个工作日的良品产量"})


class SupplierTaskDetailOut(Schema):
    id = Integer()
    task_no = String()
    process = String()
    state = String()
    qty_done = Integer()
    progress_pct = Function(lambda t: progress_pct(t.qty_done, t.planned_qty), metadata={"type": "integer"})
    last_report_date = Date(allow_none=True)
    alert_level = String(allow_none=True)
    eta_date = Date(allow_none=True)
    progress = Nested(SupplierProgressOut, attribute="schedule", allow_none=True, metadata={
        "description": "进度与预计完成；待开工、已取消的任务为 null"})
    plan = Whole(SupplierPlanOut)
    order = Nested(SupplierTaskOrderOut)
    nodes = List(Nested(SupplierNodeOut), attribute="node_list")
    recent_reports = List(Nested(SupplierReportOut), metadata={"description": "最近 10 次报工，新的在前"})
    open_urges = List(Nested(SupplierOpenUrgeOut), attribute="open_urge_list")
    eta_history = List(Nested(SupplierEtaRevisionOut))


class SupplierIssueOut(Schema):
    id = Integer()
    kind = String()
    description = String()
    status = String()
    created_at = LocalTime()
    photos = List(Nested(PhotoOut))


class SupplierUrgeReplyOut(Schema):
    id = Integer()
    message = String(allow_none=True)
    created_at = LocalTime()
    replied_at = LocalTime()
    reply_reason = String()
    new_due_date = Date()
    task_id = Integer()
    eta_date = Date(attribute="task.eta_date")
    eta_history = List(Nested(SupplierEtaRevisionOut), attribute="task.eta_history")


# --- customer --------------------------------------------------------------------------------------

class CustomerInspectionOut(Schema):
    """A passed QC inspection as the customer sees it: what and when, with its photos; never who
    inspected, which supplier, a failure or a nonconformance."""

    kind = String(metadata={"description": " | ".join(INSPECTION_KINDS)})
    kind_name = Label(INSPECTION_KINDS, attribute="kind")
    result = String(metadata={"description": "pass（客户只看到合格的质检）"})
    result_name = Label(INSPECTION_RESULTS, attribute="result")
    sample_qty = Integer(metadata={"description": "抽样数量"})
    inspected_at = LocalTime()
    photos = List(Nested(CustomerPhotoOut))


class CustomerNodeOut(Schema):
    code = String()
    name = String()
    state = String(metadata={"description": NODE_STATES_DOC})
    state_name = Label(NODE_STATE_NAMES, attribute="state")
    colour = _colour()
    planned_date = Date()
    done_at = LocalTime(allow_none=True, metadata={"description": "ISO 8601, +08:00"})
    done_by = Function(presenters.customer_actor, metadata={
        "type": ["string", "null"], "description": "只说“工厂”“跟单”或“质检”，不显示单位或个人"})
    done_tasks = Integer(allow_none=True, metadata={
        "description": "由各工序分别完成的节点：已完成的工序数（如 2/3）；跟单、质检的节点为 null"})
    total_tasks = Integer(allow_none=True, metadata={"description": "该订单的工序数"})
    photos = List(Nested(CustomerPhotoOut))
    inspections = List(Nested(CustomerInspectionOut), metadata={
        "description": "质检节点：合格的质检记录及照片，新的在前；其他节点为空"})


class CustomerOrderItemOut(Schema):
    id = Integer()
    order_no = String()
    product_name = String()
    quantity = Integer()
    unit = String()
    due_date = Date()
    state = String()
    state_name = Label(STATE_NAMES, attribute="state")
    progress = Integer(metadata={"description": "0–100"})
    eta_date = Date(allow_none=True, metadata={"description": "预计完成日期"})
    predicted_ship_date = Date(allow_none=True, metadata={
        "description": "按各工序近期进度预测的出货日期；订单暂停、完成或取消时为 null"})
    late = Boolean(metadata={"description": "已过交期或预计晚于交期"})
    current_node = Function(lambda o: o.current_node.name if o.current_node else None,
                            metadata={"type": ["string", "null"], "description": "当前节点名称"})
    current_node_code = Function(lambda o: o.current_node.code if o.current_node else None,
                                 metadata={"type": ["string", "null"]})


CustomerOrderPageOut = page_of(CustomerOrderItemOut, "CustomerOrderPageOut")


class CustomerTimelineOut(CustomerOrderItemOut):
    nodes = List(Nested(CustomerNodeOut), attribute="node_list")


class CustomerSubscribeOut(Schema):
    quota = Dict(keys=String(), values=Integer(), metadata={"description": "{模板 id: 剩余可发送次数}"})
    nodes = List(String(), metadata={"description": "该订单已订阅的节点代码"})


# --- supplier: batches and inspections ----------------------------------------------------------------

class SupplierItemOut(Schema):
    id = Integer()
    seq = Integer()
    name = String()
    check_type = String(metadata={"description": "pass_fail（填 passed）| numeric（填 value）"})
    min_value = Function(decimal_text("min_value"),
                         metadata={"type": ["string", "null"], "description": "下限（含）"})
    max_value = Function(decimal_text("max_value"),
                         metadata={"type": ["string", "null"], "description": "上限（含）"})
    unit = String(allow_none=True)
    photo_required = Boolean(metadata={"description": "必须拍照"})


class SupplierTemplateOut(Schema):
    id = Integer()
    name = String()
    version = Integer()
    kind = String(allow_none=True)
    items = List(Nested(SupplierItemOut), attribute="item_list")


class SupplierTemplateRef(Schema):
    id = Integer()
    name = String()
    version = Integer()


class SupplierReadingOut(Schema):
    item_id = Integer()
    name = String()
    passed = Boolean()
    value = Function(decimal_text("value"),
                     metadata={"type": ["string", "null"]})
    note = String(allow_none=True)
    photos = List(Nested(PhotoOut))


class SupplierDefectOut(Schema):
    category = String()
    category_name = Function(lambda d: DEFECT_CATEGORIES.get(d["category"], d["category"]), metadata={"type": "string"})
    count = Integer()


class SupplierInspectionOut(Schema):
    id = Integer()
    kind = String()
    kind_name = Label(INSPECTION_KINDS, attribute="kind")
    source = String(metadata={"description": "qc（质检结论）| self_check（本厂自检，不作为质检结论）"})
    source_name = Label(INSPECTION_SOURCES, attribute="source")
    result = String(metadata={"description": "pass | fail"})
    result_name = Label(INSPECTION_RESULTS, attribute="result")
    template = Nested(SupplierTemplateRef, attribute="template_version")
    sample_qty = Integer()
    defect_qty = Integer()
    defects = List(Nested(SupplierDefectOut), attribute="defect_list")
    note = String(allow_none=True)
    inspected_at = LocalTime()
    readings = List(Nested(SupplierReadingOut), attribute="result_list")
    photos = List(Nested(PhotoOut))


class SupplierMovementOut(Schema):
    kind = String(metadata={"description": "ship（发货）| receive（我方收货）"})
    qty = Integer()
    qty_rejected = Integer()
    created_at = LocalTime()


class SupplierBatchOut(Schema):
    id = Integer()
    batch_no = String()
    task_id = Integer()
    task_no = String(attribute="task.task_no")
    qty = Integer(metadata={"description": "生产数量"})
    qty_shipped = Integer()
    qty_received = Integer(metadata={"description": "我方已收"})
    qty_accepted = Integer()
    qty_rejected = Integer()
    status = String(metadata={"description": " | ".join(BATCH_STATUSES)})
    status_name = Label(BATCH_STATUSES, attribute="status")
    disposition = String(allow_none=True, metadata={"description": " | ".join(DISPOSITIONS)})
    disposition_name = Label(DISPOSITIONS, attribute="disposition")
    created_at = LocalTime()


SupplierBatchPageOut = page_of(SupplierBatchOut, "SupplierBatchPageOut")


class SupplierBatchDetailOut(SupplierBatchOut):
    inspections = List(Nested(SupplierInspectionOut), attribute="inspection_list",
                       metadata={"description": "质检与自检，新的在前"})
    movements = List(Nested(SupplierMovementOut), attribute="movement_list")


class SupplierBatchSaved(SupplierBatchDetailOut):
    """The batch after the supplier's change."""


class SupplierSelfCheckOut(SupplierInspectionOut):
    """The recorded self-check."""

    batch_id = Integer()


class SupplierTemplateForTask(SupplierTemplateOut):
    """The template an inspection of this kind on this task uses."""


# --- uploads ---------------------------------------------------------------------------------------

class PolicyOut(Schema):
    photo_id = Integer(allow_none=True, metadata={"description": "the pending photo to confirm (oss_post only)"})
    method = String(metadata={"description": "oss_post: wx.uploadFile to url with fields, then confirm | "
                                             "server: wx.uploadFile to POST /mp/v1/uploads"})
    url = String()
    fields = Dict(metadata={"description": "formData for wx.uploadFile (name: 'file')"})
    expires_at = LocalTime(allow_none=True, metadata={"description": "when the form stops working (ISO 8601)"})
    max_size = Integer(metadata={"description": "bytes"})


class UploadedPhotoOut(Schema):
    """A photo just uploaded or confirmed: one shape for both upload paths."""

    photo_id = Integer(attribute="id")
    url = Function(presenters.photo_url, metadata={"type": ["string", "null"],
                                                   "description": "signed, short-lived"})
    thumb_url = Function(presenters.thumb_url, metadata={
        "type": ["string", "null"], "description": "signed, short-lived; null until processed"})
    status = String(metadata={"description": "pending (not processed yet) | ready | duplicate (shares an earlier "
                                             "photo's copies) | rejected"})
    purpose = String()
    created_at = LocalTime()
    duplicate = Boolean(metadata={"description": "true when this picture had already been uploaded: the answer is "
                                                 "that earlier photo, or this one shares its copies (status duplicate); "
                                                 "false while not processed yet"})


class ConfirmOut(UploadedPhotoOut):
    """The confirmed direct upload (a subclass: its own name in the OpenAPI document)."""


# --- materials (supplier; app/services/materials.py, README "Materials") ---------------------------

class SupplierMaterialItemOut(Schema):
    id = Integer()
    code = String()
    name = String()
    unit = String()
    spec = String(allow_none=True)


class SupplierLotRef(Schema):
    id = Integer()
    lot_no = String()


class SupplierMaterialTaskRef(Schema):
    id = Integer()
    task_no = String()
    process = String()


class SupplierMaterialIssueOut(Schema):
    id = Integer()
    lot = Nested(SupplierLotRef)
    item = Nested(SupplierMaterialItemOut)
    task = Nested(SupplierMaterialTaskRef)
    qty = QuantityOut(metadata={"description": "issued to us"})
    unit = String()
    issued_at = LocalTime(attribute="created_at")
    received_at = LocalTime(allow_none=True, metadata={"description": "when we confirmed receipt; null: not yet"})
    good_qty = QuantityOut(metadata={"description": "returned good"})
    scrap_qty = QuantityOut()
    leftover_qty = QuantityOut()
    outstanding_qty = QuantityOut(metadata={"description": "issued − returned"})


SupplierMaterialIssuePage = page_of(SupplierMaterialIssueOut, "SupplierMaterialIssuePage")


class SupplierMaterialReceived(SupplierMaterialIssueOut):
    """The issue after confirming receipt (a subclass: APIFlask registers a nested class only once)."""


class SupplierBalanceLineOut(Schema):
    item = Nested(SupplierMaterialItemOut)
    qty_per_unit = QuantityOut(allow_none=True, metadata={"description": "planned use per unit; null: not planned"})
    issued = QuantityOut()
    returned = QuantityOut(metadata={"description": "good + leftover returned"})
    scrapped = QuantityOut()
    consumed = QuantityOut(metadata={"description": "qty_per_unit × our reported good quantity"})
    balance = QuantityOut(metadata={"description": "issued − consumed − returned − scrapped: what we should still hold"})
    remaining_need = QuantityOut(attribute="need")
    shortage = Boolean(metadata={"description": "the balance cannot cover the rest of the plan"})
    shortage_qty = QuantityOut()
    over_consumption = Boolean()
    over_qty = QuantityOut()


class SupplierTaskMaterialsOut(Schema):
    task = Nested(SupplierMaterialTaskRef)
    planned_qty = Integer(attribute="task.planned_qty")
    produced_qty = Integer(metadata={"description": "our cumulative reported good quantity"})
    shortage = Boolean()
    over_consumption = Boolean()
    lines = List(Nested(SupplierBalanceLineOut))
    issues = List(Nested(SupplierMaterialIssueOut))


class SupplierLotScanOut(Schema):
    lot = Whole(SupplierLotRef)
    item = Nested(SupplierMaterialItemOut)
    issues = List(Nested(SupplierMaterialIssueOut), attribute="issue_list",
                  metadata={"description": "this lot's issues to our tasks"})


class SupplierTraceLotOut(Schema):
    lot = Nested(SupplierLotRef)
    item = Nested(SupplierMaterialItemOut)
    qty = QuantityOut(allow_none=True)
    declared = Boolean()


class SupplierBatchTraceOut(Schema):
    id = Integer()
    batch_no = String()
    qty = Integer()
    task = Nested(SupplierMaterialTaskRef)
    declared = Boolean(metadata={"description": "false: nothing declared yet; the lots issued to the task are shown"})
    lots = List(Nested(SupplierTraceLotOut), attribute="trace_lots")
