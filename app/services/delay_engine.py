"""The delay engine: periodic scans that turn the plan, the reports and the nodes into alerts.

Every scan is an idempotent scan-and-act job (jobs/periodic.py) run as of `now`:

- `scan_delays`: a task in production predicted or actually DELAY_THRESHOLD_DAYS working days
  late (app/services/schedule.py) has a delay alert, its level by schedule deviation
  (vocabulary.delay_level); caught up → resolved.
- `scan_missing_reports`: a task in production without a report for the last working day whose
  REPORT_CUTOFF (China time) has passed: the supplier is reminded each missed day; from the second
  consecutive missed working day the manager hears of it too; a report resolves it.
- `scan_overdue_nodes`: a supplier node (each task's own part of it) past its planned date and not
  done, one alert per task and node; done → resolved. And an order-level node that belongs to
  staff (订单确认 the manager's, 质检 QC's) on a live order (draft, confirmed, in production) past
  its planned date and not done: one alert per order and node (task NULL), to the order's manager
  (and QC staff for 质检); done, or the order completed, cancelled or on hold → resolved.
- `scan_early_warnings`: a delay known at least EARLY_WARNING_DAYS before the due date: the
  order's subscribed customers are told once per order, in plain words, with the new date.
- `scan_escalations`: an alert nobody acknowledged within ESCALATE_RED_HOURS (red) or
  ESCALATE_OTHER_HOURS escalates one step, manager → executives, once.

Each scan also resolves its kind's open alerts of tasks no longer in production (completed,
cancelled, on hold) — resolved by the system, audited.

Cost: tasks in production are read in id batches of BATCH; each batch costs a fixed number of
queries whatever its size (the tasks with their order and supplier — the delay scan only what it
judges by —, the progress, the batch's open alerts); only a change (a new alert, a new level, a
resolution) costs queries of its own. Rows are read as plain tuples (models.base.fast_tuples). Two runs
at once cannot double anything: a task has one open alert per kind and node (unique index, taken
under the task's row lock) and every message has a unique dedup key.
"""
import gc
from contextlib import contextmanager, nullcontext
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace
from typing import NamedTuple

from peewee import JOIN, fn

from app.domain.vocabulary import (
    DONE_NODE_STATES,
    SUPPLIER_NODE_CODES,
    good_qty,
    missing_report_level,
    node_overdue_level,
)
from app.extensions import current, is_mysql
from app.models import Alert, NodeCompletion, NodeInstance, Order, Supplier, Task
from app.models.base import among, fast_tuples
from app.services import alert_routing, alerts, audit, schedule
from app.services.actors import Actor
from app.timeutil import CHINA, clock_at, parse_instant, utcnow

SYSTEM = Actor.system("延期预警")
BATCH = 1000
# Unresolved alerts, as a condition the (status, level) index serves: queries over every task's
# alerts filter on it, so they read the open alerts, never the history of resolved ones.
UNRESOLVED = Alert.status.in_(("open", "acknowledged")) & Alert.open_key.is_null(False)
CLOSED_REASONS = {"completed": "任务已完成", "cancelled": "任务已取消", "on_hold": "订单已暂停"}
ORDER_CLOSED_REASONS = {"completed": "订单已完成", "cancelled": "订单已取消", "on_hold": "订单已暂停"}
# Orders whose staff nodes are still chased: not yet finished, not paused (a draft's confirmation is due too).
LIVE_ORDER_STATES = ("draft", "confirmed", "in_production")


# --- shared ------------------------------------------------------------------------------------

def _setting(name):
    return current().config[name]


def _local(now):
    return now.replace(tzinfo=UTC).astimezone(CHINA)


def _running(now):
    """A scan's clock: timestamps (alerts, audit, outbox) are `now`'s when one is given."""
    return clock_at(now) if now is not None else nullcontext()


