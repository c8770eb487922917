"""Recording what a customer answered in wx.requestSubscribeMessage.

A one-time subscribe message allows exactly one send per accept, so every "accept" adds one to the
user's quota of that template (notifications.add_quota); the node subscriptions say which of the
order's nodes the user wants to hear about. Sending is the notification jobs' business.
"""
from app.domain.errors import Invalid
from app.extensions import db
from app.models import NodeInstance, NodeSubscription, SubscribeQuota
from app.services import notifications

# WeChat's per-template answers; only these two grant a send.
ACCEPTED = ("accept", "acceptWithAudio")
ANSWERS = ACCEPTED + ("reject", "ban", "filter")


def record(user, order, accepted, node_codes, template_ids):
    """Add quota for accepted templates and subscribe to the listed nodes of this order.

    The quota must match WeChat's own count exactly, so only templates we send are counted (the
    web edge makes a retried request, same client_id, count its accepts once).
    → {"quota": {template: remaining}, "nodes": [subscribed codes]}."""
    unknown = [t for t in accepted if t not in template_ids]
    if unknown:
        raise Invalid("unknown_template", f"未配置的订阅消息模板：{'、'.join(unknown)}", field="accepted")
    with db.atomic():
        _subscribe(user, order, node_codes)
        for template_id, answer in accepted.items():
            if answer in ACCEPTED:
                notifications.add_quota(user, template_id)
    return _state(user, order, accepted)


def _subscribe(user, order, node_codes):
    codes = list(dict.fromkeys(node_codes))
    known = {n.code for n in NodeInstance.select(NodeInstance.code).where(NodeInstance.order == order.id)}
    unknown = [c for c in codes if c not in known]
    if unknown:
        raise Invalid("unknown_nodes", f"订单没有这些节点：{'、'.join(unknown)}", field="nodes",
                       extra={"nodes": unknown})
    if codes:
        # A node subscribed before stays one row (the unique index ignores the repeat).
        (NodeSubscription.insert_many([{"user": user.id, "order": order.id, "node_code": c} for c in codes])
         .on_conflict_ignore().execute())


def _state(user, order, accepted):
    """What the user has now: remaining sends per template asked about, subscribed nodes."""
    quota = {row.template_id: row.remaining
             for row in SubscribeQuota.select().where((SubscribeQuota.user == user.id)
                                                      & SubscribeQuota.template_id.in_(list(accepted)))}
    subscribed = (NodeSubscription.select(NodeSubscription.node_code)
                  .where((NodeSubscription.user == user.id) & (NodeSubscription.order == order.id))
                  .order_by(NodeSubscription.id))
    return {"quota": {t: quota.get(t, 0) for t in accepted}, "nodes": [s.node_code for s in subscribed]}
