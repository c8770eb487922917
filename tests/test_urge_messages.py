"""Urges reach both ends at once: POST /api/v1/tasks/<id>/urges tells the supplier (subscribe
message to its users with an accept left, else its group robot, else the manager hears it could not
be reached); the supplier's answer tells the manager who urged, with the new expected date. A
retried urge (same client_id) or a repeated answer records nothing twice."""
import uuid
from datetime import timedelta
from types import SimpleNamespace

import pytest

from app.models import Notification, StaffUser, Task, Urge
from app.services import notifications
from app.timeutil import china_date
from tests import factories as f

DELAY_TEMPLATE = "TPL_DELAY"


@pytest.fixture
def urging(manager, dbconn):
    StaffUser.update(wecom_userid="zhangsan").where(StaffUser.username == "manager").execute()
    supplier = f.supplier()
    order = f.order(f.customer(), [supplier])
    user = f.wechat_user(supplier)
    return SimpleNamespace(manager=manager, supplier=supplier, order=order, task=Task.get(Task.order == order),
                           user=user, supplier_auth=f.bearer(user))


def _urge(d, client_id=None, message="请本周五前交货"):
    body = {"message": message}
    if client_id:
        body["client_id"] = client_id
    return d.manager.post(f"/api/v1/tasks/{d.task.id}/urges", json=body)


def _rows(channel=None):
    query = Notification.select().order_by(Notification.id)
    return [n for n in query if channel is None or n.channel == channel]


def test_an_urge_reaches_the_suppliers_users_by_subscribe_message_at_once(urging):
    d = urging
    notifications.add_quota(d.user, DELAY_TEMPLATE, 1)

    res = _urge(d)

    assert res.status_code == 201, res.json
    assert res.json["supplier_reached"] == "mp_subscribe"
    [row] = _rows()
    assert (row.channel, row.recipient, row.template_id) == ("mp_subscribe", d.user.openid, DELAY_TEMPLATE)
    assert d.order.order_no in row.payload["text"] and "请本周五前交货" in row.payload["text"]
    assert row.payload["data"]["character_string1"] == d.task.task_no
    assert row.payload["data"]["thing2"].startswith("催单")


def test_without_an_accept_the_urge_goes_to_the_suppliers_group_robot(urging):
    d = urging
    d.supplier.robot_key = "supplier-group-key"
    d.supplier.save()

    res = _urge(d)

    assert res.json["supplier_reached"] == "wecom_robot"
    [row] = _rows()
    assert (row.channel, row.recipient) == ("wecom_robot", f"supplier:{d.supplier.id}")
    assert "催单" in row.payload["content"] and d.task.task_no in row.payload["content"]


def test_a_supplier_that_cannot_be_reached_is_recorded_and_the_manager_told(urging):
    d = urging

    res = _urge(d)

    assert res.json["supplier_reached"] == "unreached"
    [row] = _rows()
    assert (row.channel, row.recipient) == ("wecom_app", "zhangsan")
    assert "无法联系供应商" in row.payload["content"] and "请本周五前交货" in row.payload["content"]


def test_a_retried_urge_with_the_same_client_id_urges_and_tells_once(urging):
    d = urging
    notifications.add_quota(d.user, DELAY_TEMPLATE, 3)
    client_id = str(uuid.uuid4())

    first, again = _urge(d, client_id), _urge(d, client_id)

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json["id"] == first.json["id"]
    assert Urge.select().count() == 1
    assert len(_rows()) == 1
    assert _urge(d).status_code == 201 and len(_rows()) == 2  # a new urge (no client_id) is a new message


def test_the_suppliers_answer_tells_the_urging_manager_with_the_new_date_once(urging):
    d = urging
    notifications.add_quota(d.user, DELAY_TEMPLATE, 1)
    urge_id = _urge(d).json["id"]
    new_date = china_date() + timedelta(days=5)
    answer = {"reason": "原材料晚到两天", "new_due_date": new_date.isoformat()}

    replied = d.manager.post(f"/mp/v1/urges/{urge_id}/reply", headers=d.supplier_auth, json=answer)
    repeated = d.manager.post(f"/mp/v1/urges/{urge_id}/reply", headers=d.supplier_auth, json=answer)

    assert replied.status_code == 200, replied.json
    assert repeated.status_code == 200  # the phone's retry is answered again
    [row] = _rows("wecom_app")
    assert row.recipient == "zhangsan"  # the manager who urged
    content = row.payload["content"]
    assert "催单回复" in content and "原材料晚到两天" in content and new_date.isoformat() in content
    assert d.task.task_no in content and d.supplier.name in content


def test_an_answer_to_an_urge_without_a_wecom_manager_goes_to_the_orders_manager(urging):
    d = urging
    StaffUser.update(wecom_userid=None).where(StaffUser.username == "manager").execute()
    StaffUser.create(username="li", display_name="李经理", password_hash="x", role="manager", wecom_userid="lisi")
    urge_id = _urge(d).json["id"]
    new_date = china_date() + timedelta(days=3)

    res = d.manager.post(f"/mp/v1/urges/{urge_id}/reply", headers=d.supplier_auth,
                         json={"reason": "设备检修", "new_due_date": new_date.isoformat()})

    assert res.status_code == 200, res.json
    replies = [n for n in _rows("wecom_app") if "催单回复" in n.payload["content"]]
    assert [n.recipient for n in replies] == ["lisi"] and new_date.isoformat() in replies[0].payload["content"]
