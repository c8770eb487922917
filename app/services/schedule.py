"""Working days, a task's progress against its plan, and its predicted finish date (ETA).

Plain functions over tasks and their reports; the delay engine, the task details and the customer
timeline all read the same figures from here. Definitions (the README's "Progress, deviation and
ETA" says the same):

- Working day: a weekday in WORK_WEEKDAYS (default Monday–Saturday) that is not in HOLIDAYS, or a
  date in MAKEUP_WORKDAYS (China's 调休: a weekend day that is worked).
- Plan: the task's working days from planned_start to due_date, both included. The expected
  cumulative quantity at the end of a day grows linearly over them: planned_qty × (plan working
  days up to that day) / (plan working days), rounded; 0 before the start, planned_qty from the due date.
- Judged day ("as of"): the last closed day — today once today's report is in, else yesterday —
  so a supplier who reports in the evening is not "behind" every morning.
- Actual: the cumulative qty_done of the latest report on or before today (0 without one), less
  the pieces QC rejected (task.qty_rejected: received and refused, or in a returned or scrapped
  batch — they must be made again; vocabulary.good_qty). A frozen batch does not count as
  rejected until QC disposes of it (rework or a concession keeps its pieces). So a rejection
  raises the deviation, moves the ETA by the pieces to remake at the task's pace, and a task
  whose reports reached the plan is unfinished again until the remade pieces are reported.
- Deviation % = (expected − actual) / planned_qty × 100, one decimal: positive = behind the plan,
  negative = ahead.
- Rate: good pieces per working day over the last RATE_WINDOW (10) working days of reports,
  counting only the stretches between reports in which the cumulative figure grew (a noisy day,
  or a report skipped and caught up the next day, evens out; a stall that is over does not drag
  the pace down); before the first report in reach, from nothing made the day before the start.
  Stalled (rate 0): the figure has not grown for STALL_DAYS (3) working days (no report, or the
  same figure), or it grows at under a tenth of the plan's pace.
- ETA: the last report's date + the working days the rest (planned − actual) takes at that rate
  (rounded up), never before today. Finished (actual ≥ planned, or completed): the finish date. No rate yet (no report,
  or just started): the plan's due date. Stalled: no ETA (None). A supplier's promise (the new date
  of its latest answer to an urge, EtaRevision source "supplier", not yet past) counts when it is
  later than the model's ETA (the supplier knows of troubles the rate cannot see), and stands in
  for a stalled task's missing ETA; a promise earlier than the pace supports is not believed.
- days_late: working days from the due date to the ETA (≥ 0). Without an ETA (stalled): the
  working days already past the due date, or, if later, how late it would be if it restarted on
  the next working day at the plan's daily rate — so a stall is flagged before the due date.
- Level: vocabulary.delay_level(deviation) when days_late ≥ DELAY_THRESHOLD_DAYS (default 2),
  else None. Always None for finished tasks and tasks on hold (nothing to chase).
- On hold: the clock stops; the figures are as of the last report (expected on that day; without
  a report, as of the previous working day), no ETA, days_late 0, level None. A pending or cancelled task has no progress (None).
"""
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from itertools import accumulate
from math import ceil
from typing import NamedTuple

from peewee import fn

from app.domain.vocabulary import delay_level, good_qty
from app.extensions import is_mysql
from app.timeutil import china_date

# Working days the recent rate looks back over: bench/eta_accuracy.py finds 10 clearly better than
# 3–7 (daily noise) and close to the whole history, while still following a change of pace.
RATE_WINDOW = 10
STALL_DAYS = 3  # working days without growth after which a task counts as stalled
DEFAULT_DELAY_THRESHOLD_DAYS = 2
MAX_ETA_DAYS = 1000  # working days (about three years): beyond that the rate says "stalled", not a date
PROGRESS_STATES = ("in_production", "on_hold", "completed")
ONE_DAY = timedelta(days=1)
# The calendar's lookup table: 1999-12-01 to 2100-01-31 (the app's dates are 2000–2099).
TABLE_START = date(1999, 12, 1)
TABLE_ORIGIN = TABLE_START.toordinal()
TABLE_DAYS = date(2100, 1, 31).toordinal() - TABLE_ORIGIN + 1


