"""Access and abuse (issue 7, items 1–5): deactivating parties, unbinding and revoking WeChat users,
staff sessions that end for real, login throttling, single-use upload policies, one bind per user,
ERP key scopes and who sees prices."""
import io
import threading
import uuid
from urllib.parse import urlsplit

import requests

from app.extensions import current
from app.models import AuditEntry, Invite, Photo, WechatUser
from app.services import photos
from app.services.auth import create_api_key, create_invite
from app.services.photos import new_key
from app.timeutil import china_date
from tests import factories
from tests.helpers import oss_settings, picture, wechat_settings

REASON = {"reason": "合作暂停，待重新评估"}


def _supplier_with_task():
    sup = factories.supplier()
    user = factories.wechat_user(sup)
    order = factories.order(factories.customer(), [sup])
    return sup, user, order.tasks.get()


def _report(client, user, task, qty=10):
    return client.post(f"/mp/v1/tasks/{task.id}/reports", headers=factories.bearer(user), json={
        "client_id": str(uuid.uuid4()), "report_date": china_date().isoformat(), "qty_done": qty})


# --- 1. deactivating a supplier or customer cuts access at once ------------------------------------

def test_a_deactivated_suppliers_users_are_refused_at_once_and_back_when_reactivated(manager, client, dbconn):
    sup, user, task = _supplier_with_task()
    headers = factories.bearer(user)  # a token issued before the deactivation
    assert client.get("/mp/v1/me", headers=headers).status_code == 200

    res = manager.post(f"/api/v1/suppliers/{sup.id}/deactivate", json=REASON)
    assert res.status_code == 200 and res.json["active"] is False

    for call in (lambda: client.get("/mp/v1/me", headers=headers),
                 lambda: _report(client, user, task),
                 lambda: client.post("/mp/v1/uploads/policy", headers=headers,
                                     json={"purpose": "progress", "content_type": "image/jpeg", "size": 100}),
                 lambda: client.get(f"/mp/v1/scan/{task.qr_code}", headers=headers)):
        refused = call()
        assert refused.status_code == 401 and refused.json["error"]["code"] == "party_deactivated", refused.json
        assert "停用" in refused.json["error"]["message"]
    assert task.reports.count() == 0

    entry = AuditEntry.get(AuditEntry.action == "supplier.deactivate")
    assert entry.reason == REASON["reason"] and entry.actor_label == "张经理"

    assert manager.post(f"/api/v1/suppliers/{sup.id}/reactivate", json={"reason": "恢复合作"}).status_code == 200
    assert client.get("/mp/v1/me", headers=headers).status_code == 200
    assert _report(client, user, task).status_code == 201


def test_a_deactivated_customers_users_cannot_log_in_again(make_app, wechat_fake, dbconn):
    app = make_app(**wechat_settings(wechat_fake))
    client = app.test_client()
    cust = factories.customer()
    factories.wechat_user(cust, openid="o-customer-li")
    staff = factories.staff_client(client, "manager")

    assert staff.post(f"/api/v1/customers/{cust.id}/deactivate", json=REASON).status_code == 200
    wechat_fake.add_login_code("code-li-1", "o-customer-li")
    res = client.post("/mp/v1/auth/login", json={"code": "code-li-1"})
    assert res.status_code == 401 and res.json["error"]["code"] == "party_deactivated"
    assert "token" not in res.json
    listed = staff.get("/api/v1/customers?active=false").json["items"]
    assert [c["id"] for c in listed] == [cust.id]
    # No new users for a deactivated customer either.
    assert staff.post("/api/v1/invites", json={"customer_id": cust.id}).json["error"]["code"] == "customer_inactive"


