"""Request authentication for the two API families, declared so OpenAPI shows it.

- `mp_auth`: mini-program bearer token → the WechatUser (g.wechat_user).
- `api_auth`: ERP API key (bearer) or a staff dashboard session → g.staff / g.api_key.
"""
import time
from functools import wraps

from apiflask import HTTPTokenAuth
from flask import current_app, g, session

from app.domain.vocabulary import WECHAT_ROLE_NAMES
from app.models import StaffUser
from app.services import auth as auth_service
from app.services.actors import Actor
from app.web.errors import ApiError


class TokenAuth(HTTPTokenAuth):
    """Always run our verifier, also without a header, so it can fall back to the staff
    session and answer with our own error codes."""

    def authenticate(self, auth, stored_password):
        return self.ensure_sync(self.verify_token_callback)(getattr(auth, "token", None))


mp_auth = TokenAuth(
    scheme="Bearer",
    security_scheme_name="MiniProgramToken",
    description="Token from POST /mp/v1/auth/login",
)
api_auth = TokenAuth(
    scheme="Bearer",
    security_scheme_name="ErpApiKey",
    description="ERP API key (`flask --app wsgi create-api-key NAME`); staff use the session cookie (StaffSession) instead",
)

def _need_login():
    return ApiError(401, "unauthorized", "请先登录")


@mp_auth.verify_token
def _verify_mp_token(token):
    # Who the request is, from scratch: g outlives a request when a test holds the app context.
    g.staff = g.api_key = g.wechat_user = None
    if not token:
        raise _need_login()
    cfg = current_app.config
    if auth_service.is_api_key(token):  # the prefix tells; the signature is checked once, below
        raise ApiError(401, "wrong_credential", "这是 ERP 接口密钥，不能用于小程序接口；请先通过 /mp/v1/auth/login 登录")
    g.wechat_user = auth_service.user_for_token(token, cfg["SECRET_KEY"], cfg["TOKEN_TTL_SECONDS"])
    return g.wechat_user


@api_auth.verify_token
def _verify_api_caller(token):
    g.staff = g.api_key = g.wechat_user = None
    if token:
        if auth_service.credential_kind(token, current_app.config["SECRET_KEY"]) == "mini_program":
            raise ApiError(401, "wrong_credential", "这是小程序登录令牌，不能用于管理接口；请使用 ERP 接口密钥或管理端登录")
        g.api_key = auth_service.api_key_for(token)
        if g.api_key is None:
            raise ApiError(401, "invalid_api_key", "API 密钥无效或已吊销")
        return g.api_key
    g.staff = session_staff()
    if g.staff is None:
        raise _need_login()
    return g.staff


def start_staff_session(user):
    """The dashboard session cookie: who, which session generation (logout bumps it), since when."""
    session.clear()
    session.update(staff_id=user.id, v=user.session_version, at=int(time.time()))
    session.permanent = True


def session_staff():
    """The active staff user of a live session: not logged out since, and younger than
    STAFF_SESSION_HOURS however busy (the cookie's own lifetime only slides)."""
    staff_id, started = session.get("staff_id"), session.get("at")
    if not staff_id or not isinstance(started, int):
        return None
    if time.time() - started > current_app.config["STAFF_SESSION_HOURS"] * 3600:
        return None
    staff = StaffUser.get_or_none((StaffUser.id == staff_id) & StaffUser.active)
    if staff is None or staff.session_version != session.get("v"):
        return None
    return staff


def wechat_role(*roles):
    """Allow only mini-program users bound as one of `roles` (after mp_auth)."""

    def decorate(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            role = g.wechat_user.role
            if role == "unbound":
                raise ApiError(403, "not_bound", "请先使用邀请码绑定单位")
            if role not in roles:
                allowed = "或".join(WECHAT_ROLE_NAMES[r] for r in roles)
                raise ApiError(403, "wrong_role", f"此功能仅供{allowed}使用，你的微信绑定的是{WECHAT_ROLE_NAMES[role]}")
            return view(*args, **kwargs)

        wrapper.roles_limited = True  # for OpenAPI (app/web/openapi.py): the route can answer 403
        return wrapper

    return decorate


def staff_role(*roles, key_scope=None):
    """Allow staff with one of `roles` (admin always); an ERP key only when `key_scope` is one of
    its scopes (None: staff only). After api_auth."""

    def decorate(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            if g.api_key is not None:
                if key_scope is None or key_scope not in g.api_key.scopes.split():
                    raise ApiError(403, "api_key_scope", "该 API 密钥无权执行此操作")
            elif g.staff.role not in roles + ("admin",):
                raise ApiError(403, "forbidden", "当前角色无权执行此操作")
            return view(*args, **kwargs)

        wrapper.roles_limited = True  # for OpenAPI (app/web/openapi.py): 403, and no ERP key without a scope
        wrapper.staff_only = key_scope is None
        return wrapper

    return decorate


def current_actor():
    """The Actor behind this request, for audit entries and idempotency keys."""
    if g.get("wechat_user") is not None:
        return Actor.wechat(g.wechat_user)
    if g.get("staff") is not None:
        return Actor.staff(g.staff)
    if g.get("api_key") is not None:
        return Actor.api_key(g.api_key)
    return Actor.system()
