"""QR labels: a PNG per task whose QR reads back as the task's scan URL, and an A4 PDF sheet per order."""
import base64
import io
import re
import zlib
from pathlib import Path

import pytest
import qrcode
from PIL import Image, ImageFont
from qrcode import constants

from tests import factories
from tests.sqlcount import statements

BASE = "https://wx.example.cn"
DEJAVU = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


@pytest.fixture
def app_settings():
    """Labels print absolute scan URLs: this module's apps have a public base URL."""
    return {"PUBLIC_BASE_URL": BASE}


def qr_matrix(text, level):
    qr = qrcode.QRCode(error_correction=level, border=0)
    qr.add_data(text)
    qr.make(fit=True)
    return qr.get_matrix()


def read_qr(image, candidates):
    """Which of `candidates` the image's QR encodes: sample the module grid and compare it with
    the standard QR of each candidate at every error-correction level."""
    gray = image.convert("L")
    px, (w, h) = gray.load(), gray.size

    def dark(x, y):
        return px[x, y] < 128

    # The QR sits left of the text: its leftmost dark column is the finder patterns' left edge.
    x0 = next(x for x in range(w) if any(dark(x, y) for y in range(h)))
    y0 = next(y for y in range(h) if dark(x0, y))
    run = 0
    while dark(x0 + run, y0):
        run += 1
    box = run / 7  # a finder pattern is 7 modules wide
    for text in candidates:
        for level in (constants.ERROR_CORRECT_L, constants.ERROR_CORRECT_M,
                      constants.ERROR_CORRECT_Q, constants.ERROR_CORRECT_H):
            expected = qr_matrix(text, level)
            n = len(expected)
            seen = [[dark(int(x0 + (c + 0.5) * box), int(y0 + (r + 0.5) * box)) for c in range(n)] for r in range(n)]
            if seen == expected:
                return text
    return None


def _a85(stream):
    """A reportlab content stream: ASCII85 (ending ~>) over Flate."""
    return zlib.decompress(base64.a85decode(stream.strip()[:-2]))


def test_a_task_label_is_a_png_whose_qr_opens_the_task(manager):
    order = factories.order(factories.customer(), [factories.supplier(), factories.supplier()])
    tasks = list(order.tasks)
    res = manager.get(f"/api/v1/tasks/{tasks[0].id}/label.png")

    assert res.status_code == 200 and res.mimetype == "image/png"
    image = Image.open(io.BytesIO(res.data))
    image.load()
    assert image.format == "PNG" and image.width > image.height
    own, other = (f"{BASE}/s/{t.qr_code}" for t in tasks)
    assert read_qr(image, [other, own]) == own


def test_a_configured_font_is_used_for_the_png(make_app, dbconn):
    if not DEJAVU.exists():
        pytest.skip("no TrueType font on this machine")
    from app import labels

    order = factories.order(factories.customer(), [factories.supplier()])
    task = order.tasks.first()
    plain = labels.task_png(task, BASE)
    fonted = labels.task_png(task, BASE, font_path=str(DEJAVU))

    assert plain != fonted  # the font draws the Chinese fields too
    for data in (plain, fonted):
        assert read_qr(Image.open(io.BytesIO(data)), [f"{BASE}/s/{task.qr_code}"])


def test_a_font_file_is_read_once_per_size_not_for_every_label(make_app, dbconn, monkeypatch):
    if not DEJAVU.exists():
        pytest.skip("no TrueType font on this machine")
    from app import labels

    task = factories.order(factories.customer(), [factories.supplier()]).tasks.first()
    labels.task_png(task, BASE, font_path=str(DEJAVU))
    loads, real = [], ImageFont.truetype

    def truetype(*args, **kwargs):
        loads.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(ImageFont, "truetype", truetype)

    for _ in range(3):
        labels.task_png(task, BASE, font_path=str(DEJAVU))
    assert loads == []


def queries(client, path):
    """(status, how many SQL statements one request runs)."""
    status, seen = statements(lambda: client.get(path).status_code)
    return status, len(seen)


def test_labels_do_not_query_once_per_task(manager):
    few = factories.order(factories.customer(), [factories.supplier() for _ in range(2)])
    many = factories.order(factories.customer(), [factories.supplier() for _ in range(12)])
    assert queries(manager, f"/api/v1/orders/{many.id}/labels.pdf") == queries(
        manager, f"/api/v1/orders/{few.id}/labels.pdf")

    status, missing = queries(manager, "/api/v1/tasks/999999/label.png")
    assert status == 404
    # Beyond finding the task, a label costs one query: its order and supplier come joined.
    assert queries(manager, f"/api/v1/tasks/{few.tasks.first().id}/label.png") == (200, missing + 1)


def test_an_order_label_sheet_has_every_task_on_a4_pages(manager):
    suppliers = [factories.supplier() for _ in range(12)]
    order = factories.order(factories.customer(), suppliers)
    task_nos = [t.task_no for t in order.tasks]

    res = manager.get(f"/api/v1/orders/{order.id}/labels.pdf")

    assert res.status_code == 200 and res.mimetype == "application/pdf"
    data = res.data
    assert data.startswith(b"%PDF")
    assert len(re.findall(rb"/Type /Page\b", data)) == 2  # 10 labels per page
    assert b"/MediaBox [ 0 0 595.2756 841.8898 ]" in data  # A4
    assert b"/STSong-Light" in data  # the CJK font for product and supplier names
    text = b"".join(_a85(s) for s in re.findall(rb"stream\r?\n(.*?)endstream", data, re.S))
    for task_no in task_nos:
        assert f"({task_no}) Tj".encode() in text


def test_labels_of_unknown_objects_are_404(manager):
    assert manager.get("/api/v1/tasks/999999/label.png").status_code == 404
    assert manager.get("/api/v1/orders/999999/labels.pdf").status_code == 404


def test_the_label_url_outside_wechat_asks_to_scan_in_wechat_and_reveals_nothing(client):
    res = client.get("/s/some-unknown-or-real-code")
    assert res.status_code == 200 and "请使用微信扫一扫" in res.get_data(as_text=True)
