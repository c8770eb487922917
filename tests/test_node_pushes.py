"""Customer node pushes, end to end: a supplier completes a node through the mini-program API, a
real RQ worker sends the outbox to the WeChat fake. A customer who subscribed to that node of that
order and has an accept left gets exactly one subscribe message (node, order, date, the order's
page); without an accept the row is recorded as no_quota and WeChat is not called; a retried
completion sends nothing twice; a node nobody subscribed to sends nothing."""
import uuid
from types import SimpleNamespace

import pytest

from app.extensions import db
from app.models import Notification, Task
from tests import factories as f
from tests.helpers import wechat_settings

TEMPLATE = "TPL_NODE_DONE"


@pytest.fixture
def push(make_app, wechat_fake, run_worker):
    settings = wechat_settings(wechat_fake)
    app = make_app(**settings)
    client = app.test_client()
    with app.app_context(), db.connection_context():
        cust, supplier = f.customer(), f.supplier()
        order = f.order(cust, [supplier])
        customer = f.wechat_user(cust)
        yield SimpleNamespace(
            app=app, client=client, fake=wechat_fake, order=order, customer=customer,
            customer_auth=f.bearer(customer), supplier_auth=f.bearer(f.wechat_user(supplier)),
            task=Task.get(Task.order == order), work=lambda: run_worker({k: str(v) for k, v in settings.items()}))


def _subscribe(d, answer, nodes):
    res = d.client.post(f"/mp/v1/orders/{d.order.id}/subscriptions", headers=d.customer_auth, json={
        "client_id": str(uuid.uuid4()), "accepted": {TEMPLATE: answer}, "nodes": nodes})
    assert res.status_code == 200, res.json


def _complete(d, code, client_id=None):
    return d.client.post(f"/mp/v1/tasks/{d.task.id}/nodes/{code}/complete", headers=d.supplier_auth,
                         json={"client_id": client_id or str(uuid.uuid4()), "note": "已完成"})


def test_a_subscribed_customer_with_an_accept_gets_one_message_with_node_order_date_and_page(push):
    d = push
    _subscribe(d, "accept", ["shipped"])
    d.fake.grant_quota(d.customer.openid, TEMPLATE, 5)  # WeChat would accept more than one: a repeat would show

    client_id = str(uuid.uuid4())
    first = _complete(d, "shipped", client_id)
    assert first.status_code == 201, first.json
    assert _complete(d, "shipped", client_id).status_code == 200  # the phone's retry of the same completion
    d.work()
    assert _complete(d, "shipped").status_code == 409  # a new attempt at a done node is refused
    d.work()

    [sent] = d.fake.subscribe_messages
    assert (sent["touser"], sent["template_id"]) == (d.customer.openid, TEMPLATE)
    assert sent["page"] == f"pages/order/detail?id={d.order.id}"
    data = {k: v["value"] for k, v in sent["data"].items()}
    assert (data["character_string1"], data["thing2"], data["phrase3"]) == (d.order.order_no, "物流发货", "已完成")
    assert data["time4"][:10] == first.json["done_at"][:10]  # the day it was completed (China time)
    assert [n.status for n in Notification.select()] == ["sent"]


def test_without_an_accept_the_message_is_recorded_as_skipped_and_wechat_is_not_called(push):
    d = push
    _subscribe(d, "reject", ["shipped"])  # subscribed to the node, but declined the message
    d.fake.grant_quota(d.customer.openid, TEMPLATE, 1)  # even if WeChat would take it

    assert _complete(d, "shipped").status_code == 201
    d.work()

    [row] = Notification.select()
    assert (row.status, row.last_error) == ("no_quota", "no subscribe quota for this template")
    assert d.fake.business_requests == [] and d.fake.subscribe_messages == []


def test_a_node_the_customer_did_not_subscribe_to_sends_nothing(push):
    d = push
    _subscribe(d, "accept", ["shipped"])
    d.fake.grant_quota(d.customer.openid, TEMPLATE, 1)

    assert _complete(d, "packed").status_code == 201
    d.work()

    assert Notification.select().count() == 0
    assert d.fake.subscribe_messages == []


def test_a_page_the_mini_program_does_not_have_is_refused_by_wechat_and_recorded(make_app, wechat_fake, run_worker):
    """MP_ORDER_PAGE must name a published page: otherwise the platform refuses (41030) and the row says so."""
    settings = {**wechat_settings(wechat_fake), "MP_ORDER_PAGE": "pages/orders/nowhere"}
    app = make_app(**settings)
    client = app.test_client()
    with app.app_context(), db.connection_context():
        cust, supplier = f.customer(), f.supplier()
        order = f.order(cust, [supplier])
        customer = f.wechat_user(cust)
        d = SimpleNamespace(client=client, order=order, customer_auth=f.bearer(customer),
                            supplier_auth=f.bearer(f.wechat_user(supplier)), task=Task.get(Task.order == order))
        _subscribe(d, "accept", ["shipped"])
        wechat_fake.grant_quota(customer.openid, TEMPLATE, 1)
        assert _complete(d, "shipped").status_code == 201
        run_worker({k: str(v) for k, v in settings.items()})
        [row] = Notification.select()
        assert row.status == "failed" and row.last_error.startswith("wechat 41030")
    assert wechat_fake.subscribe_messages == []
