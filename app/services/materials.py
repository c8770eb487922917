"""Materials sent to suppliers (issue 10, item 5): the material master and lots, issuing a lot to a
task's supplier by scanning its label, what comes back, each task's bill of quantities, the
balance and its flags, the trace between batches and lots, and the material loss rate.

Rules (README "Materials"):

- **One issue per lot and task.** Scanning a lot's label for a task records the issue once: the
  same scan again (same quantity) answers the existing issue unchanged, by whoever scans it; the
  same lot with another quantity is refused (409 lot_already_issued), never a second issue.
  Several lots of one item may go to a task, each its own issue.
- **Quantities** are positive decimals with at most three places, in the item's unit: another
  unit is refused (unit_mismatch). A lot issues at most what it still holds: its quantity − what
  was issued from it + what came back good or as leftover (scrap does not go back to stock).
- **Returns** (good material, scrap, leftover) are recorded against an issue; together they never
  exceed what was issued (return_exceeds_issue).
- **Balance** per task and item, with the task's cumulative reported good quantity (`qty_done`)
  as what was produced:

      consumed  = bill qty_per_unit × qty_done
      balance   = issued − consumed − returned (good + leftover) − scrapped
      need      = bill qty_per_unit × max(0, planned_qty − qty_done)   (what the rest of the plan uses)
      shortage         when the task is open and balance < need          (shortage_qty = need − max(0, balance))
      over_consumption when −balance > tolerance_pct × consumed           (over_qty = −balance)

  An item issued without a bill line has no planned use: its consumption is 0, it is never short
  or over-consumed, and whatever is not returned stays on the balance.
- **Trace**: the lots a batch used are declared per batch (staff, or the task's supplier), only
  lots issued to the batch's task and never more of a lot across the task's batches than was
  issued. A batch without a declaration shows the lots issued to its task, marked `declared:
  false` (presumed, without quantities); a lot's forward trace shows the batches that declared it
  and, presumed, the undeclared batches of the tasks it was issued to, and the orders of all of them.
- **Loss rate** (`loss_rate`): see its docstring.
"""
import secrets
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from decimal import Decimal, InvalidOperation

from app.domain.errors import Conflict, Invalid, NotFound
from app.domain.vocabulary import FINAL_STATES
from app.extensions import is_mysql
from app.models import (
    Batch,
    BatchMaterial,
    MaterialBillLine,
    MaterialIssue,
    MaterialItem,
    MaterialLot,
    MaterialReturn,
    Order,
    Supplier,
    Task,
)
from app.services import audit
from app.services.progress import lock_task
from app.timeutil import CHINA, to_utc_naive, utcnow

PLACES = Decimal("0.001")
ZERO = Decimal("0.000")
MAX_QTY = Decimal("9999999999999.999")  # what DECIMAL(16, 3) holds
LOT_CODE_PREFIX = "m."  # never in a task's code (token_urlsafe has no dot): a scan tells them apart


# --- quantities ------------------------------------------------------------------------------------

def q(value):
    """A stored or computed quantity as Decimal with three places (SQLite may hand back floats)."""
    if value is None:
        return ZERO
    return Decimal(str(value)).quantize(PLACES)


def checked_qty(value, name, allow_zero=False):
    """A quantity from a caller: a number, not negative (zero only where allowed), three places."""
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise Invalid("invalid_quantity", f"{name}必须是数字") from None
    if not amount.is_finite():
        raise Invalid("invalid_quantity", f"{name}必须是数字")
    if amount < 0:
        raise Invalid("negative_quantity", f"{name}不能为负数")
    if amount == 0 and not allow_zero:
        raise Invalid("zero_quantity", f"{name}必须大于 0")
    if amount > MAX_QTY:  # first: quantizing a huge number overflows the decimal context
        raise Invalid("quantity_too_large", f"{name}过大")
    if amount != amount.quantize(PLACES):
        raise Invalid("too_many_decimals", f"{name}最多三位小数")
    return amount.quantize(PLACES)


