"""The one table of periodic jobs. `rq cron jobs.cron` enqueues them in production; the
embedded default runs the same table in a background thread; `flask --app wsgi jobs run NAME`
runs one now (or as of --now). Every entry names a job of jobs/table.py and is an idempotent
scan-and-act job: running it twice changes nothing."""
from dataclasses import dataclass


@dataclass(frozen=True)
class Every:
    interval: int = None  # seconds
    cron: str = None  # cron string, China time (run rq cron with TZ=Asia/Shanghai)


PERIODIC = {
    # What a Redis outage or a crash left unsent.
    "flush-outbox": Every(interval=60),
    # Photos whose processing job was lost, and upload policies nobody used.
    "sweep-photos": Every(interval=600),
    # The delay engine (README "Alerts"). Intervals, not cron strings: a restarted cron runs them at
    # once instead of skipping a missed hour; each scan judges by its own clock (the report cut-off,
    # the China date), so when a tick falls does not matter. The early warning reads the delay scan's
    # alerts, so it follows it.
    "delay-scan": Every(interval=3600),
    "early-warning-scan": Every(interval=3600),
    "node-overdue-scan": Every(interval=3600),
    # Reminders within 15 minutes of REPORT_CUTOFF (18:00), and resolved as soon after a report.
    "missing-report-scan": Every(interval=900),
    # An unacknowledged red alert escalates within ESCALATE_RED_HOURS + 10 minutes.
    "escalation-scan": Every(interval=600),
    # Supplier scorecard snapshots: the current and the previous week and month of every supplier
    # with activity in them (README "Supplier scorecard"); idempotent, so a tick more or less is harmless.
    "scorecard-snapshot": Every(interval=6 * 3600),
}
