"""The customer's view in the mini program: my orders, the node timeline with QC photos (supplier
identity, costs, people and notes masked), and subscriptions from wx.requestSubscribeMessage."""
import json
import uuid
from datetime import timedelta
from types import SimpleNamespace

import pytest

from app.models import NodeInstance, NodeSubscription, Order, SubscribeQuota, Task
from app.services.notifications import remaining_quota
from app.timeutil import china_date
from tests import factories as f
from tests.helpers import ready_photo
from tests.sqlcount import statements


@pytest.fixture
def shop(dbconn, client):
    """A customer's order made by one supplier, who has reported and completed a node with a photo."""
    sup, cust = f.supplier("昆山宏达钣金厂"), f.customer()
    order = f.order(cust, [sup])
    task = Task.get(Task.order == order)
    supplier_user = f.wechat_user(sup)
    customer_user = f.wechat_user(cust)
    d = SimpleNamespace(client=client, supplier=sup, customer=cust, order=order, task=task,
                        supplier_auth=f.bearer(supplier_user), user=customer_user, auth=f.bearer(customer_user),
                        today=china_date())
    photo = ready_photo(sup, "node")
    report = client.post(f"/mp/v1/tasks/{task.id}/reports", headers=d.supplier_auth, json={
        "client_id": str(uuid.uuid4()), "report_date": d.today.isoformat(), "qty_done": 400,
        "note": "模具由王师傅修好", "stage": "冲压"})
    assert report.status_code == 201, report.json
    node = client.post(f"/mp/v1/tasks/{task.id}/nodes/materials_ready/complete", headers=d.supplier_auth, json={
        "client_id": str(uuid.uuid4()), "note": "王师傅签收", "photo_ids": [photo.id]})
    assert node.status_code == 201, node.json
    d.photo = photo
    return d


def test_the_timeline_shows_nodes_and_photos_but_masks_the_supplier(shop):
    d = shop
    res = d.client.get(f"/mp/v1/orders/{d.order.id}", headers=d.auth)

    assert res.status_code == 200, res.json
    body = res.json
    assert (body["order_no"], body["progress"]) == (d.order.order_no, 40)
    assert body["due_date"] == d.order.due_date.isoformat() and body["late"] is False
    nodes = {n["code"]: n for n in body["nodes"]}
    assert list(nodes) == ["confirmed", "materials_ready", "first_article", "main_process", "qc", "packed", "shipped"]
    done = nodes["materials_ready"]
    assert (done["state"], done["colour"], done["done_by"]) == ("done", "green", "工厂")
    assert done["done_at"].endswith("+08:00")
    assert nodes["qc"]["colour"] == "grey" and nodes["qc"]["done_at"] is None
    assert body["current_node"] == "订单确认"
    # The photo is the EXIF-stripped display copy, never the original.
    [photo] = done["photos"]
    assert photo["id"] == d.photo.id and d.photo.display_key in photo["url"]
    assert d.photo.storage_key not in photo["url"]
    assert d.client.get(photo["url"].replace("http://127.0.0.1:5000", "")).status_code == 200

    text = json.dumps(body, ensure_ascii=False)
    for secret in (d.supplier.name, d.supplier.code, "12.50", "3.20", "unit_price", "unit_cost", "supplier",
                   "测试用户", "王师傅", d.task.task_no):
        assert secret not in text, secret


def test_unprocessed_photos_are_not_shown_to_customers(shop):
    d = shop
    pending = ready_photo(d.supplier, "node")
    pending.status, pending.display_key = "pending", None
    pending.save()
    node = NodeInstance.get((NodeInstance.order == d.order) & (NodeInstance.code == "materials_ready"))
    pending.node, pending.customer_visible = node, True
    pending.save()
    photos = d.client.get(f"/mp/v1/orders/{d.order.id}", headers=d.auth).json["nodes"][1]["photos"]
    assert [p["id"] for p in photos] == [d.photo.id]


def test_my_orders_list_progress_state_and_lateness(shop):
    d = shop
    late = f.order(d.customer, [d.supplier], days_before=30, days_after=-2)
    f.order(d.customer, [d.supplier], state="draft")
    f.order(f.customer(), [d.supplier])  # someone else's

    res = d.client.get("/mp/v1/orders", headers=d.auth)

    assert res.status_code == 200, res.json
    items = {i["id"]: i for i in res.json["items"]}
    assert set(items) == {d.order.id, late.id} and res.json["total"] == 2
    assert items[late.id]["late"] is True and items[d.order.id]["late"] is False
    assert items[d.order.id]["progress"] == 40 and items[d.order.id]["unit"] == "件"
    assert [i["id"] for i in res.json["items"]] == [late.id, d.order.id]  # by due date
    only = d.client.get("/mp/v1/orders?state=completed", headers=d.auth).json
    assert only["total"] == 0
    assert d.client.get("/mp/v1/orders?state=draft", headers=d.auth).status_code == 422
    assert "昆山宏达" not in res.text and "12.50" not in res.text


def test_an_eta_later_than_the_due_date_makes_the_order_late(shop):
    d = shop
    eta = d.order.due_date + timedelta(days=4)
    Task.update(eta_date=eta).where(Task.id == d.task.id).execute()
    body = d.client.get(f"/mp/v1/orders/{d.order.id}", headers=d.auth).json
    assert body["eta_date"] == eta.isoformat() and body["late"] is True


