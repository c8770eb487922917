"""Delivery at scale and its faults, on real MySQL, Redis and RQ worker processes against the
WeChat fake: batches sent by a few jobs, each WeChat error handled as README "Production" says,
a worker SIGKILLed mid-batch, Redis stopped while suppliers report, a robot flood.

Time: rows that wait (back-off after a timeout, a 45009 window) are made due again by moving
their next_attempt_at to now — the clock jumping forward — and the robot's 60 s window is
shortened to 2 s in both the app (WECOM_ROBOT_WINDOW_SECONDS) and the fake (robot_window)."""
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
import redis

from app.extensions import db
from app.models import Notification, Task, WechatUser
from app.queueing import get_queue
from app.services import notifications
from app.timeutil import utcnow
from jobs.notify import flush_outbox
from tests import factories as f
from tests.helpers import SECRET, wechat_settings

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
TEMPLATE = "TPL_NODE_DONE"
DATA = {"thing2": "不锈钢机箱", "character_string1": "SO-1001", "phrase3": "已完成"}


def _worker_env(config, settings):
    """What a worker process is started with: the app's database and Redis, and `settings`."""
    return {**os.environ, "APP_ENV": "test", "SECRET_KEY": SECRET, "LOG_FORMAT": "text",
            "DATABASE_URL": config["DATABASE_URL"], "REDIS_URL": config["REDIS_URL"], **settings}


@pytest.fixture
def delivery(make_app, wechat_fake, backend, run_worker):
    """An app sending to the fake through Redis; `work(**env)` runs a real burst worker with the same settings."""
    settings = {**wechat_settings(wechat_fake), "WECHAT_HTTP_TIMEOUT": 0.5, "WECHAT_RATE_LIMIT_PAUSE_SECONDS": 60}
    app = make_app(**settings)
    env = {k: str(v) for k, v in settings.items()}
    with app.app_context(), db.connection_context():
        yield SimpleNamespace(app=app, fake=wechat_fake, env=env,
                              work=lambda **extra: run_worker({**env, **{k: str(v) for k, v in extra.items()}}))


def _customer(fake, openid, ours=1, theirs=1):
    user = WechatUser.create(openid=openid, role="customer")
    notifications.add_quota(user, TEMPLATE, ours)
    fake.grant_quota(openid, TEMPLATE, theirs)
    return user


def _subscribe(openid, data=None):
    return notifications.record("mp_subscribe", openid, {"data": data or DATA}, template_id=TEMPLATE)


def _row(note):
    return Notification.get_by_id(note.id)


def _fast_forward():
    """The clock jumps past every wait: rows waiting for back-off or a window are due now; the
    periodic flush then wakes the sender, as `rq cron` does every minute."""
    Notification.update(next_attempt_at=utcnow() - timedelta(seconds=1)).where(Notification.status == "pending").execute()
    flush_outbox()


# --- batches -----------------------------------------------------------------------------------------

def test_hundreds_of_messages_cost_a_few_jobs_and_each_is_sent_once(delivery):
    with db.atomic():
        for n in range(300):
            _customer(delivery.fake, f"o-batch-{n}")
            _subscribe(f"o-batch-{n}")
    assert len(get_queue("notify")) == 1  # one transaction of 300 messages woke one job

    output = delivery.work(OUTBOX_BATCH=50, OUTBOX_THREADS=8)

    assert Counter(n.status for n in Notification.select()) == {"sent": 300}
    assert len(delivery.fake.subscribe_messages) == 300
    assert len({m["touser"] for m in delivery.fake.subscribe_messages}) == 300
    assert output.count("deliver_outbox") <= 2 * 8  # started jobs, not one per message


def test_two_workers_at_once_never_send_a_row_twice(delivery, tmp_path):
    with db.atomic():
        for n in range(200):
            _customer(delivery.fake, f"o-two-{n}", theirs=2)  # a second send would be accepted, and seen
            _subscribe(f"o-two-{n}")
    assert len(get_queue("notify")) == 1
    delivery.fake.latency = 0.05
    env = {**_worker_env(delivery.app.config, delivery.env), "OUTBOX_BATCH": "20", "OUTBOX_THREADS": "4"}
    workers = [_start_worker(env, tmp_path / f"w{n}.log") for n in range(2)]
    try:
        _wait_for(lambda: not Notification.select().where(Notification.status.not_in(notifications.FINAL)).exists())
    finally:
        for worker in workers:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(timeout=30)

    assert Counter(n.status for n in Notification.select()) == {"sent": 200}
    assert Counter(Counter(m["touser"] for m in delivery.fake.subscribe_messages).values()) == {1: 200}
    logs = [(tmp_path / f"w{n}.log").read_text() for n in range(2)]
    assert all("deliver_outbox" in log for log in logs), "both workers took part"


