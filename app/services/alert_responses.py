"""Staff responses to alerts: the list they work from, acknowledging and resolving with a note.

Who may respond: managers, executives and admins to any alert; QC staff only to `qc_fail`
alerts and to overdue QC nodes (a failed inspection or a late QC node is theirs to follow up, a
late task is not). ERP keys read the list
with the "alerts" scope but never respond: a response is a person's.

- Acknowledging says "seen, on it": the alert stops escalating, and opened → acknowledged is its
  response time (`response_seconds`), the figure the scorecard uses. Acknowledging again changes
  nothing; a resolved alert cannot be acknowledged any more (409 alert_resolved).
- Resolving closes the alert with a note: its open_key is cleared, so the next finding of that
  kind opens a new alert (app/services/alerts.py), and the task's alert level is recomputed from
  what is still open. Resolving an unacknowledged alert acknowledges it at the same moment, by
  the same person (that was the response). Resolving a resolved alert again is answered
  unchanged when it repeats the same person's same note (a retry), else 409 alert_resolved:
  someone else (or the system, when the task caught up) already closed it.

An alert the engine resolves itself has `resolved_at` without `resolved_by`; unacknowledged
before, it has no response time.
"""
from peewee import JOIN, Case

from app.domain.errors import Conflict, Forbidden, NotFound
from app.domain.vocabulary import QC_NODE_CODES
from app.models import Alert, NodeInstance, Order, StaffUser, Supplier, Task
from app.services import alerts, audit
from app.timeutil import utcnow

RESPONDER_ROLES = ("manager", "executive", "qc")  # admin always; qc only for QC_KINDS
QC_KINDS = ("qc_fail",)
STATUSES = ("open", "acknowledged", "resolved", "unresolved")  # unresolved = open or acknowledged
SEVERITY = Case(Alert.level, (("red", 0), ("orange", 1), ("yellow", 2)), 3)


def alerts_query(*, kind=None, level=None, status=None, supplier_id=None, order_id=None, task_id=None):
    """Alerts with their task, order and supplier: unresolved before resolved, then the most
    severe first, then the newest. Load the people with `with_people`."""
    query = (Alert.select(Alert, Task, Order, Supplier, NodeInstance)
             # An alert about an order-level node has no task, hence no supplier (both None).
             .join(Task, JOIN.LEFT_OUTER, on=(Alert.task == Task.id))
             .join(Supplier, JOIN.LEFT_OUTER, on=(Task.supplier == Supplier.id))
             .switch(Alert).join(Order, on=(Alert.order == Order.id))
             .switch(Alert).join(NodeInstance, JOIN.LEFT_OUTER, on=(Alert.node == NodeInstance.id))
             .order_by(Alert.open_key.is_null(), SEVERITY, Alert.id.desc()))
    if status == "unresolved":
        query = query.where(Alert.open_key == alerts.OPEN)
    elif status:
        query = query.where(Alert.status == status)
    for column, value in ((Alert.kind, kind), (Alert.level, level), (Task.supplier, supplier_id),
                          (Alert.order, order_id), (Alert.task, task_id)):
        if value is not None:
            query = query.where(column == value)
    return query


def with_people(rows):
    """Who acknowledged and resolved each alert (`acknowledger`, `resolver`: StaffUser or None),
    in one query for the whole page."""
    ids = {i for a in rows for i in (a.acknowledged_by_id, a.resolved_by_id) if i}
    people = {u.id: u for u in StaffUser.select().where(StaffUser.id.in_(ids))} if ids else {}
    for a in rows:
        a.acknowledger = people.get(a.acknowledged_by_id)
        a.resolver = people.get(a.resolved_by_id)
    return rows


def alert_detail(alert_id):
    """One alert, loaded as the list loads it (not found: 404)."""
    rows = with_people(list(alerts_query().where(Alert.id == alert_id)))
    if not rows:
        raise NotFound("not_found", "预警不存在")
    return rows[0]


def response_seconds(alert):
    """Opened → acknowledged, in whole seconds; None while unacknowledged."""
    if alert.acknowledged_at is None:
        return None
    return max(0, int((alert.acknowledged_at - alert.created_at).total_seconds()))


def acknowledge(actor, staff, alert_id, note=None):
    """`staff` has seen the alert and is on it. → the alert (unchanged if already acknowledged)."""
    with audit.transaction(actor) as log:
        _, alert = _locked(staff, alert_id)
        if alert.status == "resolved":
            raise Conflict("alert_resolved", f"该预警已解除（{_resolver_label(alert)}），无需再确认")
        if alert.status == "open":
            now = utcnow()
            Alert.update(status="acknowledged", acknowledged_at=now, acknowledged_by=staff.id, ack_note=note).where(
                Alert.id == alert.id).execute()
            log.add("alert.ack", "alert", alert.id, before={"status": "open"},
                    after={"status": "acknowledged", "note": note}, reason=note)
    return alert_detail(alert_id)


def resolve(actor, staff, alert_id, note):
    """`staff` closes the alert with a note; the task's alert level follows. → the alert."""
    with audit.transaction(actor) as log:
        task, alert = _locked(staff, alert_id)
        if alert.status == "resolved":
            if (alert.resolved_by_id, alert.resolve_note) == (staff.id, note):
                return alert_detail(alert_id)  # the same answer again: a retry after a lost response
            raise Conflict("alert_resolved", f"该预警已解除（{_resolver_label(alert)}）")
        now = utcnow()
        fields = {"status": "resolved", "open_key": None, "order_open_key": None, "resolved_at": now,
                  "resolved_by": staff.id, "resolve_note": note}
        if alert.acknowledged_at is None:
            fields.update(acknowledged_at=now, acknowledged_by=staff.id)
        Alert.update(**fields).where(Alert.id == alert.id).execute()
        log.add("alert.resolve", "alert", alert.id, before={"status": alert.status},
                after={"status": "resolved", "note": note}, reason=note)
        if task is not None:
            alerts.show_level_on_task(log, task, now, note)
    return alert_detail(alert_id)


def may_respond(staff, alert):
    """Whether `staff` may acknowledge or resolve `alert` (the rule `acknowledge` and `resolve` apply)."""
    if staff.role not in RESPONDER_ROLES + ("admin",):
        return False
    return staff.role != "qc" or qc_may_respond(alert)


def _locked(staff, alert_id):
    """The alert, read fresh under its task's row lock (taken first, as `alerts.raise_alert` does,
    so a response and a scan of the same task queue up; an order-level alert's order), if `staff`
    may respond to it. → (task or None, alert)"""
    found = Alert.get_or_none(Alert.id == alert_id)
    if found is None:
        raise NotFound("not_found", "预警不存在")
    if not may_respond(staff, found):
        raise Forbidden("forbidden", "质检只能处理质检不合格预警和质检节点逾期预警")
    task = alerts.lock_subject(found)
    return task, Alert.get_by_id(alert_id)


def qc_may_respond(alert):
    """QC staff's alerts: failed inspections, and an overdue QC node of an order."""
    if alert.kind in QC_KINDS:
        return True
    if alert.kind != "node_overdue" or alert.task_id is not None or alert.node_id is None:
        return False
    node = NodeInstance.get_or_none(NodeInstance.id == alert.node_id)
    return node is not None and node.code in QC_NODE_CODES


def _resolver_label(alert):
    if alert.resolved_by_id is None:
        return "由系统自动解除"
    person = StaffUser.get_or_none(StaffUser.id == alert.resolved_by_id)
    return f"由{person.display_name}解除" if person else "已解除"