def fmt(amount):
    """A quantity as people write it: 12.5, not 12.500."""
    text = format(q(amount).normalize(), "f")
    return text


# --- master data -----------------------------------------------------------------------------------

def create_item(actor, code, name, unit, spec=None):
    with audit.transaction(actor) as log:
        if MaterialItem.get_or_none(MaterialItem.code == code):
            raise Conflict("material_code_taken", f"物料编码 {code} 已存在", field="code")
        item = MaterialItem.create(code=code, name=name, unit=unit, spec=spec, created_at=utcnow())
        log.add("material.item", "material_item", item.id, after={"code": code, "name": name, "unit": unit})
    return item


def items_query(text=None):
    query = MaterialItem.select().order_by(MaterialItem.code)
    if text:
        query = query.where(MaterialItem.code.contains(text) | MaterialItem.name.contains(text))
    return query


def item(item_id):
    found = MaterialItem.get_or_none(MaterialItem.id == item_id)
    if found is None:
        raise NotFound("not_found", "物料不存在")
    return found


def create_lot(actor, staff, lot_no, item_id, quantity, note=None):
    amount = checked_qty(quantity, "批次数量")
    with audit.transaction(actor) as log:
        material = item(item_id)
        if MaterialLot.get_or_none(MaterialLot.lot_no == lot_no):
            raise Conflict("lot_no_taken", f"批次号 {lot_no} 已存在", field="lot_no")
        lot = MaterialLot.create(lot_no=lot_no, item=material, quantity=amount, note=note,
                                 qr_code=LOT_CODE_PREFIX + secrets.token_urlsafe(12),
                                 created_by=staff.id if staff else None, created_at=utcnow())
        log.add("material.lot", "material_lot", lot.id,
                after={"lot_no": lot_no, "item": material.code, "quantity": amount})
    return lot_detail(lot.id)


def lots_query(item_id=None, text=None):
    query = MaterialLot.select(MaterialLot, MaterialItem).join(MaterialItem).order_by(MaterialLot.id.desc())
    if item_id is not None:
        query = query.where(MaterialLot.item == item_id)
    if text:
        query = query.where(MaterialLot.lot_no.contains(text))
    return query


def with_stock(lots):
    """Load `issued_qty`, `back_qty` (good + leftover returned) and `available_qty` onto lots, in two queries."""
    ids = [lot.id for lot in lots]
    issued, back = defaultdict(Decimal), defaultdict(Decimal)
    if ids:
        for row in MaterialIssue.select(MaterialIssue.lot, MaterialIssue.qty).where(MaterialIssue.lot.in_(ids)):
            issued[row.lot_id] += q(row.qty)
        returns = (MaterialReturn.select(MaterialReturn, MaterialIssue.lot).join(MaterialIssue)
                   .where(MaterialIssue.lot.in_(ids)))
        for row in returns:
            back[row.issue.lot_id] += q(row.good_qty) + q(row.leftover_qty)
    for lot in lots:
        lot.issued_qty, lot.back_qty = q(issued[lot.id]), q(back[lot.id])
        lot.available_qty = q(lot.quantity) - lot.issued_qty + lot.back_qty
    return lots


def lot_detail(lot_id):
    rows = with_stock(list(lots_query().where(MaterialLot.id == lot_id)))
    if not rows:
        raise NotFound("unknown_lot", "物料批次不存在")
    return rows[0]


def scanned_code(text):
    """The code in what a scanner read: the code itself or the label's whole URL (…/s/<code>)."""
    return (text or "").strip().rstrip("/").rsplit("/", 1)[-1]


def find_lot(lot_id=None, lot_code=None, lock=False):
    """The lot by id, or by its scanned label (code or URL) or its lot number. Unknown: 404 unknown_lot."""
    query = MaterialLot.select(MaterialLot, MaterialItem).join(MaterialItem)
    if lot_id is not None:
        query = query.where(MaterialLot.id == lot_id)
    else:
        code = scanned_code(lot_code)
        query = query.where((MaterialLot.qr_code == code) | (MaterialLot.lot_no == code))
    lot = (query.for_update() if lock and is_mysql() else query).first()
    if lot is None:
        raise NotFound("unknown_lot", "物料批次不存在：标签无效或批次未登记", field="lot_code" if lot_id is None else "lot_id")
    return lot


