"""The staff web dashboard (issue 12): logging in, the pages, the buttons (same services and rules
as the API, CSRF-checked), the Gantt's data and the exports. Browser tests: test_dashboard_browser.py."""
import csv
import io
import re
from datetime import timedelta

from openpyxl import load_workbook
from peewee import fn
from PIL import Image

from app.models import (
    Alert,
    AuditEntry,
    Batch,
    NodeCompletion,
    NodeInstance,
    Nonconformance,
    Order,
    Photo,
    ProgressReport,
    Task,
    Urge,
)
from app.services import alerts, dashboard, photos, progress
from app.services.actors import Actor
from app.services.auth import create_api_key
from app.timeutil import china_date
from tests import factories, quality_helpers
from tests.dashboard_helpers import freeze_another, frozen_plant
from tests.sqlcount import statements

ENGINE = Actor.system("延期预警")


def _csrf(client, path="/dashboard/"):
    page = client.get(path)
    assert page.status_code == 200, page.data[:300]
    return re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True)).group(1)


def _jpeg(colour="orange"):
    out = io.BytesIO()
    Image.new("RGB", (320, 240), colour).save(out, "JPEG")
    return out.getvalue()


def _world():
    """A late order (due two days ago, red delay alert, a report with a photo, an urge) and an
    on-time one, at two suppliers."""
    sup, other = factories.supplier(), factories.supplier("昆山华达焊接")
    cust = factories.customer()
    late = factories.order(cust, [sup], days_before=20, days_after=-2, qty=600)
    fine = factories.order(cust, [other], days_before=2, days_after=30, qty=100)
    late_task, fine_task = late.tasks.get(), fine.tasks.get()
    user = factories.wechat_user(sup)
    photo, _ = photos.upload(user, _jpeg(), "progress")
    photos.process(photo.id)  # what the media worker does (in process already on SQLite)
    progress.report(Actor.wechat(user), user, late_task,
                    {"report_date": china_date() - timedelta(days=1), "qty_done": 200, "stage": "冲孔",
                     "note": "设备抢修", "photo_ids": [photo.id]})
    alert = alerts.raise_alert(ENGINE, late_task, "delay", "red", deviation_pct=60.0, days_late=9,
                               message="冲压进度落后计划 60%")
    return {"late": late, "fine": fine, "late_task": Task.get_by_id(late_task.id), "fine_task": fine_task,
            "alert": alert, "photo": Photo.get_by_id(photo.id), "supplier": sup, "user": user}


# --- logging in -------------------------------------------------------------------------------------

def test_pages_send_strangers_to_the_login_form(client, dbconn):
    for path in ("/dashboard/", "/dashboard/gantt", "/dashboard/orders", "/dashboard/orders/1"):
        answer = client.get(path)
        assert answer.status_code == 302 and "/dashboard/login" in answer.headers["Location"], path
    assert client.get("/api/v1/gantt").status_code == 401


def test_staff_log_in_with_their_password_and_a_form_token(client, dbconn):
    factories.staff("zhang", "correct-horse-pw", "manager")
    token = _csrf(client, "/dashboard/login?next=/dashboard/gantt")
    form = {"csrf_token": token, "username": "zhang", "password": "wrong-password", "next": "/dashboard/gantt"}

    wrong = client.post("/dashboard/login", data=form)
    assert wrong.status_code == 401 and "用户名或密码错误" in wrong.get_data(as_text=True)
    forged = client.post("/dashboard/login", data={**form, "password": "correct-horse-pw", "csrf_token": "forged"})
    assert forged.status_code == 403 and forged.json["error"]["code"] == "csrf_failed"

    ok = client.post("/dashboard/login", data={**form, "password": "correct-horse-pw"})
    assert ok.status_code == 303 and ok.headers["Location"] == "/dashboard/gantt"
    assert "zhang（测试）" in client.get("/dashboard/").get_data(as_text=True)
    assert client.get("/api/v1/me").json["role"] == "manager"  # the API's own session

    client.post("/dashboard/logout", data={"csrf_token": _csrf(client)})
    assert client.get("/dashboard/").status_code == 302


def test_login_never_redirects_to_another_site(client, dbconn):
    factories.staff("li", "correct-horse-pw", "qc")
    for target in ("//evil.example/x", "https://evil.example/", "/dashboard/\\evil", "/api/v1/me"):
        token = _csrf(client, "/dashboard/login")
        answer = client.post("/dashboard/login", data={"csrf_token": token, "username": "li",
                                                       "password": "correct-horse-pw", "next": target})
        assert answer.headers["Location"] == "/dashboard/", target


