"""The demo factory that `flask demo` seeds: a small, realistic outsourcing operation.

Three suppliers, two customers, staff logins, WeChat demo users and a dozen orders in every
state, with daily progress reports, late tasks and their delay alerts, one answered urge, a
customer's node subscription, a batch frozen by a failed QC patrol inspection with its open
nonconformance, and material lots issued to tasks with their bills of quantities (one short) and
returns.

Everything is made the way real use makes it — through the services, with their rules in force,
each change in the audit log. The demo is history (orders taken weeks ago, a report every
evening), so the data below is planned into timed events which are replayed in time order, each
under `timeutil.clock_at` at its moment: to the services "now" is that moment, so yesterday's
report is today's report to them and the 7-day window still holds. Nothing is replayed later than
the real now. Dates are offsets from today so the demo always looks current; randomness comes
from a fixed seed so two seeds of the same day look the same.
"""
import random
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from functools import partial

from flask import current_app

from app.extensions import db, is_mysql, write_transaction
from app.models import ALL_MODELS, Alert, MaterialItem, NodeInstance, Supplier, Task
from app.services import (
    auth,
    delay_engine,
    intake,
    masterdata,
    materials,
    node_reviews,
    order_states,
    photos,
    progress,
    quality,
    scorecard,
    subscriptions,
    urges,
)
from app.services.actors import Actor
from app.timeutil import CHINA, china_date, clock_at, to_utc_naive, utcnow

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
# The WeChat users who bound themselves to each supplier and customer with an invite.
SUPPLIER_USERS = (
    ("demo-supplier-1", "周师傅（精工冲压）"),
    ("demo-supplier-2", "陈班长（华达焊接）"),
    ("demo-supplier-3", "刘主管（宏利装配）"),
)
CUSTOMER_USERS = (
    ("demo-customer-1", "赵敏（恒远采购）"),
    ("demo-customer-2", "孙伟（博达计划）"),
)
ERP_KEY_NAME = "erp-demo"  # the ERP's API key, which the "api" orders arrived with

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
# A slow spell: the supplier reports the breakdown as a problem, then these notes day by day.
SLOW_ISSUE = ("equipment_failure", "主力设备故障停机，维修中")
SLOW_NOTES = ("主力设备故障停机，维修中", "等待备件到货，产能减半", "设备抢修，仅开一条线")
NODE_NOTES = {
    "materials_ready": "原材料已到厂，齐套",
    "first_article": "首件已完成，请质检确认",
    "main_process": "全部加工完成",
    "packed": "已包装入库",
    "shipped": "已发货",
}
# Why the manager moved an order to a state, unless the order's own history says otherwise.
STATE_REASONS = {
    "confirmed": "已与客户确认图纸、数量和交期",
    "in_production": "物料齐套，通知供应商开工",
    "completed": "全部发货，客户已签收",
}

