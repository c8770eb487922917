"""Alerts: the one open alert per task and kind, its level, and what the task shows of it.

Whoever finds a problem (the delay engine, a later issue; for now the demo seed) decides *that*
a task is late and by how much; `raise_alert` records the finding, so the dedup rule lives in one
place: a task has at most one unresolved alert of each kind (and node, for node_overdue;
Alert.open_key carries the unique index), a later finding updates that alert and moves its level
(`level_changed_at` says when), and the task's `alert_level` is the highest level of its unresolved
alerts. `resolve_by_system` closes an alert whose cause has gone (the delay engine finds that);
acknowledging and resolving by staff belong to the dashboard.

An order-level node that belongs to staff (订单确认, 质检: one node for the whole order, no task's
part) has its alert about the order: `raise_order_alert`, task NULL, one open alert per order,
kind and node (Alert.order_open_key carries that unique index), taken under the order's row lock.
"""
from app.domain.errors import Invalid
from app.domain.vocabulary import ALERT_KINDS, ALERT_LEVELS
from app.extensions import is_mysql
from app.models import Alert, EtaRevision, Order, Task
from app.services import audit
from app.services.progress import lock_task
from app.timeutil import utcnow

OPEN = "open"  # Alert.open_key of an unresolved alert


def raise_alert(actor, task, kind, level, *, node=None, deviation_pct=None, days_late=None, eta_date=None,
                message=None):
    """Open the task's alert of this kind (about `node`, if given), or update the unresolved one
    with this finding. → the alert, its `change` saying what happened: "opened", "level" (the level
    moved), "updated" (other figures moved) or None (the same finding again).

    A delay alert's predicted finish (`eta_date`) becomes the task's ETA too, kept in its ETA
    history (source "engine") like a supplier's answer to an urge, so the task and its alert agree."""
    if kind not in ALERT_KINDS:
        raise Invalid("validation_error", f"未知的预警类型 {kind}", field="kind")
    if level not in ALERT_LEVELS:
        raise Invalid("validation_error", f"预警级别必须是 {', '.join(ALERT_LEVELS)} 之一", field="level")
    finding = {"level": level, "deviation_pct": deviation_pct, "days_late": days_late, "eta_date": eta_date,
               "message": message}
    with audit.transaction(actor) as log:
        # The task's row lock first: two findings about one task queue up instead of both opening one.
        current = lock_task(task.id)
        now = utcnow()
        node_key = node.id if node is not None else 0
        alert = Alert.get_or_none((Alert.task == current.id) & (Alert.kind == kind) & (Alert.node_key == node_key)
                                  & (Alert.open_key == OPEN))
        if alert is None:
            alert = Alert.create(task=current.id, order=current.order_id, kind=kind, node=node, node_key=node_key,
                                 level_changed_at=now, **finding)
            after = {**finding, "kind": kind, "task_id": current.id, **({"node_id": node.id} if node else {})}
            log.add("alert.open", "alert", alert.id, after=after, reason=message)
            change = "opened"
        else:
            change = _update(log, alert, finding, now)
        _show_on_task(log, current, kind, eta_date, message, now)
    alert = Alert.get_by_id(alert.id)
    alert.change = change
    return alert