# --- the overview -------------------------------------------------------------------------------------

def test_the_overview_shows_states_late_tasks_open_alerts_and_missing_reports(manager):
    w = _world()
    html = manager.get("/dashboard/").get_data(as_text=True)

    late_table = html.split('id="late-tasks"')[1].split("</table>")[0]
    assert w["late_task"].task_no in late_table and w["fine_task"].task_no not in late_table
    assert 'class="row-red"' in late_table and "红色" in late_table
    assert f'id="alert-{w["alert"].id}"' in html and "冲压进度落后计划 60%" in html
    assert f'action="/dashboard/alerts/{w["alert"].id}/ack"' in html
    missing = html.split('id="missing-reports"')[1].split("</table>")[0]
    if 'colspan="6"' not in missing:  # a working day: both running tasks still owe today's report
        assert w["late_task"].task_no in missing and w["fine_task"].task_no in missing
    assert "生产中" in html and "/api/v1/exports/tasks" in html and "/api/v1/exports/alerts" in html


def test_the_overview_costs_the_same_queries_for_one_or_many_late_tasks(manager):
    _world()
    _, few = statements(lambda: manager.get("/dashboard/"))
    for _ in range(6):
        _world()
    answer, many = statements(lambda: manager.get("/dashboard/"))
    assert answer.status_code == 200
    assert len(many) == len(few) and len(few) <= 20, few


# --- buttons: the API's services and rules ---------------------------------------------------------------

def test_acknowledging_and_resolving_from_the_dashboard_is_the_apis_response(manager):
    w = _world()
    alert = w["alert"]
    token = _csrf(manager)

    unsigned = manager.post(f"/dashboard/alerts/{alert.id}/ack", data={"csrf_token": "nope"})
    assert unsigned.status_code == 403 and Alert.get_by_id(alert.id).status == "open"

    done = manager.post(f"/dashboard/alerts/{alert.id}/ack", data={"csrf_token": token, "next": "/dashboard/"})
    assert done.status_code == 303 and done.headers["Location"] == "/dashboard/"
    acked = Alert.get_by_id(alert.id)
    assert acked.status == "acknowledged" and acked.acknowledged_by.display_name == "张经理"
    assert AuditEntry.select().where((AuditEntry.action == "alert.ack") & (AuditEntry.object_id == str(alert.id))).count() == 1
    assert "预警已确认" in manager.get("/dashboard/").get_data(as_text=True)

    blank = manager.post(f"/dashboard/alerts/{alert.id}/resolve", data={"csrf_token": token, "note": "  "})
    assert blank.status_code == 422
    manager.post(f"/dashboard/alerts/{alert.id}/resolve", data={"csrf_token": token, "note": "已加派人手"})
    resolved = Alert.get_by_id(alert.id)
    assert resolved.status == "resolved" and resolved.resolve_note == "已加派人手"
    assert Task.get_by_id(alert.task_id).alert_level is None  # the task's level follows, as through the API
    again = manager.post(f"/dashboard/alerts/{alert.id}/ack", data={"csrf_token": token}, follow_redirects=True)
    assert "该预警已解除" in again.get_data(as_text=True)  # the service's refusal, shown on the page


def test_qc_sees_no_buttons_for_a_delay_and_cannot_answer_it(auth, client):
    w = _world()
    qc = auth.login("qc")
    html = qc.get("/dashboard/").get_data(as_text=True)
    assert f'id="alert-{w["alert"].id}"' in html and f"/dashboard/alerts/{w['alert'].id}/ack" not in html

    answer = qc.post(f"/dashboard/alerts/{w['alert'].id}/ack", data={"csrf_token": _csrf(qc)}, follow_redirects=True)
    assert "质检只能处理质检不合格预警" in answer.get_data(as_text=True)
    assert Alert.get_by_id(w["alert"].id).status == "open"


