"""The demo factory that `flask demo` seeds: a small, realistic outsourcing operation.

Three suppliers, two customers, staff logins, WeChat demo users and a dozen orders in every
state, with daily progress reports, late tasks and their delay alerts, one answered urge and a
customer's node subscription. Dates are relative to `today` so the demo always looks current;
randomness comes from a fixed seed so two seeds of the same day look the same.
"""
import random
import secrets
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from math import ceil

from app.extensions import db
from app.models import (
    Alert,
    Customer,
    EtaRevision,
    NodeInstance,
    NodeSubscription,
    Order,
    ProgressReport,
    Supplier,
    Task,
    TaskIssue,
    Urge,
    WechatUser,
)
from app.services.auth import create_invite, create_staff
from app.services.nodes import instantiate
from app.services.notifications import add_quota
from app.timeutil import CHINA, china_date, to_utc_naive, utcnow

# The delay rules of the product brief: alert at ≥ 2 days late; level by schedule deviation.
LATE_DAYS = 2
RATE_WINDOW = 3  # report intervals the ETA's production rate is measured over

SUPPLIERS = (
    ("SUP-STAMP", "苏州精工冲压厂", "周建国", "0512-6588 1001"),
    ("SUP-WELD", "昆山华达焊接", "陈海峰", "0512-5766 2002"),
    ("SUP-ASSY", "东莞宏利装配", "刘志强", "0769-2288 3003"),
)
CUSTOMERS = (
    ("CUST-HY", "上海恒远机电", "赵敏", "021-6432 8800"),
    ("CUST-BD", "杭州博达自动化", "孙伟", "0571-8765 4321"),
)
# username, password, role, display name, WeCom user id — printed by the serve banner and README.
STAFF = (
    ("manager", "demo-manager-pw", "manager", "张经理", "zhangsan"),
    ("qc", "demo-qc-pw", "qc", "李质检", "lisi"),
    ("boss", "demo-boss-pw", "executive", "王总", "wangwu"),
)
SUPPLIER_USERS = (
    ("demo-supplier-1", "周师傅（精工冲压）"),
    ("demo-supplier-2", "陈班长（华达焊接）"),
    ("demo-supplier-3", "刘主管（宏利装配）"),
)
CUSTOMER_USERS = (
    ("demo-customer-1", "赵敏（恒远采购）"),
    ("demo-customer-2", "孙伟（博达计划）"),
)
NODE_TEMPLATE_ID = "TPL_NODE_DONE"

PROCESSES = {
    "冲压": {
        "requirements": "材料 SPCC 1.5mm；冲压毛刺 ≤0.1mm；孔位公差 ±0.1mm；按图纸最新版本加工",
        "stages": ("首件确认", "落料", "冲孔", "折弯", "去毛刺"),
        "unit_cost": Decimal("3.20"),
    },
    "焊接": {
        "requirements": "CO2 气体保护焊；焊缝均匀，无气孔、夹渣、虚焊；焊后打磨平整，焊渣清理干净",
        "stages": ("首件确认", "点焊定位", "满焊", "焊缝打磨", "矫形"),
        "unit_cost": Decimal("8.50"),
    },
    "喷涂": {
        "requirements": "静电粉末喷涂 RAL7035 细砂纹；膜厚 60–80μm；附着力百格测试 0 级；无流挂、漏喷",
        "stages": ("首件确认", "前处理", "喷粉", "固化", "外观检验"),
        "unit_cost": Decimal("4.80"),
    },
    "装配": {
        "requirements": "按装配作业指导书组装；螺丝扭矩 4.5N·m；100% 通电测试并贴合格标签",
        "stages": ("首件确认", "部件预装", "总装", "通电测试", "包装"),
        "unit_cost": Decimal("6.00"),
    },
}
DAILY_NOTES = (
    "今日正常生产",
    "夜班加班两小时",
    "原材料第二批已到货",
    "设备例行保养半天",
    "抽检 20 件全部合格",
    "增派两名操作工",
)
SLOW_NOTES = ("主力设备故障停机，维修中", "等待备件到货，产能减半", "设备抢修，仅开一条线")

