"""flask commands: database migrations, demo data, staff users and API keys."""
import os

import click
from flask.cli import AppGroup

from app import migrate
from app.config import describe
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
@click.option("--reset", is_flag=True, help="Seed even if data exists (adds another set).")
def demo_command(reset):
    """Seed a realistic demo factory (3 suppliers, 2 customers, a dozen orders)."""
    from app import demo

    migrate.upgrade()
    with db.connection_context():
        if demo.has_data() and not reset:
            click.echo("demo data already present (use --reset to add another set)")
            return
        summary = demo.seed()
    click.echo(summary)


@click.command("create-api-key")
@click.argument("name")
@click.option("--scope", "scopes", multiple=True, type=click.Choice(["orders", "invites"]), default=("orders",),
              show_default=True, help="What the key may change: orders (orders, tasks, urges, master data, "
                                      "node templates) and/or invites. Repeat for both.")
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

    password = os.environ.get(password_env, "") if password_env else click.prompt(
        "Password", hide_input=True, confirmation_prompt=True
    )
    with db.connection_context():
        user = create_staff(username, password, role, display_name=display_name, wecom_userid=wecom_userid)
    click.echo(f"created staff user {user.username} ({user.role})")


@click.command("config")
def config_command():
    """Print the effective settings (secrets hidden)."""
    from flask import current_app

    for key, value in sorted(describe(dict(current_app.config)).items()):
        if key.isupper():
            click.echo(f"{key}={value}")


audit_cli = AppGroup("audit", help="The tamper-evident audit log.")


@audit_cli.command("verify")
def audit_verify():
    """Check the hash chain; exit 1 and list the problems if an entry was edited or deleted."""
    from app.services import audit

    with db.connection_context():
        problems = audit.verify()
        count = audit.AuditEntry.select().count()
    if problems:
        for problem in problems:
            click.echo(problem, err=True)
        raise SystemExit(1)
    click.echo(f"audit log intact: {count} entries")


def register(app):
    for command in (db_cli, demo_command, create_api_key_command, create_staff_command, config_command, audit_cli):
        app.cli.add_command(command)
