"""The write path against the machine's ceiling, measured in one run with wrk under one set of
gunicorn settings:

  (a) a minimal Flask + peewee app doing the product's write shape (lock a row, insert, update),
  (b) a minimal app doing a single INSERT,
  then the product: new report, amendment, retry (same client_id), supplier task list, customer
  timeline — at each concurrency. Prints req/s, p50, p99, the ratio to (a) and (b), and the
  statements per request (counted in process as the database receives them, tests/sqlcount.sent).

    .venv/bin/python bench/ceiling.py                         # MySQL (root@127.0.0.1) + Redis, 4 workers, c=4,16
    .venv/bin/python bench/ceiling.py --backend sqlite        # the embedded default
    .venv/bin/python bench/ceiling.py --scale-out             # also: 2 web processes (2 workers each, two
                                                              # ports, load on both) + 2 RQ workers
    options: --workers 4 --concurrency 4,16 --duration 8 --only new,amend

wrk comes from `make setup-dev` (scripts/ensure-wrk.sh). The database is a throw-away one, dropped
at the end. A run answers non-2xx only if something is wrong: the table shows their count.
"""
import argparse
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pymysql
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BIN = Path(sys.executable).parent
DAYS = 7  # report dates: the 7-day window
NEW_TASKS = 800  # tasks per new-report run: 7 × 800 new reports before a run would start amending
POOL = 200  # tasks amended / client_ids replayed


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_database(backend):
    if backend == "sqlite":
        return f"sqlite:///{tempfile.mkdtemp()}/bench.db", lambda: None
    name = f"wx_ceiling_{os.getpid()}"
    conn = pymysql.connect(host="127.0.0.1", user="root", password="", autocommit=True)
    conn.cursor().execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    return (f"mysql+pool://root@127.0.0.1:3306/{name}?max_connections=20&stale_timeout=300&timeout=10",
            lambda: conn.cursor().execute(f"DROP DATABASE `{name}`"))


# --- seeding --------------------------------------------------------------------------------------

def seed(env, concurrencies, scale_out):
    """Migrate, create the bench's parties, tasks and tokens, and count each request's statements."""
    os.environ.update(env)
    from app import create_app
    from app.extensions import db
    from app.migrate import upgrade
    from app.models import ProgressReport, Task
    from app.services import audit
    from app.services.actors import Actor
    from app.timeutil import china_date
    from bench import minimal_app
    from tests import factories
    from tests.sqlcount import sent

    app = create_app()
    upgrade()
    minimal_app.create_tables()
    today = china_date()
    runs = len(concurrencies) * (2 if scale_out else 1)
    data = {"dates": [(today - timedelta(days=DAYS - 1 - d)).isoformat() for d in range(DAYS)],
            "today": today.isoformat()}
    with app.app_context(), db.connection_context():
        with db.atomic():
            reporter, lister = factories.supplier("报工厂"), factories.supplier("列表厂")
            customer = factories.customer()
            ids = bulk_tasks(customer, reporter, NEW_TASKS * (runs + 1) + POOL)
            data["new"] = [ids[n * NEW_TASKS:(n + 1) * NEW_TASKS] for n in range(runs + 1)]  # + 1: the count's own
            pool = list(Task.select().where(Task.id.in_(ids[-POOL:])).order_by(Task.id))
            for task in pool:  # today's report, amended by the amendment runs
                ProgressReport.create(task=task, report_date=today, qty_done=1)
                Task.update(qty_done=1, last_report_date=today).where(Task.id == task.id).execute()
            data["pool"] = [t.id for t in pool]
            for _ in range(30):
                factories.order(customer, [lister], qty=5000)
            watched = factories.order(customer, [reporter, lister], qty=5000)
            for task in watched.tasks:
                for d in range(10):
                    ProgressReport.create(task=task, report_date=today - timedelta(days=10 - d), qty_done=(d + 1) * 100)
            data["order"] = watched.id
            # Orders come with their chain, started (and registered) by the order.create entry, as in
            # production: a report appends to an existing chain.
            with audit.transaction(Actor.system("压测")) as log:
                for order_id in sorted({t.order_id for t in Task.select(Task.order)}):
                    log.add("order.create", "order", order_id)
            rep_user, list_user = factories.wechat_user(reporter), factories.wechat_user(lister)
            cust_user = factories.wechat_user(customer)
        data["reporter"] = factories.bearer(rep_user)["Authorization"]
        data["lister"] = factories.bearer(list_user)["Authorization"]
        data["customer"] = factories.bearer(cust_user)["Authorization"]
    client = app.test_client()
    # The replayed answers: one stored report per pool task (yesterday's, so amendments stay valid).
    data["retry"] = []
    for task_id in data["pool"]:
        body = {"client_id": str(uuid.uuid4()), "report_date": data["dates"][-2], "qty_done": 1}
        res = client.post(f"/mp/v1/tasks/{task_id}/reports", json=body, headers={"Authorization": data["reporter"]})
        assert res.status_code == 201, res.json
        data["retry"].append((task_id, body["client_id"]))

    # Statements per request, as the database receives them (connection taken from the pool and returned).
    counts = {}
    spare = data["new"].pop()
    auth = {"Authorization": data["reporter"]}
    # The counted new report is a day after the task's latest, as most are (a task's very first
    # report also reads the day's neighbours: one statement more).
    assert client.post(f"/mp/v1/tasks/{spare[0]}/reports", headers=auth, json={
        "client_id": str(uuid.uuid4()), "report_date": data["dates"][-2], "qty_done": 4}).status_code == 201
    for kind, call in [
        ("new", lambda: client.post(f"/mp/v1/tasks/{spare[0]}/reports", headers=auth, json={
            "client_id": str(uuid.uuid4()), "report_date": data["today"], "qty_done": 5})),
        ("amend", lambda: client.post(f"/mp/v1/tasks/{data['pool'][0]}/reports", headers=auth, json={
            "client_id": str(uuid.uuid4()), "report_date": data["today"], "qty_done": 7})),
        ("retry", lambda: client.post(f"/mp/v1/tasks/{data['retry'][0][0]}/reports", headers=auth, json={
            "client_id": data["retry"][0][1], "report_date": data["dates"][-2], "qty_done": 1})),
        ("tasks", lambda: client.get("/mp/v1/tasks", headers={"Authorization": data["lister"]})),
        ("timeline", lambda: client.get(f"/mp/v1/orders/{data['order']}", headers={"Authorization": data["customer"]})),
    ]:
        res, seen = sent(call)
        assert res.status_code in (200, 201), (kind, res.status_code, res.get_data(as_text=True)[:300])
        counts[kind] = len(seen)
    mini = minimal_app.app.test_client()
    for kind, path in (("tx", "/tx"), ("insert", "/insert")):
        res, seen = sent(lambda p=path: mini.post(p), minimal_app.db)
        assert res.status_code == 201
        counts[kind] = len(seen)
    return data, counts


