"""For every object route: a user of another supplier, another customer, or nobody gets 404/401,
and nothing changes. The owner's own call is checked too, so a 404 cannot come from a bad request."""
import uuid

import pytest

from app.models import (
    AuditEntry,
    ClientRequest,
    NodeInstance,
    NodeSubscription,
    Photo,
    ProgressReport,
    SubscribeQuota,
    Task,
    TaskIssue,
    Urge,
)
from app.services.auth import create_api_key
from app.timeutil import china_date
from tests import factories


@pytest.fixture
def world(dbconn):
    """Two suppliers and two customers, each with their own order, task, urge and photo."""
    s1, s2 = factories.supplier("甲厂"), factories.supplier("乙厂")
    c1, c2 = factories.customer("甲客户"), factories.customer("乙客户")
    o1, o2 = factories.order(c1, [s1]), factories.order(c2, [s2])
    t1 = Task.get(Task.order == o1)
    Task.get(Task.order == o2)
    photo = Photo.create(storage_key=f"s/{s1.id}/x/p.jpg", supplier=s1, purpose="node", status="pending")
    return {
        "task": t1, "order": o1, "urge": Urge.create(task=t1, message="请加快"), "photo": photo,
        "users": {"owner_supplier": factories.wechat_user(s1), "other_supplier": factories.wechat_user(s2),
                  "owner_customer": factories.wechat_user(c1), "other_customer": factories.wechat_user(c2)},
    }


def _mp_routes(w):
    """(owner, method, path, body) for every mini-program route that names an object."""
    t, o = w["task"], w["order"]
    cid = lambda: str(uuid.uuid4())  # noqa: E731
    return [
        ("owner_supplier", "GET", f"/mp/v1/tasks/{t.id}", None),
        ("owner_supplier", "GET", f"/mp/v1/scan/{t.qr_code}", None),
        ("owner_supplier", "POST", f"/mp/v1/tasks/{t.id}/reports",
         {"client_id": cid(), "report_date": china_date().isoformat(), "qty_done": 10}),
        ("owner_supplier", "POST", f"/mp/v1/tasks/{t.id}/nodes/materials_ready/complete", {"client_id": cid()}),
        ("owner_supplier", "POST", f"/mp/v1/tasks/{t.id}/issues",
         {"client_id": cid(), "kind": "equipment_failure", "description": "冲床故障"}),
        ("owner_supplier", "POST", f"/mp/v1/urges/{w['urge'].id}/reply",
         {"reason": "模具维修", "new_due_date": china_date().isoformat()}),
        ("owner_supplier", "POST", f"/mp/v1/uploads/{w['photo'].id}/confirm", None),
        ("owner_customer", "GET", f"/mp/v1/orders/{o.id}", None),
        ("owner_customer", "POST", f"/mp/v1/orders/{o.id}/subscriptions",
         {"accepted": {"TPL_NODE_DONE": "accept"}, "nodes": ["shipped"], "client_id": cid()}),
    ]


def _state():
    """Everything the routes above could change."""
    return {
        "reports": ProgressReport.select().count(), "issues": TaskIssue.select().count(),
        "requests": ClientRequest.select().count(), "audit": AuditEntry.select().count(),
        "subs": NodeSubscription.select().count(), "quota": [q.remaining for q in SubscribeQuota.select()],
        "urges": [(u.replied_at, u.new_due_date) for u in Urge.select()],
        "nodes": [(n.id, n.state) for n in NodeInstance.select().order_by(NodeInstance.id)],
        "tasks": [(t.id, t.qty_done, t.eta_date) for t in Task.select().order_by(Task.id)],
        "photos": [(p.id, p.status, p.size) for p in Photo.select()],
    }


def _call(client, method, path, body, user):
    headers = factories.bearer(user) if user is not None else {}
    return client.open(path, method=method, json=body, headers=headers)


def test_strangers_get_404_and_nobody_gets_401_on_every_object_route(client, world):
    routes = _mp_routes(world)
    strangers = {"owner_supplier": ["other_supplier", "owner_customer", "other_customer"],
                 "owner_customer": ["other_customer", "owner_supplier", "other_supplier"]}
    for owner, method, path, body in routes:
        for who in strangers[owner] + [None]:
            before = _state()
            res = _call(client, method, path, body, world["users"].get(who))
            expected = 401 if who is None else 404
            assert res.status_code == expected, (who, method, path, res.status_code, res.json)
            assert res.json["error"]["code"] in ("unauthorized", "not_found")
            assert _state() == before, (who, method, path)


def test_the_owner_reaches_every_object_route(client, world):
    """The same requests succeed for the owner, so the refusals above are about ownership."""
    for owner, method, path, body in _mp_routes(world):
        res = _call(client, method, path, body, world["users"][owner])
        if path.endswith("/confirm"):
            assert res.status_code == 409  # the owner sees it; the upload just never arrived
        else:
            assert res.status_code in (200, 201), (method, path, res.json)


def test_staff_object_routes_refuse_mini_program_tokens_and_strangers(client, world):
    o, t = world["order"], world["task"]
    routes = [("GET", f"/api/v1/orders/{o.id}", None),
              ("PATCH", f"/api/v1/orders/{o.id}", {"state": "on_hold", "reason": "试探"}),
              ("GET", f"/api/v1/tasks/{t.id}/label.png", None),
              ("GET", f"/api/v1/orders/{o.id}/labels.pdf", None),
              ("POST", f"/api/v1/tasks/{t.id}/urges", {"message": "快"})]
    for method, path, body in routes:
        for user in (world["users"]["owner_supplier"], world["users"]["owner_customer"], None):
            before = _state()
            res = _call(client, method, path, body, user)
            assert res.status_code == 401, (method, path, res.json)
            assert _state() == before
    _, key = create_api_key("erp")
    res = client.get("/api/v1/orders/999999", headers={"Authorization": f"Bearer {key}"})
    assert res.status_code == 404 and res.json["error"]["code"] == "not_found"
