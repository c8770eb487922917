"""Exports of orders, tasks, progress reports and alerts to CSV and XLSX, with Chinese headers.

Rows are read in id-keyed chunks (CHUNK rows, a fixed number of queries each — the tasks' schedule
figures come from schedule.progress_many per chunk), so an export of any size holds one chunk in
memory: CSV is yielded as it is read; XLSX goes through XlsxWriter in constant-memory mode, which
writes each row to a temporary file as it comes (about twice as fast as openpyxl's write-only
workbook without lxml: README "Dashboard").

A text cell a spreadsheet would run as a formula — one that begins with =, +, -, @, a tab or a
carriage return — gets a leading apostrophe (the OWASP "CSV injection" advice): Excel and WPS show
it as text. Numbers and dates stay numbers and dates.
"""
import csv
import io
import itertools
import re
import tempfile
from datetime import date, datetime
from decimal import Decimal

import xlsxwriter
from peewee import JOIN

from app.domain.vocabulary import ALERT_KINDS, STATE_NAMES
from app.models import Alert, Order, ProgressReport, Supplier, Task
from app.models.base import among
from app.models.users import WechatUser
from app.services import alert_responses, order_queries, schedule
from app.timeutil import china_date, iso_local

CHUNK = 1000
XLSX_MAX_ROWS = 1_048_575  # Excel's sheet limit, less the header row
FORMATS = ("csv", "xlsx")
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
KINDS = ("orders", "tasks", "reports", "alerts")
KIND_NAMES = {"orders": "订单", "tasks": "任务", "reports": "进度日报", "alerts": "预警"}
LEVEL_NAMES = {"yellow": "黄", "orange": "橙", "red": "红"}
ALERT_STATUS_NAMES = {"open": "未确认", "acknowledged": "已确认", "resolved": "已解除"}
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# Control characters a spreadsheet cannot hold (XLSX refuses them; Excel shows garbage in CSV).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def neutralise(value):
    """The cell as a spreadsheet should show it: text loses control characters, and text that would
    run as a formula gets a leading apostrophe; None is empty; datetimes are China time."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return iso_local(value).replace("T", " ")[:19]
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, str):
        value = _CONTROL.sub("", value)
        return "'" + value if value.startswith(_FORMULA_START) else value
    return value


# --- what each export has in its columns -------------------------------------------------------------

def _state(value):
    return STATE_NAMES.get(value, value)


def _order_columns(prices):
    columns = [
        ("订单号", lambda o: o.order_no), ("外部单号", lambda o: o.external_no), ("客户", lambda o: o.customer.name),
        ("产品编码", lambda o: o.product_code), ("产品名称", lambda o: o.product_name),
        ("数量", lambda o: o.quantity), ("单位", lambda o: o.unit), ("计划开工", lambda o: o.planned_start),
        ("交期", lambda o: o.due_date), ("状态", lambda o: _state(o.state)), ("任务数", lambda o: o.task_count),
        ("来源", lambda o: o.source), ("创建时间", lambda o: o.created_at), ("备注", lambda o: o.notes),
    ]
    if prices:
        columns.insert(7, ("单价", lambda o: o.unit_price))
    return columns


def _progress(attr):
    return lambda t: getattr(t.schedule, attr) if t.schedule is not None else None


def _task_columns(prices):
    columns = [
        ("任务号", lambda t: t.task_no), ("订单号", lambda t: t.order.order_no),
        ("产品名称", lambda t: t.order.product_name), ("工序", lambda t: t.process),
        ("供应商", lambda t: t.supplier.name), ("计划数量", lambda t: t.planned_qty),
        ("完成数量", lambda t: t.qty_done), ("计划开工", lambda t: t.planned_start), ("交期", lambda t: t.due_date),
        ("状态", lambda t: _state(t.state)), ("应完成数量", _progress("expected_qty")),
        ("进度偏差%", _progress("deviation_pct")), ("预计完成", _progress("eta_date")),
        ("延期工作日", _progress("days_late")),
        ("预警级别", lambda t: LEVEL_NAMES.get(t.alert_level) if t.alert_level else None),
        ("最近填报", lambda t: t.last_report_date),
    ]
    if prices:
        columns.append(("单位成本", lambda t: t.unit_cost))
    return columns


REPORT_COLUMNS = [  # over the flat rows of reports_query (the one export that runs to millions of rows)
    ("日期", lambda r: r.report_date), ("任务号", lambda r: r.task_no), ("订单号", lambda r: r.order_no),
    ("工序", lambda r: r.process), ("供应商", lambda r: r.supplier_name),
    ("累计完成", lambda r: r.qty_done), ("计划数量", lambda r: r.planned_qty), ("阶段", lambda r: r.stage),
    ("备注", lambda r: r.note), ("填报人", lambda r: r.reporter_name),
    ("修改次数", lambda r: r.revision - 1), ("更新时间", lambda r: r.updated_at),
]

ALERT_COLUMNS = [
    ("预警编号", lambda a: a.id), ("类型", lambda a: ALERT_KINDS.get(a.kind, a.kind)),
    ("级别", lambda a: LEVEL_NAMES.get(a.level, a.level)), ("状态", lambda a: ALERT_STATUS_NAMES.get(a.status, a.status)),
    ("订单号", lambda a: a.order.order_no), ("任务号", lambda a: a.task.task_no if a.task else None),
    # An order-level alert (an overdue 订单确认 or 质检 node) has no task and no supplier.
    ("供应商", lambda a: a.task.supplier.name if a.task else None),
    ("说明", lambda a: a.message), ("偏差%", lambda a: a.deviation_pct), ("延期工作日", lambda a: a.days_late),
    ("预计完成", lambda a: a.eta_date), ("发生时间", lambda a: a.created_at), ("确认时间", lambda a: a.acknowledged_at),
    ("确认人", lambda a: a.acknowledger.display_name if a.acknowledger else None),
    ("响应秒数", alert_responses.response_seconds), ("解除时间", lambda a: a.resolved_at),
    ("解除人", lambda a: a.resolver.display_name if a.resolver else ("系统" if a.resolved_at else None)),
    ("解除说明", lambda a: a.resolve_note),
]


# --- the rows, in chunks ----------------------------------------------------------------------------------

def _chunks(ids, rows, id_field, load=None):
    """The rows, newest id first, CHUNK at a time: `ids` (the filtered base table, no joins) picks
    each chunk's ids, keyed on the id (no OFFSET), and `rows` (the joined query) reads just those.
    A joined query sorted and limited as a whole lets MySQL start from a small joined table and
    sort every matching row for every chunk."""
    last = None
    while True:
        page = ids.where(id_field < last) if last is not None else ids
        chunk = [i for (i,) in page.select(id_field).order_by(id_field.desc()).limit(CHUNK).tuples()]
        if not chunk:
            return
        found = {row.id: row for row in rows.where(among(id_field, chunk)).order_by()}
        picked = [found[i] for i in chunk if i in found]
        yield load(picked) if load else picked
        if len(chunk) < CHUNK:
            return
        last = chunk[-1]


def tasks_query(**filters):
    """Tasks with their order and supplier, filtered like the dashboard's task lists."""
    return Task.select(Task, Order, Supplier).join(Order).switch(Task).join(Supplier).where(_tasks_where(**filters))


