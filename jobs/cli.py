"""flask commands for jobs: run one periodic job now, list them, and serve the embedded default."""
import inspect

import click
from flask import current_app
from flask.cli import AppGroup
from werkzeug.serving import run_simple

from app import migrate
from app.extensions import db
from app.queueing import resolve
from app.timeutil import parse_instant, utcnow
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
    now = parse_instant(now_text) if now_text else utcnow()
    kwargs = {"now": now} if "now" in inspect.signature(func).parameters else {}
    with db.connection_context():
        result = func(**kwargs)
    click.echo(f"{name}: {result}")


@click.command("serve")
@click.option("--host", default="127.0.0.1")
@click.option("--port", default=5000, type=int)
def serve_command(host, port):
    """Run the embedded default: migrate, run periodic jobs in process, serve HTTP."""
    from jobs import inprocess

    app = current_app._get_current_object()
    migrate.upgrade()
    if app.config.get("REDIS_URL"):
        click.echo("REDIS_URL is set: start `rq worker` and `rq cron jobs.cron` for jobs (see README).")
    else:
        inprocess.start(app)
    base = f"http://{host}:{port}"
    not_sent = "not configured - messages are recorded in the notification table and the log"
    click.echo(
        f"""
外协协同 backend is running on {base}  (Ctrl+C stops it)
  database : {app.config['DATABASE_URL']}
  jobs     : {'RQ via ' + app.config['REDIS_URL'] if app.config.get('REDIS_URL') else 'in process'}
  WeChat   : {'configured' if app.config['WECHAT_ENABLED'] else not_sent}

Try it:
  curl {base}/healthz
  open {base}/docs            (API explorer; the spec is {base}/openapi.json)
  curl -s -X POST {base}/mp/v1/auth/demo-login -H 'Content-Type: application/json' -d '{{"openid": "demo-supplier-1"}}'
      → a token for a demo supplier; then: curl {base}/mp/v1/me -H 'Authorization: Bearer <token>'
  Dashboard/API login: user 'manager', password 'demo-manager-pw' (POST /api/v1/auth/login)
"""
    )
    # app.run() refuses to start inside a flask command; run_simple is what it would call.
    run_simple(host, port, app, threaded=True)


def register(app):
    app.cli.add_command(jobs_cli)
    app.cli.add_command(serve_command)
