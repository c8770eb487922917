"""The progress model: working days, expected vs actual, deviation, ETA, lateness and level, as a
manager reads them. The plan used throughout: 1200 pieces from Monday 2 Nov to Saturday 14 Nov 2026,
twelve working days (Monday–Saturday), so 100 a day."""
import secrets
from datetime import date, datetime, timedelta
from types import SimpleNamespace

import pytest

from app.config import ConfigError
from app.models import EtaRevision, ProgressReport, Task
from app.services import schedule
from app.services.schedule import Calendar, Report, progress
from tests import factories
from tests.sqlcount import statements

CAL = Calendar()  # Monday–Saturday, no holidays
START, DUE = date(2026, 11, 2), date(2026, 11, 14)


def task(state="in_production", planned_qty=1200, start=START, due=DUE, completed_at=None):
    return SimpleNamespace(id=1, state=state, planned_qty=planned_qty, planned_start=start, due_date=due,
                           completed_at=completed_at, qty_done=0, last_report_date=None)


def daily(per_day, first=START, last=None, cal=CAL):
    """Cumulative reports of `per_day` (a number or a list) on each working day from `first` to `last`."""
    out, total, day, i = [], 0, first, 0
    while day <= last:
        if cal.is_working_day(day):
            total += per_day[i % len(per_day)] if isinstance(per_day, list) else per_day
            out.append(Report(day, total))
            i += 1
        day += timedelta(days=1)
    return out


def judge(t, today, reports, **kw):
    return progress(t, today, reports=reports, cal=kw.pop("cal", CAL), threshold=2, **kw)


# --- the calendar ----------------------------------------------------------------------------------

def test_monday_to_saturday_is_the_default_week():
    assert [CAL.is_working_day(date(2026, 11, d)) for d in range(2, 9)] == [True] * 6 + [False]  # Mon..Sun
    assert CAL.working_days_between(date(2026, 11, 1), date(2026, 11, 14)) == 12
    assert CAL.working_days_between(date(2026, 11, 14), date(2026, 11, 1)) == -12
    assert CAL.add_working_days(date(2026, 11, 7), 1) == date(2026, 11, 9)  # Saturday → Monday
    assert CAL.add_working_days(date(2026, 11, 9), -1) == date(2026, 11, 7)


def test_holidays_are_off_and_make_up_days_are_worked():
    # National Day 2026: 1–7 Oct off; Sunday 27 Sep and Sunday 11 Oct worked (调休).
    cal = Calendar(holidays=[date(2026, 10, d) for d in range(1, 8)],
                   makeup_days=[date(2026, 9, 27), date(2026, 10, 11)])
    assert not cal.is_working_day(date(2026, 10, 6)) and cal.is_working_day(date(2026, 9, 27))
    assert cal.add_working_days(date(2026, 9, 30), 1) == date(2026, 10, 8)
    assert cal.add_working_days(date(2026, 10, 10), 1) == date(2026, 10, 11)
    # 28–30 Sep, 8–10 Oct, 11 Oct (make-up): 7 working days between 27 Sep and 11 Oct.
    assert cal.working_days_between(date(2026, 9, 27), date(2026, 10, 11)) == 7
    # Over a long span the whole-week arithmetic agrees with counting day by day.
    day = date(2026, 9, 1)
    for n in range(1, 80):
        day_by_day = sum(cal.is_working_day(date(2026, 9, 1) + timedelta(days=i)) for i in range(1, n + 1))
        assert cal.working_days_between(day, day + timedelta(days=n)) == day_by_day


def test_the_settings_make_the_calendar(make_app):
    app = make_app(WORK_WEEKDAYS="1-5", HOLIDAYS="2026-11-10, 2026-11-11", MAKEUP_WORKDAYS="2026-11-08")
    with app.app_context():
        cal = schedule.calendar()
    assert not cal.is_working_day(date(2026, 11, 7))  # Saturday
    assert cal.is_working_day(date(2026, 11, 8))  # a make-up Sunday
    assert not cal.is_working_day(date(2026, 11, 10))
    assert cal.add_working_days(date(2026, 11, 9), 1) == date(2026, 11, 12)
    with pytest.raises(ConfigError, match="WORK_WEEKDAYS"):
        make_app(WORK_WEEKDAYS="Mon-Fri")
    with pytest.raises(ConfigError, match="HOLIDAYS"):
        make_app(HOLIDAYS="2026-13-01")


