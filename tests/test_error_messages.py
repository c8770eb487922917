"""Error messages that help (issue 7, item 19): each says what is wrong with this request and how
to put it right — where the JSON breaks, which content type is needed, the allowed values, the
bound, the size limit, and which credential or role the route wants."""
import uuid

from app.services.auth import create_api_key
from app.timeutil import china_date
from tests import factories


def _json(client, path, data, **kwargs):
    return client.post(path, data=data, content_type="application/json", **kwargs)


def test_malformed_json_says_it_is_json_and_where(client):
    res = _json(client, "/mp/v1/auth/login", b'{\n  "code": "abc",\n  "x": \n}')
    assert res.status_code == 400
    error = res.json["error"]
    assert error["code"] == "invalid_json"
    assert "JSON" in error["message"] and "第 4 行第 1 列" in error["message"], error
    assert (error["line"], error["column"]) == (4, 1)
    res = _json(client, "/mp/v1/auth/login", b"{'code': 'abc'}")
    assert "第 1 行第 2 列" in res.json["error"]["message"] and "双引号" in res.json["error"]["message"]


def test_a_form_post_is_told_the_content_type_is_wrong(client):
    res = client.post("/mp/v1/auth/login", data={"code": "abc"})
    assert res.status_code == 415
    error = res.json["error"]
    assert error["code"] == "unsupported_media_type"
    assert "application/json" in error["message"] and "x-www-form-urlencoded" in error["message"]


def test_a_json_array_body_is_not_reported_as_field_schema(client):
    res = client.post("/mp/v1/auth/login", json=[{"code": "abc"}])
    assert res.status_code == 422
    error = res.json["error"]
    assert error["code"] == "body_not_object" and "_schema" not in str(error)
    assert "JSON 对象" in error["message"] and "数组" in error["message"]


def test_a_rule_over_several_fields_names_no_schema_field(manager):
    res = manager.post("/api/v1/invites", json={})
    assert res.status_code == 422 and "_schema" not in str(res.json)
    res = manager.patch("/api/v1/orders/1", json={"reason": "没改什么"})
    assert res.status_code == 422 and "_schema" not in str(res.json)
    assert res.json["error"]["message"] == "请提供要修改的字段或目标状态"


def test_enum_errors_list_the_allowed_values_and_range_errors_the_bound(manager, client, dbconn):
    sup = factories.supplier()
    headers = factories.bearer(factories.wechat_user(sup))
    res = client.get("/mp/v1/tasks?status=bogus", headers=headers)
    message = res.json["error"]["message"]
    assert res.status_code == 422 and "in_production" in message and "active" in message, message

    res = manager.post("/api/v1/invites", json={"supplier_id": sup.id, "max_uses": 99})
    assert res.json["error"]["message"] == "参数 max_uses 必须在 1 到 50 之间"
    res = manager.get("/api/v1/orders?per_page=500")
    assert res.json["error"]["message"] == "参数 per_page 必须在 1 到 100 之间"
    res = manager.post("/api/v1/suppliers", json={"code": "S" * 40, "name": "厂"})
    assert res.json["error"]["message"] == "参数 code 长度必须在 1 到 32 之间"
    order = factories.order(factories.customer(), [sup])
    res = client.post(f"/mp/v1/tasks/{order.tasks.get().id}/reports", headers=headers,
                      json={"client_id": str(uuid.uuid4()), "report_date": china_date().isoformat(), "qty_done": -1})
    assert res.json["error"]["message"] == "参数 qty_done 不能小于 0"


def test_the_413_states_the_limit(client):
    res = _json(client, "/mp/v1/auth/login", b'{"code": "' + b"x" * (2 * 1024 * 1024) + b'"}')
    assert res.status_code == 413
    error = res.json["error"]
    assert error["code"] == "payload_too_large" and "1 MB" in error["message"] and error["limit_bytes"] == 1024 * 1024


def test_a_mini_program_token_on_the_management_api_is_named(client, dbconn):
    user = factories.wechat_user(factories.supplier())
    res = client.get("/api/v1/orders", headers=factories.bearer(user))
    assert res.status_code == 401
    assert res.json["error"] == {"code": "wrong_credential",
                                 "message": "这是小程序登录令牌，不能用于管理接口；请使用 ERP 接口密钥或管理端登录"}
    _, key = create_api_key("erp")
    res = client.get("/mp/v1/me", headers={"Authorization": f"Bearer {key}"})
    assert res.status_code == 401 and res.json["error"]["code"] == "wrong_credential"
    assert "ERP 接口密钥" in res.json["error"]["message"]
    # Anything else is still just an invalid key.
    res = client.get("/api/v1/orders", headers={"Authorization": "Bearer nonsense"})
    assert res.json["error"]["code"] == "invalid_api_key"


def test_a_supplier_on_customer_routes_is_told_its_role_and_vice_versa(client, dbconn):
    supplier_user = factories.wechat_user(factories.supplier())
    customer_user = factories.wechat_user(factories.customer())
    res = client.get("/mp/v1/orders", headers=factories.bearer(supplier_user))
    assert res.status_code == 403
    assert res.json["error"] == {"code": "wrong_role", "message": "此功能仅供客户使用，你的微信绑定的是供应商"}
    for call in (lambda h: client.get("/mp/v1/tasks", headers=h),
                 lambda h: client.post("/mp/v1/uploads/policy", headers=h,
                                       json={"purpose": "progress", "content_type": "image/jpeg", "size": 100})):
        res = call(factories.bearer(customer_user))
        assert res.status_code == 403
        assert res.json["error"] == {"code": "wrong_role", "message": "此功能仅供供应商使用，你的微信绑定的是客户"}
    # An unbound user is still asked to bind.
    res = client.get("/mp/v1/tasks", headers=factories.bearer(factories.wechat_user()))
    assert res.json["error"]["code"] == "not_bound" and "邀请码" in res.json["error"]["message"]
