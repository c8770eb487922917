"""Mini program: the customer's orders, their node timeline with QC photos, node subscriptions.

Supplier identity and costs are masked in everything here (miniprogram_api/schemas.py). Object routes
answer 404 for anything that is not the caller's customer's, drafts included.
"""
from apiflask import APIBlueprint, Schema
from apiflask.fields import UUID, Dict, List, String
from apiflask.validators import Length, OneOf
from flask import current_app, g

from app.domain.vocabulary import CUSTOMER_ORDER_STATES
from app.services import access, customer_orders, subscriptions
from app.web.auth import mp_auth, wechat_role
from app.web.idempotency import idempotent
from app.web.paging import PageIn, paginate
from miniprogram_api.schemas import CustomerOrderPageOut, CustomerSubscribeOut, CustomerTimelineOut

bp = APIBlueprint("mp_customer", __name__, tag="小程序 · 客户")

MAX_TEMPLATES = 5


class CustomerOrderQuery(PageIn):
    state = String(validate=OneOf(CUSTOMER_ORDER_STATES), metadata={"description": "订单状态"})


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


@bp.get("/orders")
@bp.auth_required(mp_auth)
@wechat_role("customer")
@bp.input(CustomerOrderQuery, location="query", arg_name="args")
@bp.output(CustomerOrderPageOut)
@bp.doc(responses={403: "未绑定客户"})
def list_orders(args):
    """My orders: open ones first, by due date."""
    query = customer_orders.orders_query(g.wechat_user, args.get("state"))
    return paginate(query, args, load=customer_orders.summarise)


@bp.get("/orders/<int:order_id>")
@bp.auth_required(mp_auth)
@bp.output(CustomerTimelineOut)
@bp.doc(responses={404: "订单不存在或不属于你的单位"})
def order_timeline(order_id):
    """The order's timeline: nodes with state, colour, dates and QC photos; progress, due date, ETA."""
    return customer_orders.timeline(access.customer_order(g.wechat_user, order_id, customer_orders.ORDER_FIELDS))


@bp.post("/orders/<int:order_id>/subscriptions")
@bp.auth_required(mp_auth)
@bp.input(CustomerSubscribeIn, arg_name="body")
@idempotent("order.subscribe", target="{order_id}")
@bp.output(CustomerSubscribeOut)
@bp.doc(responses={404: "订单不存在或不属于你的单位",
                   422: "节点代码不存在（unknown_nodes）、模板未配置（unknown_template）或参数不正确"})
def subscribe(order_id, body):
    """Record the result of wx.requestSubscribeMessage: each accept allows one message of that
    template; the listed nodes of this order are the ones to be told about."""
    order = access.customer_order(g.wechat_user, order_id)
    return subscriptions.record(g.wechat_user, order, body["accepted"], body["nodes"],
                                current_app.config["SUBSCRIBE_TEMPLATE_IDS"])
