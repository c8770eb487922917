"""What managers and the ERP receive: one output schema per shape of the /api/v1 family.

Schemas dump model objects (and the few extras services load onto them); staff see prices and
costs. Presenters add what only the web edge knows (scan and label URLs).
"""
import json

from apiflask import Schema
from apiflask.fields import Boolean, Date, Dict, Float, Function, Integer, List, Nested, String

from app.domain.vocabulary import (
    ALERT_KINDS,
    BATCH_STATUSES,
    CHECK_TYPES,
    DEFECT_CATEGORIES,
    DISPOSITIONS,
    INSPECTION_KINDS,
    INSPECTION_RESULTS,
    INSPECTION_SOURCES,
    PART_STATES,
    STATE_NAMES,
    node_colour,
)
from app.services.alert_responses import response_seconds
from app.web import presenters
from app.web.errors import ErrorBody
from app.web.fields import Label, LocalTime, Price, QuantityOut, Whole, decimal_text
from app.web.paging import page_of


class Ref(Schema):
    id = Integer()
    code = String()
    name = String()


class TemplateRef(Schema):
    id = Integer()
    name = String()


# --- master data --------------------------------------------------------------------------------

class PartyOut(Schema):
    id = Integer()
    code = String()
    name = String()
    contact_name = String(allow_none=True)
    contact_phone = String(allow_none=True)
    created_at = LocalTime()


class SupplierOut(PartyOut):
    active = Boolean()
    robot_configured = Boolean(attribute="has_robot", metadata={
        "description": "whether alerts may reach the supplier by its WeCom group robot (the key is never shown)"})


class CustomerOut(PartyOut):
    active = Boolean()


SupplierPage = page_of(SupplierOut, "SupplierPage")
CustomerPage = page_of(CustomerOut, "CustomerPage")


class WechatUserOut(Schema):
    """A mini-program user as staff see it (never its openid)."""

    id = Integer()
    display_name = String(allow_none=True)
    role = String(metadata={"description": "supplier | customer | unbound"})
    supplier_id = Integer(allow_none=True)
    customer_id = Integer(allow_none=True)
    last_login_at = LocalTime(allow_none=True)
    created_at = LocalTime()


WechatUserPage = page_of(WechatUserOut, "WechatUserPage")


class WechatUserChanged(WechatUserOut):
    """The user after the change (a subclass: APIFlask registers a nested class only once)."""


class InviteOut(Schema):
    id = Integer()
    code = String(metadata={"description": "what the WeChat user enters (or scans) to bind"})
    kind = String(metadata={"description": "supplier | customer"})
    party = Nested(Ref)
    max_uses = Integer()
    uses = Integer()
    expires_at = LocalTime()
    created_at = LocalTime()


class TemplateItemOut(Schema):
    seq = Integer()
    code = String()
    name = String()
    plan_share = Float()
    expected_days = Integer()


class TemplateOut(Schema):
    id = Integer()
    name = String()
    customer_id = Integer(allow_none=True)
    product_code = String(allow_none=True)
    is_default = Boolean()
    items = List(Nested(TemplateItemOut), attribute="item_list")


TemplatePage = page_of(TemplateOut, "TemplatePage")


# --- orders ----------------------------------------------------------------------------------------

class TaskProgressOut(Schema):
    """The task against its plan today (app/services/schedule.py; README "Progress, deviation and ETA")."""

    expected_qty = Integer(metadata={"description": "cumulative quantity the plan expects by the last closed day"})
    actual_qty = Integer(metadata={"description": "cumulative good quantity of the latest report"})
    deviation_pct = Float(metadata={"description": "(expected − actual) / planned × 100, one decimal; > 0 = behind"})
    eta_date = Date(allow_none=True, metadata={
        "description": "predicted finish (finish date once done); null when stalled or on hold"})
    days_late = Integer(metadata={"description": "working days the ETA is beyond the due date (0 = on time)"})
    level = String(allow_none=True, metadata={
        "description": "yellow | orange | red when at least DELAY_THRESHOLD_DAYS late, else null"})
    rate_per_day = Function(lambda p: None if p.rate_per_day is None else round(p.rate_per_day, 1), metadata={
        "type": ["number", "null"], "description": "recent good pieces per working day; null while unknown"})
    reported_on = Date(allow_none=True, metadata={"description": "date of the latest report"})


