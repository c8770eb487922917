"""For every object route: a user of another supplier, another customer, or nobody gets 404/401,
and nothing changes. The owner's own call is checked too, so a 404 cannot come from a bad request.
Staff routes refuse mini-program tokens; among staff, each quality and materials route admits only
its roles (dispositions and releases are QC's). A customer never sees a failed inspection, a
nonconformance or material."""
import uuid

import pytest

from app.models import (
    AuditEntry,
    Batch,
    BatchMaterial,
    ClientRequest,
    Inspection,
    InspectionItem,
    InspectionTemplate,
    MaterialIssue,
    MaterialItem,
    MaterialLot,
    MaterialReturn,
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
    # Quality and materials: a QC template (one pass/fail item), a batch of t1, steel issued to t1.
    template = InspectionTemplate.create(name="通用检验")
    InspectionTemplate.update(family_id=template.id).where(InspectionTemplate.id == template.id).execute()
    item = InspectionItem.create(template=template, seq=1, name="外观", check_type="pass_fail")
    batch = Batch.create(task=t1, batch_no=f"{t1.task_no}-B01", qty=100, qr_code="B.matrix-own-1")
    steel = MaterialItem.create(code="ST-1", name="冷轧钢板", unit="kg")
    lot = MaterialLot.create(lot_no="L-1", item=steel, quantity=500, qr_code="m.matrix-lot-1")
    issue = MaterialIssue.create(lot=lot, item=steel, task=t1, supplier=s1, qty=100, unit="kg")
    return {
        "task": t1, "order": o1, "urge": Urge.create(task=t1, message="请加快"), "photo": photo,
        "batch": batch, "item": item, "lot": lot, "issue": issue,
        "users": {"owner_supplier": factories.wechat_user(s1), "other_supplier": factories.wechat_user(s2),
                  "owner_customer": factories.wechat_user(c1), "other_customer": factories.wechat_user(c2)},
    }


def _mp_routes(w):
    """(owner, method, path, body) for every mini-program route that names an object."""
    t, o, b = w["task"], w["order"], w["batch"]
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
        # Quality: batches, their shipments and the supplier's self-checks.
        ("owner_supplier", "GET", f"/mp/v1/tasks/{t.id}/batches", None),
        ("owner_supplier", "POST", f"/mp/v1/tasks/{t.id}/batches", {"client_id": cid(), "qty": 10}),
        ("owner_supplier", "GET", f"/mp/v1/tasks/{t.id}/inspection-template?kind=final", None),
        ("owner_supplier", "GET", f"/mp/v1/batches/{b.id}", None),
        ("owner_supplier", "GET", f"/mp/v1/batches/scan/{b.qr_code}", None),
        ("owner_supplier", "POST", f"/mp/v1/batches/{b.id}/ship", {"client_id": cid(), "qty": 1}),
        ("owner_supplier", "POST", f"/mp/v1/batches/{b.id}/self-checks",
         {"client_id": cid(), "kind": "patrol", "sample_qty": 5,
          "readings": [{"item_id": w["item"].id, "passed": True}]}),
        # Materials: the task's balance, a lot label, the receipt, the lots a batch used.
        ("owner_supplier", "GET", f"/mp/v1/tasks/{t.id}/materials", None),
        ("owner_supplier", "GET", f"/mp/v1/materials/scan/{w['lot'].qr_code}", None),
        ("owner_supplier", "POST", f"/mp/v1/material-issues/{w['issue'].id}/receive", None),
        ("owner_supplier", "PUT", f"/mp/v1/batches/{b.id}/materials", {"lots": [{"lot_id": w["lot"].id, "qty": 1}]}),
        ("owner_supplier", "GET", f"/mp/v1/batches/{b.id}/materials", None),
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
        "batches": [(b.id, b.qty, b.qty_shipped, b.qty_received, b.status) for b in Batch.select().order_by(Batch.id)],
        "inspections": Inspection.select().count(), "batch_lots": BatchMaterial.select().count(),
        "material_issues": [(i.id, i.received_at) for i in MaterialIssue.select()], "returns": MaterialReturn.select().count(),
    }


# Routes only a supplier may call at all: a customer hears "wrong role" (403) before any object.
SUPPLIER_ONLY = ("/mp/v1/batches/scan/",)


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
            if who and who.endswith("customer") and path.startswith(SUPPLIER_ONLY):
                expected = 403
            assert res.status_code == expected, (who, method, path, res.status_code, res.json)
            assert res.json["error"]["code"] in ("unauthorized", "not_found", "wrong_role")
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
    routes += [(method, path, body) for _, method, path, body in _staff_quality_routes(world)]
    for method, path, body in routes:
        for user in (world["users"]["owner_supplier"], world["users"]["owner_customer"], None):
            before = _state()
            res = _call(client, method, path, body, user)
            assert res.status_code == 401, (method, path, res.json)
            assert _state() == before
    _, key = create_api_key("erp")
    res = client.get("/api/v1/orders/999999", headers={"Authorization": f"Bearer {key}"})
    assert res.status_code == 404 and res.json["error"]["code"] == "not_found"


