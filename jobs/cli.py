"""flask commands for jobs: run one periodic job now, list them, serve the embedded default; see and resend the outbox."""
import inspect
import os
from datetime import timedelta

import click
from flask import current_app
from flask.cli import AppGroup
from peewee import fn
from werkzeug.serving import make_server

from app import migrate
from app.cli import one_line_errors
from app.config import describe
from app.domain.vocabulary import DATE_MAX, DATE_MIN
from app.extensions import db
from app.models import Notification
from app.queueing import resolve
from app.services import notifications
from app.timeutil import iso_local, parse_instant, utcnow
from jobs.periodic import PERIODIC
from jobs.table import JOBS

jobs_cli = AppGroup("jobs", help="Background jobs.")


@jobs_cli.command("list")
def list_jobs():
    """The job table; periodic jobs say when they run."""
    for name, job in JOBS.items():
        when = PERIODIC.get(name)
        if when is None:
            schedule = "on demand"
        else:
            schedule = f"every {when.interval}s" if when.interval else f"cron '{when.cron}' (China time)"
        click.echo(f"{name:20} {schedule:28} queue={job.queue:8} timeout={job.timeout}s  {job.func}")


@jobs_cli.command("run")
@click.argument("name", type=click.Choice(sorted(PERIODIC)))
@click.option("--now", "now_text", default=None, help="Run as of this ISO time (China time if no offset).")
def run_job(name, now_text):
    """Run one periodic job once, in this process, as of --now."""
    func = resolve(JOBS[name].func)
    try:
        now = parse_instant(now_text) if now_text else utcnow()
        if not DATE_MIN <= now.date() <= DATE_MAX:  # parse_instant clamps what datetime cannot hold
            raise ValueError(now_text)
    except (ValueError, OverflowError):
        raise click.ClickException(f"--now {now_text!r} is not an ISO 8601 time between {DATE_MIN} and {DATE_MAX}, "
                                   "e.g. 2026-11-22T18:00:00+08:00")
    kwargs = {"now": now} if "now" in inspect.signature(func).parameters else {}
    with db.connection_context():
        result = func(**kwargs)
    click.echo(f"{name}: {result}")


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; 0.0.0.0 for every interface (then set PUBLIC_BASE_URL to the address phones use).")
@click.option("--port", default=5000, type=int, show_default=True,
              help="Port to listen on. PUBLIC_BASE_URL (QR labels, photo links) follows it unless that is set.")
def serve_command(host, port):
    """Run the embedded default: migrate, run periodic jobs in process, serve HTTP."""
    from app import create_app
    from jobs import inprocess

    local = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    base = f"http://{local}:{port}"
    # QR labels and local photo links point at PUBLIC_BASE_URL; unless it is set, that is this server.
    app = current_app._get_current_object()
    if not os.environ.get("PUBLIC_BASE_URL", "").strip() and app.config["PUBLIC_BASE_URL"] != base:
        app = create_app({"PUBLIC_BASE_URL": base})
    migrate.upgrade()
    # Bind before saying where we serve: whoever reads the banner (a person, a script) can connect.
    server = make_server(host, port, app, threaded=True)
    if app.config.get("REDIS_URL"):
        click.echo("REDIS_URL is set: start the rq worker and the rq cron for jobs (README \"Production\").")
    else:
        inprocess.start(app)
    click.echo(_banner(app, base))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def _banner(app, base):
    not_sent = "not configured - messages are recorded in the notification table and the log"
    jobs = "RQ via " + app.config["REDIS_URL"] if app.config.get("REDIS_URL") else "in process"
    return f"""
外协协同 backend is running on {base}  (Ctrl+C stops it)
  database : {describe(app.config)['DATABASE_URL']}
  jobs     : {jobs}
  WeChat   : {'configured' if app.config['WECHAT_ENABLED'] else not_sent}
  labels   : QR codes point at {app.config['PUBLIC_BASE_URL']}/s/...

Try it:
  curl {base}/healthz
  open {base}/docs            (API explorer; the spec is {base}/openapi.json)
  open {base}/dashboard/      (staff dashboard: overview, Gantt, orders, exports)
  curl -s -X POST {base}/mp/v1/auth/demo-login -H 'Content-Type: application/json' -d '{{"openid": "demo-supplier-1"}}'
      → a token for a demo supplier; then: curl {base}/mp/v1/me -H 'Authorization: Bearer <token>'
  Dashboard/API login: user 'manager', password 'demo-manager-pw' (POST /api/v1/auth/login)
"""


outbox_cli = AppGroup("outbox", help="The notification outbox: what failed, what is stuck, resend one.")


def _outbox_line(note):
    recipient = note.recipient if len(note.recipient) <= 8 else "…" + note.recipient[-6:]  # enough to tell apart
    return (f"{note.id:>8}  {note.channel:12} {note.status:9} attempts={note.attempts:<2} "
            f"next={iso_local(note.next_attempt_at)}  to={recipient:10} {note.last_error or ''}")


@outbox_cli.command("list")
@click.option("--failed", "show", flag_value="failed", help="Rows that gave up, newest first, with the reason.")
@click.option("--stuck", "show", flag_value="stuck",
              help="Rows past their lease in 'sending' (a dead sender) or pending 10+ minutes after they were due.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 10000))
def outbox_list(show, limit):
    """Counts by channel and status; with --failed or --stuck, those rows."""
    with db.connection_context():
        if show is None:
            counts = (Notification.select(Notification.channel, Notification.status, fn.COUNT(Notification.id).alias("n"))
                      .group_by(Notification.channel, Notification.status).order_by(Notification.channel, Notification.status))
            for row in counts:
                click.echo(f"{row.channel:12} {row.status:9} {row.n}")
            return
        lease = timedelta(seconds=current_app.config["OUTBOX_LEASE_SECONDS"])
        rows = notifications.failed_rows(limit) if show == "failed" else notifications.stuck_rows(lease=lease, limit=limit)
        for note in rows:
            click.echo(_outbox_line(note))
        click.echo(f"({len(rows)} {show})", err=True)


@outbox_cli.command("resend")
@click.argument("notification_id", type=int)
def outbox_resend(notification_id):
    """Send one row again now, with fresh attempts (after fixing what made it fail)."""
    with db.connection_context():
        before = Notification.get_or_none(Notification.id == notification_id)
        if before is None:
            raise click.ClickException(f"no notification {notification_id}")
        if notifications.resend(notification_id) is None:
            raise click.ClickException(f"notification {notification_id} is being sent now; a stuck one is taken "
                                       "again by itself once its lease (OUTBOX_LEASE_SECONDS) has run out")
        click.echo(f"notification {notification_id} ({before.channel}, was {before.status}) queued again; "
                   f"now {Notification.get_by_id(notification_id).status}")


def register(app):
    app.cli.add_command(one_line_errors(jobs_cli))
    app.cli.add_command(one_line_errors(outbox_cli))
    app.cli.add_command(one_line_errors(serve_command))
