"""Overdue order-level nodes (issue 8): the nodes that belong to staff — 订单确认 (the order's
manager's) and 质检 (QC staff's) — are one node for the whole order, so when one is past its planned
date and not done the order gets one node_overdue alert (no task, no supplier), however many tasks
it has. Scripted over two weeks through `flask jobs run node-overdue-scan / escalation-scan --now`:
who gets which outbox row with which words, levels, escalation, QC's and the manager's responses
through the API, auto-resolution (node done, order on hold), and that every scan run again — or
two at once — changes nothing."""
import secrets
from datetime import date, datetime, time

import pytest

from app.domain.vocabulary import SUPPLIER_NODE_CODES
from app.models import Alert, AuditEntry, NodeInstance, Notification, Order, StaffUser, Task
from app.services import audit, nodes, order_states
from app.services.actors import Actor
from app.timeutil import CHINA, clock_at, to_utc_naive
from tests import factories
from tests.sqlcount import statements

START, DUE = date(2026, 11, 2), date(2026, 11, 14)  # Monday to Saturday a week later
CONFIRMED_ON, QC_ON = date(2026, 11, 2), date(2026, 11, 12)  # the default template's dates for this plan
SCANS = ("node-overdue-scan", "escalation-scan")


def at(day, hh=10, mm=0):
    return datetime.combine(day, time(hh, mm), tzinfo=CHINA)


class World:
    """Staff on WeCom; orders X (in production, three tasks, never confirmed), Y (a draft nobody
    confirmed), Z (in production, two tasks, confirmed), W (on hold, never confirmed). The
    suppliers' nodes are not due in this story (their dates are moved past it)."""

    def __init__(self, app):
        self.app = app
        self.zhang = StaffUser.create(username="zhang", display_name="张经理", password_hash="x", role="manager",
                                      wecom_userid="zhang")
        StaffUser.create(username="li", display_name="李经理", password_hash="x", role="manager", wecom_userid="li")
        self.qian = StaffUser.create(username="qian", display_name="钱质检", password_hash="x", role="qc",
                                     wecom_userid="qian")
        StaffUser.create(username="sun", display_name="孙质检", password_hash="x", role="qc")  # not on WeCom
        StaffUser.create(username="boss", display_name="王总", password_hash="x", role="executive",
                         wecom_userid="boss")
        self.s1, self.s2 = factories.supplier("精工冲压"), factories.supplier("华东焊接")
        customer = factories.customer()
        self.orders = {}
        for letter, state, suppliers in (("X", "in_production", [self.s1, self.s2, self.s1]),
                                         ("Y", "draft", [self.s1]),
                                         ("Z", "in_production", [self.s1, self.s2]),
                                         ("W", "on_hold", [self.s2])):
            order = Order.create(order_no=f"SO-{letter}", customer=customer, product_name=f"机箱{letter}",
                                 quantity=1000, planned_start=START, due_date=DUE, state=state, created_by=self.zhang)
            task_state = {"in_production": "in_production", "on_hold": "on_hold"}.get(state, "pending")
            for i, supplier in enumerate(suppliers, start=1):
                Task.create(order=order, task_no=f"SO-{letter}-T{i}", process="冲压", supplier=supplier,
                            planned_qty=1000, planned_start=START, due_date=DUE, state=task_state,
                            qr_code=secrets.token_urlsafe(12))
            nodes.instantiate(order)
            self.orders[letter] = order
        NodeInstance.update(planned_date=date(2026, 12, 31)).where(NodeInstance.code.in_(SUPPLIER_NODE_CODES)).execute()
        self.confirm("Z", date(2026, 10, 30))
        self.seen = 0

    def node(self, letter, code):
        return NodeInstance.get((NodeInstance.order == self.orders[letter].id) & (NodeInstance.code == code))

    def confirm(self, letter, day):
        """The manager records the order confirmation (a draft becomes confirmed)."""
        with clock_at(at(day, 11, 0)):
            order_states.record_confirmation(Actor.staff(self.zhang), self.orders[letter].id)

    def run(self, scan, when):
        from jobs.cli import register

        if "jobs" not in self.app.cli.commands:
            register(self.app)
        result = self.app.test_cli_runner().invoke(args=["jobs", "run", scan, "--now", when.isoformat()])
        assert result.exit_code == 0, result.output

    def alerts(self):
        """(order letter, node code, level, open/resolved, escalation level, task id) of every alert."""
        letters = {o.id: k for k, o in self.orders.items()}
        return [(letters[a.order_id], a.node.code, a.level, "open" if a.open_key else "resolved", a.escalation_level,
                 a.task_id) for a in Alert.select().order_by(Alert.id)]

    def open_alerts(self):
        return sorted(a[:3] for a in self.alerts() if a[3] == "open")

    def new_messages(self):
        rows = list(Notification.select().where(Notification.id > self.seen).order_by(Notification.id))
        if rows:
            self.seen = rows[-1].id
        return [(n.channel, n.recipient, n.payload["content"]) for n in rows]

    def step(self, when, open_alerts, headlines):
        """Run the scans at `when`; check the open alerts and the new outbox rows (channel,
        recipient, first line); run them again: nothing changes. → the new rows."""
        for scan in SCANS:
            self.run(scan, when)
        got = self.new_messages()
        assert self.open_alerts() == sorted(open_alerts)
        assert [(c, r, text.split("\n")[0].strip("*")) for c, r, text in got] == headlines
        before = (self.alerts(), Notification.select().count(), AuditEntry.select().count())
        for scan in SCANS:
            self.run(scan, when)
        assert (self.alerts(), Notification.select().count(), AuditEntry.select().count()) == before
        return got


