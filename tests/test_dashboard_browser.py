"""The dashboard in a real browser (issue 12, item 4): Debian's Chromium, headless, driven by
Playwright for Python, against the app served by a real HTTP server thread on MySQL (the session's
backend; the embedded SQLite default is covered by test_dashboard.py). Chromium comes from the
project's setup (scripts/ensure-chromium.sh, `make setup-dev`), never from `playwright install`.

A screenshot of every page is saved under test-artifacts/dashboard/ (gitignored) for a person to
look at; the downloaded export lands there too."""
import io
import os
import socket
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from openpyxl import load_workbook
from PIL import Image
from werkzeug.serving import make_server

from app.models import Alert, Batch
from app.services import alerts, photos, progress
from app.services.actors import Actor
from app.timeutil import china_date
from tests import factories
from tests.dashboard_helpers import frozen_plant

playwright_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "dashboard"
PASSWORD = "browser-test-pw"
RED = "rgb(217, 48, 37)"  # --red in dashboard.css: a late task's done part


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def live(backend, make_app):
    """The app on this session's MySQL database, served over HTTP by a werkzeug server thread."""
    if backend["name"] != "mysql":
        pytest.skip("the browser tests run against MySQL (the SQLite pages are tested in test_dashboard.py)")
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"no Chromium at {CHROMIUM}: run `make setup-dev` (scripts/ensure-chromium.sh)")
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    app = make_app(PUBLIC_BASE_URL=base)
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield app, base
    finally:
        server.shutdown()
        thread.join(10)


@pytest.fixture
def browser():
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def _jpeg():
    out = io.BytesIO()
    image = Image.new("RGB", (640, 480), (96, 110, 128))
    image.paste((230, 160, 60), (200, 150, 440, 330))
    image.save(out, "JPEG")
    return out.getvalue()


def _factory(app):
    """A manager with a password, a late task (due two days ago) with a red alert and a report
    with a photo, and an on-time task at another supplier."""
    with app.app_context():
        from app.extensions import db

        with db.connection_context():
            factories.staff("browser-manager", PASSWORD, "manager")
            sup, other, cust = factories.supplier(), factories.supplier("昆山华达焊接"), factories.customer()
            late = factories.order(cust, [sup], days_before=20, days_after=-2, qty=600)
            fine = factories.order(cust, [other], days_before=2, days_after=30, qty=100)
            late_task = late.tasks.get()
            user = factories.wechat_user(sup)
            photo, _ = photos.upload(user, _jpeg(), "progress")
            photos.process(photo.id)  # the media worker's job, as the worker runs it
            progress.report(Actor.wechat(user), user, late_task,
                            {"report_date": china_date() - timedelta(days=1), "qty_done": 150, "stage": "冲孔",
                             "note": "主力设备故障", "photo_ids": [photo.id]})
            alert = alerts.raise_alert(Actor.system("延期预警"), late_task, "delay", "red", deviation_pct=55.0,
                                       days_late=9, message="冲压进度落后计划 55%")
            return {"late": late, "fine": fine, "late_task": late_task, "fine_task": fine.tasks.get(),
                    "alert_id": alert.id}


