"""Manager API: node templates per customer and/or product."""
from apiflask import APIBlueprint, Schema
from apiflask.fields import List, Nested, String
from apiflask.validators import Length, Range, Regexp

from app.admin.schemas import TemplateOut, TemplatePage
from app.services import masterdata
from app.web.auth import api_auth, current_actor, staff_role
from app.web.fields import Id, Integer, Number
from app.web.paging import PageIn, paginate
from app.web.validation import FlatErrors

bp = APIBlueprint("admin_node_templates", __name__, tag="管理端 · 节点模板")

WRITE_ROLES = ("manager",)


class TemplateItemIn(Schema):
    code = String(required=True, validate=[
        Length(1, 32), Regexp(r"^[a-z][a-z0-9_]*$", error="节点编码只能用小写字母、数字和下划线")])
    name = String(required=True, validate=Length(1, 32))
    plan_share = Number(required=True, validate=Range(0, 1),
                       metadata={"description": "where in the plan the node is due: 0 = start, 1 = due date"})
    expected_days = Integer(load_default=1, validate=Range(0, 365))


class TemplateIn(FlatErrors):
    name = String(required=True, validate=Length(1, 64))
    customer_id = Id(allow_none=True)
    product_code = String(allow_none=True, validate=Length(1, 64))
    items = List(Nested(TemplateItemIn), required=True, validate=Length(1, 30))


@bp.post("/node-templates")
@bp.auth_required(api_auth)
@staff_role(*WRITE_ROLES, key_scope="orders")
@bp.input(TemplateIn, arg_name="body")
@bp.output(TemplateOut, status_code=201)
@bp.doc(responses={403: "当前角色无权修改模板", 404: "客户不存在", 409: "该客户/产品已有模板（template_exists）"})
def create_template(body):
    """A node template for a customer, a product code, or both. New orders use the most specific
    one (customer + product, product, customer, then the default); existing orders keep theirs."""
    return masterdata.with_items([masterdata.create_template(current_actor(), body)])[0], 201


@bp.get("/node-templates")
@bp.auth_required(api_auth)
@bp.input(PageIn, location="query", arg_name="args")
@bp.output(TemplatePage)
def list_templates(args):
    """Node templates, the default one first."""
    return paginate(masterdata.templates_query(), args, load=masterdata.with_items)