# --- expected, actual, deviation, ETA ---------------------------------------------------------------

def test_on_schedule_the_eta_is_the_due_date():
    # Friday 6 Nov: 500 made. Saturday morning, before today's report: judged as of Friday.
    p = judge(task(), date(2026, 11, 7), daily(100, last=date(2026, 11, 6)))
    assert (p.expected_qty, p.actual_qty, p.deviation_pct) == (500, 500, 0.0)
    assert (p.eta_date, p.days_late, p.level, p.rate_per_day) == (DUE, 0, None, 100.0)
    assert p.reported_on == date(2026, 11, 6)
    # Once Saturday's report is in, Saturday counts too.
    p = judge(task(), date(2026, 11, 7), daily(100, last=date(2026, 11, 7)))
    assert (p.expected_qty, p.actual_qty, p.eta_date) == (600, 600, DUE)


def test_slipping_at_half_the_pace_is_red_and_late():
    p = judge(task(), date(2026, 11, 7), daily(50, last=date(2026, 11, 6)))
    assert (p.expected_qty, p.actual_qty, p.deviation_pct) == (500, 250, 20.8)
    # 950 left at 50 a day: 19 working days after Friday 6 Nov → Saturday 28 Nov, 12 working days late.
    assert (p.eta_date, p.days_late, p.level) == (date(2026, 11, 28), 12, "red")


def test_a_little_behind_but_on_time_has_no_level():
    p = judge(task(), date(2026, 11, 10), daily(95, last=date(2026, 11, 9)))
    assert p.deviation_pct == 2.9 and p.days_late == 1 and p.level is None
    p = judge(task(), date(2026, 11, 10), daily(90, last=date(2026, 11, 9)))
    assert (p.eta_date, p.days_late, p.level) == (date(2026, 11, 17), 2, "yellow")


def test_noisy_days_even_out():
    # 150, 50, 150, 50 …: the pace is 100 a day. Yesterday's 50 alone would predict 7 working days late;
    # the week's average predicts at most one, which is no alert.
    p = judge(task(), date(2026, 11, 11), daily([150, 50], last=date(2026, 11, 10)))
    assert p.actual_qty == 800 and 90 <= p.rate_per_day <= 110
    assert p.eta_date in (DUE, date(2026, 11, 16)) and p.days_late <= 1 and p.level is None


def test_a_skipped_report_caught_up_next_day_changes_nothing():
    reports = [r for r in daily(100, last=date(2026, 11, 10)) if r.report_date != date(2026, 11, 9)]
    p = judge(task(), date(2026, 11, 11), reports)
    assert p.rate_per_day == 100.0 and p.eta_date == DUE


def test_a_stall_has_no_eta_and_is_late_before_the_due_date():
    # 300 by Wednesday 4 Nov, then silence. Tuesday 10 Nov: four working days without a report.
    p = judge(task(), date(2026, 11, 10), daily(100, last=date(2026, 11, 4)))
    assert (p.expected_qty, p.actual_qty, p.deviation_pct) == (700, 300, 33.3)
    assert p.eta_date is None and p.rate_per_day == 0.0
    # Even restarting tomorrow at 100 a day, the 900 left take until Friday 20 Nov: 5 working days late.
    assert (p.days_late, p.level) == (5, "red")


def test_reporting_the_same_figure_is_a_stall_too():
    reports = daily(100, last=date(2026, 11, 4)) + [Report(date(2026, 11, d), 300) for d in (5, 6, 7, 9)]
    p = judge(task(), date(2026, 11, 10), reports)
    assert (p.eta_date, p.rate_per_day, p.days_late, p.reported_on) == (None, 0.0, 5, date(2026, 11, 9))


