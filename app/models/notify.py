"""Alerts, the notification outbox, subscribe-message quota and node subscriptions."""
from peewee import BooleanField, CharField, DateField, DateTimeField, FloatField, ForeignKeyField, IntegerField, TextField

from app.models.base import BaseModel
from app.models.fields import JSONTextField
from app.models.orders import NodeInstance, Order, Task
from app.models.users import StaffUser, WechatUser
from app.timeutil import utcnow


class Alert(BaseModel):
    # NULL for an alert about the whole order: an order-level node (订单确认, 质检) that belongs to
    # staff, not to a task's supplier.
    task = ForeignKeyField(Task, null=True, backref="alerts", on_delete="CASCADE")
    order = ForeignKeyField(Order, backref="alerts", on_delete="CASCADE")
    kind = CharField(max_length=24)  # delay | missing_report | node_overdue | qc_fail | customer_early_warning
    # The node a node_overdue alert is about; node_key is its id (0 for alerts about the whole task),
    # part of the unique index, so a task has one open alert per kind and node.
    node = ForeignKeyField(NodeInstance, null=True, backref="+", on_delete="CASCADE")
    node_key = IntegerField(default=0)
    level = CharField(max_length=16)  # yellow | orange | red
    status = CharField(max_length=16, default="open")  # open | acknowledged | resolved
    # "open" while unresolved, NULL after: the unique index allows one open alert per
    # task, kind and node, and any number of resolved ones (NULLs never collide).
    open_key = CharField(max_length=8, null=True, default="open")
    # The same for an alert about the whole order (task NULL, where the index above cannot hold):
    # "open" while unresolved, NULL after and for task alerts — one open alert per order, kind and node.
    order_open_key = CharField(max_length=8, null=True)
    deviation_pct = FloatField(null=True)
    days_late = IntegerField(null=True)
    eta_date = DateField(null=True)
    message = TextField(null=True)
    level_changed_at = DateTimeField(default=utcnow)
    escalation_level = IntegerField(default=0)
    escalated_at = DateTimeField(null=True)
    acknowledged_at = DateTimeField(null=True)
    acknowledged_by = ForeignKeyField(StaffUser, null=True, backref="+", on_delete="SET NULL")
    resolved_at = DateTimeField(null=True)
    resolved_by = ForeignKeyField(StaffUser, null=True, backref="+", on_delete="SET NULL")
    # Staff responses (app/services/alert_responses.py); resolved_at without resolved_by = the system.
    ack_note = CharField(max_length=500, null=True)
    resolve_note = CharField(max_length=500, null=True)

    class Meta:
        indexes = (
            (("task", "kind", "node_key", "open_key"), True),
            (("order", "kind", "node_key", "order_open_key"), True),
            (("status", "level"), False),
        )


class Notification(BaseModel):
    """The outbox: written in the same transaction as the change that causes it."""

    channel = CharField(max_length=16)  # mp_subscribe | wecom_app | wecom_robot
    recipient = CharField(max_length=255)  # openid, WeCom user ids joined by |, or robot key name
    template_id = CharField(max_length=64, null=True)
    page = CharField(max_length=128, null=True)
    payload = JSONTextField()
    # pending → sent | recorded (no credentials) | no_quota | failed (gave up) | digested (sent in a robot digest)
    status = CharField(max_length=16, default="pending")
    attempts = IntegerField(default=0)
    last_error = CharField(max_length=255, null=True)
    # Same event twice → one notification (e.g. "alert-42-level-red").
    dedup_key = CharField(max_length=128, null=True, unique=True)
    next_attempt_at = DateTimeField(default=utcnow)
    sent_at = DateTimeField(null=True)
    # The sender holding the row while it is 'sending' (set by one UPDATE, checked when the
    # outcome is written, so a late result from a worker whose lease ran out changes nothing).
    claim_token = CharField(max_length=32, null=True, index=True)
    # mp_subscribe: one unit of our subscribe quota is taken for this row (not taken again when a
    # crashed send is reclaimed; given back when WeChat refused for a reason that is not the user's).
    quota_held = BooleanField(null=True, default=False)  # NULL (rows of the previous release) = False

    class Meta:
        indexes = ((("status", "next_attempt_at"), False),)


class SubscribeQuota(BaseModel):
    """One-time subscribe messages: each accept allows one send of that template."""

    user = ForeignKeyField(WechatUser, backref="quotas", on_delete="CASCADE")
    template_id = CharField(max_length=64)
    remaining = IntegerField(default=0)
    updated_at = DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("user", "template_id"), True),)


class NodeSubscription(BaseModel):
    """A customer user wants to hear when this node of this order completes."""

    user = ForeignKeyField(WechatUser, backref="node_subscriptions", on_delete="CASCADE")
    order = ForeignKeyField(Order, backref="subscriptions", on_delete="CASCADE")
    node_code = CharField(max_length=32)
    notified_at = DateTimeField(null=True)

    class Meta:
        indexes = ((("user", "order", "node_code"), True),)


class InboundMessage(BaseModel):
    """WeChat callbacks retry 3 times; the first delivery of a message id wins."""

    msg_key = CharField(max_length=128, unique=True)
    source = CharField(max_length=16)
    body = TextField(null=True)