# What a scan reads of a task, its order and its supplier: the progress model's inputs and the
# messages' words, as plain rows (attribute access like the models'). Parsing rows is most of a
# scan's time, so they are narrow and not model instances.
TASK_COLUMNS = {"id": Task.id, "order_id": Task.order, "supplier_id": Task.supplier, "task_no": Task.task_no,
                "process": Task.process, "planned_qty": Task.planned_qty, "planned_start": Task.planned_start,
                "due_date": Task.due_date, "state": Task.state, "qty_done": Task.qty_done,
                "qty_rejected": Task.qty_rejected, "last_report_date": Task.last_report_date,
                "completed_at": Task.completed_at}
ORDER_COLUMNS = {"id": Order.id, "order_no": Order.order_no, "product_name": Order.product_name,
                 "customer_id": Order.customer, "due_date": Order.due_date, "state": Order.state,
                 "created_by_id": Order.created_by}
SUPPLIER_COLUMNS = {"id": Supplier.id, "name": Supplier.name, "active": Supplier.active,
                    "robot_key": Supplier.robot_key, "contact_name": Supplier.contact_name,
                    "contact_phone": Supplier.contact_phone}


def _rows(columns, query):
    names = list(columns)
    return [SimpleNamespace(**dict(zip(names, row, strict=True))) for row in fast_tuples(query)]


# What the delay scan judges a task by (the progress model's inputs, nothing for the messages): a
# named tuple per task, made far faster than a namespace. The tasks it raises an alert for are read
# again with their order and supplier (`_with_parties`), one query per batch that has any.
# qty_rejected: the pieces QC rejected (Task.qty_rejected, kept by the quality service), read in
# the same row, so a QC rejection moves the judgement without another query.
class Judged(NamedTuple):
    id: int
    planned_qty: int
    planned_start: date
    due_date: date
    qty_done: int
    last_report_date: date | None
    qty_rejected: int = 0
    state: str = "in_production"


def _production_ids():
    """The ids of the tasks in production: an index-only read of the task index on (state, id),
    never the finished tasks, however many."""
    return [row[0] for row in fast_tuples(Task.select(Task.id).where(Task.state == "in_production").order_by(Task.id))]


def _in_production(columns, ids):
    return (Task.select(*columns).join(Order, on=(Task.order == Order.id))
            .where(among(Task.id, ids) & (Task.state == "in_production") & (Order.state == "in_production"))
            .order_by(Task.id))


def judged_batches(today, since, size=BATCH):
    """Tasks in production on orders in production as `Judged` rows, with their reports from
    `since` to `today` ({task id: [Report]}), in id batches: one query per batch — the next `size`
    tasks by id on the task index (state, id), each row carrying its reports as one string
    (schedule.reports_column) — and none for the ids. PyMySQL decodes a row column by column in
    Python, which was most of a scan's time, so on MySQL the task's figures come as one text
    column too ("id,planned,start,due,done,rejected,last report")."""
    reports_of = schedule.reports_column(Task.id, since, today)
    if is_mysql():
        columns = [fn.CONCAT_WS(",", Task.id, Task.planned_qty, Task.planned_start, Task.due_date, Task.qty_done,
                                Task.qty_rejected, fn.IFNULL(Task.last_report_date, "")), reports_of]
    else:
        columns = [Task.id, Task.planned_qty, Task.planned_start, Task.due_date, Task.qty_done, Task.last_report_date,
                   Task.qty_rejected, reports_of]
    days, after = {}, 0
    while True:
        rows = fast_tuples(Task.select(*columns).join(Order, on=(Task.order == Order.id))
                           .where((Task.state == "in_production") & (Task.id > after) & (Order.state == "in_production"))
                           .order_by(Task.id).limit(size))
        batch, reports = [], {}
        for row in rows:
            if len(row) == 2:  # MySQL: the task's figures as one text column
                task_id, planned, start, due, done, rejected, last = row[0].split(",")
                task = Judged(int(task_id), int(planned), _day(days, start), _day(days, due), int(done),
                              _day(days, last) if last else None, int(rejected))
            else:
                task = Judged(*row[:7])
            batch.append(task)
            reports[task.id] = schedule.parse_reports(row[-1], days)
        if batch:
            yield batch, reports
        if len(rows) < size:
            return
        after = batch[-1].id


