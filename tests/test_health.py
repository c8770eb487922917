"""GET /healthz tells a load balancer whether the database and Redis answer and the schema is
current, and tells monitoring when the periodic jobs last ran and which workers are alive; a
production process refuses to start without SECRET_KEY and warns when it runs without WeChat or OSS."""
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import redis

from jobs import inprocess
from jobs.periodic import PERIODIC
from tests.helpers import SECRET, oss_settings, wechat_settings

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def own_redis():
    """A private redis-server we are allowed to stop."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server not installed")
    port = _free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                            stdout=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    for _ in range(50):
        try:
            redis.Redis.from_url(url).ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    yield proc, url
    proc.kill()
    proc.wait()


def test_healthz_ok(client, backend):
    res = client.get("/healthz")
    assert res.status_code == 200
    expected_redis = "ok" if backend["config"]["REDIS_URL"] else "not_configured"
    assert res.json == {"status": "ok", "checks": {"database": "ok", "redis": expected_redis, "migrations": "ok"},
                        "pending_migrations": [], "cron": {"last_tick_age_seconds": None, "jobs": {}}, "workers": []}


def test_healthz_reports_a_stopped_redis_as_503(make_app, own_redis):
    proc, url = own_redis
    client = make_app(REDIS_URL=url).test_client()
    assert client.get("/healthz").status_code == 200

    proc.kill()
    proc.wait()

    res = client.get("/healthz")
    assert res.status_code == 503
    assert res.json["status"] == "fail"
    assert res.json["checks"] == {"database": "ok", "redis": "failed", "migrations": "ok"}


def test_pending_migrations_are_a_503_naming_them_until_db_upgrade(make_app, backend, fresh_database):
    app = make_app(DATABASE_URL=fresh_database(backend["name"]))  # new code, database not migrated yet
    client = app.test_client()

    res = client.get("/healthz")

    assert res.status_code == 503 and res.json["status"] == "fail"
    assert res.json["checks"]["migrations"] == "pending" and res.json["checks"]["database"] == "ok"
    assert res.json["pending_migrations"] == sorted(p.stem for p in (ROOT / "migrations").glob("0*.py"))
    with app.app_context():
        assert app.test_cli_runner().invoke(args=["db", "upgrade"]).exit_code == 0
    res = client.get("/healthz")
    assert res.status_code == 200 and res.json["pending_migrations"] == []


def _env(backend, **extra):
    return {**os.environ, "APP_ENV": "test", "SECRET_KEY": SECRET, "LOG_FORMAT": "text", "TZ": "Asia/Shanghai",
            "DATABASE_URL": backend["config"]["DATABASE_URL"], "REDIS_URL": backend["config"]["REDIS_URL"] or "", **extra}


def _wait_for(condition, seconds=20):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_healthz_tells_when_the_periodic_jobs_last_ran_through_rq_cron_and_a_worker(client, backend, run_worker):
    redis_url = backend["config"]["REDIS_URL"]
    connection = redis.Redis.from_url(redis_url)
    cron = subprocess.Popen([BIN / "rq", "cron", "jobs.cron", "--url", redis_url], cwd=ROOT, env=_env(backend),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:  # the cron process enqueues interval jobs at once
        _wait_for(lambda: connection.llen("rq:queue:notify") and connection.llen("rq:queue:media"))
    finally:
        os.killpg(cron.pid, signal.SIGTERM)
        cron.wait(timeout=10)
    assert client.get("/healthz").json["cron"] == {"last_tick_age_seconds": None, "jobs": {}}

    run_worker()

    cron_health = client.get("/healthz").json["cron"]
    assert set(cron_health["jobs"]) == set(PERIODIC)
    assert all(0 <= age <= 30 for age in cron_health["jobs"].values())
    assert cron_health["last_tick_age_seconds"] == min(cron_health["jobs"].values())


def test_healthz_tells_when_the_in_process_periodic_jobs_last_ran(app, client, backend):
    if backend["config"]["REDIS_URL"]:
        pytest.skip("with Redis, periodic jobs run through rq cron and the workers")
    stop = threading.Event()
    thread = inprocess.start(app, tick=0.05, first_delay=0, stop=stop)
    try:
        _wait_for(lambda: set(client.get("/healthz").json["cron"]["jobs"]) == set(PERIODIC))
    finally:
        stop.set()
        thread.join(timeout=10)
    assert client.get("/healthz").json["cron"]["last_tick_age_seconds"] <= 5


def test_healthz_lists_live_workers_with_their_heartbeat(client, backend):
    if not backend["config"]["REDIS_URL"]:
        pytest.skip("the embedded default has no RQ worker")
    worker = subprocess.Popen([BIN / "rq", "worker", "-w", "jobs.worker.AppWorker", "--url", backend["config"]["REDIS_URL"],
                               "notify"], cwd=ROOT, env=_env(backend), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait_for(lambda: client.get("/healthz").json["workers"])
        (seen,) = client.get("/healthz").json["workers"]
        assert seen["queues"] == ["notify"] and 0 <= seen["heartbeat_age_seconds"] <= 30
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=20)
    assert client.get("/healthz").json["workers"] == []  # a stopped worker leaves the list


# --- production settings --------------------------------------------------------------------------------------

def _production(tmp_path, **settings):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WECHAT_", "WECOM_", "OSS_", "SECRET_KEY"))}
    return {**env, "APP_ENV": "production", "DATABASE_URL": f"sqlite:///{tmp_path / 'prod.db'}",
            "PHOTO_DIR": str(tmp_path / "photos"), **settings}


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("command", [
    ["flask", "--app", "wsgi", "db", "upgrade"],
    ["gunicorn", "-w", "2", "-b", "127.0.0.1:{port}", "wsgi:app"],
    ["rq", "worker", "-w", "jobs.worker.AppWorker", "--burst", "--url", "redis://127.0.0.1:6379/0", "no-such-queue"],
])
def test_production_refuses_to_start_without_secret_key_in_one_line(tmp_path, command):
    argv = [str(BIN / command[0]), *(arg.format(port=_free_port()) for arg in command[1:])]

    run = subprocess.run(argv, cwd=ROOT, env=_production(tmp_path), capture_output=True, text=True, timeout=60)

    assert run.returncode != 0
    output = run.stdout + run.stderr
    assert "Traceback" not in output
    assert "configuration error: SECRET_KEY must be set when APP_ENV=production" in output


def test_production_warns_loudly_without_wechat_or_oss(tmp_path, wechat_fake, oss_fake):
    bare = subprocess.run([str(BIN / "flask"), "--app", "wsgi", "config"], cwd=ROOT, capture_output=True, text=True,
                          env=_production(tmp_path, SECRET_KEY=SECRET), timeout=60)
    assert bare.returncode == 0, bare.stderr
    warnings = [line for line in bare.stderr.splitlines() if '"level": "warning"' in line]
    assert len(warnings) == 2
    assert "PRODUCTION WITHOUT WECHAT" in warnings[0] and "PRODUCTION WITHOUT OSS" in warnings[1]
    assert "not stateless" in warnings[1]

    complete = {k: str(v) for k, v in {**wechat_settings(wechat_fake), **oss_settings(oss_fake)}.items()}
    configured = subprocess.run([str(BIN / "flask"), "--app", "wsgi", "config"], cwd=ROOT, capture_output=True, text=True,
                                env=_production(tmp_path, SECRET_KEY=SECRET, **complete), timeout=60)
    assert configured.returncode == 0 and '"level": "warning"' not in configured.stderr, configured.stderr
