"""The domain vocabulary: states and their Chinese names, node rules, report limits.

One module that models, services and presenters all import, so a state or a rule has one name.
"""
from datetime import date
from decimal import Decimal
from math import floor

# The dates and times the system takes: anything outside is a typo or an attack (year 1 or 9999
# overflows date arithmetic and time-zone conversion), never a production plan.
DATE_MIN = date(2000, 1, 1)
DATE_MAX = date(2099, 12, 31)

ORDER_STATES = ("draft", "confirmed", "in_production", "completed", "cancelled", "on_hold")
TASK_STATES = ("pending", "in_production", "completed", "cancelled", "on_hold")
# Order and task states share their words (the mini program's too).
STATE_NAMES = {
    "draft": "草稿",
    "confirmed": "已确认",
    "pending": "待生产",
    "in_production": "生产中",
    "on_hold": "已暂停",
    "completed": "已完成",
    "cancelled": "已取消",
}
FINAL_STATES = ("completed", "cancelled")
# Task states a supplier still works on ("active" in the supplier's task filter).
ACTIVE_TASK_STATES = ("pending", "in_production", "on_hold")
# Order states a customer may see (drafts are still being planned).
CUSTOMER_ORDER_STATES = tuple(s for s in ORDER_STATES if s != "draft")

# What a mini-program user is bound as.
WECHAT_ROLE_NAMES = {"supplier": "供应商", "customer": "客户", "unbound": "未绑定"}

NODE_STATE_NAMES = {
    "pending": "未开始",
    "in_progress": "进行中",
    "done": "已完成",
    "delayed": "已延误",
    "awaiting_confirmation": "待确认",
}
# What each node state looks like in the mini program and the dashboard.
NODE_COLOURS = {
    "pending": "grey",
    "in_progress": "yellow",
    "done": "green",
    "delayed": "red",
    "awaiting_confirmation": "blue",
}
# Nodes a supplier may complete from the mini program; 'confirmed' and 'qc' belong to managers and QC.
# Each is order-wide: every task of the order completes it for itself (a NodeCompletion, "part").
SUPPLIER_NODE_CODES = ("materials_ready", "first_article", "main_process", "packed", "shipped")
DONE_NODE_STATES = ("done", "awaiting_confirmation")
# Every other node of a template is order-level and staff's (one node for the whole order, no
# parts): the order confirmation (订单确认) is the order's manager's; these are QC staff's too.
QC_NODE_CODES = ("qc",)
# The first article waits for a manager's confirmation; every other supplier node is done at once.
CONFIRMED_NODE_CODES = ("first_article",)
# One task's part of a node, and the node state the supplier sees for it: a rejected first
# article is back in progress until the supplier submits it again.
PART_STATES = {"done": "done", "awaiting_confirmation": "awaiting_confirmation", "rejected": "in_progress"}

ISSUE_KINDS = {
    "material_shortage": "物料短缺",
    "equipment_failure": "设备故障",
    "quality_problem": "质量问题",
    "labour_shortage": "人手不足",
    "other": "其他",
}

# Alerts (app/services/alerts.py): what raised them, and their levels in rising severity.
ALERT_KINDS = {
    "delay": "延期预警",
    "missing_report": "漏报提醒",
    "node_overdue": "节点逾期",
    "qc_fail": "质检不合格",
    "customer_early_warning": "延期预告（客户）",
}
ALERT_LEVELS = ("yellow", "orange", "red")

# What an ERP API key may do: change orders, tasks, urges, master data and node templates; invites;
# read alerts (responding to one is a person's: staff only).
API_KEY_SCOPES = {"orders": "订单与基础资料", "invites": "邀请码", "alerts": "查看预警"}
# Staff roles that see prices and costs (others see them only when PRICE_ROLES says so).
PRICE_ROLES = ("manager", "admin")


def state_name(state):
    return STATE_NAMES.get(state, state)


def node_colour(state):
    return NODE_COLOURS.get(state, "grey")


def supplier_can_complete(node):
    return node.code in SUPPLIER_NODE_CODES and node.state not in DONE_NODE_STATES