def test_deactivating_needs_a_reason_and_a_manager(auth, client, dbconn):
    sup = factories.supplier()
    manager = auth.login("manager")
    missing = manager.post(f"/api/v1/suppliers/{sup.id}/deactivate", json={})
    assert missing.status_code == 422 and missing.json["error"]["field"] == "reason"
    _, key = create_api_key("erp-sync", ("orders", "invites"))
    by_key = client.post(f"/api/v1/suppliers/{sup.id}/deactivate", json=REASON,
                         headers={"Authorization": f"Bearer {key}"})
    assert by_key.status_code == 403 and by_key.json["error"]["code"] == "api_key_scope"
    assert manager.post("/api/v1/suppliers/999999/deactivate", json=REASON).status_code == 404


def test_unbinding_one_user_ends_its_tokens_and_leaves_it_unbound(manager, client, dbconn):
    sup, user, task = _supplier_with_task()
    colleague = factories.wechat_user(sup)
    headers = factories.bearer(user)
    listed = manager.get(f"/api/v1/wechat-users?supplier_id={sup.id}").json["items"]
    assert {u["id"] for u in listed} == {user.id, colleague.id} and "openid" not in listed[0]

    res = manager.post(f"/api/v1/wechat-users/{user.id}/unbind", json={"reason": "已离职"})
    assert res.status_code == 200 and res.json["role"] == "unbound" and res.json["supplier_id"] is None

    assert client.get("/mp/v1/me", headers=headers).status_code == 401
    again = factories.bearer(WechatUser.get_by_id(user.id))  # logs in again: as nobody's user
    assert client.get("/mp/v1/me", headers=again).json["role"] == "unbound"
    assert _report(client, WechatUser.get_by_id(user.id), task).status_code == 404
    assert _report(client, colleague, task).status_code == 201  # the colleague is untouched
    assert AuditEntry.get(AuditEntry.action == "wechat_user.unbind").reason == "已离职"


def test_revoking_tokens_ends_every_session_of_a_lost_phone(manager, client, dbconn):
    _, user, task = _supplier_with_task()
    old = factories.bearer(user)
    assert manager.post(f"/api/v1/wechat-users/{user.id}/revoke-tokens", json={"reason": "手机丢失"}).status_code == 200
    assert client.get("/mp/v1/me", headers=old).json["error"]["code"] == "invalid_token"
    fresh = WechatUser.get_by_id(user.id)
    assert fresh.role == "supplier" and _report(client, fresh, task).status_code == 201


# --- 2. staff sessions ---------------------------------------------------------------------------------

def _staff_login(client, username="zhang", password="long-enough-pw", address="10.0.0.1"):
    return client.post("/api/v1/auth/login", json={"username": username, "password": password},
                       environ_base={"REMOTE_ADDR": address})


def test_logout_ends_the_session_for_a_copied_cookie_too(app, dbconn):
    factories.staff("zhang", "long-enough-pw")
    browser = app.test_client()
    assert _staff_login(browser).status_code == 200
    cookie = browser.get_cookie("session").value
    copy = app.test_client()
    copy.set_cookie("session", cookie)
    assert copy.get("/api/v1/me").status_code == 200

    assert browser.post("/api/v1/auth/logout").status_code == 204
    assert copy.get("/api/v1/me").status_code == 401  # the replayed cookie is dead server-side
    assert _staff_login(browser).status_code == 200 and browser.get("/api/v1/me").status_code == 200


def test_a_session_ends_after_its_absolute_lifetime_however_busy(app, client, dbconn):
    factories.staff("zhang", "long-enough-pw")
    assert _staff_login(client).status_code == 200
    with client.session_transaction() as session:
        session["at"] -= app.config["STAFF_SESSION_HOURS"] * 3600 + 60  # logged in yesterday morning
    res = client.get("/api/v1/me")
    assert res.status_code == 401 and res.json["error"]["code"] == "unauthorized"


