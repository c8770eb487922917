"""Reading an uploaded table: CSV (UTF-8 or GB18030) or XLSX, by content, never by name, with caps
that keep a hostile file from costing memory or minutes (rows, columns, unpacked sizes, parts)."""
import csv
import io
import re
import zipfile
from itertools import islice

from app.domain.errors import Invalid, TooLarge

MAX_IMPORT_BYTES = 5 * 1024 * 1024
MAX_IMPORT_ROWS = 5000
MAX_IMPORT_COLUMNS = 40

MB = 1024 * 1024
# What openpyxl may unpack and parse. A real order sheet unpacks to a few MB; a tiny file that
# declares more is a decompression bomb. zipfile never inflates a member past its declared size.
XLSX_MAX_MEMBERS = 1000
XLSX_MAX_TOTAL = 40 * MB
STYLE_TAG = re.compile(rb"<[A-Za-z]")
SHARED_STRING = re.compile(rb"<(?:\w+:)?si[\s/>]")
CELL = re.compile(rb"<(?:\w+:)?c[\s/>]")


def _limits(name):
    """(what the member is, most bytes unpacked, what to count, most of those) for one zip member.

    openpyxl spends ~20 µs on each style or string, and a style can be written in 5 bytes: a
    size cap alone still lets a small file take seconds, so the parts it parses are counted too."""
    if name == "xl/styles.xml":
        return "样式表", 2 * MB, STYLE_TAG, 60_000
    if name == "xl/sharedStrings.xml":
        return "共享字符串表", 10 * MB, SHARED_STRING, 250_000
    if name.startswith("xl/worksheets/"):
        return "工作表", 20 * MB, CELL, 250_000
    return "部件", 5 * MB, None, 0


def _unreadable(message):
    return Invalid("import_unreadable", message, field="file")


def _too_large(detail):
    return TooLarge("file_too_large",
                    f"Excel 文件{detail}，疑似压缩炸弹或格式异常，未导入任何数据；"
                    "请把数据复制到新建的工作簿后重新导入", field="file")


def _check_xlsx(archive):
    """Refuse, before openpyxl sees it, a workbook that would unpack or parse to too much."""
    members = archive.infolist()
    if len(members) > XLSX_MAX_MEMBERS:
        raise _too_large(f"包含 {len(members)} 个部件（上限 {XLSX_MAX_MEMBERS}）")
    for member in members:
        what, limit, _, _ = _limits(member.filename)
        if member.file_size > limit:
            raise _too_large(f"中的{what}（{member.filename}）解压后 {member.file_size / MB:.1f} MB"
                             f"（上限 {limit // MB} MB）")
    total = sum(m.file_size for m in members)
    if total > XLSX_MAX_TOTAL:
        raise _too_large(f"解压后共 {total / MB:.1f} MB（上限 {XLSX_MAX_TOTAL // MB} MB）")
    for member in members:
        what, _, pattern, most = _limits(member.filename)
        if pattern and sum(1 for _ in islice(pattern.finditer(archive.read(member)), most + 1)) > most:
            raise _too_large(f"中的{what}（{member.filename}）超过 {most} 项")


def _xlsx_rows(data):
    """Rows of the first sheet as lists of cell values, read lazily with caps on rows and columns."""
    import openpyxl

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            _check_xlsx(archive)
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        sheet = book.worksheets[0]
        # One row past the limit is enough to tell the file is too long.
        rows = [list(row) for row in sheet.iter_rows(min_row=1, max_row=MAX_IMPORT_ROWS + 2,
                                                       max_col=MAX_IMPORT_COLUMNS, values_only=True)]
        book.close()
    except (Invalid, TooLarge):
        raise
    except Exception:  # zipfile and openpyxl raise many kinds on a damaged file; all mean the same here
        raise _unreadable("无法读取 Excel 文件，请确认是 .xlsx 格式且未损坏")
    return rows


def _csv_rows(data):
    """Rows of a CSV: UTF-8 with or without BOM; GB18030 as Excel-in-China saves 'CSV' by default."""
    if b"\x00" in data:
        raise _unreadable("文件不是 CSV 或 Excel（.xlsx）格式")
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise _unreadable("CSV 文件编码无法识别，请保存为 UTF-8")
    try:
        rows = []
        for row in csv.reader(io.StringIO(text, newline="")):
            rows.append(row[:MAX_IMPORT_COLUMNS])
            if len(rows) > MAX_IMPORT_ROWS + 1:
                break
        return rows
    except csv.Error:
        raise _unreadable("CSV 格式不正确（引号未闭合或含非法字符）")


def read_table(data):
    """The file's rows (header first), XLSX or CSV by content, never by file name."""
    if len(data) > MAX_IMPORT_BYTES:
        raise TooLarge("file_too_large", "导入文件不能超过 5 MB", field="file")
    rows = _xlsx_rows(data) if data[:4] == b"PK\x03\x04" else _csv_rows(data)
    while rows and blank(rows[-1]):
        rows.pop()
    if not rows:
        raise _unreadable("文件是空的")
    if len(rows) > MAX_IMPORT_ROWS + 1:
        raise Invalid("too_many_rows", f"一次最多导入 {MAX_IMPORT_ROWS} 行，请拆分文件", field="file")
    return rows


def blank(row):
    return all(cell is None or str(cell).strip() == "" for cell in row)
