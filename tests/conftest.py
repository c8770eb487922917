"""Test wiring: every app test runs twice — on real MySQL + real Redis ("mysql"), and in the
embedded default ("sqlite": SQLite file, no Redis, jobs in process). WeChat and OSS are
loopback fakes speaking their real HTTP protocols.

Environment: TEST_MYSQL_URL (default mysql://root@127.0.0.1:3306), TEST_REDIS_URL (default: the
first of databases 15…8 on 127.0.0.1:6379 not claimed by another test run — flushed before each test),
TEST_BACKENDS (default "mysql,sqlite").
"""
import contextlib
import functools
import itertools
import json
import os
import select
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlparse

import pymysql
import pytest
import redis as redis_lib
from werkzeug.security import generate_password_hash

from app import create_app
from app.extensions import db, init_database
from app.migrate import upgrade
from app.models import ALL_MODELS, AuditChain, StaffUser
from app.services import audit
from app.timeutil import utcnow
from tests.fakes.oss import FakeOSS
from tests.fakes.wechat import FakeWeChat
from tests.helpers import BACKENDS, SECRET, wechat_settings

ROOT = Path(__file__).resolve().parent.parent
MYSQL_URL = os.environ.get("TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306")
def _claim_redis_db():
    """A Redis database no other test run on this machine is using: tests flush it before each
    test, so two runs sharing one would delete each other's jobs. Claimed in db 0, released at exit."""
    import atexit

    claims = redis_lib.Redis(host="127.0.0.1", port=6379, db=0)
    for number in range(15, 7, -1):
        key = f"waixie-test-db:{number}"
        if claims.set(key, os.getpid(), nx=True, ex=3 * 3600):
            atexit.register(claims.delete, key)
            return f"redis://127.0.0.1:6379/{number}"
    raise RuntimeError("no free Redis database for tests (8-15 are all claimed)")


REDIS_URL = os.environ.get("TEST_REDIS_URL") or _claim_redis_db()


# --- databases -----------------------------------------------------------------------------

def _mysql_admin():
    parsed = urlparse(MYSQL_URL)
    return pymysql.connect(
        host=parsed.hostname, port=parsed.port or 3306, user=parsed.username or "root",
        password=parsed.password or "", autocommit=True,
    )


def _mysql_url(name):
    parsed = urlparse(MYSQL_URL)
    auth = parsed.username or "root"
    if parsed.password:
        auth += f":{parsed.password}"
    return f"mysql+pool://{auth}@{parsed.hostname}:{parsed.port or 3306}/{name}?max_connections=20&stale_timeout=300&timeout=10"


@pytest.fixture(scope="session")
def fresh_database(tmp_path_factory):
    """Factory: a new empty database of a backend → its DATABASE_URL; dropped at the end."""
    created = []

    def make(backend):
        if backend == "sqlite":
            return f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
        name = f"wx_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        with _mysql_admin() as conn, conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        created.append(name)
        return _mysql_url(name)

    yield make
    if created:
        with _mysql_admin() as conn, conn.cursor() as cur:
            for name in created:
                cur.execute(f"DROP DATABASE IF EXISTS `{name}`")


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request, fresh_database, tmp_path_factory):
    """One migrated database per backend for the whole session; for mysql also Redis, and the RQ
    worker launcher, started now so that it warms up while the first tests run."""
    url = fresh_database(request.param)
    config = {
        "APP_ENV": "test",
        "SECRET_KEY": SECRET,
        "DATABASE_URL": url,
        "REDIS_URL": REDIS_URL if request.param == "mysql" else None,
        "PHOTO_DIR": str(tmp_path_factory.mktemp("photos")),
        "LOG_FORMAT": "text",
        "LOG_LEVEL": "WARNING",
    }
    create_app(config)
    upgrade()
    if request.param == "sqlite":
        yield {"name": "sqlite", "config": config}
    else:
        launcher = WorkerLauncher(config, tmp_path_factory.mktemp("rq") / "launcher.log")
        yield {"name": "mysql", "config": config, "worker_launcher": launcher}
        launcher.close()


# --- fakes ------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def wechat_fake():
    with FakeWeChat() as fake:
        yield fake


@pytest.fixture(scope="session")
def oss_fake():
    with FakeOSS() as fake:
        yield fake


# --- apps -------------------------------------------------------------------------------------

def _clean(backend_name):
    """Empty every table and the test Redis database: each test starts from nothing but what the
    migrations leave in an empty database (the chain registry's head). One transaction: on SQLite
    that is one commit instead of one per table (~8 ms a test)."""
    with db.connection_context():
        if backend_name == "mysql":
            db.execute_sql("SET FOREIGN_KEY_CHECKS=0")
        else:
            db.execute_sql("PRAGMA foreign_keys=OFF")  # outside the transaction, or SQLite ignores it
        with db.atomic():
            for model in reversed(ALL_MODELS):
                model.delete().execute()
            # The chain registry's head, as migration 0014 leaves even an empty database with it.
            AuditChain.insert(key=audit.REGISTRY, entries=0, last_hash=audit.GENESIS, created_at=utcnow()).execute()
        db.execute_sql("SET FOREIGN_KEY_CHECKS=1" if backend_name == "mysql" else "PRAGMA foreign_keys=ON")
    if backend_name == "mysql":
        redis_lib.Redis.from_url(REDIS_URL).flushdb()


