"""gunicorn reads this file from its working directory (the repository) by default.

The settings are checked once in the master, before any worker forks: a missing SECRET_KEY (or any
other configuration error) ends gunicorn with one clear line. Without this each worker found the
error itself, and when several exited at once gunicorn's own arbiter printed a traceback while
shutting down.
"""
import sys


def on_starting(server):
    from app import config

    try:
        config.load()
    except config.ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        sys.exit(3)
