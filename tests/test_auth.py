"""Logging in: mini program through WeChat's code2Session, invite binding, demo login, staff, API keys."""
from datetime import timedelta

import pytest

from app.models import Customer, Invite, Supplier, WechatUser
from app.services.auth import create_api_key, create_invite, create_staff
from app.timeutil import utcnow
from tests.helpers import wechat_settings


def _json(client, path, body, token=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.post(path, json=body, headers=headers)


def test_login_through_wechat_returns_a_token_and_never_the_session_key(wechat_app, wechat_fake):
    wechat_fake.add_login_code("code-1", "openid-alice", session_key="SECRET_SESSION_KEY==")
    client = wechat_app.test_client()

    res = _json(client, "/mp/v1/auth/login", {"code": "code-1"})

    assert res.status_code == 200, res.json
    assert res.json["user"]["role"] == "unbound"
    assert res.json["expires_in"] > 0
    assert "SECRET_SESSION_KEY" not in res.get_data(as_text=True)
    me = client.get("/mp/v1/me", headers={"Authorization": f"Bearer {res.json['token']}"})
    assert me.status_code == 200 and me.json["id"] == res.json["user"]["id"]
    # code2Session authenticates with the app secret: no access token is fetched or sent.
    assert wechat_fake.token_requests == []
    assert "access_token" not in wechat_fake.login_requests[0]["params"]


@pytest.mark.parametrize("refusal", [45009, "outage"])
def test_login_works_while_the_token_endpoint_refuses(wechat_app, wechat_fake, refusal):
    """A spent token quota (45009) or a token endpoint outage must not stop anyone logging in."""
    wechat_fake.fail_token_calls_with = refusal
    wechat_fake.add_login_code("code-t", "openid-tokenless")
    client = wechat_app.test_client()

    res = _json(client, "/mp/v1/auth/login", {"code": "code-t"})

    assert res.status_code == 200, res.json
    assert client.get("/mp/v1/me", headers={"Authorization": f"Bearer {res.json['token']}"}).status_code == 200
    assert wechat_fake.token_requests == []


def test_logging_in_twice_is_the_same_user(wechat_app, wechat_fake):
    wechat_fake.add_login_code("c-a", "openid-bob")
    wechat_fake.add_login_code("c-b", "openid-bob")
    client = wechat_app.test_client()
    first = _json(client, "/mp/v1/auth/login", {"code": "c-a"}).json["user"]["id"]
    second = _json(client, "/mp/v1/auth/login", {"code": "c-b"}).json["user"]["id"]
    assert first == second


@pytest.mark.parametrize("reuse", [False, True])
def test_a_bad_or_reused_code_gets_a_clear_error(wechat_app, wechat_fake, reuse):
    wechat_fake.add_login_code("once", "openid-carol")
    client = wechat_app.test_client()
    if reuse:
        assert _json(client, "/mp/v1/auth/login", {"code": "once"}).status_code == 200
    res = _json(client, "/mp/v1/auth/login", {"code": "once" if reuse else "never-issued"})

    assert res.status_code == 400
    assert res.json["error"]["code"] == "invalid_login_code"
    assert "重新打开小程序" in res.json["error"]["message"]


def test_login_without_a_code_names_the_field(wechat_app):
    res = _json(wechat_app.test_client(), "/mp/v1/auth/login", {})
    assert res.status_code == 422
    assert res.json["error"]["code"] == "validation_error"
    assert res.json["error"]["field"] == "code"
    assert "必填" in res.json["error"]["message"]


def test_requests_without_or_with_a_forged_token_are_refused(client):
    assert client.get("/mp/v1/me").json["error"]["code"] == "unauthorized"
    res = client.get("/mp/v1/me", headers={"Authorization": "Bearer forged.token.value"})
    assert res.status_code == 401 and res.json["error"]["code"] == "invalid_token"


def test_an_expired_token_is_refused(make_app, wechat_fake):
    app = make_app(TOKEN_TTL_SECONDS=-1, **wechat_settings(wechat_fake))
    wechat_fake.add_login_code("c-exp", "openid-exp")
    client = app.test_client()
    token = _json(client, "/mp/v1/auth/login", {"code": "c-exp"}).json["token"]
    res = client.get("/mp/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert res.status_code == 401 and res.json["error"]["code"] == "token_expired"


# --- invites -------------------------------------------------------------------------------------

@pytest.fixture
def logged_in(wechat_app, wechat_fake):
    """Log a new WeChat user in; returns (client, token)."""
    client = wechat_app.test_client()
    counter = iter(range(1000))

    def login(openid):
        code = f"code-{openid}-{next(counter)}"
        wechat_fake.add_login_code(code, openid)
        return _json(client, "/mp/v1/auth/login", {"code": code}).json["token"]

    return client, login


def test_binding_with_an_invite_makes_a_supplier_user(logged_in, dbconn):
    client, login = logged_in
    supplier = Supplier.create(code="S1", name="苏州精工冲压厂")
    invite = create_invite(supplier)
    token = login("openid-dave")

    res = _json(client, "/mp/v1/auth/bind", {"invite_code": invite.code}, token)

    assert res.status_code == 200, res.json
    assert res.json["role"] == "supplier"
    assert res.json["supplier"] == {"id": supplier.id, "name": "苏州精工冲压厂"}
    # Binding again with the same invite is a harmless repeat.
    assert _json(client, "/mp/v1/auth/bind", {"invite_code": invite.code}, token).status_code == 200
    assert Invite.get_by_id(invite.id).uses == 1


@pytest.mark.parametrize("problem", ["unknown", "expired", "revoked", "used_up"])
def test_binding_with_a_bad_invite_is_refused(logged_in, dbconn, problem):
    client, login = logged_in
    customer = Customer.create(code="C1", name="上海恒远机电")
    invite = create_invite(customer)
    code = invite.code
    if problem == "unknown":
        code = "no-such-invite"
    elif problem == "expired":
        Invite.update(expires_at=utcnow() - timedelta(minutes=1)).where(Invite.id == invite.id).execute()
    elif problem == "revoked":
        Invite.update(revoked_at=utcnow()).where(Invite.id == invite.id).execute()
    else:
        _json(client, "/mp/v1/auth/bind", {"invite_code": code}, login("openid-first"))
    token = login("openid-erin")

    res = _json(client, "/mp/v1/auth/bind", {"invite_code": code}, token)

    assert res.status_code == 400
    assert res.json["error"] == {"code": "invalid_invite", "message": "邀请码无效、已过期或已被使用", "field": "invite_code"}
    assert WechatUser.get(WechatUser.openid == "openid-erin").role == "unbound"


def test_a_bound_user_cannot_bind_to_another_party(logged_in, dbconn):
    client, login = logged_in
    first = create_invite(Supplier.create(code="S1", name="甲厂"))
    second = create_invite(Supplier.create(code="S2", name="乙厂"))
    token = login("openid-frank")
    _json(client, "/mp/v1/auth/bind", {"invite_code": first.code}, token)

    res = _json(client, "/mp/v1/auth/bind", {"invite_code": second.code}, token)

    assert res.status_code == 409 and res.json["error"]["code"] == "already_bound"
    assert Invite.get_by_id(second.id).uses == 0


# --- demo login ---------------------------------------------------------------------------------

def test_demo_login_works_without_wechat_credentials(client, dbconn):
    WechatUser.create(openid="demo-supplier-1", role="unbound")
    res = _json(client, "/mp/v1/auth/demo-login", {"openid": "demo-supplier-1"})
    assert res.status_code == 200 and res.json["token"]
    # Only seeded demo users: a real person's openid cannot be borrowed.
    WechatUser.create(openid="o-real-person")
    assert _json(client, "/mp/v1/auth/demo-login", {"openid": "o-real-person"}).status_code == 404


def test_demo_login_is_refused_when_wechat_is_configured(wechat_app, dbconn):
    WechatUser.create(openid="demo-supplier-1")
    res = _json(wechat_app.test_client(), "/mp/v1/auth/demo-login", {"openid": "demo-supplier-1"})
    assert res.status_code == 404 and res.json["error"]["code"] == "demo_login_disabled"


def test_demo_login_is_refused_in_production(make_app, dbconn):
    WechatUser.create(openid="demo-supplier-1")
    app = make_app(APP_ENV="production", SECRET_KEY="prod-secret")
    res = _json(app.test_client(), "/mp/v1/auth/demo-login", {"openid": "demo-supplier-1"})
    assert res.status_code == 404 and res.json["error"]["code"] == "demo_login_disabled"


# --- staff and API keys -------------------------------------------------------------------------

def test_staff_login_starts_a_session(client, dbconn):
    create_staff("manager", "correct horse", "manager", display_name="张经理")
    assert _json(client, "/api/v1/auth/login", {"username": "manager", "password": "wrong"}).status_code == 401
    assert client.get("/api/v1/me").status_code == 401

    res = _json(client, "/api/v1/auth/login", {"username": "manager", "password": "correct horse"})

    assert res.status_code == 200
    assert client.get("/api/v1/me").json == {"kind": "staff", "id": res.json["id"], "name": "张经理", "role": "manager"}
    client.post("/api/v1/auth/logout")
    assert client.get("/api/v1/me").status_code == 401


def test_staff_passwords_are_stored_hashed(dbconn):
    user = create_staff("qc", "s3cret-pass", "qc")
    assert "s3cret-pass" not in user.password_hash


def test_api_key_authenticates_and_is_stored_hashed(client, dbconn):
    row, key = create_api_key("erp")
    assert key not in row.key_hash

    res = client.get("/api/v1/me", headers={"Authorization": f"Bearer {key}"})

    assert res.status_code == 200 and res.json["kind"] == "api_key" and res.json["name"] == "erp"
    forged = key[:-4] + "AAAA"
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {forged}"}).json["error"]["code"] == "invalid_api_key"
