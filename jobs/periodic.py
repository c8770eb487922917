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
    # The delay engine (README "Alerts"): hourly, the early warning after the delay scan it reads.
    "delay-scan": Every(cron="10 * * * *"),
    "early-warning-scan": Every(cron="15 * * * *"),
    "node-overdue-scan": Every(cron="20 * * * *"),
    # Hourly from 18:05 (REPORT_CUTOFF 18:00): reminds on the day, resolves when the report comes.
    "missing-report-scan": Every(cron="5 * * * *"),
    # Every 10 minutes: an unacknowledged red alert escalates within ESCALATE_RED_HOURS + 10 min.
    "escalation-scan": Every(interval=600),
}