def _check_unit(unit, expected, what):
    if (unit or "").strip() != expected:
        raise Invalid("unit_mismatch", f"单位不符：{what}的单位是「{expected}」，不是「{unit}」", field="unit")


# --- issues and returns ----------------------------------------------------------------------------

def issue(actor, staff, *, task_id, qty, unit, lot_id=None, lot_code=None, note=None):
    """Issue material of a lot (scanned or by id) to a task's supplier. → (issue, created): a repeat
    of the same scan answers the existing issue with created False and stores nothing."""
    amount = checked_qty(qty, "发料数量")
    with audit.transaction(actor) as log:
        lot = find_lot(lot_id, lot_code, lock=True)
        found = Task.get_or_none(Task.id == task_id)
        if found is None:
            raise NotFound("not_found", "任务不存在", field="task_id")
        task = lock_task(task_id)
        material = lot.item
        _check_unit(unit, material.unit, f"物料 {material.code}")
        existing = MaterialIssue.get_or_none((MaterialIssue.lot == lot.id) & (MaterialIssue.task == task.id))
        if existing is not None:
            if q(existing.qty) == amount:
                return issue_detail(existing.id), False
            raise Conflict("lot_already_issued",
                           f"批次 {lot.lot_no} 已发给任务 {task.task_no}（{fmt(existing.qty)} {material.unit}），"
                           "同一批次不会重复发料", extra={"issue_id": existing.id})
        if task.state in FINAL_STATES:
            raise Conflict("task_closed", "任务已完成或已取消，不能再发料")
        available = with_stock([lot])[0].available_qty
        if amount > available:
            raise Invalid("lot_insufficient",
                          f"批次 {lot.lot_no} 可发数量只有 {fmt(available)} {material.unit}", field="qty")
        row = MaterialIssue.create(lot=lot.id, item=material.id, task=task.id, supplier=task.supplier_id, qty=amount,
                                   unit=material.unit, note=note, issued_by=staff.id if staff else None,
                                   created_at=utcnow())
        log.add("material.issue", "material_issue", row.id,
                after={"lot": lot.lot_no, "item": material.code, "task": task.task_no, "supplier_id": task.supplier_id,
                       "qty": amount, "unit": material.unit}, reason=note)
    return issue_detail(row.id), True


def issues_query(*, task_id=None, supplier_id=None, lot_id=None, item_id=None):
    query = (MaterialIssue.select(MaterialIssue, MaterialLot, MaterialItem, Task, Supplier)
             .join(MaterialLot, on=(MaterialIssue.lot == MaterialLot.id))
             .switch(MaterialIssue).join(MaterialItem, on=(MaterialIssue.item == MaterialItem.id))
             .switch(MaterialIssue).join(Task, on=(MaterialIssue.task == Task.id))
             .switch(MaterialIssue).join(Supplier, on=(MaterialIssue.supplier == Supplier.id))
             .order_by(MaterialIssue.id.desc()))
    for column, value in ((MaterialIssue.task, task_id), (MaterialIssue.supplier, supplier_id),
                          (MaterialIssue.lot, lot_id), (MaterialIssue.item, item_id)):
        if value is not None:
            query = query.where(column == value)
    return query


