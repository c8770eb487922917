"""Shared singletons: the database proxy, and per-app Redis, queues and photo storage.

Models bind to `db` (a DatabaseProxy) at import time; `create_app` points it at the
configured database. Everything else hangs off `app.extensions["factory"]`, built once per app.
"""
from dataclasses import dataclass, field

import redis
from flask import current_app
from peewee import DatabaseProxy, MySQLDatabase, SqliteDatabase
from playhouse import db_url

db = DatabaseProxy()


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
    database = db_url.connect(url)
    if not isinstance(database, (MySQLDatabase, SqliteDatabase)):
        raise RuntimeError("DATABASE_URL must be a mysql:// , mysql+pool:// or sqlite:/// URL")
    return database


def is_mysql():
    return isinstance(db.obj, MySQLDatabase)


@dataclass
class Extensions:
    """What one app instance shares between requests and jobs."""

    config: dict
    redis: "redis.Redis | None" = None
    queues: dict = field(default_factory=dict)
    storage: object = None
    _wechat: dict = field(default_factory=dict)


def build(app):
    cfg = app.config
    ext = Extensions(config=cfg)
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
