"""Orders shared by several suppliers: a supplier completing an order-wide node (main process,
packed, shipped …) completes it for its own task only; the order's node is done when every open
task's part is — the customer's timeline and the manager's order show the partial state (2/3) —
and only then are the customers who subscribed to it told."""
import threading
import uuid
from types import SimpleNamespace

import pytest

from app import create_app
from app.extensions import db
from app.migrate import runner, upgrade
from app.models import AuditEntry, Customer, NodeCompletion, NodeInstance, Notification, Order, Supplier, Task
from app.services import audit, nodes
from app.timeutil import utcnow
from tests import factories as f
from tests.helpers import BACKENDS, SECRET, insert_row


@pytest.fixture
def shared(dbconn, client, auth):
    """An order in production made by three suppliers, a user of each, the customer's user and a manager."""
    suppliers = [f.supplier("苏州精工冲压厂"), f.supplier("无锡顺达焊接厂"), f.supplier("东莞宏利装配")]
    cust = f.customer()
    order = f.order(cust, suppliers)
    tasks = [Task.get((Task.order == order) & (Task.supplier == s)) for s in suppliers]
    customer_user = f.wechat_user(cust)
    return SimpleNamespace(client=client, manager=auth.login("manager"), order=order, tasks=tasks,
                           auths=[f.bearer(f.wechat_user(s)) for s in suppliers], customer_user=customer_user,
                           customer_auth=f.bearer(customer_user))


def _complete(d, n, code, client_id=None):
    return d.client.post(f"/mp/v1/tasks/{d.tasks[n].id}/nodes/{code}/complete", headers=d.auths[n],
                         json={"client_id": client_id or str(uuid.uuid4()), "note": f"第{n + 1}家完成"})


def _supplier_node(d, n, code):
    detail = d.client.get(f"/mp/v1/tasks/{d.tasks[n].id}", headers=d.auths[n])
    assert detail.status_code == 200, detail.json
    return next(node for node in detail.json["nodes"] if node["code"] == code)


def _customer_node(d, code):
    timeline = d.client.get(f"/mp/v1/orders/{d.order.id}", headers=d.customer_auth)
    assert timeline.status_code == 200, timeline.json
    return next(node for node in timeline.json["nodes"] if node["code"] == code), timeline.json


def _manager_node(d, code):
    detail = d.manager.get(f"/api/v1/orders/{d.order.id}")
    assert detail.status_code == 200, detail.json
    return next(node for node in detail.json["nodes"] if node["code"] == code)


def test_one_supplier_ships_its_part_and_the_order_ships_when_all_have(shared):
    d = shared

    first = _complete(d, 0, "shipped")
    assert first.status_code == 201, first.json
    assert (first.json["state"], first.json["colour"], first.json["can_complete"]) == ("done", "green", False)

    # The first supplier's part is done; the other two still have theirs to do.
    assert _supplier_node(d, 0, "shipped")["state"] == "done"
    other = _supplier_node(d, 1, "shipped")
    assert (other["state"], other["can_complete"], other["done_at"], other["done_by"]) == ("pending", True, None, None)

    # The customer sees the order's node in progress, 1 of 3, not shipped.
    node, timeline = _customer_node(d, "shipped")
    assert (node["state"], node["colour"], node["done_tasks"], node["total_tasks"]) == ("in_progress", "yellow", 1, 3)
    assert node["done_at"] is None and node["done_by"] is None
    assert timeline["current_node"] == "订单确认"
    assert _customer_node(d, "qc")[0]["total_tasks"] is None  # QC's node is not completed per task

    # The manager sees whose part is in.
    managed = _manager_node(d, "shipped")
    assert (managed["state"], managed["done_tasks"], managed["total_tasks"]) == ("in_progress", 1, 3)
    assert [(p["task_id"], p["state"], p["note"]) for p in managed["parts"]] == [(d.tasks[0].id, "done", "第1家完成")]

    assert _complete(d, 1, "shipped").status_code == 201
    node, _ = _customer_node(d, "shipped")
    assert (node["state"], node["done_tasks"], node["total_tasks"]) == ("in_progress", 2, 3)

    last = _complete(d, 2, "shipped")
    assert last.status_code == 201, last.json
    node, _ = _customer_node(d, "shipped")
    assert (node["state"], node["colour"], node["done_tasks"], node["done_by"]) == ("done", "green", 3, "工厂")
    assert node["done_at"].endswith("+08:00")
    managed = _manager_node(d, "shipped")
    assert managed["state"] == "done" and [p["task_id"] for p in managed["parts"]] == [t.id for t in d.tasks]

    # A part is completed once per task.
    again = _complete(d, 0, "shipped")
    assert again.status_code == 409 and again.json["error"]["code"] == "node_already_done"

    stored = NodeInstance.get((NodeInstance.order == d.order) & (NodeInstance.code == "shipped"))
    actions = [e.action for e in AuditEntry.select().where((AuditEntry.object_type == "node")
                                                          & (AuditEntry.object_id == str(stored.id)))
               .order_by(AuditEntry.id)]
    assert actions == ["node.complete", "node.complete", "node.complete", "node.done"]
    assert audit.verify() == []


