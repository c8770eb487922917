"""The delay scan's time and query count with many tasks in production, on MySQL.

    .venv/bin/python bench/delay_scan.py                      # 10k and 100k tasks in production
    .venv/bin/python bench/delay_scan.py --tasks 10000        # one size
    PROFILE=tottime PROFILE_LINES=25 …                        # and a profile of the steady scan
    TEST_MYSQL_URL=mysql://root@127.0.0.1:3306 …              # the server (default: local root)
    BENCH_REDIS_URL=redis://127.0.0.1:6379/6 …                # the job queue (emptied after)

For each size it creates a throw-away database and bulk-inserts: that many tasks in production
(two per order, 200 suppliers) with a week of daily reports each — 99 % on plan, 1 % (--late) at
half the pace — plus as many completed tasks with their reports and resolved alerts (history the scan must
not read). Then it runs the delay scan twice as of the same moment: the first run opens the late
tasks' alerts (writes: one transaction per new alert, with its outbox rows); the second finds the
same state and changes nothing — the steady state of an hourly scan. Printed: time, SQL
statements, and statements per batch of delay_engine.BATCH tasks. Goal: ≤ 1 s at 10k, ≤ 10 s at
100k for a scan, the same statements per batch at every size.
"""
import argparse
import cProfile
import logging
import os
import pstats
import secrets
import signal
import sys
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse

import pymysql
import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MYSQL_URL = os.environ.get("TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/6")  # tests use databases 8-15
TODAY = date(2026, 11, 20)  # a Friday
NOW = datetime(2026, 11, 20, 2, 10)  # 10:10 China time (naive UTC), when the hourly scan runs
QTY = 1100
CHUNK = 5000


def make_database():
    parsed = urlparse(MYSQL_URL)
    conn = pymysql.connect(host=parsed.hostname, port=parsed.port or 3306, user=parsed.username or "root",
                           password=parsed.password or "", autocommit=True)
    name = f"wx_bench_delay_{os.getpid()}"
    conn.cursor().execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    auth = parsed.username or "root"
    if parsed.password:
        auth += f":{parsed.password}"
    url = f"mysql://{auth}@{parsed.hostname}:{parsed.port or 3306}/{name}"
    return url, lambda: conn.cursor().execute(f"DROP DATABASE `{name}`")


def insert(model, rows):
    """Bulk insert dict rows through the driver's executemany (one multi-row INSERT per chunk):
    far faster than building peewee queries for a million rows."""
    from app.extensions import db

    if not rows:
        return
    columns = list(rows[0])
    fields = [model._meta.fields[c] for c in columns]
    names = ", ".join(f"`{f.column_name}`" for f in fields)
    sql = f"INSERT INTO `{model._meta.table_name}` ({names}) VALUES ({', '.join(['%s'] * len(columns))})"
    now = datetime(2026, 11, 1)
    if "created_at" not in columns and "created_at" in model._meta.fields:
        sql = sql.replace(") VALUES (", ", `created_at`) VALUES (").replace("%s)", "%s, %s)")
        rows = [{**r, "created_at": now} for r in rows]
        columns.append("created_at")
    with db.atomic():
        cursor = db.cursor()
        for i in range(0, len(rows), CHUNK):
            cursor.executemany(sql, [tuple(_value(r[c]) for c in columns) for r in rows[i:i + CHUNK]])


def _value(v):
    return v.id if hasattr(v, "id") else v


