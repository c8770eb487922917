"""QR labels: a PNG per task and a printable A4 sheet (PDF) per order.

The QR encodes `{PUBLIC_BASE_URL}/s/{qr_code}`, a plain https URL on our host that the mini
program is configured to open; the mini program resolves the code with GET /mp/v1/scan/<code>.

Chinese text needs a CJK font on both. One TrueType CJK font is found once (cjk_font): the
configured LABEL_FONT_PATH, else the Simplified-Chinese TrueType fonts fontconfig knows of
(`make setup` installs WenQuanYi Micro Hei where none is). The PDF embeds the subset of it that the
sheet uses, so any viewer on any machine shows the Chinese; reportlab embeds TrueType outlines
only, which is why CFF-based OpenType fonts (Noto Sans CJK .otf/.ttc) are passed over. Without any
such font the PNG carries only the ASCII-safe fields and the PDF falls back to the non-embedded
STSong-Light, and a warning says so.
"""
import io
import logging
import shutil
import subprocess
import zlib
from functools import lru_cache

import qrcode
from PIL import Image, ImageDraw, ImageFont
from qrcode.constants import ERROR_CORRECT_M
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfbase.ttfonts import TTFError, TTFont
from reportlab.pdfgen import canvas

from app.models import Order, Supplier, Task

log = logging.getLogger(__name__)

QR_BORDER = 4  # modules of quiet zone the QR specification asks for
PNG_SIZE = (900, 420)
PNG_QR_SPACE = 360  # the square on the left the QR fills
PNG_TEXT_X, PNG_TEXT_Y = 20 + PNG_QR_SPACE + 20, 36  # where the text column starts
PNG_TEXT_WIDTH = PNG_SIZE[0] - PNG_TEXT_X - 24
PDF_FALLBACK_FONT = "STSong-Light"  # a CID font viewers may lack: used only without a CJK TrueType font
PDF_FONT = "LabelCJK"


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


# --- the CJK font ----------------------------------------------------------------------------

