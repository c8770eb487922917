"""Deliver 10,000 subscribe messages through 2 RQ workers to the WeChat fake with 50 ms latency.

    .venv/bin/python bench/delivery.py                       # defaults: 10000 messages, 2 workers, 50 ms
    .venv/bin/python bench/delivery.py --messages 2000 --workers 4 --latency 0.1

It creates a throw-away MySQL database (127.0.0.1:3306, root) and a private redis-server, starts
the fake in this process and `rq worker -w jobs.worker.AppWorker notify` processes, then commits
the messages in one transaction — one row per customer, each with one accept — and wakes the
sender as `notifications.record` does after commit. The clock runs from that commit until every
row is final. Prints the time, the rate, the count the fake accepted and the jobs that ran.
Goal: <= 120 s (>= 80 messages/s) and exactly 10,000 accepted.
"""
import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import pymysql
import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BIN = Path(sys.executable).parent
TEMPLATE = "TPL_NODE_DONE"
DATA = {"thing1": "不锈钢钣金机箱", "character_string2": "SO-1001", "phrase3": "已完成", "time4": "2026-11-22 10:00"}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_redis():
    port = free_port()
    proc = subprocess.Popen([shutil.which("redis-server"), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no"], stdout=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    for _ in range(100):
        try:
            redis.Redis.from_url(url).ping()
            return proc, url
        except redis.ConnectionError:
            time.sleep(0.05)
    raise SystemExit("redis-server did not start")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=10000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds the fake takes to answer each send")
    args = parser.parse_args()

    from tests.fakes.wechat import FakeWeChat
    from tests.helpers import wechat_settings

    name = f"wx_bench_delivery_{os.getpid()}"
    admin = pymysql.connect(host="127.0.0.1", user="root", password="", autocommit=True)
    admin.cursor().execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    redis_proc, redis_url = start_redis()
    fake = FakeWeChat().start()
    workers = []
    try:
        fake.latency = args.latency
        settings = {**{k: str(v) for k, v in wechat_settings(fake).items()},
                    "APP_ENV": "test", "SECRET_KEY": "bench-secret-key-" + "x" * 32, "LOG_FORMAT": "text",
                    "LOG_LEVEL": "WARNING", "REDIS_URL": redis_url,
                    "DATABASE_URL": f"mysql+pool://root@127.0.0.1:3306/{name}?max_connections=40&stale_timeout=300&timeout=10"}
        os.environ.update(settings)
        from rq import Worker
        from rq.registry import FinishedJobRegistry

        from app import create_app
        from app.extensions import db
        from app.migrate import upgrade
        from app.models import Notification, SubscribeQuota, WechatUser
        from app.services import notifications

        app = create_app()
        upgrade()
        n = args.messages
        with app.app_context(), db.connection_context():
            with db.atomic():
                for start in range(0, n, 1000):
                    WechatUser.insert_many([{"openid": f"o-bench-{i}", "role": "customer"}
                                            for i in range(start, min(n, start + 1000))]).execute()
                users = {u.openid: u.id for u in WechatUser.select(WechatUser.id, WechatUser.openid)}
                for start in range(0, n, 1000):
                    SubscribeQuota.insert_many([{"user": users[f"o-bench-{i}"], "template_id": TEMPLATE, "remaining": 1}
                                                for i in range(start, min(n, start + 1000))]).execute()
            for i in range(n):
                fake.grant_quota(f"o-bench-{i}", TEMPLATE, 1)

            env = {**os.environ, **settings}
            for w in range(args.workers):
                log_path = Path(tempfile.gettempdir()) / f"bench-delivery-worker-{os.getpid()}-{w}.log"
                with open(log_path, "w") as log:
                    workers.append(subprocess.Popen([str(BIN / "rq"), "worker", "-w", "jobs.worker.AppWorker", "--url",
                                                     redis_url, "notify"], cwd=ROOT, env=env, stdout=log,
                                                    stderr=subprocess.STDOUT, start_new_session=True))
            connection = redis.Redis.from_url(redis_url)
            while len(Worker.all(connection=connection)) < args.workers:
                time.sleep(0.1)

            with db.atomic():
                for start in range(0, n, 1000):
                    Notification.insert_many([{"channel": "mp_subscribe", "recipient": f"o-bench-{i}", "template_id": TEMPLATE,
                                               "payload": {"data": DATA}} for i in range(start, min(n, start + 1000))]).execute()
                notifications.wake()  # what record() does: one wake for the transaction
            started = time.monotonic()
            while Notification.select().where(Notification.status.not_in(notifications.FINAL)).exists():
                time.sleep(0.2)
                if time.monotonic() - started > 600:
                    raise SystemExit("not done after 600 s")
            elapsed = time.monotonic() - started
            statuses = Counter(row.status for row in Notification.select(Notification.status))
            jobs = FinishedJobRegistry("notify", connection=connection).count
        accepted = len(fake.subscribe_messages)
        distinct = len({m["touser"] for m in fake.subscribe_messages})
        print(f"messages      : {n} subscribe messages, {args.workers} RQ workers, fake latency {args.latency * 1000:.0f} ms")
        print(f"delivered in  : {elapsed:.1f} s  ({n / elapsed:.0f} messages/s; goal <= 120 s)")
        print(f"fake accepted : {accepted} ({distinct} distinct recipients)")
        print(f"rows          : {dict(statuses)}")
        print(f"RQ jobs run   : {jobs}")
        return 0 if accepted == n and statuses == {"sent": n} and elapsed <= 120 else 1
    finally:
        for worker in workers:
            os.killpg(worker.pid, signal.SIGTERM)
        for worker in workers:
            worker.wait(timeout=30)
        fake.stop()
        redis_proc.kill()
        admin.cursor().execute(f"DROP DATABASE IF EXISTS `{name}`")


if __name__ == "__main__":
    sys.exit(main())