def seed(n, late_share):
    """n tasks in production and n completed ones, with reports; bulk inserts."""
    from app.models import Alert, Customer, Order, ProgressReport, StaffUser, Supplier, Task
    from app.services import schedule

    cal = schedule.calendar()
    start, due = TODAY - timedelta(days=12), TODAY + timedelta(days=10)
    span = cal.working_days_between(start - timedelta(days=1), due)
    every = round(1 / late_share) if late_share else n + 1
    StaffUser.create(username="zhang", display_name="张经理", password_hash="x", role="manager", wecom_userid="zhang")
    StaffUser.create(username="boss", display_name="王总", password_hash="x", role="executive", wecom_userid="boss")
    insert(Supplier, [{"code": f"S{i}", "name": f"供应商{i}", "robot_key": f"k{i}" if i % 2 else None, "active": True}
                      for i in range(200)])
    insert(Customer, [{"code": f"C{i}", "name": f"客户{i}", "active": True} for i in range(50)])
    supplier_ids = [s.id for s in Supplier.select(Supplier.id)]
    customer_ids = [c.id for c in Customer.select(Customer.id)]
    days = [d for d in (TODAY - timedelta(days=k) for k in range(8, -1, -1)) if cal.is_working_day(d) and d < TODAY]
    expected = {day: _qty(cal, start, span, day) for day in days}
    for state in ("completed", "in_production"):
        insert(Order, [{"order_no": f"SO-{state[:1]}{i}", "customer": customer_ids[i % 50], "product_name": "机箱",
                        "quantity": QTY * 2, "planned_start": start, "due_date": due, "state": state,
                        "unit": "件", "source": "manual", "updated_at": NOW} for i in range(n // 2)])
        order_ids = [o.id for o in Order.select(Order.id).where(Order.state == state).order_by(Order.id)]
        slow = [state == "in_production" and i % every == 0 for i in range(n)]
        insert(Task, [{"order": order_ids[i // 2], "task_no": f"T-{state[:1]}{i}", "process": "冲压",
                       "supplier": supplier_ids[i % 200], "planned_qty": QTY, "tolerance_pct": 0.0,
                       "planned_start": start, "due_date": due, "state": state, "qr_code": secrets.token_hex(10),
                       "qty_done": QTY if state == "completed" else expected[days[-1]] // (2 if slow[i] else 1),
                       "last_report_date": days[-1], "updated_at": NOW} for i in range(n)])
        task_ids = [t.id for t in Task.select(Task.id).where(Task.state == state).order_by(Task.id)]
        insert(ProgressReport, [
            {"task": task_id, "report_date": day, "revision": 1, "updated_at": NOW,
             "qty_done": QTY if state == "completed" and day == days[-1] else expected[day] // (2 if slow[i] else 1)}
            for i, task_id in enumerate(task_ids) for day in days])
        if state == "completed":
            insert(Alert, [{"task": task_id, "order": order_ids[i // 2], "kind": "delay", "level": "yellow",
                            "status": "resolved", "open_key": None, "resolved_at": NOW, "level_changed_at": NOW,
                            "escalation_level": 0, "node_key": 0}
                           for i, task_id in enumerate(task_ids) if i % 10 == 0])


def _qty(cal, start, span, day):
    return round(QTY * cal.working_days_between(start - timedelta(days=1), day) / span)


def measure(label, call):
    from tests.sqlcount import statements

    logging.getLogger("peewee").propagate = False  # counted, not printed

    started = time.perf_counter()
    result, sql = statements(call)
    elapsed = time.perf_counter() - started
    writes = sum(s.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE")) for s in sql)
    print(f"  {label:28} {elapsed:7.2f} s  {len(sql):6} statements ({writes} writes)  {result}")
    return elapsed, sql


def run(n, late_share):
    url, drop = make_database()
    # Production's shape: MySQL and Redis, so the messages a scan records are queued for the workers
    # (not sent inline as in the embedded default); the queue's Redis database is emptied after.
    os.environ.update({"DATABASE_URL": url, "APP_ENV": "test", "SECRET_KEY": "bench", "REDIS_URL": REDIS_URL,
                       "LOG_LEVEL": "WARNING"})
    from app import create_app
    from app.extensions import db
    from app.migrate import upgrade
    from app.services import delay_engine

    try:
        app = create_app({"DATABASE_URL": url, "REDIS_URL": REDIS_URL})
        upgrade()
        with app.app_context(), db.connection_context():
            started = time.perf_counter()
            seed(n, late_share)
            print(f"{n} tasks in production (+{n} completed with their history), seeded in "
                  f"{time.perf_counter() - started:.0f} s:")
            measure("first scan (opens alerts)", lambda: delay_engine.scan_delays(NOW))
            elapsed, sql = measure("same state again", lambda: delay_engine.scan_delays(NOW))
            if os.environ.get("PROFILE"):  # e.g. PROFILE=tottime: the top PROFILE_LINES (25) functions
                profile = cProfile.Profile()
                profile.runcall(delay_engine.scan_delays, NOW)
                (pstats.Stats(profile).strip_dirs().sort_stats(os.environ["PROFILE"])
                 .print_stats(int(os.environ.get("PROFILE_LINES", "25"))))
            batches = -(-n // delay_engine.BATCH)
            print(f"  → {batches} batches of {delay_engine.BATCH}: {(len(sql) - 2) / batches:.1f} statements per batch "
                  f"(+2 per scan), {elapsed * 1000 / n * 1000:.0f} µs per task")
            return elapsed, len(sql)
    finally:
        drop()
        redis.Redis.from_url(REDIS_URL).flushdb()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", default="10000,100000", help="comma-separated sizes (default 10000,100000)")
    parser.add_argument("--late", type=float, default=0.01, help="share of tasks behind (default 0.01: 1 %%)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # the finally drops the database
    for n in (int(x) for x in args.tasks.split(",")):
        run(n, args.late)


if __name__ == "__main__":
    main()
