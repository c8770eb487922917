"""Manager and ERP API: suppliers, customers, and the invites their WeChat users bind with."""
from apiflask import APIBlueprint, Schema
from apiflask.fields import Boolean, String
from apiflask.validators import Length, OneOf, Range, Regexp
from flask import current_app, g
from marshmallow import ValidationError, validates_schema

from app.admin.schemas import (
    CustomerOut,
    CustomerPage,
    InviteOut,
    ScorecardOut,
    SupplierOut,
    SupplierPage,
    WechatUserChanged,
    WechatUserPage,
)
from app.domain.errors import not_found
from app.models import Customer, Supplier
from app.services import auth as auth_service
from app.services import masterdata, scorecard
from app.web.auth import api_auth, current_actor, staff_role
from app.web.fields import Id, Integer
from app.web.paging import PageIn, paginate

bp = APIBlueprint("admin_masterdata", __name__, tag="管理端 · 基础资料")

WRITE_ROLES = ("manager",)
SCORECARD_ROLES = ("manager", "qc", "executive")


class PartyIn(Schema):
    code = String(required=True, validate=[Length(1, 32), Regexp(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$",
                                                                 error="编码只能用字母、数字和 _ . -")])
    name = String(required=True, validate=Length(1, 100))
    contact_name = String(allow_none=True, validate=Length(max=50))
    contact_phone = String(allow_none=True, validate=[Length(max=32), Regexp(r"^[0-9+\-() ]*$",
                                                                             error="电话只能包含数字和 + - ( )")])


ROBOT_KEY = String(allow_none=True, validate=[Length(max=64), Regexp(r"^[A-Za-z0-9_\-]*$",
                                                                    error="机器人 key 只能包含字母、数字、_ 和 -")],
                   metadata={"description": "key of the WeCom group robot in a group with the supplier (webhook key=…)"})


class SupplierIn(PartyIn):
    robot_key = ROBOT_KEY


class RobotIn(Schema):
    robot_key = ROBOT_KEY


class SupplierQuery(PageIn):
    active = Boolean()
    q = String(validate=Length(1, 64), metadata={"description": "part of the code or name"})


class CustomerQuery(PageIn):
    active = Boolean()
    q = String(validate=Length(1, 64), metadata={"description": "part of the code or name"})


class ReasonIn(Schema):
    reason = String(required=True, validate=Length(1, 255), metadata={"description": "原因（记入审计日志）"})


class WechatUserQuery(PageIn):
    supplier_id = Id(strict=False)
    customer_id = Id(strict=False)
    role = String(validate=OneOf(("supplier", "customer", "unbound")))


class InviteIn(Schema):
    supplier_id = Id()
    supplier_code = String(validate=Length(1, 32), metadata={"description": "instead of supplier_id (as in orders)"})
    customer_id = Id()
    customer_code = String(validate=Length(1, 32), metadata={"description": "instead of customer_id (as in orders)"})
    max_uses = Integer(load_default=1, validate=Range(1, 50), metadata={"description": "how many WeChat users may bind"})
    ttl_days = Integer(validate=Range(1, 90), metadata={"description": "default INVITE_TTL_DAYS (14)"})

    @validates_schema
    def exactly_one_party(self, data, **kwargs):
        supplier = "supplier_id" in data or "supplier_code" in data
        customer = "customer_id" in data or "customer_code" in data
        if supplier == customer:
            raise ValidationError("请指定供应商（supplier_id 或 supplier_code）或客户（customer_id 或 customer_code）之一",
                                  field_name="supplier_id")


@bp.post("/suppliers")
@bp.auth_required(api_auth)
@staff_role(*WRITE_ROLES, key_scope="orders")
@bp.input(SupplierIn, arg_name="body")
@bp.output(SupplierOut, status_code=201)
@bp.doc(responses={403: "当前角色无权修改基础资料", 409: "编码已存在（duplicate_code）"})
def create_supplier(body):
    """Add a supplier (外协厂)."""
    return masterdata.create_supplier(current_actor(), body), 201


@bp.get("/suppliers")
@bp.auth_required(api_auth)
@bp.input(SupplierQuery, location="query", arg_name="args")
@bp.output(SupplierPage)
def list_suppliers(args):
    """Suppliers by code, optionally only active ones or matching a text."""
    return paginate(masterdata.suppliers_query(args.get("active"), args.get("q")), args)


class ScorecardQuery(Schema):
    period = String(load_default="month", validate=OneOf(scorecard.PERIODS),
                    metadata={"description": "week (ISO week) or month (calendar month), China dates"})


@bp.get("/suppliers/<int:supplier_id>/scorecard")
@bp.auth_required(api_auth)
@staff_role(*SCORECARD_ROLES)
@bp.input(ScorecardQuery, location="query", arg_name="args")
@bp.output(ScorecardOut)
@bp.doc(responses={404: "供应商不存在"})
def supplier_scorecard(supplier_id, args):
    """A supplier's scorecard: the latest weekly or monthly snapshot with each KPI (value, sub-score,
    weight) and the score and grade of the last 12 periods, oldest first. Snapshots are computed by
    the scorecard-snapshot job, not on request; definitions and weights: README "Supplier scorecard"."""
    if Supplier.get_or_none(Supplier.id == supplier_id) is None:
        raise not_found("供应商")
    return scorecard.scorecard(supplier_id, args["period"])