# --- WeChat's errors ---------------------------------------------------------------------------------

@pytest.mark.parametrize("failure, error", [
    ("timeout", "request failed: ReadTimeout"),
    ("5xx", "wechat http 502"),
    (-1, "wechat -1: system error"),
])
def test_timeouts_5xx_and_busy_are_retried_with_backoff(delivery, failure, error):
    user = _customer(delivery.fake, "o-retry")
    delivery.fake.timeout_seconds = 1.0
    delivery.fake.fail_next(failure)
    with db.atomic():
        note = _subscribe("o-retry")

    delivery.work()

    row = _row(note)
    assert (row.status, row.attempts, row.last_error) == ("pending", 1, error)
    assert timedelta(seconds=50) < row.next_attempt_at - utcnow() <= timedelta(minutes=1)  # first back-off: 1 min
    assert notifications.remaining_quota(user, TEMPLATE) == 1  # the accept was given back
    _fast_forward()
    delivery.work()
    row = _row(note)
    assert (row.status, row.attempts) == ("sent", 2)
    assert len(delivery.fake.subscribe_messages) == 1


@pytest.mark.parametrize("code", [40001, 42001])
def test_a_rejected_token_is_refreshed_once_and_the_same_attempt_succeeds(delivery, code):
    _customer(delivery.fake, "o-token")
    delivery.fake.fail_next(code)
    with db.atomic():
        note = _subscribe("o-token")

    delivery.work()

    row = _row(note)
    assert (row.status, row.attempts) == ("sent", 1)
    forced = [r for r in delivery.fake.token_requests if r["force_refresh"]]
    assert len(forced) == 1  # one refresh of the shared token (the stable API hands the same one back unforced)
    assert len(delivery.fake.subscribe_messages) == 1


def test_45009_makes_the_channel_wait_for_its_window_without_a_loop_or_a_drop(delivery):
    for n in range(5):
        _customer(delivery.fake, f"o-limit-{n}")
    delivery.fake.fail_next(45009)
    with db.atomic():
        notes = [_subscribe(f"o-limit-{n}") for n in range(5)]

    delivery.work(OUTBOX_THREADS=1)

    rows = [_row(n) for n in notes]
    assert {r.status for r in rows} == {"pending"}
    assert {r.attempts for r in rows} == {0}  # waiting for a window is not a failed attempt
    assert all(timedelta(seconds=50) < r.next_attempt_at - utcnow() <= timedelta(seconds=60) for r in rows)
    assert len(delivery.fake.business_requests) == 1  # one refused call; the others did not knock

    redis.Redis.from_url(delivery.app.config["REDIS_URL"]).delete("wechat:pause:mp_subscribe")  # the window has passed
    _fast_forward()
    delivery.work()
    assert {_row(n).status for n in notes} == {"sent"}
    assert len(delivery.fake.subscribe_messages) == 5


def test_43101_sets_the_quota_to_zero_and_is_never_retried(delivery):
    user = _customer(delivery.fake, "o-refused", ours=3, theirs=0)
    with db.atomic():
        note = _subscribe("o-refused")

    delivery.work()
    _fast_forward()
    delivery.work()

    row = _row(note)
    assert (row.status, row.attempts, row.last_error) == ("no_quota", 1, "wechat 43101: user has no accepts left")
    assert notifications.remaining_quota(user, TEMPLATE) == 0
    assert len(delivery.fake.business_requests) == 1


def test_47003_is_recorded_with_the_offending_field_and_not_retried(delivery):
    user = _customer(delivery.fake, "o-bad-field")
    with db.atomic():
        note = _subscribe("o-bad-field", data={**DATA, "thing9": "模板里没有这个字段"})

    delivery.work()
    _fast_forward()
    delivery.work()

    row = _row(note)
    assert row.status == "failed" and row.attempts == 1
    assert row.last_error.startswith("wechat 47003 field data.thing9:")
    assert notifications.remaining_quota(user, TEMPLATE) == 1  # our mistake did not spend the customer's accept
    assert len(delivery.fake.business_requests) == 1