def test_a_trickle_is_a_stall():
    # 5 a day where the plan needs 100: no date worth promising (it would be months away).
    p = judge(task(), date(2026, 11, 10), daily(5, last=date(2026, 11, 9)))
    assert p.eta_date is None and p.rate_per_day == 0.0 and p.level == "red"


def test_a_stall_that_is_over_does_not_drag_the_pace_down():
    # 100 a day, three days stuck at 300 (reported), then 100 a day again up to Wednesday 11 Nov.
    reports = (daily(100, last=date(2026, 11, 4)) + [Report(date(2026, 11, d), 300) for d in (5, 6, 7)]
               + [Report(date(2026, 11, d), 300 + 100 * (d - 8)) for d in (9, 10, 11)])
    p = judge(task(), date(2026, 11, 12), reports)
    # 600 left at the running pace of 100: Wednesday 18 Nov, 3 working days late (averaging the
    # stall in, 67 a day, would say Saturday 21 Nov).
    assert (p.rate_per_day, p.eta_date, p.days_late) == (100.0, date(2026, 11, 18), 3)
    assert (p.expected_qty, p.actual_qty, p.deviation_pct, p.level) == (900, 600, 25.0, "red")


def test_a_stall_past_the_due_date_counts_the_days_gone_by():
    reports = daily(100, last=date(2026, 11, 13))  # 1100 by Friday, then nothing
    p = judge(task(), date(2026, 11, 26), reports)
    # Ten working days past the due date already; the last 100 pieces take one more if it restarts.
    assert (p.eta_date, p.days_late, p.level) == (None, 11, "yellow")


def test_no_report_yet():
    # Day one, nothing reported: no pace to judge, the plan's date stands.
    p = judge(task(), date(2026, 11, 3), [])
    assert (p.expected_qty, p.actual_qty, p.eta_date, p.days_late, p.rate_per_day) == (100, 0, DUE, 0, None)
    assert p.reported_on is None
    # Three working days into the plan without a word: stalled.
    p = judge(task(), date(2026, 11, 5), [])
    assert p.eta_date is None and p.rate_per_day == 0.0 and p.deviation_pct == 25.0


def test_a_start_in_the_future_expects_nothing():
    p = judge(task(), date(2026, 10, 28), [])
    assert (p.expected_qty, p.deviation_pct, p.eta_date, p.level) == (0, 0.0, DUE, None)


def test_a_holiday_in_the_plan_stretches_it():
    cal = Calendar(holidays=[date(2026, 11, 9)])
    # Eleven working days now; by Tuesday 10 Nov seven of them are gone: 1200 × 7/11.
    assert schedule.expected_qty(task(), date(2026, 11, 10), cal) == 764
    p = judge(task(), date(2026, 11, 11), daily(110, last=date(2026, 11, 10), cal=cal), cal=cal)
    assert p.eta_date == date(2026, 11, 14) and p.rate_per_day == 110.0


def test_a_finished_task_shows_its_finish_date():
    reports = daily(120, last=date(2026, 11, 12))  # 1200 on Thursday 12 Nov
    p = judge(task(), date(2026, 11, 16), reports)
    assert (p.actual_qty, p.eta_date, p.days_late, p.level) == (1200, date(2026, 11, 12), 0, None)
    # Completed late: Tuesday 17 Nov 10:00 China time, two working days after the due date, no alert level.
    done = task(state="completed", completed_at=datetime(2026, 11, 17, 2, 0))
    p = judge(done, date(2026, 11, 20), daily(100, last=date(2026, 11, 17)))
    assert (p.eta_date, p.days_late, p.level) == (date(2026, 11, 17), 2, None)
    # Completed with neither a date nor a report (imported history): taken as finished on time.
    p = judge(task(state="completed"), date(2026, 11, 20), [])
    assert (p.eta_date, p.days_late, p.level) == (DUE, 0, None)