# Task plan and how its production went. Offsets are days from today. Profiles:
#   pace: output relative to plan (1.0 = exactly on plan); slow: (last n days, rate factor);
#   last: offset of the last report (default -1 = yesterday); done: offset of completion;
#   held: offset of the last report before the order was put on hold.
ORDERS = (
    # order_no, external_no, source, customer, product, product code, qty, start, due, state,
    # unit price, notes, tasks: (process, supplier, start, due, profile)
    ("SO-1001", "ERP-2026-0001", "api", 0, "钣金机箱", "P-CHS-450", 1200, -14, 7, "in_production",
     "168.00", "客户要求分两批交货", (
         ("冲压", 0, -14, -5, {"done": -5}),
         ("焊接", 1, -5, 4, {"pace": 1.1}))),
    ("SO-1002", "ERP-2026-0002", "api", 1, "电机支架", "P-MTB-120", 5000, -10, 8, "in_production",
     "23.50", None, (
         ("冲压", 0, -10, 4, {"pace": 1.12}),
         ("喷涂", 2, -6, 7, {"pace": 1.15, "last": -2}))),
    ("SO-1003", None, "manual", 0, "控制柜门板", "P-CPD-800", 800, -16, 3, "in_production",
     "95.00", "门板需与柜体配套编号", (
         ("冲压", 0, -16, 1, {"pace": 1.08}),
         ("焊接", 1, -12, 1, {"pace": 0.6}))),
    ("SO-1004", "ERP-2026-0003", "api", 1, "配电箱外壳", "P-DBX-300", 2000, -8, 12, "in_production",
     "72.00", None, (
         ("焊接", 1, -8, 6, {"pace": 1.1, "slow": (2, 0.3)}),
         ("装配", 2, -4, 10, {"pace": 1.15}))),
    ("SO-1005", None, "manual", 0, "散热器支架", "P-HSB-060", 3000, -9, 10, "in_production",
     "18.80", "急单，优先排产", (
         ("冲压", 0, -9, 5, {"pace": 0.78}),
         ("焊接", 1, -6, 7, {"pace": 1.12}),
         ("装配", 2, -3, 9, {"pace": 1.2}))),
    ("SO-1006", "ERP-2026-0004", "api", 1, "设备底座", "P-BSE-900", 600, -18, 3, "in_production",
     "320.00", None, (
         ("焊接", 1, -18, -1, {"pace": 0.7}),
         ("喷涂", 2, -6, 2, {"pace": 1.15}))),
    ("SO-1007", "ERP-2026-0005", "api", 1, "输送线机架", "P-CVF-150", 400, 5, 25, "cancelled",
     "460.00", "客户项目取消，订单作废", (
         ("焊接", 1, 5, 20, None),)),
    ("SO-1008", None, "manual", 0, "不锈钢护罩", "P-SSG-210", 1500, -30, -10, "completed",
     "45.00", None, (
         ("冲压", 0, -30, -20, {"done": -21}),
         ("装配", 2, -20, -11, {"done": -11}))),
    ("SO-1009", "ERP-2026-0006", "api", 1, "铝合金面板", "P-ALP-075", 2500, -24, -6, "completed",
     "28.00", None, (
         ("焊接", 1, -24, -7, {"done": -5}),)),
    ("SO-1010", "ERP-2026-0007", "api", 0, "电池托盘", "P-BTT-600", 1000, 2, 20, "confirmed",
     "135.00", "首批 300 件需提前送样", (
         ("冲压", 0, 2, 12, None),
         ("焊接", 1, 6, 16, None))),
    ("SO-1011", None, "manual", 1, "钣金机箱", "P-CHS-520", 500, 7, 27, "draft",
     "188.00", "待客户确认图纸版本", (
         ("冲压", 0, 7, 20, None),)),
    ("SO-1012", None, "manual", 0, "控制柜门板", "P-CPD-650", 900, -6, 14, "on_hold",
     "88.00", "客户设计变更，暂停生产待新图纸", (
         ("冲压", 0, -6, 8, {"pace": 1.0, "held": -3}),
         ("焊接", 1, -4, 10, {"pace": 1.0, "held": -3}))),
)
TASK_STATE = {"draft": "pending", "confirmed": "pending", "in_production": "in_production",
              "completed": "completed", "cancelled": "cancelled", "on_hold": "on_hold"}
