"""The dashboard's speed on MySQL: the overview, the Gantt's data and the order page with 10k tasks
and 1M progress reports; exports of 100k rows with their time and peak memory.

    .venv/bin/python bench/dashboard.py                          # 10k tasks, 1M reports, 100k-row exports
    .venv/bin/python bench/dashboard.py --tasks 2000 --days 50   # smaller
    TEST_MYSQL_URL=mysql://root@127.0.0.1:3306 …                 # the server (default: local root)

It creates a throw-away database (dropped at the end) and bulk-inserts: 200 suppliers, 50 customers,
--tasks tasks (two per order, in production, with the default seven nodes per order) and a report
per task for each of the last --days days (10k × 100 = 1M reports); 3 % of the tasks are behind
plan, with an open red delay alert. Then, through the app (the Flask test client, a logged-in
manager — no network), it times --runs requests of each page and prints p50/p95 and the SQL
statements one request costs: the overview (GET /dashboard/), the Gantt's data (GET /api/v1/gantt,
its first 300 tasks) and the order page (GET /dashboard/orders/<id>, a different order each time).
Last, the reports export of the last --export-days days (10 days = 100k rows) as CSV and XLSX:
time and peak Python memory (tracemalloc) while it streams (--export-days 0: no exports). Goal:
p95 ≤ 200 ms per page. --export-only skips the pages (with --days 10: a quick seed, the same
100k-row exports). PROFILE=<sort key> (e.g. cumulative, tottime) prints the top of a cProfile
of each page's timed requests.
"""
import argparse
import cProfile
import logging
import os
import pstats
import secrets
import signal
import statistics
import sys
import time
import tracemalloc
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse

import pymysql

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MYSQL_URL = os.environ.get("TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306")
CHUNK = 5000
QTY = 2000


def make_database():
    parsed = urlparse(MYSQL_URL)
    conn = pymysql.connect(host=parsed.hostname, port=parsed.port or 3306, user=parsed.username or "root",
                           password=parsed.password or "", autocommit=True)
    name = f"wx_bench_dash_{os.getpid()}"
    conn.cursor().execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    auth = parsed.username or "root"
    if parsed.password:
        auth += f":{parsed.password}"
    url = f"mysql+pool://{auth}@{parsed.hostname}:{parsed.port or 3306}/{name}?max_connections=4"
    return url, lambda: conn.cursor().execute(f"DROP DATABASE `{name}`")


def insert(model, rows):
    """Bulk insert dict rows through the driver's executemany (multi-row INSERTs)."""
    from app.extensions import db

    rows = list(rows)
    if not rows:
        return
    columns = list(rows[0])
    if "created_at" in model._meta.fields and "created_at" not in columns:
        columns.append("created_at")
    names = ", ".join(f"`{model._meta.fields[c].column_name}`" for c in columns)
    sql = f"INSERT INTO `{model._meta.table_name}` ({names}) VALUES ({', '.join(['%s'] * len(columns))})"
    now = datetime.utcnow()
    with db.atomic():
        cursor = db.cursor()
        for i in range(0, len(rows), CHUNK):
            cursor.executemany(sql, [tuple(r.get(c, now) for c in columns) for r in rows[i:i + CHUNK]])


