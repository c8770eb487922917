"""QR labels: a PNG per task and a printable A4 sheet (PDF) per order.

The QR encodes `{PUBLIC_BASE_URL}/s/{qr_code}`, a plain https URL on our host that the mini
program is configured to open; the mini program resolves the code with GET /mp/v1/scan/<code>.

Chinese text needs a CJK font. The PDF uses reportlab's built-in CID font STSong-Light, which
needs no font file (PDF viewers supply the glyphs). The PNG is drawn with Pillow, which does
need a font file: the configured LABEL_FONT_PATH or a common system CJK font. Without one the
PNG carries only the ASCII-safe fields (task number, codes, quantity, due date) and the Chinese
fields stay legible on the PDF sheet.
"""
import io
import os
from functools import lru_cache

import qrcode
from PIL import Image, ImageDraw, ImageFont
from qrcode.constants import ERROR_CORRECT_M
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfgen import canvas

from app.models import Order, Supplier, Task

# (path, face index): Debian/Ubuntu, macOS and Windows CJK fonts, most common first.
# Noto Sans CJK's collection holds JP, KR, SC, TC…: face 2 is Simplified Chinese.
CJK_FONT_CANDIDATES = (
    ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc", 2),
    ("/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc", 2),
    ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", 0),
    ("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc", 0),
    ("/System/Library/Fonts/PingFang.ttc", 0),
    ("/System/Library/Fonts/STHeiti Light.ttc", 0),
    ("C:/Windows/Fonts/msyh.ttc", 0),
)

QR_BORDER = 4  # modules of quiet zone the QR specification asks for
PNG_SIZE = (760, 400)
PNG_QR_SPACE = 360  # the square on the left the QR fills
PDF_FONT = "STSong-Light"


def scan_url(base_url, qr_code):
    """What a task's QR encodes; the mini program opens it and asks /mp/v1/scan/<code>."""
    return f"{base_url.rstrip('/')}/s/{qr_code}"


def _with_order_and_supplier(tasks):
    """The tasks re-read with their order and supplier joined in one query: label_fields reads
    both, and lazy foreign keys would cost two queries per label."""
    ids = [task.id for task in tasks]
    query = (Task.select(Task, Order, Supplier).join(Order).switch(Task).join(Supplier)
             .where(Task.id.in_(ids)))
    by_id = {task.id: task for task in query}
    return [by_id[i] for i in ids]


def label_fields(task):
    """What a label shows: everything a worker needs to match parts to the task (its order and
    supplier should come joined, see _with_order_and_supplier)."""
    order, supplier = task.order, task.supplier
    return {
        "task_no": task.task_no,
        "order_no": order.order_no,
        "product_name": order.product_name,
        "product_code": order.product_code,
        "process": task.process,
        "quantity": task.planned_qty,
        "unit": order.unit,
        "supplier_name": supplier.name,
        "supplier_code": supplier.code,
        "due_date": task.due_date.isoformat(),
        "qr_code": task.qr_code,
    }


def _qr(url):
    qr = qrcode.QRCode(error_correction=ERROR_CORRECT_M, border=QR_BORDER)
    qr.add_data(url)
    qr.make(fit=True)
    return qr


# --- PNG -------------------------------------------------------------------------------------

@lru_cache(maxsize=8)
def cjk_font_path(configured=None):
    """The first usable CJK font: the configured one, then common system paths; None if none."""
    candidates = ((configured, 0),) if configured else ()
    for path, index in candidates + CJK_FONT_CANDIDATES:
        if os.path.isfile(path):
            try:
                _font(path, index, 12)
            except OSError:
                continue
            return path, index
    return None


@lru_cache(maxsize=32)
def _font(path, index, size):
    """A loaded font, kept: a CJK collection is tens of MB, read once per size rather than for
    every line of every label. Without a path, Pillow's built-in font. Pillow guards each font
    object with a lock of its own, so threads may share them."""
    if path is None:
        return ImageFont.load_default(size=size)
    return ImageFont.truetype(path, size, index=index)


def _png_lines(fields, cjk):
    """Label lines as (text, size). Without a CJK font, only text Pillow's built-in font can draw."""
    if cjk:
        return [
            (fields["task_no"], 34),
            (fields["product_name"], 30),
            (f"{fields['process']}  {fields['quantity']} {fields['unit']}", 28),
            (fields["supplier_name"], 26),
            (f"交期 {fields['due_date']}", 28),
        ]
    lines = [(fields["task_no"], 34)]
    for label, value in (("P/N", fields["product_code"]), ("SUP", fields["supplier_code"])):
        if value and value.isascii():
            lines.append((f"{label} {value}", 26))
    lines += [(f"QTY {fields['quantity']}", 30), (f"DUE {fields['due_date']}", 30)]
    return lines