def part_state_on_completion(code):
    """What a supplier's completion makes of its task's part."""
    return "awaiting_confirmation" if code in CONFIRMED_NODE_CODES else "done"


def combined_node_state(part_states, total_tasks, current="pending"):
    """An order-wide node from its open tasks' parts: done when every task's part is done;
    awaiting confirmation when every task has submitted and some wait for a manager; in progress
    once any task has a part (a rejected one included); else as it was (pending, delayed)."""
    if total_tasks and sum(s == "done" for s in part_states) >= total_tasks:
        return "done"
    if total_tasks and sum(s in DONE_NODE_STATES for s in part_states) >= total_tasks:
        return "awaiting_confirmation"
    if part_states:
        return "in_progress"
    return current if current in ("pending", "delayed") else "pending"


def task_node_state(part_state, order_node_state):
    """The node as one task's supplier sees it: its own part; without one, the order's node only
    while nothing has happened (another supplier's progress is not this one's)."""
    if part_state:
        return PART_STATES[part_state]
    return order_node_state if order_node_state in ("pending", "delayed", "done") else "pending"


def max_reportable(task):
    """The most a supplier may report (and record in batches): the plan plus its tolerance, rounded
    down, plus the pieces QC rejected, which are made again (`good_qty`). Decimal, so that e.g.
    100 × 1.15 is 115 and not 114.999…"""
    factor = 1 + Decimal(repr(task.tolerance_pct or 0.0))
    return floor(task.planned_qty * factor) + (task.qty_rejected or 0)


def good_qty(qty_done, qty_rejected):
    """What counts as made: the supplier's cumulative reported quantity less the pieces QC rejected
    (received and refused, or in a returned or scrapped batch), which must be made again."""
    return max(0, qty_done - (qty_rejected or 0))


def progress_pct(qty_done, planned_qty):
    """Whole per cent of the plan done, at most 100 (the mini program's figure)."""
    if not planned_qty:
        return 0
    return min(100, round(qty_done * 100 / planned_qty))


def delay_level(deviation_pct):
    """A delay alert's level by schedule deviation: the share of the plan that should be done by
    now minus the share that is, in per cent. The product brief: yellow below 10 %, orange from
    10 to 20 %, red above 20 % (red escalates to management)."""
    if deviation_pct > 20:
        return "red"
    return "orange" if deviation_pct >= 10 else "yellow"



def missing_report_level(missed_days):
    """A missing-report alert's level: one missed working day reminds the supplier (yellow); from
    the second consecutive one the task's manager hears of it too (orange)."""
    return "orange" if missed_days >= 2 else "yellow"


def node_overdue_level(working_days_overdue):
    """A node-overdue alert's level by working days past the node's planned date: yellow for one,
    orange from two, red from five (red goes to management as well)."""
    if working_days_overdue >= 5:
        return "red"
    return "orange" if working_days_overdue >= 2 else "yellow"


# --- quality (app/services/quality.py) -------------------------------------------------------------

INSPECTION_KINDS = {"first_article": "首件检验", "patrol": "巡检", "final": "终检", "receiving": "回厂检验"}
CHECK_TYPES = {"pass_fail": "合格/不合格", "numeric": "数值"}
INSPECTION_SOURCES = {"qc": "质检", "self_check": "供应商自检"}
INSPECTION_RESULTS = {"pass": "合格", "fail": "不合格"}
DEFECT_CATEGORIES = {
    "dimension": "尺寸",
    "appearance": "外观",
    "function": "功能",
    "material": "材料",
    "assembly": "装配",
    "packaging": "包装",
    "other": "其他",
}
DISPOSITIONS = {"rework": "返工", "return": "退货", "concession": "让步接收", "scrap": "报废"}
BATCH_STATUSES = {"open": "正常", "frozen": "已冻结", "released": "已放行", "returned": "已退货",
                  "scrapped": "已报废"}
# Batches nothing more happens to (no shipping, receiving or inspecting).
CLOSED_BATCH_STATUSES = ("returned", "scrapped")
# Who acts on quality: records QC inspections, dispositions and releases batches (admin always).
QC_ROLES = ("qc",)
