"""Mini-program login and invite binding."""
import logging

from apiflask import APIBlueprint, Schema
from apiflask.fields import Dict, Integer, Nested, String
from apiflask.validators import Length
from flask import current_app, g
from wechatpy.exceptions import WeChatClientException

from app.errors import ApiError
from app.extensions import current
from app.models import WechatUser
from app.services import auth as auth_service
from app.webauth import mp_auth
from bot import wechat

log = logging.getLogger(__name__)
bp = APIBlueprint("mp_auth", __name__, url_prefix="/mp/v1", tag="小程序 · 登录")


class LoginIn(Schema):
    code = String(required=True, validate=Length(1, 128), metadata={"description": "wx.login() code"})


class DemoLoginIn(Schema):
    openid = String(required=True, validate=Length(1, 64), metadata={"description": "a seeded demo user, e.g. demo-supplier-1"})


class BindIn(Schema):
    invite_code = String(required=True, validate=Length(1, 32))


class UserOut(Schema):
    id = Integer()
    role = String(metadata={"description": "supplier | customer | unbound"})
    display_name = String(allow_none=True)
    supplier = Dict(metadata={"description": "{id, name} when role is supplier"})
    customer = Dict(metadata={"description": "{id, name} when role is customer"})


class LoginOut(Schema):
    token = String()
    expires_in = Integer(metadata={"description": "seconds"})
    user = Nested(UserOut)


# WeChat's answers to a bad code2Session, as our users should read them.
_LOGIN_ERRORS = {
    40029: (400, "invalid_login_code", "登录凭证无效或已使用，请重新打开小程序"),
    40163: (400, "invalid_login_code", "登录凭证已使用，请重新打开小程序"),
    45011: (429, "login_rate_limited", "登录过于频繁，请稍后再试"),
    40226: (403, "login_blocked", "该微信账号暂时无法登录"),
}


def _session_out(user):
    cfg = current_app.config
    return {
        "token": auth_service.issue_token(user, cfg["SECRET_KEY"]),
        "expires_in": cfg["TOKEN_TTL_SECONDS"],
        "user": auth_service.user_view(user),
    }


@bp.post("/auth/login")
@bp.input(LoginIn, arg_name="body")
@bp.output(LoginOut)
@bp.doc(responses={400: "登录凭证无效", 503: "微信服务不可用或未配置"})
def login(body):
    """wx.login code → our token. WeChat's session_key is never returned or logged."""
    if not current_app.config["WECHAT_ENABLED"]:
        raise ApiError(503, "wechat_not_configured", "未配置微信小程序，请使用演示登录")
    try:
        identity = wechat.code_to_session(current(), body["code"])
    except WeChatClientException as exc:
        status, code, message = _LOGIN_ERRORS.get(exc.errcode, (503, "wechat_unavailable", "微信服务暂时不可用，请稍后再试"))
        log.warning("code2session refused", extra={"errcode": exc.errcode})
        raise ApiError(status, code, message)
    except wechat.WeChatUnavailable as exc:
        log.warning("code2session unavailable: %s", exc)
        raise ApiError(503, "wechat_unavailable", "微信服务暂时不可用，请稍后再试")
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
    user = auth_service.bind_invite(g.wechat_user, body["invite_code"].strip())
    return auth_service.user_view(user)


@bp.get("/me")
@bp.auth_required(mp_auth)
@bp.output(UserOut)
def me():
    """The logged-in mini-program user."""
    return auth_service.user_view(g.wechat_user)