# Who marks each node done, as shown in the order's node history.
NODE_ACTORS = {"confirmed": "张经理", "materials_ready": "张经理", "first_article": "李质检",
               "main_process": "张经理", "qc": "李质检", "packed": "张经理", "shipped": "张经理"}


@dataclass
class _Ctx:
    """What the seeding steps share: the business date, the clock and the rows made so far."""

    today: date
    now: datetime
    rng: random.Random
    staff: dict = field(default_factory=dict)
    suppliers: list = field(default_factory=list)
    customers: list = field(default_factory=list)
    supplier_users: list = field(default_factory=list)
    customer_users: list = field(default_factory=list)
    invites: list = field(default_factory=list)
    orders: list = field(default_factory=list)
    alerts: list = field(default_factory=list)
    reports: int = 0
    tasks: int = 0
    urge: object = None
    subscribed: object = None

    def day(self, offset):
        return self.today + timedelta(days=offset)

    def at(self, d, hour, minute=0):
        """China local time on date d as naive UTC, never later than the seed's clock."""
        local = datetime.combine(d, time(hour, minute), tzinfo=CHINA)
        return min(to_utc_naive(local), self.now)


def has_data():
    """Suppliers exist only once someone set up the factory (or seeded the demo)."""
    return Supplier.select().exists()


def seed(today=None):
    """Seed the whole demo in one transaction and return a human summary of it."""
    if today is None:
        now = utcnow()
        today = china_date(now)
    else:
        now = to_utc_naive(datetime.combine(today, time(10, 0), tzinfo=CHINA))
    ctx = _Ctx(today=today, now=now, rng=random.Random(2026))
    with db.atomic():
        _seed_parties(ctx)
        _seed_users(ctx)
        for spec in ORDERS:
            _seed_order(ctx, spec)
        _seed_urge(ctx)
        _seed_subscription(ctx)
    return _summary(ctx)


# --- parties and people ---------------------------------------------------------------------

def _seed_parties(ctx):
    """Suppliers and customers, with the contact people a manager would phone."""
    for code, name, contact, phone in SUPPLIERS:
        ctx.suppliers.append(Supplier.create(code=code, name=name, contact_name=contact, contact_phone=phone))
    for code, name, contact, phone in CUSTOMERS:
        ctx.customers.append(Customer.create(code=code, name=name, contact_name=contact, contact_phone=phone))


def _seed_users(ctx):
    """Staff logins, WeChat users already bound to their company, and one spare invite each."""
    for username, password, role, name, wecom in STAFF:
        ctx.staff[username] = create_staff(username, password, role, display_name=name, wecom_userid=wecom)
    for (openid, name), supplier in zip(SUPPLIER_USERS, ctx.suppliers):
        ctx.supplier_users.append(WechatUser.create(
            openid=openid, role="supplier", supplier=supplier, display_name=name, last_login_at=ctx.now))
    for (openid, name), customer in zip(CUSTOMER_USERS, ctx.customers):
        ctx.customer_users.append(WechatUser.create(
            openid=openid, role="customer", customer=customer, display_name=name, last_login_at=ctx.now))
    for party in ctx.suppliers + ctx.customers:
        ctx.invites.append((party.name, create_invite(party, created_by=ctx.staff["manager"]).code))


# --- orders and tasks -----------------------------------------------------------------------

def _seed_order(ctx, spec):
    """One order with its tasks, their reports and alerts, and node states matching progress."""
    (order_no, external_no, source, cust, product, code, qty, start, due, state,
     price, notes, task_specs) = spec
    created = ctx.at(min(ctx.day(start - 3), ctx.day(-1)), 9, 30)
    order = Order.create(
        order_no=order_no, external_no=external_no, source=source, customer=ctx.customers[cust],
        product_code=code, product_name=product, quantity=qty, unit="件",
        planned_start=ctx.day(start), due_date=ctx.day(due), state=state,
        resume_state="in_production" if state == "on_hold" else None,
        unit_price=Decimal(price), notes=notes, created_by=ctx.staff["manager"],
        created_at=created, updated_at=created,
    )
    tasks = [_seed_task(ctx, order, n, task_spec) for n, task_spec in enumerate(task_specs, start=1)]
    instantiate(order)
    _set_nodes(ctx, order, tasks)
    ctx.orders.append(order)


