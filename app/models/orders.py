"""Orders, their tasks (one process at one supplier), nodes, progress, photos, urges."""
from peewee import (
    SQL,
    BooleanField,
    CharField,
    DateField,
    DateTimeField,
    DecimalField,
    DeferredForeignKey,
    FloatField,
    ForeignKeyField,
    IntegerField,
    TextField,
)

from app.models.base import BaseModel
from app.models.parties import Customer, Supplier
from app.models.users import StaffUser, WechatUser
from app.timeutil import utcnow


class NodeTemplate(BaseModel):
    """A list of nodes; chosen per product or customer, else the default one."""

    name = CharField(max_length=64)
    customer = ForeignKeyField(Customer, null=True, on_delete="CASCADE")
    product_code = CharField(max_length=64, null=True)
    is_default = BooleanField(default=False)


class NodeTemplateItem(BaseModel):
    template = ForeignKeyField(NodeTemplate, backref="items", on_delete="CASCADE")
    seq = IntegerField()
    code = CharField(max_length=32)
    name = CharField(max_length=32)
    # Where in the order's plan (0 = planned start, 1 = due date) this node is due.
    plan_share = FloatField()
    expected_days = IntegerField(default=1)

    class Meta:
        indexes = ((("template", "code"), True),)


class Order(BaseModel):
    order_no = CharField(max_length=32, unique=True)
    # The ERP's number; the same number always means the same order (idempotent intake).
    external_no = CharField(max_length=64, null=True, unique=True)
    # SHA-256 of the normalised intake content: a repeat with other content is refused.
    content_hash = CharField(max_length=64, null=True)
    customer = ForeignKeyField(Customer, backref="orders", on_delete="RESTRICT")
    product_code = CharField(max_length=64, null=True)
    product_name = CharField(max_length=128)
    quantity = IntegerField()
    unit = CharField(max_length=16, default="件")
    planned_start = DateField()
    due_date = DateField()
    state = CharField(max_length=16, default="draft")  # app.domain.vocabulary.ORDER_STATES
    # The state to return to when an order on hold is resumed.
    resume_state = CharField(max_length=16, null=True)
    node_template = ForeignKeyField(NodeTemplate, null=True, on_delete="SET NULL")
    unit_price = DecimalField(max_digits=12, decimal_places=2, null=True)  # never shown to customers
    notes = TextField(null=True)
    source = CharField(max_length=16, default="manual")  # manual | api | import
    created_by = ForeignKeyField(StaffUser, null=True, on_delete="SET NULL")
    updated_at = DateTimeField(default=utcnow)

    class Meta:
        indexes = (
            (("state", "due_date"), False),
            (("customer", "state"), False),
        )


class Task(BaseModel):
    order = ForeignKeyField(Order, backref="tasks", on_delete="CASCADE")
    task_no = CharField(max_length=40, unique=True)
    process = CharField(max_length=32)  # 冲压, 焊接, 装配 …
    supplier = ForeignKeyField(Supplier, backref="tasks", on_delete="RESTRICT")
    planned_qty = IntegerField()
    # Share of planned_qty a supplier may report beyond the plan (0.05 = 5 %).
    tolerance_pct = FloatField(default=0.0)
    planned_start = DateField()
    due_date = DateField()
    state = CharField(max_length=16, default="pending")  # app.domain.vocabulary.TASK_STATES
    requirements = TextField(null=True)
    unit_cost = DecimalField(max_digits=12, decimal_places=2, null=True)  # never shown to customers
    # Unguessable code printed in the QR label.
    qr_code = CharField(max_length=32, unique=True)
    qty_done = IntegerField(default=0)  # cumulative good quantity, from the latest report
    # Pieces QC rejected that must be made again (quality.rejected_qty, kept by the quality service
    # in the transaction that rejects them): the progress model counts qty_done − qty_rejected as made.
    qty_rejected = IntegerField(default=0, constraints=[SQL("DEFAULT 0")])  # a default for the previous release
    last_report_date = DateField(null=True)
    eta_date = DateField(null=True)
    alert_level = CharField(max_length=16, null=True)  # yellow | orange | red
    started_at = DateTimeField(null=True)
    completed_at = DateTimeField(null=True)
    updated_at = DateTimeField(default=utcnow)

    class Meta:
        indexes = (
            (("supplier", "state"), False),
            (("state", "due_date"), False),
            # The delay engine's batches: tasks in one state in id order (InnoDB ends the entries in the id).
            (("state", "id"), False),
        )


class NodeInstance(BaseModel):
    """One node of one order (optionally tied to the task that completes it)."""

    order = ForeignKeyField(Order, backref="nodes", on_delete="CASCADE")
    task = ForeignKeyField(Task, null=True, backref="nodes", on_delete="CASCADE")
    seq = IntegerField()
    code = CharField(max_length=32)
    name = CharField(max_length=32)
    planned_date = DateField()
    expected_days = IntegerField(default=1)
    state = CharField(max_length=24, default="pending")  # pending | in_progress | done | delayed | awaiting_confirmation
    started_at = DateTimeField(null=True)
    done_at = DateTimeField(null=True)
    done_by = CharField(max_length=64, null=True)
    note = TextField(null=True)

    class Meta:
        indexes = (
            (("order", "code"), True),
            (("state", "planned_date"), False),
        )


