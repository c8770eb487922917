"""Who hears what about an alert, and in which words: outbox rows, written in the caller's
transaction (the one that changed the alert), each with a dedup key, so a scan run twice — or by
two cron processes at once — never records a message twice (the outbox's unique dedup_key).

- The task's manager: a WeCom app message. The task's manager is the staff user who created the
  order, when that is an active manager with a WeCom id; otherwise every active manager with one.
- Executives (role "executive"): a WeCom app message for red alerts and escalations.
- An order-level node overdue (订单确认, 质检 — staff's nodes, task NULL): the order's manager, and
  for a QC node every active QC staff user with a WeCom id as well (`on_raise_order`); no supplier.
- The supplier: a mini-program subscribe message (the delay template, the second of
  SUBSCRIBE_TEMPLATE_IDS) to each of its WeChat users with an accept left for it; with none, the
  supplier's WeCom group robot (Supplier.robot_key); with neither, the manager is told that the
  supplier could not be reached.
- Customers: only the early warning, in plain words (no supplier, no figures), to the users of the
  order's customer who subscribed to the order in the mini program.

Messages are short Simplified Chinese: what, which order/task/supplier, how late, what to do,
where to look. Sending (channels, batching) is the notification jobs' business.
"""
from collections import Counter

from app.domain.vocabulary import ALERT_KINDS, ALERT_LEVELS, QC_NODE_CODES
from app.extensions import current
from app.models import Customer, NodeSubscription, StaffUser, SubscribeQuota, WechatUser
from app.services import notifications

LEVEL_NAMES = {"yellow": "黄色", "orange": "橙色", "red": "红色"}
# Where staff look: the dashboard's alert list (GET /api/v1/alerts) and the task.
STAFF_WHERE = "管理端「预警」列表"
SUPPLIER_WHERE = "小程序「我的任务」"
CUSTOMER_WHERE = "小程序「我的订单」"


class Recipients:
    """Staff WeCom ids, read once per scan (one query), not once per alert."""

    def __init__(self):
        self._staff = None

    def _load(self):
        if self._staff is None:
            self._staff = list(StaffUser.select(StaffUser.id, StaffUser.role, StaffUser.wecom_userid)
                               .where(StaffUser.active & StaffUser.wecom_userid.is_null(False)
                                      & StaffUser.role.in_(("manager", "executive", "qc")))
                               .order_by(StaffUser.id))
        return self._staff

    def managers(self, order):
        """The task's manager: the order's creator if an active manager on WeCom, else every one."""
        managers = [s for s in self._load() if s.role == "manager"]
        own = [s for s in managers if s.id == order.created_by_id]
        return [s.wecom_userid for s in (own or managers)]

    def executives(self):
        return [s.wecom_userid for s in self._load() if s.role == "executive"]

    def qc(self):
        return [s.wecom_userid for s in self._load() if s.role == "qc"]


def delay_template_id():
    templates = current().config["SUBSCRIBE_TEMPLATE_IDS"]
    return templates[1] if len(templates) > 1 else None


def wecom(ids, content, key):
    """A WeCom app message to these staff (none: nothing to record)."""
    if ids:
        notifications.record("wecom_app", "|".join(ids), {"content": content}, dedup_key=key[:128])


def _event_key(alert):
    """One alert at one level since one moment: a new level (or the same one again later) is a new event."""
    return f"alert{alert.id}-{alert.level}-{alert.level_changed_at:%Y%m%d%H%M%S}"


def subscribe_data(number, what, day, todo):
    """The delay template's fields (README "Alerts"): order or task number, what happened (≤ 20
    characters), the date that matters (the due date or the new expected one), what to do."""
    return {"character_string1": number, "thing2": what[:20], "date3": f"{day:%Y-%m-%d}", "thing4": todo[:20]}


