"""The manager's side of the nodes a supplier cannot complete alone: confirming or rejecting each
task's first article (首件) — a rejection goes back to the supplier with its reason — and recording
the order confirmation (订单确认), each audited and safe to repeat."""
import uuid
from types import SimpleNamespace

import pytest

from app.models import AuditEntry, NodeInstance, Notification, Order, Task
from app.services import audit
from app.services.auth import create_api_key
from tests import factories as f


@pytest.fixture
def plant(dbconn, client, auth):
    """An order in production made by two suppliers, a WeChat user of each, and a manager."""
    suppliers = [f.supplier("苏州精工冲压厂"), f.supplier("无锡顺达焊接厂")]
    cust = f.customer()
    order = f.order(cust, suppliers)
    users = [f.wechat_user(s) for s in suppliers]
    return SimpleNamespace(
        client=client, manager=auth.login("manager"), auth=auth, order=order, customer=cust, suppliers=suppliers,
        tasks=[Task.get((Task.order == order) & (Task.supplier == s)) for s in suppliers], users=users,
        auths=[f.bearer(u) for u in users], customer_auth=f.bearer(f.wechat_user(cust)))


def _node(order, code):
    return NodeInstance.get((NodeInstance.order == order) & (NodeInstance.code == code))


def _submit(d, n):
    res = d.client.post(f"/mp/v1/tasks/{d.tasks[n].id}/nodes/first_article/complete", headers=d.auths[n],
                        json={"client_id": str(uuid.uuid4()), "note": "首件已送检"})
    assert res.status_code == 201, res.json
    return res


def _review(d, verb, body, order=None, code="first_article"):
    order = order or d.order
    return d.manager.post(f"/api/v1/orders/{order.id}/nodes/{_node(order, code).id}/{verb}", json=body)


def _supplier_view(d, n):
    detail = d.client.get(f"/mp/v1/tasks/{d.tasks[n].id}", headers=d.auths[n]).json
    return next(node for node in detail["nodes"] if node["code"] == "first_article")


def _domain_entries():
    return AuditEntry.select().where(AuditEntry.chain != "chains")  # not the chain registry's entries


def _node_entries(order, code):
    node = _node(order, code)
    return [e.action for e in AuditEntry.select().where((AuditEntry.object_type == "node")
                                                       & (AuditEntry.object_id == str(node.id))).order_by(AuditEntry.id)]


def test_the_manager_confirms_each_suppliers_first_article(plant):
    d = plant
    _submit(d, 0)
    _submit(d, 1)
    assert _node(d.order, "first_article").state == "awaiting_confirmation"

    # Two await: the manager says whose.
    unclear = _review(d, "confirm", {})
    assert unclear.status_code == 422 and unclear.json["error"]["code"] == "task_required"
    assert unclear.json["error"]["task_ids"] == [d.tasks[0].id, d.tasks[1].id]

    first = _review(d, "confirm", {"task_id": d.tasks[0].id, "note": "尺寸合格"})
    assert first.status_code == 200, first.json
    assert (first.json["state"], first.json["colour"], first.json["done_tasks"], first.json["total_tasks"]) == (
        "awaiting_confirmation", "blue", 1, 2)
    assert {p["task_id"]: p["state"] for p in first.json["parts"]} == {d.tasks[0].id: "done",
                                                                      d.tasks[1].id: "awaiting_confirmation"}
    assert first.json["parts"][0]["reviewed_by"] == "张经理"
    assert _supplier_view(d, 0)["state"] == "done"
    assert _supplier_view(d, 1)["state"] == "awaiting_confirmation"

    second = _review(d, "confirm", {"task_id": d.tasks[1].id})
    assert second.status_code == 200
    assert (second.json["state"], second.json["colour"], second.json["done_tasks"]) == ("done", "green", 2)

    # A repeat changes nothing.
    assert _review(d, "confirm", {"task_id": d.tasks[1].id}).json == second.json
    assert _review(d, "confirm", {}).json == second.json
    assert _node_entries(d.order, "first_article") == ["node.complete", "node.complete", "node.confirm", "node.confirm",
                                                       "node.done"]
    entry = AuditEntry.select().where(AuditEntry.action == "node.confirm").order_by(AuditEntry.id).first()
    assert entry.reason == "尺寸合格" and entry.actor_label == "张经理"
    assert audit.verify() == []