def with_returns(issues):
    """Load `returns` (oldest first) and the totals `good_qty`, `scrap_qty`, `leftover_qty`,
    `returned_qty` (all three) and `outstanding_qty` (issued − returned) onto issues, in one query."""
    ids = [i.id for i in issues]
    by_issue = defaultdict(list)
    if ids:
        for row in MaterialReturn.select().where(MaterialReturn.issue.in_(ids)).order_by(MaterialReturn.id):
            by_issue[row.issue_id].append(row)
    for i in issues:
        i.return_list = by_issue[i.id]
        i.good_qty = q(sum((q(r.good_qty) for r in i.return_list), ZERO))
        i.scrap_qty = q(sum((q(r.scrap_qty) for r in i.return_list), ZERO))
        i.leftover_qty = q(sum((q(r.leftover_qty) for r in i.return_list), ZERO))
        i.returned_qty = i.good_qty + i.scrap_qty + i.leftover_qty
        i.outstanding_qty = q(i.qty) - i.returned_qty
    return issues


def issue_detail(issue_id, supplier_id=None):
    """One issue with its returns; with `supplier_id`, only if it went to that supplier (else 404)."""
    query = issues_query().where(MaterialIssue.id == issue_id)
    if supplier_id is not None:
        query = query.where((MaterialIssue.supplier == supplier_id) & (Task.supplier == supplier_id))
    rows = with_returns(list(query))
    if not rows:
        raise NotFound("not_found", "发料记录不存在")
    return rows[0]


def record_return(actor, staff, issue_id, *, unit, good_qty=0, scrap_qty=0, leftover_qty=0, note=None):
    """Material back from the supplier against an issue: good, scrap, leftover. → the issue."""
    good = checked_qty(good_qty, "合格退料数量", allow_zero=True)
    scrap = checked_qty(scrap_qty, "废料数量", allow_zero=True)
    leftover = checked_qty(leftover_qty, "余料数量", allow_zero=True)
    total = good + scrap + leftover
    if total == 0:
        raise Invalid("empty_return", "退回数量不能全为 0")
    with audit.transaction(actor) as log:
        query = MaterialIssue.select().where(MaterialIssue.id == issue_id)
        locked = (query.for_update() if is_mysql() else query).first()
        if locked is None:
            raise NotFound("not_found", "发料记录不存在")
        current = issue_detail(issue_id)
        _check_unit(unit, current.unit, "该发料记录")
        if current.returned_qty + total > q(current.qty):
            raise Invalid("return_exceeds_issue",
                          f"退回数量超过发料数量：发料 {fmt(current.qty)} {current.unit}，已退回 "
                          f"{fmt(current.returned_qty)} {current.unit}，本次 {fmt(total)} {current.unit}",
                          field="good_qty", extra={"issued": fmt(current.qty), "returned": fmt(current.returned_qty)})
        MaterialReturn.create(issue=issue_id, good_qty=good, scrap_qty=scrap, leftover_qty=leftover, note=note,
                              recorded_by=staff.id if staff else None, created_at=utcnow())
        log.add("material.return", "material_issue", issue_id,
                before={"returned": current.returned_qty},
                after={"good": good, "scrap": scrap, "leftover": leftover, "returned": current.returned_qty + total},
                reason=note)
    return issue_detail(issue_id)


def confirm_receipt(actor, user, issue_id):
    """The supplier confirms the issued material arrived (once; again changes nothing). → the issue."""
    with audit.transaction(actor) as log:
        found = issue_detail(issue_id, supplier_id=user.supplier_id)
        if found.received_at is None:
            now = utcnow()
            updated = (MaterialIssue.update(received_at=now, received_by=user.id)
                       .where((MaterialIssue.id == issue_id) & MaterialIssue.received_at.is_null()).execute())
            if updated:
                log.add("material.receive", "material_issue", issue_id, after={"received_at": now})
    return issue_detail(issue_id)


# --- bill of quantities and balance ----------------------------------------------------------------