def _fontconfig_cjk_fonts():
    """(path, face index) of the Simplified-Chinese TrueType fonts fontconfig knows, in a stable
    order; none where fontconfig is not installed."""
    fc_list = shutil.which("fc-list")
    if not fc_list:
        return []
    try:
        out = subprocess.run([fc_list, ":lang=zh-cn:fontformat=TrueType", "file", "index"],
                             capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    fonts = set()
    for line in out.splitlines():  # "/usr/share/fonts/…/wqy-microhei.ttc: :index=0"
        path, _, rest = line.partition(": ")
        index = rest.rpartition("index=")[2].strip()
        if path and index.isdigit():
            fonts.add((path, int(index)))
    return sorted(fonts, key=lambda font: (font[1], font[0]))


def _usable(path, index):
    """A TrueType font reportlab can embed and that draws Chinese; None otherwise."""
    try:
        face = TTFont(f"{PDF_FONT}-{index}-{zlib.crc32(path.encode())}", path, subfontIndex=index)
    except (TTFError, OSError) as exc:
        log.info("label font %s#%s not usable: %s", path, index, exc)
        return None
    return face if ord("中") in face.face.charToGlyph else None


@lru_cache(maxsize=8)
def cjk_font(configured=None):
    """(path, index, reportlab font) of the first usable CJK font: the configured file, then
    fontconfig's; None if there is none (the labels then degrade, see the module docstring)."""
    candidates = [(configured, 0)] if configured else []
    for path, index in candidates + _fontconfig_cjk_fonts():
        face = _usable(path, index)
        if face is not None:
            return path, index, face
    log.warning("no CJK TrueType font found (set LABEL_FONT_PATH or install fonts-wqy-microhei): "
                "label.png shows only ASCII fields and labels.pdf does not embed its Chinese font")
    return None


@lru_cache(maxsize=32)
def _font(path, index, size):
    """A loaded font, kept: a CJK collection is megabytes, read once per size rather than for
    every line of every label. Without a path, Pillow's built-in font. Pillow guards each font
    object with a lock of its own, so threads may share them."""
    if path is None:
        return ImageFont.load_default(size=size)
    return ImageFont.truetype(path, size, index=index)


# --- PNG -------------------------------------------------------------------------------------

PNG_TASK_NO_SIZES = range(40, 15, -2)  # the task number shrinks to fit; it is never cut


def _png_lines(fields, cjk):
    """Label lines after the task number, as (text, size). Without a CJK font, only text Pillow's
    built-in font can draw."""
    if cjk:
        return [
            (fields["product_name"], 34),
            (f"{fields['process']}  {fields['quantity']} {fields['unit']}", 32),
            (fields["supplier_name"], 30),
            (f"交期 {fields['due_date']}", 32),
        ]
    lines = []
    for label, value in (("P/N", fields["product_code"]), ("SUP", fields["supplier_code"])):
        if value and value.isascii():
            lines.append((f"{label} {value}", 28))
    return lines + [(f"QTY {fields['quantity']}", 32), (f"DUE {fields['due_date']}", 32)]


def _fit(draw, text, font, width):
    """Cut text that would run off the label, marking the cut."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "...", font=font) > width:
        text = text[:-1]
    return text + "..."


def png_task_no_size(draw, task_no, path, index, width):
    """The largest size at which the whole task number fits the text column."""
    for size in PNG_TASK_NO_SIZES:
        if draw.textlength(task_no, font=_font(path, index, size)) <= width:
            return size
    return PNG_TASK_NO_SIZES[-1]


def task_png(task, base_url, font_path=None):
    """One task's label as PNG bytes: QR on the left, the task's facts on the right."""
    fields = label_fields(_with_order_and_supplier([task])[0])
    return _png(fields["task_no"], scan_url(base_url, fields["qr_code"]), lambda cjk: _png_lines(fields, cjk),
                font_path)


def batch_png(batch, base_url, font_path=None):
    """One batch's label as PNG bytes, drawn like a task's: the batch number, then what the batch
    is (product, process, quantity, supplier, its task). The QR opens the batch in the mini program."""
    task = _with_order_and_supplier([batch.task])[0]
    fields = label_fields(task)

    def lines(cjk):
        if cjk:
            return [(fields["product_name"], 34), (f"{fields['process']}  {batch.qty} {fields['unit']}", 32),
                    (fields["supplier_name"], 30), (f"任务 {fields['task_no']}", 28)]
        return [(f"TASK {fields['task_no']}", 28), (f"QTY {batch.qty}", 32)]

    return _png(batch.batch_no, scan_url(base_url, batch.qr_code), lines, font_path)


def _png(title, url, lines_for, font_path):
    qr_img = _qr(url)
    modules = qr_img.modules_count + 2 * QR_BORDER
    qr_img.box_size = max(PNG_QR_SPACE // modules, 1)
    qr_pil = qr_img.make_image(fill_color="black", back_color="white").get_image().convert("L")

    label = Image.new("L", PNG_SIZE, 255)
    label.paste(qr_pil, (20, (PNG_SIZE[1] - qr_pil.height) // 2))
    draw = ImageDraw.Draw(label)
    path, index, _ = cjk_font(font_path) or (None, 0, None)
    x, y, width = PNG_TEXT_X, PNG_TEXT_Y, PNG_TEXT_WIDTH
    size = png_task_no_size(draw, title, path, index, width)
    draw.text((x, y), title, fill=0, font=_font(path, index, size))
    y += size + 26
    for text, size in lines_for(path is not None):
        font = _font(path, index, size)
        draw.text((x, y), _fit(draw, text, font, width), fill=0, font=font)
        y += size + 24
    out = io.BytesIO()
    label.save(out, format="PNG", optimize=True)
    return out.getvalue()



# --- PDF -------------------------------------------------------------------------------------

COLUMNS, ROWS = 2, 5
MARGIN = 10 * mm
PDF_TASK_NO_SIZES = (14, 13, 12, 11, 10, 9, 8, 7, 6)
PDF_TEXT_SIZES = (11, 10, 9, 8)


def _pdf_font(font_path):
    """The font the sheet's Chinese is drawn in: the CJK TrueType font, embedded (reportlab
    embeds the subset of glyphs a document uses), else the fallback CID font."""
    found = cjk_font(font_path)
    if found is None:
        if PDF_FALLBACK_FONT not in pdfmetrics.getRegisteredFontNames():
            pdfmetrics.registerFont(UnicodeCIDFont(PDF_FALLBACK_FONT))
        return PDF_FALLBACK_FONT
    face = found[2]
    if face.fontName not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(face)
    return face.fontName


def _pdf_size(text, font, sizes, width):
    """The largest of `sizes` at which text fits `width`; None if it fits at none."""
    return next((size for size in sizes if pdfmetrics.stringWidth(text, font, size) <= width), None)


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


def _draw_label(pdf, font, fields, base_url, x, y, w, h):
    pdf.setDash(2, 2)
    pdf.setStrokeGray(0.6)
    pdf.rect(x, y, w, h, stroke=1, fill=0)  # cutting guide
    pdf.setDash()
    qr_size = min(h - 4 * mm, w * 0.46)  # includes the QR's white quiet zone
    _draw_qr(pdf, scan_url(base_url, fields["qr_code"]), x + 2 * mm, y + (h - qr_size) / 2, qr_size)

    tx, text_w = x + qr_size + 2 * mm, w - qr_size - 6 * mm
    ty = y + h - 11 * mm
    task_no = fields["task_no"]
    size = _pdf_size(task_no, "Helvetica-Bold", PDF_TASK_NO_SIZES, text_w) or PDF_TASK_NO_SIZES[-1]
    pdf.setFont("Helvetica-Bold", size)
    pdf.drawString(tx, ty, task_no)  # whole, never cut: a worker matches parts by it
    lines = (
        fields["product_name"],
        f"工序 {fields['process']}",
        f"数量 {fields['quantity']} {fields['unit']}",
        fields["supplier_name"],
        f"交期 {fields['due_date']}",
    )
    for text in lines:
        ty -= 7.5 * mm
        size = _pdf_size(text, font, PDF_TEXT_SIZES, text_w) or PDF_TEXT_SIZES[-1]
        pdf.setFont(font, size)
        pdf.drawString(tx, ty, _pdf_fit(text, font, size, text_w))


def order_pdf(order, tasks, base_url, font_path=None):
    """All of an order's task labels on A4 sheets, COLUMNS × ROWS per page, with cutting guides."""
    font = _pdf_font(font_path)
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
        _draw_label(pdf, font, label_fields(task), base_url, x, y, w, h)
    pdf.showPage()
    pdf.save()
    return out.getvalue()


