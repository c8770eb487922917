"""RQ worker classes that run each job inside the Flask app context with its own DB connection.

Start with: rq worker -w jobs.worker.AppWorker --with-scheduler notify media
"""
import os

from rq import Worker

from app import create_app
from app.extensions import db


class AppWorker(Worker):
    """Forks a work horse per job; each job runs in the app context with its own DB connection."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Built once in the parent; create_app opens no connection, so nothing leaks into forks.
        self.flask_app = create_app()
        self._parent_pid = os.getpid()

    def perform_job(self, *args, **kwargs):
        # RQ 3 added an `execution` argument; pass everything through unchanged.
        if os.getpid() != self._parent_pid:
            db.dispose()  # a forked work horse must not touch the parent's connection state
        with self.flask_app.app_context(), db.connection_context():
            return super().perform_job(*args, **kwargs)