def set_bill(actor, task_id, lines):
    """Replace a task's bill of quantities: [{item_id, qty_per_unit, tolerance_pct}]. → the balance."""
    seen, cleaned = set(), []
    for index, line in enumerate(lines):
        if line["item_id"] in seen:
            raise Invalid("duplicate_item", "同一物料在用量清单中只能出现一次", field=f"lines[{index}].item_id")
        seen.add(line["item_id"])
        cleaned.append((line["item_id"], checked_qty(line["qty_per_unit"], "单位用量"),
                        float(line.get("tolerance_pct") or 0.0)))
    with audit.transaction(actor) as log:
        if Task.get_or_none(Task.id == task_id) is None:
            raise NotFound("not_found", "任务不存在")
        task = lock_task(task_id)
        known = {i.id: i for i in MaterialItem.select().where(MaterialItem.id.in_(list(seen)))} if seen else {}
        for index, (item_id, _, _) in enumerate(cleaned):
            if item_id not in known:
                raise NotFound("not_found", "物料不存在", field=f"lines[{index}].item_id")
        before = [{"item": line.item.code, "qty_per_unit": q(line.qty_per_unit), "tolerance_pct": line.tolerance_pct}
                  for line in MaterialBillLine.select(MaterialBillLine, MaterialItem).join(MaterialItem)
                  .where(MaterialBillLine.task == task.id).order_by(MaterialBillLine.id)]
        MaterialBillLine.delete().where(MaterialBillLine.task == task.id).execute()
        now = utcnow()
        for item_id, per_unit, tolerance in cleaned:
            MaterialBillLine.create(task=task.id, item=item_id, qty_per_unit=per_unit, tolerance_pct=tolerance,
                                    created_at=now)
        after = [{"item": known[i].code, "qty_per_unit": p, "tolerance_pct": t} for i, p, t in cleaned]
        log.add("material.bill", "task", task.id, before=before, after=after)
    return task_balance(task_id)


@dataclass
class BalanceLine:
    item: MaterialItem
    qty_per_unit: Decimal = None  # None: issued without a bill line
    tolerance_pct: float = 0.0
    issued: Decimal = ZERO
    good: Decimal = ZERO
    leftover: Decimal = ZERO
    scrapped: Decimal = ZERO
    consumed: Decimal = ZERO
    balance: Decimal = ZERO
    need: Decimal = ZERO
    shortage: bool = False
    shortage_qty: Decimal = ZERO
    over_consumption: bool = False
    over_qty: Decimal = ZERO

    @property
    def unit(self):
        return self.item.unit

    @property
    def returned(self):
        return self.good + self.leftover


@dataclass
class TaskBalance:
    task: Task
    lines: list = field(default_factory=list)
    issues: list = field(default_factory=list)

    @property
    def produced_qty(self):
        return self.task.qty_done

    @property
    def shortage(self):
        return any(line.shortage for line in self.lines)

    @property
    def over_consumption(self):
        return any(line.over_consumption for line in self.lines)


def _compute(line, task):
    per_unit = line.qty_per_unit
    if per_unit is not None:
        line.consumed = q(per_unit * task.qty_done)
        line.need = q(per_unit * max(0, task.planned_qty - task.qty_done))
    line.balance = line.issued - line.consumed - line.returned - line.scrapped
    if per_unit is not None and task.state not in FINAL_STATES and line.balance < line.need:
        line.shortage, line.shortage_qty = True, line.need - max(line.balance, ZERO)
    allowed = q(Decimal(repr(line.tolerance_pct or 0.0)) * line.consumed)
    if line.balance < 0 and -line.balance > allowed:
        line.over_consumption, line.over_qty = True, -line.balance
    return line


