"""Latency of POST /mp/v1/tasks/<id>/reports over real HTTP (gunicorn), on MySQL + Redis or SQLite.

    .venv/bin/python bench/report_latency.py                 # MySQL (TEST_MYSQL_URL) + Redis, 4 gunicorn workers
    .venv/bin/python bench/report_latency.py --backend sqlite

It creates a throw-away database, seeds one supplier with TASKS tasks in production, starts
gunicorn on a free port and sends: new daily reports, retries of the same client_id, and
same-day amendments — first one at a time, then from CONCURRENCY threads. Prints p50/p95/p99.
"""
import argparse
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pymysql
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TASKS = 60
DAYS = 6  # report dates: today and the 5 days before (inside the 7-day window)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_database(backend):
    if backend == "sqlite":
        return f"sqlite:///{tempfile.mkdtemp()}/bench.db", lambda: None
    name = f"wx_bench_{os.getpid()}"
    conn = pymysql.connect(host="127.0.0.1", user="root", password="", autocommit=True)
    conn.cursor().execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    return (f"mysql+pool://root@127.0.0.1:3306/{name}?max_connections=20&stale_timeout=300&timeout=10",
            lambda: conn.cursor().execute(f"DROP DATABASE `{name}`"))


def seed(env):
    """Migrate and create the supplier, its tasks and a token, in this process."""
    os.environ.update(env)
    from app import create_app
    from app.extensions import db
    from app.migrate import upgrade
    from tests import factories

    app = create_app()
    upgrade()
    with app.app_context(), db.connection_context():
        supplier = factories.supplier()
        customer = factories.customer()
        task_ids = []
        for _ in range(TASKS):
            order = factories.order(customer, [supplier], qty=100000)
            task_ids.append(order.tasks[0].id)
        user = factories.wechat_user(supplier)
        return task_ids, factories.bearer(user)


def timed(session, url, body, headers):
    start = time.perf_counter()
    res = session.post(url, json=body, headers=headers, timeout=10)
    elapsed = (time.perf_counter() - start) * 1000
    assert res.status_code in (200, 201), (res.status_code, res.text[:300])
    return elapsed, res.status_code


def workload(task_ids, today):
    """(kind, task_id, body) — new reports day by day, each followed by a retry and an amendment."""
    for day in range(DAYS - 1, -1, -1):
        date = (today - timedelta(days=day)).isoformat()
        for n, task_id in enumerate(task_ids):
            qty = (DAYS - day) * 1000 + n
            body = {"client_id": str(uuid.uuid4()), "report_date": date, "qty_done": qty, "stage": "冲压"}
            yield "new", task_id, body
            yield "retry", task_id, body
            yield "amend", task_id, {**body, "client_id": str(uuid.uuid4()), "qty_done": qty + 10, "note": "加班"}


def summary(label, samples):
    samples = sorted(samples)
    pick = lambda q: samples[min(len(samples) - 1, int(q * len(samples)))]  # noqa: E731
    print(f"  {label:10} n={len(samples):4}  p50={statistics.median(samples):6.1f} ms  "
          f"p95={pick(0.95):6.1f} ms  p99={pick(0.99):6.1f} ms  max={samples[-1]:6.1f} ms")


def run(base, task_ids, headers, today, concurrency):
    """Sequential pass over half the tasks, concurrent pass (one thread per task group) over the rest."""
    half = len(task_ids) // 2
    results = {"new": [], "retry": [], "amend": []}
    session = requests.Session()
    for kind, task_id, body in workload(task_ids[:half], today):
        results[kind].append(timed(session, f"{base}/mp/v1/tasks/{task_id}/reports", body, headers)[0])
    print(f"sequential ({half} tasks x {DAYS} days x new/retry/amend):")
    for kind, samples in results.items():
        summary(kind, samples)

    groups = [task_ids[half:][i::concurrency] for i in range(concurrency)]

    def worker(group):
        s, out = requests.Session(), []
        for kind, task_id, body in workload(group, today):
            out.append((kind, timed(s, f"{base}/mp/v1/tasks/{task_id}/reports", body, headers)[0]))
        return out

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        flat = [r for chunk in pool.map(worker, groups) for r in chunk]
    wall = time.perf_counter() - started
    print(f"concurrent ({concurrency} clients): {len(flat)} requests in {wall:.1f} s = {len(flat) / wall:.0f} req/s")
    for kind in results:
        summary(kind, [ms for k, ms in flat if k == kind])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=["mysql", "sqlite"], default="mysql")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()

    url, drop = make_database(args.backend)
    env = {"APP_ENV": "development", "SECRET_KEY": secrets.token_urlsafe(32), "DATABASE_URL": url,
           "LOG_LEVEL": "WARNING", "PHOTO_DIR": tempfile.mkdtemp()}
    if args.backend == "mysql":
        env["REDIS_URL"] = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
    port = free_port()
    server = None
    try:
        task_ids, headers = seed(env)
        from app.timeutil import china_date

        server = subprocess.Popen(
            [str(Path(sys.executable).parent / "gunicorn"), "-w", str(args.workers), "-b", f"127.0.0.1:{port}",
             "--log-level", "warning", "wsgi:app"],
            cwd=ROOT, env={**os.environ, **env},
        )
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                if requests.get(f"{base}/healthz", timeout=5).status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(0.1)
        print(f"backend={args.backend} gunicorn workers={args.workers} tasks={TASKS}")
        run(base, task_ids, headers, china_date(), args.concurrency)
    finally:
        if server:
            server.terminate()
            server.wait()
        drop()


if __name__ == "__main__":
    main()