@bp.put("/suppliers/<int:supplier_id>/robot")
@bp.auth_required(api_auth)
@staff_role(*WRITE_ROLES, key_scope="orders")
@bp.input(RobotIn, arg_name="body")
@bp.output(SupplierOut)
@bp.doc(responses={403: "当前角色无权修改基础资料", 404: "供应商不存在"})
def set_supplier_robot(supplier_id, body):
    """Set or clear (null) the supplier's WeCom group robot, through which alerts reach the supplier
    when none of its WeChat users can get a subscribe message."""
    return masterdata.set_robot_key(current_actor(), supplier_id, body.get("robot_key"))


@bp.post("/customers")
@bp.auth_required(api_auth)
@staff_role(*WRITE_ROLES, key_scope="orders")
@bp.input(PartyIn, arg_name="body")
@bp.output(CustomerOut, status_code=201)
@bp.doc(responses={403: "当前角色无权修改基础资料", 409: "编码已存在（duplicate_code）"})
def create_customer(body):
    """Add a customer (下单客户)."""
    return masterdata.create_customer(current_actor(), body), 201


@bp.get("/customers")
@bp.auth_required(api_auth)
@bp.input(CustomerQuery, location="query", arg_name="args")
@bp.output(CustomerPage)
def list_customers(args):
    """Customers by code, optionally matching a text."""
    return paginate(masterdata.customers_query(args.get("active"), args.get("q")), args)


@bp.post("/invites")
@bp.auth_required(api_auth)
@staff_role(*WRITE_ROLES, key_scope="invites")
@bp.input(InviteIn, arg_name="body")
@bp.output(InviteOut, status_code=201)
@bp.doc(responses={403: "当前角色无权发放邀请码", 404: "供应商或客户不存在",
                   409: "供应商或客户已停用（supplier_inactive、customer_inactive）",
                   422: "未指定或同时指定了供应商和客户，或 id 与编码不一致"})
def create_invite(body):
    """An invite code for a supplier's or customer's WeChat users to bind with (POST /mp/v1/auth/bind).
    The party is named as orders name it: by id or by code (regardless of case)."""
    invite = masterdata.issue_invite(
        current_actor(), **{k: body.get(k) for k in ("supplier_id", "supplier_code", "customer_id", "customer_code")},
        max_uses=body["max_uses"], ttl_days=body.get("ttl_days") or current_app.config["INVITE_TTL_DAYS"],
        staff=g.get("staff"),
    )
    return invite, 201


# --- access: deactivating parties, unbinding and revoking WeChat users ---------------------------
# Staff only (managers and admins): ERP keys cannot change who may use the mini program.

_PARTIES = {"suppliers": (Supplier, SupplierOut), "customers": (Customer, CustomerOut)}


def _party_route(kind, active):
    model, schema = _PARTIES[kind]
    verb = "reactivate" if active else "deactivate"
    what = "供应商" if model is Supplier else "客户"

    @bp.post(f"/{kind}/<int:party_id>/{verb}", endpoint=f"{verb}_{kind}")
    @bp.auth_required(api_auth)
    @staff_role(*WRITE_ROLES)
    @bp.input(ReasonIn, arg_name="body")
    @bp.output(schema)
    @bp.doc(summary=f"{'Reactivate' if active else 'Deactivate'} a {model.__name__.lower()}",
            responses={403: "只有跟单经理可以操作；ERP 密钥不能（api_key_scope）", 404: f"{what}不存在"})
    def change(party_id, body):
        """Deactivating cuts the party's WeChat users off at once: their tokens, fresh logins,
        reports, uploads and scans are refused (401 party_deactivated) until it is reactivated.
        The reason is recorded in the audit log."""
        return masterdata.set_active(current_actor(), model, party_id, active, body["reason"].strip())

    return change


for _kind in _PARTIES:
    for _active in (False, True):
        _party_route(_kind, _active)


@bp.get("/wechat-users")
@bp.auth_required(api_auth)
@staff_role(*WRITE_ROLES)
@bp.input(WechatUserQuery, location="query", arg_name="args")
@bp.output(WechatUserPage)
def list_wechat_users(args):
    """The mini program's users, by party or role (to find the one to unbind)."""
    filters = {k: args.get(k) for k in ("supplier_id", "customer_id", "role")}
    return paginate(auth_service.wechat_users_query(**filters), args)


@bp.post("/wechat-users/<int:user_id>/unbind")
@bp.auth_required(api_auth)
@staff_role(*WRITE_ROLES)
@bp.input(ReasonIn, arg_name="body")
@bp.output(WechatUserChanged)
@bp.doc(responses={403: "只有跟单经理可以操作", 404: "微信用户不存在"})
def unbind_wechat_user(user_id, body):
    """Take one WeChat user off its supplier or customer: it becomes unbound and every token it
    holds stops working at once."""
    return auth_service.unbind(current_actor(), user_id, body["reason"].strip())


@bp.post("/wechat-users/<int:user_id>/revoke-tokens")
@bp.auth_required(api_auth)
@staff_role(*WRITE_ROLES)
@bp.input(ReasonIn, arg_name="body")
@bp.output(WechatUserChanged)
@bp.doc(responses={403: "只有跟单经理可以操作", 404: "微信用户不存在"})
def revoke_wechat_tokens(user_id, body):
    """Every token the user holds stops working (a lost phone); it stays bound and logs in again."""
    return auth_service.revoke_tokens(current_actor(), user_id, body["reason"].strip())