def balances(tasks, supplier_id=None):
    """The balance of each task (TaskBalance, in the tasks' order), in four queries for all of them.
    With `supplier_id`, only the issues to that supplier count (what the supplier's own view shows)."""
    ids = [t.id for t in tasks]
    if not ids:
        return []
    issue_rows = issues_query().where(MaterialIssue.task.in_(ids))
    if supplier_id is not None:
        issue_rows = issue_rows.where(MaterialIssue.supplier == supplier_id)
    issue_rows = with_returns(list(issue_rows.order_by(MaterialIssue.id)))
    bill = (MaterialBillLine.select(MaterialBillLine, MaterialItem).join(MaterialItem)
            .where(MaterialBillLine.task.in_(ids)).order_by(MaterialBillLine.id))
    out = []
    lines = {t.id: {} for t in tasks}
    for row in bill:
        lines[row.task_id][row.item_id] = BalanceLine(item=row.item, qty_per_unit=q(row.qty_per_unit),
                                                      tolerance_pct=row.tolerance_pct)
    by_task = defaultdict(list)
    for i in issue_rows:
        by_task[i.task_id].append(i)
        line = lines[i.task_id].setdefault(i.item_id, BalanceLine(item=i.item))
        line.issued += q(i.qty)
        line.good += i.good_qty
        line.leftover += i.leftover_qty
        line.scrapped += i.scrap_qty
    for task in tasks:
        out.append(TaskBalance(task=task, lines=[_compute(line, task) for line in lines[task.id].values()],
                               issues=by_task[task.id]))
    return out


def _task_query():
    return Task.select(Task, Order, Supplier).join(Order).switch(Task).join(Supplier)


def task_balance(task_id, supplier_id=None):
    task = _task_query().where(Task.id == task_id).first()
    if task is None:
        raise NotFound("not_found", "任务不存在")
    return balances([task], supplier_id)[0]


def supplier_tasks_with_materials(supplier_id):
    """The supplier's tasks that have material issued or a bill: open ones first, then by due date."""
    has_issue = MaterialIssue.select(MaterialIssue.task).where(MaterialIssue.supplier == supplier_id)
    has_bill = MaterialBillLine.select(MaterialBillLine.task)
    return (_task_query()
            .where((Task.supplier == supplier_id) & (Task.id.in_(has_issue) | Task.id.in_(has_bill)))
            .order_by(Task.state.in_(list(FINAL_STATES)), Task.due_date, Task.id))


# --- trace -----------------------------------------------------------------------------------------

def batch_for(batch_id, supplier_id=None):
    """A batch with its task and order; with `supplier_id`, only the supplier's own (else 404)."""
    query = (Batch.select(Batch, Task, Order).join(Task).join(Order).where(Batch.id == batch_id))
    if supplier_id is not None:
        query = query.where((Task.supplier == supplier_id) & (Order.state != "draft"))
    found = query.first()
    if found is None:
        raise NotFound("not_found", "批次不存在")
    return found


def _issued_lot(batch, entry, index):
    """The lot an entry names and its issue to the batch's task. An unknown lot and a lot issued
    elsewhere answer alike, naming only what the caller sent: a supplier learns nothing of other
    suppliers' lots. → (lot, issue)"""
    try:
        lot = find_lot(entry.get("lot_id"), entry.get("lot_code"))
        issued = MaterialIssue.get_or_none((MaterialIssue.lot == lot.id) & (MaterialIssue.task == batch.task_id))
    except NotFound:
        issued = None
    if issued is None:
        sent = entry.get("lot_code") or f"#{entry.get('lot_id')}"
        raise Invalid("lot_not_issued_to_task",
                      f"物料批次 {sent} 不存在或未发给任务 {batch.task.task_no}，不能用于该批次", field=f"lots[{index}]")
    return lot, issued