def test_a_rejected_first_article_goes_back_to_its_supplier_with_the_reason(plant):
    d = plant
    _submit(d, 0)

    rejected = _review(d, "reject", {"task_id": d.tasks[0].id, "reason": "  毛刺超标，请返修后重新提交 "})
    assert rejected.status_code == 200, rejected.json
    assert (rejected.json["state"], rejected.json["colour"]) == ("in_progress", "yellow")
    [part] = rejected.json["parts"]
    assert (part["state"], part["colour"], part["reject_reason"]) == ("rejected", "yellow", "毛刺超标，请返修后重新提交")

    # The supplier sees why, and may submit again.
    mine = _supplier_view(d, 0)
    assert (mine["state"], mine["colour"], mine["can_complete"]) == ("in_progress", "yellow", True)
    assert mine["reject_reason"] == "毛刺超标，请返修后重新提交" and mine["rejected_at"].endswith("+08:00")
    assert _supplier_view(d, 1)["reject_reason"] is None  # the other supplier's first article is its own
    # … and its WeChat user is told.
    [note] = Notification.select()
    assert (note.channel, note.recipient, note.template_id) == ("mp_subscribe", d.users[0].openid, "TPL_NODE_DONE")
    data = note.payload["data"]
    assert (data["character_string1"], data["thing2"], data["phrase3"]) == (d.tasks[0].task_no, "生产启动/首件确认", "被退回")
    assert "毛刺超标" in data["thing5"]

    # Rejecting again changes nothing and tells nobody twice; a rejected article is not confirmed.
    assert _review(d, "reject", {"task_id": d.tasks[0].id, "reason": "毛刺超标"}).json == rejected.json
    assert Notification.select().count() == 1
    refused = _review(d, "confirm", {"task_id": d.tasks[0].id})
    assert refused.status_code == 409 and refused.json["error"]["code"] == "first_article_rejected"

    # Submitted again, then confirmed.
    again = _submit(d, 0)
    assert again.json["state"] == "awaiting_confirmation" and again.json["reject_reason"] is None
    confirmed = _review(d, "confirm", {})
    assert confirmed.status_code == 200 and confirmed.json["parts"][0]["state"] == "done"
    late = _review(d, "reject", {"task_id": d.tasks[0].id, "reason": "再看一下"})
    assert late.status_code == 409 and late.json["error"]["code"] == "first_article_confirmed"
    assert _node_entries(d.order, "first_article") == ["node.complete", "node.reject", "node.complete", "node.confirm"]
    reject_entry = AuditEntry.get(AuditEntry.action == "node.reject")
    assert reject_entry.reason == "毛刺超标，请返修后重新提交"
    assert audit.verify() == []


def test_the_order_confirmation_is_recorded_once(plant):
    d = plant
    draft = f.order(d.customer, d.suppliers, state="draft")

    res = _review(d, "confirm", {"note": "客户已签回订单"}, order=draft, code="confirmed")
    assert res.status_code == 200, res.json
    assert (res.json["code"], res.json["state"], res.json["colour"]) == ("confirmed", "done", "green")
    assert res.json["done_by"] == "张经理" and res.json["total_tasks"] is None
    assert Order.get_by_id(draft.id).state == "confirmed"
    assert all(t.state == "pending" for t in Task.select().where(Task.order == draft))
    entries = list(_domain_entries().order_by(AuditEntry.id))
    assert [e.action for e in entries] == ["order.state", "node.done"] and entries[0].reason == "客户已签回订单"

    assert _review(d, "confirm", {}, order=draft, code="confirmed").json == res.json
    assert _domain_entries().count() == 2

    refused = _review(d, "reject", {"reason": "不对"}, order=draft, code="confirmed")
    assert refused.status_code == 403 and refused.json["error"]["code"] == "node_not_manager_owned"


@pytest.mark.parametrize("code", ["qc", "shipped"])
def test_nodes_others_complete_are_not_confirmed_here(plant, code):
    res = _review(plant, "confirm", {}, code=code)
    assert res.status_code == 403 and res.json["error"]["code"] == "node_not_manager_owned"
    assert _node(plant.order, code).state == "pending" and AuditEntry.select().count() == 0


def test_bad_reviews_are_refused_and_change_nothing(plant):
    d = plant
    missing = _review(d, "confirm", {"task_id": d.tasks[0].id})
    assert missing.status_code == 409 and missing.json["error"]["code"] == "first_article_missing"
    assert _review(d, "confirm", {}).json["error"]["code"] == "first_article_missing"
    _submit(d, 0)
    blank = _review(d, "reject", {"reason": "   "})
    assert blank.status_code == 422 and blank.json["error"]["field"] == "reason"
    assert _review(d, "reject", {}).status_code == 422

    other = f.order(d.customer, d.suppliers)
    foreign_task = Task.get(Task.order == other)
    assert _review(d, "confirm", {"task_id": foreign_task.id}).status_code == 404
    node = _node(d.order, "first_article")
    assert d.manager.post(f"/api/v1/orders/{other.id}/nodes/{node.id}/confirm", json={}).status_code == 404
    assert d.manager.post(f"/api/v1/orders/{d.order.id}/nodes/999999/confirm", json={}).status_code == 404

    closed = f.order(d.customer, d.suppliers, state="cancelled")
    shut = _review(d, "confirm", {}, order=closed)
    assert shut.status_code == 409 and shut.json["error"]["code"] == "order_closed"
    assert [e.action for e in _domain_entries()] == ["node.complete"]
    assert _node(d.order, "first_article").state == "in_progress"


def test_only_managers_review_first_articles(plant, client):
    d = plant
    _submit(d, 0)
    path = f"/api/v1/orders/{d.order.id}/nodes/{_node(d.order, 'first_article').id}/confirm"
    _, key = create_api_key("erp-sync", ("orders", "invites"))
    assert client.post(path, json={}, headers={"Authorization": f"Bearer {key}"}).status_code == 403
    assert client.post(path, json={}, headers=d.auths[0]).status_code == 401
    f.staff_client(client, "qc")
    assert client.post(path, json={}).status_code == 403
    assert _node(d.order, "first_article").state == "in_progress"
