"""The staff web dashboard (/dashboard): server-rendered pages in Simplified Chinese.

Staff log in with their username and password (the same accounts, password hashes, login
throttle and session cookie as POST /api/v1/auth/login). Every page reads through the services
(app/services/dashboard.py and the services it names) and every button posts a form to a route
here that calls the same service, with the same role rule, as the API route it mirrors
(acknowledge/resolve → alert_responses, urge → urges, first article → node_reviews), so the audit
log and the notifications are the same whichever way a manager acts. Form posts carry a per-session
CSRF token; the session cookie is HttpOnly and SameSite=Lax.
"""
import hmac
import secrets
from functools import wraps
from urllib.parse import urlsplit

from apiflask import APIBlueprint
from flask import flash, g, redirect, render_template, request, session, url_for

from app.admin.orders import WRITE_ROLES as ORDER_WRITE_ROLES
from app.admin.quality import RECEIVE_ROLES
from app.dashboard import schemas
from app.domain.errors import DomainError, Forbidden, Unauthorized
from app.domain.vocabulary import (
    ALERT_KINDS,
    BATCH_STATUSES,
    DEFECT_CATEGORIES,
    DISPOSITIONS,
    INSPECTION_KINDS,
    INSPECTION_RESULTS,
    INSPECTION_SOURCES,
    NODE_STATE_NAMES,
    ORDER_STATES,
    QC_ROLES,
    STATE_NAMES,
    node_colour,
)
from app.services import alert_responses, dashboard, materials, node_reviews, order_queries, quality, scorecard, urges
from app.services import auth as auth_service
from app.services.access import staff_order
from app.timeutil import china_date, iso_local
from app.web import presenters, throttle
from app.web.auth import current_actor, session_staff, start_staff_session
from app.web.errors import ApiError

bp = APIBlueprint("dashboard", __name__, tag="管理端 · 网页看板", template_folder="templates",
                  static_folder="static", static_url_path="/static")

HTML = {"content": {"text/html": {}}}
TO_LOGIN = {"description": "not logged in: to the login page (Location)", **HTML}
PAGE = {200: {"description": "the page (HTML)", **HTML}, 302: TO_LOGIN}
ACTION = {303: {"description": "done, or refused with the reason shown: back to the page (Location)", **HTML},
          302: TO_LOGIN, 403: "页面已过期（csrf_failed：表单令牌不符，请刷新页面后重试）"}
ROLE_NAMES = {"manager": "跟单", "qc": "质检", "executive": "管理层", "admin": "管理员"}
LEVEL_NAMES = {"yellow": "黄色", "orange": "橙色", "red": "红色"}
ALERT_STATUS_NAMES = {"open": "未确认", "acknowledged": "已确认", "resolved": "已解除"}
ACTION_NAMES = {
    "order.create": "创建订单", "order.state": "订单状态变更", "order.update": "修改订单",
    "progress.report": "填报进度", "progress.amend": "修正进度", "task.issue": "报告异常", "task.urge": "催单",
    "urge.reply": "回复催单", "task.alert": "任务预警级别", "task.state": "任务状态变更",
    "node.complete": "完成节点", "node.confirm": "确认首件", "node.reject": "退回首件", "node.done": "节点完成",
    "alert.open": "预警", "alert.update": "预警更新", "alert.ack": "确认预警", "alert.resolve": "解除预警",
    "alert.escalate": "预警升级",
    "batch.create": "登记批次", "batch.ship": "批次发货", "batch.receive": "批次收货", "batch.dispose": "批次处置",
    "batch.release": "批次放行", "batch.materials": "批次用料", "batch.freeze": "批次冻结",
    "inspection.record": "检验", "nc.open": "开不合格单", "nc.update": "修改不合格单", "nc.close": "关闭不合格单",
    "node.qc": "质检节点", "material.bill": "用料定额", "material.issue": "发料", "material.return": "退料",
    "material.receive": "确认收料",
}


# --- session, CSRF, roles ----------------------------------------------------------------------

def csrf_token():
    """This session's form token (made on first use)."""
    token = session.get("csrf")
    if not token:
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


def _check_csrf(form):
    expected = session.get("csrf")
    if not expected or not hmac.compare_digest(expected.encode(), (form.get("csrf_token") or "").encode()):
        raise ApiError(403, "csrf_failed", "页面已过期，请刷新页面后重试")


