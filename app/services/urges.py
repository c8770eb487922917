"""Urges (催单): a manager urges a running task; the supplier answers with a reason and a new
expected date, which is kept in the task's ETA history.

Both ends are told at once, through the outbox in the same transaction (one row per event, by
dedup key): the urge goes to the supplier as the delay engine reaches it (alert_routing.
reach_supplier: subscribe message to its users with an accept left, else its group robot, else
the manager hears that the supplier could not be reached — the audit entry says which); the
answer goes to the manager who urged (WeCom app message to their wecom_userid), else to the
order's manager, with the new expected date."""
from peewee import JOIN

from app.domain.errors import Conflict, Invalid
from app.domain.vocabulary import state_name
from app.models import EtaRevision, StaffUser, Task, Urge
from app.services import alert_routing, audit
from app.services.access import staff_task
from app.services.order_content import clean
from app.services.progress import lock_task, refuse_closed
from app.timeutil import china_date, iso_date, utcnow

URGEABLE_STATES = ("in_production", "on_hold")


def urge_task(actor, task_id, message=None, *, staff=None, via="dashboard"):
    """A manager's 催单 on a running task; the supplier sees it in the task and answers there."""
    task = staff_task(task_id)
    with audit.transaction(actor, chain=audit.order_chain(task.order_id)) as log:
        # The task's row lock, so an order change that stops the task cannot slip in between.
        task = lock_task(task.id)
        if task.state not in URGEABLE_STATES:
            raise Conflict("task_not_active", f"只能催办生产中或暂停的任务（当前：{state_name(task.state)}）")
        urge = Urge.create(task=task, by_staff=staff, via=via, message=clean(message))
        urge.reached = _tell_supplier(urge, task, staff)
        log.add("task.urge", "task", task.id, after={"urge_id": urge.id, "message": urge.message,
                                                     "reached": urge.reached}, reason=urge.message)
    return urge


def _tell_supplier(urge, task, staff):
    """The urge, to the supplier at once. → how: mp_subscribe | wecom_robot | unreached."""
    order, supplier = task.order, task.supplier
    who = staff.display_name if staff is not None else "跟单"
    asked = urge.message or "请尽快推进生产"
    text = (f"**催单**\n订单 {order.order_no} · 任务 {task.task_no} {task.process}\n"
            f"{who}催办：{asked}\n请在{alert_routing.SUPPLIER_WHERE}回复原因和新的预计完成日期。")
    data = alert_routing.subscribe_data(task.task_no, f"催单：{asked}", task.eta_date or task.due_date,
                                        "请回复原因和预计完成日期")
    return alert_routing.reach_supplier(alert_routing.Recipients(), task, order, supplier, text, data,
                                        f"urge{urge.id}")


def _tell_manager(urge, task, reason, new_due_date):
    """The supplier's answer, to the manager who urged (on WeCom), else to the order's manager."""
    order = task.order
    urger = urge.by_staff if urge.by_staff_id else None
    if urger is not None and urger.active and urger.wecom_userid:
        ids = [urger.wecom_userid]
    else:
        ids = alert_routing.Recipients().managers(order)
    text = (f"**催单回复**\n订单 {order.order_no} · 任务 {task.task_no} {task.process} · {task.supplier.name}\n"
            f"原因：{reason}\n新的预计完成日期：{new_due_date:%Y-%m-%d}（计划 {task.due_date:%Y-%m-%d}）\n"
            f"查看：{alert_routing.STAFF_WHERE}")
    alert_routing.wecom(ids, text, f"urge{urge.id}-reply")


def urges_query(task_id):
    """A task's urges, newest first (not found for an unknown task)."""
    staff_task(task_id)
    return (Urge.select(Urge, StaffUser).join(StaffUser, JOIN.LEFT_OUTER, on=(Urge.by_staff == StaffUser.id))
            .where(Urge.task == task_id).order_by(Urge.id.desc()))


def reply_urge(actor, user, urge, reason, new_due_date):
    """Answer a manager's urge once: a reason and a new expected date, kept in the ETA history.
    → the urge, with its task (`urge.task`, fresh) and the task's `eta_history` loaded."""
    if new_due_date < china_date():
        raise Invalid("past_date", "新的预计完成日期不能早于今天", field="new_due_date")
    with audit.transaction(actor) as log:
        task = lock_task(urge.task_id)
        log.chain = audit.order_chain(task.order_id)
        refuse_closed(task)
        now = utcnow()
        claimed = (Urge.update(replied_at=now, replied_by=user.id, reply_reason=reason, new_due_date=new_due_date)
                   .where((Urge.id == urge.id) & Urge.replied_at.is_null())
                   .execute())
        if claimed:
            Task.update(eta_date=new_due_date, updated_at=now).where(Task.id == task.id).execute()
            EtaRevision.create(task=task, urge=urge.id, old_eta=task.eta_date, new_eta=new_due_date, reason=reason,
                               source="supplier")
            _tell_manager(urge, task, reason, new_due_date)
            log.add("urge.reply", "task", task.id, before={"eta_date": iso_date(task.eta_date)},
                    after={"eta_date": iso_date(new_due_date), "urge_id": urge.id}, reason=reason)
    answered = Urge.get_by_id(urge.id)
    if not claimed and (answered.replied_by_id, answered.reply_reason, answered.new_due_date) != (
            user.id, reason, new_due_date):
        raise Conflict("urge_already_answered", "该催单已经回复过了")
    # A repeat of the same answer (the phone retried after a lost response) is answered again.
    answered.task = Task.get_by_id(task.id)
    answered.task.eta_history = list(answered.task.eta_revisions.order_by(EtaRevision.id))
    return answered
