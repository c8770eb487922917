"""Profile the new-report request in process (Flask test client, no HTTP server) with cProfile.

    .venv/bin/python bench/profile_report.py                  # MySQL (TEST_MYSQL_URL root@127.0.0.1) + Redis
    .venv/bin/python bench/profile_report.py --backend sqlite
    .venv/bin/python bench/profile_report.py --requests 600 --top 25

Seeds one supplier with tasks in production on a throw-away database, then sends REQUESTS new
daily reports (each a new task/day, as a phone would) with the pool connect/close of a real
request, and prints the functions with the most own time, then by cumulative time.
"""
import argparse
import cProfile
import io
import os
import pstats
import secrets
import sys
import tempfile
import uuid
from datetime import timedelta
from pathlib import Path

ROOT = Path(os.environ.get("BENCH_ROOT", Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(ROOT))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=["mysql", "sqlite"], default="mysql")
    parser.add_argument("--requests", type=int, default=600)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--by-package", action="store_true", help="also own time summed by package")
    args = parser.parse_args()

    import pymysql

    drop = None
    if args.backend == "sqlite":
        url = f"sqlite:///{tempfile.mkdtemp()}/profile.db"
    else:
        name = f"wx_profile_{os.getpid()}"
        admin = pymysql.connect(host="127.0.0.1", user="root", password="", autocommit=True)
        admin.cursor().execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        url = f"mysql+pool://root@127.0.0.1:3306/{name}?max_connections=20&stale_timeout=300&timeout=10"
        drop = lambda: admin.cursor().execute(f"DROP DATABASE `{name}`")  # noqa: E731
    try:
        from app import create_app
        from app.extensions import db
        from app.migrate import upgrade
        from app.services import audit
        from app.services.actors import Actor
        from app.timeutil import china_date
        from tests import factories

        app = create_app({"APP_ENV": "development", "SECRET_KEY": secrets.token_urlsafe(32), "DATABASE_URL": url,
                          "LOG_LEVEL": "WARNING", "PHOTO_DIR": tempfile.mkdtemp(), "REDIS_URL": None})
        upgrade()
        days = 7
        with app.app_context(), db.connection_context():
            supplier, customer = factories.supplier(), factories.customer()
            tasks = [factories.order(customer, [supplier], qty=10 ** 6).tasks[0]
                     for _ in range(args.requests // days + 1)]
            # Orders come with their chain started, as in production (bench/ceiling.py does the same).
            with audit.transaction(Actor.system("压测")) as log:
                for task in tasks:
                    log.add("order.create", "order", task.order_id)
            tasks = [task.id for task in tasks]
            headers = factories.bearer(factories.wechat_user(supplier))
        today = china_date()
        work = [(task, (today - timedelta(days=days - 1 - d)).isoformat(), (d + 1) * 100)
                for d in range(days) for task in tasks][: args.requests]
        client = app.test_client()
        warm = work[:20]
        for task, day, qty in warm:
            assert client.post(f"/mp/v1/tasks/{task}/reports", headers=headers, json={
                "client_id": str(uuid.uuid4()), "report_date": day, "qty_done": qty}).status_code == 201
        profile = cProfile.Profile()
        profile.enable()
        for task, day, qty in work[20:]:
            res = client.post(f"/mp/v1/tasks/{task}/reports", headers=headers, json={
                "client_id": str(uuid.uuid4()), "report_date": day, "qty_done": qty})
            assert res.status_code == 201, res.json
        profile.disable()
        n = len(work) - 20
        for key in ("tottime", "cumulative"):
            out = io.StringIO()
            stats = pstats.Stats(profile, stream=out)
            print(f"--- {n} new reports, {stats.total_tt / n * 1000:.2f} ms CPU+wait per request; top by {key}")
            stats.sort_stats(key).print_stats(args.top)
            print("\n".join(line for line in out.getvalue().splitlines()
                            if line.strip() and not line.startswith(("   Ordered", "         "))
                            or "function calls" in line))
        if args.by_package:
            by_package(profile, n)
    finally:
        if drop:
            drop()


def by_package(profile, n):
    """Own time per request summed by where the code lives (site-packages package, our package, builtins)."""
    stats = pstats.Stats(profile).stats
    sums = {}
    for (filename, _, name), (_, _, tottime, _, _) in stats.items():
        if "site-packages/" in filename:
            key = filename.split("site-packages/")[1].split("/")[0].removesuffix(".py")
        elif filename.startswith(str(ROOT)):
            key = "ours: " + filename[len(str(ROOT)) + 1:].split("/")[0]
        elif filename == "~":
            key = "builtin: " + name.split(" of ")[-1][:40]
        else:
            key = "stdlib: " + Path(filename).stem
        sums[key] = sums.get(key, 0) + tottime
    print(f"--- own time by package, ms per request ({n} requests)")
    for key, total in sorted(sums.items(), key=lambda kv: -kv[1])[:25]:
        print(f"  {total / n * 1000:7.2f}  {key}")


if __name__ == "__main__":
    main()