def _safe_next(target):
    """Only a path of the dashboard itself (no other host, no scheme-relative //host)."""
    if target and target.startswith("/dashboard/") and not urlsplit(target).netloc and "\\" not in target:
        return target
    return url_for("dashboard.overview")


def _to_login():
    return redirect(url_for("dashboard.login_page", next=request.full_path.rstrip("?") if request.method == "GET" else None))


def staff_page(view):
    """A page or action for logged-in staff; the staff user is g.staff (as after api_auth, so the
    presenters' price rule applies)."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        g.api_key = g.wechat_user = None
        g.staff = session_staff()
        if g.staff is None:
            return _to_login()
        return view(*args, **kwargs)

    return wrapper


def _may(roles):
    return g.staff.role in roles + ("admin",)


def _back(default):
    return redirect(_safe_next(request.form.get("next")) if request.form.get("next") else default, code=303)


def _act(form, action, done, back):
    """Run a button's service call: CSRF first, then `action()`; a refusal (a domain error) is
    shown on the page it came from, in the service's own words."""
    _check_csrf(form)
    try:
        action()
    except DomainError as exc:
        flash(exc.message, "error")
    else:
        flash(done, "ok")
    return _back(back)


@bp.app_template_global()
def dashboard_csrf():
    return csrf_token()


@bp.app_template_filter("local")
def _local(value):
    return iso_local(value).replace("T", " ")[:16] if value else ""


@bp.app_template_filter("qty")
def _qty(value):
    """A material quantity as people write it (12.5, not 12.500)."""
    return materials.fmt(value) if value is not None else ""


@bp.app_context_processor
def _vocabulary():
    return {"STATE_NAMES": STATE_NAMES, "NODE_STATE_NAMES": NODE_STATE_NAMES, "ALERT_KINDS": ALERT_KINDS,
            "LEVEL_NAMES": LEVEL_NAMES, "ALERT_STATUS_NAMES": ALERT_STATUS_NAMES, "ROLE_NAMES": ROLE_NAMES,
            "ACTION_NAMES": ACTION_NAMES, "node_colour": node_colour, "BATCH_STATUSES": BATCH_STATUSES,
            "DISPOSITIONS": DISPOSITIONS, "INSPECTION_KINDS": INSPECTION_KINDS,
            "INSPECTION_RESULTS": INSPECTION_RESULTS, "INSPECTION_SOURCES": INSPECTION_SOURCES,
            "DEFECT_CATEGORIES": DEFECT_CATEGORIES}


def _render(template, **context):
    staff = g.staff
    context.update(staff=staff, may_write=_may(ORDER_WRITE_ROLES), may_qc=_may(QC_ROLES),
                   may_receive=_may(RECEIVE_ROLES),
                   may_respond=lambda alert: alert_responses.may_respond(staff, alert),
                   sees_prices=presenters.caller_sees_prices(), today=china_date())
    return render_template(f"dashboard/{template}", **context)


# --- login ------------------------------------------------------------------------------------------

@bp.get("/login")
@bp.input(schemas.NextQuery, location="query", arg_name="args")
@bp.doc(responses={200: {"description": "the login form (HTML)", **HTML}})
def login_page(args):
    """The dashboard's login form."""
    return render_template("dashboard/login.html", next=_safe_next(args.get("next")), error=None)


@bp.post("/login")
@bp.input(schemas.LoginForm, location="form", arg_name="form")
@bp.doc(responses={303: {"description": "logged in: to the page asked for (Location)", **HTML},
                   401: {"description": "用户名或密码错误 (HTML)", **HTML},
                   403: "页面已过期（csrf_failed）", 429: {"description": "失败次数过多（login_locked，HTML）", **HTML}})
def login(form):
    """Log in with the staff username and password: the session cookie of POST /api/v1/auth/login,
    with the same throttle (five failures for a name from one address lock it for 15 minutes)."""
    _check_csrf(form)
    username, target = form["username"], _safe_next(form.get("next"))
    try:
        throttle.refuse_if_locked(username)
        try:
            user = auth_service.authenticate_staff(username, form["password"])
        except Unauthorized:
            throttle.failed(username)
            raise
    except ApiError as exc:  # locked out
        return render_template("dashboard/login.html", next=target, error=exc.message), exc.status
    except DomainError as exc:
        return render_template("dashboard/login.html", next=target, error=exc.message), 401
    throttle.succeeded(username)
    start_staff_session(user)
    return redirect(target, code=303)