def test_five_wrong_passwords_lock_that_address_not_the_manager(app, client, dbconn):
    factories.staff("zhang", "long-enough-pw")
    for _ in range(5):
        assert _staff_login(client, password="guess", address="203.0.113.9").status_code == 401
    locked = _staff_login(client, address="203.0.113.9")  # even the right password now
    assert locked.status_code == 429 and locked.json["error"]["code"] == "login_locked"
    assert "15 分钟" in locked.json["error"]["message"]
    # The manager at the office is not locked out by someone else's guessing.
    assert _staff_login(client, address="10.0.0.1").status_code == 200


def test_a_right_password_clears_the_failures_of_that_address(app, client, dbconn):
    factories.staff("zhang", "long-enough-pw")
    for _ in range(4):
        _staff_login(client, password="typo")
    assert _staff_login(client).status_code == 200
    for _ in range(4):
        _staff_login(client, password="typo")
    assert _staff_login(client).status_code == 200


def test_spraying_many_usernames_from_one_address_is_locked(app, client, dbconn):
    for n in range(20):
        _staff_login(client, username=f"user{n}", password="guess", address="198.51.100.7")
    assert _staff_login(client, username="anyone", address="198.51.100.7").status_code == 429


def _login_via_proxy(client, client_address, password="guess"):
    """A login through the https proxy at 10.0.0.2, which names the client in X-Forwarded-For."""
    return client.post("/api/v1/auth/login", json={"username": "zhang", "password": password},
                       environ_base={"REMOTE_ADDR": "10.0.0.2"}, headers={"X-Forwarded-For": client_address})


def test_behind_a_trusted_proxy_each_client_is_counted_by_its_own_address(make_app, dbconn):
    client = make_app(PROXY_HOPS=1).test_client()
    factories.staff("zhang", "long-enough-pw")
    for _ in range(5):
        assert _login_via_proxy(client, "203.0.113.9").status_code == 401
    assert _login_via_proxy(client, "203.0.113.9").status_code == 429
    # The office behind the same proxy is not locked out with the attacker.
    assert _login_via_proxy(client, "198.51.100.20", password="long-enough-pw").status_code == 200


def test_without_a_trusted_proxy_a_forged_forwarded_address_does_not_dodge_the_lock(make_app, dbconn):
    client = make_app(PROXY_HOPS=0).test_client()
    factories.staff("zhang", "long-enough-pw")
    for n in range(5):
        assert _login_via_proxy(client, f"192.0.2.{n}").status_code == 401
    assert _login_via_proxy(client, "192.0.2.99").status_code == 429


# --- 3. an upload policy is single-use ---------------------------------------------------------------

def test_an_upload_form_works_once_and_only_with_its_overwrite_guard(make_app, oss_fake, dbconn):
    oss_fake.reset()
    app = make_app(**oss_settings(oss_fake))
    client = app.test_client()
    sup = factories.supplier()
    user = factories.wechat_user(sup)
    data = picture("JPEG", (80, 60))
    answer = client.post("/mp/v1/uploads/policy", headers=factories.bearer(user),
                         json={"purpose": "progress", "content_type": "image/jpeg", "size": len(data)}).json
    assert answer["fields"]["x-oss-forbid-overwrite"] == "true"

    without = {k: v for k, v in answer["fields"].items() if k != "x-oss-forbid-overwrite"}
    refused = requests.post(answer["url"], data=without, files={"file": ("p.jpg", data, "image/jpeg")}, timeout=5)
    assert refused.status_code == 403  # the signed policy demands the guard

    first = requests.post(answer["url"], data=answer["fields"], files={"file": ("p.jpg", data, "image/jpeg")},
                          timeout=5)
    assert first.status_code == 200
    other = picture("JPEG", (90, 70), colour="blue")
    replay = requests.post(answer["url"], data=answer["fields"], files={"file": ("p.jpg", other, "image/jpeg")},
                           timeout=5)
    assert replay.status_code == 409 and oss_fake.objects[answer["fields"]["key"]]["data"] == data