def test_overdue_staff_nodes_alert_the_order_once_the_right_people_and_resolve_themselves(app, client, dbconn):
    world = World(app)
    mgr_tail = "查看：管理端「预警」列表"

    # Monday evening: the confirmation is due today, not late yet.
    world.step(at(CONFIRMED_ON, 18, 30), [], [])

    # Tuesday: X (three tasks) and the draft Y were never confirmed: one alert per order, to the
    # order's manager only (not the other manager, not QC, no supplier); W is on hold: nothing.
    tue = world.step(at(date(2026, 11, 3)), [("X", "confirmed", "yellow"), ("Y", "confirmed", "yellow")], [
        ("wecom_app", "zhang", "节点逾期（黄色）"), ("wecom_app", "zhang", "节点逾期（黄色）")])
    assert tue[0][2] == ("**节点逾期（黄色）**\n订单 SO-X（机箱X）\n节点「订单确认」计划 11月02日 完成，已逾期 1 个工作日未完成\n"
                         f"请尽快确认订单并记录订单确认节点\n{mgr_tail}")
    assert all(a[5] is None for a in world.alerts())  # about the order: no task
    opened = AuditEntry.get(AuditEntry.action == "alert.open")
    assert opened.actor_type == "system" and "订单确认" in opened.reason

    # Y is confirmed on Tuesday. Wednesday: Y's alert resolves itself; X's turns orange (the manager
    # hears once) and, unacknowledged for 8 hours, escalates to the executive once.
    world.confirm("Y", date(2026, 11, 3))
    wed = world.step(at(date(2026, 11, 4)), [("X", "confirmed", "orange")], [
        ("wecom_app", "zhang", "节点逾期（橙色）"), ("wecom_app", "boss", "预警升级：节点逾期（橙色）8 小时无人确认")])
    assert wed[1][2] == ("**预警升级：节点逾期（橙色）8 小时无人确认**\n订单 SO-X（机箱X）\n"
                         "节点「订单确认」计划 11月02日 完成，已逾期 2 个工作日未完成\n"
                         f"请尽快确认订单并记录订单确认节点\n{mgr_tail}")
    y_first = Alert.get(Alert.order == world.orders["Y"].id)
    assert (y_first.status, y_first.resolved_by_id, y_first.resolved_at) == ("resolved", None, datetime(2026, 11, 4, 2, 0))

    # Friday 13th: X's confirmation is 10 working days late (red: the executive at once); the QC
    # node (due Thursday) is late on X, Y and Z: the manager and QC staff on WeCom hear of each.
    fri = world.step(at(date(2026, 11, 13)), [
        ("X", "confirmed", "red"), ("X", "qc", "yellow"), ("Y", "qc", "yellow"), ("Z", "qc", "yellow")], [
        ("wecom_app", "zhang", "节点逾期（红色）"), ("wecom_app", "boss", "节点逾期（红色）"),
        ("wecom_app", "zhang", "节点逾期（黄色）"), ("wecom_app", "qian", "节点逾期（黄色）"),
        ("wecom_app", "zhang", "节点逾期（黄色）"), ("wecom_app", "qian", "节点逾期（黄色）"),
        ("wecom_app", "zhang", "节点逾期（黄色）"), ("wecom_app", "qian", "节点逾期（黄色）")])
    assert fri[7][2] == ("**节点逾期（黄色）**\n订单 SO-Z（机箱Z）\n节点「质检」计划 11月12日 完成，已逾期 1 个工作日未完成\n"
                         f"请尽快安排质检并记录质检结果\n{mgr_tail}")
    assert [a[4] for a in world.alerts() if a[0] == "X" and a[1] == "confirmed"] == [1]  # escalated once

    # The alerts list shows an order-level alert without task or supplier; a supplier filter leaves it out.
    qc = factories.staff_session(client, world.qian)
    z_qc = Alert.get((Alert.order == world.orders["Z"].id) & (Alert.node == world.node("Z", "qc").id))
    page = qc.get("/api/v1/alerts", query_string={"kind": "node_overdue", "order_id": world.orders["Z"].id}).json
    assert [a["id"] for a in page["items"]] == [z_qc.id]
    item = page["items"][0]
    assert item == {**item, "task_id": None, "task_no": None, "supplier": None, "order_no": "SO-Z", "node_code": "qc",
                    "node_name": "质检", "kind_name": "节点逾期", "level": "yellow", "days_late": 1}
    assert qc.get("/api/v1/alerts", query_string={"supplier_id": world.s1.id}).json["total"] == 0
    # QC acknowledges its node; the order confirmation is not QC's to answer.
    with clock_at(at(date(2026, 11, 13), 11, 0)):
        acked = qc.post(f"/api/v1/alerts/{z_qc.id}/ack", json={"note": "明早安排终检"})
    assert acked.status_code == 200, acked.json
    assert (acked.json["status"], acked.json["response_seconds"]) == ("acknowledged", 3600)
    x_confirmed = Alert.get((Alert.order == world.orders["X"].id) & (Alert.node == world.node("X", "confirmed").id))
    refused = qc.post(f"/api/v1/alerts/{x_confirmed.id}/ack", json={})
    assert refused.status_code == 403 and refused.json["error"]["code"] == "forbidden"
    # The manager resolves Y's QC alert by hand; as the node is still not done, the next scan opens a new one.
    manager = factories.staff_session(app.test_client(), world.zhang)
    y_qc = Alert.get((Alert.order == world.orders["Y"].id) & (Alert.node == world.node("Y", "qc").id))
    resolved = manager.post(f"/api/v1/alerts/{y_qc.id}/resolve", json={"note": "已与质检约好时间"})
    assert resolved.status_code == 200 and resolved.json["status"] == "resolved", resolved.json

    # Saturday: Z's QC is recorded (resolves itself), X goes on hold (both its alerts resolve
    # themselves, before they could escalate), Y's QC is still late: a new alert, orange.
    NodeInstance.update(state="done", done_at=datetime(2026, 11, 14, 1, 0), done_by="钱质检").where(
        NodeInstance.id == world.node("Z", "qc").id).execute()
    with clock_at(at(date(2026, 11, 14), 9, 0)), audit.transaction(Actor.staff(world.zhang)) as log:
        order_states.transition(log, Order.get_by_id(world.orders["X"].id), "on_hold", "客户要求暂停")
    world.step(at(date(2026, 11, 14)), [("Y", "qc", "orange")], [
        ("wecom_app", "zhang", "节点逾期（橙色）"), ("wecom_app", "qian", "节点逾期（橙色）")])
    assert [a[3] for a in world.alerts() if a[0] == "Y" and a[1] == "qc"] == ["resolved", "open"]
    resolutions = {(AuditEntry.get_by_id(e.id).object_id, e.reason) for e in AuditEntry.select().where(
        (AuditEntry.action == "alert.resolve") & (AuditEntry.actor_type == "system"))}
    assert resolutions == {(str(y_first.id), "节点已完成"), (str(z_qc.id), "节点已完成"),
                           (str(x_confirmed.id), "订单已暂停"),
                           (str(Alert.get((Alert.order == world.orders["X"].id)
                                          & (Alert.node == world.node("X", "qc").id)).id), "订单已暂停")}
    assert not Alert.select().where(Alert.order == world.orders["W"].id).exists()


