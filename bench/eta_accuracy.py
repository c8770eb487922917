"""How good is the ETA? A simulated production history, judged at 25 %, 50 % and 75 % of each plan.

    .venv/bin/python bench/eta_accuracy.py                  # 3000 tasks, seed 8
    .venv/bin/python bench/eta_accuracy.py --tasks 10000 --seed 1

No database: it calls app/services/schedule.py on in-memory tasks and reports. Each simulated task
has a plan (quantity, start, due date over 8–40 working days, Monday–Saturday, with China's 2026
National Day holidays and make-up days) and a true daily pace the plan does not know (0.55–1.25 ×
the plan's); each working day's output is that pace with ±35 % noise; one task in three stalls once
or twice for 2–8 working days (machine down, material short); one in four changes pace once
(0.6–1.5 ×: a second shift after an urge, or a worker gone); suppliers skip one report in ten (the
next report catches up, reports are cumulative). The true finish is the day output reaches the plan.

At 25 %, 50 % and 75 % of each plan's working days (after that day's report) it asks for the ETA and
compares it with the true finish: mean absolute error in working days, for the app's ETA, for the
naive plan-based prediction (the due date), and for other rate windows (to show why 10). A stalled
task has no ETA; it counts at the date its days_late implies (due date + days late), the date the
customer is shown. Tasks already finished at a checkpoint are left out of it.
"""
import argparse
import random
import sys
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from statistics import mean

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.services import schedule  # noqa: E402
from app.services.schedule import Calendar, Report  # noqa: E402

# 2026 National Day / Mid-Autumn: 1–8 Oct off, Sunday 27 Sep and Saturday 10 Oct worked (a Saturday
# is a working day here anyway). Also New Year's Day 2027.
HOLIDAYS = [date(2026, 10, d) for d in range(1, 9)] + [date(2027, 1, 1)]
MAKEUP = [date(2026, 9, 27), date(2026, 10, 10)]
CHECKPOINTS = (0.25, 0.50, 0.75)
WINDOWS = (3, 5, 7, 10, 14, 10_000)  # 10 000: the average since the start


@dataclass
class SimTask:
    id: int
    planned_qty: int
    planned_start: date
    due_date: date
    state: str = "in_production"
    completed_at: object = None
    qty_done: int = 0
    last_report_date: date | None = None


def simulate(rng, n, cal):
    """[(task, reports, true finish date, kind)]"""
    out = []
    for i in range(n):
        span = rng.randint(8, 40)
        start = cal.next_working_day(date(2026, 8, 3) + timedelta(days=rng.randint(0, 100)))
        due = cal.add_working_days(start, span - 1)
        planned = rng.randrange(300, 6000, 10)
        task = SimTask(i, planned, start, due)
        pace = planned / span * rng.uniform(0.55, 1.25)
        stalls, change_at, change = set(), None, 1.0
        kind = "steady"
        if rng.random() < 1 / 4:
            kind = "pace change"  # a second shift after an urge, or a worker gone
            change_at, change = rng.randint(2, span), rng.uniform(0.6, 1.5)
        if rng.random() < 1 / 3:
            kind = "stall"  # (a task may also have changed pace)
            for _ in range(rng.randint(1, 2)):
                at, length = rng.randint(1, int(span * 0.8)), rng.randint(2, 8)
                stalls.update(range(at, at + length))
        reports, made, day, k, finish = [], 0.0, start, 0, None
        while finish is None:
            if cal.is_working_day(day):
                if k not in stalls:
                    factor = change if change_at is not None and k >= change_at else 1.0
                    made += max(0.0, pace * factor * rng.gauss(1, 0.35))
                qty = min(planned, int(made))
                if qty >= planned:
                    finish = day
                if rng.random() > 0.1 or finish:
                    reports.append(Report(day, qty))
                k += 1
            day += timedelta(days=1)
        out.append((task, reports, finish, kind))
    return out


def errors(history, cal, window):
    """{checkpoint: ([app errors], [naive errors], stalled count)} in working days."""
    schedule.RATE_WINDOW = window
    result = {c: ([], [], 0) for c in CHECKPOINTS}
    for task, reports, finish, _kind in history:
        span = cal.working_days_between(task.planned_start - timedelta(days=1), task.due_date)
        for c in CHECKPOINTS:
            today = cal.add_working_days(task.planned_start - timedelta(days=1), max(1, round(span * c)))
            if finish <= today:
                continue  # already done: nothing to predict
            p = schedule.progress(task, today, reports=reports, cal=cal, threshold=2)
            eta = p.eta_date
            stalled = eta is None
            if stalled:
                eta = cal.add_working_days(task.due_date, p.days_late)
            app, naive, n_stalled = result[c]
            app.append(abs(cal.working_days_between(finish, eta)))
            naive.append(abs(cal.working_days_between(finish, task.due_date)))
            result[c] = (app, naive, n_stalled + stalled)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=8)
    args = parser.parse_args()
    cal = Calendar((1, 2, 3, 4, 5, 6), HOLIDAYS, MAKEUP)
    history = simulate(random.Random(args.seed), args.tasks, cal)
    late = sum(cal.working_days_between(t.due_date, f) > 0 for t, _, f, _ in history)
    print(f"{args.tasks} simulated tasks (seed {args.seed}); {late} finished after their due date; "
          f"{sum(k == 'pace change' for *_, k in history)} changed pace; {sum(k == 'stall' for *_, k in history)} "
          "with stalls")
    default = schedule.RATE_WINDOW
    table = {w: errors(history, cal, w) for w in WINDOWS}
    schedule.RATE_WINDOW = default
    print()
    print("Mean absolute error of the predicted finish, in working days (lower is better)")
    print(f"{'at % of plan':<14}{'tasks':>7}{'app ETA':>10}{'naive (due)':>13}" + "".join(
        f"{'rate ' + ('all' if w >= 1000 else str(w) + 'd'):>11}" for w in WINDOWS if w != default)
        + f"{'stalled':>9}")
    for c in CHECKPOINTS:
        app, naive, stalled = table[default][c]
        row = f"{f'{round(c * 100)} %':<14}{len(app):>7}{mean(app):>10.2f}{mean(naive):>13.2f}"
        row += "".join(f"{mean(table[w][c][0]):>11.2f}" for w in WINDOWS if w != default)
        print(row + f"{stalled:>9}")
    print(f"\napp ETA = schedule.progress (rate over the last {default} working days); naive = the due date.")


if __name__ == "__main__":
    main()
