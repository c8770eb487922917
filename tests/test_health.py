"""GET /healthz tells a load balancer whether the database and Redis answer."""
import shutil
import socket
import subprocess
import time

import pytest
import redis


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
    assert res.json == {"status": "ok", "checks": {"database": "ok", "redis": expected_redis}}


def test_healthz_reports_a_stopped_redis_as_503(make_app, own_redis):
    proc, url = own_redis
    client = make_app(REDIS_URL=url).test_client()
    assert client.get("/healthz").status_code == 200

    proc.kill()
    proc.wait()

    res = client.get("/healthz")
    assert res.status_code == 503
    assert res.json["status"] == "fail"
    assert res.json["checks"] == {"database": "ok", "redis": "failed"}
