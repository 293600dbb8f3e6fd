"""The consolidated workbook (SPEC §7): a view of the store, rebuilt whole, written atomically.

Because it is built only from the store, ``intake rebuild`` gives the same content at any
time, and a crash while writing leaves the previous file in place (temp file + rename).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.chart import BarChart
from openpyxl.chart import Reference as ChartRef
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.styles.cell_style import StyleArray
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.pagebreak import Break
from openpyxl.worksheet.worksheet import Worksheet

from .archive import file_mode
from .config import TZ, Settings
from .findings import LEVEL_LABELS
from .labels import ACTION_LABELS, LEVELS, kind_label, outbox_label, status_label
from .reference import Reference
from .replies import short_time
from .sheets.layout import (
    FONT_NAME,
    print_setup,
    row_height,
    set_default_alignment,
    set_default_font,
    wrapped_lines,
)
from .store import Store, events, messages, outbox, submissions, units
from .text import clean, vietnamese_sort_key

SUMMARY = ["Đơn vị", "Trạng thái", "Lần nộp", "Nộp lúc", "Trễ hạn", "Số Chi đoàn hợp lệ",
           "Cấp tỉnh", "Cấp huyện", "Số dòng lỗi", "Độ phủ NTM/ĐTVM"]
ROWS = ["Đơn vị", "Xã, phường, thị trấn", "Tên Chi đoàn", "Chi bộ ấp, khu phố", "Tình trạng Chi bộ",
        "Số lượng đoàn viên", "Cấp đăng ký", "Năm đạt CĐKM cấp huyện", "Bí thư Chi đoàn",
        "Số điện thoại", "Ghi chú", "Kết quả kiểm tra", "Lỗi", "Tệp nguồn", "Dòng", "Nhận lúc"]
FINDINGS = ["Đơn vị", "Tệp", "Trang tính", "Dòng", "Cột", "Mã lỗi", "Mức độ", "Nội dung"]
COVERAGE = ["Đơn vị", "Xã, phường, thị trấn", "Danh hiệu", "Số ấp, khu phố", "Đã đăng ký",
            "Còn thiếu"]
LOG = ["Nhận lúc", "Người gửi", "Tiêu đề", "Đơn vị", "Tệp đính kèm", "Kết quả", "Phản hồi",
       "Message-ID"]
SHEETS = ["Tổng hợp", "Danh sách", "Lỗi", "Độ phủ NTM-ĐTVM", "Nhật ký"]

MAX_TEXT = 32_000
SIZE = 11  # points: the workbook's font size (Times New Roman, see sheets.layout)
_HEAD_FONT = Font(name=FONT_NAME, bold=True, size=SIZE)
_HEAD_FILL = PatternFill("solid", fgColor="DDEBF7")
_HEAD_ALIGN = Alignment(horizontal="center", vertical="center", wrap_text=True)
# Every cell: at the top of its row, wrapping when longer than its column. It is the
# workbook's default format (sheets.layout.set_default_alignment), so the streaming
# writer styles no cell for it; rows are sized from the text (``_append``).
_WRAP = Alignment(vertical="top", wrap_text=True)
_ERROR_FILL = PatternFill("solid", fgColor="FFE0E0")
_LATE_FILL = PatternFill("solid", fgColor="FFF2CC")
_DATE = "dd/mm/yyyy hh:mm"
_CODE_FONT = Font(name=FONT_NAME, size=SIZE - 2)  # codes, Message-IDs: Layout.small


@dataclass(frozen=True)
class Layout:
    """How a sheet reads on screen and on paper: column widths, the title printed at the
    top of every page, and how pages are cut."""

    widths: tuple[float, ...]
    title: str = ""  # printed in the page header, e.g. "DANH SÁCH … NĂM {year}"
    split_after: int = 0  # print this many columns per page, the rest on the next
    repeat_columns: str = ""  # columns printed again on every page ("A:C")
    scale: int = 100  # print scale (%) when pages are split by columns
    small: frozenset[int] = frozenset()  # codes and identifiers, 2 points smaller


LAYOUTS = {
    "Tổng hợp": Layout((24, 16, 8, 16, 8, 11, 8, 8, 9, 12),
                       "TỔNG HỢP ĐĂNG KÝ XÂY DỰNG CHI ĐOÀN KIỂU MẪU NĂM {year}"),
    # 16 columns cannot print legibly on one page width: the registration (A–J) on one
    # page, its check result and origin (K–P) on the next with Đơn vị, Xã and Tên Chi
    # đoàn repeated, pages paired (over, then down), at 85 % instead of about 60 %.
    "Danh sách": Layout((21, 19, 22, 21, 19, 8, 10, 8, 17, 13, 14, 9, 31, 19, 6, 16),
                        "DANH SÁCH CHI ĐOÀN ĐĂNG KÝ XÂY DỰNG CHI ĐOÀN KIỂU MẪU NĂM {year}",
                        split_after=10, repeat_columns="A:C", scale=85),
    "Lỗi": Layout((23, 18, 11, 6, 5, 27, 9, 60),
                  "CÁC LỖI TRONG DANH SÁCH ĐÃ NHẬN (ĐƠN VỊ CẦN SỬA)", small=frozenset({6})),
    "Độ phủ NTM-ĐTVM": Layout((21, 20, 10, 9, 9, 62),
                              "ĐỘ PHỦ CHI ĐOÀN ĐĂNG KÝ Ở XÃ, PHƯỜNG ĐẠT CHUẨN NTM, ĐTVM"),
    "Nhật ký": Layout((16, 30, 26, 18, 20, 20, 20, 26),
                      "NHẬT KÝ THƯ NHẬN VÀ THƯ PHẢN HỒI", small=frozenset({8})),
}


@lru_cache(maxsize=4096)
def local(moment: str | None) -> datetime | None:
    """Stored ISO time -> naive local time, which is what a spreadsheet date cell holds."""
    if not moment:
        return None
    return datetime.fromisoformat(moment).astimezone(TZ).replace(tzinfo=None)


def safe(value: object) -> object:
    """Sender text as harmless cell text: control characters gone, length capped."""
    if value is None or isinstance(value, int | float | datetime):
        return value
    text = str(value)
    if not (text.isprintable() and len(text) <= MAX_TEXT):  # fast path: already clean
        text = clean(text)
        if len(text) > MAX_TEXT:
            text = text[:MAX_TEXT] + " … (đã cắt bớt)"
    return text


Styles = dict[int, dict[str, object]]  # column -> cell attributes (fill, font, …)


@lru_cache(maxsize=65536)
def _lines(text: str, width: float, size: float = SIZE) -> int:
    return wrapped_lines(text, width, size, SIZE)


@lru_cache(maxsize=64)
def _height(lines: int) -> dict[str, str]:
    """The <row> attributes of a row ``lines`` lines high (at most 30)."""
    return {"ht": str(row_height(min(lines, 30), SIZE)), "customHeight": "1"}


def _style_of(sheet: Worksheet, style: dict[str, object] | None, small: bool,
              date: bool) -> StyleArray:
    """The cell format for one combination, computed once per sheet: setting styles
    attribute by attribute on every cell of 20,000 rows costs the rebuild a second."""
    cache: dict[tuple, StyleArray] = sheet.__dict__.setdefault("_intake_styles", {})
    key = (tuple(style.items()) if style else (), small, date)
    found = cache.get(key)
    if found is None:
        probe = WriteOnlyCell(sheet)
        probe.alignment = _WRAP
        if small:
            probe.font = _CODE_FONT
        if date:
            probe.number_format = _DATE
        for name, attribute in (style or {}).items():
            setattr(probe, name, attribute)
        found = cache[key] = probe._style
    return StyleArray(found)


def _append(sheet: Worksheet, values: list[object], styles: Styles | None = None) -> int:
    """Stream one row (write-only mode) and return its Excel row number.

    Write-only streaming is what keeps a 20,000-row rebuild linear and fast; styles and
    the row's height therefore have to be known when the row is written. Every cell
    wraps (the workbook's default format); the row gets the height of its longest cell,
    as no viewer sizes the rows of a file it did not write.
    """
    number = getattr(sheet, "_intake_rows", 0) + 1
    sheet._intake_rows = number  # type: ignore[attr-defined]
    layout: Layout | None = getattr(sheet, "_intake_layout", None)
    styles = styles or {}
    row: list[object] = []
    tallest = 1
    for column, value in enumerate(values, start=1):
        value = safe(value)
        style = styles.get(column)
        small = bool(layout and column in layout.small and value is not None)
        if layout and isinstance(value, str) and len(value) * 1.8 > layout.widths[column - 1] - 1:
            tallest = max(tallest, _lines(value, layout.widths[column - 1],
                                          SIZE - 2 if column in layout.small else SIZE))
        if style is None and not small and not isinstance(value, datetime) and not (
                isinstance(value, str) and value.startswith("=")):
            row.append(value)  # plain strings are stored as text; only "=" makes a formula
            continue
        cell = WriteOnlyCell(sheet, value=value)
        if isinstance(value, str):
            cell.data_type = "s"  # never a formula, whatever it starts with
        cell._style = _style_of(sheet, style, small, isinstance(value, datetime))
        row.append(cell)
    if tallest > 1:
        # The streaming writer copies a row's XML attributes from this mapping: a plain
        # dict instead of a RowDimension keeps 20,000 sized rows cheap.
        dict.__setitem__(sheet.row_dimensions, number, _height(tallest))
    sheet.append(row)
    return number


def _sheet(book: Workbook, title: str, headers: list[str], settings: Settings,
           updated: str) -> Worksheet:
    """A sheet with its header row (frozen, repeated on every printed page) and its print
    layout: A4 landscape, the sheet's title and the board in the page header, when the
    figures were taken and the page number in the footer."""
    layout = LAYOUTS[title]
    sheet = book.create_sheet(title)
    sheet._intake_layout = layout  # type: ignore[attr-defined]
    for index, width in enumerate(layout.widths, start=1):
        column = sheet.column_dimensions[get_column_letter(index)]
        column.width = width
        column.alignment = _WRAP  # else viewers format the column's plain cells from it
    sheet.freeze_panes = "A2"
    print_setup(sheet, title_rows="1:1", fit_width=not layout.split_after, page_numbers=False,
                left_cm=1.5, right_cm=1.0, top_cm=2.0, bottom_cm=1.6)
    if layout.split_after:  # whole columns per page at full size, not one shrunk page
        sheet.page_setup.scale = layout.scale
        sheet.page_setup.pageOrder = "overThenDown"
        sheet.col_breaks.append(Break(id=layout.split_after))
        sheet.print_title_cols = layout.repeat_columns
    sheet.oddHeader.left.text = settings.board.full_name
    sheet.oddHeader.center.text = "&B" + layout.title.format(year=settings.campaign.year)
    sheet.oddFooter.left.text = f"Số liệu đến {updated}"
    sheet.oddFooter.right.text = "Trang &P/&N"
    for part in (sheet.oddHeader.left, sheet.oddHeader.center, sheet.oddFooter.left,
                 sheet.oddFooter.right):
        part.font, part.size = FONT_NAME, 9
    head = {"font": _HEAD_FONT, "fill": _HEAD_FILL, "alignment": _HEAD_ALIGN}
    lines = max(wrapped_lines(h, w, SIZE, SIZE, bold=True)
                for h, w in zip(headers, layout.widths, strict=True))
    sheet.row_dimensions[1].height = row_height(lines, SIZE)
    sheet.row_dimensions[1].alignment = _WRAP
    sheet._intake_rows = 1  # type: ignore[attr-defined]
    sheet.append([_head_cell(sheet, h, head) for h in headers])
    return sheet


def _head_cell(sheet: Worksheet, text: str, style: dict[str, object]) -> WriteOnlyCell:
    cell = WriteOnlyCell(sheet, value=text)
    for name, attribute in style.items():
        setattr(cell, name, attribute)
    return cell


def _finish(sheet: Worksheet, columns: int) -> None:
    rows = getattr(sheet, "_intake_rows", 1)
    sheet.auto_filter.ref = f"A1:{get_column_letter(columns)}{rows}"


def build(store: Store, reference: Reference, settings: Settings,
          now: datetime | None = None) -> Workbook:
    book = Workbook(write_only=True)
    set_default_font(book, SIZE)
    set_default_alignment(book, _WRAP)
    names = {code: unit.name for code, unit in reference.units.items()}
    updated = short_time(now or datetime.now(TZ))

    summary = _sheet(book, SHEETS[0], SUMMARY, settings, updated)
    figures = units.summaries(store, reference)
    for item in figures:
        styles: Styles = {10: {"number_format": "0%"}}
        if item.invalid:
            styles[9] = {"fill": _ERROR_FILL}
        if item.late:
            styles[5] = {"fill": _LATE_FILL}
        _append(summary, [item.unit.name, status_label(item.status), item.submissions,
                          local(item.received_at), "Trễ hạn" if item.late else "", item.valid,
                          item.provincial, item.district, item.invalid, item.coverage], styles)
    last = len(figures) + 1
    bold = {"font": _HEAD_FONT}
    _append(summary, ["Tổng cộng", "", sum(i.submissions for i in figures), None, "",
                      sum(i.valid for i in figures), sum(i.provincial for i in figures),
                      sum(i.district for i in figures), sum(i.invalid for i in figures),
                      None], dict.fromkeys(range(1, 11), bold))
    summary.auto_filter.ref = f"A1:J{last}"
    chart = BarChart()
    chart.type = "col"
    chart.grouping = "stacked"
    chart.overlap = 100
    chart.title = "Số Chi đoàn đăng ký hợp lệ theo đơn vị"
    chart.y_axis.title = "Số Chi đoàn"
    data = ChartRef(summary, min_col=7, max_col=8, min_row=1, max_row=last)
    chart.add_data(data, titles_from_data=True)
    chart.set_categories(ChartRef(summary, min_col=1, min_row=2, max_row=last))
    chart.width, chart.height = 24, 10
    summary.add_chart(chart, f"A{last + 3}")

    order = {code: i for i, code in enumerate(
        sorted(names, key=lambda c: vietnamese_sort_key(names[c])))}
    listing = _sheet(book, SHEETS[1], ROWS, settings, updated)
    rows = submissions.current_rows(store)
    rows.sort(key=lambda r: (order.get(r["unit_code"], 99), vietnamese_sort_key(r["commune"]),
                             r["received_at"], r["file"], r["sheet"], r["row_number"]))
    invalid: Styles = {12: {"fill": _ERROR_FILL}, 13: {"fill": _ERROR_FILL}}
    for r in rows:
        _append(listing, [
            names.get(r["unit_code"], r["unit_code"]), r["commune"], r["branch"], r["party_cell"],
            r["cell_status"], r["members"] if r["members"] is not None else r["members_text"],
            LEVELS.get(r["level"] or "", ""), r["district_model_year"], r["secretary"],
            r["phone"], r["notes"], "Hợp lệ" if r["valid"] else "Lỗi", r["errors"], r["file"],
            r["row_number"], local(r["received_at"])], None if r["valid"] else invalid)
    _finish(listing, len(ROWS))

    errors = _sheet(book, SHEETS[2], FINDINGS, settings, updated)
    found = submissions.current_findings(store)
    found.sort(key=lambda f: (order.get(f["unit_code"], 99), f["submission"], f["file"],
                              f["sheet"], f["row_number"] or 0, f["column_letter"]))
    for f in found:
        # The suggestion the reply gave, after the message: staff can answer a unit's call
        # with the same words (the contract's columns stay as they are).
        text = f["message"] + (f" Gợi ý: {f['suggestion']}" if f["suggestion"] else "")
        _append(errors, [names.get(f["unit_code"], f["unit_code"]), f["file"], f["sheet"],
                         f["row_number"], f["column_letter"], f["code"],
                         LEVEL_LABELS.get(f["level"], f["level"]), text])
    _finish(errors, len(FINDINGS))

    cover = _sheet(book, SHEETS[3], COVERAGE, settings, updated)
    for item in figures:  # in Vietnamese unit order, coverage as decided at filing
        for commune in item.communes:
            _append(cover, [item.unit.name, commune.name, commune.title, commune.hamlets,
                            commune.registered, ", ".join(commune.missing_names)],
                    {6: {"fill": _ERROR_FILL}} if commune.missing else None)
    _finish(cover, len(COVERAGE))

    log = _sheet(book, SHEETS[4], LOG, settings, updated)
    replies: dict[int, list[str]] = {}
    for o in outbox.by_message(store):
        replies.setdefault(o["message"], []).append(
            f"{outbox_label(o['state']).capitalize()}: {kind_label(o['kind'])}")
    late: Styles = {1: {"fill": _LATE_FILL, "number_format": _DATE}}
    decided: dict[int, list[str]] = {}  # staff decisions on one message, beside it
    entries: list[tuple[str, int, list[object], Styles | None]] = []
    for a in events.actions(store):
        label = ACTION_LABELS.get(a["action"], a["action"])
        said = "; ".join(x for x in (a["detail"], a["note"]) if x)
        if a["message"] is not None:
            decided.setdefault(a["message"], []).append(
                f"{label} ({a['actor']}, {short_time(a['at'])})" + (f": {a['note']}"
                                                                    if a["note"] else ""))
        else:  # a decision about a unit, at its own time among the messages
            entries.append((a["at"], 1, [local(a["at"]), a["actor"], label,
                                         names.get(a["unit_code"] or "", ""), "", said, "", ""],
                            None))
    for m in messages.log(store):
        status = status_label(m["status"]) if m["status"] else "Đang xử lý"
        if m["detail"]:
            status += f" – {m['detail']}"
        for decision in decided.get(m["id"], []):
            status += f" → {decision}"
        entries.append((m["received_at"], 0, [
            local(m["received_at"]), m["sender"], m["subject"],
            names.get(m["unit_code"] or "", ""), m["attachments"], status,
            "; ".join(replies.get(m["id"], [])), m["message_id"]],
            late if m["late"] else None))
    entries.sort(key=lambda e: (datetime.fromisoformat(e[0]), e[1]))
    for _at, _kind, values, styles in entries:
        _append(log, values, styles)
    _finish(log, len(LOG))
    return book


def write(store: Store, reference: Reference, settings: Settings) -> Path:
    """Build and replace the workbook atomically (same folder temp file, then rename)."""
    path = settings.paths.workbook
    path.parent.mkdir(parents=True, exist_ok=True)
    book = build(store, reference, settings)
    for stale in path.parent.glob(".~intake-*.xlsx"):  # left by a process that was killed
        with contextlib.suppress(OSError):
            if time.time() - stale.stat().st_mtime > 600:
                stale.unlink()
    handle, temp = tempfile.mkstemp(prefix=".~intake-", suffix=".xlsx", dir=path.parent)
    os.close(handle)
    try:
        # mkstemp makes it 0600: give it the mode every other data file has (umask), so
        # staff in the service's group can open it like the store and the archive.
        os.chmod(temp, file_mode())
        book.save(temp)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return path
