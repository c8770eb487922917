"""No 500 for hostile input (issue 7, items 6 and 7): lone surrogates, absurd nesting, absurd
pages, ids beyond 64 bits (SQLite overflows), year 1 and year 9999, and integers that are not
integers. Each is a clear 4xx with the error envelope and a Chinese message, on both backends."""
import csv
import io
import re
import uuid

import pytest

from app.models import Order, ProgressReport, Supplier
from app.timeutil import china_date
from tests import factories
from tests.helpers import order_body

HUGE = 2**63  # one past what a BIGINT / SQLite INTEGER holds
CJK = re.compile(r"[\u4e00-\u9fff]")


def refused(res, status, code=None):
    """A clear refusal: the status, our envelope, a Chinese message (and the code, when given)."""
    assert res.status_code == status, (res.status_code, res.get_data(as_text=True)[:500])
    error = res.json["error"]
    assert CJK.search(error["message"]), error
    if code:
        assert error["code"] == code, error
    return error


@pytest.fixture
def world(manager, client, dbconn):
    sup = factories.supplier()
    user = factories.wechat_user(sup)
    order = factories.order(factories.customer(), [sup])
    return {"manager": manager, "client": client, "supplier": sup, "user": user, "order": order,
            "task": order.tasks.get(), "headers": factories.bearer(user)}


def _report(world, **changes):
    body = {"client_id": str(uuid.uuid4()), "report_date": china_date().isoformat(), "qty_done": 10, **changes}
    return world["client"].post(f"/mp/v1/tasks/{world['task'].id}/reports", headers=world["headers"], json=body)


# --- item 6: lone surrogates, nesting --------------------------------------------------------------

def test_a_lone_surrogate_in_any_json_string_is_a_400(world):
    client = world["client"]
    # Before login: the demo login's openid, escaped as JSON allows.
    res = client.post("/mp/v1/auth/demo-login", data=b'{"openid": "demo-\\ud800"}', content_type="application/json")
    assert "\\ud800" in refused(res, 400, "invalid_unicode")["message"]
    # In a supplier's report note, and as an object key.
    body = f'{{"client_id": "{uuid.uuid4()}", "report_date": "{china_date()}", "qty_done": 5, "note": "好\\udfff"}}'
    res = client.post(f"/mp/v1/tasks/{world['task'].id}/reports", headers=world["headers"],
                      data=body.encode(), content_type="application/json")
    refused(res, 400, "invalid_unicode")
    res = world["manager"].post("/api/v1/suppliers", data=b'{"code": "S-1", "name": "x", "\\ud83d": 1}',
                                content_type="application/json")
    refused(res, 400, "invalid_unicode")
    assert ProgressReport.select().count() == 0 and Supplier.select().count() == 1
    # A proper pair (an emoji) is text like any other.
    assert _report(world, note="完成 \U0001f600").status_code == 201


def test_json_nested_100000_deep_is_a_400_not_a_crash(client):
    for deep in (b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 100_000 + b"1" + b"}" * 100_000):
        res = client.post("/mp/v1/auth/login", data=deep, content_type="application/json")
        refused(res, 400, "json_too_deep")
    body = b'{"code": ' + b"[" * 40 + b"]" * 40 + b"}"  # parsable, but deeper than any body of ours
    refused(client.post("/mp/v1/auth/login", data=body, content_type="application/json"), 400, "json_too_deep")


def test_nan_infinity_and_endless_numbers_are_not_json(world):
    for literal in (b"NaN", b"Infinity", b"-Infinity", b"1" * 5000):
        body = b'{"code": "S-9", "name": "x", "contact_name": ' + literal + b"}"
        refused(world["manager"].post("/api/v1/suppliers", data=body, content_type="application/json"), 400, "invalid_json")


# --- item 6: pages and ids -----------------------------------------------------------------------------

def test_page_10_to_the_18_on_any_list_is_a_422(world):
    manager, client, headers = world["manager"], world["client"], world["headers"]
    customer_user = factories.wechat_user(world["order"].customer)
    lists = [(manager, "/api/v1/orders", {}), (manager, "/api/v1/suppliers", {}), (manager, "/api/v1/customers", {}),
             (manager, "/api/v1/wechat-users", {}), (manager, "/api/v1/node-templates", {}),
             (manager, f"/api/v1/tasks/{world['task'].id}/urges", {}),
             (client, "/mp/v1/tasks", headers), (client, "/mp/v1/orders", factories.bearer(customer_user))]
    for caller, path, auth in lists:
        res = caller.get(f"{path}?page={10**18}", headers=auth)
        assert refused(res, 422, "validation_error")["field"] == "page", path
        assert "100000" in res.json["error"]["message"]  # the bound is named
        assert caller.get(f"{path}?page=2", headers=auth).status_code == 200, path


