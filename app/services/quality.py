"""The quality loop: inspection templates, batches, inspections, freezing, nonconformances,
dispositions and releases, and what the order's QC node shows of them.

Rules decided here (README "Quality loop"):
- Templates are versioned: editing a template creates its next version (same family) and retires
  the previous one; an inspection points at the version it used. The template for an inspection
  is the most specific active one: product and process, then product, then process, then a
  general one; a template for the inspection's kind beats one for any kind at the same level.
- An inspection's result follows from its readings: any failed pass/fail item, or a numeric
  reading outside its limits, fails it. Every item of the template needs a reading; an item that
  requires a photo needs one. Bad input (wrong reading type, unknown item, missing photo …) is an
  error and nothing is stored.
- Only a QC inspection (source "qc") decides: a failure freezes the batch at once, opens a
  nonconformance and tells QC (one WeCom message, a `qc_fail` alert). A supplier's self-check is
  recorded and shown, never the verdict.
- A frozen batch cannot ship or be received. Dispositions and releases are QC's, audited, with a
  reason: rework keeps it frozen until a passing QC re-inspection releases it; concession needs an
  explicit release; return and scrap close the batch (its received quantity counts as rejected).
- Partial receipts change only the batch's quantities: no batch event ever changes a task's
  state (closing a task stays an explicit act).
- Rejected output is made again, so it moves the delay engine: the task's qty_rejected (the pieces
  received and refused, plus every piece of a returned or scrapped batch — `rejected_qty`) is
  kept in the transaction that rejects them, and the progress model (app/services/schedule.py)
  counts qty_done − qty_rejected as made. A frozen batch counts only once QC disposes of it:
  rework and concession keep its pieces, and a freeze already turns the QC node red for staff.
  The customer sees only the consequence (a later predicted date, an early warning), never why.
- The order's QC node is red (delayed) while any of its batches is frozen; done once every open
  task has a passing QC final inspection; in progress once QC has inspected anything.
"""
import secrets
from datetime import timedelta
from decimal import Decimal, InvalidOperation

from peewee import Case, fn

from app.domain.errors import Conflict, Invalid, not_found
from app.domain.vocabulary import (
    CLOSED_BATCH_STATUSES,
    DEFECT_CATEGORIES,
    DISPOSITIONS,
    INSPECTION_KINDS,
    max_reportable,
    state_name,
)
from app.models import (
    Alert,
    Batch,
    BatchMovement,
    Inspection,
    InspectionItem,
    InspectionResult,
    InspectionTemplate,
    NodeInstance,
    Nonconformance,
    Order,
    Photo,
    StaffUser,
    Supplier,
    Task,
)
from app.models.prepared import Prepared, Slot
from app.services import alert_routing, alerts, audit, nodes, photos
from app.services.progress import lock_task
from app.timeutil import china_date, utcnow

NC_DUE_DAYS = 3  # a nonconformance is due this many days after it opens, unless QC says otherwise
NUMERIC_LIMIT = Decimal("9999999999")  # what DECIMAL(14, 4) holds
BATCH_TASK_STATES = ("pending", "in_production", "completed")  # finished output ships in batches too
QC_NODE = "qc"
STAFF_WHERE = "管理端「不合格单」"


# --- templates ------------------------------------------------------------------------------------

def templates_query(*, kind=None, product_code=None, process=None, include_retired=False):
    query = InspectionTemplate.select().order_by(InspectionTemplate.family_id, InspectionTemplate.version.desc())
    if not include_retired:
        query = query.where(InspectionTemplate.active)
    for column, value in ((InspectionTemplate.kind, kind), (InspectionTemplate.product_code, product_code),
                          (InspectionTemplate.process, process)):
        if value is not None:
            query = query.where(column == value)
    return query


def with_items(templates):
    """Set `item_list` on each template (seq order), in one query."""
    by_id = {t.id: [] for t in templates}
    if by_id:
        for item in InspectionItem.select().where(InspectionItem.template.in_(list(by_id))).order_by(
                InspectionItem.template, InspectionItem.seq):
            by_id[item.template_id].append(item)
    for t in templates:
        t.item_list = by_id[t.id]
    return templates


def get_template(template_id):
    template = InspectionTemplate.get_or_none(InspectionTemplate.id == template_id)
    if template is None:
        raise not_found("检验模板")
    return with_items([template])[0]


def _clean_items(items):
    names = set()
    rows = []
    for seq, item in enumerate(items, start=1):
        name = item["name"].strip()
        if name in names:
            raise Invalid("duplicate_item", f"检验项目「{name}」重复", field="items")
        names.add(name)
        low, high = item.get("min_value"), item.get("max_value")
        if item["check_type"] == "numeric":
            if low is None and high is None:
                raise Invalid("limits_required", f"数值项目「{name}」至少需要下限或上限", field="items")
            if low is not None and high is not None and low > high:
                raise Invalid("limits_reversed", f"数值项目「{name}」的下限大于上限", field="items")
        elif low is not None or high is not None:
            raise Invalid("limits_not_numeric", f"「{name}」是合格/不合格项目，不能设上下限", field="items")
        rows.append({"seq": seq, "name": name, "check_type": item["check_type"], "min_value": low,
                     "max_value": high, "unit": item.get("unit") or None,
                     "photo_required": bool(item.get("photo_required"))})
    return rows


