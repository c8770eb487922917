"""The delay engine over a scripted two-week plan: five tasks of five orders and three suppliers —
on time, slipping, stalled, catching up, put on hold — with a holiday in between. The scans run
through `flask jobs run <scan> --now <ISO>` at chosen moments (and once through a real RQ worker);
each step checks exactly which alerts are open at which level, which outbox rows were written (and
their words), and that running every scan again changes nothing."""
import os
import secrets
from datetime import date, datetime, time, timedelta

import pytest

from app.models import Alert, AuditEntry, NodeSubscription, Notification, Order, StaffUser, Supplier, Task
from app.services import audit, nodes, notifications, order_states, progress
from app.services.actors import Actor
from app.timeutil import CHINA, clock_at
from tests import factories

HOLIDAY = date(2026, 11, 11)  # a Wednesday off in the middle of the plan
START, DUE = date(2026, 11, 2), date(2026, 11, 14)  # Monday to Saturday a week later: 11 working days
QTY = 1100  # so the plan expects 100 a working day
SCANS = ("delay-scan", "missing-report-scan", "node-overdue-scan", "early-warning-scan", "escalation-scan")
DELAY_TEMPLATE = "TPL_DELAY"


@pytest.fixture
def app_settings():
    return {"HOLIDAYS": HOLIDAY.isoformat(), "WORK_WEEKDAYS": "1-6"}


def at(day, hh=18, mm=30):
    return datetime.combine(day, time(hh, mm), tzinfo=CHINA)


class Plan:
    """The scripted world: staff on WeCom, three suppliers reached three ways, five orders."""

    def __init__(self, app):
        self.app = app
        self.manager = StaffUser.create(username="zhang", display_name="张经理", password_hash="x", role="manager",
                                        wecom_userid="zhang")
        StaffUser.create(username="li", display_name="李经理", password_hash="x", role="manager", wecom_userid="li")
        StaffUser.create(username="boss", display_name="王总", password_hash="x", role="executive",
                         wecom_userid="boss")
        # S1 has a WeChat user with subscribe-message accepts; S2 a group robot; S3 neither.
        self.s1, self.s2, self.s3 = (factories.supplier("精工冲压"), factories.supplier("华东焊接"),
                                     factories.supplier("远山装配"))
        Supplier.update(robot_key="robot-key-s2").where(Supplier.id == self.s2.id).execute()
        self.s3.contact_name, self.s3.contact_phone = "赵师傅", "13800000000"
        self.s3.save()
        self.users = {s.id: factories.wechat_user(s) for s in (self.s1, self.s2, self.s3)}
        notifications.add_quota(self.users[self.s1.id], DELAY_TEMPLATE, 20)
        self.customer = factories.customer()
        self.buyer = factories.wechat_user(self.customer, openid="o-buyer")
        self.tasks = {}
        for letter, supplier in (("A", self.s1), ("B", self.s2), ("C", self.s3), ("D", self.s1), ("E", self.s2)):
            order = Order.create(order_no=f"SO-{letter}", customer=self.customer, product_name=f"机箱{letter}",
                                 quantity=QTY, planned_start=START, due_date=DUE, state="in_production",
                                 created_by=self.manager)
            task = Task.create(order=order, task_no=f"SO-{letter}-T1", process="冲压", supplier=supplier,
                               planned_qty=QTY, planned_start=START, due_date=DUE, state="in_production",
                               qr_code=secrets.token_urlsafe(12))
            nodes.instantiate(order)
            # The manager confirmed the order (its 订单确认 node is done; tests/test_order_node_alerts.py
            # is about an order nobody confirmed).
            with clock_at(at(START - timedelta(days=3), 9, 0)):
                order_states.record_confirmation(Actor.staff(self.manager), order.id)
            self.tasks[letter] = task
        # The customer follows order B in the mini program (and accepted the delay template).
        NodeSubscription.create(user=self.buyer, order=self.tasks["B"].order, node_code="shipped")
        notifications.add_quota(self.buyer, DELAY_TEMPLATE, 2)
        self.seen = 0

    def task(self, letter):
        return Task.get_by_id(self.tasks[letter].id)

    def report(self, letter, day, qty):
        task = self.task(letter)
        user = self.users[task.supplier_id]
        with clock_at(at(day, 17, 0)):
            progress.report(Actor.wechat(user), user, task, {"report_date": day, "qty_done": qty})

    def node(self, letter, code, day):
        task = self.task(letter)
        user = self.users[task.supplier_id]
        with clock_at(at(day, 16, 0)):
            progress.complete_node(Actor.wechat(user), task, code, {})

    def order_to(self, letter, state, day):
        order = Order.get_by_id(self.tasks[letter].order_id)
        with clock_at(at(day, 9, 0)), audit.transaction(Actor.staff(self.manager)) as log:
            order_states.transition(log, order, state, "测试")

    def run(self, scan, when):
        from jobs.cli import register

        if "jobs" not in self.app.cli.commands:
            register(self.app)
        result = self.app.test_cli_runner().invoke(args=["jobs", "run", scan, "--now", when.isoformat()])
        assert result.exit_code == 0, result.output
        return result.output

    def scan_all(self, when):
        return [self.run(scan, when) for scan in SCANS]

    def alerts(self):
        """(task letter, kind, node code, level, status, escalation level) of every alert."""
        letters = {t.id: k for k, t in self.tasks.items()}
        out = []
        for a in Alert.select().order_by(Alert.id):
            node = a.node.code if a.node_id else None
            out.append((letters[a.task_id], a.kind, node, a.level, "open" if a.open_key else "resolved",
                        a.escalation_level))
        return out

    def open_alerts(self):
        return sorted(a[:4] for a in self.alerts() if a[4] == "open")

    def new_messages(self):
        """The outbox rows written since the last call: (channel, recipient, text)."""
        rows = list(Notification.select().where(Notification.id > self.seen).order_by(Notification.id))
        if rows:
            self.seen = rows[-1].id
        return [(n.channel, n.recipient, n.payload.get("content") or n.payload.get("text")) for n in rows]

    def unchanged_by_rerun(self, when):
        alerts_before, notes_before = self.alerts(), Notification.select().count()
        audit_before = AuditEntry.select().count()
        self.scan_all(when)
        assert self.alerts() == alerts_before
        assert Notification.select().count() == notes_before
        assert AuditEntry.select().count() == audit_before