def raise_order_alert(actor, order_id, kind, level, *, node, days_late=None, message=None):
    """Open the order's alert of this kind about `node` (an order-level node), or update the
    unresolved one with this finding. → the alert with `change`, as `raise_alert`."""
    if kind not in ALERT_KINDS:
        raise Invalid("validation_error", f"未知的预警类型 {kind}", field="kind")
    if level not in ALERT_LEVELS:
        raise Invalid("validation_error", f"预警级别必须是 {', '.join(ALERT_LEVELS)} 之一", field="level")
    finding = {"level": level, "deviation_pct": None, "days_late": days_late, "eta_date": None, "message": message}
    with audit.transaction(actor) as log:
        # The order's row lock first: two scans finding the same node queue up instead of both opening one.
        lock_order(order_id)
        now = utcnow()
        alert = Alert.get_or_none((Alert.order == order_id) & Alert.task.is_null() & (Alert.kind == kind)
                                  & (Alert.node_key == node.id) & (Alert.order_open_key == OPEN))
        if alert is None:
            alert = Alert.create(task=None, order=order_id, kind=kind, node=node.id, node_key=node.id,
                                 order_open_key=OPEN, level_changed_at=now, **finding)
            log.add("alert.open", "alert", alert.id, reason=message,
                    after={**finding, "kind": kind, "order_id": order_id, "node_id": node.id})
            change = "opened"
        else:
            change = _update(log, alert, finding, now)
    alert = Alert.get_by_id(alert.id)
    alert.change = change
    return alert


def lock_order(order_id):
    """Take the order's row lock for this transaction (SQLite: the write transaction holds the one
    write lock already) and read it fresh."""
    query = Order.select().where(Order.id == order_id)
    return (query.for_update() if is_mysql() else query).get()


def lock_subject(alert):
    """The row an alert's changes queue up on: its task's, or for an order-level alert its order's.
    → the task (None for an order-level alert)."""
    if alert.task_id is None:
        lock_order(alert.order_id)
        return None
    return lock_task(alert.task_id)


def _update(log, alert, finding, now):
    changed = {k: v for k, v in finding.items() if getattr(alert, k) != v}
    if not changed:
        return None
    before = {k: getattr(alert, k) for k in changed}
    fields = dict(changed)
    if "level" in changed:
        fields["level_changed_at"] = now
    Alert.update(**fields).where(Alert.id == alert.id).execute()
    log.add("alert.update", "alert", alert.id, before=before, after=changed, reason=finding["message"])
    return "level" if "level" in changed else "updated"


def resolve_by_system(actor, alert_id, reason):
    """Close an unresolved alert whose cause has gone (caught up, reported, completed, cancelled):
    resolved_at without resolved_by is the system's doing; the audit entry says why. → the alert,
    or None if someone resolved it meanwhile."""
    with audit.transaction(actor) as log:
        alert = Alert.get_by_id(alert_id)
        current = lock_subject(alert)
        now = utcnow()
        done = (Alert.update(status="resolved", open_key=None, order_open_key=None, resolved_at=now, resolved_by=None)
                .where((Alert.id == alert_id) & Alert.open_key.is_null(False)).execute())
        if not done:
            return None
        log.add("alert.resolve", "alert", alert_id, before={"status": alert.status},
                after={"status": "resolved", "by": "system"}, reason=reason)
        if current is not None:
            _show_on_task(log, current, alert.kind, None, reason, now)
    return Alert.get_by_id(alert_id)


def _show_on_task(log, task, kind, eta_date, message, now):
    """The task's alert level (the highest of its unresolved alerts) and, for a delay, its ETA."""
    levels = [a.level for a in Alert.select(Alert.level).where((Alert.task == task.id) & Alert.open_key.is_null(False))]
    fields = {"alert_level": max(levels, key=ALERT_LEVELS.index) if levels else None}
    if kind == "delay" and eta_date is not None:
        fields["eta_date"] = eta_date
    changed = {k: v for k, v in fields.items() if getattr(task, k) != v}
    if not changed:
        return
    Task.update(**changed, updated_at=now).where(Task.id == task.id).execute()
    if "eta_date" in changed:
        EtaRevision.create(task=task.id, old_eta=task.eta_date, new_eta=eta_date, reason=message, source="engine")
    log.add("task.alert", "task", task.id, before={k: getattr(task, k) for k in changed}, after=changed,
            reason=message)


def show_level_on_task(log, task, now, reason=None):
    """The task's alert level again after one of its alerts was resolved (None once none is open)."""
    _show_on_task(log, task, None, None, reason, now)