def _template_fields(data):
    return {"name": data["name"].strip(), "kind": data.get("kind"),
            "product_code": (data.get("product_code") or "").strip() or None,
            "process": (data.get("process") or "").strip() or None}


def _snapshot(template, rows):
    return {**_template_fields({"name": template.name, "kind": template.kind, "product_code": template.product_code,
                                "process": template.process}),
            "version": template.version, "family_id": template.family_id,
            "items": [{k: (str(v) if isinstance(v, Decimal) else v) for k, v in r.items()} for r in rows]}


def create_template(actor, staff, data):
    """A new template (version 1 of its family). → the template, items loaded."""
    rows = _clean_items(data["items"])
    with audit.transaction(actor) as log:
        template = InspectionTemplate.create(created_by=staff.id if staff else None, **_template_fields(data))
        InspectionTemplate.update(family_id=template.id).where(InspectionTemplate.id == template.id).execute()
        template.family_id = template.id
        InspectionItem.insert_many([{**r, "template": template.id} for r in rows]).execute()
        log.add("inspection_template.create", "inspection_template", template.id, after=_snapshot(template, rows))
    return get_template(template.id)


def revise_template(actor, staff, template_id, data):
    """Edit a template: its next version, with the new fields and items; the edited version is
    retired (inspections that used it keep it). Only the current version can be edited."""
    rows = _clean_items(data["items"])
    with audit.transaction(actor) as log:
        current = InspectionTemplate.get_or_none(InspectionTemplate.id == template_id)
        if current is None:
            raise not_found("检验模板")
        if not current.active:
            raise Conflict("template_outdated", "该模板版本已停用或已有新版本，请修改当前版本")
        retired = (InspectionTemplate.update(active=False)
                   .where((InspectionTemplate.id == current.id) & InspectionTemplate.active).execute())
        if not retired:
            raise Conflict("template_outdated", "该模板版本已停用或已有新版本，请修改当前版本")
        template = InspectionTemplate.create(family_id=current.family_id, version=current.version + 1,
                                             created_by=staff.id if staff else None, **_template_fields(data))
        InspectionItem.insert_many([{**r, "template": template.id} for r in rows]).execute()
        log.add("inspection_template.revise", "inspection_template", template.id,
                before={"id": current.id, "version": current.version}, after=_snapshot(template, rows))
    return get_template(template.id)


def retire_template(actor, template_id):
    """Stop using a template (no new inspections take it; old ones keep it)."""
    with audit.transaction(actor) as log:
        template = get_template(template_id)
        if template.active:
            InspectionTemplate.update(active=False).where(InspectionTemplate.id == template.id).execute()
            log.add("inspection_template.retire", "inspection_template", template.id,
                    before={"active": True}, after={"active": False})
    return get_template(template_id)


def template_for(task, kind):
    """The most specific active template for an inspection of this kind on this task (None if
    there is none): product and process, product, process, general; the kind's own first."""
    order = Order.get_by_id(task.order_id)
    candidates = list(InspectionTemplate.select().where(
        InspectionTemplate.active
        & (InspectionTemplate.product_code.is_null() | (InspectionTemplate.product_code == order.product_code))
        & (InspectionTemplate.process.is_null() | (InspectionTemplate.process == task.process))
        & (InspectionTemplate.kind.is_null() | (InspectionTemplate.kind == kind))))
    if not candidates:
        return None

    def rank(t):
        return (t.product_code is not None, t.process is not None, t.kind is not None, t.id)

    return get_template(max(candidates, key=rank).id)


def _template_to_use(task, kind, template_id):
    if template_id is None:
        template = template_for(task, kind)
        if template is None:
            raise Invalid("template_missing", f"没有适用于该产品和工序的{INSPECTION_KINDS[kind]}模板，请先由质检建立",
                          field="template_id")
        return template
    template = InspectionTemplate.get_or_none(InspectionTemplate.id == template_id)
    if template is None:
        raise Invalid("unknown_template", "检验模板不存在", field="template_id")
    if not template.active:
        raise Invalid("template_outdated", "该模板版本已停用或已有新版本，请使用当前版本", field="template_id")
    if template.kind is not None and template.kind != kind:
        raise Invalid("template_kind_mismatch", f"该模板用于{INSPECTION_KINDS[template.kind]}，不能用于"
                      f"{INSPECTION_KINDS[kind]}", field="template_id")
    # A template made for another product or process would let a lenient check pass this one.
    product_code = Order.select(Order.product_code).where(Order.id == task.order_id).scalar()
    if ((template.product_code is not None and template.product_code != product_code)
            or (template.process is not None and template.process != task.process)):
        raise Invalid("template_not_for_task", "该模板用于其他产品或工序，不能用于该任务", field="template_id")
    return get_template(template.id)


# --- batches ----------------------------------------------------------------------------------------

def batch_of_supplier(user, batch_id):
    """A batch of the user's own supplier, on an order past draft; anything else is not found."""
    batch = (Batch.select(Batch, Task).join(Task).join(Order)
             .where((Batch.id == batch_id) & (Task.supplier == user.supplier_id) & (Order.state != "draft"))
             .first())
    if batch is None or user.role != "supplier":
        raise not_found("批次")
    return batch