def brief(message):
    """(channel, recipient, headline): a message's first line, or its 【tag】 for suppliers."""
    channel, recipient, text = message
    head = text.split("\n")[0].strip("*")
    if head.startswith("【"):
        head = head[:head.index("】") + 1]
    return channel, recipient, head[:16]


def test_two_weeks_of_scans(app, dbconn, request):
    plan = Plan(app)
    week = [date(2026, 11, d) for d in (2, 3, 4, 5, 6, 7, 9, 10, 12, 13, 14)]
    buyer, s1_user = plan.buyer.openid, plan.users[plan.s1.id].openid
    s2_robot = f"supplier:{plan.s2.id}"
    record = os.environ.get("RECORD_SCENARIO")

    def step(when, open_alerts, messages):
        """Run every scan at `when`; check the open alerts and the new outbox rows; run again: nothing."""
        plan.scan_all(when)
        got_alerts, got = plan.open_alerts(), plan.new_messages()
        if record:
            print("=====", when, repr(got_alerts), repr([brief(m) for m in got]), *got, sep="\n")
            plan.unchanged_by_rerun(when)
            return got
        assert got_alerts == sorted(open_alerts)
        assert [brief(m) for m in got] == messages
        plan.unchanged_by_rerun(when)
        return got

    # Mon-Wed: A on plan, B at 60 a day, C two days then silent, D at 40 a day, E at 50 a day.
    for i, day in enumerate(week[:3], start=1):
        plan.report("A", day, 100 * i)
        plan.report("B", day, 60 * i)
        if i <= 2:
            plan.report("C", day, 100 * i)
        plan.report("D", day, 40 * i)
        plan.report("E", day, 50 * i)
    for letter in "ABE":
        plan.node(letter, "materials_ready", week[1])
    plan.node("D", "materials_ready", week[2])

    # Wednesday evening: B, D and E are predicted late (orange); C missed today's report (yellow:
    # only the supplier hears, and as it cannot be reached the manager is told so); B's customer
    # is warned; D and E have no subscribed customer.
    wed = step(at(week[2]), [
        ("B", "customer_early_warning", None, "orange"), ("B", "delay", None, "orange"),
        ("C", "missing_report", None, "yellow"),
        ("D", "customer_early_warning", None, "orange"), ("D", "delay", None, "orange"),
        ("E", "customer_early_warning", None, "orange"), ("E", "delay", None, "orange"),
    ], [
        ("wecom_app", "zhang", "延期预警（橙色）"), ("wecom_robot", s2_robot, "【进度延期】"),
        ("wecom_app", "zhang", "延期预警（橙色）"), ("mp_subscribe", s1_user, "【进度延期】"),
        ("wecom_app", "zhang", "延期预警（橙色）"), ("wecom_robot", s2_robot, "【进度延期】"),
        ("wecom_app", "zhang", "无法联系供应商"),
        ("mp_subscribe", buyer, "您的订单 SO-B（机箱B）预计"),
    ])
    s2_name, s3_name = plan.s2.name, plan.s3.name
    assert wed[0][2] == (f"**延期预警（橙色）**\n订单 SO-B · 任务 SO-B-T1 冲压 · {s2_name}\n"
                         "预计延期：已完成 180/1100 件，计划应完成 300 件，进度落后 10.9%；预计 11月24日 完成，"
                         "晚于交期 11月14日 8 个工作日\n请联系供应商确认原因、催办或调整计划\n查看：管理端「预警」列表")
    assert wed[1][2] == ("【进度延期】任务 SO-B-T1（机箱B 冲压）已完成 180/1100 件，按当前进度将晚于交期 11月14日 "
                         "8 个工作日。请加快生产，并在小程序「我的任务」更新进度或预计完成日期。")
    assert wed[6][2].startswith(f"**无法联系供应商**\n{s3_name}：没有可用的订阅消息，也未配置企业微信群机器人。"
                                "以下提醒未能送达，请电话联系（赵师傅 13800000000）：\n> 【漏报提醒】任务 SO-C-T1")
    customer_text = wed[7][2]
    assert customer_text == ("您的订单 SO-B（机箱B）预计无法在原定的 11月14日 交货，新的预计交货日期是 11月24日。"
                             "我们正在督促生产，如有变化会再通知您。详情请看小程序「我的订单」。")
    # The customer never reads about the supplier or the figures.
    customer_rows = Notification.select().where(Notification.recipient == buyer)
    for row in customer_rows:
        words = str(row.payload)
        assert all(secret not in words for secret in (s2_name, "%", "落后", "SO-B-T1", "冲压", "件"))
    assert Task.get_by_id(plan.tasks["B"].id).eta_date == date(2026, 11, 24)
    # Nor in the mini program: the order's timeline and list show no alert, figure or supplier.
    client = app.test_client()
    headers = factories.bearer(plan.buyer)
    with clock_at(at(week[2], 20, 0)):
        seen = [client.get(f"/mp/v1/orders/{plan.tasks['B'].order_id}", headers=headers),
                client.get("/mp/v1/orders", headers=headers)]
    for answer in seen:
        assert answer.status_code == 200, answer.json
        body = answer.get_data(as_text=True)
        assert all(secret not in body for secret in (s2_name, "deviation", "alert", "落后", "预警", "SO-B-T1"))
    # …and the timeline's predicted ship date is the date the message gave.
    assert seen[0].json["predicted_ship_date"] == "2026-11-24"

    # D's manager acknowledges its alert; nobody answers the others. Thursday 03:00, 8.5 hours
    # later: the other three escalate to the executive, once; C's material node is a day late.
    Alert.update(status="acknowledged", acknowledged_at=datetime(2026, 11, 4, 12, 0)).where(
        (Alert.task == plan.tasks["D"].id) & (Alert.kind == "delay")).execute()
    step(at(week[3], 3, 0), [
        ("B", "customer_early_warning", None, "orange"), ("B", "delay", None, "orange"),
        ("C", "missing_report", None, "yellow"), ("C", "node_overdue", "materials_ready", "yellow"),
        ("D", "customer_early_warning", None, "orange"), ("D", "delay", None, "orange"),
        ("E", "customer_early_warning", None, "orange"), ("E", "delay", None, "orange"),
    ], [
        ("wecom_app", "zhang", "节点逾期（黄色）"), ("wecom_app", "zhang", "无法联系供应商"),
        ("wecom_app", "boss", "预警升级：延期预警（橙色）8 小"), ("wecom_app", "boss", "预警升级：延期预警（橙色）8 小"),
        ("wecom_app", "boss", "预警升级：漏报提醒（黄色）8 小"),
    ])
    assert {(a[0], a[1]) for a in plan.alerts() if a[5] == 1} == {("B", "delay"), ("E", "delay"), ("C", "missing_report")}

    # Thursday: D catches up (its delay and its early warning resolve themselves); C misses a
    # second day: now the manager hears of it (orange).
    plan.report("A", week[3], 400)
    plan.report("B", week[3], 240)
    plan.report("D", week[3], 400)
    plan.report("E", week[3], 200)
    for letter in "AB":
        plan.node(letter, "first_article", week[3])
    step(at(week[3]), [
        ("B", "customer_early_warning", None, "orange"), ("B", "delay", None, "orange"),
        ("C", "missing_report", None, "orange"), ("C", "node_overdue", "materials_ready", "yellow"),
        ("E", "customer_early_warning", None, "orange"), ("E", "delay", None, "orange"),
    ], [
        ("wecom_app", "zhang", "无法联系供应商"), ("wecom_app", "zhang", "漏报提醒（橙色）"),
        ("wecom_app", "boss", "预警升级：节点逾期（黄色）8 小"),
    ])
    resolved = Alert.get((Alert.task == plan.tasks["D"].id) & (Alert.kind == "delay"))
    assert (resolved.status, resolved.resolved_by_id, resolved.resolved_at) == (
        "resolved", None, datetime(2026, 11, 5, 10, 30))
    entry = AuditEntry.get((AuditEntry.action == "alert.resolve") & (AuditEntry.object_id == str(resolved.id)))
    assert (entry.actor_type, entry.reason) == ("system", "进度已追上")

    # Friday: E's order goes on hold (its alerts resolve); first articles due yesterday are late
    # for C and D (D's supplier hears by subscribe message).
    plan.order_to("E", "on_hold", week[4])
    plan.report("A", week[4], 500)
    plan.report("B", week[4], 300)
    plan.report("D", week[4], 600)
    step(at(week[4]), [
        ("B", "customer_early_warning", None, "orange"), ("B", "delay", None, "orange"),
        ("C", "missing_report", None, "orange"), ("C", "node_overdue", "first_article", "yellow"),
        ("C", "node_overdue", "materials_ready", "orange"), ("D", "node_overdue", "first_article", "yellow"),
    ], [
        ("wecom_app", "zhang", "无法联系供应商"),
        ("wecom_app", "zhang", "节点逾期（橙色）"), ("wecom_app", "zhang", "无法联系供应商"),
        ("wecom_app", "zhang", "节点逾期（黄色）"), ("wecom_app", "zhang", "无法联系供应商"),
        ("wecom_app", "zhang", "节点逾期（黄色）"), ("mp_subscribe", s1_user, "【节点逾期】"),
    ])
    assert {(a[0], a[1]) for a in plan.alerts() if a[0] == "E" and a[4] == "resolved"} == {
        ("E", "delay"), ("E", "customer_early_warning")}

    # Saturday: B slips to red (executives told at once), C's stall turns into a red delay; D
    # marks its first article (resolved).
    plan.report("A", week[5], 600)
    plan.report("B", week[5], 360)
    plan.report("D", week[5], 800)
    plan.node("D", "first_article", week[5])
    step(at(week[5]), [
        ("B", "customer_early_warning", None, "orange"), ("B", "delay", None, "red"),
        ("C", "delay", None, "red"), ("C", "missing_report", None, "orange"),
        ("C", "node_overdue", "first_article", "orange"), ("C", "node_overdue", "materials_ready", "orange"),
    ], [
        ("wecom_app", "zhang", "延期预警（红色）"), ("wecom_app", "boss", "延期预警（红色）"),
        ("wecom_robot", s2_robot, "【进度延期】"),
        ("wecom_app", "zhang", "延期预警（红色）"), ("wecom_app", "boss", "延期预警（红色）"),
        ("wecom_app", "zhang", "无法联系供应商"),
        ("wecom_app", "zhang", "无法联系供应商"),
        ("wecom_app", "zhang", "节点逾期（橙色）"), ("wecom_app", "zhang", "无法联系供应商"),
        ("wecom_app", "boss", "预警升级：节点逾期（橙色）8 小"),
    ])

    # Monday and Tuesday: C's red delay, unacknowledged for 2 hours, escalates (B's was escalated
    # already: once per step); C's material node reaches red.
    for i, day in enumerate(week[6:8], start=7):
        plan.report("A", day, 100 * i)
        plan.report("B", day, 60 * i)
        plan.report("D", day, 800 + 100 * (i - 6))
    plan.node("A", "main_process", week[7])
    late_c = [
        ("B", "customer_early_warning", None, "orange"), ("B", "delay", None, "red"),
        ("C", "delay", None, "red"), ("C", "missing_report", None, "orange"),
        ("C", "node_overdue", "first_article", "orange"), ("C", "node_overdue", "materials_ready", "red"),
    ]
    step(at(week[7]), late_c, [
        ("wecom_app", "zhang", "无法联系供应商"),
        ("wecom_app", "zhang", "节点逾期（红色）"), ("wecom_app", "boss", "节点逾期（红色）"),
        ("wecom_app", "zhang", "无法联系供应商"),
        ("wecom_app", "boss", "预警升级：延期预警（红色）2 小"),
    ])
    # Wednesday is a holiday: no report is missing, no node falls due, nobody is told anything.
    step(at(HOLIDAY, 20, 0), late_c, [])

    # Thursday: C's order is cancelled: all its alerts resolve themselves. The others report.
    plan.order_to("C", "cancelled", week[8])
    plan.report("A", week[8], 900)
    plan.report("B", week[8], 540)
    plan.report("D", week[8], 1000)
    for letter in "BD":
        plan.node(letter, "main_process", week[8])
    step(at(week[8]), [("B", "customer_early_warning", None, "orange"), ("B", "delay", None, "red")], [])
    assert {a[1:3] for a in plan.alerts() if a[0] == "C"} == {
        ("delay", None), ("missing_report", None), ("node_overdue", "first_article"),
        ("node_overdue", "materials_ready")}
    assert all(a[4] == "resolved" for a in plan.alerts() if a[0] == "C")
    reasons = {e.reason for e in AuditEntry.select().where(AuditEntry.action == "alert.resolve")}
    assert reasons == {"进度已追上", "延期已消除", "订单已暂停", "节点已完成", "任务已取消"}
    # The customer was told once, whatever happened after.
    assert Notification.select().where(Notification.recipient == buyer).count() == 1


