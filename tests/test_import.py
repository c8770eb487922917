"""CSV and XLSX import: all rows or none, every bad row reported by its row number."""
import csv
import io
import zipfile
from datetime import datetime, time, timedelta

import openpyxl
import pytest

from app.models import Order, Task
from app.timeutil import china_date
from tests import factories
from tests.sqlcount import statements as _statements

ZH = ["外部单号", "客户编码", "产品编码", "产品名称", "订单数量", "计划开工", "交期", "单价",
      "工序", "供应商编码", "计划数量", "允差", "工序交期", "工艺要求"]
EN = ["external_no", "customer_code", "product_code", "product_name", "quantity", "planned_start", "due_date",
      "unit_price", "process", "supplier_code", "planned_qty", "tolerance_pct", "task_due_date", "requirements"]


@pytest.fixture
def world(dbconn):
    return {"customer": factories.customer(), "stamp": factories.supplier(), "weld": factories.supplier("无锡焊接厂")}


def plan():
    start = china_date() + timedelta(days=2)
    return start, start + timedelta(days=20)


def rows(world):
    """Two orders: ERP-A with two tasks, ERP-B with one."""
    start, due = plan()
    slash = f"{start.year}/{start.month}/{start.day}"  # as Excel users type dates
    c, s, w = world["customer"].code, world["stamp"].code, world["weld"].code
    return [
        ["ERP-A", c, "P-1", "钣金机箱", 1000, slash, due.isoformat(), "12.50", "冲压", s, 1000, "5%",
         (due - timedelta(days=5)).isoformat(), "按图纸"],
        ["ERP-A", c, "P-1", "钣金机箱", 1000, slash, due.isoformat(), "12.50", "焊接", w, 1000, "0.03", "", ""],
        ["ERP-B", c, "", "电机支架", 500, start.isoformat(), due.isoformat(), "", "冲压", s, 500, "", "", ""],
    ]


def csv_bytes(header, data, encoding="utf-8-sig"):
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(data)
    return out.getvalue().encode(encoding)


def xlsx_bytes(header, data):
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(header)
    for row in data:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def upload(client, data, name="orders.csv"):
    return client.post("/api/v1/orders/import", data={"file": (io.BytesIO(data), name)},
                       content_type="multipart/form-data")


def test_a_csv_with_bom_and_chinese_headers_imports_every_order(manager, world):
    res = upload(manager, csv_bytes(ZH, rows(world)))

    assert res.status_code == 201, res.json
    assert res.json["created"] == 2 and res.json["skipped"] == 0
    a = Order.get(Order.external_no == "ERP-A")
    assert a.source == "import" and a.state == "draft" and a.nodes.count() == 7
    tasks = list(a.tasks.order_by(Task.id))
    assert [(t.process, t.supplier_id, t.tolerance_pct) for t in tasks] == [
        ("冲压", world["stamp"].id, 0.05), ("焊接", world["weld"].id, 0.03)]
    assert tasks[0].due_date == a.due_date - timedelta(days=5) and tasks[1].due_date == a.due_date
    assert tasks[0].requirements == "按图纸" and tasks[1].requirements is None
    assert Order.get(Order.external_no == "ERP-B").unit_price is None


def test_an_xlsx_with_english_headers_and_real_cells_imports(manager, world):
    start, due = plan()
    data = rows(world)
    for row in data:  # what Excel stores: date cells and numbers, not text
        row[5], row[6] = datetime.combine(start, time()), datetime.combine(due, time())
        row[7] = float(row[7]) if row[7] else None
    res = upload(manager, xlsx_bytes(EN, data), name="orders.txt")  # the name does not decide the type

    assert res.status_code == 201, res.json
    assert res.json["created"] == 2
    assert str(Order.get(Order.external_no == "ERP-A").unit_price) in ("12.50", "12.5")


def test_a_gb18030_csv_as_excel_saves_it_imports(manager, world):
    res = upload(manager, csv_bytes(ZH, rows(world), encoding="gb18030"))
    assert res.status_code == 201, res.json
    assert Order.get(Order.external_no == "ERP-B").product_name == "电机支架"


def test_importing_the_same_file_again_creates_nothing(manager, world):
    data = csv_bytes(ZH, rows(world))
    upload(manager, data)

    again = upload(manager, data)

    # Nothing new was created: 200, not 201.
    assert again.status_code == 200 and again.json == {"created": 0, "skipped": 2, "orders": [], "warnings": []}
    assert Order.select().count() == 2 and Task.select().count() == 3