def batch_of_supplier_by_code(user, code):
    batch = (Batch.select(Batch, Task).join(Task).join(Order)
             .where((Batch.qr_code == code) & (Task.supplier == user.supplier_id) & (Order.state != "draft"))
             .first())
    if batch is None or user.role != "supplier":
        raise not_found("批次")
    return batch


def staff_batch(batch_id):
    batch = Batch.get_or_none(Batch.id == batch_id)
    if batch is None:
        raise not_found("批次")
    return batch


def batches_query(task_id, status=None):
    query = Batch.select(Batch, Task).join(Task).where(Batch.task == task_id).order_by(Batch.id)
    return query.where(Batch.status == status) if status else query


def _new_qr_code():
    """Unguessable like a task's code, and never one: "B." cannot start a task's urlsafe code."""
    return "B." + secrets.token_urlsafe(12)


def create_batch(actor, user, task, data):
    """The supplier records a batch of the task's output (its made quantity). All batches together
    stay within the plan plus tolerance. → the batch."""
    with audit.transaction(actor) as log:
        current = lock_task(task.id)
        if current.state not in BATCH_TASK_STATES:
            raise Conflict("task_closed", f"任务{state_name(current.state)}，不能再登记批次")
        qty = data["qty"]
        if qty < 1:
            raise Invalid("invalid_quantity", "批次数量必须大于 0", field="qty")
        made = sum(b.qty for b in Batch.select(Batch.qty).where(Batch.task == current.id))
        limit = max_reportable(current)
        if made + qty > limit:
            raise Invalid("over_plan", f"各批次合计 {made + qty} 超出计划数量加允差（最多 {limit}，已登记 {made}）",
                          field="qty", extra={"max_qty": limit - made})
        count = Batch.select().where(Batch.task == current.id).count()
        batch_no = f"{current.task_no}-B{count + 1:02d}"
        if len(batch_no) > 40:  # a task number near its 40 characters: the task's id keeps it unique
            batch_no = f"T{current.id}-B{count + 1:02d}"
        batch = Batch.create(task=current.id, batch_no=batch_no, qty=qty, qr_code=_new_qr_code())
        log.add("batch.create", "batch", batch.id, after={"task_id": current.id, "batch_no": batch.batch_no,
                                                         "qty": qty}, reason=data.get("note"))
    return load_batch(batch.id)


def _check_movable(batch, doing):
    if batch.status in CLOSED_BATCH_STATUSES:
        raise Conflict("batch_closed", f"批次{batch.batch_no}已{DISPOSITIONS[batch.disposition]}，不能再{doing}")
    if batch.status == "frozen":
        raise Conflict("batch_frozen", f"批次{batch.batch_no}质检不合格已冻结，不能{doing}；请等待质检处置")


def ship(actor, user, batch, qty, note=None):
    """The supplier ships (part of) a batch. Refused for a frozen or closed batch, and beyond what
    the batch holds. → the batch."""
    with audit.transaction(actor) as log:
        lock_task(batch.task_id)
        batch = Batch.get_by_id(batch.id)
        _check_movable(batch, "发货")
        if qty < 1:
            raise Invalid("invalid_quantity", "发货数量必须大于 0", field="qty")
        left = batch.qty - batch.qty_shipped
        if qty > left:
            raise Invalid("over_batch", f"发货数量 {qty} 超过批次剩余未发数量 {left}", field="qty",
                          extra={"max_qty": left})
        Batch.update(qty_shipped=Batch.qty_shipped + qty).where(Batch.id == batch.id).execute()
        BatchMovement.create(batch=batch.id, kind="ship", qty=qty, by_wechat=user.id if user else None, note=note)
        log.add("batch.ship", "batch", batch.id, before={"qty_shipped": batch.qty_shipped},
                after={"qty_shipped": batch.qty_shipped + qty}, reason=note)
    return load_batch(batch.id)


def receive(actor, staff, batch, qty, qty_rejected=0, note=None):
    """We receive (part of) what was shipped: `qty` arrived, of which `qty_rejected` are refused.
    Partial receipts are normal; the task stays as it is. → the batch."""
    with audit.transaction(actor) as log:
        lock_task(batch.task_id)
        batch = Batch.get_by_id(batch.id)
        _check_movable(batch, "收货")
        if qty < 1:
            raise Invalid("invalid_quantity", "收货数量必须大于 0", field="qty")
        if qty_rejected < 0:
            raise Invalid("invalid_quantity", "拒收数量不能为负数", field="qty_rejected")
        if qty_rejected > qty:
            raise Invalid("over_received", f"拒收数量 {qty_rejected} 超过本次收货数量 {qty}", field="qty_rejected")
        in_transit = batch.qty_shipped - batch.qty_received
        if qty > in_transit:
            raise Invalid("over_shipped", f"收货数量 {qty} 超过已发货未收数量 {in_transit}", field="qty",
                          extra={"max_qty": in_transit})
        fields = {"qty_received": batch.qty_received + qty, "qty_accepted": batch.qty_accepted + qty - qty_rejected,
                  "qty_rejected": batch.qty_rejected + qty_rejected}
        Batch.update(**fields).where(Batch.id == batch.id).execute()
        BatchMovement.create(batch=batch.id, kind="receive", qty=qty, qty_rejected=qty_rejected,
                             by_staff=staff.id if staff else None, note=note)
        if qty_rejected:
            _count_rejected(log, batch.task_id)
        log.add("batch.receive", "batch", batch.id,
                before={k: getattr(batch, k) for k in fields}, after=fields, reason=note)
    return load_batch(batch.id)