@pytest.mark.parametrize("caller", ["other_customer", "supplier", "nobody", "draft"])
def test_nobody_but_the_orders_customer_sees_it(shop, caller):
    d = shop
    order_id = d.order.id
    auth = {"other_customer": f.bearer(f.wechat_user(f.customer())), "supplier": d.supplier_auth, "nobody": {},
            "draft": d.auth}[caller]
    if caller == "draft":
        order_id = f.order(d.customer, [d.supplier], state="draft").id
    expected = 401 if caller == "nobody" else 404
    for method, path, body in [
        ("get", f"/mp/v1/orders/{order_id}", None),
        ("post", f"/mp/v1/orders/{order_id}/subscriptions",
         {"accepted": {"TPL_NODE_DONE": "accept"}, "nodes": ["qc"], "client_id": str(uuid.uuid4())}),
    ]:
        res = getattr(d.client, method)(path, json=body, headers=auth)
        assert res.status_code == expected, (path, res.json)
    assert SubscribeQuota.select().count() == 0 and NodeSubscription.select().count() == 0


def _subscribe(d, body, order=None):
    body = {"client_id": str(uuid.uuid4()), **body}
    return d.client.post(f"/mp/v1/orders/{(order or d.order).id}/subscriptions", json=body, headers=d.auth)


def test_subscriptions_add_one_send_per_accept(shop):
    d = shop
    first = _subscribe(d, {"accepted": {"TPL_NODE_DONE": "accept", "TPL_DELAY": "reject"}, "nodes": ["qc", "shipped"]})
    assert first.status_code == 200, first.json
    assert first.json == {"quota": {"TPL_NODE_DONE": 1, "TPL_DELAY": 0}, "nodes": ["qc", "shipped"]}

    again = _subscribe(d, {"accepted": {"TPL_NODE_DONE": "acceptWithAudio", "TPL_DELAY": "accept"}, "nodes": ["qc"]})
    assert again.json == {"quota": {"TPL_NODE_DONE": 2, "TPL_DELAY": 1}, "nodes": ["qc", "shipped"]}
    assert NodeSubscription.select().count() == 2

    # A retried request with its client_id counts its accepts once.
    body = {"accepted": {"TPL_NODE_DONE": "accept"}, "nodes": [], "client_id": str(uuid.uuid4())}
    assert _subscribe(d, body).json["quota"] == {"TPL_NODE_DONE": 3}
    assert _subscribe(d, body).json["quota"] == {"TPL_NODE_DONE": 3}
    assert remaining_quota(d.user, "TPL_NODE_DONE") == 3

    # Subscriptions are per order.
    other = f.order(d.customer, [d.supplier])
    assert _subscribe(d, {"accepted": {}, "nodes": ["packed"]}, other).json["nodes"] == ["packed"]
    assert NodeSubscription.select().where(NodeSubscription.order == d.order).count() == 2


@pytest.mark.parametrize("body, field, code", [
    ({"accepted": {"TPL_NODE_DONE": "accept"}, "nodes": ["qc", "painting", "welding"]}, "nodes", "unknown_nodes"),
    ({"accepted": {"TPL_INVENTED": "accept"}, "nodes": []}, "accepted", "unknown_template"),
    ({"accepted": {"t1": "maybe"}, "nodes": []}, "accepted", "validation_error"),
    ({"accepted": {"t" * 65: "accept"}, "nodes": []}, "accepted", "validation_error"),
    ({"accepted": {f"t{i}": "accept" for i in range(6)}, "nodes": []}, "accepted", "validation_error"),
    ({"nodes": ["qc"]}, "accepted", "validation_error"),
    ({"accepted": {}, "nodes": [], "client_id": None}, "client_id", "validation_error"),
])
def test_bad_subscriptions_are_refused_with_nothing_stored(shop, body, field, code):
    res = _subscribe(shop, body)
    assert res.status_code == 422, res.json
    assert res.json["error"]["code"] == code and res.json["error"]["field"] == field
    if code == "unknown_nodes":
        assert res.json["error"]["nodes"] == ["painting", "welding"] and "painting" in res.json["error"]["message"]
    assert SubscribeQuota.select().count() == 0 and NodeSubscription.select().count() == 0


def test_customer_routes_need_a_customer(shop):
    d = shop
    assert d.client.get("/mp/v1/orders").status_code == 401
    res = d.client.get("/mp/v1/orders", headers=d.supplier_auth)
    assert res.status_code == 403 and res.json["error"]["code"] == "wrong_role"
    assert Order.select().count() == 1


def _queries_for(client, path, headers):
    status, seen = statements(lambda: client.get(path, headers=headers).status_code)
    assert status == 200
    return len(seen)


def test_the_order_list_costs_the_same_queries_for_2_or_12_orders(shop):
    d = shop
    f.order(d.customer, [d.supplier])
    few = _queries_for(d.client, "/mp/v1/orders", d.auth)
    for _ in range(10):
        f.order(d.customer, [d.supplier])
    many = _queries_for(d.client, "/mp/v1/orders", d.auth)
    assert many == few