def test_managers_urge_from_the_order_page_and_executives_may_not(auth, client):
    w = _world()
    task = w["late_task"]
    boss = auth.login("executive")
    page = boss.get(f"/dashboard/orders/{w['late'].id}").get_data(as_text=True)
    assert f"/dashboard/tasks/{task.id}/urge" not in page
    refused = boss.post(f"/dashboard/tasks/{task.id}/urge", data={"csrf_token": _csrf(boss)}, follow_redirects=True)
    assert "当前角色无权执行此操作" in refused.get_data(as_text=True) and Urge.select().count() == 0

    boss.post("/api/v1/auth/logout")
    manager = auth.login("manager")
    here = f"/dashboard/orders/{w['late'].id}"
    answer = manager.post(f"/dashboard/tasks/{task.id}/urge",
                          data={"csrf_token": _csrf(manager, here), "message": "请加班赶工", "next": here})
    assert answer.status_code == 303 and answer.headers["Location"] == here
    urge = Urge.get()
    assert (urge.task_id, urge.message, urge.via, urge.by_staff.display_name) == (task.id, "请加班赶工", "dashboard", "张经理")
    assert AuditEntry.select().where(AuditEntry.action == "task.urge").count() == 1
    assert "请加班赶工" in manager.get(here).get_data(as_text=True)


def test_managers_confirm_a_first_article_from_the_order_page(manager):
    w = _world()
    task, user = w["late_task"], w["user"]
    progress.complete_node(Actor.wechat(user), task, "first_article", {"note": "首件已完成"})
    here = f"/dashboard/orders/{w['late'].id}"
    page = manager.get(here).get_data(as_text=True)
    assert "首件待确认" in page and "确认首件" in page
    node = NodeInstance.get((NodeInstance.order == w["late"].id) & (NodeInstance.code == "first_article"))

    manager.post(f"/dashboard/orders/{w['late'].id}/nodes/{node.id}/confirm",
                 data={"csrf_token": _csrf(manager, here), "task_id": task.id, "note": "尺寸合格"})
    part = NodeCompletion.get((NodeCompletion.node == node.id) & (NodeCompletion.task == task.id))
    assert part.state == "done" and part.reviewed_by
    assert "首件待确认" not in manager.get(here).get_data(as_text=True)


# --- the order page ------------------------------------------------------------------------------------

def test_the_order_page_shows_nodes_reports_with_photos_alerts_and_history(manager):
    w = _world()
    html = manager.get(f"/dashboard/orders/{w['late'].id}").get_data(as_text=True)
    assert "订单确认" in html and "物流发货" in html and 'class="node colour-' in html
    reports = html.split('id="reports"')[1].split("</table>")[0]
    assert "设备抢修" in reports and 'class="thumb"' in reports and "data-full=" in reports
    thumb = re.search(r'<img class="thumb" src="([^"]+)"', reports).group(1).replace("&amp;", "&")
    assert manager.get(thumb).status_code == 200  # the signed link works
    assert "冲压进度落后计划 60%" in html
    assert f"/api/v1/orders/{w['late'].id}/labels.pdf" in html
    assert "填报进度" in html.split('id="history"')[1]
    assert "12.50" in html  # managers see the price
    assert manager.get("/dashboard/orders/999999").status_code == 404


def test_the_order_list_filters_as_its_form_sends_them(manager):
    w = _world()
    factories.order(factories.customer(), [w["supplier"]], state="draft")
    everything = manager.get("/dashboard/orders")
    assert everything.status_code == 200 and "3 个" in everything.get_data(as_text=True)
    running = manager.get("/dashboard/orders", query_string={"state": "in_production", "q": w["late"].order_no})
    html = running.get_data(as_text=True)
    assert "1 个" in html and w["late"].order_no in html
    assert f"/api/v1/exports/orders?format=xlsx&amp;state=in_production&amp;q={w['late'].order_no}" in html
    assert manager.get("/dashboard/orders?state=purple").status_code == 422


def test_qc_does_not_see_prices_on_the_order_page(auth, client):
    w = _world()
    qc = auth.login("qc")
    html = qc.get(f"/dashboard/orders/{w['late'].id}").get_data(as_text=True)
    assert "单价" not in html and "12.50" not in html


def test_the_order_page_costs_a_fixed_number_of_queries(manager):
    w = _world()
    _, few = statements(lambda: manager.get(f"/dashboard/orders/{w['late'].id}"))
    user = w["user"]
    for offset in (2, 3, 4):
        photo, _ = photos.upload(user, _jpeg(("red", "blue", "green")[offset - 2]), "progress")
        photos.process(photo.id)
        progress.report(Actor.wechat(user), user, w["late_task"],
                        {"report_date": china_date() - timedelta(days=offset), "qty_done": 100 - offset,
                         "photo_ids": [photo.id]})
    _, many = statements(lambda: manager.get(f"/dashboard/orders/{w['late'].id}"))
    assert len(many) == len(few), many