def _first_three_days(plan):
    week = [date(2026, 11, d) for d in (2, 3, 4)]
    for i, day in enumerate(week, start=1):
        plan.report("A", day, 100 * i)
        plan.report("B", day, 60 * i)
        if i <= 2:
            plan.report("C", day, 100 * i)
        plan.report("D", day, 40 * i)
        plan.report("E", day, 50 * i)
    for letter in "ABDE":
        plan.node(letter, "materials_ready", week[1])
    return at(week[2])


WEDNESDAY_ALERTS = [
    ("B", "customer_early_warning", None, "orange"), ("B", "delay", None, "orange"),
    ("C", "missing_report", None, "yellow"),
    ("D", "customer_early_warning", None, "orange"), ("D", "delay", None, "orange"),
    ("E", "customer_early_warning", None, "orange"), ("E", "delay", None, "orange"),
]


def test_scans_queued_twice_run_by_a_real_worker_record_everything_once(app, dbconn, backend, request):
    """The cron's jobs, queued twice by mistake (two `rq cron` processes), run by a real RQ worker."""
    from app.queueing import enqueue_now

    plan = Plan(app)
    when = _first_three_days(plan)
    for _ in range(2):
        for scan in SCANS:
            enqueue_now(scan, when.isoformat())
    if backend["name"] == "mysql":
        output = request.getfixturevalue("run_worker")({"HOLIDAYS": HOLIDAY.isoformat()})
        assert "delay_scan" in output
    assert plan.open_alerts() == sorted(WEDNESDAY_ALERTS)
    assert len(plan.new_messages()) == 8
    # The worker also sent (recorded) each outbox row once.
    if backend["name"] == "mysql":
        assert {n.status for n in Notification.select()} == {"recorded"}