def declare_batch_lots(actor, batch, lots, note=None):
    """Record the lots a batch used, replacing an earlier declaration: [{lot_id | lot_code, qty}].
    Only lots issued to the batch's task, and never more of a lot over the task's batches than
    was issued to it. → the batch's trace."""
    if not lots:
        raise Invalid("no_lots", "请至少声明一个物料批次", field="lots")
    amounts = [checked_qty(entry["qty"], "用量") for entry in lots]
    with audit.transaction(actor) as log:
        lock_task(batch.task_id)
        chosen = {}
        for index, (entry, amount) in enumerate(zip(lots, amounts, strict=True)):
            lot, issued = _issued_lot(batch, entry, index)
            if lot.id in chosen:
                raise Invalid("duplicate_lot", f"批次 {lot.lot_no} 重复声明", field=f"lots[{index}]")
            used_elsewhere = sum((q(r.qty) for r in BatchMaterial.select(BatchMaterial.qty).join(Batch).where(
                (BatchMaterial.lot == lot.id) & (Batch.task == batch.task_id) & (Batch.id != batch.id))), ZERO)
            if used_elsewhere + amount > q(issued.qty):
                raise Invalid("trace_exceeds_issue",
                              f"物料批次 {lot.lot_no} 发给该任务 {fmt(issued.qty)} {lot.item.unit}，其他批次已用 "
                              f"{fmt(used_elsewhere)}，本批次不能再用 {fmt(amount)}", field=f"lots[{index}].qty")
            chosen[lot.id] = (lot, amount)
        before = [{"lot": r.lot.lot_no, "qty": q(r.qty)} for r in
                  BatchMaterial.select(BatchMaterial, MaterialLot).join(MaterialLot).where(BatchMaterial.batch == batch.id)]
        BatchMaterial.delete().where(BatchMaterial.batch == batch.id).execute()
        now = utcnow()
        label = (actor.label or "")[:100] or None
        for lot, amount in chosen.values():
            BatchMaterial.create(batch=batch.id, lot=lot.id, qty=amount, declared_by=label, note=note, created_at=now)
        log.add("batch.materials", "batch", batch.id, before=before,
                after=[{"lot": lot.lot_no, "qty": amount} for lot, amount in chosen.values()], reason=note)
    return batch_trace(batch)


@dataclass
class TraceLot:
    lot: MaterialLot
    qty: Decimal = None  # None when presumed (nothing declared)
    declared: bool = True

    @property
    def item(self):
        return self.lot.item


def batch_trace(batch):
    """Backward: the lots a batch used. `declared` False: nothing was declared, and these are the
    lots issued to its task (presumed, without quantities)."""
    rows = list(BatchMaterial.select(BatchMaterial, MaterialLot, MaterialItem).join(MaterialLot).join(MaterialItem)
                .where(BatchMaterial.batch == batch.id).order_by(BatchMaterial.id))
    if rows:
        batch.declared, batch.trace_lots = True, [TraceLot(lot=r.lot, qty=q(r.qty)) for r in rows]
    else:
        issued = (MaterialIssue.select(MaterialIssue, MaterialLot, MaterialItem)
                  .join(MaterialLot, on=(MaterialIssue.lot == MaterialLot.id)).join(MaterialItem)
                  .where(MaterialIssue.task == batch.task_id).order_by(MaterialIssue.id))
        batch.declared, batch.trace_lots = False, [TraceLot(lot=i.lot, declared=False) for i in issued]
    return batch


@dataclass
class TraceBatch:
    batch: Batch
    qty: Decimal = None
    declared: bool = True

    @property
    def task(self):
        return self.batch.task

    @property
    def order(self):
        return self.batch.task.order


def lot_trace(lot_id):
    """Forward: where a lot went — its issues (tasks and suppliers), the batches that declared it,
    presumed: the undeclared batches of the tasks it was issued to, and the orders of them all."""
    lot = lot_detail(lot_id)
    lot.issue_list = with_returns(list(issues_query(lot_id=lot.id).order_by(MaterialIssue.id)))
    declared = list(BatchMaterial.select(BatchMaterial, Batch, Task, Order)
                    .join(Batch).join(Task).join(Order)
                    .where(BatchMaterial.lot == lot.id).order_by(Batch.id))
    batches = [TraceBatch(batch=r.batch, qty=q(r.qty)) for r in declared]
    task_ids = [i.task_id for i in lot.issue_list]
    if task_ids:
        undeclared = (Batch.select(Batch, Task, Order).join(Task).join(Order)
                      .where(Batch.task.in_(task_ids)
                             & Batch.id.not_in(BatchMaterial.select(BatchMaterial.batch)))
                      .order_by(Batch.id))
        batches += [TraceBatch(batch=b, declared=False) for b in undeclared]
    lot.trace_batches = batches
    orders = {}
    for i in lot.issue_list:
        orders.setdefault(i.task.order_id, None)
    for b in batches:
        orders[b.order.id] = b.order
    missing = [oid for oid, o in orders.items() if o is None]
    if missing:
        for o in Order.select().where(Order.id.in_(missing)):
            orders[o.id] = o
    lot.trace_orders = sorted(orders.values(), key=lambda o: o.id)
    return lot