# --- Gantt data -------------------------------------------------------------------------------------------

def test_the_gantt_marks_late_tasks_and_carries_progress_eta_and_nodes(manager):
    w = _world()
    data = manager.get("/api/v1/gantt").json
    rows = {t["id"]: t for t in data["tasks"]}
    late, fine = rows[w["late_task"].id], rows[w["fine_task"].id]
    assert late["late"] is True and fine["late"] is False
    assert late["alert_level"] == "red" and late["qty_done"] == 200 and late["progress_pct"] == 33.3
    assert late["progress"]["days_late"] >= 2 and late["progress"]["level"] in ("yellow", "orange", "red")
    assert [n["code"] for n in late["nodes"]][:2] == ["confirmed", "materials_ready"]
    assert {n["colour"] for n in late["nodes"]} <= {"grey", "yellow", "green", "red", "blue"}
    assert late["order"]["order_no"] == w["late"].order_no and data["truncated"] is False

    by_supplier = manager.get("/api/v1/gantt", query_string={"group": "supplier", "supplier_id": w["supplier"].id}).json
    assert [t["id"] for t in by_supplier["tasks"]] == [w["late_task"].id]
    assert manager.get("/api/v1/gantt", query_string={"group": "customer"}).status_code == 422


def test_the_gantt_lists_tasks_by_their_orders_due_date_and_says_when_it_is_cut(manager):
    cust, a, b = factories.customer(), factories.supplier(), factories.supplier()
    later = factories.order(cust, [a, b], days_after=30)
    sooner = factories.order(cust, [b, a], days_after=5)
    same_day = factories.order(cust, [a], days_after=30)  # the same due date as `later`: by order id
    factories.order(cust, [a], days_after=1, state="draft")  # drafts are not on the Gantt
    done = factories.order(cust, [a], days_after=2, state="completed")
    cancelled = later.tasks.order_by(Task.id)[1]
    Task.update(state="cancelled").where(Task.id == cancelled.id).execute()

    def ids(order):
        return [t.id for t in order.tasks.order_by(Task.id) if t.id != cancelled.id]

    expected = ids(sooner) + ids(later) + ids(same_day)
    assert [t["id"] for t in manager.get("/api/v1/gantt").json["tasks"]] == expected
    with_done = manager.get("/api/v1/gantt", query_string={"finished": "true"}).json
    assert [t["id"] for t in with_done["tasks"]] == ids(done) + expected
    tasks, truncated = dashboard.gantt_tasks(limit=2)
    assert [t.id for t in tasks] == expected[:2] and truncated
    tasks, truncated = dashboard.gantt_tasks(limit=4)
    assert [t.id for t in tasks] == expected and not truncated


def test_only_staff_read_the_gantt(client, dbconn):
    _, key = create_api_key("erp", ("orders", "alerts"))
    assert client.get("/api/v1/gantt", headers={"Authorization": f"Bearer {key}"}).status_code == 403


# --- exports ------------------------------------------------------------------------------------------------

def _csv(answer):
    assert answer.status_code == 200 and answer.mimetype == "text/csv"
    text = answer.get_data().decode("utf-8")
    assert text.startswith("\ufeff")  # Excel reads the Chinese
    return list(csv.reader(io.StringIO(text[1:])))


def test_a_csv_export_has_chinese_headers_follows_the_filters_and_defuses_formulas(manager):
    w = _world()
    Order.update(product_name='=HYPERLINK("http://evil.example","点我")', notes="@SUM(A1)").where(
        Order.id == w["late"].id).execute()
    factories.order(factories.customer(), [w["supplier"]], state="draft")

    rows = _csv(manager.get("/api/v1/exports/orders", query_string={"format": "csv", "state": "in_production"}))
    header, body = rows[0], rows[1:]
    assert header[:5] == ["订单号", "外部单号", "客户", "产品编码", "产品名称"] and "单价" in header
    assert sorted(r[0] for r in body) == sorted([w["late"].order_no, w["fine"].order_no])  # no draft
    late = next(r for r in body if r[0] == w["late"].order_no)
    assert late[header.index("产品名称")] == '\'=HYPERLINK("http://evil.example","点我")'
    assert late[header.index("备注")] == "'@SUM(A1)"
    assert late[header.index("状态")] == "生产中"
    assert "attachment" in manager.get("/api/v1/exports/orders?format=csv").headers["Content-Disposition"]