def test_two_scans_at_once_double_nothing(app, dbconn, backend):
    """Two cron processes scanning at the same moment: the unique open alert (under the task's row
    lock) and the outbox's unique dedup keys leave exactly what one scan leaves."""
    import threading

    from app.extensions import db
    from app.services import delay_engine
    from app.timeutil import to_utc_naive

    plan = Plan(app)
    when = to_utc_naive(_first_three_days(plan))
    errors, start = [], threading.Barrier(2)

    def scan():
        try:
            with app.app_context(), db.connection_context():
                start.wait()
                delay_engine.scan_delays(when)
                delay_engine.scan_missing_reports(when)
                delay_engine.scan_early_warnings(when)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=scan) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert plan.open_alerts() == sorted(WEDNESDAY_ALERTS)
    assert len(plan.new_messages()) == 8


def test_a_manager_sets_a_suppliers_group_robot_and_never_reads_the_key_back(manager, dbconn):
    created = manager.post("/api/v1/suppliers", json={"code": "S-R1", "name": "群机器人厂", "robot_key": "abc-123"})
    assert created.status_code == 201, created.json
    assert created.json["robot_configured"] is True and "abc-123" not in created.get_data(as_text=True)
    supplier_id = created.json["id"]
    assert Supplier.get_by_id(supplier_id).robot_key == "abc-123"

    cleared = manager.put(f"/api/v1/suppliers/{supplier_id}/robot", json={"robot_key": None})
    assert cleared.status_code == 200 and cleared.json["robot_configured"] is False
    assert Supplier.get_by_id(supplier_id).robot_key is None
    bad = manager.put(f"/api/v1/suppliers/{supplier_id}/robot", json={"robot_key": "a b"})
    assert bad.status_code == 422
    logged = [e.after for e in AuditEntry.select().where(AuditEntry.object_type == "supplier")]
    assert logged and all("abc-123" not in (text or "") for text in logged)