def test_the_customer_is_told_once_when_the_whole_order_has_shipped(shared):
    d = shared
    subscribed = d.client.post(f"/mp/v1/orders/{d.order.id}/subscriptions", headers=d.customer_auth, json={
        "client_id": str(uuid.uuid4()), "accepted": {"TPL_NODE_DONE": "accept"}, "nodes": ["shipped"]})
    assert subscribed.status_code == 200, subscribed.json

    assert _complete(d, 0, "shipped").status_code == 201
    assert _complete(d, 1, "shipped").status_code == 201
    assert Notification.select().count() == 0  # two of three suppliers have shipped: nothing yet

    client_id = str(uuid.uuid4())
    assert _complete(d, 2, client_id=client_id, code="shipped").status_code == 201
    assert _complete(d, 2, client_id=client_id, code="shipped").status_code == 200  # the phone's retry
    [note] = Notification.select()
    assert (note.channel, note.recipient, note.template_id) == ("mp_subscribe", d.customer_user.openid, "TPL_NODE_DONE")
    data = note.payload["data"]
    assert (data["character_string1"], data["thing2"], data["phrase3"]) == (d.order.order_no, "物流发货", "已完成")
    assert d.tasks[0].supplier.name not in str(note.payload)


def test_suppliers_completing_their_parts_at_the_same_moment_end_with_the_node_done(shared, app):
    """Each locks its own task; counting the parts under the node's lock keeps both from seeing
    the other's part missing."""
    d = shared
    barrier = threading.Barrier(3)
    statuses = []

    def complete(n):
        client = app.test_client()
        barrier.wait()
        statuses.append(client.post(f"/mp/v1/tasks/{d.tasks[n].id}/nodes/packed/complete", headers=d.auths[n],
                                    json={"client_id": str(uuid.uuid4())}).status_code)

    threads = [threading.Thread(target=complete, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert statuses == [201, 201, 201]
    node = NodeInstance.get((NodeInstance.order == d.order) & (NodeInstance.code == "packed"))
    assert node.state == "done" and NodeCompletion.select().where(NodeCompletion.node == node).count() == 3


def test_a_one_supplier_order_is_done_by_its_one_task(dbconn, client):
    sup, cust = f.supplier(), f.customer()
    order = f.order(cust, [sup])
    task = Task.get(Task.order == order)
    res = client.post(f"/mp/v1/tasks/{task.id}/nodes/main_process/complete", headers=f.bearer(f.wechat_user(sup)),
                      json={"client_id": str(uuid.uuid4())})
    assert res.status_code == 201, res.json
    node = NodeInstance.get((NodeInstance.order == order) & (NodeInstance.code == "main_process"))
    assert (node.state, node.task_id) == ("done", task.id)


def test_a_node_done_before_parts_existed_stays_done(shared):
    """Migrated history: a node marked done for the whole order, with no part of this task."""
    d = shared
    (NodeInstance.update(state="done", done_at=utcnow(), done_by="张三")
     .where((NodeInstance.order == d.order) & (NodeInstance.code == "packed")).execute())
    res = _complete(d, 1, "packed")
    assert res.status_code == 409 and res.json["error"]["code"] == "node_already_done"
    assert _supplier_node(d, 1, "packed")["state"] == "done"
    assert NodeInstance.get((NodeInstance.order == d.order) & (NodeInstance.code == "packed")).state == "done"


# --- the migration ------------------------------------------------------------------------------

@pytest.mark.parametrize("backend_name", BACKENDS)
def test_the_migration_turns_earlier_completions_into_parts(fresh_database, backend_name):
    """A node one supplier completed for a whole open order shared with another goes back to in
    progress, its completion kept as that task's part; a closed order's history stays as it was."""
    create_app({"APP_ENV": "test", "SECRET_KEY": SECRET, "DATABASE_URL": fresh_database(backend_name)})
    with db.connection_context():
        runner().up(target="0003_access_control")
        sup, rival = Supplier.create(code="S1", name="冲压厂"), Supplier.create(code="S2", name="焊接厂")
        cust = Customer.create(code="C1", name="客户")
        done_at = utcnow()

        def legacy(number, state, suppliers):
            order = Order.create(order_no=f"SO-{number}", customer=cust, product_name="机箱", quantity=10,
                                 planned_start=done_at.date(), due_date=done_at.date(), state=state)
            # Tasks as that release inserted them (the model has columns later migrations add).
            tasks = [Task(id=insert_row("task", order_id=order.id, task_no=f"{order.order_no}-T{i}", process="冲压",
                                        supplier_id=s.id, planned_qty=10, planned_start=order.planned_start,
                                        due_date=order.due_date, qr_code=f"{order.order_no}-{i}",
                                        state="in_production"))
                     for i, s in enumerate(suppliers)]
            NodeInstance.insert_many([{"order": order, "seq": seq, "code": code, "name": name, "planned_date": done_at.date()}
                                      for seq, (code, name, _, _) in enumerate(nodes.DEFAULT_NODES)]).execute()
            (NodeInstance.update(state="done", done_at=done_at, done_by="张三", task=tasks[0])
             .where((NodeInstance.order == order) & (NodeInstance.code == "packed")).execute())
            return order, tasks

        running, running_tasks = legacy(1, "in_production", [sup, rival])
        closed, _ = legacy(2, "completed", [sup, rival])
        alone, _ = legacy(3, "in_production", [sup])

    assert upgrade()[:1] == ["0004_node_completions"]  # later migrations follow it

    with db.connection_context():
        def packed(order):
            return NodeInstance.get((NodeInstance.order == order) & (NodeInstance.code == "packed"))

        reopened = packed(running)
        assert (reopened.state, reopened.done_at, reopened.task_id, reopened.started_at) == (
            "in_progress", None, None, done_at)
        [part] = NodeCompletion.select().where(NodeCompletion.node == reopened)
        assert (part.task_id, part.state, part.done_at, part.done_by) == (running_tasks[0].id, "done", done_at, "张三")
        assert packed(closed).state == "done" and packed(alone).state == "done"
        assert NodeCompletion.select().count() == 3
