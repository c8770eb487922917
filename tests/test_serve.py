"""`flask --app wsgi serve` (what `make run` starts): it says where it serves only once it can be
reached there, and the QR labels point at the port it serves on."""
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import requests

from tests.helpers import SECRET

ROOT = Path(__file__).resolve().parent.parent
FLASK = [sys.executable, "-m", "flask", "--app", "wsgi"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def embedded_env(tmp_path, **extra):
    """The embedded default on a fresh SQLite file; nothing of the caller's settings leaks in."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("WECHAT_", "WECOM_", "OSS_")) and k not in ("PUBLIC_BASE_URL", "REDIS_URL", "APP_ENV")}
    env.update(DATABASE_URL=f"sqlite:///{tmp_path / 'serve.db'}", SECRET_KEY=SECRET, PHOTO_DIR=str(tmp_path / "photos"),
               LOG_FORMAT="text", LOG_LEVEL="WARNING")
    env.update(extra)
    return env


@pytest.fixture
def serve(tmp_path):
    """Start `serve` with arguments; returns (process, banner lines). Stopped at the end."""
    started = []

    def start(*args, env):
        with open(tmp_path / "serve.err", "w") as err:
            proc = subprocess.Popen([*FLASK, "serve", *args], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=err,
                                    text=True, start_new_session=True)
        started.append(proc)
        lines, banner = [], threading.Event()

        def read():
            for line in proc.stdout:
                lines.append(line)
                if "is running on" in line:
                    banner.set()

        threading.Thread(target=read, daemon=True).start()
        assert banner.wait(30), (lines, (tmp_path / "serve.err").read_text())
        return proc, lines

    yield start
    for proc in started:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)


def test_the_banner_comes_once_the_port_takes_connections_and_labels_follow_the_port(tmp_path, serve):
    env = embedded_env(tmp_path)
    demo = subprocess.run([*FLASK, "demo"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert demo.returncode == 0, demo.stderr
    port = free_port()

    proc, banner = serve("--port", str(port), env=env)

    socket.create_connection(("127.0.0.1", port), timeout=1).close()  # no wait, no retry: it is bound
    base = f"http://127.0.0.1:{port}"
    assert f"running on {base}" in "".join(banner)
    session = requests.Session()
    login = session.post(f"{base}/api/v1/auth/login", json={"username": "manager", "password": "demo-manager-pw"})
    assert login.status_code == 200, login.text
    order_id = session.get(f"{base}/api/v1/orders").json()["items"][0]["id"]
    task = session.get(f"{base}/api/v1/orders/{order_id}").json()["tasks"][0]
    assert task["scan_url"].startswith(f"{base}/s/")  # what the QR label encodes


def test_a_set_public_base_url_is_kept(tmp_path, serve):
    port = free_port()
    _, banner = serve("--port", str(port), env=embedded_env(tmp_path, PUBLIC_BASE_URL="https://wx.example.cn"))
    assert requests.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
    assert "QR codes point at https://wx.example.cn/s/" in "".join(banner)


def test_serve_options_have_help():
    out = subprocess.run([*FLASK, "serve", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60).stdout
    assert "Address to listen on" in out and "Port to listen on" in out
