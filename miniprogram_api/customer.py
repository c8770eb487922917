"""Mini program: the customer's orders, their node timeline with QC photos, node subscriptions.

Supplier identity and costs are masked in everything here (app/services/views.py). Object routes
answer 404 for anything that is not the caller's customer's, drafts included.
"""
from apiflask import APIBlueprint, Schema
from apiflask.fields import UUID, Boolean, Dict, Integer, List, Nested, String
from apiflask.validators import Length, OneOf
from flask import current_app, g

from app.models.orders import ORDER_STATES
from app.paging import PageIn, page_of, paginate
from app.services import access, subscriptions, views
from app.webauth import current_actor, mp_auth, wechat_role

bp = APIBlueprint("mp_customer", __name__, url_prefix="/mp/v1", tag="小程序 · 客户")

MAX_TEMPLATES = 5
VISIBLE_STATES = tuple(s for s in ORDER_STATES if s != "draft")


class CustomerOrderQuery(PageIn):
    state = String(validate=OneOf(VISIBLE_STATES), metadata={"description": "订单状态"})


class CustomerSubscribeIn(Schema):
    accepted = Dict(
        keys=String(validate=Length(1, 64)),
        values=String(validate=OneOf(subscriptions.ANSWERS)),
        required=True,
        validate=Length(max=MAX_TEMPLATES),
        metadata={"description": "wx.requestSubscribeMessage 的结果：{模板 id: accept | acceptWithAudio | reject | "
                                 f"ban | filter}}，最多 {MAX_TEMPLATES} 个；每个 accept 可发送一次该模板消息"},
    )
    nodes = List(String(validate=Length(1, 32)), load_default=list, validate=Length(max=20),
                 metadata={"description": "要订阅的节点代码，如 qc、shipped"})
    client_id = UUID(required=True, metadata={"description": "手机生成的 UUID；重发同一请求只记一次"})


class CustomerPhotoOut(Schema):
    id = Integer()
    url = String(metadata={"description": "去除 EXIF 的展示图，短时有效的签名地址"})
    thumb_url = String(allow_none=True)
    status = String()
    purpose = String()
    created_at = String()


class CustomerNodeOut(Schema):
    code = String()
    name = String()
    state = String(metadata={"description": "pending | in_progress | done | delayed | awaiting_confirmation"})
    state_label = String()
    colour = String(metadata={"description": "grey | yellow | green | red | blue"})
    planned_date = String(metadata={"description": "YYYY-MM-DD"})
    done_at = String(allow_none=True, metadata={"description": "ISO 8601, +08:00"})
    done_by = String(allow_none=True, metadata={"description": "只说“工厂”“跟单”或“质检”，不显示单位或个人"})
    photos = List(Nested(CustomerPhotoOut))


class CustomerOrderItemOut(Schema):
    id = Integer()
    order_no = String()
    product_name = String()
    quantity = Integer()
    unit = String()
    due_date = String(metadata={"description": "YYYY-MM-DD"})
    state = String()
    state_label = String()
    progress = Integer(metadata={"description": "0–100"})
    eta_date = String(allow_none=True, metadata={"description": "预计完成日期"})
    late = Boolean(metadata={"description": "已过交期或预计晚于交期"})
    current_node = String(allow_none=True, metadata={"description": "当前节点名称"})
    current_node_code = String(allow_none=True)


CustomerOrderPageOut = page_of(CustomerOrderItemOut, "CustomerOrderPageOut")


class CustomerTimelineOut(CustomerOrderItemOut):
    nodes = List(Nested(CustomerNodeOut))


class CustomerSubscribeOut(Schema):
    quota = Dict(keys=String(), values=Integer(), metadata={"description": "{模板 id: 剩余可发送次数}"})
    nodes = List(String(), metadata={"description": "该订单已订阅的节点代码"})


@bp.get("/orders")
@bp.auth_required(mp_auth)
@wechat_role("customer")
@bp.input(CustomerOrderQuery, location="query", arg_name="args")
@bp.output(CustomerOrderPageOut)
@bp.doc(responses={403: "未绑定客户"})
def list_orders(args):
    """My orders: open ones first, by due date."""
    return paginate(views.customer_orders(g.wechat_user, args.get("state")), args, render_page=views.customer_order_items)


@bp.get("/orders/<int:order_id>")
@bp.auth_required(mp_auth)
@bp.output(CustomerTimelineOut)
@bp.doc(responses={404: "订单不存在或不属于你的单位"})
def order_timeline(order_id):
    """The order's timeline: nodes with state, colour, dates and QC photos; progress, due date, ETA."""
    return views.customer_timeline(access.customer_order(g.wechat_user, order_id))


@bp.post("/orders/<int:order_id>/subscriptions")
@bp.auth_required(mp_auth)
@bp.input(CustomerSubscribeIn, arg_name="body")
@bp.output(CustomerSubscribeOut)
@bp.doc(responses={404: "订单不存在或不属于你的单位", 422: "节点代码不存在（unknown_nodes）、模板未配置（unknown_template）或参数不正确"})
def subscribe(order_id, body):
    """Record the result of wx.requestSubscribeMessage: each accept allows one message of that
    template; the listed nodes of this order are the ones to be told about."""
    order = access.customer_order(g.wechat_user, order_id)
    return subscriptions.record(current_actor(), g.wechat_user, order, body["accepted"], body["nodes"],
                                str(body["client_id"]), current_app.config["SUBSCRIBE_TEMPLATE_IDS"])