def test_an_xlsx_export_opens_in_a_spreadsheet_with_numbers_as_numbers(manager):
    w = _world()
    answer = manager.get("/api/v1/exports/tasks", query_string={"format": "xlsx", "supplier_id": w["supplier"].id})
    assert answer.status_code == 200 and answer.mimetype.endswith("spreadsheetml.sheet")
    sheet = load_workbook(io.BytesIO(answer.get_data()), read_only=True).active
    rows = [list(r) for r in sheet.iter_rows(values_only=True)]
    header = rows[0]
    assert sheet.title == "任务" and header[:4] == ["任务号", "订单号", "产品名称", "工序"]
    assert [r[0] for r in rows[1:]] == [w["late_task"].task_no]
    row = dict(zip(header, rows[1], strict=True))
    assert row["完成数量"] == 200 and row["计划数量"] == 600 and row["预警级别"] == "红"
    assert isinstance(row["进度偏差%"], float) and row["延期工作日"] >= 2
    assert row["单位成本"] == 3.2


def test_an_xlsx_export_keeps_formulas_as_text_and_dates_as_dates(manager):
    w = _world()
    Order.update(product_name='=HYPERLINK("http://evil.example","点我")', notes="+1+1").where(
        Order.id == w["late"].id).execute()

    answer = manager.get("/api/v1/exports/orders", query_string={"format": "xlsx", "state": "in_production"})
    sheet = load_workbook(io.BytesIO(answer.get_data())).active
    header = [c.value for c in sheet[1]]
    late = next(r for r in sheet.iter_rows(min_row=2) if r[0].value == w["late"].order_no)
    cells = dict(zip(header, late, strict=True))
    assert sheet.title == "订单" and header[:5] == ["订单号", "外部单号", "客户", "产品编码", "产品名称"]
    assert cells["产品名称"].data_type == "s" and cells["产品名称"].value == '\'=HYPERLINK("http://evil.example","点我")'
    assert cells["备注"].value == "'+1+1" and cells["数量"].value == w["late"].quantity
    assert cells["交期"].is_date and cells["交期"].value.date() == w["late"].due_date


def test_exports_hide_prices_from_qc_and_alerts_need_the_scope(auth, client):
    w = _world()
    qc = auth.login("qc")
    header = _csv(qc.get("/api/v1/exports/orders?format=csv"))[0]
    assert "单价" not in header
    alerts_rows = _csv(qc.get("/api/v1/exports/alerts", query_string={"format": "csv", "kind": "delay"}))
    assert alerts_rows[1][:4] == [str(w["alert"].id), "延期预警", "红", "未确认"]
    _, orders_key = create_api_key("erp-orders", ("orders",))
    refused = client.get("/api/v1/exports/alerts", headers={"Authorization": f"Bearer {orders_key}"})
    assert refused.status_code == 403
    assert qc.get("/api/v1/exports/alerts?format=pdf").status_code == 422
    # Prices go to keys kept for orders, not to a key kept for invites.
    assert "单价" in _csv(client.get("/api/v1/exports/orders?format=csv",
                                   headers={"Authorization": f"Bearer {orders_key}"}))[0]
    _, invites_key = create_api_key("erp-invites", ("invites",))
    assert "单价" not in _csv(client.get("/api/v1/exports/orders?format=csv",
                                       headers={"Authorization": f"Bearer {invites_key}"}))[0]


def test_a_reports_export_filters_by_order_and_date(manager):
    w = _world()
    yesterday = (china_date() - timedelta(days=1)).isoformat()
    rows = _csv(manager.get("/api/v1/exports/reports", query_string={"format": "csv", "order_id": w["late"].id,
                                                                     "date_from": yesterday}))
    assert rows[0][:6] == ["日期", "任务号", "订单号", "工序", "供应商", "累计完成"]
    assert [(r[0], r[1], r[5]) for r in rows[1:]] == [(yesterday, w["late_task"].task_no, "200")]
    none = _csv(manager.get("/api/v1/exports/reports", query_string={"format": "csv", "order_id": w["fine"].id}))
    assert none[1:] == []


