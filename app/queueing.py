"""Enqueue jobs by name, only after the database commit; run them in process when there is no Redis.

Services call `enqueue_after_commit("send-notification", 42)`. The job's function, queue and
time limit come from the job table (jobs/table.py), which `create_app` installs, so services
never import `jobs/` and never choose queues. A rolled-back transaction discards the callback,
so a worker never sees a row that was never committed. If Redis is down at that moment the
committed row stays pending and the periodic scan that owns that work (the outbox flush, the
photo sweep) picks it up: delayed, not lost.
"""
import importlib
import logging

from rq import Queue
from rq.exceptions import DuplicateJobError, NoSuchJobError
from rq.job import Job, JobStatus

from app.extensions import current, db

log = logging.getLogger(__name__)


def job(name):
    """The job table's entry for `name` (KeyError for a job nobody declared)."""
    return current().jobs[name]


def get_queue(name, connection=None):
    return Queue(name, connection=connection or current().redis)


def resolve(func_path):
    module_name, _, attr = func_path.rpartition(".")
    return getattr(importlib.import_module(module_name), attr)


def run_inline(name, *args):
    """The embedded default's worker: run now, in this process; a failure is logged, not raised."""
    try:
        return resolve(job(name).func)(*args)
    except Exception:
        log.exception("in-process job failed", extra={"job": name, "job_args": args})
        return None


# A job in one of these states is over: its id may be used again.
OVER = (JobStatus.FINISHED, JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED)


def enqueue_now(name, *args, job_id=None):
    """Enqueue at once (callers outside a transaction: cron, CLI, scans). A `job_id` makes the
    unit of work unique while it waits or runs; once that job is over the id is free again (RQ
    keeps finished and failed jobs for a while, and would refuse the id)."""
    ext = current()
    if ext.redis is None:
        return run_inline(name, *args)
    spec = job(name)
    queue = get_queue(spec.queue, ext.redis)
    if not job_id:
        return queue.enqueue(spec.func, *args, job_timeout=spec.timeout)
    for _ in range(2):
        try:
            return queue.enqueue(spec.func, *args, job_timeout=spec.timeout, job_id=job_id, unique=True)
        except DuplicateJobError:
            try:
                earlier = Job.fetch(job_id, connection=ext.redis)
            except NoSuchJobError:
                continue  # it expired meanwhile: try again
            if earlier.get_status(refresh=False) not in OVER:
                return None  # the same unit of work is already queued or running
            earlier.delete()
    return None


def enqueue_after_commit(name, *args, job_id=None):
    """Enqueue once the current transaction commits; never if it rolls back."""
    job(name)  # an unknown name fails here, in the caller's transaction, not silently later

    def fire():
        try:
            enqueue_now(name, *args, job_id=job_id)
        except Exception:
            # The data is committed; the periodic scan that owns this work will retry it.
            log.exception("enqueue failed after commit", extra={"job": name, "job_args": args})

    db.after_commit(fire)
