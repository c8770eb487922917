"""Cron table for `TZ=Asia/Shanghai rq cron jobs.cron` — run exactly one such process."""
from rq import cron

from jobs.periodic import PERIODIC

for _name, _job in PERIODIC.items():
    cron.register(
        _job.func,
        queue_name=_job.queue,
        interval=_job.interval,
        cron=_job.cron,
        job_timeout=_job.job_timeout,
        name=_name,
    )
