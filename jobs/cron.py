"""Cron table for `rq cron -c jobs.rqconfig jobs.cron` (TZ=Asia/Shanghai in its environment): run exactly one."""
from rq import cron

from app.queueing import resolve
from jobs.periodic import PERIODIC
from jobs.table import JOBS

for _name, _when in PERIODIC.items():
    _job = JOBS[_name]
    cron.register(
        resolve(_job.func),  # rq cron takes the function itself
        queue_name=_job.queue,
        interval=_when.interval,
        cron=_when.cron,
        job_timeout=_job.timeout,
        name=_name,
    )