# Orders, their tasks and how production went. Days are offsets from today. Task profiles:
#   pace: output relative to plan (1.0 = exactly on plan); slow: (last n days, rate factor);
#   last: day of the last report (default -1 = yesterday); done: day the full quantity was reported.
ORDERS = (
    # external_no, source, customer, product, product code, qty, start, due, unit price, notes, created,
    # tasks: (process, supplier, start, due, profile), states: (day, state[, reason — else STATE_REASONS])
    ("ERP-2026-0001", "api", 0, "钣金机箱", "P-CHS-450", 1200, -14, 7, "168.00", "客户要求分两批交货", -17, (
        ("冲压", 0, -14, -5, {"done": -5}),
        ("焊接", 1, -5, 4, {"pace": 1.1})),
     ((-16, "confirmed"), (-14, "in_production"))),
    ("ERP-2026-0002", "api", 1, "电机支架", "P-MTB-120", 5000, -10, 8, "23.50", None, -13, (
        ("冲压", 0, -10, 4, {"pace": 1.12}),
        ("喷涂", 2, -6, 7, {"pace": 1.15, "last": -2})),
     ((-12, "confirmed"), (-10, "in_production"))),
    (None, "manual", 0, "控制柜门板", "P-CPD-800", 800, -16, 3, "95.00", "门板需与柜体配套编号", -19, (
        ("冲压", 0, -16, 1, {"pace": 1.08}),
        ("焊接", 1, -12, 1, {"pace": 0.6})),
     ((-19, "confirmed"), (-16, "in_production"))),
    ("ERP-2026-0003", "api", 1, "配电箱外壳", "P-DBX-300", 2000, -8, 12, "72.00", None, -11, (
        ("焊接", 1, -8, 6, {"pace": 1.1, "slow": (2, 0.3)}),
        ("装配", 2, -4, 10, {"pace": 1.15})),
     ((-10, "confirmed"), (-8, "in_production"))),
    (None, "manual", 0, "散热器支架", "P-HSB-060", 3000, -9, 10, "18.80", "急单，优先排产", -10, (
        ("冲压", 0, -9, 5, {"pace": 0.78}),
        ("焊接", 1, -6, 7, {"pace": 1.12}),
        ("装配", 2, -3, 9, {"pace": 1.2, "unconfirmed": True})),  # its first article awaits the manager
     ((-10, "confirmed"), (-9, "in_production"))),
    ("ERP-2026-0004", "api", 1, "设备底座", "P-BSE-900", 600, -18, 3, "320.00", None, -21, (
        ("焊接", 1, -18, -1, {"pace": 0.7}),
        ("喷涂", 2, -6, 2, {"pace": 1.15})),
     ((-20, "confirmed"), (-18, "in_production"))),
    ("ERP-2026-0005", "api", 1, "输送线机架", "P-CVF-150", 400, 5, 25, "460.00", None, -6, (
        ("焊接", 1, 5, 20, None),),
     ((-5, "confirmed"), (-1, "cancelled", "客户项目取消，订单作废"))),
    (None, "manual", 0, "不锈钢护罩", "P-SSG-210", 1500, -30, -10, "45.00", None, -33, (
        ("冲压", 0, -30, -20, {"done": -21}),
        ("装配", 2, -20, -11, {"done": -11})),
     ((-33, "confirmed"), (-30, "in_production"), (-10, "completed"))),
    ("ERP-2026-0006", "api", 1, "铝合金面板", "P-ALP-075", 2500, -24, -6, "28.00", None, -27, (
        ("焊接", 1, -24, -7, {"done": -5}),),
     ((-26, "confirmed"), (-24, "in_production"), (-4, "completed", "已发货，交期延误 2 天，客户已签收"))),
    ("ERP-2026-0007", "api", 0, "电池托盘", "P-BTT-600", 1000, 2, 20, "135.00", "首批 300 件需提前送样", -3, (
        ("冲压", 0, 2, 12, None),
        ("焊接", 1, 6, 16, None)),
     ((-2, "confirmed"),)),
    (None, "manual", 1, "钣金机箱", "P-CHS-520", 500, 7, 27, "188.00", "待客户确认图纸版本", -1, (
        ("冲压", 0, 7, 20, None),),
     ()),
    (None, "import", 0, "控制柜门板", "P-CPD-650", 900, -6, 14, "88.00", None, -8, (
        ("冲压", 0, -6, 8, {"pace": 1.0, "last": -3}),
        ("焊接", 1, -4, 10, {"pace": 1.0, "last": -3})),
     ((-8, "confirmed"), (-6, "in_production"), (-3, "on_hold", "客户设计变更，暂停生产待新图纸"))),
)

# When things happen on their day, China time (hour, minute). Reports come in between 18:00 and 18:50.
HOURS = {
    "setup": (9, 0), "created": (9, 30), "scan": (8, 5), "urge": (10, 0), "reply": (15, 20),
    "subscribe": (20, 30), "issue": (10, 15), "report": (18, 0),
    "confirmed": (14, 0), "in_production": (8, 0), "on_hold": (19, 30), "cancelled": (11, 0),
    "completed": (18, 30),
    "materials_ready": (7, 30), "first_article": (11, 0), "first_article_ok": (9, 30), "main_process": (19, 0),
    "qc": (10, 0), "packed": (15, 0), "shipped": (17, 0),
    "material": (7, 0), "material_return": (16, 0), "batch": (16, 30), "patrol": (10, 30),
}
SUBSCRIBED_NODES = ("qc", "shipped")  # what demo-customer-1 wants to hear about, one accept each
URGE_MESSAGE = "{task_no} 已超过交期，请尽快安排加班并回复预计完工日期"
URGE_REPLY = "焊工人手不足，焊接机器人又停机两天，已增派人员并安排夜班赶工"