# --- loss rate -------------------------------------------------------------------------------------

def _utc_bounds(start, end):
    """China dates start … end (both included) → naive-UTC [from, to)."""
    begin = to_utc_naive(datetime.combine(start, time(), tzinfo=CHINA))
    stop = to_utc_naive(datetime.combine(end + timedelta(days=1), time(), tzinfo=CHINA))
    return begin, stop


@dataclass
class LossFigures:
    lines: int
    rate: float = None  # None: nothing was issued to the supplier's tasks completed in the period
    scrapped_by_unit: dict = field(default_factory=dict)
    unaccounted_by_unit: dict = field(default_factory=dict)
    issued_by_unit: dict = field(default_factory=dict)


def loss_figures(supplier_id, start, end):
    """What `loss_rate` is made of: per unit, what was issued, scrapped and left unaccounted."""
    begin, stop = _utc_bounds(start, end)
    tasks = list(_task_query().where((Task.supplier == supplier_id) & (Task.state == "completed")
                                     & (Task.completed_at >= begin) & (Task.completed_at < stop))
                 .order_by(Task.id))
    shares, figures = [], LossFigures(lines=0)
    for balance in balances(tasks, supplier_id):
        for line in balance.lines:
            if line.issued <= 0:
                continue
            unaccounted = max(line.balance, ZERO)
            shares.append((line.scrapped + unaccounted) / line.issued)
            for bucket, amount in ((figures.issued_by_unit, line.issued), (figures.scrapped_by_unit, line.scrapped),
                                   (figures.unaccounted_by_unit, unaccounted)):
                bucket[line.unit] = q(bucket.get(line.unit, ZERO) + amount)
    figures.lines = len(shares)
    if shares:
        figures.rate = round(float(sum(shares) / len(shares)), 4)
    return figures


def loss_rate(supplier_id, start, end):
    """Material loss rate of a supplier for a period: a share 0 … 1 (None when nothing to measure).

    Over the supplier's tasks **completed** in the period (China dates `start` … `end`, both
    included; a task's material is settled once it is done), for each task and item that had
    material issued (a "line"):

        line loss = (scrapped + unaccounted) / issued
        unaccounted = max(0, balance) = what was issued and neither used by the bill of quantities
                      (qty_per_unit × reported good quantity), nor returned good or as leftover, nor scrapped

    The rate is the mean of the line losses (units differ between items — kg, m, 张 — so their
    quantities are never added across items). Over-consumption (a negative balance) is not loss
    here: scrap already counts the material that went to waste. Items without a bill line count
    everything not returned as unaccounted."""
    return loss_figures(supplier_id, start, end).rate


# --- what a supplier sees ----------------------------------------------------------------------------

def supplier_issues_query(user, task_id=None):
    """The issues to the user's own supplier (on its own tasks)."""
    query = issues_query(supplier_id=user.supplier_id, task_id=task_id).where(Task.supplier == user.supplier_id)
    return query


def supplier_lot_scan(user, code):
    """A scanned lot label, for the supplier it was issued to: the lot and its issues to the
    supplier's tasks. A lot never issued to the supplier is "not found" (it must not learn of it)."""
    lot = MaterialLot.select(MaterialLot, MaterialItem).join(MaterialItem).where(
        MaterialLot.qr_code == scanned_code(code)).first()
    issues = with_returns(list(supplier_issues_query(user).where(MaterialIssue.lot == lot.id))) if lot else []
    if not issues or user.role != "supplier":
        raise NotFound("not_found", "物料批次不存在，或未发给你的单位")
    lot.issue_list = issues
    return lot