def reach_supplier(recipients, task, order, supplier, text, data, key, level=None):
    """Tell the supplier by subscribe message (users with an accept left), else by its group robot,
    else tell the manager it could not be reached. → the channel used, or "unreached".

    An alert's robot row carries its `level` and a one-line summary: many of them due for one robot
    at once are sent as one digest (digest_text)."""
    template = delay_template_id()
    users = []
    if template and supplier.active:
        users = list(WechatUser.select(WechatUser.id, WechatUser.openid).join(
            SubscribeQuota, on=(SubscribeQuota.user == WechatUser.id))
            .where((WechatUser.supplier == supplier.id) & (WechatUser.role == "supplier")
                   & (SubscribeQuota.template_id == template) & (SubscribeQuota.remaining > 0))
            .order_by(WechatUser.id))
    for user in users:
        notifications.record("mp_subscribe", user.openid, {"data": data, "text": text}, template_id=template,
                             dedup_key=f"{key}-sup{user.id}"[:128])
    if users:
        return "mp_subscribe"
    if supplier.active and supplier.robot_key:
        payload = {"content": text}
        if level:
            payload.update(level=level, line=f"订单 {order.order_no} · 任务 {task.task_no} {task.process}：{data['thing2']}")
        notifications.record("wecom_robot", f"supplier:{supplier.id}", payload, dedup_key=f"{key}-robot")
        return "wecom_robot"
    wecom(recipients.managers(order),
           f"**无法联系供应商**\n{supplier.name}：没有可用的订阅消息，也未配置企业微信群机器人。"
           f"以下提醒未能送达，请电话联系（{supplier.contact_name or '联系人未填'} {supplier.contact_phone or ''}）：\n"
           f"> {text}\n查看：{STAFF_WHERE}", f"{key}-unreached")
    return "unreached"


def _where(task, order, supplier):
    if task is None:  # an order-level alert: the order, no task or supplier
        return f"订单 {order.order_no}（{order.product_name}）"
    return f"订单 {order.order_no} · 任务 {task.task_no} {task.process} · {supplier.name}"


# What to do about an order-level node that is overdue, by node code (others: the default).
ORDER_NODE_NEXT_STEP = {"confirmed": "请尽快确认订单并记录订单确认节点", "qc": "请尽快安排质检并记录质检结果"}


def staff_text(alert, task, order, supplier, headline=None, node=None):
    """What the manager, QC staff and executives read about an alert (`node`: an order-level
    alert's node, for what to do)."""
    level = LEVEL_NAMES.get(alert.level, alert.level)
    title = headline or f"{ALERT_KINDS.get(alert.kind, alert.kind)}（{level}）"
    todo = {
        "delay": "请联系供应商确认原因、催办或调整计划",
        "missing_report": "请联系供应商补报当日进度",
        "node_overdue": "请联系供应商确认节点进展",
    }.get(alert.kind, "请及时处理")
    if task is None and alert.kind == "node_overdue":
        todo = ORDER_NODE_NEXT_STEP.get(node.code if node else None, "请尽快跟进该节点并在完成后标记")
    return f"**{title}**\n{_where(task, order, supplier)}\n{alert.message}\n{todo}\n查看：{STAFF_WHERE}"


def on_raise(recipients, alert, task, order, supplier, supplier_text=None, supplier_data=None):
    """A new alert or a new level: the manager (except a first missed report, which is the
    supplier's to fix), the supplier, and executives when red."""
    key = _event_key(alert)
    if alert.kind != "missing_report" or alert.level != "yellow":
        wecom(recipients.managers(order), staff_text(alert, task, order, supplier), f"{key}-mgr")
    if alert.level == "red":
        wecom(recipients.executives(), staff_text(alert, task, order, supplier), f"{key}-exec")
    if supplier_text:
        reach_supplier(recipients, task, order, supplier, supplier_text, supplier_data, key, level=alert.level)