# Materials sent to the suppliers of the first order (ERP-2026-0001): item code, name, unit, spec.
MATERIAL_ITEMS = (
    ("M-SPCC-15", "冷轧钢板", "kg", "SPCC 1.5mm"),
    ("M-WIRE-10", "实心焊丝", "kg", "ER50-6 φ1.0"),
)
# (plan index, task index, item index, lot no, lot quantity, issued, bill qty per unit, tolerance %,
#  issue day): the stamping task got plenty of sheet; the welding task too little wire for its plan.
MATERIAL_ISSUES = (
    (0, 0, 0, "L-SPCC-2601", "5000", "3500", "2.8", 3.0, -14),
    (0, 1, 1, "L-WIRE-2601", "200", "100", "0.12", 5.0, -5),
)
# What the stamping supplier sent back once its task was done: (good, scrap, leftover) kg.
MATERIAL_RETURN = (0, 0, "0", "25", "40", -4)
# The welding task's batch that QC's patrol inspection fails (plan, task, batch qty, day of the batch).
FROZEN_BATCH = (0, 1, 300, -2)

# The demo's own stand-in for the delay engine (a later issue): it judges its tasks from its own
# production figures, this morning, and records its findings through services.alerts; the alert
# rules (one open alert per task and kind, the level by deviation) are the domain's.


@dataclass
class _Plan:
    """One order of ORDERS: its data, the production planned for it, and the rows made so far."""

    external_no: str
    source: str
    customer: int
    product: str
    code: str
    qty: int
    start: int
    due: int
    price: str
    notes: str
    created: int
    task_specs: tuple
    states: tuple
    series: dict = field(default_factory=dict)  # task index → [(date, cumulative qty), …]
    order: object = None
    tasks: list = field(default_factory=list)


@dataclass
class _Ctx:
    """What the seeding steps share: the business date, the real clock and the rows made so far."""

    today: date
    now: datetime
    rng: random.Random
    staff: dict = field(default_factory=dict)
    suppliers: list = field(default_factory=list)
    customers: list = field(default_factory=list)
    supplier_users: list = field(default_factory=list)
    customer_users: list = field(default_factory=list)
    erp: Actor = None
    erp_key: str = None
    plans: list = field(default_factory=list)
    invites: list = field(default_factory=list)
    alerts: list = field(default_factory=list)
    reports: int = 0
    photos: int = 0
    urge: object = None
    subscribed: object = None
    qc_template: object = None
    frozen: object = None  # the nonconformance of the batch QC froze
    material_issues: list = field(default_factory=list)

    def day(self, offset):
        return self.today + timedelta(days=offset)

    def at(self, offset, what, minute=0):
        """When `what` (a key of HOURS) happens on day `offset`, as naive UTC, never later than now."""
        hour, base = HOURS[what]
        local = datetime.combine(self.day(offset), time(hour, base + minute), tzinfo=CHINA)
        return min(to_utc_naive(local), self.now)

    def manager(self):
        return Actor.staff(self.staff["manager"])


def has_data():
    """Suppliers exist only once someone set up the factory (or seeded the demo)."""
    return Supplier.select().exists()


def clear():
    """Delete every row of every table (`demo --reset`): the schema and its migration history stay."""
    # Foreign key checks off while emptying, so the order of the tables does not matter.
    db.execute_sql("SET FOREIGN_KEY_CHECKS=0" if is_mysql() else "PRAGMA foreign_keys=OFF")  # outside the transaction
    try:
        with write_transaction():
            for model in reversed(ALL_MODELS):
                model.delete().execute()
    finally:
        db.execute_sql("SET FOREIGN_KEY_CHECKS=1" if is_mysql() else "PRAGMA foreign_keys=ON")


def seed():
    """Replay the demo's history in one transaction and return a human summary of it."""
    now = utcnow()
    ctx = _Ctx(today=china_date(now), now=now, rng=random.Random(2026))
    ctx.plans = [_Plan(*spec) for spec in ORDERS]
    history = sorted(_history(ctx), key=lambda event: event[0])  # stable: same instant, planned order
    with write_transaction():  # the services' transactions join this one
        with clock_at(ctx.at(min(p.created for p in ctx.plans) - 1, "setup")):
            _seed_people(ctx)
        for instant, step in history:
            with clock_at(instant):
                step()
        _spare_invites(ctx)
    return _summary(ctx)


# --- planning: the data as timed events -----------------------------------------------------------

