"""Settings for the rq command line (`rq worker -c jobs.rqconfig …`, `rq cron -c jobs.rqconfig …`).

rq takes its Redis URL from here, so the workers and the cron use the app's one REDIS_URL without a
`--url "$REDIS_URL"` on the command line: docker-compose and systemd do not expand that the way a
shell does, and the README's commands run unchanged in all three (tests/test_deploy.py)."""
import os

REDIS_URL = os.environ.get("REDIS_URL", "").strip()
if not REDIS_URL:
    raise SystemExit("configuration error: REDIS_URL must be set for rq worker and rq cron")
