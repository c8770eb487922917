"""Staff API: alerts — the list staff work from, acknowledging and resolving with a note."""
from apiflask import APIBlueprint, Schema
from apiflask.fields import String
from apiflask.validators import Length, OneOf
from flask import g
from marshmallow import ValidationError

from app.admin.schemas import AlertDetail, AlertPage
from app.domain.vocabulary import ALERT_KINDS, ALERT_LEVELS
from app.services import alert_responses
from app.web.auth import api_auth, current_actor, staff_role
from app.web.fields import Id
from app.web.paging import PageIn, paginate

bp = APIBlueprint("admin_alerts", __name__, tag="管理端 · 预警")

READ_ROLES = ("manager", "qc", "executive")


def _not_blank(value):
    if not value.strip():
        raise ValidationError("不能为空白")


class AlertQuery(PageIn):
    kind = String(validate=OneOf(list(ALERT_KINDS)))
    level = String(validate=OneOf(ALERT_LEVELS))
    status = String(validate=OneOf(alert_responses.STATUSES),
                    metadata={"description": "open | acknowledged | resolved | unresolved (open or acknowledged)"})
    supplier_id = Id(strict=False)
    order_id = Id(strict=False)
    task_id = Id(strict=False)


class AckIn(Schema):
    note = String(allow_none=True, validate=Length(max=500), metadata={"description": "recorded with the alert"})


class ResolveIn(Schema):
    note = String(required=True, validate=[Length(1, 500), _not_blank],
                  metadata={"description": "what was done about it (required)"})


RESPONSE_ERRORS = {
    403: ("当前角色无权处理该预警（forbidden：质检只能处理质检不合格预警和质检节点逾期预警）；"
          "ERP 密钥不能处理预警（api_key_scope）"),
    404: "预警不存在",
    409: "预警已解除（alert_resolved）",
}


@bp.get("/alerts")
@bp.auth_required(api_auth)
@staff_role(*READ_ROLES, key_scope="alerts")
@bp.input(AlertQuery, location="query", arg_name="args")
@bp.output(AlertPage)
def list_alerts(args):
    """Alerts: unresolved before resolved, then the most severe first, then the newest; filtered by
    kind, level, status, supplier, order and task. Each shows its response time (opened →
    acknowledged). Staff, or an ERP key with the "alerts" scope."""
    filters = {k: args.get(k) for k in ("kind", "level", "status", "supplier_id", "order_id", "task_id")}
    return paginate(alert_responses.alerts_query(**filters), args, load=alert_responses.with_people)


@bp.get("/alerts/<int:alert_id>")
@bp.auth_required(api_auth)
@staff_role(*READ_ROLES, key_scope="alerts")
@bp.output(AlertDetail)
@bp.doc(responses={404: "预警不存在"})
def get_alert(alert_id):
    """One alert."""
    return alert_responses.alert_detail(alert_id)


@bp.post("/alerts/<int:alert_id>/ack")
@bp.auth_required(api_auth)
@staff_role(*alert_responses.RESPONDER_ROLES)
@bp.input(AckIn, arg_name="body")
@bp.output(AlertDetail)
@bp.doc(responses=RESPONSE_ERRORS)
def acknowledge(alert_id, body):
    """Acknowledge an alert (seen, being handled): it stops escalating and its response time is
    fixed. Acknowledging again changes nothing (200). Managers, executives, admins; QC only for
    qc_fail alerts and overdue QC nodes. Audited."""
    note = (body.get("note") or "").strip() or None
    return alert_responses.acknowledge(current_actor(), g.staff, alert_id, note)


@bp.post("/alerts/<int:alert_id>/resolve")
@bp.auth_required(api_auth)
@staff_role(*alert_responses.RESPONDER_ROLES)
@bp.input(ResolveIn, arg_name="body")
@bp.output(AlertDetail)
@bp.doc(responses=RESPONSE_ERRORS)
def resolve(alert_id, body):
    """Resolve an alert with a note: the task's alert level is recomputed, and the next finding of
    the same kind opens a new alert. An unacknowledged alert counts as acknowledged now. Sending
    the same resolution again answers 200 unchanged; an alert resolved otherwise (by someone else
    or by the system) answers 409 alert_resolved. Same roles as acknowledging. Audited."""
    return alert_responses.resolve(current_actor(), g.staff, alert_id, body["note"].strip())
