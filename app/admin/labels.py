"""Manager API: printable QR labels (a task's PNG, an order's A4 sheet)."""
from apiflask import APIBlueprint
from flask import Response, current_app

from app import labels
from app.models import Task
from app.services.access import staff_order, staff_task
from app.web.auth import api_auth

bp = APIBlueprint("admin_labels", __name__, tag="管理端 · 标签")


def _base_url():
    return current_app.config["PUBLIC_BASE_URL"]


def _label_font():
    return current_app.config["LABEL_FONT_PATH"]


@bp.get("/tasks/<int:task_id>/label.png")
@bp.auth_required(api_auth)
@bp.doc(responses={200: {"description": "the task's QR label", "content": {"image/png": {}}}, 404: "任务不存在"})
def task_label(task_id):
    """The task's QR label (PNG). The QR opens the task in the mini program.

    Chinese fields need a CJK TrueType font (LABEL_FONT_PATH or one fontconfig finds; `make setup`
    installs one); without one the PNG shows the task number, codes, quantity and due date."""
    task = staff_task(task_id)
    png = labels.task_png(task, _base_url(), font_path=_label_font())
    return Response(png, mimetype="image/png",
                    headers={"Content-Disposition": f'inline; filename="{task.task_no}.png"'})


@bp.get("/orders/<int:order_id>/labels.pdf")
@bp.auth_required(api_auth)
@bp.doc(responses={200: {"description": "A4 label sheet", "content": {"application/pdf": {}}}, 404: "订单不存在"})
def order_labels(order_id):
    """All of the order's task labels on printable A4 sheets (10 per page, with cutting guides).

    The Chinese font is embedded (the subset the sheet uses), so any PDF viewer shows it."""
    order = staff_order(order_id)
    pdf = labels.order_pdf(order, list(order.tasks.order_by(Task.id)), _base_url(), font_path=_label_font())
    return Response(pdf, mimetype="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="{order.order_no}-labels.pdf"'})
