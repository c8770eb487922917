"""Mini-program login and invite binding."""
from apiflask import APIBlueprint, Schema
from apiflask.fields import Integer, Nested, String
from apiflask.validators import Length
from flask import current_app, g

from app.extensions import current
from app.models import WechatUser
from app.services import auth as auth_service
from app.web.auth import mp_auth
from app.web.errors import ApiError

bp = APIBlueprint("mp_auth", __name__, tag="小程序 · 登录")


class LoginIn(Schema):
    code = String(required=True, validate=Length(1, 128), metadata={"description": "wx.login() code"})


class DemoLoginIn(Schema):
    openid = String(required=True, validate=Length(1, 64), metadata={"description": "a seeded demo user, e.g. demo-supplier-1"})


class BindIn(Schema):
    invite_code = String(required=True, validate=Length(1, 32))


class PartyRef(Schema):
    id = Integer()
    name = String()


class UserOut(Schema):
    id = Integer()
    role = String(metadata={"description": "supplier | customer | unbound"})
    display_name = String(allow_none=True)
    supplier = Nested(PartyRef, attribute="supplier_ref", metadata={"description": "when role is supplier"})
    customer = Nested(PartyRef, attribute="customer_ref", metadata={"description": "when role is customer"})


class LoginOut(Schema):
    token = String()
    expires_in = Integer(metadata={"description": "seconds"})
    user = Nested(UserOut)


def _session_out(user):
    auth_service.refuse_deactivated(user)  # a deactivated party's users get no token at all
    cfg = current_app.config
    return {
        "token": auth_service.issue_token(user, cfg["SECRET_KEY"]),
        "expires_in": cfg["TOKEN_TTL_SECONDS"],
        "user": _user(user),
    }


@bp.post("/auth/login")
@bp.input(LoginIn, arg_name="body")
@bp.output(LoginOut)
@bp.doc(responses={400: "登录凭证无效", 503: "微信服务不可用或未配置"})
def login(body):
    """wx.login code → our token. WeChat's session_key is never returned or logged."""
    if not current_app.config["WECHAT_ENABLED"]:
        raise ApiError(503, "wechat_not_configured", "未配置微信小程序，请使用演示登录")
    identity = current().wechat_login(body["code"])
    user = auth_service.login_wechat(identity["openid"], identity.get("unionid"))
    return _session_out(user)


@bp.post("/auth/demo-login")
@bp.input(DemoLoginIn, arg_name="body")
@bp.output(LoginOut)
@bp.doc(responses={404: "演示登录未开放（配置了微信或生产环境）"})
def demo_login(body):
    """Log in as a seeded demo user, to try the API without WeChat. Refused in production and
    whenever WeChat credentials are configured."""
    if not current_app.config["DEMO_LOGIN_ENABLED"]:
        raise ApiError(404, "demo_login_disabled", "演示登录未开放")
    user = WechatUser.get_or_none(
        (WechatUser.openid == body["openid"]) & WechatUser.openid.startswith("demo-")
    )
    if user is None:
        raise ApiError(404, "not_found", "演示用户不存在，请先运行 flask --app wsgi demo")
    return _session_out(user)


@bp.post("/auth/bind")
@bp.auth_required(mp_auth)
@bp.input(BindIn, arg_name="body")
@bp.output(UserOut)
@bp.doc(responses={400: "邀请码无效", 409: "已绑定其他单位"})
def bind(body):
    """Bind this WeChat user to the supplier or customer that issued the invite."""
    return _user(auth_service.bind_invite(g.wechat_user, body["invite_code"].strip()))


@bp.get("/me")
@bp.auth_required(mp_auth)
@bp.output(UserOut)
def me():
    """The logged-in mini-program user."""
    return _user(g.wechat_user)


def _user(user):
    """Only the party the user is bound as: `supplier` for a supplier, `customer` for a customer,
    neither for an unbound user (a field without its attribute is left out of the answer)."""
    if user.role == "supplier":
        user.supplier_ref = user.supplier
    elif user.role == "customer":
        user.customer_ref = user.customer
    return user