def _fit(draw, text, font, width):
    """Cut text that would run off the label, marking the cut."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "...", font=font) > width:
        text = text[:-1]
    return text + "..."


def task_png(task, base_url, font_path=None):
    """One task's label as PNG bytes: QR on the left, the task's facts on the right."""
    fields = label_fields(_with_order_and_supplier([task])[0])
    qr_img = _qr(scan_url(base_url, fields["qr_code"]))
    modules = qr_img.modules_count + 2 * QR_BORDER
    qr_img.box_size = max(PNG_QR_SPACE // modules, 1)
    qr_pil = qr_img.make_image(fill_color="black", back_color="white").get_image().convert("L")

    label = Image.new("L", PNG_SIZE, 255)
    label.paste(qr_pil, (20, (PNG_SIZE[1] - qr_pil.height) // 2))
    draw = ImageDraw.Draw(label)
    path, index = cjk_font_path(font_path) or (None, 0)
    x, y, width = 20 + PNG_QR_SPACE + 20, 40, PNG_SIZE[0] - PNG_QR_SPACE - 60
    for text, size in _png_lines(fields, path is not None):
        font = _font(path, index, size)
        draw.text((x, y), _fit(draw, text, font, width), fill=0, font=font)
        y += size + 26
    out = io.BytesIO()
    label.save(out, format="PNG", optimize=True)
    return out.getvalue()


# --- PDF -------------------------------------------------------------------------------------

COLUMNS, ROWS = 2, 5
MARGIN = 10 * mm


@lru_cache(maxsize=1)
def _register_pdf_font():
    pdfmetrics.registerFont(UnicodeCIDFont(PDF_FONT))


def _pdf_fit(text, font, size, width):
    if pdfmetrics.stringWidth(text, font, size) <= width:
        return text
    while text and pdfmetrics.stringWidth(text + "…", font, size) > width:
        text = text[:-1]
    return text + "…"


def _draw_qr(pdf, url, x, y, size):
    """The QR as vector squares: sharp at any printer resolution."""
    matrix = _qr(url).get_matrix()
    cell = size / len(matrix)
    top = y + size
    for row, line in enumerate(matrix):
        for col, dark in enumerate(line):
            if dark:
                pdf.rect(x + col * cell, top - (row + 1) * cell, cell, cell, stroke=0, fill=1)


def _draw_label(pdf, fields, base_url, x, y, w, h):
    pdf.setDash(2, 2)
    pdf.setStrokeGray(0.6)
    pdf.rect(x, y, w, h, stroke=1, fill=0)  # cutting guide
    pdf.setDash()
    qr_size = min(h - 4 * mm, w * 0.48)  # includes the QR's white quiet zone
    _draw_qr(pdf, scan_url(base_url, fields["qr_code"]), x + 2 * mm, y + (h - qr_size) / 2, qr_size)

    tx, text_w = x + qr_size + 2 * mm, w - qr_size - 6 * mm
    ty = y + h - 12 * mm
    pdf.setFont("Helvetica-Bold", 11)
    pdf.drawString(tx, ty, _pdf_fit(fields["task_no"], "Helvetica-Bold", 11, text_w))
    lines = (
        fields["product_name"],
        f"工序 {fields['process']}",
        f"数量 {fields['quantity']} {fields['unit']}",
        fields["supplier_name"],
        f"交期 {fields['due_date']}",
    )
    for text in lines:
        ty -= 7 * mm
        pdf.setFont(PDF_FONT, 10)
        pdf.drawString(tx, ty, _pdf_fit(text, PDF_FONT, 10, text_w))


def order_pdf(order, tasks, base_url):
    """All of an order's task labels on A4 sheets, COLUMNS × ROWS per page, with cutting guides."""
    _register_pdf_font()
    out = io.BytesIO()
    pdf = canvas.Canvas(out, pagesize=A4)
    pdf.setTitle(f"{order.order_no} 任务标签")
    page_w, page_h = A4
    w, h = (page_w - 2 * MARGIN) / COLUMNS, (page_h - 2 * MARGIN) / ROWS
    per_page = COLUMNS * ROWS
    for index, task in enumerate(_with_order_and_supplier(tasks)):
        if index and index % per_page == 0:
            pdf.showPage()
        slot = index % per_page
        col, row = slot % COLUMNS, slot // COLUMNS
        x, y = MARGIN + col * w, page_h - MARGIN - (row + 1) * h
        _draw_label(pdf, label_fields(task), base_url, x, y, w, h)
    pdf.showPage()
    pdf.save()
    return out.getvalue()
