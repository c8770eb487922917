"""GET /healthz: 200 when the database and (if configured) Redis answer, else 503 naming what failed."""
import logging

from apiflask import APIBlueprint, Schema
from apiflask.fields import Dict, String

from app.extensions import current, db

log = logging.getLogger(__name__)
bp = APIBlueprint("health", __name__, tag="运维")


class HealthOut(Schema):
    status = String(metadata={"description": "ok | fail"})
    checks = Dict(metadata={"description": "component → ok | failed | not_configured"})


def _check_database():
    with db.connection_context():
        db.execute_sql("SELECT 1")


def _check_redis():
    redis = current().redis
    if redis is None:
        return "not_configured"
    redis.ping()
    return "ok"


@bp.get("/healthz")
@bp.output(HealthOut)
@bp.doc(responses={503: {"description": "a component failed",
                          "content": {"application/json": {"schema": {"$ref": "#/components/schemas/HealthOut"}}}}})
def healthz():
    """Liveness and dependencies for load balancers and monitoring."""
    checks = {}
    for name, check in (("database", _check_database), ("redis", _check_redis)):
        try:
            checks[name] = check() or "ok"
        except Exception as exc:
            log.warning("health check failed", extra={"component": name, "error": type(exc).__name__})
            checks[name] = "failed"
    ok = all(v != "failed" for v in checks.values())
    return {"status": "ok" if ok else "fail", "checks": checks}, (200 if ok else 503)