def _seed_task(ctx, order, n, task_spec):
    """A task at one supplier; production history follows its profile."""
    process, sup, start, due, profile = task_spec
    info = PROCESSES[process]
    # An upstream process may already be finished while the order is still in production.
    state = "completed" if profile and "done" in profile else TASK_STATE[order.state]
    task = Task.create(
        order=order, task_no=f"{order.order_no}-T{n}", process=process, supplier=ctx.suppliers[sup],
        planned_qty=order.quantity, tolerance_pct=ctx.rng.choice((0.02, 0.03, 0.05)),
        planned_start=ctx.day(start), due_date=ctx.day(due), state=state,
        requirements=info["requirements"],
        unit_cost=(info["unit_cost"] * Decimal(str(ctx.rng.choice((0.9, 1.0, 1.1))))).quantize(Decimal("0.01")),
        qr_code=secrets.token_urlsafe(16), created_at=order.created_at, updated_at=order.created_at,
    )
    ctx.tasks += 1
    if profile:
        _produce(ctx, task, profile, ctx.supplier_users[sup])
    return task


def _produce(ctx, task, profile, reporter):
    """Write the task's daily reports and what they imply: quantity, dates, ETA and any alert."""
    series = _series(ctx, task, profile)
    _write_reports(ctx, task, series, profile, reporter)
    last_day, last_qty = series[-1]
    task.qty_done = last_qty
    task.last_report_date = last_day
    task.started_at = ctx.at(task.planned_start, 8, 30)
    task.updated_at = ctx.at(last_day, 18, 0)
    if "done" in profile:
        task.completed_at = ctx.at(last_day, 17, 30)
    elif task.state == "in_production":
        _assess(ctx, task, series)
    task.save()


def _series(ctx, task, profile):
    """Cumulative good quantity per China day: [(date, qty), ...], never decreasing."""
    if "done" in profile:
        last = ctx.day(profile["done"])
    else:
        last = ctx.day(profile.get("held", profile.get("last", -1)))
    days = (last - task.planned_start).days + 1
    per_day = task.planned_qty / ((task.due_date - task.planned_start).days + 1) * profile.get("pace", 1.0)
    slow_days, slow_factor = profile.get("slow", (0, 1.0))
    total, raw = 0.0, []
    for i in range(days):
        factor = 0.6 if i == 0 else (slow_factor if i >= days - slow_days else 1.0)
        total += per_day * factor * ctx.rng.uniform(0.9, 1.1)
        raw.append(total)
    if "done" in profile:  # finished: the last report is the full quantity
        final = task.planned_qty + int(task.planned_qty * task.tolerance_pct * ctx.rng.uniform(0, 0.5))
        raw = [final * r / raw[-1] for r in raw]
    else:
        raw = [min(r, task.planned_qty * 0.98) for r in raw]
    return [(task.planned_start + timedelta(days=i), int(r)) for i, r in enumerate(raw)]


def _write_reports(ctx, task, series, profile, reporter):
    """One ProgressReport per reported day, at the end of the shift, with stage and a note now and then."""
    stages = PROCESSES[task.process]["stages"]
    slow_days = profile.get("slow", (0, 1.0))[0]
    rows = []
    for i, (day, qty) in enumerate(series):
        share = qty / task.planned_qty
        stage = stages[0] if i == 0 else stages[min(1 + int(share * (len(stages) - 1)), len(stages) - 1)]
        note = None
        if i >= len(series) - slow_days:
            note = SLOW_NOTES[(len(series) - 1 - i) % len(SLOW_NOTES)]
        elif ctx.rng.random() < 0.3:
            note = ctx.rng.choice(DAILY_NOTES)
        if "held" in profile and i == len(series) - 1:
            note = "客户通知设计变更，暂停生产"
        stamp = ctx.at(day, 18, ctx.rng.randint(0, 50))
        rows.append({"task": task, "report_date": day, "qty_done": qty, "stage": stage, "note": note,
                     "reporter": reporter, "created_at": stamp, "updated_at": stamp})
    ProgressReport.insert_many(rows).execute()
    ctx.reports += len(rows)
    if slow_days:
        TaskIssue.create(task=task, kind="设备故障", description=SLOW_NOTES[0], reporter=reporter,
                         created_at=ctx.at(series[-slow_days][0], 10, 15))


