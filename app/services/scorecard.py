"""The supplier scorecard: KPIs per supplier per ISO week (Monday–Sunday) and calendar month, China
dates, a weighted score 0–100 and a grade A/B/C/D; snapshots written by the scorecard-snapshot job
(jobs/periodic.py), read by the API and the dashboard (`scorecard`: `latest`, `trend`). README "Supplier scorecard"
says the same.

Period P = China dates start … end (both included); "now" is the job's clock. Each KPI has a value,
a sub-score 0–100 and what it was measured over (`basis`); a KPI without data has value and score
None and is left out: the score is Σ weight × sub-score ÷ Σ weight over the KPIs with data (the
remaining weights rescaled to 100).

Delivery (tasks **completed** in P: completion date = China date of `completed_at`):
- on_time_rate: tasks completed in P whose completion date ≤ due date ÷ tasks completed in P.
  Sub-score 100 × rate.
- avg_days_late: mean working days (schedule.py calendar) from the due date to the completion date,
  over the tasks completed late in P; 0 when every task completed in P was on time.
  Sub-score max(0, 100 − 10 × days).
- delivery_cycle: mean calendar days from the task's start (its planned start, or its first report
  when that came earlier) to its completion date, both counted, over the tasks completed in P.
  Sub-score 100 × min(1, Σ planned days ÷ Σ actual days), planned days = planned start … due date.
Quality (app/services/quality_figures.py, the definitions there, not repeated here):
- first_pass_yield, acceptance_rate: sub-score 100 × rate.
- rework_scrap_rate: rework_rate + scrap_rate (both shares of the pieces QC inspected in P).
  Sub-score max(0, 100 × (1 − 5 × rate)): a fifth reworked or scrapped scores 0.
- material_loss_rate (materials.loss_rate via quality_figures): sub-score as rework_scrap_rate.
Service:
- report_compliance: over the supplier's tasks in production or completed (tasks on hold now are left
  out: when their hold began is not read), the working days d of P from the task's start day (China
  date of started_at, else planned start) to the day before its completion, and before today (today
  is not over): the share of those days with a progress report for d **recorded on d** (China date of
  the report's created_at; a report caught up the next day does not count). Sub-score 100 × rate.
- node_timeliness: node parts (NodeCompletion) the supplier recorded in P (created_at): the share
  recorded within 2 hours of the completion time it states (created_at − done_at ≤ 2 h). A part
  resubmitted after a rejection counts once, by its first recording. Sub-score 100 × rate.
- urge_response: mean hours from an urge made in P to the supplier's answer; an urge not answered
  by the end of P (or now, if earlier) counts the hours until then. Sub-score max(0, 100 − 2 × hours)
  (answered at once 100, after a day 52, after 50 hours 0). A problem report (TaskIssue) has no
  reply or closing recorded anywhere, so its response time is not measured.

Grades: A ≥ 85, B ≥ 70, C ≥ 50, else D (SCORECARD_GRADE_BANDS); no KPI with data: no score, no grade.
Values: rates 4 decimals, hours and days 2, sub-scores 2, the score 1.
"""
import json
from calendar import monthrange
from datetime import timedelta

from peewee import fn

from app.extensions import current
from app.models import Batch, BatchMovement, Inspection, NodeCompletion, ProgressReport, Supplier, SupplierScore, Task, Urge
from app.models.base import among
from app.services import quality_figures, schedule
from app.timeutil import china_date, utcnow

PERIODS = ("week", "month")
BATCH = 200  # suppliers computed together: a fixed number of queries per batch (plus quality figures)
NODE_UPDATE_HOURS = 2
TREND_PERIODS = 12

KPI_NAMES = {
    "on_time_rate": "准时交付率",
    "avg_days_late": "平均延期天数",
    "delivery_cycle": "交付周期（天）",
    "first_pass_yield": "一次合格率",
    "acceptance_rate": "验收合格率",
    "rework_scrap_rate": "返工/报废率",
    "material_loss_rate": "材料损耗率",
    "report_compliance": "报工及时率",
    "node_timeliness": "节点2小时内更新率",
    "urge_response": "催单响应时间（小时）",
}