def _history(ctx):
    """Every event of the demo as (instant, step)."""
    events = []
    for plan in ctx.plans:
        events += _order_events(ctx, plan)
    events += [
        (ctx.at(-2, "subscribe"), partial(_subscribe, ctx)),
        (ctx.at(0, "scan"), partial(_delay_scan, ctx)),
        (ctx.at(0, "urge"), partial(_urge, ctx)),
        (ctx.at(0, "reply"), partial(_reply, ctx)),
    ]
    events += _material_events(ctx) + _frozen_batch_events(ctx)
    # The scorecard job as production runs it, each week of the history and once more now: the
    # supplier pages show weekly and monthly scorecards with their trend.
    first = min(p.created for p in ctx.plans)
    events += [(ctx.at(offset, "scan"), _scorecards) for offset in range(first + 7, 0, 7)]
    events.append((ctx.at(0, "reply", minute=30), _scorecards))
    return events


def _scorecards():
    scorecard.snapshot(utcnow())  # the clock the history runs under (clock_at)


def _order_events(ctx, plan):
    """The order's intake, the manager's state changes, its tasks' production and its nodes."""
    data = _intake_data(ctx, plan)
    events = [(ctx.at(plan.created, "created"), partial(_create_order, ctx, plan, data))]
    for day, state, *reason in plan.states:
        why = reason[0] if reason else STATE_REASONS[state]
        events.append((ctx.at(day, state), partial(_change_state, ctx, plan, state, why)))
    for n, (_process, _supplier, _start, _due, profile) in enumerate(plan.task_specs):
        if profile:
            plan.series[n] = _series(ctx, data["tasks"][n], profile)
            events += _production_events(ctx, plan, n, profile)
    return events + _node_events(ctx, plan)


def _intake_data(ctx, plan):
    """What the ERP sent, the manager typed or the spreadsheet held: an intake request."""
    tasks = []
    for process, sup, start, due, _profile in plan.task_specs:
        info = PROCESSES[process]
        tasks.append({
            "process": process, "supplier_code": SUPPLIERS[sup][0],
            "planned_qty": plan.qty, "tolerance_pct": ctx.rng.choice((0.02, 0.03, 0.05)),
            "planned_start": ctx.day(start), "due_date": ctx.day(due), "requirements": info["requirements"],
            "unit_cost": (info["unit_cost"] * Decimal(str(ctx.rng.choice((0.9, 1.0, 1.1))))).quantize(Decimal("0.01")),
        })
    return {
        "external_no": plan.external_no, "customer_code": CUSTOMERS[plan.customer][0], "product_name": plan.product,
        "product_code": plan.code, "quantity": plan.qty, "unit": "件", "planned_start": ctx.day(plan.start),
        "due_date": ctx.day(plan.due), "unit_price": plan.price, "notes": plan.notes, "tasks": tasks,
    }


def _series(ctx, task, profile):
    """Cumulative good quantity per China day: [(date, qty), ...], never decreasing."""
    start, due, planned = task["planned_start"], task["due_date"], task["planned_qty"]
    last = ctx.day(profile["done"] if "done" in profile else profile.get("last", -1))
    days = (last - start).days + 1
    per_day = planned / ((due - start).days + 1) * profile.get("pace", 1.0)
    slow_days, slow_factor = profile.get("slow", (0, 1.0))
    total, raw = 0.0, []
    for i in range(days):
        factor = 0.6 if i == 0 else (slow_factor if i >= days - slow_days else 1.0)
        total += per_day * factor * ctx.rng.uniform(0.9, 1.1)
        raw.append(total)
    if "done" in profile:  # finished: the last report is the full quantity, within the tolerance
        final = planned + int(planned * task["tolerance_pct"] * ctx.rng.uniform(0, 0.5))
        raw = [final * r / raw[-1] for r in raw]
    else:
        raw = [min(r, planned * 0.98) for r in raw]
    return [(start + timedelta(days=i), int(r)) for i, r in enumerate(raw)]


