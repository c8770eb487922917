"""Scale-out, shown: two web processes on two ports and two RQ workers (as if on two machines) on one
MySQL and one Redis, with the load on both at once. Every phone request is sent to both servers at
the same moment (a retry that took another route): each report and node completion is stored
once, each customer message sent once, no request fails (no deadlock), and every audit chain is
intact."""
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
import requests

from app.extensions import db
from app.models import ClientRequest, NodeCompletion, Notification, ProgressReport, Task
from app.services import audit, notifications
from app.timeutil import china_date
from tests import factories as f
from tests.helpers import SECRET, wechat_settings

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
TEMPLATE = "TPL_NODE_DONE"
ORDERS = 8
DAYS = 3


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(condition, seconds=90):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


@pytest.fixture
def cluster(make_app, wechat_fake, backend, tmp_path):
    if backend["name"] != "mysql":
        pytest.skip("several processes on one database server: MySQL")
    settings = {k: str(v) for k, v in wechat_settings(wechat_fake).items()}
    app = make_app(**settings)
    config = app.config
    env = {**os.environ, "APP_ENV": "test", "SECRET_KEY": SECRET, "LOG_FORMAT": "text", "LOG_LEVEL": "WARNING",
           "DATABASE_URL": config["DATABASE_URL"], "REDIS_URL": config["REDIS_URL"],
           "PHOTO_DIR": config["PHOTO_DIR"], **settings}
    procs, ports = [], []
    try:
        for n in range(2):
            port = _free_port()
            with open(tmp_path / f"web{n}.log", "w") as log:
                procs.append(subprocess.Popen(
                    [str(BIN / "gunicorn"), "-w", "2", "-b", f"127.0.0.1:{port}", "wsgi:app"],
                    cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
            ports.append(port)
            with open(tmp_path / f"rq{n}.log", "w") as log:
                procs.append(subprocess.Popen(
                    [str(BIN / "rq"), "worker", "-w", "jobs.worker.AppWorker", "--url", config["REDIS_URL"],
                     "high", "notify", "default", "media", "low"],
                    cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        for port in ports:
            _wait_for(lambda p=port: _answers(p), seconds=60)
        with app.app_context(), db.connection_context():
            yield app, ports, tmp_path
    finally:
        for proc in procs:
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=30)


def _answers(port):
    try:
        return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code in (200, 503)
    except requests.RequestException:
        return False


def test_two_web_processes_and_two_workers_store_each_write_once_and_send_each_message_once(
        cluster, wechat_fake):
    app, ports, logs = cluster
    supplier, cust = f.supplier(), f.customer()
    orders = [f.order(cust, [supplier], qty=1000) for _ in range(ORDERS)]
    watchers = [f.wechat_user(cust) for _ in range(2)]
    for order in orders:
        for user in watchers:
            _subscribe(user, order)
    for user in watchers:
        wechat_fake.grant_quota(user.openid, TEMPLATE, 10 * ORDERS)  # a second send would be accepted, and seen
    supplier_auth = f.bearer(f.wechat_user(supplier))
    tasks = [Task.get(Task.order == o.id) for o in orders]
    today = china_date()

    def both(path, body):
        """The same request to both servers at once: each answers 201 (stored) or 200 (the replay)."""
        with ThreadPoolExecutor(2) as pair:
            return list(pair.map(lambda port: requests.post(f"http://127.0.0.1:{port}{path}", json=body,
                                                            headers=supplier_auth, timeout=30), ports))

    def day_of_work(task):
        answers = []
        for d in range(DAYS):
            answers += both(f"/mp/v1/tasks/{task.id}/reports", {
                "client_id": str(uuid.uuid4()), "report_date": (today - timedelta(days=DAYS - 1 - d)).isoformat(),
                "qty_done": (d + 1) * 100})
        answers += both(f"/mp/v1/tasks/{task.id}/nodes/materials_ready/complete", {"client_id": str(uuid.uuid4())})
        return answers

    with ThreadPoolExecutor(8) as pool:
        answers = [a for chunk in pool.map(day_of_work, tasks) for a in chunk]

    statuses = Counter(a.status_code for a in answers)
    assert statuses == {201: ORDERS * (DAYS + 1), 200: ORDERS * (DAYS + 1)}, \
        (statuses, [a.text[:200] for a in answers if a.status_code >= 300][:3])
    assert ProgressReport.select().count() == ORDERS * DAYS
    assert {r.revision for r in ProgressReport.select()} == {1}
    assert NodeCompletion.select().count() == ORDERS
    assert ClientRequest.select().count() == ORDERS * (DAYS + 1)
    _wait_for(lambda: not Notification.select().where(Notification.status.not_in(notifications.FINAL)).exists())
    assert Counter(n.status for n in Notification.select()) == {"sent": ORDERS * len(watchers)}
    per_user = Counter((m["touser"], m["data"]["character_string1"]["value"]) for m in wechat_fake.subscribe_messages)
    assert set(per_user.values()) == {1} and len(per_user) == ORDERS * len(watchers)
    assert audit.verify() == []
    for log in logs.glob("*.log"):
        text = log.read_text()
        assert "Deadlock" not in text and "Traceback" not in text, (log.name, text[-2000:])


def _subscribe(user, order):
    from app.models import NodeSubscription

    NodeSubscription.create(user=user, order=order, node_code="materials_ready")
    notifications.add_quota(user, TEMPLATE, 1)
