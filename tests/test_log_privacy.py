"""No secret or personal data in the logs, at any level (issue 7, item 9).

The flows a day brings — a WeChat login, binding an invite, a staff login, an ERP key, a signed
photo link fetched over real HTTP, a subscribe message sent and a WeCom message recorded — run with
LOG_LEVEL=DEBUG while a handler on the root logger formats every record as production does (JSON);
no known secret may appear in any line. gunicorn's access log is checked through gunicorn's own
logger class. And a JSON line carries no terminal colour codes (issue 7, item 19).
"""
import json
import logging
import threading
from datetime import timedelta
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from werkzeug.serving import make_server

from app.extensions import current, db
from app.logs import JsonFormatter
from app.models import ApiKey, StaffUser, WechatUser
from app.services import notifications
from app.services.auth import create_staff
from jobs.notify import send_notification
from tests.helpers import picture

PASSWORD = "Priv4cy-horse-battery"
PHONE = "13912345678"
OPENID = "o-privacy-4f7b9c2e"
JS_CODE = "js-code-privacy-81d2"
SESSION_KEY = "c2Vzc2lvbi1wcml2YWN5LWtleQ=="
WECOM_RECIPIENT = "privacy-staff-9q"
MESSAGE = "隐私内容-请勿记录"


class Capture(logging.Handler):
    """Every record, formatted the way production writes it."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonFormatter())
        self.lines = []

    def emit(self, record):
        self.lines.append(self.format(record))


@pytest.fixture
def captured():
    handler = Capture()
    logging.getLogger().addHandler(handler)
    yield handler
    logging.getLogger().removeHandler(handler)


@pytest.fixture
def debug_app(make_app, wechat_fake):
    """Mini program configured (pointed at the fake), WeCom not: its messages are recorded."""
    return make_app(LOG_LEVEL="DEBUG", LOG_FORMAT="json", WECHAT_APP_ID=wechat_fake.appid,
                    WECHAT_APP_SECRET=wechat_fake.secret, WECHAT_API_BASE_URL=wechat_fake.url)


@pytest.fixture
def served(debug_app):
    """The app behind werkzeug's server, the one `flask serve` runs, with its request log."""
    server = make_server("127.0.0.1", 0, debug_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)
    server.server_close()


def _staff_and_key(app):
    """A manager (password hashed in the INSERT) and an ERP key made with the CLI, as an operator would."""
    with app.app_context(), db.connection_context():
        create_staff("manager", PASSWORD, "manager")
    result = app.test_cli_runner().invoke(args=["create-api-key", "erp", "--scope", "orders", "--scope", "invites"])
    assert result.exit_code == 0, result.output
    return result.output.strip().splitlines()[-1]


def _send_and_record(app, wechat_fake, user_id):
    """One subscribe message sent through WeChat (an access token is used), one WeCom message recorded."""
    with app.app_context(), db.connection_context():
        notifications.add_quota(WechatUser.get_by_id(user_id), "TPL_NODE_DONE", 1)
        wechat_fake.grant_quota(OPENID, "TPL_NODE_DONE", 1)
        with db.atomic():
            sent = notifications.record("mp_subscribe", OPENID, {"data": {"thing2": MESSAGE}}, template_id="TPL_NODE_DONE")
            recorded = notifications.record("wecom_app", WECOM_RECIPIENT, {"content": f"{MESSAGE} {PHONE}"})
        # What the worker runs (the embedded default has already run them in process: then a no-op).
        send_notification(sent.id)
        send_notification(recorded.id)
    return recorded.id