def rejected_qty(task_id):
    """The task's pieces QC rejected, to be made again: every piece of a returned or scrapped
    batch, and the pieces refused at receipt of the others (a frozen batch's only once disposed)."""
    lost = Case(None, [(Batch.status.in_(CLOSED_BATCH_STATUSES), Batch.qty)], Batch.qty_rejected)
    return int(Batch.select(fn.COALESCE(fn.SUM(lost), 0)).where(Batch.task == task_id).scalar() or 0)


def _count_rejected(log, task_id):
    """Keep Task.qty_rejected (what the delay scan reads in the task's row) in this transaction;
    the caller holds the task's lock."""
    task = Task.select(Task.id, Task.qty_rejected).where(Task.id == task_id).get()
    count = rejected_qty(task_id)
    if count != task.qty_rejected:
        Task.update(qty_rejected=count, updated_at=utcnow()).where(Task.id == task_id).execute()
        log.add("task.rejected", "task", task_id, before={"qty_rejected": task.qty_rejected},
                after={"qty_rejected": count}, reason="质检拒收或退货、报废的数量须重做")


def load_batch(batch_id, *, include_self_checks=True):
    """The batch with its task, `inspection_list` (newest first, readings and photos loaded),
    `nc_list` and `movement_list`."""
    batch = Batch.select(Batch, Task).join(Task).where(Batch.id == batch_id).get()
    query = Inspection.select(Inspection, Task).join(Task).where(Inspection.batch == batch.id)
    if not include_self_checks:
        query = query.where(Inspection.source == "qc")
    batch.inspection_list = load_inspections(list(query.order_by(Inspection.inspected_at.desc(),
                                                                 Inspection.id.desc())))
    batch.nc_list = with_nc_photos(list(Nonconformance.select(Nonconformance, Task).join(Task)
                                        .where(Nonconformance.batch == batch.id).order_by(Nonconformance.id)))
    batch.movement_list = list(BatchMovement.select().where(BatchMovement.batch == batch.id)
                               .order_by(BatchMovement.id))
    return batch


# --- inspections ------------------------------------------------------------------------------------

def load_inspections(rows, photo_condition=None):
    """Set `result_list` (readings, each with `photos`) and `photos` (the inspection's own) on
    each inspection, and its `template` version, in four queries."""
    if not rows:
        return rows
    ids = [r.id for r in rows]
    results = {i: [] for i in ids}
    result_rows = list(InspectionResult.select().where(InspectionResult.inspection.in_(ids))
                       .order_by(InspectionResult.id))
    photos.load_photos(result_rows, Photo.inspection_result, photo_condition)
    for res in result_rows:
        results[res.inspection_id].append(res)
    own = Photo.inspection_result.is_null()
    photos.load_photos(rows, Photo.inspection, own if photo_condition is None else own & photo_condition)
    templates = {t.id: t for t in InspectionTemplate.select().where(
        InspectionTemplate.id.in_({r.template_id for r in rows}))}
    _with_people(rows, "inspector")
    for row in rows:
        row.result_list = results[row.id]
        row.defect_list = row.defects or []
        row.template_version = templates[row.template_id]
    return rows


def inspections_query(*, supplier_id=None, task_id=None, batch_id=None, result=None, source=None, kind=None):
    query = (Inspection.select(Inspection, Task).join(Task)
             .order_by(Inspection.inspected_at.desc(), Inspection.id.desc()))
    for column, value in ((Task.supplier, supplier_id), (Inspection.task, task_id), (Inspection.batch, batch_id),
                          (Inspection.result, result), (Inspection.source, source), (Inspection.kind, kind)):
        if value is not None:
            query = query.where(column == value)
    return query


def get_inspection(inspection_id, supplier_id=None):
    query = Inspection.select(Inspection, Task).join(Task).where(Inspection.id == inspection_id)
    if supplier_id is not None:
        query = query.where(Task.supplier == supplier_id)
    row = query.first()
    if row is None:
        raise not_found("检验记录")
    return load_inspections([row])[0]


def _reading_type_error(item):
    if item.check_type == "numeric":
        unit = f"，单位 {item.unit}" if item.unit else ""
        return Invalid("wrong_reading_type", f"「{item.name}」是数值项目，请填写 value（数字{unit}）", field="readings",
                       extra={"item_id": item.id})
    return Invalid("wrong_reading_type", f"「{item.name}」是合格/不合格项目，请填写 passed（true 或 false）",
                   field="readings", extra={"item_id": item.id})