@bp.post("/logout")
@bp.input(schemas.CsrfForm, location="form", arg_name="form")
@bp.doc(responses={303: {"description": "to the login page (Location)", **HTML}, 403: "页面已过期（csrf_failed）"})
def logout(form):
    """End the session, server-side too (as POST /api/v1/auth/logout)."""
    _check_csrf(form)
    staff = session_staff()
    if staff is not None:
        auth_service.end_staff_sessions(staff)
    session.clear()
    return redirect(url_for("dashboard.login_page"), code=303)


# --- pages ----------------------------------------------------------------------------------------

@bp.get("/")
@bp.doc(responses=PAGE)
@staff_page
def overview():
    """Overview: orders and tasks by state, late and at-risk tasks with their level, open alerts
    (acknowledge, resolve), the tasks that have not reported today, frozen batches (dispose, release)."""
    return _render("overview.html", data=dashboard.overview())


@bp.get("/gantt")
@bp.input(schemas.GanttPageQuery, location="query", arg_name="args")
@bp.doc(responses=PAGE)
@staff_page
def gantt(args):
    """The Gantt chart of tasks, by order or by supplier (its data: GET /api/v1/gantt)."""
    return _render("gantt.html", group=args["group"], order_id=args.get("order_id"),
                   supplier_id=args.get("supplier_id"))


@bp.get("/orders")
@bp.input(schemas.OrderListQuery, location="query", arg_name="args")
@bp.doc(responses=PAGE)
@staff_page
def orders(args):
    """Orders, filtered as GET /api/v1/orders, with export buttons for the same filter."""
    filters = {k: args.get(k) for k in ("state", "q", "due_before", "due_after", "supplier_id", "customer_id")}
    query = order_queries.orders_query(**filters)
    page = args["page"]
    rows = list(query.paginate(page, schemas.ORDERS_PER_PAGE))
    total = query.count()
    export_args = {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in filters.items() if v}
    return _render("orders.html", rows=rows, total=total, page=page, per_page=schemas.ORDERS_PER_PAGE,
                   filters=filters, export_args=export_args, states=ORDER_STATES)


@bp.get("/orders/<int:order_id>")
@bp.doc(responses={**PAGE, 404: "订单不存在"})
@staff_page
def order(order_id):
    """One order: node timeline, tasks with their progress, batches (receive, dispose, release),
    inspections with photos, material balance, reports with photos, urges and the supplier's
    answers, open alerts, audit history; urge, confirm first articles, print labels."""
    detail = dashboard.order_quality(dashboard.order_page(staff_order(order_id)))
    return _render("order.html", order=detail, awaiting=dashboard.first_articles_awaiting(detail),
                   thumb_url=presenters.thumb_url, photo_url=presenters.photo_url)


@bp.get("/suppliers")
@bp.doc(responses=PAGE)
@staff_page
def suppliers():
    """Suppliers, each with its frozen batches and open nonconformances, linking to its page."""
    return _render("suppliers.html", rows=dashboard.suppliers_list())


@bp.get("/suppliers/<int:supplier_id>")
@bp.input(schemas.SupplierPageQuery, location="query", arg_name="args")
@bp.doc(responses={**PAGE, 404: "供应商不存在"})
@staff_page
def supplier(supplier_id, args):
    """One supplier: quality figures of the last 30 days, open problems (alerts, nonconformances,
    frozen batches), the material balance of its tasks, and its scorecard: the latest snapshot of
    the chosen period (?period=week|month, default month) and the trend of the last 12."""
    period = args["period"]
    data = dashboard.supplier_page(supplier_id)  # 404 for an unknown supplier, before the scorecard
    card = scorecard.scorecard(supplier_id, period)
    return _render("supplier.html", data=data, period=period, trend=card["trend"], card=card["latest"],
                   thumb_url=presenters.thumb_url, photo_url=presenters.photo_url)


# --- buttons ----------------------------------------------------------------------------------------

@bp.post("/alerts/<int:alert_id>/ack")
@bp.input(schemas.AckForm, location="form", arg_name="form")
@bp.doc(responses=ACTION)
@staff_page
def ack_alert(alert_id, form):
    """Acknowledge an alert (as POST /api/v1/alerts/<id>/ack)."""
    note = (form.get("note") or "").strip() or None
    return _act(form, lambda: alert_responses.acknowledge(current_actor(), g.staff, alert_id, note),
                "预警已确认", url_for("dashboard.overview"))


