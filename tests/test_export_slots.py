"""Exports run one at a time per caller and EXPORT_MAX_CONCURRENT (default 2) at a time in all
(app/services/export_slots.py): over the cap, 429 export_busy with Retry-After and nothing else;
the slot is freed when the streamed answer ends or is closed, and lapses by itself if a worker dies.
Both backends: leases in Redis (mysql) and in the app (sqlite, no Redis)."""
import time

import pytest

from app import config
from app.domain.errors import RateLimited
from app.services import export_slots
from app.services.auth import create_api_key
from tests import factories
from tests.conftest import StaffAuth

ROUTES = ("orders", "tasks", "reports", "alerts")


def _busy(answer, own):
    assert answer.status_code == 429, answer.get_data()[:300]
    assert answer.json["error"]["code"] == "export_busy"
    assert answer.json["error"]["message"] == ("您已有一个导出正在进行，请等它完成后再试" if own
                                               else "已有导出正在进行，请稍后再试")
    assert answer.headers["Retry-After"] == str(export_slots.RETRY_AFTER_SECONDS)


def test_one_export_per_caller_and_two_in_all_until_the_first_ends(app, manager, backend):
    factories.order(factories.customer(), [factories.supplier()])
    first = manager.get("/api/v1/exports/orders?format=csv")  # streaming: only its first piece is read
    assert first.status_code == 200

    _busy(manager.get("/api/v1/exports/tasks?format=csv"), own=True)
    _busy(manager.get("/api/v1/exports/reports"), own=True)  # XLSX too: refused before any row is read

    _, key = create_api_key("erp", ("orders", "alerts"))
    erp = app.test_client()
    # XLSX: the test client runs streams in one thread, and two CSV streams (each holding its request
    # context) may only end in the reverse order they began.
    second = erp.get("/api/v1/exports/alerts", headers={"Authorization": f"Bearer {key}"})
    assert second.status_code == 200  # another caller, the second slot of two

    qc = StaffAuth(app.test_client()).login("qc")
    _busy(qc.get("/api/v1/exports/orders?format=csv"), own=False)  # the whole deployment's cap

    assert first.get_data().decode("utf-8").startswith("\ufeff订单号")  # the first ends
    again = manager.get("/api/v1/exports/orders?format=csv")
    assert again.status_code == 200 and again.get_data()
    second.close()
    assert qc.get("/api/v1/exports/orders?format=csv").status_code == 200


def test_closing_an_unread_xlsx_answer_frees_the_slot(app, manager):
    """The client went away: the server closes the answer without reading it."""
    first = manager.get("/api/v1/exports/orders")
    assert first.status_code == 200
    _busy(manager.get("/api/v1/exports/orders"), own=True)
    first.close()
    answer = manager.get("/api/v1/exports/orders")
    assert answer.status_code == 200 and answer.get_data()[:2] == b"PK"


def test_a_download_link_clicked_in_the_browser_shows_the_refusal_as_a_page(app, manager):
    """The dashboard's download buttons are plain links: a browser asking for HTML gets the message
    on a dashboard page (still 429) with a way back, not the JSON envelope as text."""
    first = manager.get("/api/v1/exports/orders?format=csv")
    browser = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
               "Referer": "http://localhost/dashboard/orders?state=in_production"}
    page = manager.get("/api/v1/exports/tasks", headers=browser)
    assert page.status_code == 429 and page.mimetype == "text/html"
    assert page.headers["Retry-After"] == str(export_slots.RETRY_AFTER_SECONDS)
    html = page.get_data(as_text=True)
    assert "您已有一个导出正在进行，请等它完成后再试" in html
    assert 'href="http://localhost/dashboard/orders?state=in_production"' in html
    elsewhere = manager.get("/api/v1/exports/tasks", headers={**browser, "Referer": "https://evil.example/"})
    assert 'href="/dashboard/"' in elsewhere.get_data(as_text=True)  # back only to a dashboard page
    _busy(manager.get("/api/v1/exports/tasks"), own=True)  # programs still get JSON
    first.close()


def test_an_export_that_fails_before_streaming_frees_the_slot(app, manager, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("the database went away")

    with monkeypatch.context() as patch:
        patch.setattr("app.services.exports.table", broken)
        assert manager.get("/api/v1/exports/orders?format=csv").status_code == 500
    assert manager.get("/api/v1/exports/orders?format=csv").status_code == 200


def test_the_cap_is_a_setting(make_app, backend):
    app = make_app(EXPORT_MAX_CONCURRENT=1)
    with app.app_context():
        held = export_slots.acquire("staff:1")
        with pytest.raises(RateLimited) as refused:
            export_slots.acquire("key:7")
        assert refused.value.code == "export_busy"
        held.release()
        held.release()  # idempotent: the body's end and the server's close() both call it
        export_slots.acquire("key:7").release()


def test_the_cap_must_allow_one_export():
    with pytest.raises(config.ConfigError, match="EXPORT_MAX_CONCURRENT"):
        config.load({"SECRET_KEY": "x", "EXPORT_MAX_CONCURRENT": 0})
    assert config.load({"SECRET_KEY": "x"})["EXPORT_MAX_CONCURRENT"] == 2


def test_a_dead_workers_slot_lapses_and_a_running_export_keeps_it(app, monkeypatch):
    """A worker killed mid-export never releases: its lease lapses after LEASE_SECONDS. A running
    export renews it as it reads rows."""
    monkeypatch.setattr(export_slots, "LEASE_SECONDS", 0.4)
    monkeypatch.setattr(export_slots, "RENEW_SECONDS", 0)
    with app.app_context():
        running = export_slots.acquire("staff:1")
        rows = running.renewing(iter(range(3)))
        for _ in rows:
            time.sleep(0.2)  # 0.6 s in all: alive only because each row renewed the lease
            with pytest.raises(RateLimited):
                export_slots.acquire("staff:1")
        time.sleep(0.5)  # the worker "died": no more renewals
        export_slots.acquire("staff:1").release()


def test_the_429_is_documented_on_every_export_route(client):
    paths = client.get("/openapi.json").json["paths"]
    for kind in ROUTES:
        answer = paths[f"/api/v1/exports/{kind}"]["get"]["responses"]["429"]
        assert "export_busy" in answer["description"] and "Retry-After" in answer["headers"]
        assert answer["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorEnvelope"}