def seed(n_tasks, days, today):
    from werkzeug.security import generate_password_hash

    from app.models import Alert, Customer, NodeInstance, Order, ProgressReport, StaffUser, Supplier, Task
    from app.services.nodes import DEFAULT_NODES

    StaffUser.create(username="zhang", display_name="张经理", password_hash=generate_password_hash("x"),
                     role="manager")
    insert(Supplier, ({"code": f"S{i}", "name": f"供应商{i}", "active": True} for i in range(200)))
    insert(Customer, ({"code": f"C{i}", "name": f"客户{i}", "active": True} for i in range(50)))
    suppliers = [s.id for s in Supplier.select(Supplier.id)]
    customers = [c.id for c in Customer.select(Customer.id)]
    start, due = today - timedelta(days=days + 2), today + timedelta(days=30)
    n_orders = n_tasks // 2
    insert(Order, ({"order_no": f"SO-{i:06d}", "customer": customers[i % 50], "product_name": "钣金机箱",
                    "quantity": QTY, "unit": "件", "planned_start": start, "due_date": due + timedelta(days=i % 60),
                    "state": "in_production", "source": "api", "updated_at": datetime.utcnow()}
                   for i in range(n_orders)))
    orders = [o.id for o in Order.select(Order.id).order_by(Order.id)]
    span = (due - start).days
    late_every = 33  # ~3 % behind plan
    insert(Task, ({"order": orders[i // 2], "task_no": f"T-{i:06d}", "process": ("冲压", "焊接")[i % 2],
                   "supplier": suppliers[i % 200], "planned_qty": QTY, "tolerance_pct": 0.0,
                   "planned_start": start, "due_date": due, "state": "in_production",
                   "qr_code": secrets.token_hex(10), "last_report_date": today - timedelta(days=1),
                   "qty_done": QTY * days // span // (3 if i % late_every == 0 else 1),
                   "alert_level": "red" if i % late_every == 0 else None, "updated_at": datetime.utcnow()}
                  for i in range(n_tasks)))
    tasks = list(Task.select(Task.id, Task.order).order_by(Task.id).tuples())
    insert(NodeInstance, ({"order": order_id, "seq": seq, "code": code, "name": name,
                           "planned_date": start + timedelta(days=round(share * span)), "expected_days": d,
                           "state": "done" if share < 0.3 else "pending"}
                          for order_id in orders
                          for seq, (code, name, share, d) in enumerate(DEFAULT_NODES, start=1)))
    for first in range(0, len(tasks), 1000):  # a million rows, generated a thousand tasks at a time
        insert(ProgressReport, ({"task": task_id, "report_date": today - timedelta(days=k), "revision": 1,
                                 "qty_done": QTY * (days - k) // span // (3 if i % late_every == 0 else 1),
                                 "stage": "生产", "updated_at": datetime.utcnow()}
                                for i, (task_id, _) in enumerate(tasks[first:first + 1000], start=first)
                                for k in range(days, 0, -1)))
    insert(Alert, ({"task": task_id, "order": order_id, "kind": "delay", "level": "red", "status": "open",
                    "open_key": "open", "deviation_pct": 40.0, "days_late": 12, "message": "进度落后计划 40%",
                    "level_changed_at": datetime.utcnow(), "escalation_level": 0, "node_key": 0}
                   for i, (task_id, order_id) in enumerate(tasks) if i % late_every == 0))
    return orders


def timed(client, paths, runs):
    from tests.sqlcount import statements

    logging.getLogger("peewee").propagate = False  # counted, not printed
    times = []
    profile = cProfile.Profile() if os.environ.get("PROFILE") else None
    for i in range(runs):
        path = paths[i % len(paths)]
        started = time.perf_counter()
        answer = profile.runcall(client.get, path) if profile else client.get(path)
        times.append((time.perf_counter() - started) * 1000)
        assert answer.status_code == 200, (path, answer.status_code)
    if profile:
        pstats.Stats(profile).sort_stats(os.environ["PROFILE"]).print_stats(25)
    _, sql = statements(lambda: client.get(paths[0]))
    times.sort()
    p95 = times[min(len(times) - 1, round(0.95 * len(times)) - 1)]
    return statistics.median(times), p95, len(sql)


def export(client, path):
    """(seconds, bytes) of one streamed export, read piece by piece as a browser would; then the
    peak Python memory of a second run under tracemalloc (which slows it down, so it is not timed)."""

    def read():
        answer = client.get(path, buffered=False)
        size = sum(len(piece) for piece in answer.response)
        answer.close()
        return size

    started = time.perf_counter()
    size = read()
    elapsed = time.perf_counter() - started
    tracemalloc.start()
    read()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return elapsed, peak, size


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=100, help="reports per task (default 100: 1M reports)")
    parser.add_argument("--runs", type=int, default=40, help="requests per page (default 40)")
    parser.add_argument("--export-days", type=int, default=10, help="days of reports exported (10: 100k rows)")
    parser.add_argument("--export-only", action="store_true", help="time the exports only, not the pages")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # the finally drops the database
    url, drop = make_database()
    os.environ.update({"DATABASE_URL": url, "APP_ENV": "test", "SECRET_KEY": "bench-secret", "LOG_LEVEL": "WARNING"})
    os.environ.pop("REDIS_URL", None)
    from app import create_app
    from app.extensions import db
    from app.migrate import upgrade
    from app.models import StaffUser
    from app.timeutil import china_date

    try:
        app = create_app({"DATABASE_URL": url, "REDIS_URL": None})
        upgrade()
        today = china_date()
        with app.app_context(), db.connection_context():
            started = time.perf_counter()
            orders = seed(args.tasks, args.days, today)
            print(f"seeded {args.tasks} tasks, {len(orders)} orders, {args.tasks * args.days} progress reports "
                  f"in {time.perf_counter() - started:.0f} s; MySQL, {args.runs} requests per page:")
            user = StaffUser.get()
        client = app.test_client()
        with client.session_transaction() as session:
            session.update(staff_id=user.id, v=user.session_version, at=int(time.time()))
        pages = (("overview  GET /dashboard/", ["/dashboard/"]),
                 ("Gantt data GET /api/v1/gantt", ["/api/v1/gantt"]),
                 ("order page GET /dashboard/orders/<id>", [f"/dashboard/orders/{o}" for o in orders[::97]]))
        with app.app_context():
            for label, paths in () if args.export_only else pages:
                client.get(paths[0])  # warm
                p50, p95, queries = timed(client, paths, args.runs)
                print(f"  {label:40} p50 {p50:6.1f} ms  p95 {p95:6.1f} ms  {queries} SQL statements")
            since = (today - timedelta(days=args.export_days)).isoformat()
            for fmt in ("csv", "xlsx") if args.export_days else ():
                elapsed, peak, size = export(client, f"/api/v1/exports/reports?format={fmt}&date_from={since}")
                print(f"  export reports since {since} as {fmt:4} ({args.tasks * args.export_days} rows): "
                      f"{elapsed:5.1f} s, {size / 1e6:5.1f} MB, peak Python memory {peak / 1e6:5.1f} MB")
    finally:
        db.close()
        drop()


if __name__ == "__main__":
    main()