def _production_events(ctx, plan, n, profile):
    """A report every evening, with the stage reached and a note now and then; a slow spell
    starts with the supplier reporting its cause."""
    series = plan.series[n]
    stages = PROCESSES[plan.task_specs[n][0]]["stages"]
    slow_days = profile.get("slow", (0, 1.0))[0]
    events = []
    for i, (day, qty) in enumerate(series):
        share = qty / plan.qty
        stage = stages[0] if i == 0 else stages[min(1 + int(share * (len(stages) - 1)), len(stages) - 1)]
        note = None
        if i >= len(series) - slow_days:
            note = SLOW_NOTES[(len(series) - 1 - i) % len(SLOW_NOTES)]
        elif ctx.rng.random() < 0.3:
            note = ctx.rng.choice(DAILY_NOTES)
        offset = (day - ctx.today).days
        report = {"report_date": day, "qty_done": qty, "stage": stage, "note": note,
                  "photo": i == len(series) - 1 or i % 5 == 2}  # the workshop photographs now and then
        events.append((ctx.at(offset, "report", ctx.rng.randint(0, 50)), partial(_report, ctx, plan, n, report)))
    if slow_days:
        offset = (series[-slow_days][0] - ctx.today).days
        kind, description = SLOW_ISSUE
        events.append((ctx.at(offset, "issue"), partial(_report_issue, ctx, plan, n, kind, description)))
    return events


def _node_events(ctx, plan):
    """Every task's supplier completes its part of the order's nodes as production goes (the
    order's node is done when all have); the manager confirms each first article the next
    morning; QC passes the QC node."""
    started = {state: day for day, state, *_ in plan.states}
    events = []
    if "in_production" in started:
        events += [(ctx.at(started["in_production"], "materials_ready"),
                    partial(_complete_node, ctx, plan, n, "materials_ready")) for n in range(len(plan.task_specs))]
    for n, series in plan.series.items():
        first = (series[0][0] - ctx.today).days
        events.append((ctx.at(first, "first_article"), partial(_complete_node, ctx, plan, n, "first_article")))
        if not plan.task_specs[n][4].get("unconfirmed"):
            events.append((ctx.at(first + 1, "first_article_ok"), partial(_confirm_first_article, ctx, plan, n)))
    done = {n: spec[4]["done"] for n, spec in enumerate(plan.task_specs) if spec[4] and "done" in spec[4]}
    # A task that finished has done its main process, however far the order's other tasks are.
    events += [(ctx.at(day, "main_process"), partial(_complete_node, ctx, plan, n, "main_process"))
               for n, day in done.items()]
    if done and len(done) == len(plan.task_specs) and "completed" in started:
        day = started["completed"]
        events.append((ctx.at(day, "qc"), partial(_qc_signs_off, ctx, plan, "qc")))
        for code in ("packed", "shipped"):
            events += [(ctx.at(day, code), partial(_complete_node, ctx, plan, n, code)) for n in done]
    return events


# --- replay: each step is one thing a person did, through the services ------------------------

def _seed_people(ctx):
    """The day before the first order: staff, suppliers and customers, the ERP's key, and the
    WeChat users who bound themselves to their company with an invite."""
    for username, password, role, name, wecom in STAFF:
        ctx.staff[username] = auth.create_staff(username, password, role, display_name=name, wecom_userid=wecom)
    manager = ctx.manager()
    for code, name, contact, phone in SUPPLIERS:
        ctx.suppliers.append(masterdata.create_supplier(
            manager, {"code": code, "name": name, "contact_name": contact, "contact_phone": phone}))
    for code, name, contact, phone in CUSTOMERS:
        ctx.customers.append(masterdata.create_customer(
            manager, {"code": code, "name": name, "contact_name": contact, "contact_phone": phone}))
    key_row, ctx.erp_key = auth.create_api_key(ERP_KEY_NAME)
    ctx.erp = Actor.api_key(key_row)
    for (openid, name), supplier in zip(SUPPLIER_USERS, ctx.suppliers, strict=True):
        ctx.supplier_users.append(_bound_user(ctx, openid, name, supplier_id=supplier.id))
    for (openid, name), customer in zip(CUSTOMER_USERS, ctx.customers, strict=True):
        ctx.customer_users.append(_bound_user(ctx, openid, name, customer_id=customer.id))


def _bound_user(ctx, openid, name, **party):
    """A WeChat user who logged in and bound with the invite the manager sent."""
    invite = masterdata.issue_invite(ctx.manager(), staff=ctx.staff["manager"], **party)
    user = auth.bind_invite(auth.login_wechat(openid), invite.code)
    # No service names a WeChat user (WeChat no longer hands out nicknames); the demo names its
    # users so that reports and node history say who acted.
    user.display_name = name
    user.save(only=["display_name"])
    return user


def _create_order(ctx, plan, data):
    if plan.source == "api":
        actor, staff = ctx.erp, None
    else:
        actor, staff = ctx.manager(), ctx.staff["manager"]
    plan.order, _ = intake.create_order(actor, data, source=plan.source, staff=staff)
    plan.tasks = list(plan.order.tasks.order_by(Task.id))


