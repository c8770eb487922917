"""Enqueue jobs only after the database commit; run them in process when there is no Redis.

Services call `enqueue_after_commit("jobs.notify.send_notification", 42, queue="notify")`.
Jobs are named by dotted path so services never import `jobs/` (see architecture.md).
A rolled-back transaction discards the callback, so a worker never sees a row that was
never committed. If Redis is down at that moment the committed outbox row stays pending
and the periodic outbox flush picks it up: delayed, not lost.
"""
import importlib
import logging

from rq import Queue
from rq.exceptions import DuplicateJobError

from app.extensions import current, db

log = logging.getLogger(__name__)

# Queues by workload, in the priority order a worker should listen to them.
QUEUE_NAMES = ("notify", "media", "scan")


def get_queue(name, connection=None):
    if name not in QUEUE_NAMES:
        raise ValueError(f"unknown queue {name!r}")
    return Queue(name, connection=connection or current().redis)


def resolve(func_path):
    module_name, _, attr = func_path.rpartition(".")
    return getattr(importlib.import_module(module_name), attr)


def run_inline(func_path, *args):
    """The embedded default's worker: run now, in this process; a failure is logged, not raised."""
    try:
        return resolve(func_path)(*args)
    except Exception:
        log.exception("in-process job failed", extra={"job": func_path, "job_args": args})
        return None


def enqueue_now(func_path, *args, queue, job_id=None, job_timeout=None):
    """Enqueue at once (callers outside a transaction, cron, CLI)."""
    ext = current()
    if ext.redis is None:
        return run_inline(func_path, *args)
    options = {"job_timeout": job_timeout} if job_timeout else {}
    if job_id:
        options.update(job_id=job_id, unique=True)
    try:
        return get_queue(queue, ext.redis).enqueue(func_path, *args, **options)
    except DuplicateJobError:
        return None  # the same unit of work is already queued


def enqueue_after_commit(func_path, *args, queue, job_id=None, job_timeout=None):
    """Enqueue once the current transaction commits; never if it rolls back."""

    def fire():
        try:
            enqueue_now(func_path, *args, queue=queue, job_id=job_id, job_timeout=job_timeout)
        except Exception:
            # The data is committed; the periodic scan that owns this work will retry it.
            log.exception("enqueue failed after commit", extra={"job": func_path, "job_args": args})

    db.after_commit(fire)