class NodeCompletion(BaseModel):
    """One task's part of an order-wide node (SUPPLIER_NODE_CODES). On an order shared by several
    suppliers each task completes such a node for itself; the order's node (NodeInstance.state)
    is done when every open task's part is (app.domain.vocabulary.combined_node_state)."""

    node = ForeignKeyField(NodeInstance, backref="completions", on_delete="CASCADE")
    task = ForeignKeyField(Task, backref="node_completions", on_delete="CASCADE")
    state = CharField(max_length=24)  # done | awaiting_confirmation | rejected (vocabulary.PART_STATES)
    done_at = DateTimeField()
    done_by = CharField(max_length=64, null=True)
    note = TextField(null=True)
    # A manager's decision on a first article: when, who, and why it was sent back.
    reviewed_at = DateTimeField(null=True)
    reviewed_by = CharField(max_length=64, null=True)
    reject_reason = CharField(max_length=255, null=True)

    class Meta:
        indexes = ((("node", "task"), True),)


class ProgressReport(BaseModel):
    """At most one per task and China day; a later report that day amends it."""

    task = ForeignKeyField(Task, backref="reports", on_delete="CASCADE")
    report_date = DateField()
    qty_done = IntegerField()  # cumulative good quantity
    stage = CharField(max_length=32, null=True)
    note = TextField(null=True)
    reporter = ForeignKeyField(WechatUser, null=True, on_delete="SET NULL")
    revision = IntegerField(default=1)
    updated_at = DateTimeField(default=utcnow)

    class Meta:
        indexes = (
            (("task", "report_date"), True),
            # The delay scan reads each task's recent (date, quantity) pairs from the index alone,
            # never the rows (notes, photos' links): a covering index (migration 0008).
            (("task", "report_date", "qty_done"), False),
        )


class TaskIssue(BaseModel):
    """A production problem the supplier reports (material short, machine down …)."""

    task = ForeignKeyField(Task, backref="issues", on_delete="CASCADE")
    kind = CharField(max_length=32)
    description = TextField()
    reporter = ForeignKeyField(WechatUser, null=True, on_delete="SET NULL")
    status = CharField(max_length=16, default="open")
    closed_at = DateTimeField(null=True)


class Photo(BaseModel):
    """An image in storage. Keys live under the owning supplier's prefix."""

    storage_key = CharField(max_length=255, unique=True)
    supplier = ForeignKeyField(Supplier, null=True, on_delete="SET NULL")
    uploader = ForeignKeyField(WechatUser, null=True, on_delete="SET NULL")
    uploaded_by_staff = ForeignKeyField(StaffUser, null=True, on_delete="SET NULL")
    purpose = CharField(max_length=16)  # progress | node | issue | inspection | nonconformance (photos.PURPOSES)
    # pending (uploaded or awaited) | ready | duplicate (shares an earlier photo's copies) | rejected
    status = CharField(max_length=16, default="pending")
    content_type = CharField(max_length=32, null=True)
    size = IntegerField(null=True)
    width = IntegerField(null=True)
    height = IntegerField(null=True)
    sha256 = CharField(max_length=64, null=True, index=True)
    thumb_key = CharField(max_length=255, null=True)
    display_key = CharField(max_length=255, null=True)  # EXIF-stripped copy for customers
    task = ForeignKeyField(Task, null=True, backref="photos", on_delete="SET NULL")
    report = ForeignKeyField(ProgressReport, null=True, backref="photos", on_delete="SET NULL")
    node = ForeignKeyField(NodeInstance, null=True, backref="photos", on_delete="SET NULL")
    issue = ForeignKeyField(TaskIssue, null=True, backref="photos", on_delete="SET NULL")
    # Quality (app/models/quality.py): an inspection's photos, those of one of its readings, a
    # nonconformance's. Visible to customers only once a QC inspection has passed.
    inspection = DeferredForeignKey("Inspection", null=True, backref="photos", on_delete="SET NULL")
    inspection_result = DeferredForeignKey("InspectionResult", null=True, backref="photos", on_delete="SET NULL")
    nonconformance = DeferredForeignKey("Nonconformance", null=True, backref="photos", on_delete="SET NULL")
    customer_visible = BooleanField(default=False)


class Urge(BaseModel):
    """A manager's 催单 and the supplier's answer."""

    task = ForeignKeyField(Task, backref="urges", on_delete="CASCADE")
    by_staff = ForeignKeyField(StaffUser, null=True, on_delete="SET NULL")
    via = CharField(max_length=16, default="dashboard")  # dashboard | bot | api
    message = CharField(max_length=255, null=True)
    replied_at = DateTimeField(null=True)
    reply_reason = TextField(null=True)
    new_due_date = DateField(null=True)
    replied_by = ForeignKeyField(WechatUser, null=True, on_delete="SET NULL")


class EtaRevision(BaseModel):
    """Every change of a task's expected finish date, for the scorecard."""

    task = ForeignKeyField(Task, backref="eta_revisions", on_delete="CASCADE")
    urge = ForeignKeyField(Urge, null=True, on_delete="SET NULL")
    old_eta = DateField(null=True)
    new_eta = DateField()
    reason = TextField(null=True)
    source = CharField(max_length=16)  # supplier | engine | manager
