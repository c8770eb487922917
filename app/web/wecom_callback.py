"""GET/POST /wechat/work/callback: the WeCom app's callback URL, where the manager bot listens.

GET is the URL verification WeCom makes when the callback is saved in its console (the answer is
the decrypted echostr, as plain text); POST is a message a staff member sent the app (the answer
is the encrypted passive reply, XML, or an empty body). The crypto and the commands are not the
web layer's: they reach it as `current().wecom_callback`, installed by create_app
(bot/callback.py, app/services/bot_commands.py). A wrong signature is 403, an unreadable call
400; without the callback settings the route is not there (404) (app/web/errors.py maps the domain errors).
"""
from apiflask import APIBlueprint
from flask import Response, request

from app.extensions import current

bp = APIBlueprint("wecom_callback", __name__, tag="企业微信")


ERRORS = {400: "缺少签名参数，或无法解密、无法解析（bad_callback）", 403: "签名或企业 ID 不符（bad_signature）",
          404: "未配置 WECOM_TOKEN、WECOM_ENCODING_AES_KEY、WECOM_CORP_ID（wecom_callback_off）"}


@bp.get("/wechat/work/callback")
@bp.doc(responses={200: {"description": "the decrypted echostr", "content": {"text/plain": {}}}, **ERRORS})
def verify_url():
    """WeCom's URL verification (query msg_signature, timestamp, nonce, echostr), made when the
    callback is saved in the WeCom console. Not for API clients."""
    echo = current().wecom_callback.verify_url(request.args)
    return Response(echo, content_type="text/plain; charset=utf-8")


@bp.post("/wechat/work/callback")
@bp.doc(responses={200: {"description": "the encrypted passive reply (XML), or an empty body",
                         "content": {"application/xml": {}}}, **ERRORS})
def receive():
    """A message a staff member sent the WeCom app (query msg_signature, timestamp, nonce; the
    encrypted XML WeCom posts): the manager bot's answer. Not for API clients."""
    answer = current().wecom_callback.answer(request.args, request.get_data(cache=False))
    return Response(answer, content_type="application/xml; charset=utf-8")