class TaskOut(Schema):
    id = Integer()
    task_no = String()
    process = String()
    supplier = Nested(Ref)
    planned_qty = Integer()
    tolerance_pct = Float()
    planned_start = Date()
    due_date = Date()
    state = String(metadata={"description": "pending | in_production | on_hold | completed | cancelled"})
    state_name = Label(STATE_NAMES, attribute="state")
    qty_done = Integer()
    progress_pct = Function(lambda t: round(100 * t.qty_done / t.planned_qty, 1) if t.planned_qty else 0.0,
                            metadata={"type": "number", "description": "share of the plan done, one decimal"})
    last_report_date = Date(allow_none=True)
    eta_date = Date(allow_none=True, metadata={"description": "the ETA last recorded (delay alert or supplier's answer)"})
    alert_level = String(allow_none=True)
    progress = Nested(TaskProgressOut, attribute="schedule", allow_none=True, metadata={
        "description": "expected vs actual, deviation, predicted finish; null for pending and cancelled tasks"})
    requirements = String(allow_none=True)
    unit_cost = Price(allow_none=True, metadata={"description": "null unless the caller may see costs"})
    open_urges = Integer()
    started_at = LocalTime(allow_none=True)
    completed_at = LocalTime(allow_none=True)
    scan_url = Function(presenters.task_scan_url, metadata={"type": "string", "description": "what the task's QR encodes"})
    label_url = Function(presenters.task_label_url, metadata={"type": "string"})


class NodePartOut(Schema):
    """One task's part of an order-wide node."""

    task_id = Integer()
    state = String(metadata={"description": "done | awaiting_confirmation | rejected"})
    colour = Function(lambda part: node_colour(PART_STATES[part.state]),
                      metadata={"type": "string", "description": "green | blue | yellow (rejected: back in progress)"})
    done_at = LocalTime()
    done_by = String(allow_none=True)
    note = String(allow_none=True)
    reviewed_at = LocalTime(allow_none=True, metadata={"description": "when a manager confirmed or rejected it"})
    reviewed_by = String(allow_none=True)
    reject_reason = String(allow_none=True)


class NodeOut(Schema):
    id = Integer()
    seq = Integer()
    code = String()
    name = String()
    planned_date = Date()
    expected_days = Integer()
    state = String(metadata={"description": "pending | in_progress | done | delayed | awaiting_confirmation"})
    colour = Function(lambda node: node_colour(node.state),
                      metadata={"type": "string", "description": "grey | yellow | green | red | blue"})
    started_at = LocalTime(allow_none=True)
    done_at = LocalTime(allow_none=True)
    done_by = String(allow_none=True)
    task_id = Integer(allow_none=True, metadata={"description": "the task whose part came last"})
    note = String(allow_none=True)
    done_tasks = Integer(allow_none=True, metadata={
        "description": "order-wide nodes: open tasks whose part is done (null for the manager's and QC's nodes)"})
    total_tasks = Integer(allow_none=True, metadata={"description": "order-wide nodes: the order's open tasks"})
    parts = List(Nested(NodePartOut), metadata={"description": "each task's part, by task"})


class NodeChanged(NodeOut):
    """The node after a manager's confirmation or rejection (a subclass: APIFlask registers a
    nested class only once)."""


def _json(text):
    return json.loads(text) if text else None


class HistoryOut(Schema):
    at = LocalTime(attribute="created_at")
    actor = Function(lambda e: {"type": e.actor_type, "id": e.actor_id, "label": e.actor_label},
                     metadata={"type": "object", "description": "{type, id, label}"})
    action = String()
    object = Function(lambda e: {"type": e.object_type, "id": e.object_id},
                      metadata={"type": "object", "description": "{type, id}"})
    reason = String(allow_none=True)
    before = Function(lambda e: _json(e.before), metadata={"type": ["object", "null"]})
    after = Function(lambda e: _json(e.after), metadata={"type": ["object", "null"]})


class OrderSummaryOut(Schema):
    id = Integer()
    order_no = String()
    external_no = String(allow_none=True)
    customer = Nested(Ref)
    product_code = String(allow_none=True)
    product_name = String()
    quantity = Integer()
    unit = String()
    planned_start = Date()
    due_date = Date()
    state = String(metadata={"description": "draft | confirmed | in_production | on_hold | completed | cancelled"})
    state_name = Label(STATE_NAMES, attribute="state")
    source = String(metadata={"description": "manual | api | import"})
    task_count = Integer()
    created_at = LocalTime()
    updated_at = LocalTime()


