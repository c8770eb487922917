"""RQ worker classes that run each job inside the Flask app context with its own DB connection.

Start with: rq worker -c jobs.rqconfig -w jobs.worker.AppWorker --with-scheduler notify media (README "Production")
"""
import os

from rq import Worker

from app import create_app_or_exit
from app.extensions import db
from app.queueing import record_periodic_run
from jobs.periodic import PERIODIC
from jobs.table import JOBS

# Function path → periodic job name: how a worker knows a job it ran came from `rq cron jobs.cron`.
PERIODIC_FUNCS = {JOBS[name].func: name for name in PERIODIC}


class AppWorker(Worker):
    """Forks a work horse per job; each job runs in the app context with its own DB connection."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Built once in the parent; create_app opens no connection, so nothing leaks into forks.
        self.flask_app = create_app_or_exit()
        self._parent_pid = os.getpid()

    def perform_job(self, job, *args, **kwargs):
        # RQ 3 added an `execution` argument; pass everything through unchanged.
        if os.getpid() != self._parent_pid:
            db.dispose()  # a forked work horse must not touch the parent's connection state
        with self.flask_app.app_context(), db.connection_context():
            done = super().perform_job(job, *args, **kwargs)
            if done and job.func_name in PERIODIC_FUNCS:
                record_periodic_run(PERIODIC_FUNCS[job.func_name])  # /healthz: the cron and the workers are alive
            return done