def test_no_secret_or_personal_data_reaches_the_logs_at_debug(debug_app, served, wechat_fake, captured):
    client = debug_app.test_client()
    api_key = _staff_and_key(debug_app)
    assert client.post("/api/v1/auth/login", json={"username": "manager", "password": PASSWORD}).status_code == 200
    supplier = client.post("/api/v1/suppliers", json={"code": "S-PRIV", "name": "隐私测试厂", "contact_phone": PHONE})
    assert supplier.status_code == 201, supplier.json
    invite = client.post("/api/v1/invites", json={"supplier_id": supplier.json["id"]},
                         headers={"Authorization": f"Bearer {api_key}"})
    assert invite.status_code == 201, invite.json
    invite_code = invite.json["code"]

    wechat_fake.add_login_code(JS_CODE, OPENID, session_key=SESSION_KEY)
    login = client.post("/mp/v1/auth/login", json={"code": JS_CODE})
    assert login.status_code == 200, login.json
    mp = {"Authorization": f"Bearer {login.json['token']}"}
    assert client.post("/mp/v1/auth/bind", json={"invite_code": invite_code}, headers=mp).status_code == 200

    with debug_app.app_context():
        storage = current().storage
        storage.put("s/1/privacy/photo.jpg", picture(), "image/jpeg")
        link = urlsplit(storage.signed_url("s/1/privacy/photo.jpg"))
    signature = parse_qs(link.query)["sig"][0]
    assert requests.get(f"{served}{link.path}?{link.query}", timeout=5).status_code == 200

    recorded_id = _send_and_record(debug_app, wechat_fake, login.json["user"]["id"])
    access_token = wechat_fake.business_requests[-1]["params"]["access_token"]

    with debug_app.app_context(), db.connection_context():
        password_hash = StaffUser.get(StaffUser.username == "manager").password_hash
        key_hash = ApiKey.get(ApiKey.name == "erp").key_hash
    secrets = {
        "invite code": invite_code, "openid": OPENID, "wx.login code": JS_CODE, "session_key": SESSION_KEY,
        "password": PASSWORD, "password hash": password_hash, "API key": api_key, "API key hash": key_hash,
        "photo link signature": signature, "access token": access_token, "app secret": wechat_fake.secret,
        "phone": PHONE, "WeCom recipient": WECOM_RECIPIENT, "message": MESSAGE,
        "mini-program token": login.json["token"],
    }
    lines = captured.lines
    leaked = {name: [line for line in lines if value in line] for name, value in secrets.items()}
    leaked = {name: found for name, found in leaked.items() if found}
    assert sorted(leaked) == [], "\n".join(f"{name}: {found[0][:300]}" for name, found in leaked.items())
    # The logs were really written at DEBUG: SQL, the access log, the recorded message.
    assert any('"logger": "peewee"' in line for line in lines)
    assert any('"logger": "werkzeug"' in line and f"GET {link.path} HTTP/1.1" in line for line in lines)
    assert any(f"notification {recorded_id} recorded" in line for line in lines)


@pytest.fixture
def gunicorn_access_log():
    """gunicorn's logger with --access-logfile -, built before the app is loaded, as its arbiter does."""
    from gunicorn.config import Config
    from gunicorn.glogging import Logger

    cfg = Config()
    cfg.set("accesslog", "-")
    glog = Logger(cfg)
    handler = Capture()
    glog.access_log.addHandler(handler)
    yield glog, handler.lines
    for logger in (glog.access_log, glog.error_log):
        for old in list(logger.handlers):
            logger.removeHandler(old)


def test_gunicorn_access_log_keeps_the_path_without_the_query(gunicorn_access_log, make_app):
    glog, lines = gunicorn_access_log
    make_app()  # the worker imports wsgi:app
    environ = {
        "REQUEST_METHOD": "GET", "RAW_URI": "/files/s/1/a.jpg?expires=1900000000&sig=SIGNATURE-123",
        "PATH_INFO": "/files/s/1/a.jpg", "QUERY_STRING": "expires=1900000000&sig=SIGNATURE-123",
        "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "10.0.0.9",
        "HTTP_REFERER": "https://example.com/page?token=REFERER-TOKEN", "HTTP_USER_AGENT": "MicroMessenger",
    }
    response = SimpleNamespace(status="200 OK", sent=1234, headers=[])

    glog.access(response, SimpleNamespace(headers=[]), environ, timedelta(milliseconds=7))

    assert len(lines) == 1
    assert '\\"GET /files/s/1/a.jpg HTTP/1.1\\" 200 1234' in lines[0]
    assert "https://example.com/page" in lines[0]
    assert "SIGNATURE-123" not in lines[0] and "REFERER-TOKEN" not in lines[0]


def test_json_log_lines_carry_no_colour_codes(served, captured):
    """werkzeug colours a 404 yellow and a 401 red for a terminal; a JSON line is not one."""
    assert requests.get(f"{served}/files/s/1/none.jpg?expires=1&sig=forged", timeout=5).status_code == 404
    assert requests.get(f"{served}/api/v1/me", timeout=5).status_code == 401

    messages = [json.loads(line)["msg"] for line in captured.lines if '"logger": "werkzeug"' in line]

    assert any('"GET /files/s/1/none.jpg HTTP/1.1" 404' in m for m in messages), messages
    assert any('"GET /api/v1/me HTTP/1.1" 401' in m for m in messages), messages
    assert not [m for m in messages if "\x1b" in m]
