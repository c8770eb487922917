"""Staff API behind the dashboard: the Gantt's data, and exports of orders, tasks, reports and
alerts to CSV or XLSX (streamed; Chinese headers; filtered like the lists)."""
from apiflask import APIBlueprint, Schema
from apiflask.fields import Boolean, String
from apiflask.validators import OneOf
from flask import Response, g, render_template, request, stream_with_context, url_for

from app.admin.alerts import READ_ROLES, AlertQuery
from app.admin.orders import OrderQuery
from app.admin.schemas import GanttOut
from app.domain.errors import RateLimited
from app.domain.vocabulary import ALERT_LEVELS, TASK_STATES
from app.services import dashboard, export_slots, exports
from app.timeutil import china_date
from app.web.auth import api_auth, staff_role
from app.web.fields import Date, Id
from app.web.presenters import caller_sees_prices

bp = APIBlueprint("admin_dashboard", __name__, tag="管理端 · 看板与导出")


class GanttQuery(Schema):
    group = String(load_default="order", validate=OneOf(("order", "supplier")),
                   metadata={"description": "order: by order, earliest due first; supplier: by supplier"})
    order_id = Id(strict=False)
    supplier_id = Id(strict=False)
    finished = Boolean(load_default=False, metadata={"description": "include completed tasks"})


@bp.get("/gantt")
@bp.auth_required(api_auth)
@staff_role(*READ_ROLES)
@bp.input(GanttQuery, location="query", arg_name="args")
@bp.output(GanttOut)
def gantt(args):
    """The Gantt chart's tasks (at most 300): plan bars, the share done, ETA and days late from
    the schedule model, the order's nodes; `late` marks what the chart draws in red. Staff only."""
    today = china_date()
    tasks, truncated = dashboard.gantt_tasks(group=args["group"], order_id=args.get("order_id"),
                                             supplier_id=args.get("supplier_id"),
                                             include_finished=args["finished"], today=today)
    for task in tasks:
        task.late = dashboard.is_late(task, today)
    return {"today": today, "group": args["group"], "truncated": truncated, "tasks": tasks}


# --- exports -------------------------------------------------------------------------------------------

FORMAT = String(load_default="xlsx", validate=OneOf(exports.FORMATS), metadata={"description": "xlsx | csv"})
EXPORT_ANSWERS = {
    200: {"description": "the file (streamed): CSV is UTF-8 with a BOM",
          "content": {"text/csv": {}, exports.XLSX_TYPE: {}}},
    429: {"description": "export_busy：该调用者已有导出正在进行（每个员工或 ERP 密钥同时一个），或全站已有 "
                         "EXPORT_MAX_CONCURRENT 个导出正在进行；稍后再试",
          "headers": {"Retry-After": {"description": "seconds to wait before trying again",
                                      "schema": {"type": "integer"}}},
          "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}},
                      "text/html": {"schema": {"type": "string", "description": "the same message as a dashboard "
                                               "page, for a staff session's browser (Accept: text/html)"}}}},
}


def _fields(schema, drop=("page", "per_page")):
    return {name: field for name, field in schema._declared_fields.items() if name not in drop}


OrderExportQuery = Schema.from_dict({**_fields(OrderQuery), "format": FORMAT}, name="OrderExportQuery")
AlertExportQuery = Schema.from_dict({**_fields(AlertQuery), "format": FORMAT}, name="AlertExportQuery")
TaskExportQuery = Schema.from_dict({
    "state": String(validate=OneOf(TASK_STATES)),
    "supplier_id": Id(strict=False),
    "order_id": Id(strict=False),
    "level": String(validate=OneOf(ALERT_LEVELS), metadata={"description": "the task's alert level"}),
    "due_before": Date(metadata={"description": "due on or before"}),
    "due_after": Date(metadata={"description": "due on or after"}),
    "format": FORMAT,
}, name="TaskExportQuery")
ReportExportQuery = Schema.from_dict({
    "task_id": Id(strict=False),
    "order_id": Id(strict=False),
    "supplier_id": Id(strict=False),
    "date_from": Date(metadata={"description": "report date on or after"}),
    "date_to": Date(metadata={"description": "report date on or before"}),
    "format": FORMAT,
}, name="ReportExportQuery")