def _judge(item, reading):
    """(passed, value) of one reading, or a wrong-type error."""
    value, passed = reading.get("value"), reading.get("passed")
    if item.check_type == "numeric":
        if passed is not None or isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _reading_type_error(item)
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            raise _reading_type_error(item) from None
        if not number.is_finite() or abs(number) > NUMERIC_LIMIT:
            raise Invalid("value_out_of_range", f"「{item.name}」的读数超出可记录的范围", field="readings")
        number = number.quantize(Decimal("0.0001"))
        low = None if item.min_value is None else Decimal(item.min_value)
        high = None if item.max_value is None else Decimal(item.max_value)
        ok = (low is None or number >= low) and (high is None or number <= high)
        return ok, number
    if value is not None or not isinstance(passed, bool):
        raise _reading_type_error(item)
    return passed, None


def _check_readings(template, readings):
    """[(item, passed, value, reading)] in item order; errors for unknown, repeated, missing and
    wrongly typed readings and missing required photos."""
    items = {item.id: item for item in template.item_list}
    given = {}
    for reading in readings:
        item = items.get(reading["item_id"])
        if item is None:
            raise Invalid("unknown_check_item", f"检验项目 {reading['item_id']} 不在模板「{template.name}」"
                          f"（第 {template.version} 版）中", field="readings", extra={"item_id": reading["item_id"]})
        if item.id in given:
            raise Invalid("duplicate_reading", f"检验项目「{item.name}」填写了两次", field="readings")
        given[item.id] = reading
    checked = []
    for item in template.item_list:
        reading = given.get(item.id)
        if reading is None:
            raise Invalid("reading_missing", f"缺少检验项目「{item.name}」的结果", field="readings",
                          extra={"item_id": item.id})
        passed, value = _judge(item, reading)
        if item.photo_required and not reading.get("photo_ids"):
            raise Invalid("photo_required", f"检验项目「{item.name}」需要拍照", field="readings",
                          extra={"item_id": item.id})
        checked.append((item, passed, value, reading))
    return checked


def _check_defects(defects, sample_qty):
    merged = {}
    for d in defects or []:
        if d["category"] not in DEFECT_CATEGORIES:
            raise Invalid("unknown_defect_category", f"未知的缺陷类别 {d['category']}", field="defects")
        if d["count"] < 1:
            raise Invalid("invalid_quantity", "缺陷数量必须大于 0", field="defects")
        merged[d["category"]] = merged.get(d["category"], 0) + d["count"]
    total = sum(merged.values())
    if total > sample_qty:
        raise Invalid("defects_exceed_sample", f"缺陷合计 {total} 超过抽样数量 {sample_qty}", field="defects")
    return [{"category": c, "count": n} for c, n in merged.items()], total


def inspect(actor, batch, data, *, staff=None, wechat_user=None):
    """Record an inspection of a batch: by QC staff (`staff`: the verdict) or the supplier's
    self-check (`wechat_user`). A failed QC inspection freezes the batch, opens a nonconformance
    and tells QC; a passing QC re-inspection of a batch sent to rework releases it. → the
    inspection, loaded, with `batch` (fresh) and `nonconformance` (the one it opened, or None)."""
    source = "qc" if staff is not None else "self_check"
    kind = data["kind"]
    with audit.transaction(actor) as log:
        task = lock_task(batch.task_id)
        batch = Batch.get_by_id(batch.id)
        if task.state == "cancelled":
            raise Conflict("task_closed", "任务已取消，不能再检验")
        if batch.status in CLOSED_BATCH_STATUSES:
            raise Conflict("batch_closed", f"批次{batch.batch_no}已{DISPOSITIONS[batch.disposition]}，不能再检验")
        reinspection = batch.status == "frozen" and batch.disposition == "rework"
        if source == "qc" and batch.status == "frozen" and not reinspection:
            raise Conflict("batch_frozen", f"批次{batch.batch_no}已冻结，请先处置（返工后再复检）")
        template = _template_to_use(task, kind, data.get("template_id"))
        sample = data["sample_qty"]
        if sample < 1:
            raise Invalid("invalid_quantity", "抽样数量必须大于 0", field="sample_qty")
        if sample > batch.qty:
            raise Invalid("sample_too_large", f"抽样数量 {sample} 超过批次数量 {batch.qty}", field="sample_qty")
        checked = _check_readings(template, data.get("readings") or [])
        defects, defect_qty = _check_defects(data.get("defects"), sample)
        result = "pass" if all(passed for _, passed, _, _ in checked) else "fail"
        now = utcnow()
        inspection = Inspection.create(
            task=task.id, batch=batch.id, template=template.id, kind=kind, source=source,
            inspector=staff.id if staff else None, self_check_by=wechat_user.id if wechat_user else None,
            result=result, sample_qty=sample, defect_qty=defect_qty, defects=defects or None,
            note=data.get("note"), inspected_at=now)
        by_staff = source == "qc"
        photo_ids = []
        for item, passed, value, reading in checked:
            row = InspectionResult.create(inspection=inspection.id, item=item.id, name=item.name, passed=passed,
                                          value=value, note=reading.get("note"))
            attached = photos.attach(reading.get("photo_ids"), task.supplier_id, inspection=inspection.id,
                                     inspection_result=row.id, by_staff=by_staff)
            photo_ids += [p.id for p in attached]
        attached = photos.attach(data.get("photo_ids"), task.supplier_id, inspection=inspection.id, by_staff=by_staff)
        photo_ids += [p.id for p in attached]
        log.add("inspection.record", "inspection", inspection.id, after={
            "batch_id": batch.id, "task_id": task.id, "kind": kind, "source": source, "result": result,
            "template_id": template.id, "template_version": template.version, "sample_qty": sample,
            "defects": defects, "failed_items": [i.name for i, ok, _, _ in checked if not ok],
            "photo_ids": photo_ids}, reason=data.get("note"))
        opened, later = None, []
        if source == "qc":
            if result == "fail":
                opened = _freeze(actor, log, task, batch, inspection, checked, defects, data, staff, now, later)
            else:
                if photo_ids:  # the QC node shows a passed QC inspection's photos to the customer
                    Photo.update(customer_visible=True).where(Photo.id.in_(photo_ids)).execute()
                if reinspection:
                    _release(actor, log, task, batch, now, "返工后复检合格", later, by_inspection=inspection.id)
            settle_qc_node(log, task.order_id, now, staff.display_name)
        _run(later)
    inspection = get_inspection(inspection.id)
    inspection.batch = Batch.get_by_id(batch.id)
    inspection.nonconformance = opened
    return inspection


