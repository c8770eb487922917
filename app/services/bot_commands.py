"""The manager bot in WeCom: a staff member's text in, the answer's text out.

The callback (bot/callback.py) decrypts what WeCom delivers and calls `reply_once`; everything
the bot knows and does is here, through the same services as the dashboard:

- 进度 <订单号>   an order's tasks (done/planned, behind by, expected finish), nodes and late tasks
- 逾期            the open delay alerts, worst first
- 预警            every unresolved alert, most severe first
- 确认 <预警号>   acknowledge an alert (alert_responses.acknowledge: same rules as the dashboard)
- 催单 <任务号> <内容>  urge a task's supplier (urges.urge_task, via "bot"; managers and admins)
- 帮助            the commands; any other text gets them too

Only an active staff user whose `wecom_userid` is the sender may use it; anyone else gets one
polite sentence that reveals nothing (not whether an order or alert exists, not who is bound).

WeCom redelivers a message it got no answer for within 5 s (three times). `reply_once` records
the message id with the answer in the transaction that ran the command: a redelivery gets the
recorded answer and runs nothing again; a crash before the commit leaves nothing recorded and
nothing done, so the redelivery runs it then.
"""
import re

from peewee import IntegrityError

from app.domain.errors import DomainError
from app.domain.vocabulary import ALERT_KINDS, NODE_STATE_NAMES, state_name
from app.extensions import db, write_transaction
from app.models import Alert, InboundMessage, Order, StaffUser, Task
from app.services import alert_responses, order_queries, urges
from app.services.actors import Actor
from app.timeutil import china_date

TEXT_LIMIT = 2048  # bytes of UTF-8: WeCom's limit for a text reply
MAX_ROWS = 60  # list lines read for one answer: more never fit in 2048 bytes
URGE_ROLES = ("manager", "admin")  # who may urge: as POST /api/v1/tasks/<id>/urges
LEVELS = {"red": "🔴红", "orange": "🟠橙", "yellow": "🟡黄"}
STATUS_NAMES = {"open": "未确认", "acknowledged": "已确认", "resolved": "已解除"}
REFUSAL = "你好，此企业微信账号尚未绑定本系统的员工账号，无法使用此功能。如需开通，请联系系统管理员。"
HELP = """可用指令：
进度 订单号 —— 订单进度、节点与落后任务
逾期 —— 当前延期的任务，最严重的在前
预警 —— 未解除的预警
确认 预警号 —— 确认预警（表示已知悉、正在处理）
催单 任务号 内容 —— 催促供应商，例如：催单 SO-001-T1 请今天回复交期
帮助 —— 显示本说明"""
_SPACES = re.compile(r"[\s\u3000:：,，]+")


def reply_once(msg_key, wecom_userid, text, limit=TEXT_LIMIT):
    """The answer to one delivered message; a message id seen before gets the answer it got then,
    and runs nothing again."""
    with write_transaction():
        try:
            with db.atomic():  # a savepoint: the duplicate's error leaves the transaction usable
                seen = InboundMessage.create(msg_key=msg_key, source="wecom")
        except IntegrityError:
            # The first delivery committed (on MySQL this insert waited for it to): its answer.
            return InboundMessage.get(InboundMessage.msg_key == msg_key).body or ""
        answer = reply(wecom_userid, text, limit)
        InboundMessage.update(body=answer).where(InboundMessage.id == seen.id).execute()
    return answer


def reply(wecom_userid, text, limit=TEXT_LIMIT):
    """The answer to `text` from the WeCom user `wecom_userid` (None: not a text message)."""
    staff = StaffUser.get_or_none((StaffUser.wecom_userid == wecom_userid) & StaffUser.active) if wecom_userid else None
    if staff is None:
        return REFUSAL
    words = _SPACES.split((text or "").strip(), maxsplit=2)
    command, args = words[0], [w for w in words[1:] if w]
    handler = COMMANDS.get(command)
    if handler is None:
        return HELP
    try:
        # A savepoint: a refused command (not found, conflict) undoes what it wrote and nothing else.
        with db.atomic():
            return handler(staff, args, limit)
    except DomainError as err:
        return err.message


def _progress(staff, args, limit):
    if not args:
        return "请写上订单号，例如：进度 SO-20260101-001"
    order = Order.get_or_none((Order.order_no == args[0]) | (Order.external_no == args[0]))
    if order is None:
        return f"没有找到订单 {args[0]}"
    order = order_queries.order_detail(order)
    lines = [f"订单 {order.order_no}｜{order.product_name} ×{order.quantity}{order.unit}",
             f"状态：{state_name(order.state)}　交期：{order.due_date.isoformat()}", "任务："]
    late = []
    for task in order.task_list:
        lines.append(f"· {task.task_no} {task.process}（{task.supplier.name}）{state_name(task.state)} "
                     f"{task.qty_done}/{task.planned_qty}{_schedule_words(task.schedule)}")
        if task.schedule and task.schedule.level:
            late.append(task)
    lines.append("节点：")
    for node in order.node_list:
        parts = f" {node.done_tasks}/{node.total_tasks}" if node.total_tasks else ""
        lines.append(f"· {node.name}：{NODE_STATE_NAMES.get(node.state, node.state)}{parts}"
                     f"（计划 {node.planned_date.isoformat()}）")
    if late:
        late.sort(key=lambda t: (-t.schedule.days_late, -t.schedule.deviation_pct))
        lines.append("落后任务：")
        lines += [f"· {LEVELS.get(t.schedule.level, '')} {t.task_no} 晚 {t.schedule.days_late} 个工作日" for t in late]
    else:
        lines.append("没有落后的任务。")
    return _fit(lines, limit)