class OrderOut(OrderSummaryOut):
    unit_price = Price(allow_none=True, metadata={"description": "null unless the caller may see prices"})
    notes = String(allow_none=True)
    resume_state = String(allow_none=True, metadata={"description": "where an order on hold returns"})
    allowed_states = List(String(), metadata={"description": "states a PATCH may move the order to"})
    node_template = Nested(TemplateRef, allow_none=True)
    tasks = List(Nested(TaskOut), attribute="task_list")
    nodes = List(Nested(NodeOut), attribute="node_list")
    history = List(Nested(HistoryOut), metadata={"description": "recent changes, newest first"})


OrderPage = page_of(OrderSummaryOut, "OrderPage")


class WarningOut(Schema):
    code = String(metadata={"description": "supplier_grade_d: the supplier's latest monthly grade is D"})
    message = String()
    supplier_id = Integer()
    task_nos = List(String(), metadata={"description": "the tasks it was given"})


class ImportedOrderOut(Schema):
    id = Integer()
    order_no = String()
    external_no = String(allow_none=True)


class ImportOut(Schema):
    created = Integer()
    skipped = Integer(metadata={"description": "orders already imported with the same content"})
    orders = List(Nested(ImportedOrderOut), metadata={"description": "the orders created"})
    warnings = List(Nested(WarningOut), dump_default=[], metadata={
        "description": "advice that does not block the import, e.g. tasks given to a D-graded supplier (supplier_grade_d)"})


class ImportErrorBody(ErrorBody):
    """The import's 422 (import_invalid), besides the usual validation errors."""

    error_count = Integer()
    errors = List(Dict(), metadata={"description": "[{row, field, message}]; row as Excel numbers it (header = 1)"})


class ImportErrorEnvelope(Schema):
    error = Nested(ImportErrorBody)


class UrgeOut(Schema):
    id = Integer()
    task_id = Integer()
    message = String(allow_none=True)
    via = String(metadata={"description": "dashboard | bot | api"})
    by = Function(lambda u: u.by_staff.display_name if u.by_staff_id else None,
                  metadata={"type": ["string", "null"]})
    created_at = LocalTime()
    replied_at = LocalTime(allow_none=True)
    reply_reason = String(allow_none=True)
    new_due_date = Date(allow_none=True)
    supplier_reached = Function(lambda u: getattr(u, "reached", None), metadata={
        "type": ["string", "null"],
        "description": "只在催单的应答中：mp_subscribe（订阅消息）| wecom_robot（供应商群机器人）"
                       "| unreached（未能联系，已通知跟单）"})


UrgePage = page_of(UrgeOut, "UrgePage")


# --- alerts ------------------------------------------------------------------------------------------

class StaffRef(Schema):
    id = Integer()
    name = String(attribute="display_name")


class AlertOut(Schema):
    """An alert as staff work from it (app/services/alert_responses.py)."""

    id = Integer()
    task_id = Integer(allow_none=True, metadata={
        "description": "null: an alert about the whole order (an overdue order-level node: 订单确认, 质检)"})
    task_no = String(attribute="task.task_no", allow_none=True, dump_default=None)
    order_id = Integer()
    order_no = String(attribute="order.order_no")
    supplier = Nested(Ref, attribute="task.supplier", allow_none=True, dump_default=None,
                      metadata={"description": "the task's supplier; null for an order-level alert"})
    node_code = String(attribute="node.code", allow_none=True, dump_default=None,
                       metadata={"description": "node_overdue: the node's code (e.g. materials_ready, confirmed, qc)"})
    node_name = String(attribute="node.name", allow_none=True, dump_default=None)
    kind = String(metadata={"description": " | ".join(ALERT_KINDS)})
    kind_name = Label(ALERT_KINDS, attribute="kind")
    level = String(metadata={"description": "yellow | orange | red"})
    status = String(metadata={"description": "open | acknowledged | resolved"})
    deviation_pct = Float(allow_none=True, metadata={"description": "behind plan, in % of the planned quantity"})
    days_late = Integer(allow_none=True, metadata={"description": "working days late (actual or predicted)"})
    eta_date = Date(allow_none=True)
    message = String(allow_none=True)
    opened_at = LocalTime(attribute="created_at")
    level_changed_at = LocalTime()
    escalation_level = Integer(metadata={"description": "0 = the task's manager; 1 = escalated to executives"})
    escalated_at = LocalTime(allow_none=True)
    acknowledged_at = LocalTime(allow_none=True)
    acknowledged_by = Nested(StaffRef, attribute="acknowledger", allow_none=True)
    ack_note = String(allow_none=True)
    resolved_at = LocalTime(allow_none=True)
    resolved_by = Nested(StaffRef, attribute="resolver", allow_none=True,
                         metadata={"description": "null with resolved_at: resolved by the system (the task caught up)"})
    resolve_note = String(allow_none=True)
    response_seconds = Function(response_seconds, metadata={
        "type": ["integer", "null"], "description": "response time: opened → acknowledged, seconds; null while unacknowledged"})