# --- periods -------------------------------------------------------------------------------------

def period_of(kind, day):
    """(start, end) of the week (Monday–Sunday) or calendar month holding China date `day`."""
    if kind == "week":
        start = day - timedelta(days=day.weekday())
        return start, start + timedelta(days=6)
    if kind == "month":
        return day.replace(day=1), day.replace(day=monthrange(day.year, day.month)[1])
    raise ValueError(kind)


def previous_period(kind, start):
    return period_of(kind, start - timedelta(days=1))


# --- configuration -------------------------------------------------------------------------------

def weights():
    return dict(current().config["SCORECARD_WEIGHTS"])


def grade_of(score, bands=None):
    if score is None:
        return None
    a, b, c = bands or current().config["SCORECARD_GRADE_BANDS"]
    return "A" if score >= a else "B" if score >= b else "C" if score >= c else "D"


# --- computing -----------------------------------------------------------------------------------

def _rate(part, whole):
    return round(part / whole, 4) if whole else None


def _mean(values, digits=2):
    return round(sum(values) / len(values), digits) if values else None


def _clip(x):
    return round(max(0.0, min(100.0, x)), 2)


def _hours(delta):
    return delta.total_seconds() / 3600


class _Acc:
    """What one supplier's period gathers before it is scored."""

    def __init__(self):
        self.tasks = set()
        self.completed = 0
        self.on_time = 0
        self.late_days = []
        self.cycle_actual = []
        self.cycle_planned = []
        self.expected_days = 0
        self.reported_days = 0
        self.nodes = 0
        self.nodes_on_time = 0
        self.urge_hours = []


def compute(supplier_ids, kind, start, now=None):
    """{supplier id: card} for the suppliers' period of `kind` starting on `start` (as of `now`,
    naive UTC). A card: {"metrics": {kpi: {value, score, weight, effective_weight, basis}}, "score",
    "grade", "task_count"}. Five queries for the whole batch, plus quality_figures per supplier."""
    now = now or utcnow()
    start, end = period_of(kind, start)
    lo, hi = quality_figures._utc_bounds(start, end)
    today = china_date(now)
    cal = schedule.calendar()
    ids = [int(i) for i in supplier_ids]
    acc = {i: _Acc() for i in ids}

    tasks = list(_tasks_in(lo, hi, end).where(among(Task.supplier, ids)))
    first_reports = {}
    if tasks:
        first_reports = dict(ProgressReport.select(ProgressReport.task, fn.MIN(ProgressReport.report_date))
                             .where(among(ProgressReport.task, [t.id for t in tasks]))
                             .group_by(ProgressReport.task).tuples())
    running = {}
    for t in tasks:
        a = acc[t.supplier_id]
        a.tasks.add(t.id)
        done_on = china_date(t.completed_at) if t.completed_at is not None else None
        if t.state == "completed" and done_on is not None and lo <= t.completed_at < hi:
            a.completed += 1
            if done_on <= t.due_date:
                a.on_time += 1
            else:
                a.late_days.append(cal.working_days_between(t.due_date, done_on))
            first = first_reports.get(t.id)
            begin = min(t.planned_start, first) if first else t.planned_start
            a.cycle_actual.append((done_on - begin).days + 1)
            a.cycle_planned.append((t.due_date - t.planned_start).days + 1)
        if t.state in ("in_production", "completed"):
            first_day = max(start, china_date(t.started_at) if t.started_at else t.planned_start)
            last_day = min(end, today - timedelta(days=1), done_on - timedelta(days=1) if done_on else end)
            days = [first_day + timedelta(days=k) for k in range((last_day - first_day).days + 1)]
            days = {d for d in days if cal.is_working_day(d)}
            if days:
                running[t.id] = (t.supplier_id, days)
                a.expected_days += len(days)

    if running:
        reports = (ProgressReport.select(ProgressReport.task, ProgressReport.report_date, ProgressReport.created_at)
                   .where(among(ProgressReport.task, list(running)) & (ProgressReport.report_date >= start)
                          & (ProgressReport.report_date <= end)).tuples())
        for task_id, day, created in reports:
            supplier_id, days = running[task_id]
            if day in days and china_date(created) == day:
                acc[supplier_id].reported_days += 1

    parts = (NodeCompletion.select(Task.supplier, NodeCompletion.created_at, NodeCompletion.done_at)
             .join(Task).where(among(Task.supplier, ids) & (NodeCompletion.created_at >= lo)
                               & (NodeCompletion.created_at < hi)).tuples())
    for supplier_id, created, done in parts:
        a = acc[supplier_id]
        a.nodes += 1
        a.nodes_on_time += _hours(created - done) <= NODE_UPDATE_HOURS

    cut = min(now, hi)
    urges = (Urge.select(Task.supplier, Urge.created_at, Urge.replied_at)
             .join(Task).where(among(Task.supplier, ids) & (Urge.created_at >= lo) & (Urge.created_at < hi)).tuples())
    for supplier_id, created, replied in urges:
        answered = replied if replied is not None and replied <= cut else cut
        acc[supplier_id].urge_hours.append(max(0.0, _hours(answered - created)))

    w = weights()
    return {i: _card(acc[i], quality_figures.figures(i, start, end), w) for i in ids}