@contextmanager
def _collector_paused():
    """Python's cyclic garbage collector paused for the block (resumed after, also on error). A
    scan makes a few small tuples per report of every task in production, which live until their
    batch is judged: the collector walked them again and again (and, once they were promoted, the
    whole heap with them) — a third of the delay scan's CPU — though they form no cycles: reference
    counting frees each batch as the next one comes."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _day(days, text):
    day = days.get(text)
    if day is None:
        day = days[text] = date.fromisoformat(text)
    return day


def _with_parties(task_ids):
    """{task id: the task as production_batches gives it (order and supplier attached)}: one query."""
    columns = {**TASK_COLUMNS, **{f"o_{k}": v for k, v in ORDER_COLUMNS.items()},
               **{f"s_{k}": v for k, v in SUPPLIER_COLUMNS.items()}}
    query = (Task.select(*columns.values()).join(Order, on=(Task.order == Order.id))
             .switch(Task).join(Supplier, on=(Task.supplier == Supplier.id))
             .where(among(Task.id, task_ids)))
    out = {}
    for row in _rows(columns, query):
        fields = vars(row)
        task = SimpleNamespace(**{k: v for k, v in fields.items() if k in TASK_COLUMNS})
        task.order = SimpleNamespace(**{k[2:]: v for k, v in fields.items() if k.startswith("o_")})
        task.supplier = SimpleNamespace(**{k[2:]: v for k, v in fields.items() if k.startswith("s_")})
        out[task.id] = task
    return out


def production_batches(size=BATCH):
    """Tasks in production on orders in production, with their order and supplier, in id batches.
    One query for the ids of the tasks in production (an index-only read of the task index on
    (state, id): never the finished tasks, however many), then three per batch — the tasks by id,
    their orders, their suppliers."""
    ids = _production_ids()
    for start in range(0, len(ids), size):
        batch = _rows(TASK_COLUMNS, _in_production(TASK_COLUMNS.values(), ids[start:start + size]))
        if not batch:
            continue
        orders = {o.id: o for o in _rows(ORDER_COLUMNS, Order.select(*ORDER_COLUMNS.values())
                                         .where(among(Order.id, {t.order_id for t in batch})))}
        suppliers = {s.id: s for s in _rows(SUPPLIER_COLUMNS, Supplier.select(*SUPPLIER_COLUMNS.values())
                                            .where(among(Supplier.id, {t.supplier_id for t in batch})))}
        for task in batch:
            task.order, task.supplier = orders[task.order_id], suppliers[task.supplier_id]
        yield batch


def _open_alerts(task_ids, kind):
    """The batch's unresolved alerts of one kind, by (task id, node key): one query."""
    query = Alert.select().where(among(Alert.task, task_ids) & (Alert.kind == kind) & Alert.open_key.is_null(False))
    return {(a.task_id, a.node_key): a for a in query}


def _same(alert, level, finding):
    return alert.level == level and all(getattr(alert, k) == v for k, v in finding.items())


def _raise(recipients, task, kind, level, finding, *, node=None, supplier_text=None, supplier_data=None):
    """Record the finding and, when it is new or changed level, its messages — one transaction."""
    with audit.transaction(SYSTEM):
        alert = alerts.raise_alert(SYSTEM, task, kind, level, node=node, **finding)
        if alert.change in ("opened", "level"):
            alert_routing.on_raise(recipients, alert, task, task.order, task.supplier, supplier_text, supplier_data)
    return alert


def live_order_batches(size=BATCH):
    """Live orders (LIVE_ORDER_STATES) in id batches, as plain rows: one query for their ids (the
    order index on (state, …)), then one per batch."""
    ids = [row[0] for row in fast_tuples(Order.select(Order.id).where(Order.state.in_(LIVE_ORDER_STATES))
                                         .order_by(Order.id))]
    for start in range(0, len(ids), size):
        batch = _rows(ORDER_COLUMNS, Order.select(*ORDER_COLUMNS.values())
                      .where(among(Order.id, ids[start:start + size]) & Order.state.in_(LIVE_ORDER_STATES))
                      .order_by(Order.id))
        if batch:
            yield batch