AlertPage = page_of(AlertOut, "AlertPage")


class AlertDetail(AlertOut):
    """One alert, read, acknowledged or resolved (a subclass: APIFlask would register the class
    nested in the page a second time and warn)."""


class StaffOut(Schema):
    id = Integer()
    username = String()
    name = String(attribute="display_name")
    role = String()
    active = Boolean()
    wecom_userid = String(allow_none=True, metadata={"description": "the WeCom member the manager bot and alerts reach"})


StaffPage = page_of(StaffOut, "StaffPage")


class StaffChanged(StaffOut):
    """One staff user after a change (a subclass: APIFlask would register the paged class twice)."""


class CallerOut(Schema):
    kind = String(metadata={"description": "staff | api_key"})
    id = Integer()
    name = String()
    role = String(allow_none=True)


# --- quality ------------------------------------------------------------------------------------------

class InspectionItemOut(Schema):
    id = Integer()
    seq = Integer()
    name = String()
    check_type = String(metadata={"description": "pass_fail | numeric"})
    check_type_name = Label(CHECK_TYPES, attribute="check_type")
    min_value = Function(decimal_text("min_value"), metadata={"type": ["string", "null"], "description": "numeric: 下限（含）"})
    max_value = Function(decimal_text("max_value"), metadata={"type": ["string", "null"], "description": "numeric: 上限（含）"})
    unit = String(allow_none=True)
    photo_required = Boolean()


class InspectionTemplateOut(Schema):
    id = Integer()
    family_id = Integer(metadata={"description": "the first version's id: every version of the template shares it"})
    version = Integer()
    name = String()
    kind = String(allow_none=True, metadata={"description": "first_article | patrol | final | receiving; null = any"})
    product_code = String(allow_none=True, metadata={"description": "null = any product"})
    process = String(allow_none=True, metadata={"description": "null = any process"})
    active = Boolean(metadata={"description": "false: retired, or replaced by a newer version"})
    created_at = LocalTime()
    items = List(Nested(InspectionItemOut), attribute="item_list")


InspectionTemplatePage = page_of(InspectionTemplateOut, "InspectionTemplatePage")


class InspectionTemplateChanged(InspectionTemplateOut):
    """One template version after a change (a subclass: APIFlask would register the paged class twice)."""


class QcPhotoOut(Schema):
    id = Integer()
    url = Function(presenters.photo_url, metadata={"type": ["string", "null"], "description": "signed, short-lived"})
    thumb_url = Function(presenters.thumb_url, metadata={"type": ["string", "null"]})
    status = String(metadata={"description": "pending | ready | duplicate | rejected"})
    purpose = String()
    by_staff = Function(lambda p: p.uploaded_by_staff_id is not None,
                        metadata={"type": "boolean", "description": "taken by QC (else uploaded by the supplier)"})
    created_at = LocalTime()


class QcPhotoUploaded(QcPhotoOut):
    duplicate = Boolean(metadata={"description": "the same picture was uploaded before and is not used yet: "
                                                 "this is that photo"})


class ReadingOut(Schema):
    item_id = Integer()
    name = String()
    passed = Boolean()
    value = Function(decimal_text("value"), metadata={"type": ["string", "null"], "description": "numeric readings"})
    note = String(allow_none=True)
    photos = List(Nested(QcPhotoOut))


