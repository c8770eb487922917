"""GET /healthz: 200 when the database and (if configured) Redis answer and the schema is up to date,
else 503 naming what failed. It also reports how long ago the periodic jobs last ran and the RQ
workers' heartbeats: for monitoring, not for the load balancer (a stopped cron or worker is no
reason to take web processes out of service, so they do not change the status)."""
import logging

from apiflask import APIBlueprint, Schema
from apiflask.fields import Dict, Integer, List, Nested, String

from app import migrate
from app.extensions import current, db
from app.queueing import periodic_run_ages, worker_heartbeats

log = logging.getLogger(__name__)
bp = APIBlueprint("health", __name__, tag="运维")


class CronOut(Schema):
    last_tick_age_seconds = Integer(allow_none=True, metadata={
        "description": "seconds since a periodic job last ran to its end (null: none has run yet)"})
    jobs = Dict(keys=String(), values=Integer(), metadata={"description": "periodic job → seconds since its last run"})


class WorkerOut(Schema):
    name = String()
    queues = List(String())
    heartbeat_age_seconds = Integer(allow_none=True)


class HealthOut(Schema):
    status = String(metadata={"description": "ok | fail"})
    checks = Dict(metadata={"description": "database, redis → ok | failed | not_configured; "
                                           "migrations → ok | pending | failed"})
    pending_migrations = List(String(), metadata={"description": "migrations not applied yet: run `flask --app wsgi db upgrade`"})
    cron = Nested(CronOut)
    workers = List(Nested(WorkerOut), metadata={"description": "live RQ workers (none without Redis)"})


def _check_database():
    with db.connection_context():
        db.execute_sql("SELECT 1")


def _check_redis():
    redis = current().redis
    if redis is None:
        return "not_configured"
    redis.ping()
    return "ok"


def _attempt(name, check, fallback):
    try:
        return check()
    except Exception as exc:
        log.warning("health check failed", extra={"component": name, "error": type(exc).__name__})
        return fallback


@bp.get("/healthz")
@bp.output(HealthOut)
@bp.doc(responses={503: {"description": "a component failed or migrations are pending",
                          "content": {"application/json": {"schema": {"$ref": "#/components/schemas/HealthOut"}}}}})
def healthz():
    """Liveness and dependencies for load balancers and monitoring."""
    checks = {
        "database": _attempt("database", lambda: _check_database() or "ok", "failed"),
        "redis": _attempt("redis", _check_redis, "failed"),
    }
    pending = _attempt("migrations", migrate.pending, None)
    checks["migrations"] = "failed" if pending is None else ("pending" if pending else "ok")
    ages = _attempt("cron", periodic_run_ages, {})
    ok = all(v in ("ok", "not_configured") for v in checks.values())
    return {
        "status": "ok" if ok else "fail",
        "checks": checks,
        "pending_migrations": pending or [],
        "cron": {"last_tick_age_seconds": min(ages.values()) if ages else None, "jobs": ages},
        "workers": _attempt("workers", worker_heartbeats, []),
    }, (200 if ok else 503)