def bulk_tasks(customer, supplier, n):
    """n orders in production with one task each (no nodes: reports do not read them), inserted
    many at a time. → the task ids."""
    from app.models import Order, Task
    from app.timeutil import china_date

    today, tag = china_date(), secrets.token_hex(3)
    start, due = today - timedelta(days=10), today + timedelta(days=20)
    Order.insert_many([{"order_no": f"SO-B{tag}-{i}", "customer": customer.id, "product_name": "钣金机箱",
                        "quantity": 10 ** 6, "planned_start": start, "due_date": due, "state": "in_production",
                        "unit_price": "12.50"} for i in range(n)]).execute()
    orders = [o.id for o in Order.select(Order.id).where(Order.order_no.startswith(f"SO-B{tag}-")).order_by(Order.id)]
    Task.insert_many([{"order": order_id, "task_no": f"T-B{tag}-{i}", "process": "冲压", "supplier": supplier.id,
                       "planned_qty": 10 ** 6, "tolerance_pct": 0.05, "planned_start": start, "due_date": due,
                       "state": "in_production", "qr_code": secrets.token_urlsafe(16), "unit_cost": "3.20"}
                      for i, order_id in enumerate(orders)]).execute()
    return [t.id for t in Task.select(Task.id).where(Task.order.in_(orders)).order_by(Task.id)]


# --- wrk scripts -----------------------------------------------------------------------------------

LUA_COMMON = r"""
local counter = 1
local threads = {}
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end
local shown = 0
SALT = %SALT%
function response(status, headers, body)
  if status >= 300 and shown < 2 then
    shown = shown + 1
    io.write(string.format("non-2xx %d: %s\n", status, string.sub(body, 1, 160)))
  end
end
local function uuid()
  local t = "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx"
  return (string.gsub(t, "[xy]", function(c)
    local v = (c == "x") and math.random(0, 15) or math.random(8, 11)
    return string.format("%x", v)
  end))
end
"""


def lua_list(values):
    return "{" + ",".join(str(v) for v in values) + "}"


