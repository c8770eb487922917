"""Group robot digests: many alert messages due for one group robot at once (the morning after a
holiday) go as a few digests — counts by level, worst first, the alerts worst first, where to
look — instead of a flood; every folded row ends 'digested', naming its digest. A few alert
messages still go one by one."""
from collections import Counter

import pytest

from app.extensions import db
from app.models import Notification
from app.services import delay_engine, notifications
from app.timeutil import utcnow
from tests import factories as f
from tests.helpers import wechat_settings

SUPPLIER_KEY = "supplier-digest-key"


@pytest.fixture
def robots(make_app, wechat_fake, backend, request):
    """An app sending to the fake; `deliver()` runs a real RQ worker (MySQL + Redis) — the embedded
    default has already sent in process after the commit."""
    wechat_fake.robot_keys = (*wechat_fake.robot_keys, SUPPLIER_KEY)
    settings = {**wechat_settings(wechat_fake), "DASHBOARD_ALERTS_URL": "https://erp.example.com/alerts"}
    app = make_app(**settings)

    def deliver():
        if backend["name"] == "mysql":
            request.getfixturevalue("run_worker")({k: str(v) for k, v in settings.items()})

    with app.app_context(), db.connection_context():
        yield deliver
    wechat_fake.robot_keys = wechat_fake.robot_keys[:-1]


def _alert_row(recipient, level, n):
    return notifications.record("wecom_robot", recipient, {"content": f"### 预警 {n}", "level": level,
                                                            "line": f"任务 T-{n} 延期"})


def test_100_alerts_to_one_suppliers_robot_in_one_scan_go_as_a_handful_of_digests(robots, wechat_fake, backend):
    if backend["name"] != "mysql":
        pytest.skip("the embedded default sends each alert's transaction as it commits (README)")
    supplier = f.supplier()
    supplier.robot_key = SUPPLIER_KEY
    supplier.save()
    cust = f.customer()
    for _ in range(100):
        f.order(cust, [supplier], days_before=10)  # in production ten days, never reported

    delay_engine.scan_missing_reports(utcnow())
    rows = list(Notification.select().where(Notification.channel == "wecom_robot"))
    assert len(rows) == 100 and {r.recipient for r in rows} == {f"supplier:{supplier.id}"}
    robots()

    messages = [m["markdown"]["content"] for m in wechat_fake.robot_messages]
    assert 1 <= len(messages) <= 5, messages
    for text in messages:
        assert text.startswith("**预警汇总：")
        assert "小程序「我的任务」" in text  # a supplier's group is pointed where it can act
        assert len(text.encode()) <= 4096
    assert sum(int(t.split("：")[1].split(" ")[0]) for t in messages) == 100
    assert {m["key"] for m in wechat_fake.robot_messages} == {SUPPLIER_KEY}
    folded = [Notification.get_by_id(r.id) for r in rows]
    assert {r.status for r in folded} == {"digested"} and all(r.last_error.startswith("digested into #") for r in folded)
    assert set(Notification.select(Notification.status).tuples()) <= {(s,) for s in notifications.FINAL}
    assert wechat_fake.robot_refusals == 0


def test_a_digest_counts_by_level_worst_first_and_links_to_the_alerts(robots, wechat_fake):
    with db.atomic():  # one scan's worth, due together
        for n, level in enumerate(["yellow"] * 20 + ["red"] * 3 + ["orange"] * 10):
            _alert_row("robot", level, n)
    robots()

    [message] = wechat_fake.robot_messages
    lines = message["markdown"]["content"].split("\n")
    assert lines[0] == "**预警汇总：33 条**"
    assert lines[1] == "红色 3 条 · 橙色 10 条 · 黄色 20 条"
    assert [line.split("]")[0] for line in lines[2:5]] == ["> [红色"] * 3  # the worst first
    assert lines[-1] == "[查看全部预警](https://erp.example.com/alerts)"
    statuses = Counter(n.status for n in Notification.select())
    assert statuses == {"digested": 33, "sent": 1}
    digest = Notification.get(Notification.status == "sent")
    assert {n.last_error for n in Notification.select().where(Notification.status == "digested")} == {
        f"digested into #{digest.id}"}


def test_a_few_alerts_still_go_one_by_one(robots, wechat_fake):
    with db.atomic():
        for n in range(5):
            _alert_row("robot", "orange", n)
    robots()

    assert sorted(m["markdown"]["content"] for m in wechat_fake.robot_messages) == [f"### 预警 {n}" for n in range(5)]
    assert Counter(n.status for n in Notification.select()) == {"sent": 5}