def _run(later):
    """What changes alerts, last: an alert change appends its audit entries at once (it joins this
    transaction), so it must come after every other row this transaction locks (the QC node's)."""
    for step in later:
        step()


def _freeze(actor, log, task, batch, inspection, checked, defects, data, staff, now, later):
    """A failed QC inspection: the batch frozen (again, after a failed re-inspection: its rework
    disposition is used up), a nonconformance, a qc_fail alert and one message to QC."""
    before = {"status": batch.status, "disposition": batch.disposition}
    if batch.status == "frozen":  # a failed re-inspection: the reworked NC ends, a new one opens
        _close_ncs(log, batch, now, reason="返工后复检仍不合格，另开不合格单")
    Batch.update(status="frozen", disposition=None, frozen_at=now, released_at=None).where(
        Batch.id == batch.id).execute()
    log.add("batch.freeze", "batch", batch.id, before=before, after={"status": "frozen", "inspection_id": inspection.id},
            reason=f"{INSPECTION_KINDS[inspection.kind]}不合格")
    failed = [f"{item.name}" + (f"（{value}{item.unit or ''}）" if value is not None else "")
              for item, ok, value, _ in checked if not ok]
    described = "；".join(filter(None, [
        f"{INSPECTION_KINDS[inspection.kind]}不合格：" + "、".join(failed) if failed else None,
        "缺陷：" + "、".join(f"{DEFECT_CATEGORIES[d['category']]} {d['count']}" for d in defects) if defects else None]))
    owner_id = data.get("nc_owner_id") or staff.id
    owner = StaffUser.get_or_none((StaffUser.id == owner_id) & StaffUser.active)
    if owner is None:
        raise Invalid("unknown_owner", "不合格单责任人不存在或已停用", field="nc_owner_id")
    nc = Nonconformance.create(task=task.id, inspection=inspection.id, batch=batch.id, owner=owner.id,
                               description=(data.get("nc_description") or "").strip() or described or "检验不合格",
                               due_date=data.get("nc_due_date") or china_date(now) + timedelta(days=NC_DUE_DAYS))
    photos.attach(data.get("nc_photo_ids"), task.supplier_id, nonconformance=nc.id, by_staff=True)
    log.add("nc.open", "nonconformance", nc.id, after={"batch_id": batch.id, "inspection_id": inspection.id,
                                                      "owner_id": owner.id, "due_date": nc.due_date,
                                                      "description": nc.description})
    order = Order.get_by_id(task.order_id)
    supplier = Supplier.get_by_id(task.supplier_id)
    message = f"批次 {batch.batch_no} {nc.description}，已冻结"
    _tell_qc(order, task, supplier, batch, nc, owner)
    later.append(lambda: alerts.raise_alert(actor, task, "qc_fail", "orange", message=message[:500]))
    return Nonconformance.get_by_id(nc.id)


def qc_recipients(order):
    """QC staff on WeCom; when there are none, the task's manager (alert_routing's rule)."""
    ids = [s.wecom_userid for s in StaffUser.select(StaffUser.wecom_userid)
           .where(StaffUser.active & (StaffUser.role == "qc") & StaffUser.wecom_userid.is_null(False))
           .order_by(StaffUser.id)]
    return ids or alert_routing.Recipients().managers(order)


def _tell_qc(order, task, supplier, batch, nc, owner):
    """One WeCom message to QC per nonconformance (its dedup key), in this transaction."""
    text = (f"**质检不合格：批次已冻结**\n订单 {order.order_no} · 任务 {task.task_no} {task.process} · {supplier.name}\n"
            f"批次 {batch.batch_no}（{batch.qty} {order.unit}）：{nc.description}\n"
            f"不合格单 #{nc.id}，责任人 {owner.display_name}，处理期限 {nc.due_date:%m月%d日}\n"
            f"请处置：返工、退货、让步接收或报废\n查看：{STAFF_WHERE}")
    alert_routing.wecom(qc_recipients(order), text, f"qcfail-nc{nc.id}")