def test_a_reimport_with_changed_content_is_refused_whole(manager, world):
    upload(manager, csv_bytes(ZH, rows(world)))
    changed = rows(world)
    changed[2][4] = changed[2][10] = 600  # ERP-B's quantity changed
    changed.append(["ERP-C", world["customer"].code, "", "新订单", 10, changed[2][5], changed[2][6], "",
                    "装配", world["stamp"].code, 10, "", "", ""])

    res = upload(manager, csv_bytes(ZH, changed))

    assert res.status_code == 422
    errors = res.json["error"]["errors"]
    assert errors == [{"row": 4, "field": "外部单号", "message": errors[0]["message"]}]
    assert "订单数量" in errors[0]["message"]
    assert Order.select().count() == 2 and not Order.select().where(Order.external_no == "ERP-C").exists()


def test_every_bad_row_is_reported_and_nothing_is_imported(manager, world, dbconn):
    factories.order(world["customer"], [world["stamp"]])
    before = Order.select().count()
    data = rows(world) + [list(rows(world)[0]) for _ in range(3)]
    data[3][0] = data[4][0] = data[5][0] = "ERP-D"
    data[1][6] = "明天"                   # row 3: not a date
    data[3][9] = "NO-SUCH"               # row 5: unknown supplier
    data[4][10] = "abc"                  # row 6: not a quantity
    data[5][3] = "别的产品"               # row 7: disagrees with row 5 on the order's product
    data.append(["ERP-E", "NOBODY", "", "x", 1, data[2][5], data[2][6], "", "冲压", world["stamp"].code, 1,
                 "90%", "", ""])        # row 8: unknown customer, tolerance out of range

    res = upload(manager, csv_bytes(ZH, data))

    assert res.status_code == 422
    error = res.json["error"]
    assert error["code"] == "import_invalid" and "未导入任何数据" in error["message"]
    found = {(e["row"], e["field"]) for e in error["errors"]}
    assert {(3, "交期"), (5, "供应商编码"), (6, "计划数量"), (7, "产品名称"), (8, "允差")} <= found
    assert all(e["row"] >= 2 and e["message"] for e in error["errors"])
    assert error["error_count"] == len(error["errors"])
    assert Order.select().count() == before


def test_unknown_and_missing_columns_are_reported_on_row_one(manager, world):
    header = [h for h in ZH if h != "交期"] + ["交货期"]
    data = [row[:6] + row[7:] + [""] for row in rows(world)]

    res = upload(manager, csv_bytes(header, data))

    assert res.status_code == 422
    errors = res.json["error"]["errors"]
    assert {"row": 1, "field": "交货期", "message": "无法识别的列名"} in errors
    assert any(e["row"] == 1 and e["field"] == "交期" and "缺少必填列" in e["message"] for e in errors)
    assert Order.select().count() == 0


@pytest.mark.parametrize("data", [
    b"\x89PNG\r\n\x1a\n" + b"\x00" * 200,          # an image
    b"PK\x03\x04" + b"broken zip" * 50,             # looks like XLSX, is not
    b"",                                           # empty
])
def test_garbage_files_are_refused_clearly(manager, world, data):
    res = upload(manager, data)
    assert res.status_code == 422
    assert res.json["error"]["code"] == "import_unreadable" and res.json["error"]["field"] == "file"
    assert Order.select().count() == 0


def test_a_file_over_5_mb_is_refused(manager, world):
    res = upload(manager, csv_bytes(ZH, rows(world)) + b"#" * (5 * 1024 * 1024))
    assert res.status_code == 413 and res.json["error"]["code"] == "file_too_large"
    assert Order.select().count() == 0


def test_more_than_5000_rows_are_refused(manager, world):
    data = rows(world)[2:] * 5001
    res = upload(manager, csv_bytes(ZH, data))
    assert res.status_code == 422 and res.json["error"]["code"] == "too_many_rows"
    assert Order.select().count() == 0


def test_external_nos_differing_only_in_case_are_one_number_and_reported(manager, world):
    """MySQL's unique index takes ERP-1 and erp-1 for one number: both backends report the row
    instead of MySQL failing the import with a conflict and SQLite creating two orders."""
    one = rows(world)[2]
    other = [*one[:3], "别的产品", *one[4:]]
    data = [["ERP-1", *one[1:]], ["erp-1", *other[1:]]]

    res = upload(manager, csv_bytes(ZH, data))

    assert res.status_code == 422
    [error] = res.json["error"]["errors"]
    assert error["row"] == 3 and error["field"] == "外部单号"
    assert "「erp-1」" in error["message"] and "第 2 行的「ERP-1」" in error["message"] and "大小写" in error["message"]
    assert Order.select().count() == 0


