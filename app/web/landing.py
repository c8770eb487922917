"""GET /s/<code>: where a task's QR label points when opened outside the mini program.

WeChat opens the mini program for this URL prefix (扫普通链接二维码打开小程序); a phone camera or a
browser lands here instead. The page says what to do and reveals nothing about the task."""
from apiflask import APIBlueprint
from flask import Response

bp = APIBlueprint("landing", __name__, tag="标签")

PAGE = """<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1"><title>外协任务标签</title></head>
<body style="font-family:sans-serif;text-align:center;padding:3em 1em">
<h2>请使用微信扫一扫</h2><p>这是外协生产任务的标签。请在微信中扫码，在小程序里查看任务并上报进度。</p>
</body></html>"""


@bp.get("/s/<code>")
@bp.doc(responses={200: {"description": "an HTML page asking to scan with WeChat", "content": {"text/html": {}}}})
def scan_landing(code):
    """The QR label's URL outside WeChat: a page that tells the user to scan it in WeChat."""
    return Response(PAGE, content_type="text/html; charset=utf-8", headers={"Cache-Control": "public, max-age=3600"})
