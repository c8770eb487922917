"""Alerts: the one open alert per task and kind, its level, and what the task shows of it.

Whoever finds a problem (the delay engine, a later issue; for now the demo seed) decides *that*
a task is late and by how much; `raise_alert` records the finding, so the dedup rule lives in one
place: a task has at most one unresolved alert of each kind (Alert.open_key carries the unique
index), a later finding updates that alert and moves its level (`level_changed_at` says when), and
the task's `alert_level` is the highest level of its unresolved alerts. Resolving, acknowledging
and escalating belong to the engine and the dashboard.
"""
from app.domain.errors import Invalid
from app.domain.vocabulary import ALERT_KINDS, ALERT_LEVELS
from app.models import Alert, EtaRevision, Task
from app.services import audit
from app.services.progress import lock_task
from app.timeutil import utcnow

OPEN = "open"  # Alert.open_key of an unresolved alert


def raise_alert(actor, task, kind, level, *, deviation_pct=None, days_late=None, eta_date=None, message=None):
    """Open the task's alert of this kind, or update the unresolved one with this finding. → the alert.

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
        alert = Alert.get_or_none((Alert.task == current.id) & (Alert.kind == kind) & (Alert.open_key == OPEN))
        if alert is None:
            alert = Alert.create(task=current.id, order=current.order_id, kind=kind, level_changed_at=now, **finding)
            log.add("alert.open", "alert", alert.id, after={**finding, "kind": kind, "task_id": current.id},
                    reason=message)
        else:
            _update(log, alert, finding, now)
        _show_on_task(log, current, kind, eta_date, message, now)
    return Alert.get_by_id(alert.id)


def _update(log, alert, finding, now):
    changed = {k: v for k, v in finding.items() if getattr(alert, k) != v}
    if not changed:
        return
    before = {k: getattr(alert, k) for k in changed}
    fields = dict(changed)
    if "level" in changed:
        fields["level_changed_at"] = now
    Alert.update(**fields).where(Alert.id == alert.id).execute()
    log.add("alert.update", "alert", alert.id, before=before, after=changed, reason=finding["message"])


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