def _shot(page, name):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_a_manager_works_through_the_dashboard_in_chromium(live, browser):
    app, base = live
    w = _factory(app)
    page = browser.new_page(viewport={"width": 1400, "height": 900}, locale="zh-CN", accept_downloads=True)
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    # Log in: the overview asks for it first, then comes back.
    page.goto(f"{base}/dashboard/")
    assert "/dashboard/login" in page.url
    _shot(page, "login")
    page.fill("input[name=username]", "browser-manager")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/dashboard/")
    assert "browser-manager（测试）" in page.inner_text("header")
    assert w["late_task"].task_no in page.inner_text("#late-tasks")
    _shot(page, "overview")

    # Acknowledge the red alert with its button.
    page.click(f"[data-test=ack-{w['alert_id']}]")
    page.wait_for_selector(".flash.ok")
    assert "预警已确认" in page.inner_text(".flash.ok")
    assert "已确认" in page.inner_text(f"#alert-{w['alert_id']} .status")
    with app.app_context():
        assert Alert.get_by_id(w["alert_id"]).status == "acknowledged"
    _shot(page, "overview-acknowledged")

    # The Gantt: the late task is drawn red, the on-time one is not; zooming to months narrows the bars.
    page.goto(f"{base}/dashboard/gantt")
    page.wait_for_selector("#gantt[data-ready='1'] .bar-wrapper")
    late_bar = page.locator(f'.bar-wrapper[data-id="t{w["late_task"].id}"]')
    fine_bar = page.locator(f'.bar-wrapper[data-id="t{w["fine_task"].id}"]')
    assert "gantt-late" in late_bar.get_attribute("class")
    fill = "el => getComputedStyle(el).fill"
    assert late_bar.locator(".bar-progress").evaluate(fill) == RED
    assert fine_bar.locator(".bar-progress").evaluate(fill) != RED
    page.wait_for_selector("g.dash-marks .node-mark")  # node markers drawn on the bars
    week_width = float(late_bar.locator(".bar").get_attribute("width"))
    _shot(page, "gantt-week")
    page.click("#zoom button[data-mode=Month]")
    page.wait_for_function(f"() => +document.querySelector('.bar-wrapper[data-id=\"t{w['late_task'].id}\"] .bar')"
                           f".getAttribute('width') < {week_width}")
    _shot(page, "gantt-month")
    late_bar.locator(".bar").click()
    page.wait_for_selector(".popup-wrapper .title")
    assert w["late_task"].task_no in page.inner_text(".popup-wrapper")

    # The order: its report's photo opens large.
    page.goto(f"{base}/dashboard/orders/{w['late'].id}")
    assert "主力设备故障" in page.inner_text("#reports")
    _shot(page, "order")
    page.click("#reports img.thumb")
    page.wait_for_selector("#lightbox:not([hidden]) img")
    page.wait_for_function("() => document.querySelector('#lightbox img').naturalWidth === 640")
    _shot(page, "order-photo")

    # Orders: the filter form as it comes (empty fields are no filter), and the Excel export of
    # the list, opened with openpyxl.
    page.goto(f"{base}/dashboard/orders")
    page.click("form.filters button[type=submit]")
    page.wait_for_load_state()
    assert page.url.rstrip("?") == f"{base}/dashboard/orders" and w["fine"].order_no in page.inner_text("table.grid")
    _shot(page, "orders")
    with page.expect_download() as download:
        page.click("[data-test=export-orders-xlsx]")
    saved = ARTIFACTS / download.value.suggested_filename
    download.value.save_as(saved)
    sheet = load_workbook(saved, read_only=True).active
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][:3] == ("订单号", "外部单号", "客户")
    assert {r[0] for r in rows[1:]} == {w["late"].order_no, w["fine"].order_no}
    assert errors == []


def test_qc_disposes_a_frozen_batch_from_the_supplier_page_in_chromium(live, browser):
    """QC opens the supplier's page from the supplier list, sees the frozen batch (and the scorecard's
    place, the 30-day figures, the material shortage), disposes it as a concession with a reason,
    then releases it — the batch is released in the database."""
    app, base = live
    with app.app_context():
        from app.extensions import db

        with db.connection_context():
            d = frozen_plant(app, app.test_client())
            batch = Batch.get_by_id(d.frozen["id"])
    page = browser.new_page(viewport={"width": 1400, "height": 900}, locale="zh-CN")
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{base}/dashboard/login")
    page.fill("input[name=username]", d.qc_user.username)
    page.fill("input[name=password]", "long-enough-pw")
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/dashboard/")
    assert batch.batch_no in page.inner_text("#frozen-batches")
    _shot(page, "overview-frozen")

    page.click("header nav >> text=供应商")
    page.click(f"#suppliers >> text={d.supplier.name}")
    page.wait_for_url(f"{base}/dashboard/suppliers/{d.supplier.id}")
    row = page.locator(f"#frozen-{batch.id}")
    assert batch.batch_no in row.inner_text() and "待处置" in row.inner_text()
    assert page.locator("#scorecard").is_visible()
    assert "0.0%" in page.inner_text("#quality-figures") and "缺料" in page.inner_text("#materials")
    _shot(page, "supplier")

    row.locator("select[name=disposition]").select_option("concession")
    row.locator("form.dispose input[name=reason]").fill("客户同意让步接收")
    row.locator(f"[data-test=dispose-{batch.id}]").click()
    page.wait_for_selector(".flash.ok")
    assert "已处置：让步接收" in page.inner_text(".flash.ok")
    page.locator(f"#frozen-{batch.id} form.release input[name=reason]").fill("让步放行")
    page.click(f"[data-test=release-{batch.id}]")
    page.wait_for_selector(".flash.ok >> text=批次已放行")
    assert "没有冻结的批次" in page.inner_text("#frozen-batches")
    _shot(page, "supplier-released")
    with app.app_context():
        assert Batch.get_by_id(batch.id).status == "released"

    page.goto(f"{base}/dashboard/orders/{d.order.id}")
    assert "已放行" in page.inner_text(f"#batch-{batch.id}") and "首件检验" in page.inner_text("#quality")
    _shot(page, "order-quality")
    assert errors == []