def test_a_scan_costs_the_same_statements_for_few_or_many_tasks_and_ignores_history(app, dbconn):
    """Statements per batch of tasks are fixed: no query per task, none over finished history."""
    from app.services import delay_engine
    from app.timeutil import to_utc_naive
    from tests.sqlcount import statements

    plan = Plan(app)
    when = to_utc_naive(_first_three_days(plan))

    def steady_scan():
        """Statements of a scan that finds what the last one found, in batches of 4 tasks."""
        delay_engine.scan_delays(when, batch_size=4)  # opens what it finds
        stats, sql = statements(lambda: delay_engine.scan_delays(when, batch_size=4))
        batches = stats["tasks"] // 4 + 1  # the last one short (or empty)
        # Per batch: the tasks (what the judgement needs) with their reports, their ETA promises,
        # their open alerts — the last, short one only the tasks if it is empty; per scan: the
        # unresolved alerts of tasks no longer in production.
        assert len(sql) == 3 * batches - 2 * (stats["tasks"] % 4 == 0) + 1, sql
        return stats["tasks"]

    assert steady_scan() == 5
    # Twenty more tasks in production, some late, and a finished order with its resolved alerts.
    for n in range(20):
        order = factories.order(plan.customer, [plan.s1, plan.s2], days_before=8, days_after=3)
        if n % 5 == 0:
            for task in order.tasks:
                Task.update(qty_done=10, last_report_date=START).where(Task.id == task.id).execute()
    done = factories.order(plan.customer, [plan.s3], state="completed")
    Alert.insert_many([{"task": done.tasks.get().id, "order": done.id, "kind": "delay", "level": "red",
                        "status": "resolved", "open_key": None} for _ in range(30)]).execute()
    assert steady_scan() == 45