class DefectOut(Schema):
    category = String()
    category_name = Function(lambda d: DEFECT_CATEGORIES.get(d["category"], d["category"]), metadata={"type": "string"})
    count = Integer()


class TemplateVersionRef(Schema):
    id = Integer()
    name = String()
    version = Integer()


class InspectionOut(Schema):
    id = Integer()
    task_id = Integer()
    task_no = String(attribute="task.task_no")
    batch_id = Integer()
    kind = String(metadata={"description": " | ".join(INSPECTION_KINDS)})
    kind_name = Label(INSPECTION_KINDS, attribute="kind")
    source = String(metadata={"description": "qc (the verdict) | self_check (the supplier's, never the verdict)"})
    source_name = Label(INSPECTION_SOURCES, attribute="source")
    result = String(metadata={"description": "pass | fail"})
    result_name = Label(INSPECTION_RESULTS, attribute="result")
    template = Nested(TemplateVersionRef, attribute="template_version")
    inspector = Nested(StaffRef, allow_none=True)
    sample_qty = Integer()
    defect_qty = Integer()
    defects = List(Nested(DefectOut), attribute="defect_list")
    note = String(allow_none=True)
    inspected_at = LocalTime()
    readings = List(Nested(ReadingOut), attribute="result_list")
    photos = List(Nested(QcPhotoOut), metadata={"description": "the inspection's own photos (readings carry theirs)"})


InspectionPage = page_of(InspectionOut, "InspectionPage")


class BatchRef(Schema):
    id = Integer()
    batch_no = String()
    status = String(metadata={"description": " | ".join(BATCH_STATUSES)})
    status_name = Label(BATCH_STATUSES, attribute="status")
    disposition = String(allow_none=True)


class InspectionRecorded(InspectionOut):
    """The inspection just recorded, with its batch as it now is and the nonconformance it opened."""

    batch = Nested(BatchRef)
    nonconformance_id = Function(lambda i: i.nonconformance.id if i.nonconformance else None,
                                 metadata={"type": ["integer", "null"]})


class InspectionDetail(InspectionOut):
    """One inspection (a subclass: APIFlask would register the paged class twice)."""


class NonconformanceOut(Schema):
    id = Integer()
    task_id = Integer()
    task_no = String(attribute="task.task_no")
    batch_id = Integer(allow_none=True)
    inspection_id = Integer(allow_none=True)
    owner = Nested(StaffRef, allow_none=True)
    description = String()
    due_date = Date()
    disposition = String(allow_none=True, metadata={"description": " | ".join(DISPOSITIONS)})
    disposition_name = Label(DISPOSITIONS, attribute="disposition")
    disposition_reason = String(allow_none=True)
    disposed_at = LocalTime(allow_none=True)
    status = String(metadata={"description": "open | closed"})
    closed_at = LocalTime(allow_none=True)
    created_at = LocalTime()
    photos = List(Nested(QcPhotoOut))


NonconformancePage = page_of(NonconformanceOut, "NonconformancePage")


class NonconformanceChanged(NonconformanceOut):
    """One nonconformance (a subclass: APIFlask would register the paged class twice)."""


class MovementOut(Schema):
    kind = String(metadata={"description": "ship | receive"})
    qty = Integer()
    qty_rejected = Integer(metadata={"description": "receive: of qty, refused"})
    note = String(allow_none=True)
    created_at = LocalTime()


class BatchOut(Schema):
    id = Integer()
    batch_no = String()
    task_id = Integer()
    task_no = String(attribute="task.task_no")
    qty = Integer(metadata={"description": "made"})
    qty_shipped = Integer()
    qty_received = Integer()
    qty_accepted = Integer()
    qty_rejected = Integer()
    status = String(metadata={"description": " | ".join(BATCH_STATUSES)})
    status_name = Label(BATCH_STATUSES, attribute="status")
    disposition = String(allow_none=True, metadata={"description": " | ".join(DISPOSITIONS)})
    disposition_name = Label(DISPOSITIONS, attribute="disposition")
    frozen_at = LocalTime(allow_none=True)
    released_at = LocalTime(allow_none=True)
    created_at = LocalTime()
    scan_url = Function(presenters.batch_scan_url, metadata={"type": ["string", "null"],
                                                             "description": "what the batch's QR encodes"})
    label_url = Function(presenters.batch_label_url, metadata={"type": "string"})