def _close_ncs(log, batch, now, disposition=None, reason=None):
    ncs = list(Nonconformance.select().where((Nonconformance.batch == batch.id) & (Nonconformance.status == "open")))
    for nc in ncs:
        fields = {"status": "closed", "closed_at": now}
        if disposition and nc.disposition is None:
            fields.update(disposition=disposition, disposition_reason=reason, disposed_at=now)
        Nonconformance.update(**fields).where(Nonconformance.id == nc.id).execute()
        log.add("nc.close", "nonconformance", nc.id, before={"status": "open"}, after={"status": "closed"},
                reason=reason)


def _unfrozen(actor, task, reason):
    """No batch of the task frozen any more: its qc_fail alert is resolved by the system."""
    still = Batch.select().where((Batch.task == task.id) & (Batch.status == "frozen")).exists()
    if still:
        return
    alert = Alert.get_or_none((Alert.task == task.id) & (Alert.kind == "qc_fail") & (Alert.open_key == alerts.OPEN))
    if alert is not None:
        alerts.resolve_by_system(actor, alert.id, reason)


def _release(actor, log, task, batch, now, reason, later, by_inspection=None):
    Batch.update(status="released", released_at=now).where(Batch.id == batch.id).execute()
    log.add("batch.release", "batch", batch.id, before={"status": "frozen", "disposition": batch.disposition},
            after={"status": "released", **({"inspection_id": by_inspection} if by_inspection else {})}, reason=reason)
    _close_ncs(log, batch, now, reason=reason)
    later.append(lambda: _unfrozen(actor, task, reason))


def dispose(actor, staff, batch, disposition, reason):
    """QC decides what happens to a frozen batch: rework (re-inspect; a pass releases it),
    concession (then release it), return or scrap (the batch is closed). → the batch."""
    if disposition not in DISPOSITIONS:
        raise Invalid("validation_error", "处置方式必须是 rework、return、concession、scrap 之一", field="disposition")
    with audit.transaction(actor) as log:
        task = lock_task(batch.task_id)
        batch = Batch.get_by_id(batch.id)
        if batch.status != "frozen":
            raise Conflict("batch_not_frozen", f"批次{batch.batch_no}未冻结，不能处置")
        now = utcnow()
        fields = {"disposition": disposition}
        if disposition in ("return", "scrap"):
            fields.update(status="returned" if disposition == "return" else "scrapped",
                          qty_accepted=0, qty_rejected=batch.qty_received)
        Batch.update(**fields).where(Batch.id == batch.id).execute()
        (Nonconformance.update(disposition=disposition, disposition_reason=reason[:255], disposed_at=now)
         .where((Nonconformance.batch == batch.id) & (Nonconformance.status == "open")).execute())
        log.add("batch.dispose", "batch", batch.id, before={"status": batch.status, "disposition": batch.disposition},
                after=fields, reason=reason)
        settle_qc_node(log, task.order_id, now, staff.display_name if staff else None)
        if disposition in ("return", "scrap"):
            _count_rejected(log, task.id)
            _close_ncs(log, batch, now, reason=reason)
            _unfrozen(actor, task, reason)
    return load_batch(batch.id)


def release(actor, staff, batch, reason):
    """QC releases a frozen batch accepted by concession. A batch sent to rework is released by
    its passing re-inspection; one without a disposition must be disposed first. → the batch."""
    with audit.transaction(actor) as log:
        task = lock_task(batch.task_id)
        batch = Batch.get_by_id(batch.id)
        if batch.status != "frozen":
            raise Conflict("batch_not_frozen", f"批次{batch.batch_no}未冻结，无需放行")
        if batch.disposition is None:
            raise Conflict("disposition_required", "请先处置（返工、退货、让步接收或报废），再放行")
        if batch.disposition == "rework":
            raise Conflict("reinspection_required", "返工的批次须复检合格后自动放行")
        now, later = utcnow(), []
        _release(actor, log, task, batch, now, reason, later)
        settle_qc_node(log, task.order_id, now, staff.display_name if staff else None)
        _run(later)
    return load_batch(batch.id)


# --- nonconformances --------------------------------------------------------------------------------

def ncs_query(*, status=None, supplier_id=None, task_id=None, batch_id=None):
    query = (Nonconformance.select(Nonconformance, Task).join(Task)
             .order_by(Nonconformance.status.desc(), Nonconformance.due_date, Nonconformance.id))
    for column, value in ((Nonconformance.status, status), (Task.supplier, supplier_id),
                          (Nonconformance.task, task_id), (Nonconformance.batch, batch_id)):
        if value is not None:
            query = query.where(column == value)
    return query


def with_nc_photos(rows):
    """Each nonconformance's photos and owner, in two queries for a whole page."""
    _with_people(rows, "owner")
    return photos.load_photos(rows, Photo.nonconformance)


def _with_people(rows, field):
    """Set the staff user behind `field` on each row from one query (not one per row)."""
    ids = {getattr(r, f"{field}_id") for r in rows} - {None}
    people = {u.id: u for u in StaffUser.select().where(StaffUser.id.in_(ids))} if ids else {}
    for row in rows:
        person = people.get(getattr(row, f"{field}_id"))
        if person is not None:
            setattr(row, field, person)


def get_nc(nc_id):
    nc = Nonconformance.select(Nonconformance, Task).join(Task).where(Nonconformance.id == nc_id).first()
    if nc is None:
        raise not_found("不合格单")
    return with_nc_photos([nc])[0]


