"""The production cron process (`rq cron jobs.cron`) loads the periodic table as RQ reads it."""
import redis
from rq.cron import CronScheduler

from jobs.periodic import PERIODIC
from jobs.table import JOBS


def test_rq_cron_loads_every_periodic_job_with_its_queue_interval_and_time_limit(backend):
    if backend["name"] != "mysql":
        return  # rq cron needs Redis; the embedded default runs the table in process
    scheduler = CronScheduler(connection=redis.Redis.from_url(backend["config"]["REDIS_URL"]))
    scheduler.load_config_from_file("jobs.cron")
    registered = {job.name: job for job in scheduler.get_jobs()}
    assert set(registered) == set(PERIODIC)
    for name, job in registered.items():
        assert job.func_name == JOBS[name].func
        assert job.queue_name == JOBS[name].queue
        assert job.interval == PERIODIC[name].interval and job.job_options["job_timeout"] == JOBS[name].timeout
