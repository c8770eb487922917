"""flask commands: database migrations, demo data, staff users and API keys.

Every command we register (here and in jobs/cli.py) ends a failure it can explain in one line —
click's "Error: …" on stderr, exit status 1 — not a traceback: see `one_line_errors`.
"""
import functools
import os

import click
import peewee
import redis
from flask import current_app
from flask.cli import AppGroup
from playhouse.migrations import MigrationError

from app import migrate
from app.config import describe
from app.domain.errors import DomainError
from app.extensions import db

db_cli = AppGroup("db", help="Database schema.")


@db_cli.command("upgrade")
def db_upgrade():
    """Apply pending migrations."""
    applied = migrate.upgrade()
    click.echo(f"applied: {', '.join(applied)}" if applied else "schema is up to date")


@db_cli.command("status")
def db_status():
    """List migrations and when they were applied."""
    for m in migrate.status():
        click.echo(f"{m.name:40} {m.applied or 'pending'}")


@click.command("demo")
@click.option("--reset", is_flag=True, help="Empty the database (every table) first, then seed the demo anew.")
@click.option("--yes", is_flag=True, help="Do not ask before --reset empties the database.")
def demo_command(reset, yes):
    """Seed a realistic demo factory (3 suppliers, 2 customers, a dozen orders)."""
    from app import demo

    if reset and current_app.config["APP_ENV"] == "production":
        raise click.ClickException("demo --reset empties the database; it is refused when APP_ENV=production")
    migrate.upgrade()
    with db.connection_context():
        if reset:
            if not yes:
                click.confirm(f"Delete every row in {describe(current_app.config)['DATABASE_URL']}?", abort=True)
            demo.clear()
        elif demo.has_data():
            click.echo("demo data already present (use --reset to empty the database and seed it again)")
            return
        summary = demo.seed()
    click.echo(summary)


@click.command("create-api-key")
@click.argument("name")
@click.option("--scope", "scopes", multiple=True, type=click.Choice(["orders", "invites", "alerts"]),
              default=("orders",), show_default=True,
              help="What the key may do: orders (change orders, tasks, urges, master data, node templates), "
                   "invites, alerts (read alerts). Repeat for several.")
def create_api_key_command(name, scopes):
    """Create an ERP API key and print it once (only a hash is stored)."""
    from app.services.auth import create_api_key

    with db.connection_context():
        row, key = create_api_key(name, scopes)
    click.echo(f"API key for {name!r} (id {row.id}, scopes: {row.scopes}); store it now, it is not shown again:")
    click.echo(key)


@click.command("create-staff")
@click.argument("username")
@click.option("--role", type=click.Choice(["manager", "qc", "executive", "admin"]), required=True)
@click.option("--name", "display_name", default=None, help="Display name (defaults to the username).")
@click.option("--wecom-userid", default=None, help="WeCom user id for alerts.")
@click.option("--password-env", default=None, help="Read the password from this environment variable instead of a prompt.")
def create_staff_command(username, role, display_name, wecom_userid, password_env):
    """Create a dashboard user."""
    from app.services.auth import create_staff

    if password_env and not os.environ.get(password_env):
        raise click.ClickException(f"the environment variable {password_env} (--password-env) is not set")
    password = os.environ[password_env] if password_env else click.prompt(
        "Password", hide_input=True, confirmation_prompt=True
    )
    with db.connection_context():
        user = create_staff(username, password, role, display_name=display_name, wecom_userid=wecom_userid)
    click.echo(f"created staff user {user.username} ({user.role})")


@click.command("bind-wecom")
@click.argument("username")
@click.argument("wecom_userid", required=False)
@click.option("--unbind", is_flag=True, help="Remove the user's WeCom binding.")
def bind_wecom_command(username, wecom_userid, unbind):
    """Bind a staff user to a WeCom member (alerts, and the manager bot answers them as this user)."""
    from app.models import StaffUser
    from app.services.actors import Actor
    from app.services.auth import bind_wecom

    if bool(wecom_userid) == unbind:
        raise click.UsageError("give either WECOM_USERID or --unbind")
    with db.connection_context():
        user = StaffUser.get_or_none(StaffUser.username == username)
        if user is None:
            raise click.ClickException(f"no staff user {username!r}")
        user = bind_wecom(Actor.system("命令行"), user.id, None if unbind else wecom_userid)
    click.echo(f"{user.username} is bound to WeCom member {user.wecom_userid}" if user.wecom_userid
               else f"{user.username} is not bound to a WeCom member")


@click.command("config")
def config_command():
    """Print the effective settings (secrets hidden)."""
    for key, value in sorted(describe(current_app.config).items()):
        click.echo(f"{key}={value}")


audit_cli = AppGroup("audit", help="The tamper-evident audit log.")


@audit_cli.command("verify")
def audit_verify():
    """Check every hash chain (one per order, and one per object outside orders); exit 1 and list
    the problems if an entry was edited or deleted."""
    from app.services import audit

    with db.connection_context():
        problems = audit.verify()
        count, chains = audit.AuditEntry.select().count(), audit.chain_count()
    if problems:
        for problem in problems:
            click.echo(problem, err=True)
        raise SystemExit(1)
    click.echo(f"audit log intact: {count} entries in {chains} chains")


@audit_cli.command("register")
def audit_register():
    """Register the chains the chain registry does not name yet (started by the previous release
    between `db upgrade` to 0014 and the restart), so that deleting one whole is found."""
    from app.services import audit
    from app.services.actors import Actor

    with db.connection_context():
        keys = audit.register_unlisted(Actor.system("flask audit register"))
    click.echo(f"registered {len(keys)} chain{'' if len(keys) == 1 else 's'}" + (f": {', '.join(keys)}" if keys else ""))


def one_line_errors(command):
    """Wrap `command` (and a group's subcommands) so the failures an operator can act on end in
    one line: a domain rule (short password, taken username), the database or Redis unreachable
    or refusing, a migration that cannot run. Anything else is a bug and keeps its traceback."""
    for sub in getattr(command, "commands", {}).values():
        one_line_errors(sub)
    if command.callback is None or getattr(command.callback, "one_line_errors", False):
        return command
    callback = command.callback

    @functools.wraps(callback)
    def run(*args, **kwargs):
        try:
            return callback(*args, **kwargs)
        except DomainError as exc:
            raise click.ClickException(f"{exc.message} ({exc.code})")
        except (peewee.PeeweeException, MigrationError) as exc:
            raise click.ClickException(f"database: {_one_line(exc)}")
        except redis.RedisError as exc:
            raise click.ClickException(f"Redis: {_one_line(exc)}")

    run.one_line_errors = True
    command.callback = run
    return command


def _one_line(exc):
    return " ".join(str(exc).split()) or type(exc).__name__


def register(app):
    for command in (db_cli, demo_command, create_api_key_command, create_staff_command, bind_wecom_command, config_command,
                    audit_cli):
        app.cli.add_command(one_line_errors(command))