def test_a_large_export_comes_out_whole_in_order(manager):
    cust = factories.customer()
    start = china_date()
    Order.insert_many([{"order_no": f"SO-BULK-{i:05d}", "customer": cust.id, "product_name": "支架",
                        "quantity": 10, "planned_start": start, "due_date": start, "state": "confirmed"}
                       for i in range(2345)]).execute()
    rows = _csv(manager.get("/api/v1/exports/orders?format=csv"))[1:]
    assert len(rows) == 2345 and rows[0][0] == "SO-BULK-02344" and rows[-1][0] == "SO-BULK-00000"
    sheet = load_workbook(io.BytesIO(manager.get("/api/v1/exports/orders").get_data()), read_only=True).active
    assert sum(1 for _ in sheet.iter_rows(values_only=True)) == 2346


# --- front-end libraries ------------------------------------------------------------------------------------

def test_front_end_libraries_are_served_by_the_app_at_the_locked_versions(manager):
    """No CDN: every script and stylesheet a page loads is the app's own, and the vendored files are
    the versions package-lock.json records (scripts/vendor-frontend.sh)."""
    import json
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    lock = json.loads((root / "package-lock.json").read_text())
    gantt = lock["packages"]["node_modules/frappe-gantt"]["version"]
    assert f"frappe-gantt {gantt} " in (root / "app/dashboard/static/vendor/VERSIONS.txt").read_text()
    assert (root / "app/dashboard/static/vendor/frappe-gantt/license.txt").exists()
    for path in ("/dashboard/", "/dashboard/gantt", "/dashboard/orders"):
        html = manager.get(path).get_data(as_text=True)
        sources = re.findall(r'(?:src|href)="([^"]+\.(?:js|css))"', html)
        assert sources and all(s.startswith("/dashboard/static/") for s in sources), sources
        for source in sources:
            assert manager.get(source).status_code == 200, source


def test_an_order_level_alert_shows_on_the_overview_and_in_the_alerts_export(manager):
    """An overdue 订单确认 node is the order's alert: no task, no supplier — the overview and the
    export show it with the node's name instead of failing on the missing task."""
    w = _world()
    node = NodeInstance.get((NodeInstance.order == w["late"].id) & (NodeInstance.code == "confirmed"))
    alert = alerts.raise_order_alert(ENGINE, w["late"].id, "node_overdue", "orange", node=node, days_late=3,
                                     message="订单确认逾期 3 个工作日")
    html = manager.get("/dashboard/").get_data(as_text=True)
    row = html.split(f'id="alert-{alert.id}"')[1].split("</tr>")[0]
    assert w["late"].order_no in row and f"{node.name}（整单）" in row and "订单确认逾期" in row
    rows = _csv(manager.get("/api/v1/exports/alerts", query_string={"format": "csv", "kind": "node_overdue"}))
    exported = dict(zip(rows[0], rows[1], strict=True))
    assert exported["订单号"] == w["late"].order_no and exported["任务号"] == "" and exported["供应商"] == ""


# --- quality and materials: frozen batches, the order's batches and inspections, the supplier page ---------

def test_a_frozen_batch_shows_on_the_overview_and_the_supplier_page(app, client, dbconn):
    d = frozen_plant(app, client)
    batch = Batch.get_by_id(d.frozen["id"])
    nc = Nonconformance.get(Nonconformance.batch == batch.id)

    overview = d.manager.get("/dashboard/").get_data(as_text=True)
    row = overview.split(f'id="frozen-{batch.id}"')[1].split("</tr>")[0]
    assert batch.batch_no in row and d.order.order_no in row and d.supplier.name in row
    assert f"#{nc.id}" in row and "待处置" in row
    assert f"/dashboard/batches/{batch.id}/disposition" not in row  # a manager: no QC button

    assert f'href="/dashboard/suppliers/{d.supplier.id}"' in d.manager.get("/dashboard/suppliers").get_data(as_text=True)
    page = d.qc.get(f"/dashboard/suppliers/{d.supplier.id}").get_data(as_text=True)
    assert 'id="scorecard"' in page and "绩效评分" in page
    figures = page.split('id="quality-figures"')[1].split("</section>")[0]
    assert "一次合格率" in figures and "0.0%" in figures and "0 / 1 批" in figures  # failed its first inspection
    problems = page.split('id="open-problems"')[1].split("</section>")[0]
    assert f'id="frozen-{batch.id}"' in problems and f"/dashboard/batches/{batch.id}/disposition" in problems
    assert nc.description[:20] in problems.split('id="open-ncs"')[1]
    assert "质检不合格" in problems.split("未解除的预警")[1]  # the qc_fail alert
    balance = page.split('id="materials"')[1].split("</section>")[0]
    assert "冷轧钢板" in balance and "缺料" in balance  # 40 kg issued, 0.5 kg × the plan needed

    other = d.manager.get(f"/dashboard/suppliers/{d.other_task.supplier_id}").get_data(as_text=True)
    assert batch.batch_no not in other and "冷轧钢板" not in other
    assert d.manager.get("/dashboard/suppliers/999999").status_code == 404