def _resolve_closed(kinds):
    """Resolve the unresolved alerts of `kinds` whose task is no longer in production. The query
    reads only unresolved alerts (few), never the history."""
    closed = (Alert.select(Alert.id, Task.state, Order.state.alias("order_state"))
              .join(Task, on=(Alert.task == Task.id)).join(Order, on=(Task.order == Order.id))
              .where(UNRESOLVED & Alert.kind.in_(kinds)
                     & ((Task.state != "in_production") | (Order.state != "in_production")))
              .objects())
    count = 0
    for row in closed:
        state = row.state if row.state != "in_production" else row.order_state
        if alerts.resolve_by_system(SYSTEM, row.id, CLOSED_REASONS.get(state, "任务不在生产中")):
            count += 1
    return count


def _resolve(alert, reason):
    return 1 if alerts.resolve_by_system(SYSTEM, alert.id, reason) else 0


# --- delay -------------------------------------------------------------------------------------

def delay_message(task, progress, today):
    """The alert's own figures, for staff (never shown to customers)."""
    overdue = "已超过交期" if today > task.due_date else "预计延期"
    eta = f"预计 {progress.eta_date:%m月%d日} 完成" if progress.eta_date else "已停滞，无法估计完成日期"
    remake = f"（已扣除质检不合格须重做的 {task.qty_rejected} 件）" if task.qty_rejected else ""
    return (f"{overdue}：已完成 {progress.actual_qty}/{task.planned_qty} 件{remake}，计划应完成 {progress.expected_qty} 件，"
            f"进度落后 {progress.deviation_pct:.1f}%；{eta}，晚于交期 {task.due_date:%m月%d日} {progress.days_late} 个工作日")


def supplier_delay_text(task, progress, days_late):
    remake = f"（已扣除质检不合格须重做的 {task.qty_rejected} 件）" if task.qty_rejected else ""
    return (f"【进度延期】任务 {task.task_no}（{task.order.product_name} {task.process}）已完成 "
            f"{progress.actual_qty}/{task.planned_qty} 件{remake}，按当前进度将晚于交期 {task.due_date:%m月%d日} "
            f"{days_late} 个工作日。请加快生产，并在{alert_routing.SUPPLIER_WHERE}更新进度或预计完成日期。")


def scan_delays(now=None, batch_size=BATCH):
    """The delay scan. → {"opened", "changed", "resolved", "tasks"} counts.

    Per batch: the tasks (only what the judgement needs) with their reports, their ETA promises,
    their open delay alerts — three queries; a batch with alerts to open or move reads those tasks
    again with their order and supplier for the messages (one more)."""
    now = now or utcnow()
    stats = {"tasks": 0, "opened": 0, "changed": 0, "resolved": 0}
    with _running(now):
        today = _local(now).date()
        threshold = _setting("DELAY_THRESHOLD_DAYS")
        cal = schedule.calendar()
        recipients = alert_routing.Recipients()
        since = schedule.report_window(today, cal)
        with _collector_paused():
            _judge_delays(judged_batches(today, since, batch_size), today, cal, threshold, recipients, stats)
        stats["resolved"] += _resolve_closed(["delay"])
    return stats