def test_bytes_that_changed_after_confirmation_are_refused(app, dbconn):
    sup = factories.supplier()
    user = factories.wechat_user(sup)
    confirmed = picture("JPEG", (80, 60))
    key = new_key(sup.id, "jpg")
    photo = Photo.create(storage_key=key, supplier=sup, uploader=user, purpose="progress",
                         content_type="image/jpeg", size=len(confirmed))
    current().storage.put(key, picture("JPEG", (400, 300), colour="green"), "image/jpeg")  # replaced since
    assert photos.process(photo.id) == "rejected"
    assert Photo.get_by_id(photo.id).status == "rejected" and not current().storage.exists(key)


def test_signed_files_are_never_sniffed_as_something_else(app, client, dbconn):
    sup = factories.supplier()
    res = client.post("/mp/v1/uploads", headers=factories.bearer(factories.wechat_user(sup)),
                      content_type="multipart/form-data", data={"file": (io.BytesIO(picture()), "p.jpg", "image/jpeg")})
    link = urlsplit(res.json["url"])
    got = client.get(f"{link.path}?{link.query}")
    assert got.status_code == 200 and got.headers["X-Content-Type-Options"] == "nosniff"


# --- 4. one unbound user, several invites at once ----------------------------------------------------

def test_one_user_binding_several_invites_at_once_ends_bound_to_one(app, dbconn):
    user = factories.wechat_user()
    invites = [create_invite(factories.supplier()) for _ in range(4)]
    barrier = threading.Barrier(len(invites))
    answers, headers = {}, factories.bearer(user)

    def bind(invite):
        client = app.test_client()
        barrier.wait()
        answers[invite.id] = client.post("/mp/v1/auth/bind", json={"invite_code": invite.code}, headers=headers)

    threads = [threading.Thread(target=bind, args=(invite,)) for invite in invites]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    statuses = sorted(a.status_code for a in answers.values())
    assert statuses == [200, 409, 409, 409], [a.json for a in answers.values()]
    [winner] = [i for i in invites if answers[i.id].status_code == 200]
    bound = WechatUser.get_by_id(user.id)
    assert bound.role == "supplier" and bound.supplier_id == winner.supplier_id
    assert {i.id: Invite.get_by_id(i.id).uses for i in invites} == {i.id: int(i is winner) for i in invites}


# --- 5. ERP key scopes, and who sees prices ----------------------------------------------------------

def test_an_order_sync_key_cannot_create_invites(client, dbconn):
    sup = factories.supplier()
    _, orders_key = create_api_key("erp-orders")
    _, invites_key = create_api_key("hr-invites", ("invites",))
    as_orders = {"Authorization": f"Bearer {orders_key}"}
    as_invites = {"Authorization": f"Bearer {invites_key}"}

    refused = client.post("/api/v1/invites", json={"supplier_id": sup.id}, headers=as_orders)
    assert refused.status_code == 403 and refused.json["error"]["code"] == "api_key_scope"
    assert Invite.select().count() == 0
    assert client.post("/api/v1/invites", json={"supplier_id": sup.id}, headers=as_invites).status_code == 201
    assert client.post("/api/v1/suppliers", json={"code": "SUP-X", "name": "新厂"}, headers=as_invites).status_code == 403
    assert client.post("/api/v1/suppliers", json={"code": "SUP-X", "name": "新厂"}, headers=as_orders).status_code == 201


def test_qc_and_executives_do_not_see_prices_unless_allowed(auth, make_app, dbconn):
    order = factories.order(factories.customer(), [factories.supplier()])

    def prices(client):
        body = client.get(f"/api/v1/orders/{order.id}").json
        return body["unit_price"], body["tasks"][0]["unit_cost"]

    assert prices(auth.login("manager")) == ("12.50", "3.20")
    assert prices(auth.login("qc")) == (None, None)
    assert prices(auth.login("executive")) == (None, None)

    allowed = make_app(PRICE_ROLES=("qc",)).test_client()
    factories.staff_session(allowed, factories.staff("qc2", "long-enough-pw", role="qc"))
    assert prices(allowed) == ("12.50", "3.20")
