"""GET/POST /wechat/work/callback: the WeCom app's callback URL, where the manager bot listens.

GET is the URL verification WeCom makes when the callback is saved in its console (the answer is
the decrypted echostr, as plain text); POST is a message a staff member sent the app (the answer
is the encrypted passive reply, XML, or an empty body). The crypto and the commands are not the
web layer's: they reach it as `current().wecom_callback`, installed by create_app
(bot/callback.py, app/services/bot_commands.py). A wrong signature is 403, an unreadable call
400, an unconfigured callback 503 (app/web/errors.py maps the domain errors).
"""
from apiflask import APIBlueprint
from flask import Response, request

from app.extensions import current

bp = APIBlueprint("wecom_callback", __name__, tag="企业微信")


@bp.get("/wechat/work/callback")
@bp.doc(hide=True)  # WeCom's own protocol (signed query, XML body), not part of our API
def verify_url():
    echo = current().wecom_callback.verify_url(request.args)
    return Response(echo, content_type="text/plain; charset=utf-8")


@bp.post("/wechat/work/callback")
@bp.doc(hide=True)
def receive():
    answer = current().wecom_callback.answer(request.args, request.get_data(cache=False))
    return Response(answer, content_type="application/xml; charset=utf-8")