def test_the_order_page_shows_batches_inspections_with_photos_and_the_material_balance(app, client, dbconn):
    d = frozen_plant(app, client)
    html = d.manager.get(f"/dashboard/orders/{d.order.id}").get_data(as_text=True)
    section = html.split('id="quality"')[1].split("</section>")[0]
    batch_row = section.split(f'id="batch-{d.frozen["id"]}"')[1].split("</tr>")[0]
    assert "已冻结" in batch_row and "1 张不合格单未关闭" in batch_row
    assert re.findall(r'<td class="num">(\d+)</td>', batch_row)[:3] == ["200", "150", "0"]
    inspections = section.split('class="grid inspections"')[1].split("</table>")[0]
    assert "首件检验" in inspections and "不合格" in inspections and "qc-wang（测试）" in inspections
    thumb = re.search(r'<img class="thumb" src="([^"]+)"', inspections).group(1).replace("&amp;", "&")
    assert d.manager.get(thumb).status_code == 200
    assert "冷轧钢板" in section and "flag-shortage" in section


def test_the_new_panels_cost_a_fixed_number_of_queries(app, client, dbconn):
    d = frozen_plant(app, client)
    pages = ("/dashboard/", f"/dashboard/orders/{d.order.id}", f"/dashboard/suppliers/{d.supplier.id}",
             "/dashboard/suppliers")
    few = {p: statements(lambda p=p: d.manager.get(p))[1] for p in pages}
    for _ in range(3):
        freeze_another(d)
    for page in pages:
        answer, many = statements(lambda page=page: d.manager.get(page))
        assert answer.status_code == 200
        assert len(many) == len(few[page]), (page, len(few[page]), len(many))
    assert len(few["/dashboard/"]) <= 20


def _new_entries(since, batch_id):
    return [(e.action, e.object_type, e.before, e.after, e.reason, e.actor_label)
            for e in AuditEntry.select().where(AuditEntry.id > since).order_by(AuditEntry.id)
            if e.object_type != "batch" or e.object_id == str(batch_id)]


def _normalised(entries, batch_id):
    return [(a, t, b, (x or "").replace(f'"batch_id": {batch_id}', ""), r, who) for a, t, b, x, r, who in entries]


def test_a_disposition_from_the_page_is_audited_as_through_the_api(app, client, dbconn):
    d = frozen_plant(app, client)
    by_api, by_page = d.frozen["id"], freeze_another(d)["id"]

    mark = AuditEntry.select(fn.MAX(AuditEntry.id)).scalar()
    assert d.qc.post(f"/api/v1/batches/{by_api}/disposition",
                     json={"disposition": "concession", "reason": "客户同意让步接收"}).status_code == 200
    api_entries = _new_entries(mark, by_api)

    here = f"/dashboard/orders/{d.order.id}"
    page = d.qc.get(here).get_data(as_text=True)
    assert f"/dashboard/batches/{by_page}/disposition" in page  # QC sees the button
    token = _csrf(d.qc, here)
    blank = d.qc.post(f"/dashboard/batches/{by_page}/disposition",
                      data={"csrf_token": token, "disposition": "concession", "reason": "  "})
    assert blank.status_code == 422 and Batch.get_by_id(by_page).disposition is None  # a reason is required
    mark = AuditEntry.select(fn.MAX(AuditEntry.id)).scalar()
    done = d.qc.post(f"/dashboard/batches/{by_page}/disposition",
                     data={"csrf_token": token, "disposition": "concession", "reason": "客户同意让步接收", "next": here})
    assert done.status_code == 303 and done.headers["Location"] == here
    page_entries = _new_entries(mark, by_page)
    assert [e[0] for e in page_entries] == [e[0] for e in api_entries] and "batch.dispose" in [e[0] for e in page_entries]
    assert _normalised(page_entries, by_page) == _normalised(api_entries, by_api)
    assert Batch.get_by_id(by_page).disposition == "concession"

    shown = d.qc.get(here).get_data(as_text=True)
    assert "已处置：让步接收" in shown and f"/dashboard/batches/{by_page}/release" in shown
    d.qc.post(f"/dashboard/batches/{by_page}/release", data={"csrf_token": token, "reason": "让步放行"})
    released = Batch.get_by_id(by_page)
    assert released.status == "released"
    assert AuditEntry.select().where((AuditEntry.action == "batch.release")
                                     & (AuditEntry.object_id == str(by_page))).count() == 1
    again = d.qc.post(f"/dashboard/batches/{by_page}/release", data={"csrf_token": token, "reason": "再放一次"},
                      follow_redirects=True)
    assert "未冻结，无需放行" in again.get_data(as_text=True)  # the service's refusal on the page