# --- material lots ---------------------------------------------------------------------------

def lot_label_fields(lot):
    """What a material lot's label shows (its item should come joined)."""
    material = lot.item
    quantity = format(lot.quantity.normalize(), "f") if hasattr(lot.quantity, "normalize") else str(lot.quantity)
    return {"lot_no": lot.lot_no, "item_code": material.code, "item_name": material.name, "spec": material.spec,
            "quantity": quantity, "unit": material.unit, "qr_code": lot.qr_code}


def lot_png(lot, base_url, font_path=None):
    """One material lot's label as PNG bytes, laid out as a task's: QR on the left (the same
    /s/<code> URL form; lot codes start with "m."), the lot number and the material on the right."""
    fields = lot_label_fields(lot)
    qr_img = _qr(scan_url(base_url, fields["qr_code"]))
    modules = qr_img.modules_count + 2 * QR_BORDER
    qr_img.box_size = max(PNG_QR_SPACE // modules, 1)
    qr_pil = qr_img.make_image(fill_color="black", back_color="white").get_image().convert("L")

    label = Image.new("L", PNG_SIZE, 255)
    label.paste(qr_pil, (20, (PNG_SIZE[1] - qr_pil.height) // 2))
    draw = ImageDraw.Draw(label)
    path, index, _ = cjk_font(font_path) or (None, 0, None)
    x, y, width = PNG_TEXT_X, PNG_TEXT_Y, PNG_TEXT_WIDTH
    size = png_task_no_size(draw, fields["lot_no"], path, index, width)
    draw.text((x, y), fields["lot_no"], fill=0, font=_font(path, index, size))
    y += size + 26
    if path is not None:
        lines = [(fields["item_name"], 34), (f"{fields['item_code']}  {fields['spec'] or ''}".strip(), 28),
                 (f"数量 {fields['quantity']} {fields['unit']}", 32), ("物料批次", 28)]
    else:
        lines = [(f"ITEM {fields['item_code']}", 28) if fields["item_code"].isascii() else ("ITEM", 28),
                 (f"QTY {fields['quantity']}", 32)]
    for text, size in lines:
        font = _font(path, index, size)
        draw.text((x, y), _fit(draw, text, font, width), fill=0, font=font)
        y += size + 24
    out = io.BytesIO()
    label.save(out, format="PNG", optimize=True)
    return out.getvalue()