def _judge_delays(batches, today, cal, threshold, recipients, stats):
    """Open, move or resolve the delay alerts of each batch of (tasks, their reports)."""
    for batch, reports in batches:
        stats["tasks"] += len(batch)
        progress = schedule.progress_many(batch, today, cal=cal, threshold=threshold, reports=reports)
        open_alerts = _open_alerts([t.id for t in batch], "delay")
        findings = []
        for task in batch:
            p = progress.get(task.id)
            alert = open_alerts.get((task.id, 0))
            # The progress model's level is set exactly when the task is late enough to chase
            # (days_late >= threshold, not finished); that is the delay alert's rule.
            if p is None or p.level is None:
                if alert is not None:
                    stats["resolved"] += _resolve(alert, "进度已追上")
                continue
            finding = {"deviation_pct": p.deviation_pct, "days_late": p.days_late, "eta_date": p.eta_date,
                       "message": delay_message(task, p, today)}
            if alert is None or not _same(alert, p.level, finding):
                findings.append((task.id, p, finding))
        tasks = _with_parties([task_id for task_id, _, _ in findings]) if findings else {}
        for task_id, p, finding in findings:
            task = tasks[task_id]
            done = _raise(recipients, task, "delay", p.level, finding,
                          supplier_text=supplier_delay_text(task, p, p.days_late),
                          supplier_data=alert_routing.subscribe_data(
                              task.task_no, f"进度延期{p.days_late}个工作日", task.due_date, "请加快生产并更新进度"))
            stats["opened" if done.change == "opened" else "changed"] += done.change is not None


# --- missing reports ---------------------------------------------------------------------------

def last_closed_day(now, cal, cutoff):
    """The latest working day whose report cut-off has passed as of `now` (China time)."""
    local = _local(now)
    day = local.date()
    if not (cal.is_working_day(day) and local.time() >= cutoff):
        day -= timedelta(days=1)
        for _ in range(366):
            if cal.is_working_day(day):
                break
            day -= timedelta(days=1)
    return day


def scan_missing_reports(now=None, batch_size=BATCH):
    """The missing-report scan. → counts."""
    now = now or utcnow()
    stats = {"tasks": 0, "opened": 0, "changed": 0, "resolved": 0}
    with _running(now):
        cal = schedule.calendar()
        day = last_closed_day(now, cal, _setting("REPORT_CUTOFF"))
        recipients = alert_routing.Recipients()
        for batch in production_batches(batch_size):
            stats["tasks"] += len(batch)
            open_alerts = _open_alerts([t.id for t in batch], "missing_report")
            for task in batch:
                alert = open_alerts.get((task.id, 0))
                missed = _missed_days(task, day, cal)
                if not missed:
                    if alert is not None:
                        stats["resolved"] += _resolve(alert, "已恢复填报")
                    continue
                since = task.last_report_date
                finding = {"deviation_pct": None, "days_late": missed, "eta_date": None,
                           "message": (f"连续 {missed} 个工作日未填报进度（截至 {day:%m月%d日} "
                                       f"{_setting('REPORT_CUTOFF'):%H:%M}；"
                                       + (f"上次填报 {since:%m月%d日}）" if since else "开工以来未填报）"))}
                level = missing_report_level(missed)
                if alert is not None and _same(alert, level, finding):
                    continue
                with audit.transaction(SYSTEM):
                    done = alerts.raise_alert(SYSTEM, task, "missing_report", level, **finding)
                    if done.change is not None:
                        # The supplier every missed day (one row per day); the manager from the second.
                        text = (f"【漏报提醒】任务 {task.task_no}（{task.order.product_name} {task.process}）"
                                f"{day:%m月%d日} 的进度还没有填报（已连续 {missed} 个工作日）。"
                                f"请在{alert_routing.SUPPLIER_WHERE}填报当日完成数量。")
                        data = alert_routing.subscribe_data(task.task_no, f"连续{missed}个工作日未填报进度", day,
                                                            "请在小程序填报当日进度")
                        alert_routing.reach_supplier(recipients, task, task.order, task.supplier, text, data,
                                                     f"missing{task.id}-{day:%Y%m%d}", level=done.level)
                    if done.change in ("opened", "level"):
                        alert_routing.on_raise(recipients, done, task, task.order, task.supplier)
                stats["opened" if done.change == "opened" else "changed"] += done.change is not None
        stats["resolved"] += _resolve_closed(["missing_report"])
    return stats


