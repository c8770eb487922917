"""WSGI entry point: gunicorn wsgi:app (and `flask --app wsgi ...` for commands)."""
from app import create_app
from jobs.cli import register as register_job_commands

app = create_app()
register_job_commands(app)