def test_subscribe_values_are_fitted_to_their_types_before_sending(delivery):
    _customer(delivery.fake, "o-long")
    with db.atomic():
        note = _subscribe("o-long", data={"thing2": "不锈钢钣金机箱（带散热孔，客户定制款 A 型，含包装）🙂",
                                          "character_string1": "SO-1001 订单", "phrase3": "已经全部完成了"})
    delivery.work()
    assert _row(note).status == "sent"
    [sent] = delivery.fake.subscribe_messages
    assert len(sent["data"]["thing2"]["value"]) == 20 and sent["data"]["phrase3"]["value"] == "已经全部完"


def test_a_wecom_user_that_does_not_exist_is_recorded(delivery):
    with db.atomic():
        nobody = notifications.record("wecom_app", "nobody", {"content": "**延期提醒** SO-1001"})
        partly = notifications.record("wecom_app", "zhangsan|nobody", {"content": "**延期提醒** SO-1002"})

    delivery.work()

    assert (_row(nobody).status, _row(nobody).last_error) == ("failed", "wecom 81013: no such WeCom user: nobody")
    assert (_row(partly).status, _row(partly).last_error) == ("sent", "no such WeCom user: nobody")
    assert [m["delivered_to"] for m in delivery.fake.wecom_messages] == [["zhangsan"]]


def test_a_robot_flood_of_100_goes_out_at_20_per_window_without_a_45009(delivery):
    window = 2.0
    delivery.fake.robot_window = window
    with db.atomic():
        notes = [notifications.record("wecom_robot", "robot", {"content": f"### 预警 {n}"}) for n in range(100)]

    started = time.monotonic()
    rounds = 0
    while Notification.select().where(Notification.status != "sent").exists():
        rounds += 1
        assert rounds <= 10, "the flood should be through in 5 windows"
        delivery.work(WECOM_ROBOT_WINDOW_SECONDS=window + 0.2)
        due = notifications.next_due_at()
        if due is not None:  # wait for the window, then the periodic flush wakes the sender
            time.sleep(max(0, (due - utcnow()).total_seconds()) + 0.05)
            flush_outbox()
    elapsed = time.monotonic() - started

    assert Counter(_row(n).status for n in notes) == {"sent": 100}
    assert sorted(m["markdown"]["content"] for m in delivery.fake.robot_messages) == sorted(f"### 预警 {n}" for n in range(100))
    assert delivery.fake.robot_refusals == 0  # never a 45009: rows waited for the window instead
    assert 4 * window <= elapsed < 12 * window  # 100 at 20 a window: five windows, a little slack
    assert {_row(n).attempts for n in notes} == {1}  # waiting was never counted as a failed attempt


def test_a_worker_with_the_scheduler_sends_a_robot_flood_at_the_windows_pace_by_itself(delivery, tmp_path):
    """The production worker (--with-scheduler): a run is scheduled for when the window opens, so
    no flush and no test step is needed between windows."""
    window = 2.0
    delivery.fake.robot_window = window
    with db.atomic():
        for n in range(60):
            notifications.record("wecom_robot", "robot", {"content": f"### 预警 {n}"})
    env = {**_worker_env(delivery.app.config, delivery.env), "WECOM_ROBOT_WINDOW_SECONDS": str(window + 0.2)}
    worker = _start_worker(env, tmp_path / "scheduler.log", scheduler=True)
    started = time.monotonic()
    try:
        _wait_for(lambda: len(delivery.fake.robot_messages) == 60, seconds=30)
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=30)
    assert 2 * window <= time.monotonic() - started < 8 * window
    assert delivery.fake.robot_refusals == 0
    assert Counter(n.status for n in Notification.select()) == {"sent": 60}


# --- crashes and outages -----------------------------------------------------------------------------

def _start_worker(env, log, burst=False, scheduler=False):
    args = [str(BIN / "rq"), "worker", "-w", "jobs.worker.AppWorker", "--url", env["REDIS_URL"], "notify"]
    if burst:
        args.insert(4, "--burst")
    if scheduler:
        args.insert(4, "--with-scheduler")
    with open(log, "w") as out:
        return subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _sigkill_with_work_horse(worker):
    """kill -9 the worker and the work horse it forked (RQ puts the horse in its own process group)."""
    children = Path(f"/proc/{worker.pid}/task/{worker.pid}/children").read_text().split()
    for pid in [*map(int, children), worker.pid]:
        os.kill(pid, signal.SIGKILL)
    worker.wait(timeout=10)


