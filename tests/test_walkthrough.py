"""A whole supplier day, end to end through the public APIs: manager → supplier → customer.

Real MySQL + Redis + an RQ worker process on [mysql]; the embedded default on [sqlite].
WeChat and OSS are the loopback fakes; the photo goes to OSS by a signed PostObject form.
"""
import base64
import json
import uuid
from datetime import timedelta

import requests

from app.models import AuditEntry, ProgressReport
from app.services.auth import create_staff
from app.timeutil import china_date
from tests.helpers import oss_settings, picture, wechat_settings


def _wechat_login(client, fake, openid):
    code = f"code-{uuid.uuid4().hex[:8]}"
    fake.add_login_code(code, openid)
    res = client.post("/mp/v1/auth/login", json={"code": code})
    assert res.status_code == 200, res.json
    return {"Authorization": f"Bearer {res.json['token']}"}


def _ok(res, status=200):
    assert res.status_code == status, (res.status_code, res.json)
    return res.json


def test_a_whole_supplier_day(make_app, wechat_fake, oss_fake, backend, request, dbconn):
    oss_fake.reset()
    settings = {**wechat_settings(wechat_fake), **oss_settings(oss_fake)}
    app = make_app(**settings)
    client = app.test_client()
    today = china_date()

    # --- the manager sets up the order ------------------------------------------------------------
    create_staff("mgr", "password-1", "manager", display_name="张经理")
    _ok(client.post("/api/v1/auth/login", json={"username": "mgr", "password": "password-1"}))
    supplier = _ok(client.post("/api/v1/suppliers", json={"code": "SUP-STAMP", "name": "苏州精工冲压厂"}), 201)
    customer = _ok(client.post("/api/v1/customers", json={"code": "CUST-HY", "name": "上海恒远机电"}), 201)
    start, due = today - timedelta(days=2), today + timedelta(days=20)
    order = _ok(client.post("/api/v1/orders", json={
        "external_no": "ERP-WALK-1", "customer_id": customer["id"], "product_name": "钣金机箱", "quantity": 500,
        "planned_start": start.isoformat(), "due_date": due.isoformat(), "unit_price": "18.80",
        "tasks": [{"process": "冲压", "supplier_id": supplier["id"], "planned_qty": 500, "tolerance_pct": 0.02,
                   "planned_start": start.isoformat(), "due_date": due.isoformat(), "unit_cost": "6.40"}],
    }), 201)
    for state in ("confirmed", "in_production"):
        _ok(client.patch(f"/api/v1/orders/{order['id']}", json={"state": state, "reason": "客户已下单，物料到位"}))
    supplier_invite = _ok(client.post("/api/v1/invites", json={"supplier_id": supplier["id"]}), 201)["code"]
    customer_invite = _ok(client.post("/api/v1/invites", json={"customer_id": customer["id"]}), 201)["code"]
    scan_url = order["tasks"][0]["scan_url"]
    label = client.get(f"/api/v1/tasks/{order['tasks'][0]['id']}/label.png")
    assert label.status_code == 200 and label.data.startswith(b"\x89PNG")
    client.post("/api/v1/auth/logout")

    # --- the supplier binds, scans the label, uploads a photo -----------------------------------------
    sup = _wechat_login(client, wechat_fake, "o-supplier-zhou")
    assert _ok(client.post("/mp/v1/auth/bind", json={"invite_code": supplier_invite}, headers=sup))["role"] == "supplier"
    code = scan_url.rsplit("/", 1)[1]
    task = _ok(client.get(f"/mp/v1/scan/{code}", headers=sup))
    task_id = task["id"]
    assert task["task_no"] == order["tasks"][0]["task_no"]

    policy = _ok(client.post("/mp/v1/uploads/policy", json={"purpose": "node", "content_type": "image/jpeg", "size": 200000},
                             headers=sup))
    conditions = json.loads(base64.b64decode(policy["fields"]["policy"]))["conditions"]
    assert ["eq", "$key", policy["fields"]["key"]] in conditions  # signed for exactly this key
    assert policy["fields"]["key"].startswith(f"s/{supplier['id']}/")
    photo_file = ("p.jpg", picture("JPEG", (800, 600), (40, 120, 200)), "image/jpeg")
    upload = requests.post(policy["url"], data=policy["fields"], files={"file": photo_file}, timeout=5)
    assert upload.status_code == 200, upload.text
    _ok(client.post(f"/mp/v1/uploads/{policy['photo_id']}/confirm", headers=sup))
    if backend["name"] == "mysql":
        request.getfixturevalue("run_worker")(extra_env=settings)  # thumbnails and the EXIF-free copy

    # --- progress twice with one client_id, then an amendment ----------------------------------------
    first = {"client_id": str(uuid.uuid4()), "report_date": today.isoformat(), "qty_done": 120, "stage": "冲压"}
    created = _ok(client.post(f"/mp/v1/tasks/{task_id}/reports", json=first, headers=sup), 201)
    retried = _ok(client.post(f"/mp/v1/tasks/{task_id}/reports", json=first, headers=sup), 200)
    assert retried == created
    assert ProgressReport.select().count() == 1
    amend = {**first, "client_id": str(uuid.uuid4()), "qty_done": 150, "note": "下午加班"}
    amended = _ok(client.post(f"/mp/v1/tasks/{task_id}/reports", json=amend, headers=sup), 201)
    assert amended["revision"] == 2 and amended["qty_done"] == 150
    assert ProgressReport.select().count() == 1
    amendment = AuditEntry.get(AuditEntry.action == "progress.amend")
    assert json.loads(amendment.before)["qty_done"] == 120 and json.loads(amendment.after)["qty_done"] == 150

    # --- a node completed with the photo ---------------------------------------------------------------
    node = {"client_id": str(uuid.uuid4()), "note": "物料已齐", "photo_ids": [policy["photo_id"]]}
    _ok(client.post(f"/mp/v1/tasks/{task_id}/nodes/materials_ready/complete", json=node, headers=sup), 201)

    # --- the customer follows the order ----------------------------------------------------------------
    cust = _wechat_login(client, wechat_fake, "o-customer-li")
    _ok(client.post("/mp/v1/auth/bind", json={"invite_code": customer_invite}, headers=cust))
    orders = _ok(client.get("/mp/v1/orders", headers=cust))
    assert [o["order_no"] for o in orders["items"]] == [order["order_no"]]
    timeline = client.get(f"/mp/v1/orders/{order['id']}", headers=cust)
    body = _ok(timeline)
    materials = next(n for n in body["nodes"] if n["code"] == "materials_ready")
    assert (materials["state"], materials["colour"]) == ("done", "green")
    assert len(materials["photos"]) == 1
    shown = requests.get(materials["photos"][0]["url"], timeout=5)
    assert shown.status_code == 200 and shown.content.startswith(b"\xff\xd8")
    text = timeline.get_data(as_text=True)
    for secret in ("苏州精工冲压厂", "SUP-STAMP", "18.80", "6.40", f"s/{supplier['id']}/"):
        assert secret not in text, f"customer timeline leaks {secret!r}"
