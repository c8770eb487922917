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
}
