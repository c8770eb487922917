"""Schema migrations (peewee's playhouse.migrations runner over migrations/NNNN_*.py)."""
from playhouse.migrations import Runner

from app.config import ROOT
from app.extensions import db

MIGRATIONS_DIR = str(ROOT / "migrations")


def runner():
    # The runner needs the real database, not the proxy (it builds a history model on it).
    return Runner(db.obj, directory=MIGRATIONS_DIR)


def upgrade():
    """Apply pending migrations; returns their names."""
    with db.connection_context():
        return runner().up()


def status():
    with db.connection_context():
        return runner().status()


def pending():
    """Names of this code's migrations the database has not applied, in order."""
    return [m.name for m in status() if m.applied is None and m.path is not None]
