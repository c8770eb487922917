"""The one table of periodic jobs. `rq cron jobs.cron` enqueues them in production; the
embedded default runs the same table in a background thread; `flask --app wsgi jobs run NAME`
runs one now (or as of --now). Every entry is an idempotent scan-and-act job."""
from dataclasses import dataclass

from jobs.notify import flush_outbox


@dataclass(frozen=True)
class PeriodicJob:
    func: object
    queue: str
    interval: int = None  # seconds
    cron: str = None  # cron string, China time (run rq cron with TZ=Asia/Shanghai)
    job_timeout: int = 300


PERIODIC = {
    "flush-outbox": PeriodicJob(flush_outbox, queue="notify", interval=60),
}
