"""Staff API: the staff list, and binding a staff user to their WeCom member (for alerts and the
manager bot). Admins and managers only; a manager cannot bind an admin."""
from apiflask import APIBlueprint, Schema
from apiflask.fields import String
from apiflask.validators import Length
from flask import g

from app.admin.schemas import StaffChanged, StaffPage
from app.services import auth as auth_service
from app.web.auth import api_auth, current_actor, staff_role
from app.web.paging import PageIn, paginate

bp = APIBlueprint("admin_staff", __name__, tag="管理端 · 员工")

ROLES = ("manager",)  # and admin


class WecomIn(Schema):
    wecom_userid = String(required=True, allow_none=True, validate=Length(max=64),
                          metadata={"description": "企业微信成员账号（UserID）；null 或空串解除绑定"})


@bp.get("/staff")
@bp.auth_required(api_auth)
@staff_role(*ROLES)
@bp.input(PageIn, location="query", arg_name="args")
@bp.output(StaffPage)
def list_staff(args):
    """Staff users with their roles and WeCom members."""
    return paginate(auth_service.staff_query(), args)


@bp.put("/staff/<int:staff_id>/wecom")
@bp.auth_required(api_auth)
@staff_role(*ROLES)
@bp.input(WecomIn, arg_name="body")
@bp.output(StaffChanged)
@bp.doc(responses={403: "当前角色无权绑定；经理不能绑定管理员（forbidden）", 404: "员工不存在",
                   409: "该企业微信账号已绑定其他员工（wecom_userid_taken）"})
def bind_wecom(staff_id, body):
    """Bind a staff user to a WeCom member: WeCom alerts go to that member, and the manager bot in
    WeCom answers them as this user. null (or "") unbinds."""
    return auth_service.bind_wecom(current_actor(), staff_id, body["wecom_userid"], by=g.staff)