def _card(a, q, w):
    def rate_score(rate):
        return None if rate is None else _clip(100 * rate)

    def loss_score(rate):
        return None if rate is None else _clip(100 * (1 - 5 * rate))

    on_time = _rate(a.on_time, a.completed)
    days_late = (_mean(a.late_days) if a.late_days else 0.0) if a.completed else None
    cycle = _mean(a.cycle_actual)
    cycle_score = _clip(100 * min(1.0, sum(a.cycle_planned) / sum(a.cycle_actual))) if a.cycle_actual else None
    rework_scrap = (round(q.rework_rate + q.scrap_rate, 4)
                    if q.rework_rate is not None and q.scrap_rate is not None else None)
    compliance = _rate(a.reported_days, a.expected_days)
    nodes = _rate(a.nodes_on_time, a.nodes)
    urge = _mean(a.urge_hours)
    kpis = {
        "on_time_rate": (on_time, rate_score(on_time), f"{a.on_time}/{a.completed} 个任务按期完成"),
        "avg_days_late": (days_late, None if days_late is None else _clip(100 - 10 * days_late),
                          f"{len(a.late_days)} 个任务延期完成"),
        "delivery_cycle": (cycle, cycle_score, f"{len(a.cycle_actual)} 个任务，计划 {sum(a.cycle_planned)} 天"),
        "first_pass_yield": (q.first_pass_yield, rate_score(q.first_pass_yield),
                             f"{q.batches_passed_first}/{q.batches_first_inspected} 批首次检验合格"),
        "acceptance_rate": (q.acceptance_rate, rate_score(q.acceptance_rate),
                            f"{q.qty_accepted}/{q.qty_received} 件验收合格"),
        "rework_scrap_rate": (rework_scrap, loss_score(rework_scrap),
                              f"返工 {q.qty_reworked} 件、报废 {q.qty_scrapped} 件 / 检验 {q.qty_inspected} 件"),
        "material_loss_rate": (q.material_loss_rate, loss_score(q.material_loss_rate), "本期完成任务的发料"),
        "report_compliance": (compliance, rate_score(compliance), f"{a.reported_days}/{a.expected_days} 个应报工日按时报工"),
        "node_timeliness": (nodes, rate_score(nodes), f"{a.nodes_on_time}/{a.nodes} 个节点 2 小时内更新"),
        "urge_response": (urge, None if urge is None else _clip(100 - 2 * urge), f"{len(a.urge_hours)} 次催单"),
    }
    used = sum(w[k] for k, (_, score, _) in kpis.items() if score is not None)
    metrics = {}
    total = 0.0
    for key, (value, score, basis) in kpis.items():
        share = round(100 * w[key] / used, 2) if score is not None and used else 0.0
        metrics[key] = {"value": value, "score": score, "weight": w[key], "effective_weight": share, "basis": basis}
        if score is not None:
            total += w[key] * score
    score = round(total / used, 1) if used else None
    return {"metrics": metrics, "score": score, "grade": grade_of(score), "task_count": len(a.tasks)}