def _staff_quality_routes(w):
    """(roles allowed, method, path, body) of every staff quality and materials route naming an
    object or changing something: dispositions, releases, inspections and NC edits are QC's;
    receipts the manager's and QC's; material writes the manager's; reading is for all staff."""
    t, b, s = w["task"], w["batch"], w["task"].supplier_id
    read = ("manager", "qc", "executive")
    return [
        (read, "GET", "/api/v1/inspection-templates", None),
        (("qc",), "POST", "/api/v1/inspection-templates",
         {"name": "终检", "items": [{"name": "尺寸", "check_type": "pass_fail"}]}),
        (read, "GET", f"/api/v1/tasks/{t.id}/batches", None),
        (read, "GET", f"/api/v1/batches/{b.id}", None),
        (("manager", "qc"), "POST", f"/api/v1/batches/{b.id}/receipts", {"qty": 1}),
        (("qc",), "POST", f"/api/v1/batches/{b.id}/inspections",
         {"kind": "final", "sample_qty": 5, "readings": [{"item_id": w["item"].id, "passed": True}]}),
        (("qc",), "POST", f"/api/v1/batches/{b.id}/disposition", {"disposition": "scrap", "reason": "试探"}),
        (("qc",), "POST", f"/api/v1/batches/{b.id}/release", {"reason": "试探"}),
        (read, "GET", "/api/v1/inspections", None),
        (read, "GET", "/api/v1/nonconformances", None),
        (read, "GET", f"/api/v1/suppliers/{s}/quality", None),
        (("manager",), "POST", f"/api/v1/material-issues/{w['issue'].id}/returns", {"good_qty": 1}),
        (("manager",), "PUT", f"/api/v1/batches/{b.id}/materials", {"lots": [{"lot_id": w["lot"].id, "qty": 1}]}),
        (read, "GET", f"/api/v1/tasks/{t.id}/materials", None),
        (read, "GET", f"/api/v1/suppliers/{s}/materials", None),
        (read, "GET", f"/api/v1/batches/{b.id}/trace", None),
    ]


def test_each_staff_quality_and_materials_route_admits_only_its_roles(client, world):
    """A role outside a route's roles is refused (403) with nothing changed; a role inside it is
    not refused for its role (the request itself may still be refused, e.g. an unfrozen batch)."""
    staff = {role: factories.staff_client(client.application.test_client(), role)
             for role in ("manager", "qc", "executive")}
    for allowed, method, path, body in _staff_quality_routes(world):
        for role, session in staff.items():
            if role in allowed:
                continue
            before = _state()
            res = session.open(path, method=method, json=body)
            assert res.status_code == 403, (role, method, path, res.status_code, res.json)
            assert _state() == before, (role, method, path)
    for allowed, method, path, body in _staff_quality_routes(world):
        res = staff[allowed[0]].open(path, method=method, json=body)
        assert res.status_code not in (401, 403, 404), (allowed[0], method, path, res.json)


def test_a_customer_never_sees_a_failed_inspection_a_nonconformance_or_material(client, world):
    qc = factories.staff_client(client.application.test_client(), "qc")
    b = world["batch"]
    failed = qc.post(f"/api/v1/batches/{b.id}/inspections", json={
        "kind": "first_article", "sample_qty": 5, "readings": [{"item_id": world["item"].id, "passed": False}],
        "nc_description": "外观划伤"})
    assert failed.status_code == 201 and failed.json["result"] == "fail" and failed.json["nonconformance_id"]
    customer, stranger = world["users"]["owner_customer"], world["users"]["other_customer"]
    timeline = _call(client, "GET", f"/mp/v1/orders/{world['order'].id}", None, customer)
    assert timeline.status_code == 200
    qc_node = next(n for n in timeline.json["nodes"] if n["code"] == "qc")
    assert qc_node["inspections"] == [] and qc_node["photos"] == []
    assert "外观划伤" not in str(timeline.json) and "nonconformance" not in str(timeline.json)
    for user in (customer, stranger):
        for path in (f"/mp/v1/batches/{b.id}", f"/mp/v1/batches/{b.id}/materials",
                     f"/mp/v1/tasks/{world['task'].id}/materials", f"/mp/v1/tasks/{world['task'].id}/batches"):
            assert _call(client, "GET", path, None, user).status_code == 404, path
        assert _call(client, "GET", "/mp/v1/materials", None, user).status_code == 403
        for path in ("/api/v1/nonconformances", "/api/v1/inspections", f"/api/v1/batches/{b.id}/trace"):
            assert _call(client, "GET", path, None, user).status_code == 401, path
