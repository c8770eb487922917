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
import time
from datetime import UTC, timedelta

from rq import Queue, Worker
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
    enqueued, _ = _enqueue_unique(ext, queue, spec, job_id, args)
    return enqueued  # None: the same unit of work is already queued or running


def _enqueue_unique(ext, queue, spec, job_id, args):
    """Enqueue under `job_id` unless a job that is not over holds it (RQ keeps finished and failed
    jobs for a while; their id is freed here). → (the new job, None) or (None, the holder's status)."""
    for _ in range(2):
        try:
            return queue.enqueue(spec.func, *args, job_timeout=spec.timeout, job_id=job_id, unique=True), None
        except DuplicateJobError:
            try:
                earlier = Job.fetch(job_id, connection=ext.redis)
            except NoSuchJobError:
                continue  # it expired meanwhile: try again
            status = earlier.get_status(refresh=False)
            if status not in OVER:
                return None, status
            earlier.delete()
    return None, None


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


# Coalesced jobs: at most this many runs of one job exist at a time (queued or running), under
# the ids "<name>-0" … "<name>-N": enough for every notify worker to run one.
COALESCE_SLOTS = 8


def enqueue_coalesced(name, *args):
    """Make sure one run of `name` is waiting to start; enqueue one only when none is.

    For a job that works through everything due when it starts (the outbox delivery): a run that
    is waiting will see the caller's rows, so a thousand calls cost one job. Runs that have
    already started may have looked before the caller's rows existed, so they do not count: the
    next free slot gets a new run, and that is how several workers come to work in parallel."""
    ext = current()
    if ext.redis is None:
        return run_inline(name, *args)
    spec = job(name)
    queue = get_queue(spec.queue, ext.redis)
    for slot in range(COALESCE_SLOTS):
        enqueued, holder = _enqueue_unique(ext, queue, spec, f"{name}-{slot}", args)
        if enqueued is not None or holder == JobStatus.QUEUED:
            return enqueued  # ours, or one waiting to start that will see our work
        # this slot is running (or could not be taken): try the next one
    # Every slot is running; each keeps claiming until nothing is due, and the periodic flush
    # wakes a new run within a minute for anything committed after their last look.
    return None


def enqueue_at(name, when, *args):
    """Run `name` at `when` (naive UTC) through RQ's scheduler (workers run --with-scheduler); one
    run per job and second, however many callers ask. Without Redis nothing: the in-process
    periodic jobs cover it."""
    ext = current()
    if ext.redis is None:
        return None
    spec = job(name)
    at = when.replace(tzinfo=UTC, microsecond=0) + timedelta(seconds=1)
    try:
        return get_queue(spec.queue, ext.redis).enqueue_at(
            at, spec.func, *args, job_timeout=spec.timeout, job_id=f"{name}-at-{int(at.timestamp())}", unique=True)
    except DuplicateJobError:
        return None


def enqueue_after_commit_once(name, *args):
    """enqueue_coalesced after the current transaction commits, registered once per transaction
    (a transaction that records 500 messages wakes the sender once); never if it rolls back."""
    job(name)
    outer = db.top_transaction() and db._state.transactions[0]
    marker = f"_coalesced_{name}"
    if outer is not None and getattr(outer, marker, False):
        return
    if outer is not None:
        setattr(outer, marker, True)

    def fire():
        try:
            enqueue_coalesced(name, *args)
        except Exception:
            log.exception("enqueue failed after commit", extra={"job": name, "job_args": args})

    db.after_commit(fire)


# --- what /healthz reports about the background side -------------------------------------------

PERIODIC_RUNS_KEY = "periodic-last-run"  # Redis hash: job name → unix time its last run ended


def record_periodic_run(name):
    """A periodic job (jobs/periodic.py) has just run to its end: the cron and a worker are alive.
    In Redis for the RQ workers; without Redis, periodic jobs run in this process (`serve`)."""
    ext = current()
    if ext.redis is None:
        ext.periodic_runs[name] = time.time()
    else:
        ext.redis.hset(PERIODIC_RUNS_KEY, name, time.time())


def periodic_run_ages():
    """Job name → seconds since its last periodic run ended (jobs that never ran are absent)."""
    ext = current()
    if ext.redis is None:
        runs = ext.periodic_runs
    else:
        runs = {name.decode(): float(at) for name, at in ext.redis.hgetall(PERIODIC_RUNS_KEY).items()}
    now = time.time()
    return {name: max(0, round(now - at)) for name, at in runs.items()}


def worker_heartbeats():
    """The live RQ workers (they drop out of Redis when their heartbeat lapses): name, queues and
    seconds since the last heartbeat. Empty without Redis."""
    redis = current().redis
    if redis is None:
        return []
    now = time.time()
    return [
        {"name": w.name, "queues": w.queue_names(),
         "heartbeat_age_seconds": round(now - w.last_heartbeat.timestamp()) if w.last_heartbeat else None}
        for w in Worker.all(connection=redis)
    ]
