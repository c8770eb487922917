"""Shared singletons: the database proxy, and per-app Redis, photo storage and the job table.

Models bind to `db` (a DatabaseProxy) at import time; `create_app` points it at the
configured database. Everything else hangs off `app.extensions["factory"]`, built once per app.
"""
import fcntl
import os
import select
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import redis
from flask import current_app
from peewee import DatabaseProxy, MySQLDatabase, SqliteDatabase
from playhouse import db_url
from playhouse.pool import PooledMySQLDatabase
from pymysql.constants.SERVER_STATUS import SERVER_STATUS_IN_TRANS

from app.config import ConfigError

db = DatabaseProxy()


class MySQLPool(PooledMySQLDatabase):
    """peewee's MySQL pool without the ROLLBACK it sends for every connection it takes back, nor
    the ping before lending a connection that came back moments ago. The ROLLBACK: peewee
    asks the driver whether a transaction is open, and PyMySQL has no such attribute, so the pool
    assumed one always was. PyMySQL does keep the server's own answer (the status flags of the last
    reply): when it says no transaction is open there is nothing to roll back."""

    # The pool pings a connection before lending it again: one more round trip per request. One
    # given back this recently was working a moment ago, so it is lent after a local look instead:
    # an idle connection has nothing to read unless the server closed it (a restart, KILL,
    # wait_timeout) or broke the protocol — then it is pinged, and replaced if the ping fails.
    PING_AFTER_IDLE_SECONDS = 5

    def _can_reuse(self, conn):
        status = getattr(conn, "server_status", None)
        if status is not None and not status & SERVER_STATUS_IN_TRANS:
            return True
        return super()._can_reuse(conn)

    def _close(self, conn, close_conn=False):
        conn.wx_returned_at = time.monotonic()
        super()._close(conn, close_conn)

    def _is_closed(self, conn):
        returned = getattr(conn, "wx_returned_at", None)
        if (returned is not None and time.monotonic() - returned < self.PING_AFTER_IDLE_SECONDS
                and conn.open and not _readable(conn._sock)):
            return False
        return super()._is_closed(conn)


def _readable(sock):
    """Whether the server sent something to an idle connection (its closing, in practice): a
    zero-timeout poll, no round trip."""
    try:
        return bool(select.select([sock], [], [], 0)[0])
    except (OSError, ValueError):  # closed socket
        return True


db_url.register_database(MySQLPool, "mysql+pool")


def init_database(url):
    """Point `db` at the database for `url`. Apps in one process (tests, the worker) that share
    a URL share one database object, its pool and its per-thread connection state."""
    if getattr(db.obj, "wx_url", None) != url:
        database = connect_database(url)
        database.wx_url = url
        db.initialize(database)


def connect_database(url):
    """Build the peewee database for a DATABASE_URL."""
    if url.startswith("sqlite"):
        # WAL lets readers work while one request writes; foreign keys off by default in SQLite.
        return db_url.connect(
            url,
            pragmas={"journal_mode": "wal", "foreign_keys": 1, "busy_timeout": 5000},
        )
    # READ COMMITTED: a plain read sees what is committed now, not a snapshot from the
    # transaction's first read. Writers serialise on row locks (SELECT … FOR UPDATE), and what
    # they read after taking a lock must be current: a request whose ownership check ran before
    # it waited for a task's lock would otherwise decide on the state from before the wait.
    try:
        database = db_url.connect(url, init_command="SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
    except RuntimeError:  # playhouse's answer to a scheme it does not know
        database = None
    if not isinstance(database, (MySQLDatabase, SqliteDatabase)):
        raise ConfigError("DATABASE_URL must be a mysql:// , mysql+pool:// or sqlite:/// URL")
    return database


def is_mysql():
    return isinstance(db.obj, MySQLDatabase)


def write_transaction():
    """A transaction that will write. MySQL locks rows as it goes. On SQLite it takes the write
    lock at BEGIN (IMMEDIATE): a deferred one that reads first fails at once with "database is
    locked" when another writer commits in between. Writers of all processes first queue on a
    lock file (`_sqlite_writer`) instead of on busy_timeout, whose waits back off up to 100 ms a
    try: with it a waiting writer slept on while the lock was long free (p99 ~60× p50 at c=4)."""
    if is_mysql():
        return db.atomic()
    if db.in_transaction():  # joins the open one (a savepoint), which already holds the lock
        return db.atomic("IMMEDIATE")
    return _sqlite_writer()


class _WriterLock:
    """One process's hold on the SQLite database's writer lock file: a thread lock (threads of a
    process share the file's lock) around flock(2) on `<database>-writer.lock`. A waiter sleeps in
    the kernel and wakes when the lock is released, not on its next poll."""

    def __init__(self):
        # Re-entrant: the after-commit callbacks of a write (jobs run in process) run before the
        # lock is released, and may write in their own transaction.
        self.threads, self.depth, self.pid, self.fd, self.path = threading.RLock(), 0, None, None, None

    def _file(self, path):
        if self.pid != os.getpid() or self.path != path:  # after fork, or another database
            self.pid, self.path = os.getpid(), path
            self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        return self.fd

    @contextmanager
    def held(self, database_path):
        if database_path in ("", ":memory:") or database_path.startswith("file:"):
            yield
            return
        with self.threads:
            fd = self._file(f"{database_path}-writer.lock")
            if not self.depth:
                fcntl.flock(fd, fcntl.LOCK_EX)
            self.depth += 1
            try:
                yield
            finally:
                self.depth -= 1
                if not self.depth:
                    fcntl.flock(fd, fcntl.LOCK_UN)


_writer_lock = _WriterLock()


@contextmanager
def _sqlite_writer():
    with _writer_lock.held(db.obj.database), db.atomic("IMMEDIATE") as txn:
        yield txn


@dataclass
class Extensions:
    """What one app instance shares between requests and jobs."""

    config: dict
    redis: "redis.Redis | None" = None
    storage: object = None
    jobs: dict = field(default_factory=dict)  # name → jobs.table.Job, installed by create_app
    wechat_login: object = None  # code → {"openid", "unionid"}: bot.wechat.login, installed by create_app
    wecom_callback: object = None  # the manager bot's callback: bot.callback.WeComCallback, installed by create_app
    periodic_runs: dict = field(default_factory=dict)  # job name → unix time of its last run, without Redis
    _wechat: dict = field(default_factory=dict)


def build(app, jobs):
    cfg = app.config
    ext = Extensions(config=cfg, jobs=jobs)
    if cfg.get("REDIS_URL"):
        ext.redis = redis.Redis.from_url(
            cfg["REDIS_URL"], socket_timeout=5, socket_connect_timeout=2, health_check_interval=30
        )
    from app import storage

    ext.storage = storage.build(cfg)
    app.extensions["factory"] = ext
    return ext


def current():
    """The Extensions of the current app."""
    return current_app.extensions["factory"]
