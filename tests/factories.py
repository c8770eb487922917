"""Small builders for test data. Call inside an app context with a connection (the `dbconn` fixture)."""
import secrets
import time
from datetime import timedelta
from itertools import count

from flask import current_app

from app.models import Customer, Order, Supplier, Task, WechatUser
from app.services import nodes
from app.services.auth import create_staff, issue_token
from app.timeutil import china_date

_seq = count(1)


def supplier(name="苏州精工冲压厂"):
    n = next(_seq)
    return Supplier.create(code=f"SUP-{n}", name=f"{name}{n}")


def customer(name="上海恒远机电"):
    n = next(_seq)
    return Customer.create(code=f"CUST-{n}", name=f"{name}{n}")


def wechat_user(party=None, openid=None):
    """A mini-program user bound to a Supplier or Customer (or unbound)."""
    fields = {"openid": openid or f"o-{secrets.token_hex(6)}", "display_name": "测试用户"}
    if isinstance(party, Supplier):
        fields.update(role="supplier", supplier=party)
    elif isinstance(party, Customer):
        fields.update(role="customer", customer=party)
    return WechatUser.create(**fields)


def staff(username, password, role="manager"):
    """A dashboard user with a real password (for tests of the login itself)."""
    return create_staff(username, password, role, display_name=f"{username}（测试）")


def staff_session(client, user):
    """Log `client` in as `user` the way POST /api/v1/auth/login does, without the password check."""
    with client.session_transaction() as session:
        session.update(staff_id=user.id, v=user.session_version, at=int(time.time()))
        session.permanent = True
    return client


def staff_client(client, role):
    return staff_session(client, staff(f"{role}-{next(_seq)}", "long-enough-pw", role))


def bearer(user):
    return {"Authorization": f"Bearer {issue_token(user, current_app.config['SECRET_KEY'])}"}


def order(customer_obj, suppliers, state="in_production", days_before=10, days_after=20, qty=1000, **fields):
    """An order with one task per supplier and the default nodes; tasks follow the order's state."""
    today = china_date()
    n = next(_seq)
    start, due = today - timedelta(days=days_before), today + timedelta(days=days_after)
    o = Order.create(order_no=f"SO-T{n}", customer=customer_obj, product_name="钣金机箱", quantity=qty,
                     planned_start=start, due_date=due, state=state, unit_price="12.50", **fields)
    task_state = {"in_production": "in_production", "completed": "completed", "on_hold": "on_hold",
                  "cancelled": "cancelled"}.get(state, "pending")
    for i, sup in enumerate(suppliers, start=1):
        Task.create(order=o, task_no=f"{o.order_no}-T{i}", process="冲压", supplier=sup, planned_qty=qty,
                    tolerance_pct=0.05, planned_start=start, due_date=due, state=task_state,
                    qr_code=secrets.token_urlsafe(16), unit_cost="3.20")
    nodes.instantiate(o)
    return o