@bp.post("/alerts/<int:alert_id>/resolve")
@bp.input(schemas.ResolveForm, location="form", arg_name="form")
@bp.doc(responses=ACTION)
@staff_page
def resolve_alert(alert_id, form):
    """Resolve an alert with a note (as POST /api/v1/alerts/<id>/resolve)."""
    note = form["note"].strip()
    return _act(form, lambda: alert_responses.resolve(current_actor(), g.staff, alert_id, note),
                "预警已解除", url_for("dashboard.overview"))


@bp.post("/tasks/<int:task_id>/urge")
@bp.input(schemas.UrgeForm, location="form", arg_name="form")
@bp.doc(responses=ACTION)
@staff_page
def urge(task_id, form):
    """Urge the task's supplier (as POST /api/v1/tasks/<id>/urges; managers)."""
    message = (form.get("message") or "").strip() or None

    def action():
        if not _may(ORDER_WRITE_ROLES):
            raise _forbidden()
        urges.urge_task(current_actor(), task_id, message, staff=g.staff, via="dashboard")

    return _act(form, action, "已催单，供应商会收到通知", url_for("dashboard.overview"))


@bp.post("/orders/<int:order_id>/nodes/<int:node_id>/confirm")
@bp.input(schemas.ConfirmForm, location="form", arg_name="form")
@bp.doc(responses=ACTION)
@staff_page
def confirm_node(order_id, node_id, form):
    """Confirm a task's first article (as POST /api/v1/orders/<id>/nodes/<node_id>/confirm; managers)."""

    def action():
        if not _may(ORDER_WRITE_ROLES):
            raise _forbidden()
        node_reviews.confirm(current_actor(), order_id, node_id, task_id=form.get("task_id"),
                             note=(form.get("note") or "").strip() or None)

    return _act(form, action, "首件已确认", url_for("dashboard.order", order_id=order_id))


def _batch_action(batch_id, form, roles, call, done):
    """A batch button: CSRF, the batch (unknown: 404), then the quality service under the API
    route's role rule; back to the page it came from (default: the batch's order)."""
    _check_csrf(form)
    batch = quality.staff_batch(batch_id)

    def action():
        if not _may(roles):
            raise _forbidden()
        call(batch)

    return _act(form, action, done, url_for("dashboard.order", order_id=batch.task.order_id))


@bp.post("/batches/<int:batch_id>/disposition")
@bp.input(schemas.DispositionForm, location="form", arg_name="form")
@bp.doc(responses={**ACTION, 404: "批次不存在"})
@staff_page
def dispose_batch(batch_id, form):
    """Decide a frozen batch with a reason (as POST /api/v1/batches/<id>/disposition; QC)."""
    return _batch_action(batch_id, form, QC_ROLES, lambda batch: quality.dispose(
        current_actor(), g.staff, batch, form["disposition"], form["reason"].strip()),
        f"已处置：{DISPOSITIONS[form['disposition']]}")


@bp.post("/batches/<int:batch_id>/release")
@bp.input(schemas.ReleaseForm, location="form", arg_name="form")
@bp.doc(responses={**ACTION, 404: "批次不存在"})
@staff_page
def release_batch(batch_id, form):
    """Release a frozen batch accepted by concession, with a reason (as POST /api/v1/batches/<id>/release; QC)."""
    return _batch_action(batch_id, form, QC_ROLES, lambda batch: quality.release(
        current_actor(), g.staff, batch, form["reason"].strip()), "批次已放行")


@bp.post("/batches/<int:batch_id>/receipts")
@bp.input(schemas.ReceiptForm, location="form", arg_name="form")
@bp.doc(responses={**ACTION, 404: "批次不存在"})
@staff_page
def receive_batch(batch_id, form):
    """Receive (part of) what the supplier shipped (as POST /api/v1/batches/<id>/receipts; managers and QC)."""
    return _batch_action(batch_id, form, RECEIVE_ROLES, lambda batch: quality.receive(
        current_actor(), g.staff, batch, form["qty"], form["qty_rejected"], (form.get("note") or "").strip() or None),
        f"已收货 {form['qty']}")


def _forbidden():
    return Forbidden("forbidden", "当前角色无权执行此操作")
