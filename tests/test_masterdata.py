"""Master data through the manager API: suppliers, customers, invites, node templates."""
from datetime import timedelta

from app.models import Customer, Invite, Supplier
from app.timeutil import china_date
from tests import factories
from tests.helpers import order_body


def test_manager_adds_suppliers_and_customers_and_lists_them(manager):
    res = manager.post("/api/v1/suppliers",
                       json={"code": "SUP-STAMP", "name": "苏州精工冲压厂", "contact_phone": "0512-66668888"})
    assert res.status_code == 201, res.json
    assert res.json["name"] == "苏州精工冲压厂" and res.json["active"] is True
    assert manager.post("/api/v1/customers", json={"code": "CUST-HY", "name": "上海恒远机电"}).status_code == 201

    page = manager.get("/api/v1/suppliers?page=1&per_page=20").json
    assert page["total"] == 1 and page["items"][0]["code"] == "SUP-STAMP"
    assert manager.get("/api/v1/customers?q=恒远").json["total"] == 1


def test_a_duplicate_code_is_refused_and_nothing_changes(manager):
    manager.post("/api/v1/suppliers", json={"code": "SUP-1", "name": "甲厂"})
    res = manager.post("/api/v1/suppliers", json={"code": "SUP-1", "name": "乙厂"})
    assert res.status_code == 409 and res.json["error"]["code"] == "duplicate_code"
    assert Supplier.get(Supplier.code == "SUP-1").name == "甲厂"


def test_bad_master_data_names_the_field(manager):
    res = manager.post("/api/v1/suppliers", json={"code": "坏 编码", "name": "甲厂"})
    assert res.status_code == 422 and res.json["error"]["field"] == "code"
    res = manager.post("/api/v1/customers", json={"code": "C1", "name": "x" * 101})
    assert res.status_code == 422 and res.json["error"]["field"] == "name"
    assert Supplier.select().count() == 0 and Customer.select().count() == 0


def test_qc_staff_cannot_change_master_data(auth):
    qc = auth.login("qc")
    res = qc.post("/api/v1/suppliers", json={"code": "SUP-1", "name": "甲厂"})
    assert res.status_code == 403 and Supplier.select().count() == 0
    assert qc.get("/api/v1/suppliers").status_code == 200


def test_an_invite_from_the_api_binds_a_wechat_user(manager, dbconn):
    supplier = factories.supplier()
    res = manager.post("/api/v1/invites", json={"supplier_id": supplier.id, "max_uses": 2})
    assert res.status_code == 201, res.json
    assert res.json["kind"] == "supplier" and res.json["party"]["id"] == supplier.id

    user = factories.wechat_user()
    bound = manager.post("/mp/v1/auth/bind", json={"invite_code": res.json["code"]}, headers=factories.bearer(user))
    assert bound.status_code == 200 and bound.json["role"] == "supplier"
    assert Invite.get(Invite.code == res.json["code"]).uses == 1


def test_an_invite_names_its_party_by_code_as_orders_do(manager, dbconn):
    supplier, customer = factories.supplier(), factories.customer()
    res = manager.post("/api/v1/invites", json={"supplier_code": supplier.code.lower()})
    assert res.status_code == 201, res.json
    assert (res.json["kind"], res.json["party"]["id"]) == ("supplier", supplier.id)
    res = manager.post("/api/v1/invites", json={"customer_code": customer.code, "customer_id": customer.id})
    assert res.status_code == 201 and res.json["party"]["id"] == customer.id

    unknown = manager.post("/api/v1/invites", json={"supplier_code": "SUP-NOBODY"})
    assert unknown.status_code == 404 and "SUP-NOBODY" in unknown.json["error"]["message"]
    other = factories.supplier()
    mismatch = manager.post("/api/v1/invites", json={"supplier_id": supplier.id, "supplier_code": other.code})
    assert mismatch.status_code == 422 and mismatch.json["error"]["field"] == "supplier_code"
    both = manager.post("/api/v1/invites", json={"supplier_code": supplier.code, "customer_code": customer.code})
    assert both.status_code == 422
    assert Invite.select().count() == 2


def test_an_invite_needs_exactly_one_existing_party(manager, dbconn):
    assert manager.post("/api/v1/invites", json={}).status_code == 422
    both = {"supplier_id": factories.supplier().id, "customer_id": factories.customer().id}
    assert manager.post("/api/v1/invites", json=both).status_code == 422
    assert manager.post("/api/v1/invites", json={"customer_id": 999999}).status_code == 404
    assert Invite.select().count() == 0


def test_a_customer_template_is_used_for_that_customers_new_orders(manager, dbconn):
    special, plain = factories.customer(), factories.customer()
    suppliers = [factories.supplier(), factories.supplier()]
    items = [{"code": "confirmed", "name": "订单确认", "plan_share": 0, "expected_days": 1},
             {"code": "sample", "name": "样品确认", "plan_share": 0.3, "expected_days": 2},
             {"code": "shipped", "name": "物流发货", "plan_share": 1, "expected_days": 1}]
    res = manager.post("/api/v1/node-templates", json={"name": "恒远专用", "customer_id": special.id, "items": items})
    assert res.status_code == 201, res.json

    mine = manager.post("/api/v1/orders", json=order_body(special, suppliers, external_no="E-1")).json
    other = manager.post("/api/v1/orders", json=order_body(plain, suppliers, external_no="E-2")).json

    assert [n["code"] for n in mine["nodes"]] == ["confirmed", "sample", "shipped"]
    assert len(other["nodes"]) == 7  # the default template
    start = china_date() + timedelta(days=1)
    assert mine["nodes"][1]["planned_date"] == (start + timedelta(days=9)).isoformat()  # 30 % of a 30-day plan


def test_template_items_must_be_consistent(manager, dbconn):
    items = [{"code": "a", "name": "甲", "plan_share": 0.5, "expected_days": 1},
             {"code": "a", "name": "乙", "plan_share": 0.2, "expected_days": 1}]
    res = manager.post("/api/v1/node-templates", json={"name": "坏模板", "items": items})
    assert res.status_code == 422