def _tasks_where(*, state=None, supplier_id=None, order_id=None, level=None, due_before=None, due_after=None):
    where = Task.id.is_null(False)
    for column, value in ((Task.state, state), (Task.supplier, supplier_id), (Task.order, order_id),
                          (Task.alert_level, level)):
        if value is not None:
            where &= column == value
    if due_before:
        where &= Task.due_date <= due_before
    if due_after:
        where &= Task.due_date >= due_after
    return where


def reports_query():
    """Progress reports, one flat row each with what the export shows of its task, order, supplier
    and reporter: only those columns are read, a third of the cost of whole joined models."""
    return (ProgressReport.select(ProgressReport.id, ProgressReport.report_date, ProgressReport.qty_done,
                                  ProgressReport.stage, ProgressReport.note, ProgressReport.revision,
                                  ProgressReport.updated_at, Task.task_no, Task.process, Task.planned_qty,
                                  Order.order_no, Supplier.name.alias("supplier_name"),
                                  WechatUser.display_name.alias("reporter_name"))
            .join(Task).join(Order).switch(Task).join(Supplier)
            .switch(ProgressReport).join(WechatUser, on=(ProgressReport.reporter == WechatUser.id),
                                         join_type=JOIN.LEFT_OUTER)
            .objects())


def _reports_ids(*, task_id=None, order_id=None, supplier_id=None, date_from=None, date_to=None):
    """The reports' ids query, on the report table alone: an order or supplier filter becomes the
    list of its task ids."""
    where = ProgressReport.id.is_null(False)
    if order_id is not None or supplier_id is not None:
        tasks = Task.select(Task.id).where(_tasks_where(order_id=order_id, supplier_id=supplier_id))
        where &= among(ProgressReport.task, [i for (i,) in tasks.tuples()])
    if task_id is not None:
        where &= ProgressReport.task == task_id
    if date_from:
        where &= ProgressReport.report_date >= date_from
    if date_to:
        where &= ProgressReport.report_date <= date_to
    return ProgressReport.select(ProgressReport.id).where(where)