# --- delay: deviation, ETA and alert ----------------------------------------------------------

def _assess(ctx, task, series):
    """Expected vs actual progress and an ETA from the recent rate; alert when ≥ 2 days late."""
    span = (task.due_date - task.planned_start).days + 1
    elapsed = min(max((ctx.today - task.planned_start).days, 0), span)
    deviation = max(0.0, (elapsed / span - task.qty_done / task.planned_qty) * 100)
    # Day zero (nothing made the day before the start) lets a task with few reports have a rate.
    window = [(task.planned_start - timedelta(days=1), 0)] + series
    (first_day, first_qty), (last_day, last_qty) = window[-RATE_WINDOW - 1], window[-1]
    rate = (last_qty - first_qty) / max((last_day - first_day).days, 1)
    remaining = task.planned_qty - last_qty
    eta = last_day + timedelta(days=ceil(remaining / rate)) if rate > 0 else ctx.day(30)
    eta = max(eta, ctx.today)
    task.eta_date = eta
    days_late = (eta - task.due_date).days
    if days_late >= LATE_DAYS:
        _raise_alert(ctx, task, round(deviation, 1), days_late, eta)


def _level(deviation):
    """Brief's levels: yellow < 10 %, orange 10–20 %, red > 20 % schedule deviation."""
    if deviation > 20:
        return "red"
    return "orange" if deviation >= 10 else "yellow"


def _raise_alert(ctx, task, deviation, days_late, eta):
    """The open delay alert the engine would have raised, dated at this morning's scan."""
    level = _level(deviation)
    supplier = ctx.suppliers[[s.id for s in ctx.suppliers].index(task.supplier_id)]
    done_pct = round(task.qty_done * 100 / task.planned_qty)
    overdue = "已超过交期" if task.due_date < ctx.today else "预计延期"
    message = (f"{task.task_no} {task.process}（{supplier.name}）{overdue}：已完成 {task.qty_done}/"
               f"{task.planned_qty} 件（{done_pct}%），进度偏差 {deviation}%，"
               f"预计 {eta:%m月%d日} 完成，晚于交期 {task.due_date:%m月%d日} {days_late} 天")
    raised = ctx.at(ctx.today, 8, 5)
    ctx.alerts.append(Alert.create(
        task=task, order=task.order, kind="delay", level=level, deviation_pct=deviation,
        days_late=days_late, eta_date=eta, message=message, level_changed_at=raised, created_at=raised,
    ))
    task.alert_level = level


# --- nodes ------------------------------------------------------------------------------------

def _set_nodes(ctx, order, tasks):
    """Node states that match the order's progress: done, current, or delayed when past their date."""
    nodes = list(order.nodes.order_by(NodeInstance.seq))
    done_codes, current = _node_progress(order, tasks)
    finished = max((t.completed_at for t in tasks if t.completed_at), default=None)
    slip = max((china_date(finished) - order.due_date).days, 0) if finished else 0
    for node in nodes:
        if node.code in done_codes:
            day = min(node.planned_date + timedelta(days=slip), ctx.day(-1))
            node.state, node.done_by = "done", NODE_ACTORS.get(node.code, "张经理")
            node.started_at = ctx.at(day - timedelta(days=node.expected_days - 1), 9, 0)
            node.done_at = ctx.at(day, 17, 0)
        elif node.code == current:
            node.state = "delayed" if node.planned_date < ctx.today else "in_progress"
            node.started_at = ctx.at(min(order.planned_start, ctx.today), 9, 0)
        elif node.planned_date < ctx.today and order.state in ("in_production", "confirmed"):
            node.state = "delayed"
        node.save()


