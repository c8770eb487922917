"""The embedded default's scheduler: the periodic table, run in a background thread."""
import logging
import threading
import time
from datetime import datetime

from croniter import croniter

from app.extensions import db
from app.queueing import record_periodic_run, resolve
from app.timeutil import CHINA
from jobs.periodic import PERIODIC
from jobs.table import JOBS

log = logging.getLogger(__name__)


def _next_run(when, after):
    if when.interval:
        return after + when.interval
    return croniter(when.cron, datetime.fromtimestamp(after, CHINA)).get_next(float)


def start(app, tick=5, first_delay=10, stop=None):
    """Start a daemon thread that runs each periodic job when it is due (interval jobs first after
    `first_delay` seconds), until `stop` (a threading.Event) is set."""
    stop = stop or threading.Event()
    now = time.time()
    due = {name: now + first_delay if when.interval else _next_run(when, now) for name, when in PERIODIC.items()}

    def loop():
        while not stop.wait(tick):
            for name, when in PERIODIC.items():
                if time.time() < due[name]:
                    continue
                try:
                    with app.app_context(), db.connection_context():
                        resolve(JOBS[name].func)()
                        record_periodic_run(name)  # /healthz: the periodic jobs are running
                except Exception:
                    log.exception("periodic job failed", extra={"job": name})
                due[name] = _next_run(when, time.time())

    thread = threading.Thread(target=loop, name="periodic-jobs", daemon=True)
    thread.start()
    return thread