def test_ids_beyond_64_bits_are_refused_in_path_query_and_body(world):
    manager, client, headers = world["manager"], world["client"], world["headers"]
    for caller, method, path, auth in [
        (manager, "get", f"/api/v1/orders/{HUGE}", {}),
        (manager, "patch", f"/api/v1/orders/{HUGE}", {}),
        (manager, "get", f"/api/v1/tasks/{HUGE}/label.png", {}),
        (manager, "post", f"/api/v1/suppliers/{HUGE}/deactivate", {}),
        (client, "get", f"/mp/v1/tasks/{HUGE}", headers),
        (client, "post", f"/mp/v1/uploads/{HUGE}/confirm", headers),
        (client, "post", f"/mp/v1/urges/{10**30}/reply", headers),
    ]:
        refused(getattr(caller, method)(path, headers=auth, json={}), 404, "not_found")

    for path in (f"/api/v1/orders?customer_id={HUGE}", f"/api/v1/orders?supplier_id={10**40}",
                 f"/api/v1/wechat-users?supplier_id={HUGE}"):
        assert refused(manager.get(path), 422, "validation_error")["field"] in ("customer_id", "supplier_id")

    res = manager.post("/api/v1/invites", json={"supplier_id": HUGE})
    assert refused(res, 422, "validation_error")["field"] == "supplier_id"
    assert "9223372036854775807" in res.json["error"]["message"]
    res = manager.post("/api/v1/orders", json=order_body(world["order"].customer, [world["supplier"]], customer_id=HUGE))
    assert refused(res, 422, "validation_error")["field"] == "customer_id"
    refused(_report(world, photo_ids=[HUGE]), 422, "validation_error")
    refused(_report(world, qty_done=HUGE), 422, "validation_error")
    res = client.post("/mp/v1/uploads/policy", headers=headers,
                      json={"purpose": "progress", "content_type": "image/jpeg", "size": 10**20})
    refused(res, 422, "validation_error")


# --- item 6: year 1 and year 9999 ------------------------------------------------------------------

def test_dates_of_year_1_or_9999_are_refused_with_the_range(world):
    manager, client, headers = world["manager"], world["client"], world["headers"]
    for day in ("0001-01-01", "9999-12-31"):
        error = refused(_report(world, report_date=day), 422, "validation_error")
        assert error["field"] == "report_date" and "2000-01-01" in error["message"] and "2099-12-31" in error["message"]
        body = order_body(world["order"].customer, [world["supplier"]], external_no=f"ERP-{day}", due_date=day)
        assert refused(manager.post("/api/v1/orders", json=body), 422)["field"] == "due_date"
        res = manager.patch(f"/api/v1/orders/{world['order'].id}", json={"due_date": day, "reason": "改期"})
        assert refused(res, 422)["field"] == "due_date"
        assert refused(manager.get(f"/api/v1/orders?due_before={day}"), 422)["field"] == "due_before"
        res = client.post("/mp/v1/urges/1/reply", headers=headers, json={"reason": "缺料", "new_due_date": day})
        assert refused(res, 422)["field"] == "new_due_date"
    assert Order.select().count() == 1


def test_node_times_of_year_1_or_9999_are_refused(world):
    path = f"/mp/v1/tasks/{world['task'].id}/nodes/materials_ready/complete"
    for when, code in (("0001-01-01T00:00:00", "too_old"), ("0001-01-01T00:00:00+14:00", "too_old"),
                       ("9999-12-31T23:59:59-12:00", "future_time"), ("9999-12-31", "future_time")):
        res = world["client"].post(path, headers=world["headers"], json={"client_id": str(uuid.uuid4()), "occurred_at": when})
        assert refused(res, 422, code)["field"] == "occurred_at", when


def test_an_imported_order_of_year_9999_is_refused(world):
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["外部单号", "客户编码", "产品名称", "订单数量", "计划开工", "交期", "工序", "供应商编码", "计划数量"])
    writer.writerow(["ERP-Y", world["order"].customer.code, "机箱", 10, "2026-05-01", "9999-12-31", "冲压",
                     world["supplier"].code, 10])
    res = world["manager"].post("/api/v1/orders/import", content_type="multipart/form-data",
                                data={"file": (io.BytesIO(out.getvalue().encode()), "orders.csv")})
    assert res.status_code == 422, res.json
    assert any("2099-12-31" in e["message"] for e in res.json["error"]["errors"]), res.json
    assert Order.select().count() == 1


# --- item 7: integers are integers -----------------------------------------------------------------

def test_integer_fields_refuse_floats_and_numeric_strings(world):
    for qty in (1283.9, 12.0, "13", True):
        error = refused(_report(world, qty_done=qty), 422, "validation_error")
        assert error["field"] == "qty_done" and "整数" in error["message"], qty
    assert world["task"].reports.count() == 0
    assert _report(world, qty_done=13).status_code == 201

    manager = world["manager"]
    body = order_body(world["order"].customer, [world["supplier"]])
    body["tasks"][0]["planned_qty"] = 999.5
    assert refused(manager.post("/api/v1/orders", json=body), 422)["field"] == "tasks[0].planned_qty"
    res = manager.post("/api/v1/invites", json={"supplier_id": str(world["supplier"].id)})
    assert refused(res, 422)["field"] == "supplier_id"
    res = manager.patch(f"/api/v1/orders/{world['order'].id}", json={"quantity": "1000", "reason": "改数量"})
    assert refused(res, 422)["field"] == "quantity"
    # Query strings are text: a whole number there is fine, a fraction is not.
    assert manager.get(f"/api/v1/orders?customer_id={world['order'].customer.id}").status_code == 200
    assert refused(manager.get("/api/v1/orders?page=1.5"), 422)["field"] == "page"


def test_numbers_declared_as_numbers_refuse_text(world):
    body = order_body(world["order"].customer, [world["supplier"]])
    body["tasks"][0]["tolerance_pct"] = "0.05"
    assert refused(world["manager"].post("/api/v1/orders", json=body), 422)["field"] == "tasks[0].tolerance_pct"
    # Money is declared as text or a number (as answers show it, "12.50"): both are taken, other types not.
    for price, status in (("12.50", 201), (12.5, 200), (True, 422), ("12,50", 422), ("-1", 422)):
        body = order_body(world["order"].customer, [world["supplier"]], external_no=f"ERP-{price}", unit_price=price)
        body["external_no"] = "ERP-PRICE" if status != 422 else body["external_no"]
        res = world["manager"].post("/api/v1/orders", json=body)
        assert res.status_code == status, (price, res.json)