def test_a_number_imported_before_in_another_case_is_reported(manager, world):
    first = upload(manager, csv_bytes(ZH, rows(world))).json["orders"][0]
    data = rows(world)
    data[0][0] = data[1][0] = "erp-a"

    res = upload(manager, csv_bytes(ZH, data))

    assert res.status_code == 422
    [error] = res.json["error"]["errors"]
    assert error["row"] == 2 and first["order_no"] in error["message"] and "大小写" in error["message"]
    assert Order.select().count() == 2


def test_customer_and_supplier_codes_match_in_any_case(manager, world):
    data = rows(world)
    for row in data:
        row[1], row[9] = row[1].lower(), row[9].lower()

    res = upload(manager, csv_bytes(ZH, data))

    assert res.status_code == 201, res.json
    a = Order.get(Order.external_no == "ERP-A")
    assert a.customer_id == world["customer"].id
    assert [t.supplier_id for t in a.tasks.order_by(Task.id)] == [world["stamp"].id, world["weld"].id]


def _is_audit(statement):
    return "audit_" in statement or "SAVEPOINT" in statement


def test_an_import_costs_the_same_statements_for_3_or_30_orders_and_audits_last(manager, world):
    """Lookups are shared by the whole file and rows are inserted many at once: only the audit
    entries (one per order) grow with the file. They come after every other write, so the
    audit head is the import's last lock."""
    assert upload(manager, csv_bytes(ZH, rows(world))).status_code == 201  # the default node template exists

    def run(n):
        data = [[f"ERP-{n}-{i}", *rows(world)[2][1:]] for i in range(n)]
        res, statements = _statements(lambda: upload(manager, csv_bytes(ZH, data)))
        assert res.status_code == 201 and res.json["created"] == n, res.json
        return statements

    few, many = run(3), run(30)

    assert len([s for s in many if not _is_audit(s)]) == len([s for s in few if not _is_audit(s)])
    assert Order.select().count() == 2 + 3 + 30
    first_audit = next(i for i, s in enumerate(many) if _is_audit(s))
    assert not [s for s in many[first_audit:] if not _is_audit(s) and ("INSERT" in s or "UPDATE" in s)]


def _with_member(xlsx, name, content):
    """The workbook with one member replaced or added, the rest as openpyxl wrote it."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(xlsx)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            if info.filename != name:
                dst.writestr(info.filename, src.read(info.filename))
        dst.writestr(name, content)
    return out.getvalue()


def _styles(xf, count):
    return (b'<styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
            b'<cellXfs count="%d">' % count + xf * count + b"</cellXfs></styleSheet>")


XF = b'<xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'


@pytest.mark.parametrize("name, content, what", [
    # ~900k cell styles, 56 MB unpacked: took openpyxl 17 s and 800 MB before this check.
    pytest.param("xl/styles.xml", lambda: _styles(XF, 900_000), "样式表", id="styles-56MB"),
    # Under 2 MB, but 400k styles written as <xf/>: still 7 s in openpyxl.
    pytest.param("xl/styles.xml", lambda: _styles(b"<xf/>", 400_000), "样式表", id="styles-400k"),
    pytest.param("xl/sharedStrings.xml", lambda: b"<sst>" + b" " * (64 * 1024 * 1024) + b"</sst>", "共享字符串表",
                 id="strings-64MB"),
    # One row of a million cells: openpyxl reads a whole row before it drops the columns past 40.
    pytest.param("xl/worksheets/sheet1.xml", lambda: b'<worksheet><sheetData><row r="1">'
                 + b"<c><v>1</v></c>" * 1_000_000 + b"</row></sheetData></worksheet>", "工作表", id="wide-row"),
])
def test_an_xlsx_that_unpacks_to_too_much_is_refused_unread(manager, world, name, content, what):
    data = _with_member(xlsx_bytes(EN, rows(world)), name, content())
    assert len(data) < 300 * 1024  # small on the wire

    res = upload(manager, data)

    assert res.status_code == 413, res.json
    error = res.json["error"]
    assert error["code"] == "file_too_large" and error["field"] == "file"
    assert what in error["message"] and "未导入任何数据" in error["message"]
    assert Order.select().count() == 0


def test_an_xlsx_of_too_many_parts_is_refused_unread(manager, world):
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(xlsx_bytes(EN, rows(world)))) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename))
        for n in range(1000):
            dst.writestr(f"customXml/item{n}.xml", b"<x/>")

    res = upload(manager, out.getvalue())

    assert res.status_code == 413 and "部件" in res.json["error"]["message"]
    assert Order.select().count() == 0


def test_the_upload_needs_a_file(manager):
    res = manager.post("/api/v1/orders/import", data={}, content_type="multipart/form-data")
    assert res.status_code == 422 and res.json["error"]["field"] == "file"