def _node_progress(order, tasks):
    """Which nodes are done and which one is under way, from the order state and its tasks."""
    if order.state == "completed":
        return {"confirmed", "materials_ready", "first_article", "main_process", "qc", "packed", "shipped"}, None
    if order.state == "confirmed":
        return {"confirmed"}, "materials_ready"
    if order.state in ("in_production", "on_hold"):
        started = any(t.qty_done for t in tasks)
        done = {"confirmed", "materials_ready"} | ({"first_article"} if started else set())
        return done, "main_process" if started else "first_article"
    return set(), None


# --- urge and subscription ----------------------------------------------------------------

def _seed_urge(ctx):
    """The manager urged the most overdue task yesterday; the supplier answered with a new date."""
    task = max((a.task for a in ctx.alerts), key=lambda t: (ctx.today - t.due_date).days)
    reporter = ctx.supplier_users[[s.id for s in ctx.suppliers].index(task.supplier_id)]
    reason = "焊工人手不足，焊接机器人又停机两天，已增派人员并安排夜班赶工"
    urge = Urge.create(
        task=task, by_staff=ctx.staff["manager"], via="dashboard",
        message=f"{task.task_no} 已超过交期，请尽快安排加班并回复预计完工日期",
        replied_at=ctx.at(ctx.day(-1), 15, 20), reply_reason=reason, new_due_date=task.eta_date,
        replied_by=reporter, created_at=ctx.at(ctx.day(-1), 10, 0),
    )
    EtaRevision.create(task=task, urge=urge, old_eta=task.due_date, new_eta=task.eta_date,
                       reason=reason, source="supplier", created_at=urge.replied_at)
    ctx.urge = urge


def _seed_subscription(ctx):
    """demo-customer-1 accepted two node-done messages and wants to hear about QC and shipping."""
    user = ctx.customer_users[0]
    add_quota(user, NODE_TEMPLATE_ID, count=2)
    order = next(o for o in ctx.orders if o.customer_id == user.customer_id and o.state == "in_production")
    for code in ("qc", "shipped"):
        NodeSubscription.create(user=user, order=order, node_code=code, created_at=ctx.now)
    ctx.subscribed = order


# --- summary ----------------------------------------------------------------------------------

def _summary(ctx):
    """What was created and how to log in, for the person who just ran `flask demo`."""
    states = {}
    for order in ctx.orders:
        states[order.state] = states.get(order.state, 0) + 1
    levels = ", ".join(f"{a.task.task_no} {a.level} 晚 {a.days_late} 天" for a in ctx.alerts)
    lines = [
        f"演示工厂已创建（业务日期 {ctx.today}）：",
        f"  供应商 {len(ctx.suppliers)} 家：" + "、".join(f"{s.name}({s.code})" for s in ctx.suppliers),
        f"  客户 {len(ctx.customers)} 家：" + "、".join(f"{c.name}({c.code})" for c in ctx.customers),
        f"  订单 {len(ctx.orders)} 张：" + "，".join(f"{k} {v}" for k, v in sorted(states.items())),
        f"  任务 {ctx.tasks} 个，日报 {ctx.reports} 条，延期预警 {len(ctx.alerts)} 条（{levels}）",
        f"  催单 1 条：{ctx.urge.task.task_no}，供应商回复新交期 {ctx.urge.new_due_date}",
        f"  订阅：demo-customer-1 剩余 {NODE_TEMPLATE_ID} 2 次，订阅 {ctx.subscribed.order_no} 的 质检/发货 节点",
        "后台登录（用户名 / 密码）：",
        *(f"  {u} / {p}  （{name}，{role}）" for u, p, role, name, _ in STAFF),
        "小程序演示用户 openid：" + "、".join(o for o, _ in SUPPLIER_USERS + CUSTOMER_USERS),
        "未使用的邀请码：",
        *(f"  {name}：{code}" for name, code in ctx.invites),
    ]
    return "\n".join(lines)