def _missed_days(task, day, cal):
    """Working days up to `day` without a report, since the last report (or since the start)."""
    if task.planned_start > day or good_qty(task.qty_done, task.qty_rejected) >= task.planned_qty:
        return 0
    seen = task.last_report_date or task.planned_start - timedelta(days=1)
    seen = max(seen, task.planned_start - timedelta(days=1))
    return max(cal.working_days_between(seen, day), 0) if seen < day else 0


# --- overdue nodes -----------------------------------------------------------------------------

def scan_overdue_nodes(now=None, batch_size=BATCH):
    """The node-overdue scan: each task's own part of a supplier node. → counts."""
    now = now or utcnow()
    stats = {"tasks": 0, "opened": 0, "changed": 0, "resolved": 0}
    with _running(now):
        today = _local(now).date()
        cal = schedule.calendar()
        recipients = alert_routing.Recipients()
        for batch in production_batches(batch_size):
            stats["tasks"] += len(batch)
            task_ids = [t.id for t in batch]
            late_nodes = list(NodeInstance.select()
                              .where(NodeInstance.order.in_(list({t.order_id for t in batch}))
                                     & NodeInstance.code.in_(SUPPLIER_NODE_CODES)
                                     & (NodeInstance.planned_date < today) & (NodeInstance.state != "done"))
                              .order_by(NodeInstance.seq))
            done_parts = {(p.node_id, p.task_id) for p in NodeCompletion.select(NodeCompletion.node, NodeCompletion.task)
                          .where(NodeCompletion.node.in_([n.id for n in late_nodes]) & NodeCompletion.task.in_(task_ids)
                                 & NodeCompletion.state.in_(DONE_NODE_STATES))} if late_nodes else set()
            open_alerts = _open_alerts(task_ids, "node_overdue")
            open_by_task = {}
            for (task_id, node_key), alert in open_alerts.items():
                open_by_task.setdefault(task_id, []).append((node_key, alert))
            by_order = {}
            for node in late_nodes:
                by_order.setdefault(node.order_id, []).append(node)
            for task in batch:
                overdue = {}
                for node in by_order.get(task.order_id, []):
                    days = cal.working_days_between(node.planned_date, today)
                    if (node.id, task.id) not in done_parts and days >= 1:
                        overdue[node.id] = (node, days)
                for node_key, alert in open_by_task.get(task.id, ()):
                    if node_key not in overdue:
                        stats["resolved"] += _resolve(alert, "节点已完成")
                for node_id, (node, days) in overdue.items():
                    alert = open_alerts.get((task.id, node_id))
                    level = node_overdue_level(days)
                    finding = {"deviation_pct": None, "days_late": days, "eta_date": None,
                               "message": f"节点「{node.name}」计划 {node.planned_date:%m月%d日} 完成，"
                                          f"已逾期 {days} 个工作日未完成"}
                    if alert is not None and _same(alert, level, finding):
                        continue
                    text = (f"【节点逾期】任务 {task.task_no}（{task.order.product_name} {task.process}）的节点"
                            f"「{node.name}」计划 {node.planned_date:%m月%d日} 完成，已逾期 {days} 个工作日。"
                            f"完成后请在{alert_routing.SUPPLIER_WHERE}标记节点完成。")
                    data = alert_routing.subscribe_data(task.task_no, f"节点「{node.name}」已逾期", node.planned_date,
                                                        "完成后请在小程序标记")
                    done = _raise(recipients, task, "node_overdue", level, finding, node=node,
                                  supplier_text=text, supplier_data=data)
                    stats["opened" if done.change == "opened" else "changed"] += done.change is not None
        stats["resolved"] += _resolve_closed(["node_overdue"])
        _scan_order_nodes(today, cal, recipients, batch_size, stats)
    return stats