def test_only_qc_disposes_and_executives_do_not_receive(app, client, dbconn):
    d = frozen_plant(app, client)
    frozen = d.frozen["id"]
    boss = factories.staff_client(app.test_client(), "executive")
    for who in (d.manager, boss):
        html = who.get(f"/dashboard/suppliers/{d.supplier.id}").get_data(as_text=True)
        assert f'id="frozen-{frozen}"' in html and f"/dashboard/batches/{frozen}/disposition" not in html
        answer = who.post(f"/dashboard/batches/{frozen}/disposition", follow_redirects=True,
                          data={"csrf_token": _csrf(who), "disposition": "scrap", "reason": "报废"})
        assert "当前角色无权执行此操作" in answer.get_data(as_text=True)
    assert Batch.get_by_id(frozen).status == "frozen" and Batch.get_by_id(frozen).disposition is None
    forged = d.qc.post(f"/dashboard/batches/{frozen}/disposition",
                       data={"csrf_token": "forged", "disposition": "scrap", "reason": "报废"})
    assert forged.status_code == 403 and Batch.get_by_id(frozen).disposition is None
    assert d.qc.post("/dashboard/batches/999999/release",
                     data={"csrf_token": _csrf(d.qc), "reason": "x"}).status_code == 404

    shipped = quality_helpers.new_batch(d, qty=30)
    assert quality_helpers.ship(d, shipped["id"], 30).status_code == 200
    here = f"/dashboard/orders/{d.order.id}"
    assert f"/dashboard/batches/{shipped['id']}/receipts" not in boss.get(here).get_data(as_text=True)
    refused = boss.post(f"/dashboard/batches/{shipped['id']}/receipts", follow_redirects=True,
                        data={"csrf_token": _csrf(boss), "qty": 10})
    assert "当前角色无权执行此操作" in refused.get_data(as_text=True)
    assert f"/dashboard/batches/{shipped['id']}/receipts" in d.manager.get(here).get_data(as_text=True)
    d.manager.post(f"/dashboard/batches/{shipped['id']}/receipts",
                   data={"csrf_token": _csrf(d.manager, here), "qty": 30, "qty_rejected": 2, "next": here})
    got = Batch.get_by_id(shipped["id"])
    assert (got.qty_received, got.qty_accepted, got.qty_rejected) == (30, 28, 2)
    assert AuditEntry.select().where((AuditEntry.action == "batch.receive")
                                     & (AuditEntry.object_id == str(shipped["id"]))).count() == 1
    frozen_receipt = d.manager.post(f"/dashboard/batches/{frozen}/receipts", follow_redirects=True,
                                    data={"csrf_token": _csrf(d.manager), "qty": 10})
    assert "冻结" in frozen_receipt.get_data(as_text=True) and Batch.get_by_id(frozen).qty_received == 0


def test_control_characters_in_a_note_do_not_break_the_excel_export(manager):
    """A supplier's note may hold control characters (a phone keyboard, a paste): the report is
    stored as sent, and the XLSX export (which cannot hold them) leaves them out instead of failing."""
    w = _world()
    ProgressReport.update(note="设备\x01抢修\x1b完毕").where(ProgressReport.task == w["late_task"].id).execute()
    answer = manager.get("/api/v1/exports/reports", query_string={"format": "xlsx", "order_id": w["late"].id})
    assert answer.status_code == 200
    rows = list(load_workbook(io.BytesIO(answer.get_data()), read_only=True).active.values)
    row = dict(zip(rows[0], rows[1], strict=True))
    assert row["备注"] == "设备抢修完毕"
    assert "设备抢修完毕" in manager.get("/api/v1/exports/reports", query_string={
        "format": "csv", "order_id": w["late"].id}).get_data(as_text=True)
