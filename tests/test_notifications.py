"""Outbox sends: subscribe messages only with quota, field limits respected, recorded without credentials."""
from app.extensions import db
from app.models import Notification, WechatUser
from app.services import notifications
from jobs.notify import send_notification

LONG_PRODUCT = "不锈钢钣金机箱（带散热孔，客户定制款 A 型，含包装）"


def _subscribe(openid, **data):
    with db.atomic():
        return notifications.record(
            "mp_subscribe", openid,
            {"data": data or {"thing2": LONG_PRODUCT, "character_string1": "SO-1001", "phrase3": "已完成"}},
            template_id="TPL_NODE_DONE", page="pages/order/detail?id=1",
        )


def test_a_subscribe_message_is_sent_once_per_accept(wechat_app, wechat_fake):
    with wechat_app.app_context(), db.connection_context():
        user = WechatUser.create(openid="o-cust", role="customer")
        notifications.add_quota(user, "TPL_NODE_DONE", 1)
        wechat_fake.grant_quota("o-cust", "TPL_NODE_DONE", 1)

        first = _subscribe("o-cust")  # sent in process or by the worker test below
        send_notification(first.id)
        second = _subscribe("o-cust")
        send_notification(second.id)

        assert Notification.get_by_id(first.id).status == "sent"
        # Our count said no accept was left: nothing reached WeChat, nothing will retry.
        assert Notification.get_by_id(second.id).status == "no_quota"
        assert notifications.remaining_quota(user, "TPL_NODE_DONE") == 0
    assert len(wechat_fake.subscribe_messages) == 1
    sent = wechat_fake.subscribe_messages[0]
    assert len(sent["data"]["thing2"]["value"]) <= 20  # cut to WeChat's limit, not refused with 47003
    assert sent["miniprogram_state"] == "formal"


def test_wechat_saying_no_quota_clears_our_count(wechat_app, wechat_fake):
    with wechat_app.app_context(), db.connection_context():
        user = WechatUser.create(openid="o-gone", role="customer")
        notifications.add_quota(user, "TPL_NODE_DONE", 2)  # WeChat has none: the user unsubscribed
        note = _subscribe("o-gone")
        send_notification(note.id)
        assert Notification.get_by_id(note.id).status == "no_quota"
        assert notifications.remaining_quota(user, "TPL_NODE_DONE") == 0
    assert wechat_fake.subscribe_messages == []


def test_a_busy_wechat_returns_the_accept_and_retries_later(wechat_app, wechat_fake):
    with wechat_app.app_context(), db.connection_context():
        user = WechatUser.create(openid="o-busy", role="customer")
        notifications.add_quota(user, "TPL_NODE_DONE", 1)
        wechat_fake.grant_quota("o-busy", "TPL_NODE_DONE", 1)
        wechat_fake.fail_business_calls_with = -1
        note = _subscribe("o-busy")
        send_notification(note.id)
        note = Notification.get_by_id(note.id)
        assert note.status == "pending" and note.next_attempt_at > note.created_at
        assert notifications.remaining_quota(user, "TPL_NODE_DONE") == 1


def test_without_credentials_messages_are_recorded_not_sent(app, dbconn, wechat_fake):
    note = notifications.record("wecom_robot", "robot", {"content": "### 今日逾期任务 3 个"})
    send_notification(note.id)
    assert Notification.get_by_id(note.id).status == "recorded"
    assert wechat_fake.robot_messages == []


def test_the_same_event_is_recorded_once(app, dbconn):
    a = notifications.record("wecom_app", "zhangsan", {"content": "延期"}, dedup_key="alert-1-red")
    b = notifications.record("wecom_app", "zhangsan", {"content": "延期"}, dedup_key="alert-1-red")
    assert a.id == b.id and Notification.select().count() == 1


def test_wecom_app_and_robot_messages_reach_wechat(wechat_app, wechat_fake):
    with wechat_app.app_context(), db.connection_context():
        app_note = notifications.record("wecom_app", "zhangsan|nobody", {"content": "**延期提醒** SO-1001"})
        robot_note = notifications.record("wecom_robot", "robot", {"content": "### 质检不合格\n> SO-1002"})
        send_notification(app_note.id)
        send_notification(robot_note.id)
        assert Notification.get_by_id(app_note.id).status == "sent"
        assert Notification.get_by_id(robot_note.id).status == "sent"
    assert wechat_fake.wecom_messages[0]["delivered_to"] == ["zhangsan"]
    assert wechat_fake.robot_messages[0]["markdown"]["content"].startswith("### 质检不合格")