def _with_schedule(tasks):
    progress = schedule.progress_many(tasks, china_date())
    for task in tasks:
        task.schedule = progress.get(task.id)
    return tasks


def table(kind, filters, *, prices=False):
    """(headers, row chunks) of one export: chunks of lists of cell values, neutralised."""
    if kind == "orders":
        columns = _order_columns(prices)
        chunks = _chunks(Order.select().where(order_queries.orders_where(**filters)), order_queries.orders_query(),
                         Order.id)
    elif kind == "tasks":
        columns = _task_columns(prices)
        chunks = _chunks(Task.select().where(_tasks_where(**filters)), tasks_query(), Task.id, _with_schedule)
    elif kind == "reports":
        columns = REPORT_COLUMNS
        chunks = _chunks(_reports_ids(**filters), reports_query(), ProgressReport.id)
    elif kind == "alerts":
        columns = ALERT_COLUMNS
        # Alerts are few (one open per task and kind): their ids come from the joined, filtered list.
        chunks = _chunks(alert_responses.alerts_query(**filters), alert_responses.alerts_query(), Alert.id,
                         alert_responses.with_people)
    else:
        raise ValueError(kind)
    headers = [name for name, _ in columns]
    getters = [get for _, get in columns]
    return headers, ([[neutralise(get(row)) for get in getters] for row in rows] for rows in chunks)


def filename(kind, fmt, today=None):
    return f"{kind}-{(today or china_date()):%Y%m%d}.{fmt}"


def csv_stream(headers, chunks):
    """The CSV, piece by piece: UTF-8 with a BOM (so Excel reads the Chinese), one piece per chunk."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(headers)
    yield "\ufeff" + buffer.getvalue()
    for rows in chunks:
        buffer.seek(0)
        buffer.truncate()
        writer.writerows([_csv_cell(v) for v in row] for row in rows)
        yield buffer.getvalue()


def _csv_cell(value):
    return value.isoformat() if isinstance(value, date) else value


def xlsx_file(headers, chunks, title):
    """The workbook, written row by row (XlsxWriter, constant memory) into a temporary file. → the
    file, positioned at its start; the caller streams and closes it. Text stays text: no string is
    turned into a formula, a number or a link (the cells are neutralised besides); dates are dates."""
    out = tempfile.TemporaryFile()  # noqa: SIM115 - the response streams it and closes it (file_chunks)
    book = xlsxwriter.Workbook(out, {"constant_memory": True, "strings_to_formulas": False,
                                     "strings_to_numbers": False, "strings_to_urls": False,
                                     "default_date_format": "yyyy-mm-dd"})
    sheet = book.add_worksheet(title)
    sheet.write_row(0, 0, headers)
    # The sheet's limit stops the reading too: no chunk beyond it is fetched from the database.
    every_row = itertools.chain.from_iterable(chunks)
    for number, row in enumerate(itertools.islice(every_row, XLSX_MAX_ROWS), start=1):
        sheet.write_row(number, 0, row)
    book.close()
    out.seek(0)
    return out


def file_chunks(handle, size=64 * 1024):
    """A file's bytes in pieces, closing it at the end."""
    try:
        while piece := handle.read(size):
            yield piece
    finally:
        handle.close()
