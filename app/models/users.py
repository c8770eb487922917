"""Who acts: staff (dashboard, WeCom), WeChat mini-program users, ERP API keys, invites."""
from peewee import BooleanField, CharField, DateTimeField, ForeignKeyField, IntegerField

from app.models.base import BaseModel
from app.models.parties import Customer, Supplier

STAFF_ROLES = ("manager", "qc", "executive", "admin")
WECHAT_ROLES = ("supplier", "customer", "unbound")


class StaffUser(BaseModel):
    username = CharField(max_length=64, unique=True)
    display_name = CharField(max_length=64)
    password_hash = CharField(max_length=255)
    role = CharField(max_length=16)  # one of STAFF_ROLES
    wecom_userid = CharField(max_length=64, null=True, unique=True)
    active = BooleanField(default=True)
    last_login_at = DateTimeField(null=True)
    # Bumped by logout: every dashboard session issued before it stops working.
    session_version = IntegerField(default=0)


class WechatUser(BaseModel):
    """A person who opened the mini program; bound to one supplier or customer by an invite."""

    openid = CharField(max_length=64, unique=True)
    unionid = CharField(max_length=64, null=True)
    role = CharField(max_length=16, default="unbound")  # one of WECHAT_ROLES
    supplier = ForeignKeyField(Supplier, null=True, backref="wechat_users", on_delete="RESTRICT")
    customer = ForeignKeyField(Customer, null=True, backref="wechat_users", on_delete="RESTRICT")
    display_name = CharField(max_length=64, null=True)
    last_login_at = DateTimeField(null=True)
    # Bumped to invalidate every token issued before (unbinding, role change).
    token_version = IntegerField(default=0)


class ApiKey(BaseModel):
    """ERP integration key. Only a SHA-256 of the key is stored; the prefix finds the row."""

    name = CharField(max_length=64)
    prefix = CharField(max_length=16, unique=True)
    key_hash = CharField(max_length=64)
    # What the key may do, space-separated (app.domain.vocabulary.API_KEY_SCOPES).
    scopes = CharField(max_length=64, default="orders")
    last_used_at = DateTimeField(null=True)
    revoked_at = DateTimeField(null=True)


class Invite(BaseModel):
    """A code a WeChat user binds with, issued for one supplier or one customer."""

    code = CharField(max_length=32, unique=True)
    kind = CharField(max_length=16)  # supplier | customer
    supplier = ForeignKeyField(Supplier, null=True, backref="invites", on_delete="CASCADE")
    customer = ForeignKeyField(Customer, null=True, backref="invites", on_delete="CASCADE")
    created_by = ForeignKeyField(StaffUser, null=True, on_delete="SET NULL")
    max_uses = IntegerField(default=1)
    uses = IntegerField(default=0)
    expires_at = DateTimeField()
    revoked_at = DateTimeField(null=True)

    @property
    def party(self):
        """The supplier or customer the invite binds to."""
        return self.supplier if self.kind == "supplier" else self.customer