def _change_state(ctx, plan, state, reason):
    plan.order = order_states.update_order(ctx.manager(), plan.order.id, {"state": state, "reason": reason})


def _supplier_user(ctx, plan, n):
    return ctx.supplier_users[plan.task_specs[n][1]]


def _report(ctx, plan, n, report):
    user = _supplier_user(ctx, plan, n)
    report = dict(report)
    if report.pop("photo"):
        report["photo_ids"] = [_upload_photo(ctx, user, plan, n, report["stage"], report["report_date"])]
    progress.report(Actor.wechat(user), user, plan.tasks[n], report)
    ctx.reports += 1


PHOTO_COLOURS = {"冲压": (96, 110, 128), "焊接": (120, 92, 70), "喷涂": (150, 156, 160), "装配": (70, 104, 96)}


def _upload_photo(ctx, user, plan, n, stage, day):
    """A workshop photo as the supplier's phone uploads it (the server-upload route's service): a
    drawn picture of parts on a pallet, different for every task and day. → the photo id."""
    from io import BytesIO

    from PIL import Image, ImageDraw

    process = plan.task_specs[n][0]
    base = PHOTO_COLOURS.get(process, (110, 110, 110))
    image = Image.new("RGB", (800, 600), base)
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 430, 800, 600), fill=(58, 58, 62))  # the workshop floor
    draw.rectangle((150, 380, 650, 440), fill=(150, 108, 60))  # a pallet
    rng = random.Random(f"{plan.tasks[n].task_no}-{day}")
    for row in range(3):
        for col in range(rng.randint(3, 6)):
            x, y = 170 + col * 78, 330 - row * 58
            shade = tuple(min(255, c + rng.randint(40, 90)) for c in base)
            draw.rectangle((x, y, x + 70, y + 50), fill=shade, outline=(30, 30, 30), width=2)
    draw.text((24, 24), f"{plan.tasks[n].task_no}  {day:%Y-%m-%d}", fill=(255, 255, 255))
    buffer = BytesIO()
    image.save(buffer, "JPEG", quality=80)
    photo, _ = photos.upload(user, buffer.getvalue(), "progress" if stage else "node")
    ctx.photos += 1
    return photo.id


def _report_issue(ctx, plan, n, kind, description):
    user = _supplier_user(ctx, plan, n)
    progress.report_issue(Actor.wechat(user), user, plan.tasks[n], {"kind": kind, "description": description})


def _complete_node(ctx, plan, n, code):
    user = _supplier_user(ctx, plan, n)
    data = {"note": NODE_NOTES[code]}
    if code == "first_article":  # the first piece, photographed for the manager
        data["photo_ids"] = [_upload_photo(ctx, user, plan, n, None, plan.series[n][0][0])]
    progress.complete_node(Actor.wechat(user), plan.tasks[n], code, data)


def _confirm_first_article(ctx, plan, n):
    """The manager looks at the task's first article and confirms it."""
    node = NodeInstance.get((NodeInstance.order == plan.order.id) & (NodeInstance.code == "first_article"))
    node_reviews.confirm(ctx.manager(), plan.order.id, node.id, task_id=plan.tasks[n].id, note="首件尺寸、外观合格")


def _qc_signs_off(ctx, plan, code):
    """QC passes the order's QC node through the quality loop: each task's supplier records its
    output as one batch, and QC's final inspection of it passes (the node is done once every task
    has one). The template is QC's, made at the first sign-off."""
    qc = ctx.staff["qc"]
    actor = Actor.staff(qc)
    if ctx.qc_template is None:
        ctx.qc_template = quality.create_template(actor, qc, {"name": "出货检验（通用）", "kind": "final", "items": [
            {"name": "外观无划伤、毛刺", "check_type": "pass_fail"},
            {"name": "关键尺寸偏差", "check_type": "numeric", "min_value": -0.1, "max_value": 0.1, "unit": "mm"}]})
    items = {i.name: i.id for i in ctx.qc_template.item_list}
    for n, task in enumerate(plan.tasks):
        user = _supplier_user(ctx, plan, n)
        batch = quality.create_batch(Actor.wechat(user), user, task, {"qty": task.planned_qty})
        quality.inspect(actor, batch, {"kind": "final", "sample_qty": min(20, batch.qty), "note": "出货检验合格",
                                       "readings": [{"item_id": items["外观无划伤、毛刺"], "passed": True},
                                                    {"item_id": items["关键尺寸偏差"], "value": 0.02}]}, staff=qc)