def _wait_for(condition, seconds=60):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_worker_killed_mid_batch_loses_nothing_and_resends_only_what_was_in_flight(delivery, tmp_path):
    """At least once for the rows in flight, exactly once for the others: a row WeChat answered
    but whose outcome was not committed is sent again after its lease; nothing else is."""
    lease = 3
    delivery.app.config["OUTBOX_LEASE_SECONDS"] = lease
    with db.atomic():
        for n in range(60):
            _customer(delivery.fake, f"o-kill-{n}", theirs=2)  # a duplicate would be accepted, and counted
            _subscribe(f"o-kill-{n}")
    delivery.fake.latency = 0.3
    env = {**_worker_env(delivery.app.config, delivery.env),
           "OUTBOX_BATCH": "20", "OUTBOX_THREADS": "8", "OUTBOX_LEASE_SECONDS": str(lease)}
    worker = _start_worker(env, tmp_path / "killed.log")
    _wait_for(lambda: len(delivery.fake.subscribe_messages) >= 12)

    _sigkill_with_work_horse(worker)

    at_kill = {n.recipient: n.status for n in Notification.select()}
    in_flight = {r for r, s in at_kill.items() if s == "sending"}
    assert {"sent", "sending"} <= set(at_kill.values()), at_kill  # killed mid-batch
    time.sleep(0.5)  # what WeChat was answering when the worker died still lands there
    time.sleep(lease)  # the dead worker's claims lapse
    assert flush_outbox() > 0  # the periodic flush sees them and wakes a sender
    delivery.work(OUTBOX_LEASE_SECONDS=lease)

    assert Counter(n.status for n in Notification.select()) == {"sent": 60}  # no row lost
    received = Counter(m["touser"] for m in delivery.fake.subscribe_messages)
    assert set(received) == set(at_kill)
    duplicates = {openid for openid, count in received.items() if count > 1}
    assert duplicates <= in_flight  # duplicates only where README says they can happen
    assert max(received.values()) <= 2  # in practice some in-flight rows were resent (the fake answered them after the kill)
    # Our quota count: one unit per row, even for the row sent twice (the reclaimed row kept its unit).
    assert {notifications.remaining_quota(u, TEMPLATE) for u in WechatUser.select()} == {0}


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class OwnRedis:
    """A private redis-server this test may stop and start again on the same port."""

    def __init__(self):
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen([shutil.which("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1",
                                      "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
        _wait_for(self._answers, 10)

    def _answers(self):
        try:
            return redis.Redis.from_url(self.url).ping()
        except redis.ConnectionError:
            return False

    def stop(self):
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def own_redis():
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server not installed")
    server = OwnRedis()
    server.start()
    yield server
    if server.proc.poll() is None:
        server.stop()


def test_reports_made_while_redis_is_down_are_accepted_and_told_once_it_is_back(make_app, wechat_fake, backend,
                                                                                own_redis, tmp_path):
    if backend["name"] != "mysql":
        pytest.skip("the embedded default has no Redis to lose")
    # The node message's fields (nodes.node_message), as its template is configured on the platform.
    wechat_fake.templates["TPL_NODE_PROGRESS"] = ["character_string1", "thing2", "phrase3", "time4", "thing5"]
    settings = {**wechat_settings(wechat_fake), "REDIS_URL": own_redis.url, "SUBSCRIBE_TEMPLATE_IDS": "TPL_NODE_PROGRESS"}
    app = make_app(**{**settings, "SUBSCRIBE_TEMPLATE_IDS": ("TPL_NODE_PROGRESS",)})
    client = app.test_client()
    with app.app_context(), db.connection_context():
        cust = f.customer()
        customer_auth = f.bearer(f.wechat_user(cust))
        orders = []
        for n in range(3):
            supplier = f.supplier(f"供应商{n}")
            order = f.order(cust, [supplier])
            orders.append((order, Task.get(Task.order == order), f.bearer(f.wechat_user(supplier))))
        for order, _, _ in orders:
            subscribed = client.post(f"/mp/v1/orders/{order.id}/subscriptions", headers=customer_auth, json={
                "client_id": str(uuid.uuid4()), "accepted": {"TPL_NODE_PROGRESS": "accept"}, "nodes": ["shipped"]})
            assert subscribed.status_code == 200, subscribed.json
        wechat_fake.grant_quota(WechatUser.get(WechatUser.customer == cust).openid, "TPL_NODE_PROGRESS", 3)

        own_redis.stop()
        for _, task, supplier_auth in orders:
            done = client.post(f"/mp/v1/tasks/{task.id}/nodes/shipped/complete", headers=supplier_auth,
                               json={"client_id": str(uuid.uuid4()), "note": "已发货"})
            assert done.status_code == 201, done.json  # the supplier's report is accepted without Redis
        assert Counter(n.status for n in Notification.select()) == {"pending": 3}
        assert wechat_fake.subscribe_messages == []

        own_redis.start()
        env = _worker_env(app.config, {k: str(v) for k, v in settings.items()})
        for _ in range(2):  # the periodic flush, then a worker — twice: the second round sends nothing again
            flush_outbox()
            worker = _start_worker(env, tmp_path / "back.log", burst=True)
            assert worker.wait(timeout=120) == 0, (tmp_path / "back.log").read_text()[-2000:]

        assert Counter(n.status for n in Notification.select()) == {"sent": 3}, [n.last_error for n in Notification.select()]
    assert len(wechat_fake.subscribe_messages) == 3  # each once
    assert sorted(m["data"]["character_string1"]["value"] for m in wechat_fake.subscribe_messages) == sorted(
        o.order_no for o, _, _ in orders)


def test_the_previous_release_keeps_recording_while_0007_is_applied(app, dbconn):
    """`db upgrade` runs before the new code starts: the old code's INSERT names none of the new
    columns, and must still work; its rows are then delivered like any other."""
    db.execute_sql("INSERT INTO notification (created_at, channel, recipient, payload, status, attempts, next_attempt_at) "
                   "VALUES (%s, 'wecom_app', 'zhangsan', '{\"content\": \"x\"}', 'pending', 0, %s)".replace(
                       "%s", "?" if "sqlite" in app.config["DATABASE_URL"] else "%s"), (utcnow(), utcnow()))
    [row] = Notification.select()
    assert not row.quota_held and row.claim_token is None
    [claimed] = notifications.claim_batch(10)
    assert claimed.id == row.id and claimed.status == "sending"


def test_the_embedded_default_keeps_the_robot_window_and_45009_pauses_in_process(wechat_app, wechat_fake, backend):
    if backend["name"] != "sqlite":
        pytest.skip("with Redis the window and the pauses are shared through Redis (tests above)")
    with wechat_app.app_context(), db.connection_context():
        with db.atomic():  # sent in process after commit
            robot = [notifications.record("wecom_robot", "robot", {"content": f"### 预警 {n}"}) for n in range(25)]
        assert Counter(_row(n).status for n in robot) == {"sent": 20, "pending": 5}
        assert wechat_fake.robot_refusals == 0

        _customer(wechat_fake, "o-embedded")
        wechat_fake.fail_next(45009)
        with db.atomic():
            first = _subscribe("o-embedded")
        with db.atomic():
            second = _subscribe("o-embedded")
        assert (_row(first).status, _row(first).attempts, _row(second).status) == ("pending", 0, "pending")
        assert len(wechat_fake.business_requests) == 1  # the second waited for the pause without a call


def test_a_message_for_a_suppliers_group_goes_to_that_suppliers_robot_not_the_companys(delivery):
    """The delay engine addresses a supplier's group as "supplier:<id>" (the key stays on the supplier,
    never in the outbox); the company's WECOM_ROBOT_KEY group must not get the supplier's messages."""
    delivery.fake.robot_keys = (*delivery.fake.robot_keys, "supplier-group-key")
    supplier = f.supplier()
    supplier.robot_key = "supplier-group-key"
    supplier.save()
    with db.atomic():
        theirs = notifications.record("wecom_robot", f"supplier:{supplier.id}", {"content": "### 请更新进度"})
        ours = notifications.record("wecom_robot", "robot", {"content": "### 延期预警汇总"})

    delivery.work()

    assert (_row(theirs).status, _row(ours).status) == ("sent", "sent")
    by_key = {m["key"]: m["markdown"]["content"] for m in delivery.fake.robot_messages}
    company_key = wechat_settings(delivery.fake)["WECOM_ROBOT_KEY"]
    assert by_key == {"supplier-group-key": "### 请更新进度", company_key: "### 延期预警汇总"}