def _caller():
    """Whose export this is, for the one-at-a-time rule: the staff user, or the ERP key."""
    return f"key:{g.api_key.id}" if g.get("api_key") is not None else f"staff:{g.staff.id}"


def _busy_page(busy):
    """The 429 as a dashboard page, for a download link clicked in the browser (else the browser
    would show the JSON envelope as text). Back: the dashboard page the link was on."""
    back = request.referrer or ""
    if not back.startswith(request.host_url + "dashboard/"):
        back = url_for("dashboard.overview")
    retry_after = busy.extra["retry_after"]
    html = render_template("dashboard/export_busy.html", staff=g.staff, message=busy.message,
                           retry_after=retry_after, back=back)
    return html, 429, {"Retry-After": str(retry_after)}


def _export(kind, args):
    fmt = args.pop("format", "xlsx")
    filters = {k: v for k, v in args.items() if v is not None}
    try:
        slot = export_slots.acquire(_caller())  # 429 export_busy before any row is read
    except RateLimited as busy:
        browsing = request.accept_mimetypes.best_match(("application/json", "text/html")) == "text/html"
        if g.get("staff") is None or not browsing:
            raise
        return _busy_page(busy)
    try:
        headers, chunks = exports.table(kind, filters, prices=caller_sees_prices())
        chunks = slot.renewing(chunks)  # the lease is renewed while rows are read (XLSX: before streaming)
        name = exports.filename(kind, fmt)
        disposition = {"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"}
        if fmt == "csv":
            body = (piece.encode("utf-8") for piece in exports.csv_stream(headers, chunks))
            response = Response(stream_with_context(slot.holding(body)), content_type="text/csv; charset=utf-8",
                                headers=disposition)
        else:
            handle = exports.xlsx_file(headers, chunks, exports.KIND_NAMES[kind])
            response = Response(slot.holding(exports.file_chunks(handle)), content_type=exports.XLSX_TYPE,
                                headers=disposition)
    except BaseException:
        slot.release()
        raise
    # The body's end releases the slot; the server's close() does too when the client left before
    # the body began (an unstarted generator runs no finally). release() is idempotent.
    response.call_on_close(slot.release)
    return response


@bp.get("/exports/orders")
@bp.auth_required(api_auth)
@bp.input(OrderExportQuery, location="query", arg_name="args")
@bp.doc(responses=EXPORT_ANSWERS)
def export_orders(args):
    """Orders as a spreadsheet, filtered as GET /api/v1/orders (every matching order, not a page).
    Prices only for those who may see them."""
    return _export("orders", args)


@bp.get("/exports/tasks")
@bp.auth_required(api_auth)
@bp.input(TaskExportQuery, location="query", arg_name="args")
@bp.doc(responses=EXPORT_ANSWERS)
def export_tasks(args):
    """Tasks with their progress figures (expected, deviation, ETA, days late: the schedule
    model), filtered by state, supplier, order, alert level and due date. Costs only for those who
    may see them."""
    return _export("tasks", args)


@bp.get("/exports/reports")
@bp.auth_required(api_auth)
@bp.input(ReportExportQuery, location="query", arg_name="args")
@bp.doc(responses=EXPORT_ANSWERS)
def export_reports(args):
    """Daily progress reports, filtered by task, order, supplier and report date."""
    return _export("reports", args)


@bp.get("/exports/alerts")
@bp.auth_required(api_auth)
@staff_role(*READ_ROLES, key_scope="alerts")
@bp.input(AlertExportQuery, location="query", arg_name="args")
@bp.doc(responses=EXPORT_ANSWERS)
def export_alerts(args):
    """Alerts, filtered as GET /api/v1/alerts, newest first. Staff, or an ERP key with the "alerts" scope."""
    return _export("alerts", args)