def _scan_order_nodes(today, cal, recipients, batch_size, stats):
    """Order-level nodes (staff's, not in SUPPLIER_NODE_CODES) of live orders: one alert per order
    and node. Per batch of orders three queries: the orders, their late staff nodes, their open
    order-level alerts; then one for the open ones of orders no longer live."""
    stats.setdefault("orders", 0)
    for batch in live_order_batches(batch_size):
        stats["orders"] += len(batch)
        order_ids = [o.id for o in batch]
        late = {}
        query = (NodeInstance.select(NodeInstance.id, NodeInstance.order, NodeInstance.code, NodeInstance.name,
                                     NodeInstance.planned_date)
                 .where(among(NodeInstance.order, order_ids) & NodeInstance.code.not_in(SUPPLIER_NODE_CODES)
                        & (NodeInstance.planned_date < today) & NodeInstance.state.not_in(DONE_NODE_STATES))
                 .order_by(NodeInstance.seq))
        for node in _rows({"id": 0, "order_id": 1, "code": 2, "name": 3, "planned_date": 4}, query):
            days = cal.working_days_between(node.planned_date, today)
            if days >= 1:
                late.setdefault(node.order_id, []).append((node, days))
        open_alerts = {(a.order_id, a.node_key): a for a in Alert.select().where(
            among(Alert.order, order_ids) & (Alert.kind == "node_overdue") & Alert.task.is_null()
            & Alert.open_key.is_null(False))}
        for (order_id, node_key), alert in open_alerts.items():
            if not any(node.id == node_key for node, _ in late.get(order_id, ())):
                stats["resolved"] += _resolve(alert, "节点已完成")
        for order in batch:
            for node, days in late.get(order.id, ()):
                alert = open_alerts.get((order.id, node.id))
                level = node_overdue_level(days)
                message = f"节点「{node.name}」计划 {node.planned_date:%m月%d日} 完成，已逾期 {days} 个工作日未完成"
                if alert is not None and alert.level == level and alert.days_late == days and alert.message == message:
                    continue
                with audit.transaction(SYSTEM):
                    done = alerts.raise_order_alert(SYSTEM, order.id, "node_overdue", level, node=node,
                                                    days_late=days, message=message)
                    if done.change in ("opened", "level"):
                        alert_routing.on_raise_order(recipients, done, order, node)
                stats["opened" if done.change == "opened" else "changed"] += done.change is not None
    closed = (Alert.select(Alert.id, Order.state).join(Order, on=(Alert.order == Order.id))
              .where(UNRESOLVED & (Alert.kind == "node_overdue") & Alert.task.is_null()
                     & Order.state.not_in(LIVE_ORDER_STATES))
              .tuples())
    for alert_id, state in list(closed):
        if alerts.resolve_by_system(SYSTEM, alert_id, ORDER_CLOSED_REASONS.get(state, "订单不在进行中")):
            stats["resolved"] += 1


# --- customer early warning --------------------------------------------------------------------

def scan_early_warnings(now=None, batch_size=BATCH):
    """Orders with an open delay alert known EARLY_WARNING_DAYS or more before the task's due date
    and no early warning yet: the customer is told once (an alert of kind customer_early_warning
    on the latest task records it; it resolves with the delay but is never told again).
    Cost grows with the open delay alerts, read in batches. → counts."""
    now = now or utcnow()
    stats = {"orders": 0, "warned": 0, "customers": 0, "resolved": 0}
    with _running(now):
        today = _local(now).date()
        ahead = timedelta(days=_setting("EARLY_WARNING_DAYS"))
        last = 0
        while True:
            delays = list(Alert.select(Alert, Task, Order)
                          .join(Task, on=(Alert.task == Task.id)).join(Order, on=(Task.order == Order.id))
                          .where((Alert.kind == "delay") & UNRESOLVED & (Alert.id > last)
                                 & (Task.state == "in_production") & (Order.state == "in_production"))
                          .order_by(Alert.id).limit(batch_size))
            if not delays:
                break
            last = delays[-1].id
            orders = {}
            for alert in delays:
                if alert.task.due_date - today >= ahead and alert.eta_date and alert.eta_date > alert.task.due_date:
                    orders.setdefault(alert.task.order_id, []).append(alert)
            if not orders:
                continue
            warned = {a.order_id for a in Alert.select(Alert.order).where(
                (Alert.kind == "customer_early_warning") & Alert.order.in_(list(orders)))}
            for order_id, late in orders.items():
                stats["orders"] += 1
                if order_id in warned:
                    continue
                worst = max(late, key=lambda a: (a.eta_date, a.id))
                task, order = worst.task, worst.task.order
                with audit.transaction(SYSTEM):
                    done = alerts.raise_alert(
                        SYSTEM, task, "customer_early_warning", worst.level, eta_date=worst.eta_date,
                        message=alert_routing.customer_text(order, order.due_date, worst.eta_date))
                    if done.change == "opened":
                        stats["warned"] += 1
                        stats["customers"] += alert_routing.warn_customers(order, order.due_date, worst.eta_date)
        stats["resolved"] += _resolve_cleared_warnings()
    return stats