# --- materials and a frozen batch ------------------------------------------------------------------

def _material_events(ctx):
    """The manager issues each lot (made that morning) to its task with the task's bill of
    quantities; the stamping supplier sends back scrap and leftover once its task is done."""
    events = []
    for spec in MATERIAL_ISSUES:
        events.append((ctx.at(spec[-1], "material"), partial(_issue_material, ctx, *spec[:-1])))
    *ret, day = MATERIAL_RETURN
    events.append((ctx.at(day, "material_return"), partial(_return_material, ctx, *ret)))
    return events


def _issue_material(ctx, p, n, item_index, lot_no, lot_qty, qty, per_unit, tolerance):
    manager, staff = ctx.manager(), ctx.staff["manager"]
    code, name, unit, spec = MATERIAL_ITEMS[item_index]
    material = MaterialItem.get_or_none(MaterialItem.code == code)
    if material is None:
        material = materials.create_item(manager, code, name, unit, spec)
    lot = materials.create_lot(manager, staff, lot_no, material.id, lot_qty, note="仓库入库")
    task = ctx.plans[p].tasks[n]
    materials.set_bill(manager, task.id, [{"item_id": material.id, "qty_per_unit": per_unit,
                                           "tolerance_pct": tolerance}])
    issued, _ = materials.issue(manager, staff, task_id=task.id, qty=qty, unit=unit, lot_id=lot.id,
                                note=f"{task.task_no} 开工发料")
    ctx.material_issues.append(issued)


def _return_material(ctx, p, n, good, scrap, leftover):
    task = ctx.plans[p].tasks[n]
    issued = next(i for i in ctx.material_issues if i.task_id == task.id)
    materials.record_return(ctx.manager(), ctx.staff["manager"], issued.id, unit=issued.unit, good_qty=good,
                            scrap_qty=scrap, leftover_qty=leftover, note="任务完工，退回边角余料和废料")


def _frozen_batch_events(ctx):
    p, n, qty, day = FROZEN_BATCH
    return [(ctx.at(day, "batch"), partial(_record_batch, ctx, p, n, qty)),
            (ctx.at(day + 1, "patrol"), partial(_patrol_fails, ctx, p, n))]


def _record_batch(ctx, p, n, qty):
    plan = ctx.plans[p]
    user = _supplier_user(ctx, plan, n)
    ctx.frozen = quality.create_batch(Actor.wechat(user), user, plan.tasks[n], {"qty": qty, "note": "第一批焊接件"})


def _patrol_fails(ctx, p, n):
    """QC's patrol inspection of the welding batch finds porosity: the batch is frozen, a
    nonconformance opened (QC's to settle) and a qc_fail alert raised."""
    qc = ctx.staff["qc"]
    actor = Actor.staff(qc)
    template = quality.create_template(actor, qc, {"name": "焊接巡检", "kind": "patrol", "process": "焊接", "items": [
        {"name": "焊缝无气孔、夹渣", "check_type": "pass_fail"},
        {"name": "焊脚高度", "check_type": "numeric", "min_value": 4.0, "max_value": 6.0, "unit": "mm"}]})
    items = {i.name: i.id for i in template.item_list}
    inspection = quality.inspect(actor, ctx.frozen, {
        "kind": "patrol", "template_id": template.id, "sample_qty": 20, "note": "焊缝抽检发现气孔",
        "readings": [{"item_id": items["焊缝无气孔、夹渣"], "passed": False, "note": "3 件焊缝有气孔"},
                     {"item_id": items["焊脚高度"], "value": 4.6}],
        "defects": [{"category": "appearance", "count": 3}]}, staff=qc)
    ctx.frozen = inspection.nonconformance


# --- this morning's delay scan, the urge and the subscription ------------------------------------

def _delay_scan(ctx):
    """This morning's scans, by the delay engine itself: delays, missing reports, overdue nodes and
    customer early warnings, with their alerts and messages as production would have them."""
    now = utcnow()  # the clock the history runs under (clock_at)
    delay_engine.scan_delays(now)
    delay_engine.scan_missing_reports(now)
    delay_engine.scan_overdue_nodes(now)
    delay_engine.scan_early_warnings(now)
    ctx.alerts = list(Alert.select().where((Alert.kind == "delay") & Alert.open_key.is_null(False))
                      .order_by(Alert.id))