BatchPage = page_of(BatchOut, "BatchPage")


class BatchDetail(BatchOut):
    inspections = List(Nested(InspectionOut), attribute="inspection_list", metadata={"description": "newest first"})
    nonconformances = List(Nested(NonconformanceOut), attribute="nc_list")
    movements = List(Nested(MovementOut), attribute="movement_list")


class QualityFiguresOut(Schema):
    """README "Quality loop": each figure's definition (app/services/quality_figures.py)."""

    supplier_id = Integer()
    start = Date(attribute="start")
    end = Date(attribute="end")
    batches_first_inspected = Integer(metadata={"description": "batches whose first QC inspection is in the period"})
    batches_passed_first = Integer()
    first_pass_yield = Float(allow_none=True, metadata={"description": "batches passed first time ÷ first inspected (0–1)"})
    qty_received = Integer()
    qty_accepted = Integer()
    acceptance_rate = Float(allow_none=True, metadata={"description": "accepted ÷ received pieces (0–1)"})
    qty_inspected = Integer(metadata={"description": "pieces of the batches QC inspected in the period"})
    qty_reworked = Integer()
    qty_scrapped = Integer()
    rework_rate = Float(allow_none=True, metadata={"description": "reworked ÷ inspected pieces (0–1)"})
    scrap_rate = Float(allow_none=True, metadata={"description": "scrapped ÷ inspected pieces (0–1)"})
    nonconformances = Integer(metadata={"description": "opened in the period"})
    closed_nonconformances = Integer(metadata={"description": "of those, closed"})
    mean_closure_hours = Float(allow_none=True, metadata={"description": "opened → closed, NCs closed in the period"})
    material_loss_rate = Float(allow_none=True, metadata={
        "description": "scrapped + unaccounted ÷ issued material, tasks completed in the period (0–1; README Materials)"})
# --- materials (app/services/materials.py; README "Materials") ---------------------------------------

class MaterialItemOut(Schema):
    id = Integer()
    code = String(metadata={"description": "物料编码"})
    name = String()
    unit = String(metadata={"description": "every quantity of this item is in this unit"})
    spec = String(allow_none=True)
    created_at = LocalTime()


MaterialItemPage = page_of(MaterialItemOut, "MaterialItemPage")


class MaterialItemCreated(MaterialItemOut):
    """The new item (a subclass: APIFlask registers a nested class only once)."""


class MaterialLotOut(Schema):
    id = Integer()
    lot_no = String()
    item = Nested(MaterialItemOut)
    quantity = QuantityOut(metadata={"description": "the lot as received"})
    issued_qty = QuantityOut(metadata={"description": "issued to suppliers so far"})
    back_qty = QuantityOut(metadata={"description": "come back good or as leftover (scrap does not)"})
    available_qty = QuantityOut(metadata={"description": "what may still be issued: quantity − issued + back"})
    qr_code = String(metadata={"description": "the code in the lot's QR label (starts with m.)"})
    scan_url = Function(presenters.lot_scan_url, metadata={"type": "string", "description": "what the lot's QR encodes"})
    label_url = Function(presenters.lot_label_url, metadata={"type": "string"})
    note = String(allow_none=True)
    created_at = LocalTime()


MaterialLotPage = page_of(MaterialLotOut, "MaterialLotPage")


class MaterialLotRef(Schema):
    id = Integer()
    lot_no = String()
    qr_code = String()


class MaterialTaskRef(Schema):
    id = Integer()
    task_no = String()
    process = String()
    state = String()
    order_id = Integer()


class MaterialReturnOut(Schema):
    id = Integer()
    good_qty = QuantityOut(metadata={"description": "good material back (合格退料)"})
    scrap_qty = QuantityOut(metadata={"description": "scrap (废料)"})
    leftover_qty = QuantityOut(metadata={"description": "leftover (余料)"})
    note = String(allow_none=True)
    created_at = LocalTime()


