"""Manager and ERP API: suppliers, customers, and the invites their WeChat users bind with."""
from apiflask import APIBlueprint, Schema
from apiflask.fields import Boolean, Integer, String
from apiflask.validators import Length, Range, Regexp
from flask import current_app, g
from marshmallow import ValidationError, validates_schema

from app.admin.schemas import CustomerPage, InviteOut, PartyOut, SupplierOut, SupplierPage
from app.services import masterdata
from app.web.auth import api_auth, current_actor, staff_role
from app.web.paging import PageIn, paginate

bp = APIBlueprint("admin_masterdata", __name__, tag="管理端 · 基础资料")

WRITE_ROLES = ("manager",)


class PartyIn(Schema):
    code = String(required=True, validate=[Length(1, 32), Regexp(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$",
                                                                 error="编码只能用字母、数字和 _ . -")])
    name = String(required=True, validate=Length(1, 100))
    contact_name = String(allow_none=True, validate=Length(max=50))
    contact_phone = String(allow_none=True, validate=[Length(max=32), Regexp(r"^[0-9+\-() ]*$",
                                                                             error="电话只能包含数字和 + - ( )")])


class SupplierQuery(PageIn):
    active = Boolean()
    q = String(validate=Length(1, 64), metadata={"description": "part of the code or name"})


class CustomerQuery(PageIn):
    q = String(validate=Length(1, 64), metadata={"description": "part of the code or name"})


class InviteIn(Schema):
    supplier_id = Integer(validate=Range(min=1))
    customer_id = Integer(validate=Range(min=1))
    max_uses = Integer(load_default=1, validate=Range(1, 50), metadata={"description": "how many WeChat users may bind"})
    ttl_days = Integer(validate=Range(1, 90), metadata={"description": "default INVITE_TTL_DAYS (14)"})

    @validates_schema
    def exactly_one_party(self, data, **kwargs):
        if ("supplier_id" in data) == ("customer_id" in data):
            raise ValidationError("请指定 supplier_id 或 customer_id 之一", field_name="supplier_id")


@bp.post("/suppliers")
@bp.auth_required(api_auth)
@staff_role(*WRITE_ROLES)
@bp.input(PartyIn, arg_name="body")
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


@bp.post("/customers")
@bp.auth_required(api_auth)
@staff_role(*WRITE_ROLES)
@bp.input(PartyIn, arg_name="body")
@bp.output(PartyOut, status_code=201)
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
    return paginate(masterdata.customers_query(args.get("q")), args)


@bp.post("/invites")
@bp.auth_required(api_auth)
@staff_role(*WRITE_ROLES)
@bp.input(InviteIn, arg_name="body")
@bp.output(InviteOut, status_code=201)
@bp.doc(responses={403: "当前角色无权发放邀请码", 404: "供应商或客户不存在", 409: "供应商已停用（supplier_inactive）"})
def create_invite(body):
    """An invite code for a supplier's or customer's WeChat users to bind with (POST /mp/v1/auth/bind)."""
    invite = masterdata.issue_invite(
        current_actor(), supplier_id=body.get("supplier_id"), customer_id=body.get("customer_id"),
        max_uses=body["max_uses"], ttl_days=body.get("ttl_days") or current_app.config["INVITE_TTL_DAYS"],
        staff=g.get("staff"),
    )
    return invite, 201
