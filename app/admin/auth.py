"""Staff login for the dashboard (session cookie); ERP callers use API keys instead."""
from apiflask import APIBlueprint, Schema
from apiflask.fields import String
from apiflask.validators import Length
from flask import g, session

from app.admin.schemas import CallerOut
from app.domain.errors import Unauthorized
from app.services import auth as auth_service
from app.web import throttle
from app.web.auth import api_auth, session_staff, start_staff_session

bp = APIBlueprint("admin_auth", __name__, tag="管理端 · 登录")


class StaffLoginIn(Schema):
    username = String(required=True, validate=Length(1, 64))
    password = String(required=True, validate=Length(1, 128))


def _staff_out(user):
    return {"kind": "staff", "id": user.id, "name": user.display_name, "role": user.role}


@bp.post("/auth/login")
@bp.input(StaffLoginIn, arg_name="body")
@bp.output(CallerOut)
@bp.doc(responses={401: "用户名或密码错误（invalid_credentials）",
                   429: "失败次数过多，15 分钟内不能再从此地址登录（login_locked）"})
def login(body):
    """Check the password and start a dashboard session (HttpOnly cookie, at most
    STAFF_SESSION_HOURS long). Five failures for one username from one address (or twenty from
    one address) lock that address for 15 minutes."""
    username = body["username"]
    throttle.refuse_if_locked(username)
    try:
        user = auth_service.authenticate_staff(username, body["password"])
    except Unauthorized:
        throttle.failed(username)
        raise
    throttle.succeeded(username)
    start_staff_session(user)
    return _staff_out(user)


@bp.post("/auth/logout")
@bp.output({}, status_code=204)
def logout():
    """End the dashboard session, server-side too: every session cookie of this user issued so
    far stops working (a copied cookie included)."""
    staff = session_staff()
    if staff is not None:
        auth_service.end_staff_sessions(staff)
    session.clear()
    return ""


@bp.get("/me")
@bp.auth_required(api_auth)
@bp.output(CallerOut)
def me():
    """Who the API thinks is calling."""
    if g.staff is not None:
        return _staff_out(g.staff)
    return {"kind": "api_key", "id": g.api_key.id, "name": g.api_key.name, "role": None}