class MaterialIssueOut(Schema):
    id = Integer()
    lot = Nested(MaterialLotRef)
    item = Nested(MaterialItemOut)
    task = Nested(MaterialTaskRef)
    supplier = Nested(Ref)
    qty = QuantityOut(metadata={"description": "issued"})
    unit = String()
    note = String(allow_none=True)
    issued_at = LocalTime(attribute="created_at")
    received_at = LocalTime(allow_none=True, metadata={"description": "when the supplier confirmed receipt"})
    good_qty = QuantityOut()
    scrap_qty = QuantityOut()
    leftover_qty = QuantityOut()
    returned_qty = QuantityOut(metadata={"description": "good + scrap + leftover"})
    outstanding_qty = QuantityOut(metadata={"description": "issued − returned"})
    returns = List(Nested(MaterialReturnOut), attribute="return_list")


MaterialIssuePage = page_of(MaterialIssueOut, "MaterialIssuePage")


class MaterialIssueReturned(MaterialIssueOut):
    """The issue after a return (a subclass: APIFlask registers a nested class only once)."""


class MaterialIssueScanned(MaterialIssueOut):
    already_issued = Boolean(metadata={
        "description": "true: this lot had already been issued to this task; nothing new was recorded"})


class BalanceLineOut(Schema):
    item = Nested(MaterialItemOut)
    unit = String()
    qty_per_unit = QuantityOut(allow_none=True, metadata={"description": "bill of quantities; null: not on the bill"})
    tolerance_pct = Float()
    issued = QuantityOut()
    returned_good = QuantityOut(attribute="good")
    returned_leftover = QuantityOut(attribute="leftover")
    scrapped = QuantityOut()
    consumed = QuantityOut(metadata={"description": "qty_per_unit × the task's reported good quantity"})
    balance = QuantityOut(metadata={"description": "issued − consumed − returned (good + leftover) − scrapped"})
    remaining_need = QuantityOut(attribute="need", metadata={
        "description": "qty_per_unit × (planned − reported): what the rest of the plan uses"})
    shortage = Boolean(metadata={"description": "open task whose balance cannot cover remaining_need"})
    shortage_qty = QuantityOut()
    over_consumption = Boolean(metadata={"description": "balance below zero by more than tolerance_pct × consumed"})
    over_qty = QuantityOut()


class TaskBalanceOut(Schema):
    task = Nested(MaterialTaskRef)
    order_no = String(attribute="task.order.order_no")
    supplier = Nested(Ref, attribute="task.supplier")
    planned_qty = Integer(attribute="task.planned_qty")
    produced_qty = Integer(metadata={"description": "the task's cumulative reported good quantity (qty_done)"})
    shortage = Boolean()
    over_consumption = Boolean()
    lines = List(Nested(BalanceLineOut))
    issues = List(Nested(MaterialIssueOut))


TaskBalancePage = page_of(TaskBalanceOut, "TaskBalancePage")


class TraceLotOut(Schema):
    lot = Nested(MaterialLotRef)
    item = Nested(MaterialItemOut)
    qty = QuantityOut(allow_none=True, metadata={"description": "used by the batch; null when presumed"})
    declared = Boolean(metadata={"description": "false: nothing declared for the batch; issued to its task"})


class TraceBatchRef(Schema):
    id = Integer()
    batch_no = String()
    qty = Integer()
    status = String()


class TraceOrderRef(Schema):
    id = Integer()
    order_no = String()
    product_name = String()


class BatchTraceOut(Schema):
    batch = Whole(TraceBatchRef)
    task = Nested(MaterialTaskRef)
    order = Nested(TraceOrderRef, attribute="task.order")
    declared = Boolean(metadata={"description": "whether the lots used were declared for this batch"})
    lots = List(Nested(TraceLotOut), attribute="trace_lots")


class TraceBatchOut(Schema):
    batch = Nested(TraceBatchRef)
    task = Nested(MaterialTaskRef)
    order_id = Integer(attribute="order.id")
    order_no = String(attribute="order.order_no")
    qty = QuantityOut(allow_none=True, metadata={"description": "of the lot used by the batch; null when presumed"})
    declared = Boolean()


class LotTraceOut(MaterialLotOut):
    issues = List(Nested(MaterialIssueOut), attribute="issue_list")
    batches = List(Nested(TraceBatchOut), attribute="trace_batches")
    orders = List(Nested(TraceOrderRef), attribute="trace_orders")


# --- the dashboard's Gantt ------------------------------------------------------------------------

def _gantt_nodes(task):
    # Plain dicts, not a nested schema: a chart of 500 tasks carries 3500 nodes, and marshmallow's
    # nesting would cost more than the whole database work.
    return [{"code": n.code, "name": n.name, "planned_date": n.planned_date.isoformat(), "state": n.state,
             "colour": node_colour(n.state)} for n in task.gantt_nodes]