def _resolve_cleared_warnings():
    """An early warning stays open while the order still has an open delay alert."""
    still_late = Alert.select(Alert.order).where((Alert.kind == "delay") & UNRESOLVED)
    cleared = Alert.select(Alert.id).where((Alert.kind == "customer_early_warning") & UNRESOLVED
                                           & Alert.order.not_in(still_late))
    return sum(_resolve(a, "延期已消除") for a in cleared)


# --- escalation --------------------------------------------------------------------------------

ESCALATING_KINDS = ("delay", "missing_report", "node_overdue", "qc_fail")


def scan_escalations(now=None):
    """Unacknowledged alerts past their time escalate one step (to executives), once. → counts."""
    now = now or utcnow()
    stats = {"escalated": 0}
    with _running(now):
        red_hours, other_hours = _setting("ESCALATE_RED_HOURS"), _setting("ESCALATE_OTHER_HOURS")
        red_since, other_since = now - timedelta(hours=red_hours), now - timedelta(hours=other_hours)
        # Order-level alerts (an overdue staff node) have no task and no supplier: outer joins.
        due = list(Alert.select(Alert, Task, Order, Supplier, NodeInstance)
                   .join(Task, JOIN.LEFT_OUTER, on=(Alert.task == Task.id))
                   .join(Supplier, JOIN.LEFT_OUTER, on=(Task.supplier == Supplier.id))
                   .switch(Alert).join(Order, on=(Alert.order == Order.id))
                   .switch(Alert).join(NodeInstance, JOIN.LEFT_OUTER, on=(Alert.node == NodeInstance.id))
                   .where(Alert.open_key.is_null(False) & (Alert.status == "open") & Alert.acknowledged_at.is_null()
                          & (Alert.escalation_level == 0) & Alert.kind.in_(ESCALATING_KINDS)
                          & (((Alert.level == "red") & (Alert.created_at <= red_since))
                             | ((Alert.level != "red") & (Alert.created_at <= other_since))))
                   .order_by(Alert.id))
        recipients = alert_routing.Recipients()
        for alert in due:
            with audit.transaction(SYSTEM) as log:
                taken = (Alert.update(escalation_level=1, escalated_at=now)
                         .where((Alert.id == alert.id) & (Alert.escalation_level == 0) & Alert.open_key.is_null(False)
                                & Alert.acknowledged_at.is_null())
                         .execute())
                if not taken:
                    continue  # acknowledged, resolved or escalated meanwhile (another scan)
                alert.escalation_level, alert.escalated_at = 1, now
                hours = red_hours if alert.level == "red" else other_hours
                log.add("alert.escalate", "alert", alert.id, before={"escalation_level": 0},
                        after={"escalation_level": 1, "to": "executive"}, reason=f"{hours} 小时内无人确认")
                task = alert.task if alert.task_id is not None else None
                alert_routing.on_escalate(recipients, alert, task, alert.order, task.supplier if task else None,
                                          hours, node=alert.node if alert.node_id is not None else None)
            stats["escalated"] += 1
    return stats


def as_of(value):
    """A job's `now` argument: None, a naive-UTC datetime, or ISO text (China time without offset)."""
    if value is None or isinstance(value, datetime):
        return value
    return parse_instant(value)