def on_raise_order(recipients, alert, order, node):
    """A new order-level alert (an overdue staff node) or a new level: the order's manager, QC
    staff too for a QC node, and executives when red. No supplier: the node is not theirs."""
    key = _event_key(alert)
    text = staff_text(alert, None, order, None, node=node)
    wecom(recipients.managers(order), text, f"{key}-mgr")
    if node.code in QC_NODE_CODES:
        wecom(recipients.qc(), text, f"{key}-qc")
    if alert.level == "red":
        wecom(recipients.executives(), text, f"{key}-exec")


def on_escalate(recipients, alert, task, order, supplier, hours, node=None):
    """Nobody acknowledged the alert in time: executives hear of it (the one escalation step).
    `task` and `supplier` are None for an order-level alert."""
    level = LEVEL_NAMES.get(alert.level, alert.level)
    headline = f"预警升级：{ALERT_KINDS.get(alert.kind, alert.kind)}（{level}）{hours} 小时无人确认"
    wecom(recipients.executives(), staff_text(alert, task, order, supplier, headline, node=node),
           f"alert{alert.id}-esc{alert.escalation_level}-exec")


def customer_text(order, due_date, new_date):
    """The early warning as a customer reads it: plain words, no supplier, no figures."""
    return (f"您的订单 {order.order_no}（{order.product_name}）预计无法在原定的 {due_date:%m月%d日} 交货，"
            f"新的预计交货日期是 {new_date:%m月%d日}。我们正在督促生产，如有变化会再通知您。"
            f"详情请看{CUSTOMER_WHERE}。")


def warn_customers(order, due_date, new_date):
    """The early warning to each user of the order's customer who subscribed to the order; once
    per order and user (dedup key). → how many rows."""
    template = delay_template_id()
    if template is None:
        return 0
    users = list(WechatUser.select(WechatUser.id, WechatUser.openid)
                 .join(Customer, on=(WechatUser.customer == Customer.id))
                 .where((WechatUser.role == "customer") & (WechatUser.customer == order.customer_id) & Customer.active
                        & WechatUser.id.in_(NodeSubscription.select(NodeSubscription.user)
                                            .where(NodeSubscription.order == order.id)))
                 .order_by(WechatUser.id))
    text = customer_text(order, due_date, new_date)
    data = subscribe_data(order.order_no, "交货日期调整", new_date, f"原定{due_date:%m月%d日}，正在督促生产")
    for user in users:
        notifications.record("mp_subscribe", user.openid, {"data": data, "text": text}, template_id=template,
                             dedup_key=f"early-order{order.id}-user{user.id}")
    return len(users)



# --- robot digests ------------------------------------------------------------------------------------

DIGEST_LINES_BYTES = 3000  # of the robot's 4096 bytes of markdown: the header and the link fit after


def digest_text(recipient, items, link=None):
    """One message for many alert messages due for one group robot (the morning after a holiday):
    how many, counts by level worst first, the alerts worst first (as many as fit), and where to
    look. `items` are the rows' payloads (level, line)."""
    rank = {level: n for n, level in enumerate(reversed(ALERT_LEVELS))}  # red, orange, yellow
    counts = Counter(item["level"] for item in items)
    levels = sorted(counts, key=lambda level: rank.get(level, len(rank)))
    head = (f"**预警汇总：{len(items)} 条**\n"
            + " · ".join(f"{LEVEL_NAMES.get(level, level)} {counts[level]} 条" for level in levels))
    lines, size = [], 0
    for item in sorted(items, key=lambda i: rank.get(i["level"], len(rank))):
        line = f"> [{LEVEL_NAMES.get(item['level'], item['level'])}] {item.get('line') or ''}"
        size += len(line.encode()) + 1
        if size > DIGEST_LINES_BYTES:
            lines.append(f"> ……另有 {len(items) - len(lines)} 条")
            break
        lines.append(line)
    if recipient.startswith("supplier:"):
        where = f"请在{SUPPLIER_WHERE}查看并更新进度"
    else:
        where = f"[查看全部预警]({link})" if link else f"查看：{STAFF_WHERE}"
    return "\n".join([head, *lines, where])