def _tasks_in(lo, hi, end):
    """Tasks that ran during the period (UTC [lo, hi)): in production, on hold or completed, started
    before its end (or, never marked started, planned to start by then) and not completed before it."""
    started = (Task.started_at < hi) | (Task.started_at.is_null() & (Task.planned_start <= end))
    return Task.select(Task.id, Task.supplier, Task.state, Task.planned_start, Task.due_date, Task.started_at,
                       Task.completed_at).where(
        Task.state.in_(("in_production", "on_hold", "completed")) & started
        & (((Task.state != "completed") & Task.completed_at.is_null()) | (Task.completed_at >= lo)))


def active_suppliers(kind, start):
    """Suppliers with something to score in the period: a task that ran in it, a QC inspection or a receipt."""
    start, end = period_of(kind, start)
    lo, hi = quality_figures._utc_bounds(start, end)
    ids = {sid for (sid,) in _tasks_in(lo, hi, end).select(Task.supplier).distinct().tuples()}
    ids |= {sid for (sid,) in Inspection.select(Task.supplier).join(Task, on=(Inspection.task == Task.id)).where(
        (Inspection.source == "qc") & (Inspection.inspected_at >= lo) & (Inspection.inspected_at < hi)).distinct().tuples()}
    ids |= {sid for (sid,) in BatchMovement.select(Task.supplier).join(Batch).join(Task).where(
        (BatchMovement.kind == "receive") & (BatchMovement.created_at >= lo) & (BatchMovement.created_at < hi))
        .distinct().tuples()}
    return sorted(ids)


# --- snapshots -----------------------------------------------------------------------------------