def update_nc(actor, nc_id, data):
    """QC changes an open nonconformance's owner, due date or description, or adds photos."""
    with audit.transaction(actor) as log:
        nc = get_nc(nc_id)
        lock_task(nc.task_id)
        if nc.status != "open":
            raise Conflict("nc_closed", "不合格单已关闭，不能再修改")
        fields = {}
        if data.get("owner_id") is not None:
            owner = StaffUser.get_or_none((StaffUser.id == data["owner_id"]) & StaffUser.active)
            if owner is None:
                raise Invalid("unknown_owner", "责任人不存在或已停用", field="owner_id")
            fields["owner"] = owner.id
        if data.get("due_date") is not None:
            fields["due_date"] = data["due_date"]
        if data.get("description"):
            fields["description"] = data["description"].strip()
        if fields:
            Nonconformance.update(**fields).where(Nonconformance.id == nc.id).execute()
        attached = photos.attach(data.get("photo_ids"), nc.task.supplier_id, nonconformance=nc.id, by_staff=True)
        after = {("owner_id" if k == "owner" else k): v for k, v in fields.items()}
        if attached:
            after["photo_ids"] = [p.id for p in attached]
        if after:
            was = {"owner_id": nc.owner_id, "due_date": nc.due_date, "description": nc.description}
            log.add("nc.update", "nonconformance", nc.id, before={k: was[k] for k in after if k in was},
                    after=after, reason=data.get("reason"))
    return get_nc(nc_id)


# --- the order's QC node ------------------------------------------------------------------------------

def settle_qc_node(log, order_id, now, by=None):
    """The order's QC node from its batches and QC inspections (the caller holds a task lock):
    delayed (red) while a batch is frozen; done once every open task has a passing QC final
    inspection (or it was done before); in progress once QC has inspected anything; else pending.
    Tells the node's subscribers when it has just become done."""
    node = NodeInstance.get_or_none((NodeInstance.order == order_id) & (NodeInstance.code == QC_NODE))
    if node is None:
        return None
    task_ids = [t.id for t in Task.select(Task.id).where((Task.order == order_id) & (Task.state != "cancelled"))]
    if not task_ids:
        return node
    frozen = Batch.select().where(Batch.task.in_(task_ids) & (Batch.status == "frozen")).exists()
    qc = Inspection.select().where(Inspection.task.in_(task_ids) & (Inspection.source == "qc"))
    passed_final = {i.task_id for i in qc.where((Inspection.kind == "final") & (Inspection.result == "pass"))}
    if frozen:
        state = "delayed"
    elif set(task_ids) <= passed_final or node.done_at is not None:
        state = "done"
    elif qc.exists():
        state = "in_progress"
    else:
        state = "pending"
    if state == node.state:
        return node
    fields = {"state": state}
    if state != "pending" and node.started_at is None:
        fields["started_at"] = now
    if state == "done" and node.done_at is None:
        fields.update(done_at=now, done_by=by)
    NodeInstance.update(**fields).where(NodeInstance.id == node.id).execute()
    log.add("node.qc", "node", node.id, before={"state": node.state}, after={"state": state, "code": QC_NODE},
            reason={"delayed": "有批次质检不合格已冻结", "done": "各任务终检合格"}.get(state))
    node = NodeInstance.get_by_id(node.id)
    if state == "done":
        nodes.notify_subscribers(node)
    return node


def _customer_inspections_query():
    """The passed QC inspections of an order's open tasks: never a failure, a self-check or a
    nonconformance. Keyed by the order (not a list of task ids), so its SQL is written once."""
    open_tasks = Task.select(Task.id).where((Task.order == Slot("order")) & (Task.state != "cancelled"))
    return Inspection.select(Inspection.id).where(
        Inspection.task.in_(open_tasks) & (Inspection.source == "qc") & (Inspection.result == "pass"))


# What CustomerInspectionOut shows, newest first; and the photos a customer may see of them.
_CUSTOMER_INSPECTIONS = Prepared(lambda: _customer_inspections_query().select(
    Inspection.id, Inspection.kind, Inspection.result, Inspection.sample_qty, Inspection.inspected_at)
    .order_by(Inspection.inspected_at.desc(), Inspection.id.desc()))
_CUSTOMER_INSPECTION_PHOTOS = Prepared(lambda: Photo.select(*photos.CUSTOMER_COLUMNS, Photo.inspection).where(
    Photo.inspection.in_(_customer_inspections_query()) & photos.CUSTOMER_VISIBLE).order_by(Photo.id))


def customer_inspections(order_id):
    """Passed QC inspections of the order's open tasks (newest first), each with its `photos` a
    customer may see (photos.CUSTOMER_VISIBLE, oldest first): only the columns the customer's
    timeline shows, in two statements (one without any inspection)."""
    rows = _CUSTOMER_INSPECTIONS.rows(order=order_id)
    if rows:
        by_id = {row.id: row for row in rows}
        for row in rows:
            row.photos = []
        for photo in _CUSTOMER_INSPECTION_PHOTOS.rows(order=order_id):
            by_id[photo.inspection_id].photos.append(photo)
    return rows