def lua_script(kind, data, tasks=None, threads=2):
    headers = "{['Content-Type']='application/json', ['Authorization']='%s'}"
    if kind == "new":
        # Thread t walks its own tasks day by day: every request is a new (task, day) report.
        return LUA_COMMON + f"""
local tasks = {lua_list(tasks)}
local dates = {{{",".join(f'"{d}"' for d in data["dates"])}}}
local mine, k = {{}}, 0
function init(args)
  math.randomseed(SALT + id)
  for i = id, #tasks, {threads} do table.insert(mine, tasks[i]) end
end
function request()
  local n = #mine
  local task = mine[(k % n) + 1]
  local day = math.min(math.floor(k / n), {DAYS - 1})
  k = k + 1
  local body = string.format('{{"client_id":"%s","report_date":"%s","qty_done":%d}}', uuid(), dates[day + 1], (day + 1) * 100)
  return wrk.format("POST", "/mp/v1/tasks/" .. task .. "/reports", {headers % data["reporter"]}, body)
end
"""
    if kind == "amend":
        return LUA_COMMON + f"""
local tasks = {lua_list(data["pool"])}
function init(args) math.randomseed(SALT + id) end
function request()
  local task = tasks[math.random(1, #tasks)]
  local qty = math.random(10, 900000)
  local body = string.format('{{"client_id":"%s","report_date":"{data["today"]}","qty_done":%d}}', uuid(), qty)
  return wrk.format("POST", "/mp/v1/tasks/" .. task .. "/reports", {headers % data["reporter"]}, body)
end
"""
    if kind == "retry":
        return LUA_COMMON + f"""
local tasks = {lua_list(t for t, _ in data["retry"])}
local ids = {{{",".join(f'"{c}"' for _, c in data["retry"])}}}
function init(args) math.randomseed(SALT + id) end
function request()
  local i = math.random(1, #tasks)
  local body = string.format('{{"client_id":"%s","report_date":"{data["dates"][-2]}","qty_done":1}}', ids[i])
  return wrk.format("POST", "/mp/v1/tasks/" .. tasks[i] .. "/reports", {headers % data["reporter"]}, body)
end
"""
    if kind == "tasks":
        return LUA_COMMON + f"""
function request() return wrk.format("GET", "/mp/v1/tasks", {headers % data["lister"]}) end
"""
    if kind == "timeline":
        return LUA_COMMON + f"""
function request() return wrk.format("GET", "/mp/v1/orders/{data["order"]}", {headers % data["customer"]}) end
"""
    path = {"tx": "/tx", "insert": "/insert"}[kind]
    return f'wrk.method = "POST"\nfunction request() return wrk.format("POST", "{path}") end\n'


UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def parse_wrk(text):
    def ms(label):
        m = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M)
        return float(m.group(1)) * UNITS[m.group(2)] if m else float("nan")

    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    errors = re.search(r"Socket errors:.*", text)
    samples = re.findall(r"^non-2xx .*$", text, re.M)
    if samples:
        print("   ", samples[0])
    return {"rps": float(rps.group(1)) if rps else 0.0, "p50": ms("50%"), "p99": ms("99%"),
            "bad": int(bad.group(1)) if bad else 0, "errors": errors.group(0) if errors else "",
            "requests": int(re.search(r"(\d+) requests in", text).group(1))}