def test_two_scans_at_once_open_one_alert_per_order_node(app, dbconn):
    """Two cron processes scanning at the same moment: the order's row lock and the unique open
    order-level alert leave exactly what one scan leaves."""
    import threading

    from app.extensions import db
    from app.services import delay_engine

    world = World(app)
    when = to_utc_naive(at(date(2026, 11, 3)))
    errors, start = [], threading.Barrier(2)

    def scan():
        try:
            with app.app_context(), db.connection_context():
                start.wait()
                delay_engine.scan_overdue_nodes(when)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=scan) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert world.open_alerts() == [("X", "confirmed", "yellow"), ("Y", "confirmed", "yellow")]
    assert [(c, r) for c, r, _ in world.new_messages()] == [("wecom_app", "zhang")] * 2


@pytest.mark.parametrize("more", [0, 12])
def test_the_order_scan_costs_the_same_statements_for_few_or_many_orders(app, dbconn, more):
    """Per batch of live orders a fixed number of statements (the orders, their late staff nodes,
    their open order-level alerts): no query per order or per node."""
    from app.services import delay_engine

    world = World(app)
    for n in range(more):
        draft = Order.create(order_no=f"SO-D{n}", customer=world.orders["X"].customer, product_name="机箱",
                             quantity=10, planned_start=START, due_date=DUE, state="draft", created_by=world.zhang)
        nodes.instantiate(draft)
    when = to_utc_naive(at(date(2026, 11, 13)))
    first = delay_engine.scan_overdue_nodes(when)
    assert first["opened"] == 5 + 2 * more  # X: confirmed and QC; Y, Z: QC; each draft: both
    stats, sql = statements(lambda: delay_engine.scan_overdue_nodes(when))
    assert (stats["orders"], stats["opened"], stats["changed"], stats["resolved"]) == (3 + more, 0, 0, 0)
    assert all(s.lstrip().upper().startswith("SELECT") for s in sql), sql
    # Tasks in production: their ids, one batch (tasks, orders, suppliers, late supplier nodes, open
    # alerts), the closed ones: 7; live orders: their ids, one batch (orders, staff nodes, open
    # alerts), the closed ones: 5.
    assert len(sql) == 12, sql
