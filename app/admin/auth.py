"""Staff login for the dashboard (session cookie); ERP callers use API keys instead."""
from apiflask import APIBlueprint, Schema
from apiflask.fields import String
from apiflask.validators import Length
from flask import g, session

from app.admin.schemas import CallerOut
from app.services import auth as auth_service
from app.web.auth import api_auth

bp = APIBlueprint("admin_auth", __name__, tag="管理端 · 登录")


class StaffLoginIn(Schema):
    username = String(required=True, validate=Length(1, 64))
    password = String(required=True, validate=Length(1, 128))


def _staff_out(user):
    return {"kind": "staff", "id": user.id, "name": user.display_name, "role": user.role}


@bp.post("/auth/login")
@bp.input(StaffLoginIn, arg_name="body")
@bp.output(CallerOut)
@bp.doc(responses={401: "用户名或密码错误"})
def login(body):
    """Check the password and start a dashboard session (HttpOnly cookie)."""
    user = auth_service.authenticate_staff(body["username"], body["password"])
    session.clear()
    session["staff_id"] = user.id
    session.permanent = True
    return _staff_out(user)


@bp.post("/auth/logout")
@bp.output({}, status_code=204)
def logout():
    """End the dashboard session."""
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