class Calendar:
    """Which days are worked: weekdays (ISO, 1 = Monday), minus holidays, plus make-up days."""

    def __init__(self, weekdays=(1, 2, 3, 4, 5, 6), holidays=(), makeup_days=()):
        self.weekdays = frozenset(weekdays)
        if not self.weekdays:
            raise ValueError("a calendar needs at least one working weekday")
        # Only the exceptions that change something, sorted, so a range's count is two bisections.
        self._off = sorted({d for d in holidays if d.isoweekday() in self.weekdays} - set(makeup_days))
        self._extra = sorted({d for d in makeup_days if d.isoweekday() not in self.weekdays})
        # Working days counted from TABLE_START to each day: any count or step inside the table is a
        # subtraction or a bisection (the delay scan asks ~10 of them per task, for 100k tasks).
        self._cum = list(accumulate(self._slow_is_working_day(TABLE_START + timedelta(days=i))
                                    for i in range(TABLE_DAYS)))

    def is_working_day(self, day):
        i = day.toordinal() - TABLE_ORIGIN
        if 0 < i < TABLE_DAYS:
            return self._cum[i] > self._cum[i - 1]
        return self._slow_is_working_day(day)

    def _slow_is_working_day(self, day):
        if day.isoweekday() in self.weekdays:
            return not _contains(self._off, day)
        return _contains(self._extra, day)

    def working_days_between(self, start, end):
        """Working days d with start < d <= end; negative (−count of end < d <= start) if end < start."""
        i, j = start.toordinal() - TABLE_ORIGIN, end.toordinal() - TABLE_ORIGIN
        if 0 <= i < TABLE_DAYS and 0 <= j < TABLE_DAYS:
            return self._cum[j] - self._cum[i]
        if end < start:
            return -self.working_days_between(end, start)
        weeks, rest = divmod((end - start).days, 7)
        count = weeks * len(self.weekdays)
        count += sum((start + timedelta(days=i)).isoweekday() in self.weekdays for i in range(1, rest + 1))
        count -= _in_range(self._off, start, end)
        count += _in_range(self._extra, start, end)
        return count

    def add_working_days(self, day, n):
        """The n-th working day after `day` (before it if n < 0); `day` itself for n = 0."""
        i = day.toordinal() - TABLE_ORIGIN
        if n and 0 < i < TABLE_DAYS:
            # The first table day whose running count reaches the target is a working day (the count
            # steps up on it): after `day`, its count + n; before it, the count of the day before + n + 1.
            target = self._cum[i] + n if n > 0 else self._cum[i - 1] + n + 1
            k = bisect_left(self._cum, target)
            if 0 < k < TABLE_DAYS and self._cum[k] == target:
                return date.fromordinal(TABLE_ORIGIN + k)
        if n < 0:
            count = 0
            while count < -n:
                day -= ONE_DAY
                count += self.is_working_day(day)
            return day
        # Jump close by whole weeks, then walk: holidays and make-up days shift it by a few days only.
        guess = day + timedelta(days=7 * max(0, n // len(self.weekdays) - 1))
        count = self.working_days_between(day, guess)
        if count >= n:
            guess, count = day, 0
        while count < n:
            guess += ONE_DAY
            count += self.is_working_day(guess)
        return guess

    def next_working_day(self, day):
        """`day` if it is a working day, else the next one."""
        while not self.is_working_day(day):
            day += ONE_DAY
        return day


def _contains(sorted_days, day):
    i = bisect_left(sorted_days, day)
    return i < len(sorted_days) and sorted_days[i] == day


def _in_range(sorted_days, start, end):
    """How many of the days fall in start < d <= end."""
    return bisect_right(sorted_days, end) - bisect_right(sorted_days, start)


def calendar():
    """The app's calendar, from WORK_WEEKDAYS, HOLIDAYS and MAKEUP_WORKDAYS (parsed by app.config)."""
    from app.extensions import current

    cfg = current().config
    return _calendar(tuple(cfg["WORK_WEEKDAYS"]), tuple(cfg["HOLIDAYS"]), tuple(cfg["MAKEUP_WORKDAYS"]))


@lru_cache(maxsize=8)
def _calendar(weekdays, holidays, makeup_days):
    return Calendar(weekdays, holidays, makeup_days)


def delay_threshold_days():
    from app.extensions import current

    return int(current().config.get("DELAY_THRESHOLD_DAYS", DEFAULT_DELAY_THRESHOLD_DAYS))


@dataclass(frozen=True)
class Progress:
    expected_qty: int
    actual_qty: int
    deviation_pct: float  # (expected - actual) / planned * 100, > 0 = behind
    eta_date: date | None
    days_late: int  # working days the ETA (or, unfinished past due, today) is beyond the due date, >= 0
    level: str | None  # vocabulary.delay_level when days_late >= DELAY_THRESHOLD_DAYS, else None
    rate_per_day: float | None  # recent good pieces per working day (None: not known yet)
    reported_on: date | None  # the last report's date


class Report(NamedTuple):
    """What the model needs of a progress report (a ProgressReport row does as well). A named
    tuple: a scan makes one per report of every task in production, and a tuple is made in a
    fraction of a frozen dataclass's time."""

    report_date: date
    qty_done: int


def expected_qty(task, day, cal):
    """Cumulative quantity the plan expects by the end of `day` (linear over the plan's working days)."""
    before_start = task.planned_start - ONE_DAY
    span = cal.working_days_between(before_start, task.due_date)
    if day < task.planned_start:
        return 0
    if day >= task.due_date or span <= 0:
        return task.planned_qty
    elapsed = cal.working_days_between(before_start, day)
    return round(task.planned_qty * elapsed / span)


def progress(task, today, *, reports=None, cal=None, supplier_eta=None, threshold=None):
    """The task's progress on China date `today`, or None if it is not in production (pending,
    cancelled). `reports`: its progress reports (any order; those after `today` are ignored);
    without them the reports and the supplier's latest promise are read from the database.
    `supplier_eta`: the new date of the supplier's latest ETA revision, if any."""
    if task.state not in PROGRESS_STATES:
        return None
    if reports is None:
        return progress_many([task], today, cal=cal, threshold=threshold).get(task.id)
    cal = cal or calendar()
    threshold = delay_threshold_days() if threshold is None else threshold
    return _assess(task, today, sorted((r for r in reports if r.report_date <= today), key=lambda r: r.report_date),
                   cal, supplier_eta, threshold)


def report_window(today, cal):
    """The first day of the reports the model reads as of `today`: enough history for the rate
    window and the stall check; older reports do not change the figures (the task row carries the
    latest report, and the average since the start needs only that)."""
    return cal.add_working_days(today, -(RATE_WINDOW + STALL_DAYS + 2)) - timedelta(days=7)


def progress_many(tasks, today, cal=None, threshold=None, reports=None, promises=None):
    """{task id: Progress} for the tasks in production, on hold or completed, in two queries
    whatever their number: their recent reports, and their suppliers' latest ETA promises.
    `reports`: {task id: [Report, … by date]} from report_window(today) to today, when the caller
    read them already (the delay scan reads them with the tasks, `reports_column`); `promises`:
    {task id: the new date of its supplier's latest ETA revision}, likewise (`promise_column`)."""
    from app.models import EtaRevision
    from app.models.base import among, fast_tuples

    tasks = [t for t in tasks if t.state in PROGRESS_STATES]
    if not tasks:
        return {}
    cal = cal or calendar()
    threshold = delay_threshold_days() if threshold is None else threshold
    ids = [t.id for t in tasks]
    since = report_window(today, cal)
    if reports is None:
        reports = _recent_reports(ids, since, today)
    if promises is None:
        promises = {}
        query = (EtaRevision.select(EtaRevision.task, EtaRevision.new_eta)
                 .where(among(EtaRevision.task, ids) & (EtaRevision.source == "supplier"))
                 .order_by(EtaRevision.id))
        for task_id, new_eta in fast_tuples(query):
            promises[task_id] = new_eta
    out = {}
    for task in tasks:
        history = reports.get(task.id) or []
        # The latest report may be older than the window (a long stall): the task row has it.
        if task.last_report_date and task.last_report_date <= today and (
                not history or history[-1].report_date < task.last_report_date):
            history = [Report(task.last_report_date, task.qty_done)]
        out[task.id] = _assess(task, today, history, cal, promises.get(task.id), threshold, since)
    return out


def _report_pairs():
    from app.models import ProgressReport

    return (ProgressReport.report_date.cast("CHAR") if is_mysql() else ProgressReport.report_date).concat(":").concat(
        ProgressReport.qty_done)


def _recent_reports(ids, since, today):
    """{task id: [Report, … by date]} of the tasks' reports from `since` to `today`, one row per task:
    each task's reports come as one "date:qty,date:qty…" string. Reading a row costs the driver far more
    than splitting a string, and a scan reads a month of reports for every task in production. (One
    report per day, so a string stays under MySQL's default group_concat_max_len of 1024 bytes.)"""
    from app.models import ProgressReport
    from app.models.base import among, fast_tuples

    query = (ProgressReport.select(ProgressReport.task, fn.GROUP_CONCAT(_report_pairs()))
             .where(among(ProgressReport.task, ids) & (ProgressReport.report_date >= since)
                    & (ProgressReport.report_date <= today))
             .group_by(ProgressReport.task))
    reports = {i: [] for i in ids}
    days = {}
    for task_id, joined in fast_tuples(query):
        reports[task_id] = parse_reports(joined, days)
    return reports


def reports_column(task_id_field, since, today):
    """A task's reports from `since` to `today` as one "date:qty,…" string (None without any): a
    correlated subquery to select with the task row itself (parse it with `parse_reports`)."""
    from app.models import ProgressReport

    return (ProgressReport.select(fn.GROUP_CONCAT(_report_pairs()))
            .where((ProgressReport.task == task_id_field) & (ProgressReport.report_date >= since)
                   & (ProgressReport.report_date <= today)))


def promise_column(task_id_field):
    """A task's supplier's latest ETA promise (the new date of its last "supplier" revision; None
    without one): a correlated subquery to select with the task row itself. A date on MySQL, text
    on SQLite: read it with EtaRevision.new_eta.python_value."""
    from app.models import EtaRevision

    return (EtaRevision.select(EtaRevision.new_eta)
            .where((EtaRevision.task == task_id_field) & (EtaRevision.source == "supplier"))
            .order_by(EtaRevision.id.desc()).limit(1))


def parse_reports(joined, days):
    """[Report, … by date] from a "YYYY-MM-DD:qty,…" string (None: none). `days`: a dict the caller
    keeps for a scan, so each of the few dates of the window is parsed once."""
    history = []
    if not joined:
        return history
    for pair in sorted(joined.split(",")):  # "YYYY-MM-DD:qty" sorts by date
        day, qty = pair.split(":")
        when = days.get(day)
        if when is None:
            when = days[day] = date.fromisoformat(day)
        history.append(Report(when, int(qty)))
    return history


def _assess(task, today, reports, cal, supplier_eta, threshold, since=None):
    last = reports[-1] if reports else None
    rejected = getattr(task, "qty_rejected", 0) or 0
    actual = good_qty(last.qty_done, rejected) if last else 0
    reported_on = last.report_date if last else None
    planned = task.planned_qty or 0
    if task.state == "on_hold":
        as_of = reported_on or cal.add_working_days(today, -1)
        expected = expected_qty(task, as_of, cal)
        return Progress(expected, actual, _deviation(expected, actual, planned), None, 0, None, None, reported_on)
    as_of = today if reported_on == today else today - ONE_DAY
    expected = expected_qty(task, as_of, cal)
    deviation = _deviation(expected, actual, planned)
    finished = _finish_date(task, reports, rejected)
    if finished is None and task.state == "completed":
        finished = task.due_date  # completed without a date or report (imported history): taken as on time
    if finished is not None:
        late = max(0, cal.working_days_between(task.due_date, finished))
        return Progress(expected, actual, deviation, finished, late, None, None, reported_on)
    rate = _rate(task, reports, as_of, cal, since)
    eta = _eta(task, today, last, actual, rate, cal)
    if supplier_eta is not None and supplier_eta >= today and (eta is None or supplier_eta > eta):
        eta = supplier_eta
    if eta is not None:
        late = max(0, cal.working_days_between(task.due_date, eta))
    else:
        late = max(0, cal.working_days_between(task.due_date, today), _late_on_restart(task, today, actual, cal))
    level = delay_level(deviation) if late >= threshold else None
    return Progress(expected, actual, deviation, eta, late, level, rate, reported_on)


def _deviation(expected, actual, planned):
    return round((expected - actual) * 100 / planned, 1) if planned else 0.0


def _finish_date(task, reports, rejected=0):
    """When a finished task finished (completed, or its reports less the rejected pieces reached
    the plan), else None."""
    if task.state == "completed":
        if task.completed_at is not None:
            return china_date(task.completed_at)
        return reports[-1].report_date if reports else None
    for report in reports:
        if report.qty_done - rejected >= task.planned_qty:
            return report.report_date
    return None


def _rate(task, reports, as_of, cal, since=None):
    """Good pieces per working day lately; None while unknown, 0.0 when stalled.

    Stalled: the cumulative figure has not grown for STALL_DAYS working days up to `as_of` (no
    report, or reports of the same figure), or grows at under a tenth of the plan's pace. Else the
    growth between the reports of the last RATE_WINDOW working days (from the latest report on or
    before the window's start; without one, from nothing made the day before the start) divided by
    the working days of the stretches that grew: only cumulative figures count, so a noisy or
    skipped day evens out, and a stall that is over does not drag the pace of a running task down.
    `since`: the reports begin there (an older baseline is not known)."""
    if not reports:
        # Nothing reported STALL_DAYS working days into the plan: stalled; before that: unknown.
        silent = cal.working_days_between(task.planned_start - ONE_DAY, as_of)
        return 0.0 if silent >= STALL_DAYS else None
    last = reports[-1]
    reached = next(r.report_date for r in reports if r.qty_done == last.qty_done)
    if cal.working_days_between(reached, as_of) >= STALL_DAYS:
        return 0.0
    target = cal.add_working_days(last.report_date, -RATE_WINDOW)
    points = [r for r in reports if r.report_date >= target]
    earlier = [r for r in reports if r.report_date < target]
    if earlier:
        points.insert(0, earlier[-1])
    else:
        baseline = min(task.planned_start, reports[0].report_date) - ONE_DAY
        if since is None or baseline >= since:
            points.insert(0, Report(baseline, 0))
    grown = days = 0
    for before, after in zip(points, points[1:], strict=False):
        if after.qty_done > before.qty_done:
            grown += after.qty_done - before.qty_done
            days += cal.working_days_between(before.report_date, after.report_date)
    if days <= 0:
        return None
    rate = grown / days
    span = max(1, cal.working_days_between(task.planned_start - ONE_DAY, task.due_date))
    return 0.0 if rate < task.planned_qty / span / 10 else rate


def _eta(task, today, last, actual, rate, cal):
    if rate is None:
        return task.due_date  # nothing to measure yet: the plan's date
    if rate <= 0:
        return None
    days = ceil((task.planned_qty - actual) / rate - 1e-9)
    if days > MAX_ETA_DAYS:
        return None  # a trickle is a stall: no date worth promising
    eta = cal.add_working_days(last.report_date, days)
    return max(eta, cal.next_working_day(today))


def _late_on_restart(task, today, actual, cal):
    """Working days past the due date if a stalled task restarted on the next working day at the
    plan's daily rate (its earliest credible finish)."""
    span = max(1, cal.working_days_between(task.planned_start - ONE_DAY, task.due_date))
    plan_rate = task.planned_qty / span
    finish = cal.add_working_days(today, ceil((task.planned_qty - actual) / plan_rate - 1e-9))
    return max(0, cal.working_days_between(task.due_date, finish))
