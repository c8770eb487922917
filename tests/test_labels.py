"""QR labels: a PNG per task whose QR reads back as the task's scan URL, and an A4 PDF sheet per order."""
import base64
import io
import re
import zlib
from pathlib import Path

import pytest
import qrcode
from PIL import Image, ImageDraw, ImageFont
from pypdf import PdfReader
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


def test_a_configured_font_comes_first_and_one_without_chinese_is_passed_over(make_app, dbconn, tmp_path):
    from app import labels

    found = labels.cjk_font()
    assert found is not None, "no CJK TrueType font: `make setup` (scripts/ensure-cjk-font.sh) installs one"
    own = tmp_path / "factory-font.ttc"
    own.write_bytes(Path(found[0]).read_bytes())
    assert labels.cjk_font(str(own))[0] == str(own)

    if DEJAVU.exists():  # a Latin-only font would print blank boxes for every Chinese field
        assert labels.cjk_font(str(DEJAVU))[0] == found[0]


def test_a_font_file_is_read_once_per_size_not_for_every_label(make_app, dbconn, monkeypatch):
    from app import labels

    task = factories.order(factories.customer(), [factories.supplier()]).tasks.first()
    labels.task_png(task, BASE)
    loads, real = [], ImageFont.truetype

    def truetype(*args, **kwargs):
        loads.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(ImageFont, "truetype", truetype)

    for _ in range(3):
        labels.task_png(task, BASE)
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
    text = pdf_text(data)
    for task_no in task_nos:
        assert task_no in text


def test_labels_of_unknown_objects_are_404(manager):
    assert manager.get("/api/v1/tasks/999999/label.png").status_code == 404
    assert manager.get("/api/v1/orders/999999/labels.pdf").status_code == 404


def test_the_label_url_outside_wechat_asks_to_scan_in_wechat_and_reveals_nothing(client):
    res = client.get("/s/some-unknown-or-real-code")
    assert res.status_code == 200 and "请使用微信扫一扫" in res.get_data(as_text=True)


# --- Chinese on any machine: the font is embedded; the task number is never cut ---------------

def pdf_text(data):
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


def pdf_fonts(data):
    """(base font name, embedded?) of every font the sheet's pages use — what `pdffonts` lists."""
    fonts = {}
    for page in PdfReader(io.BytesIO(data)).pages:
        for font in page["/Resources"]["/Font"].values():
            font = font.get_object()
            descendants = font.get("/DescendantFonts")
            descriptor = (descendants[0].get_object() if descendants else font).get("/FontDescriptor")
            embedded = descriptor is not None and any(
                key in descriptor.get_object() for key in ("/FontFile", "/FontFile2", "/FontFile3"))
            fonts[str(font["/BaseFont"])] = embedded
    return fonts


def test_the_label_sheet_embeds_a_subset_of_its_chinese_font(manager):
    if labels_module().cjk_font() is None:
        pytest.fail("no CJK TrueType font: `make setup` (scripts/ensure-cjk-font.sh) installs one")
    order = factories.order(factories.customer(), [factories.supplier(name="苏州精工冲压厂")])

    data = manager.get(f"/api/v1/orders/{order.id}/labels.pdf").data

    fonts = pdf_fonts(data)
    chinese = {name: embedded for name, embedded in fonts.items() if not name.startswith("/Helvetica")}
    assert chinese and all(chinese.values()), fonts  # every font carrying Chinese is in the file
    assert all("STSong" not in name for name in fonts)  # not a font the viewer must already have
    text = pdf_text(data)
    assert "钣金机箱" in text and "苏州精工冲压厂" in text and "交期" in text


def labels_module():
    from app import labels
    return labels


def drawn_at(image, text, font, xy):
    """Whether `image` shows exactly `text` in `font` at `xy`: the same text drawn alone on white
    must equal that region of the label, pixel for pixel."""
    probe = Image.new("L", image.size, 255)
    ImageDraw.Draw(probe).text(xy, text, fill=0, font=font)
    box = probe.point(lambda v: 255 if v < 255 else 0).getbbox()
    return box is not None and image.crop(box).tobytes() == probe.crop(box).tobytes()


@pytest.mark.parametrize("task_no, readable", [("SO-20261201-0001-T1", 34),  # large, from arm's length
                                               ("SO-20261201-0001-T1-RW2-客户加急-长编号", 16)])  # shrunk, whole
def test_the_png_prints_the_whole_task_number_and_the_chinese_fields(manager, task_no, readable):
    labels = labels_module()
    path, index, _ = labels.cjk_font()
    order = factories.order(factories.customer(), [factories.supplier(name="苏州精工冲压厂")])
    task = order.tasks.first()
    task.task_no = task_no
    task.save()

    image = Image.open(io.BytesIO(manager.get(f"/api/v1/tasks/{task.id}/label.png").data)).convert("L")

    x, y = labels.PNG_TEXT_X, labels.PNG_TEXT_Y
    sizes = [size for size in range(60, 8, -1)
             if drawn_at(image, task_no, ImageFont.truetype(path, size, index=index), (x, y))]
    assert sizes, "the task number is not on the label whole"
    assert sizes[0] >= readable
    text = image.crop((x, y + sizes[0], image.width, image.height))
    assert any(drawn_at(text, "钣金机箱", ImageFont.truetype(path, size, index=index), (0, dy))
               for size in (30, 32, 34, 36) for dy in range(0, 60))