def _schedule_words(progress):
    if progress is None:
        return ""
    words = []
    if progress.deviation_pct > 0:
        words.append(f"，落后计划 {progress.deviation_pct:.0f}%")
    if progress.eta_date:
        words.append(f"，预计 {progress.eta_date.isoformat()} 完成")
    if progress.days_late:
        words.append(f"，晚 {progress.days_late} 个工作日")
    return "".join(words)


def _late(staff, args, limit):
    query = alert_responses.alerts_query(kind="delay", status="unresolved").order_by(
        alert_responses.SEVERITY, Alert.days_late.desc(nulls="LAST"), Alert.deviation_pct.desc(nulls="LAST"),
        Alert.id.desc())
    rows, total = list(query.limit(MAX_ROWS)), query.count()
    if not rows:
        return f"今天（{china_date().isoformat()}）没有逾期的任务。"
    lines = [f"逾期任务 {total} 个（{china_date().isoformat()}），最严重的在前："]
    for a in rows:
        figures = f"晚 {a.days_late} 个工作日" if a.days_late else ""
        if a.deviation_pct:
            figures += f"{'，' if figures else ''}落后 {a.deviation_pct:.0f}%"
        lines.append(f"· {LEVELS.get(a.level, a.level)} 预警#{a.id} {a.task.task_no}（{a.task.supplier.name}）{figures}")
    return _fit(lines, limit, more="个", unlisted=total - len(rows))


def _alerts(staff, args, limit):
    query = alert_responses.alerts_query(status="unresolved")
    rows, total = list(query.limit(MAX_ROWS)), query.count()
    if not rows:
        return "没有未解除的预警。"
    lines = [f"未解除的预警 {total} 条，最严重的在前（回复“确认 预警号”表示已知悉）："]
    for a in rows:
        lines.append(f"· {LEVELS.get(a.level, a.level)} 预警#{a.id} {ALERT_KINDS.get(a.kind, a.kind)}"
                     f"（{STATUS_NAMES.get(a.status, a.status)}）{_subject(a)}"
                     f"{'：' + a.message if a.message else ''}")
    return _fit(lines, limit, more="条", unlisted=total - len(rows))


def _subject(alert):
    """What an alert is about: the task and its supplier, or for an order-level alert the order."""
    if alert.task_id is None:
        return f"订单 {alert.order.order_no}"
    return f"{alert.task.task_no} {alert.task.supplier.name}"


def _acknowledge(staff, args, limit):
    alert_id = _number(args[0]) if args else None
    if alert_id is None:
        return "请写上预警号，例如：确认 12（预警号见“预警”指令）"
    alert = alert_responses.acknowledge(Actor.staff(staff), staff, alert_id, note="企业微信确认")
    subject = alert.task.task_no if alert.task_id is not None else f"订单 {alert.order.order_no}"
    return (f"已确认预警#{alert.id}（{ALERT_KINDS.get(alert.kind, alert.kind)}，{subject}），"
            f"由{staff.display_name}跟进。")


def _urge(staff, args, limit):
    if staff.role not in URGE_ROLES:
        return "你的角色不能催单，请联系生产经理。"
    if not args:
        return "请写上任务号和催单内容，例如：催单 SO-001-T1 请今天回复交期"
    task = Task.get_or_none(Task.task_no == args[0])
    if task is None and _number(args[0]) is not None:
        task = Task.get_or_none(Task.id == _number(args[0]))
    if task is None:
        return f"没有找到任务 {args[0]}"
    message = args[1] if len(args) > 1 else None
    urge = urges.urge_task(Actor.staff(staff), task.id, message, staff=staff, via="bot")
    said = f"：{urge.message}" if urge.message else ""
    return f"已向 {task.supplier.name} 催单（{task.task_no}）{said}。供应商回复后会通知你。"


def _help(staff, args, limit):
    return HELP


COMMANDS = {"进度": _progress, "逾期": _late, "预警": _alerts, "确认": _acknowledge, "催单": _urge, "帮助": _help}


def _number(word):
    word = word.lstrip("#＃")
    return int(word) if word.isdigit() and len(word) < 10 else None


def _fit(lines, limit, more="行", unlisted=0):
    """The lines joined, as many as fit in `limit` bytes; when some are left out (or `unlisted` more
    were never read), a last line says how many."""
    out, size = [], 0
    for i, line in enumerate(lines):
        rest = len(lines) - i + unlisted
        tail = f"……另有 {rest} {more}未列出，请到管理端查看。"
        cost = len(line.encode()) + 1
        if size + cost + (len(tail.encode()) + 1 if rest > 1 else 0) > limit:
            out.append(tail)
            break
        out.append(line)
        size += cost
    else:
        if unlisted:
            out.append(f"……另有 {unlisted} {more}未列出，请到管理端查看。")
    return "\n".join(out)