@pytest.fixture
def make_app(backend, wechat_fake):
    """Factory for apps on this test's backend, with optional setting overrides. The database
    is pointed at this backend and emptied first, without building an app just for that."""
    wechat_fake.reset()
    init_database(backend["config"]["DATABASE_URL"])  # what create_app does; a test may have moved it
    _clean(backend["name"])

    def make(**overrides):
        return create_app({**backend["config"], **overrides})

    return make


@pytest.fixture
def app_settings():
    """Setting overrides for `app`; a test module overrides this fixture to configure all its apps."""
    return {}


@pytest.fixture
def app(make_app, app_settings):
    """An app on this backend without WeChat credentials (messages are recorded, not sent)."""
    return make_app(**app_settings)


@pytest.fixture
def wechat_app(make_app, wechat_fake):
    """An app with WeChat and WeCom credentials, pointed at the fake."""
    return make_app(**wechat_settings(wechat_fake))


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def dbconn(app):
    """Hold a connection for direct model work in a test."""
    with app.app_context(), db.connection_context():
        yield db


# --- staff logins ---------------------------------------------------------------------------

STAFF_PASSWORD = "password-1"
STAFF_NAMES = {"manager": "张经理"}  # display names tests assert on; other roles show their username


@functools.cache
def _staff_password_hash():
    """werkzeug's default (scrypt) hash of STAFF_PASSWORD, made once: each hash costs ~0.1 s."""
    return generate_password_hash(STAFF_PASSWORD)


class StaffAuth:
    """Logs the test client in as staff: `auth.login("qc")` adds a staff user with that role (username
    = role, password STAFF_PASSWORD) and gives the client the session POST /api/v1/auth/login
    starts; returns the client. Not through the login view: its password check is another 0.1 s
    of scrypt, and test_auth.py tests the login itself."""

    def __init__(self, client):
        self.client = client

    def login(self, role="manager"):
        user = StaffUser.create(username=role, display_name=STAFF_NAMES.get(role, role),
                                password_hash=_staff_password_hash(), role=role)
        with self.client.session_transaction() as session:
            # What POST /api/v1/auth/login stores (app.web.auth.start_staff_session).
            session.update(staff_id=user.id, v=user.session_version, at=int(time.time()))
            session.permanent = True
        me = self.client.get("/api/v1/me")
        assert me.status_code == 200 and me.json["role"] == role, me.json
        return self.client


@pytest.fixture
def auth(client, dbconn):
    """Staff logins for the test client (the test keeps a connection for model work)."""
    return StaffAuth(client)


@pytest.fixture
def manager(auth):
    """The test client, logged in as the manager 张经理."""
    return auth.login("manager")


# --- real RQ workers ------------------------------------------------------------------------

def _worker_env(config, extra_env=None):
    return {**os.environ, "APP_ENV": "test", "SECRET_KEY": SECRET, "LOG_FORMAT": "text",
            "DATABASE_URL": config["DATABASE_URL"], "REDIS_URL": REDIS_URL,
            **{k: str(v) for k, v in (extra_env or {}).items()}}


class WorkerLauncher:
    """One warm process that forks each `rq worker --burst` run (tests/rq_launcher.py): a run costs
    no Python start-up and imports, and no worker stays up between runs to take the jobs that
    other tests leave queued on purpose."""

    def __init__(self, config, log):
        self.log = log
        with open(log, "w") as errors:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.rq_launcher"], cwd=ROOT, env=_worker_env(config),
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors, text=True, start_new_session=True)

    def run(self, args, env, log, timeout=120):
        """Run `rq *args` with `env`, its output into `log`; its exit code, or None after `timeout` s."""
        try:
            self.process.stdin.write(json.dumps({"args": args, "env": env, "log": str(log)}) + "\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            self._exited()
        if not select.select([self.process.stdout], [], [], timeout)[0]:
            os.killpg(self.process.pid, signal.SIGKILL)  # later runs fail instead of reading this late answer
            return None
        return int(self.process.stdout.readline() or self._exited())

    def _exited(self):
        pytest.fail(f"the rq worker launcher has exited:\n{self.log.read_text()[-3000:]}")

    def close(self):
        with contextlib.suppress(BrokenPipeError):  # the launcher may have died
            self.process.stdin.close()
        self.process.wait(timeout=30)


@pytest.fixture
def run_worker(backend, tmp_path):
    """Run `rq worker --burst` (a real worker process, real fork, real Redis) until the queues are
    empty; returns its output."""
    if backend["name"] != "mysql":
        pytest.skip("the embedded default has no RQ worker")
    runs = itertools.count(1)

    def run(extra_env=None):
        log = tmp_path / f"rq-worker-{next(runs)}.log"
        args = ["worker", "-w", "jobs.worker.AppWorker", "--burst", "--url", REDIS_URL, "notify", "media"]
        code = backend["worker_launcher"].run(args, _worker_env(backend["config"], extra_env), log)
        output = log.read_text() if log.exists() else ""
        assert code is not None, f"rq worker still running after 120 s:\n{output[-3000:]}"
        assert code == 0, output[-3000:]
        return output

    return run