def wrk(ports, kind, data, concurrency, duration, tasks=None):
    """wrk on every port at once (the concurrency split between them); the sums and the worst latencies."""
    procs = []
    share = max(1, concurrency // len(ports))
    for n, port in enumerate(ports):
        threads = min(2, share)
        script = Path(tempfile.mkdtemp()) / f"{kind}.lua"
        mine = tasks[n::len(ports)] if tasks else None
        # Each wrk process its own random sequence: the same seeds made the same client_ids.
        script.write_text(lua_script(kind, data, mine, threads).replace("%SALT%", str(secrets.randbelow(10 ** 9))))
        procs.append(subprocess.Popen(
            ["wrk", f"-t{threads}", f"-c{share}", f"-d{duration}s", "--latency", "--timeout", "10s", "-s", str(script),
             f"http://127.0.0.1:{port}"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    results = [parse_wrk(p.communicate()[0]) for p in procs]
    return {"rps": sum(r["rps"] for r in results), "p50": max(r["p50"] for r in results),
            "p99": max(r["p99"] for r in results), "bad": sum(r["bad"] for r in results),
            "errors": "; ".join(r["errors"] for r in results if r["errors"]),
            "requests": sum(r["requests"] for r in results)}


# --- servers ---------------------------------------------------------------------------------------

def start_gunicorn(app_spec, env, workers, extra=()):
    port = free_port()
    proc = subprocess.Popen(
        [str(BIN / "gunicorn"), "-w", str(workers), "-b", f"127.0.0.1:{port}", "--log-level", "warning",
         "--backlog", "2048", *extra, app_spec],
        cwd=ROOT, env=env, start_new_session=True)
    deadline = time.monotonic() + 60
    while True:
        try:
            requests.get(f"http://127.0.0.1:{port}/", timeout=2)
            return proc, port
        except requests.RequestException:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"gunicorn {app_spec} did not start")
            time.sleep(0.2)


def stop(proc):
    if proc and proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def start_rq_worker(env, log):
    with open(log, "w") as out:
        return subprocess.Popen([str(BIN / "rq"), "worker", "-w", "jobs.worker.AppWorker", "--url", env["REDIS_URL"],
                                 "high", "notify", "default", "media", "low"],
                                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


# --- main ------------------------------------------------------------------------------------------

def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=["mysql", "sqlite"], default="mysql")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--concurrency", default="4,16")
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--only", default="new,amend,retry,tasks,timeline")
    parser.add_argument("--scale-out", action="store_true")
    args = parser.parse_args()
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    kinds = args.only.split(",")
    if args.scale_out and args.backend != "mysql":
        parser.error("--scale-out needs MySQL (several processes on one database server)")

    url, drop = make_database(args.backend)
    env = {"APP_ENV": "development", "SECRET_KEY": secrets.token_urlsafe(32), "DATABASE_URL": url,
           "LOG_LEVEL": "WARNING", "PHOTO_DIR": tempfile.mkdtemp()}
    if args.backend == "mysql":
        env["REDIS_URL"] = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
    full_env = {**os.environ, **env}
    procs = []
    try:
        data, counts = seed(env, concurrencies, args.scale_out)
        print(f"# {time.strftime('%Y-%m-%d %H:%M:%S %Z')}  backend={args.backend}  gunicorn -w {args.workers} (sync)  "
              f"wrk {args.duration}s per row  load average {os.getloadavg()[0]:.2f}  cpus {os.cpu_count()}")
        rows = []
        new_runs = iter(data["new"])

        def measure(label, ports, kinds_here):
            for c in concurrencies:
                for kind in kinds_here:
                    tasks = next(new_runs) if kind == "new" else None
                    result = wrk(ports, kind, data, c, args.duration, tasks)
                    if kind == "new" and result["requests"] > DAYS * NEW_TASKS:
                        result["errors"] += f" (more than {DAYS * NEW_TASKS} requests: the last were amendments)"
                    rows.append((label, kind, c, result))

        mini, port = start_gunicorn("minimal_app:app", full_env, args.workers, ("--pythonpath", "bench"))
        procs.append(mini)
        measure("one process", [port], ["tx", "insert"])
        stop(mini)
        web, port = start_gunicorn("wsgi:app", full_env, args.workers)
        procs.append(web)
        measure("one process", [port], kinds)
        stop(web)
        if args.scale_out:
            logs = Path(tempfile.mkdtemp())
            workers = [start_rq_worker(full_env, logs / f"rq{n}.log") for n in range(2)]
            procs.extend(workers)
            webs = [start_gunicorn("wsgi:app", full_env, max(1, args.workers // 2)) for _ in range(2)]
            procs.extend(p for p, _ in webs)
            measure("2 web + 2 rq", [p for _, p in webs], [k for k in kinds if k in ("new", "amend", "retry")])
        print_table(rows, counts)
        check(url, args.backend)
    finally:
        for proc in procs:
            stop(proc)
        drop()


def print_table(rows, counts):
    ceiling = {(kind, c): r for label, kind, c, r in rows if kind in ("tx", "insert")}
    print(f"{'setup':13} {'request':10} {'c':>3} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'÷(a) tx':>8} {'÷(b) ins':>8} "
          f"{'stmts':>5} {'non-2xx':>7}")
    names = {"tx": "(a) tx", "insert": "(b) insert", "new": "new report", "amend": "amendment", "retry": "retry",
             "tasks": "task list", "timeline": "timeline"}
    for label, kind, c, r in rows:
        a, b = ceiling.get(("tx", c)), ceiling.get(("insert", c))
        ra = f"{r['rps'] / a['rps']:.0%}" if a and a["rps"] else "-"
        rb = f"{r['rps'] / b['rps']:.0%}" if b and b["rps"] else "-"
        print(f"{label:13} {names[kind]:10} {c:>3} {r['rps']:>8.0f} {r['p50']:>8.1f} {r['p99']:>8.1f} {ra:>8} {rb:>8} "
              f"{counts.get(kind, '-'):>5} {r['bad']:>7} {r['errors']}")


def check(url, backend):
    """After the load: every chain intact."""
    from app.extensions import db
    from app.services import audit

    with db.connection_context():
        problems = audit.verify()
    print("audit chains:", "intact" if not problems else f"{len(problems)} problems, e.g. {problems[0]}")


if __name__ == "__main__":
    main()