def _urge(ctx):
    """The manager urges the most overdue of this morning's late tasks from the dashboard."""
    task = max((a.task for a in ctx.alerts), key=lambda t: (ctx.today - t.due_date).days)
    ctx.urge = urges.urge_task(ctx.manager(), task.id, URGE_MESSAGE.format(task_no=task.task_no),
                               staff=ctx.staff["manager"], via="dashboard")


def _reply(ctx):
    """The supplier answers: night shifts bring the predicted finish two days forward (not before tomorrow)."""
    task = ctx.urge.task
    user = ctx.supplier_users[[s.id for s in ctx.suppliers].index(task.supplier_id)]
    promised = max(Task.get_by_id(task.id).eta_date - timedelta(days=2), ctx.day(1))
    ctx.urge = urges.reply_urge(Actor.wechat(user), user, ctx.urge, URGE_REPLY, promised)


def _subscribe(ctx):
    """demo-customer-1 follows a running order: one accepted node-done message per node it wants."""
    user = ctx.customer_users[0]
    order = next(p.order for p in ctx.plans if p.customer == 0 and p.order and p.order.state == "in_production")
    templates = current_app.config["SUBSCRIBE_TEMPLATE_IDS"]  # the first is the node-done message
    for code in SUBSCRIBED_NODES:
        accepted = {templates[0]: "accept"} if templates else {}
        ctx.subscribed = order, subscriptions.record(user, order, accepted, [code], templates)


def _spare_invites(ctx):
    """One unused invite per company, issued now so it is still valid, for trying the binding."""
    for party in ctx.suppliers + ctx.customers:
        kind = "supplier_id" if isinstance(party, Supplier) else "customer_id"
        invite = masterdata.issue_invite(ctx.manager(), staff=ctx.staff["manager"], **{kind: party.id})
        ctx.invites.append((party.name, invite.code))


# --- summary ----------------------------------------------------------------------------------

def _summary(ctx):
    """What was created and how to log in, for the person who just ran `flask demo`."""
    states = {}
    for plan in ctx.plans:
        states[plan.order.state] = states.get(plan.order.state, 0) + 1
    levels = ", ".join(f"{a.task.task_no} {a.level} 晚 {a.days_late} 个工作日" for a in ctx.alerts)
    order, subscribed = ctx.subscribed
    quota = "、".join(f"{t} 剩余 {n} 次" for t, n in subscribed["quota"].items())
    names = dict(NodeInstance.select(NodeInstance.code, NodeInstance.name).where(NodeInstance.order == order.id)
                 .tuples())
    followed = "/".join(names[code] for code in subscribed["nodes"])
    lines = [
        f"演示工厂已创建（业务日期 {ctx.today}）：",
        f"  供应商 {len(ctx.suppliers)} 家：" + "、".join(f"{s.name}({s.code})" for s in ctx.suppliers),
        f"  客户 {len(ctx.customers)} 家：" + "、".join(f"{c.name}({c.code})" for c in ctx.customers),
        f"  订单 {len(ctx.plans)} 张：" + "，".join(f"{k} {v}" for k, v in sorted(states.items())),
        f"  任务 {sum(len(p.tasks) for p in ctx.plans)} 个，日报 {ctx.reports} 条，"
        f"延期预警 {len(ctx.alerts)} 条（{levels}），现场照片 {ctx.photos} 张",
        f"  催单 1 条：{ctx.urge.task.task_no}，供应商回复新交期 {ctx.urge.new_due_date}",
        f"  订阅：demo-customer-1 {quota}，订阅 {order.order_no} 的 {followed} 节点",
        f"  冻结批次 1 个：{ctx.frozen.batch.batch_no}（巡检不合格，不合格单待处理）",
        f"  发料 {len(ctx.material_issues)} 次：" + "、".join(
            f"{i.task.task_no} {i.item.name} {materials.fmt(i.qty)} {i.unit}" for i in ctx.material_issues),
        "后台登录（用户名 / 密码）：",
        *(f"  {u} / {p}  （{name}，{role}）" for u, p, role, name, _ in STAFF),
        f"ERP 接口密钥 {ERP_KEY_NAME}（只显示这一次）：{ctx.erp_key}",
        "小程序演示用户 openid：" + "、".join(o for o, _ in SUPPLIER_USERS + CUSTOMER_USERS),
        "未使用的邀请码：",
        *(f"  {name}：{code}" for name, code in ctx.invites),
    ]
    return "\n".join(lines)