def test_an_order_on_hold_is_frozen():
    held = task(state="on_hold")
    p = judge(held, date(2026, 11, 20), daily(50, last=date(2026, 11, 6)))
    # As of its last report (Friday 6 Nov): 500 expected, 250 made; nothing predicted, nothing to chase.
    assert (p.expected_qty, p.actual_qty, p.deviation_pct) == (500, 250, 20.8)
    assert (p.eta_date, p.days_late, p.level) == (None, 0, None)


def test_a_pending_or_cancelled_task_has_no_progress():
    assert judge(task(state="pending"), date(2026, 11, 7), []) is None
    assert judge(task(state="cancelled"), date(2026, 11, 7), []) is None


def test_the_suppliers_promise_counts_when_later():
    reports = daily(100, last=date(2026, 11, 6))
    later = judge(task(), date(2026, 11, 7), reports, supplier_eta=date(2026, 11, 18))
    assert (later.eta_date, later.days_late, later.level) == (date(2026, 11, 18), 3, "yellow")
    earlier = judge(task(), date(2026, 11, 7), daily(50, last=date(2026, 11, 6)), supplier_eta=date(2026, 11, 16))
    assert earlier.eta_date == date(2026, 11, 28)  # a promise the pace does not support
    stalled = judge(task(), date(2026, 11, 10), daily(100, last=date(2026, 11, 4)), supplier_eta=date(2026, 11, 19))
    assert (stalled.eta_date, stalled.days_late) == (date(2026, 11, 19), 4)
    expired = judge(task(), date(2026, 11, 7), reports, supplier_eta=date(2026, 11, 6))
    assert expired.eta_date == DUE


# --- from the database ------------------------------------------------------------------------------

def _order_with_reports(n_tasks, today):
    suppliers = [factories.supplier() for _ in range(n_tasks)]
    order = factories.order(factories.customer(), suppliers, days_before=5, days_after=7, qty=1200)
    tasks = list(Task.select().where(Task.order == order.id).order_by(Task.id))
    for t in tasks:
        qty = 0
        for back in range(5, 0, -1):
            day = today - timedelta(days=back)
            qty += 100
            ProgressReport.create(task=t, report_date=day, qty_done=qty)
        Task.update(qty_done=qty, last_report_date=today - timedelta(days=1)).where(Task.id == t.id).execute()
    return list(Task.select().where(Task.order == order.id).order_by(Task.id))


def test_progress_many_runs_two_queries_for_any_number_of_tasks(dbconn):
    today = date.today()
    one = _order_with_reports(1, today)
    _, seen_few = statements(lambda: schedule.progress_many(one, today, cal=CAL))
    tasks = _order_with_reports(6, today)
    many, seen_many = statements(lambda: schedule.progress_many(tasks, today, cal=CAL))
    assert len(seen_few) == len(seen_many) == 2
    assert len(many) == 6 and {p.actual_qty for p in many.values()} == {500}


def test_progress_reads_reports_and_the_suppliers_promise(dbconn):
    today = date.today()
    t = _order_with_reports(1, today)[0]
    promise = today + timedelta(days=40)
    EtaRevision.create(task=t, new_eta=today + timedelta(days=2), source="engine")
    EtaRevision.create(task=t, new_eta=promise, source="supplier", reason="模具维修")
    p = progress(t, today, cal=CAL, threshold=2)
    assert p.actual_qty == 500 and p.reported_on == today - timedelta(days=1)
    assert p.eta_date == promise and p.level is not None


def test_a_long_stall_still_shows_the_last_report(dbconn):
    today = date.today()
    sup = factories.supplier()
    order = factories.order(factories.customer(), [sup], days_before=60, days_after=5, qty=1200)
    t = Task.get(Task.order == order.id)
    ProgressReport.create(task=t, report_date=today - timedelta(days=50), qty_done=200)
    Task.update(qty_done=200, last_report_date=today - timedelta(days=50), qr_code=secrets.token_urlsafe(8)) \
        .where(Task.id == t.id).execute()
    p = progress(Task.get_by_id(t.id), today, cal=CAL, threshold=2)
    assert (p.actual_qty, p.reported_on, p.eta_date, p.rate_per_day) == (200, today - timedelta(days=50), None, 0.0)