GANTT_NODE = {"type": "object", "properties": {
    "code": {"type": "string"}, "name": {"type": "string"}, "planned_date": {"type": "string", "format": "date"},
    "state": {"type": "string", "description": "pending | in_progress | done | delayed | awaiting_confirmation"},
    "colour": {"type": "string", "description": "grey | yellow | green | red | blue"}}}


class GanttTaskOut(Schema):
    """One bar: the plan (planned_start → due_date), the share done, the predicted finish."""

    id = Integer()
    task_no = String()
    process = String()
    state = String()
    state_name = Label(STATE_NAMES, attribute="state")
    order = Function(lambda t: {"id": t.order.id, "order_no": t.order.order_no, "product_name": t.order.product_name},
                     metadata={"type": "object", "description": "{id, order_no, product_name}"})
    supplier = Nested(Ref)
    planned_start = Date()
    due_date = Date()
    planned_qty = Integer()
    qty_done = Integer()
    progress_pct = Function(lambda t: round(100 * t.qty_done / t.planned_qty, 1) if t.planned_qty else 0.0,
                            metadata={"type": "number"})
    progress = Nested(TaskProgressOut, attribute="schedule", allow_none=True)
    alert_level = String(allow_none=True)
    late = Boolean(metadata={"description": "unfinished and late or predicted late: drawn in red"})
    nodes = Function(_gantt_nodes, metadata={"type": "array", "items": GANTT_NODE, "description": "the order's nodes"})


class GanttOut(Schema):
    today = Date()
    group = String(metadata={"description": "order | supplier"})
    truncated = Boolean(metadata={"description": "more tasks match than one chart shows (300): filter by order or supplier"})
    tasks = List(Nested(GanttTaskOut))


# --- supplier scorecard (app/services/scorecard.py; README "Supplier scorecard") ----------------------

class ScorecardKpiOut(Schema):
    key = String(metadata={"description": "on_time_rate, avg_days_late, delivery_cycle, first_pass_yield, "
                                          "acceptance_rate, rework_scrap_rate, material_loss_rate, report_compliance, "
                                          "node_timeliness, urge_response"})
    name = String(metadata={"description": "中文名称"})
    value = Float(allow_none=True, metadata={"description": "the figure (rates 0–1, days, hours); null: no data"})
    score = Float(allow_none=True, metadata={"description": "its sub-score 0–100; null: no data, left out"})
    weight = Integer(metadata={"description": "configured weight (SCORECARD_WEIGHTS, sum 100)"})
    effective_weight = Float(metadata={"description": "weight rescaled over the KPIs with data (sum 100)"})
    basis = String(metadata={"description": "what it was measured over"})


class ScorecardPeriodOut(Schema):
    period_start = Date()
    period_end = Date()
    score = Float(allow_none=True, metadata={"description": "0–100, one decimal; null: no KPI had data"})
    grade = String(allow_none=True, metadata={"description": "A ≥ 85, B ≥ 70, C ≥ 50, else D (SCORECARD_GRADE_BANDS)"})
    task_count = Integer(allow_none=True, metadata={"description": "the supplier's tasks that ran in the period; "
                                                                   "null: no snapshot"})
    has_data = Boolean(metadata={"description": "false: no snapshot was taken for this period (the supplier had "
                                                "no activity in it): score, grade and task_count are null"})


class ScorecardSnapshotOut(ScorecardPeriodOut):
    kpis = List(Nested(ScorecardKpiOut))


class ScorecardOut(Schema):
    supplier_id = Integer()
    period = String(metadata={"description": "week (ISO week, Monday–Sunday) | month (calendar month); China dates"})
    latest = Nested(ScorecardSnapshotOut, allow_none=True, metadata={"description": "null: no snapshot yet"})
    trend = List(Nested(ScorecardPeriodOut), metadata={
        "description": "exactly the last 12 periods up to the current one, oldest first; a period without a "
                       "snapshot is listed with has_data false and null figures"})


class OrderCreatedOut(OrderOut):
    warnings = List(Nested(WarningOut), dump_default=[], metadata={
        "description": "advice that does not block the order, e.g. a task given to a D-graded supplier"})