def _canonical(metrics):
    return json.dumps(metrics, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def snapshot(now=None):
    """Recompute the current and the previous week and month of every supplier with activity in them.
    Idempotent: a snapshot whose figures did not change is not written. → counts."""
    now = now or utcnow()
    today = china_date(now)
    out = {"suppliers": 0, "created": 0, "updated": 0, "unchanged": 0}
    for kind in PERIODS:
        current_start, _ = period_of(kind, today)
        for start in (previous_period(kind, current_start)[0], current_start):
            ids = active_suppliers(kind, start)
            out["suppliers"] += len(ids)
            for i in range(0, len(ids), BATCH):
                _store(kind, start, compute(ids[i:i + BATCH], kind, start, now), out)
    return out


def _store(kind, start, cards, out):
    start, end = period_of(kind, start)
    existing = {row.supplier_id: row for row in SupplierScore.select().where(
        among(SupplierScore.supplier, list(cards)) & (SupplierScore.period == kind)
        & (SupplierScore.period_start == start))}
    new = []
    for supplier_id, card in cards.items():
        fields = {"metrics": _canonical(card["metrics"]), "score": card["score"], "grade": card["grade"],
                  "task_count": card["task_count"], "period_end": end}
        row = existing.get(supplier_id)
        if row is None:
            new.append({"supplier": supplier_id, "period": kind, "period_start": start, "created_at": utcnow(),
                        **fields})
        elif any(getattr(row, k) != v for k, v in fields.items()):
            SupplierScore.update(**fields).where(SupplierScore.id == row.id).execute()
            out["updated"] += 1
        else:
            out["unchanged"] += 1
    if new:
        SupplierScore.insert_many(new).execute()
        out["created"] += len(new)


# --- reading -------------------------------------------------------------------------------------

def _loaded(row):
    row.has_data = True
    row.kpis = [{"key": k, "name": KPI_NAMES[k], **v} for k, v in sorted(
        json.loads(row.metrics).items(), key=lambda kv: list(KPI_NAMES).index(kv[0]))]
    return row


def _gap(supplier_id, period, start):
    """A period without a snapshot, as the trend shows it: its dates, no figures (an unsaved row)."""
    start, end = period_of(period, start)
    row = SupplierScore(supplier=supplier_id, period=period, period_start=start, period_end=end,
                        score=None, grade=None, task_count=None)
    row.has_data, row.kpis = False, []
    return row


def latest(supplier_id, period):
    """The supplier's latest snapshot of `period` (week | month), its KPIs as `row.kpis`, or None."""
    row = (SupplierScore.select().where((SupplierScore.supplier == supplier_id) & (SupplierScore.period == period))
           .order_by(SupplierScore.period_start.desc()).first())
    return _loaded(row) if row else None


def trend(supplier_id, period, n=TREND_PERIODS, today=None):
    """Exactly the last `n` weeks or months up to the current one (China date `today`, default
    today), oldest first: each the supplier's snapshot (`has_data` True), or, for a period without
    one, the period's dates with score, grade and task_count None and `has_data` False — a chart
    shows the gap instead of drawing the periods either side of it as neighbours. One query."""
    starts = [period_of(period, today or china_date())[0]]
    while len(starts) < n:
        starts.append(previous_period(period, starts[-1])[0])
    starts.reverse()
    rows = {row.period_start: row for row in SupplierScore.select().where(
        (SupplierScore.supplier == supplier_id) & (SupplierScore.period == period)
        & SupplierScore.period_start.between(starts[0], starts[-1]))}
    return [_loaded(rows[s]) if s in rows else _gap(supplier_id, period, s) for s in starts]


def scorecard(supplier_id, period, today=None):
    """What GET /suppliers/<id>/scorecard answers, and the dashboard's supplier page shows (the
    caller checked the supplier exists): the latest snapshot, and the trend of the last 12 periods."""
    rows = trend(supplier_id, period, today=today)
    scored = [r for r in rows if r.has_data]
    # A supplier idle for the whole trend may still have an older snapshot: the latest is that one.
    return {"supplier_id": supplier_id, "period": period, "trend": rows,
            "latest": scored[-1] if scored else latest(supplier_id, period)}


def order_warnings(order_ids):
    """grade_warnings for the tasks of these (just created) orders. Two queries."""
    tasks = list(Task.select(Task.id, Task.supplier, Task.task_no).where(among(Task.order, order_ids)).order_by(Task.id))
    return grade_warnings(tasks)


def grade_warnings(tasks):
    """Warnings for tasks just given to suppliers whose latest monthly grade is D (no block): one per
    supplier, [{code, message, supplier_id, task_nos}]. One query."""
    by_supplier = {}
    for t in tasks:
        by_supplier.setdefault(t.supplier_id, []).append(t.task_no)
    if not by_supplier:
        return []
    rows = {}
    for row in (SupplierScore.select(SupplierScore, Supplier).join(Supplier)
                .where((SupplierScore.period == "month") & among(SupplierScore.supplier, list(by_supplier)))
                .order_by(SupplierScore.period_start.desc())):
        rows.setdefault(row.supplier_id, row)
    out = []
    for supplier_id, task_nos in by_supplier.items():
        row = rows.get(supplier_id)
        if row is not None and row.grade == "D":
            out.append({
                "code": "supplier_grade_d", "supplier_id": supplier_id, "task_nos": task_nos,
                "message": f"供应商“{row.supplier.name}”最近一期月度评级为 D（{row.score:g} 分，"
                           f"{row.period_start:%Y-%m}），请关注交期与质量风险",
            })
    return out

