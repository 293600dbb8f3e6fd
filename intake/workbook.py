"""The consolidated workbook (SPEC §7): a view of the store, rebuilt whole, written atomically.

Because it is built only from the store, ``intake rebuild`` gives the same content at any
time, and a crash while writing leaves the previous file in place (temp file + rename).

It is written by XlsxWriter in constant-memory mode: each row goes to a temporary file as
soon as the next one starts, so 105,000 rows (a national campaign) take seconds and a
steady few tens of MB; a row's styles and height must therefore be known when it is
written, and rows are written in order.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path

from xlsxwriter import Workbook
from xlsxwriter.format import Format
from xlsxwriter.worksheet import Worksheet

from .archive import file_mode
from .config import TZ, Settings
from .findings import LEVEL_LABELS
from .labels import ACTION_LABELS, LEVELS, kind_label, outbox_label, status_label
from .locks import cycle_lock
from .reference import Reference, load_reference
from .replies import short_time
from .sheets.layout import CM, FONT_NAME, row_height, wrapped_lines
from .store import Store, events, messages, open_store, outbox, submissions, units
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
# Every cell: Times New Roman, at the top of its row, wrapping when longer than its column.
# It is the workbook's default format (its Normal style and the format of every plain
# cell), and every other format below starts from it; rows are sized from the text
# (``_append``), as no viewer sizes the rows of a file it did not write.
_DEFAULT = {"font_name": FONT_NAME, "font_size": SIZE, "valign": "top", "text_wrap": True}
_HEAD = {"bold": True, "bg_color": "#DDEBF7", "align": "center", "valign": "vcenter"}
_BOLD = {"bold": True}
_ERROR_FILL = {"bg_color": "#FFE0E0"}  # a solid fill
_LATE_FILL = {"bg_color": "#FFF2CC"}
_PERCENT = {"num_format": "0%"}
_DATE = "dd/mm/yyyy hh:mm"
_CODE = {"font_size": SIZE - 2}  # codes, Message-IDs: Layout.small
_PIXELS = 7  # a column-width unit (a digit of the 11-point default font), in pixels


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


Styles = dict[int, dict[str, object]]  # column (from 1) -> format properties (fill, bold, …)
_PLAIN = frozenset({str, int, float, bool, datetime, type(None)})  # written as they are


@lru_cache(maxsize=8192)  # the texts that repeat (statuses, hamlets); ~1 MB, not 13
def _lines(text: str, width: float, size: float = SIZE) -> int:
    return wrapped_lines(text, width, size, SIZE)


@lru_cache(maxsize=64)
def _height(lines: int) -> float:
    """The height of a row ``lines`` lines high (at most 30), in XlsxWriter's pixels; the
    file then holds exactly the points ``row_height`` gives (``set_row`` would round them
    to whole pixels)."""
    return row_height(min(lines, 30), SIZE) * 4 / 3


class _Formats:
    """The workbook's cell formats, each made once: XlsxWriter writes a style record for
    every Format object, so one per cell would bloat the file and cost time. Each starts
    from the workbook's default (``_DEFAULT``: the font, at the top, wrapping)."""

    def __init__(self, book: Workbook) -> None:
        self.book = book
        self.made: dict[tuple, Format] = {}

    def __call__(self, style: dict[str, object] | None, small: bool = False,
                 date: bool = False) -> Format:
        key = (tuple(style.items()) if style else (), small, date)
        found = self.made.get(key)
        if found is None:
            properties: dict[str, object] = {"num_format": _DATE} if date else {}
            if small:
                properties.update(_CODE)
            properties.update(style or {})
            found = self.made[key] = self.book.add_format(properties)
        return found


@dataclass(eq=False)
class _Sheet:
    """A worksheet being written, row after row, with what writing a row needs (worked
    out once per sheet: the loop below runs for 1.5 million cells in a national rebuild)."""

    ws: Worksheet
    layout: Layout
    formats: _Formats
    rows: int = 1  # rows written, the header included
    small: tuple[bool, ...] = field(init=False)  # per column: in Layout.small
    plain: tuple[Format | None, ...] = field(init=False)  # per column: an unstyled cell's
    sizes: tuple[float, ...] = field(init=False)  # per column: the font size
    long: tuple[float, ...] = field(init=False)  # per column: longer text may wrap

    def __post_init__(self) -> None:
        columns = range(1, len(self.layout.widths) + 1)
        self.small = tuple(c in self.layout.small for c in columns)
        self.plain = tuple(self.formats(None, True) if small else None for small in self.small)
        self.sizes = tuple(SIZE - 2 if small else SIZE for small in self.small)
        # A text needs its lines counted only when it may not fit its column on one
        # line (no letter is wider than 1.8 digits).
        self.long = tuple((width - 1) / 1.8 for width in self.layout.widths)


def _append(sheet: _Sheet, values: list[object], styles: Styles | None = None) -> int:
    """Write one row below the last one and return its Excel row number.

    Rows are streamed (constant-memory mode), which is what keeps a 105,000-row rebuild
    fast and small; so a row's styles and height are settled as it is written. A plain
    cell takes the workbook's default format (no style of its own); the row gets the
    height of its longest text, as no viewer sizes the rows of a file it did not write.
    Text is always written as text: a sender's "=…" never becomes a formula.
    """
    row = sheet.rows
    sheet.rows = row + 1
    ws, formats, small, plain, long = sheet.ws, sheet.formats, sheet.small, sheet.plain, \
        sheet.long
    write_string, write_number = ws.write_string, ws.write_number
    tallest = 1
    for column, value in enumerate(values):
        style = styles.get(column + 1) if styles else None
        kind = type(value)
        if kind not in _PLAIN:  # anything else is shown as its text
            value, kind = str(value), str
        if kind is str:
            text: str = value  # type: ignore[assignment]
            if not (text.isprintable() and len(text) <= MAX_TEXT):
                text = safe(text)  # type: ignore[assignment]
            if not text:
                if style is not None:
                    ws.write_blank(row, column, None, formats(style))
                continue
            if len(text) > long[column]:
                lines = _lines(text, sheet.layout.widths[column], sheet.sizes[column])
                if lines > tallest:
                    tallest = lines
            write_string(row, column, text,
                         plain[column] if style is None else formats(style, small[column]))
        elif value is None:
            if style is not None:  # an empty cell keeps its fill (or bold, in a total)
                ws.write_blank(row, column, None, formats(style))
        elif kind is datetime:
            ws.write_datetime(row, column, value, formats(style, small[column], True))
        elif kind is bool:
            ws.write_boolean(row, column, value,
                             plain[column] if style is None else formats(style, small[column]))
        else:
            write_number(row, column, value,
                         plain[column] if style is None else formats(style, small[column]))
    if tallest > 1:
        ws.set_row_pixels(row, _height(tallest))
    return row + 1


def _header_footer(text: str) -> str:
    """Text as a page header or footer shows it ("&" starts a code there)."""
    return text.replace("&", "&&")


def _sheet(book: Workbook, formats: _Formats, title: str, headers: list[str],
           settings: Settings, updated: str) -> _Sheet:
    """A sheet with its header row (frozen, repeated on every printed page) and its print
    layout: A4 landscape, the sheet's title and the board in the page header, when the
    figures were taken and the page number in the footer."""
    layout = LAYOUTS[title]
    ws = book.add_worksheet(title)
    for index, width in enumerate(layout.widths):
        # In pixels, so the file holds ``width`` itself: the unit wrapped_lines counts in
        # (set_column would add the cell's padding to it).
        ws.set_column_pixels(index, index, width * _PIXELS)
    ws.freeze_panes(1, 0)
    # What sheets.layout.print_setup gives the official form, in XlsxWriter's words.
    ws.set_landscape()
    ws.set_paper(9)  # A4
    ws.set_margins(left=1.5 * CM, right=1.0 * CM, top=2.0 * CM, bottom=1.6 * CM)
    ws.center_horizontally()
    ws.repeat_rows(0)
    if layout.split_after:  # whole columns per page at full size, not one shrunk page
        ws.set_print_scale(layout.scale)
        ws.print_across()
        ws.set_v_pagebreaks([layout.split_after])
        ws.repeat_columns(layout.repeat_columns)
    else:
        ws.fit_to_pages(1, 0)  # one page wide, as many down as needed
    font = f'&"{FONT_NAME}"&9 '
    title_line = layout.title.format(year=settings.campaign.year)
    ws.set_header(f"&L{font}{_header_footer(settings.board.full_name)}"
                  f"&C{font}&B{_header_footer(title_line)}", {"margin": 0.8 * CM})
    ws.set_footer(f"&L{font}Số liệu đến {updated}&R{font}Trang &P/&N", {"margin": 0.8 * CM})
    lines = max(wrapped_lines(h, w, SIZE, SIZE, bold=True)
                for h, w in zip(headers, layout.widths, strict=True))
    ws.set_row_pixels(0, _height(lines))
    head = formats(_HEAD)
    for column, text in enumerate(headers):
        ws.write_string(0, column, text, head)
    return _Sheet(ws, layout, formats)


def _finish(sheet: _Sheet, columns: int) -> None:
    """Filters in the header row, over every row written."""
    sheet.ws.autofilter(0, 0, sheet.rows - 1, columns - 1)


def build(store: Store, reference: Reference, settings: Settings, target: Path,
          now: datetime | None = None) -> None:
    """Write the workbook to ``target`` (which ``write`` then puts in place)."""
    book = Workbook(str(target), {
        "constant_memory": True,
        "tmpdir": str(target.parent),  # the rows being written stay beside the data
        "default_format_properties": _DEFAULT,
        # Cells are written by type (write_string…), never guessed from text; these only
        # make sure no later write() can turn a sender's text into a formula or a link.
        "strings_to_formulas": False, "strings_to_urls": False, "strings_to_numbers": False,
    })
    formats = _Formats(book)
    names = {code: unit.name for code, unit in reference.units.items()}
    updated = short_time(now or datetime.now(TZ))

    summary = _sheet(book, formats, SHEETS[0], SUMMARY, settings, updated)
    figures = units.summaries(store, reference)
    for item in figures:
        styles: Styles = {10: _PERCENT}
        if item.invalid:
            styles[9] = _ERROR_FILL
        if item.late:
            styles[5] = _LATE_FILL
        _append(summary, [item.unit.name, status_label(item.status), item.submissions,
                          local(item.received_at), "Trễ hạn" if item.late else "", item.valid,
                          item.provincial, item.district, item.invalid, item.coverage], styles)
    last = len(figures) + 1
    _append(summary, ["Tổng cộng", "", sum(i.submissions for i in figures), None, "",
                      sum(i.valid for i in figures), sum(i.provincial for i in figures),
                      sum(i.district for i in figures), sum(i.invalid for i in figures),
                      None], dict.fromkeys(range(1, 11), _BOLD))
    summary.ws.autofilter(0, 0, last - 1, 9)  # the units, not the totals row
    chart = book.add_chart({"type": "column", "subtype": "stacked"})
    for column in (6, 7):  # Cấp tỉnh, Cấp huyện (G, H) stacked, one bar per unit
        chart.add_series({"name": [SHEETS[0], 0, column],
                          "categories": [SHEETS[0], 1, 0, last - 1, 0],
                          "values": [SHEETS[0], 1, column, last - 1, column],
                          "overlap": 100})
    chart.set_title({"name": "Số Chi đoàn đăng ký hợp lệ theo đơn vị"})
    chart.set_y_axis({"name": "Số Chi đoàn"})
    # As wide as the table above it, so that it ends where column K starts whatever
    # widths a viewer gives the columns (XlsxWriter anchors a chart to cells), and 10 cm
    # high.
    chart.set_size({"width": sum(LAYOUTS[SHEETS[0]].widths) * _PIXELS,
                    "height": round(10 * 96 / 2.54)})
    summary.ws.insert_chart(last + 2, 0, chart)

    order = {code: i for i, code in enumerate(
        sorted(names, key=lambda c: vietnamese_sort_key(names[c])))}
    listing = _sheet(book, formats, SHEETS[1], ROWS, settings, updated)
    rows = submissions.current_rows_in_order(store, order, vietnamese_sort_key)
    invalid: Styles = {12: _ERROR_FILL, 13: _ERROR_FILL}
    for r in rows:
        _append(listing, [
            names.get(r["unit_code"], r["unit_code"]), r["commune"], r["branch"], r["party_cell"],
            r["cell_status"], r["members"] if r["members"] is not None else r["members_text"],
            LEVELS.get(r["level"] or "", ""), r["district_model_year"], r["secretary"],
            r["phone"], r["notes"], "Hợp lệ" if r["valid"] else "Lỗi", r["errors"], r["file"],
            r["row_number"], local(r["received_at"])], None if r["valid"] else invalid)
    _finish(listing, len(ROWS))

    errors = _sheet(book, formats, SHEETS[2], FINDINGS, settings, updated)
    found = submissions.current_findings_in_order(store, order)
    for f in found:
        # The suggestion the reply gave, after the message: staff can answer a unit's call
        # with the same words (the contract's columns stay as they are).
        text = f["message"] + (f" Gợi ý: {f['suggestion']}" if f["suggestion"] else "")
        _append(errors, [names.get(f["unit_code"], f["unit_code"]), f["file"], f["sheet"],
                         f["row_number"], f["column_letter"], f["code"],
                         LEVEL_LABELS.get(f["level"], f["level"]), text])
    _finish(errors, len(FINDINGS))

    cover = _sheet(book, formats, SHEETS[3], COVERAGE, settings, updated)
    for item in figures:  # in Vietnamese unit order, coverage as decided at filing
        for commune in item.communes:
            _append(cover, [item.unit.name, commune.name, commune.title, commune.hamlets,
                            commune.registered, ", ".join(commune.missing_names)],
                    {6: _ERROR_FILL} if commune.missing else None)
    _finish(cover, len(COVERAGE))

    log = _sheet(book, formats, SHEETS[4], LOG, settings, updated)
    replies: dict[int, list[str]] = {}
    for o in outbox.by_message(store):
        replies.setdefault(o["message"], []).append(
            f"{outbox_label(o['state']).capitalize()}: {kind_label(o['kind'])}")
    late: Styles = {1: _LATE_FILL}  # a date: _append gives it the date format
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
    book.close()


def rebuild(settings: Settings) -> Path:
    """Rewrite the workbook from the store alone (``intake rebuild``), in its turn."""
    store = open_store(settings.paths.data_dir, settings.paths.workbook)
    try:
        with cycle_lock(settings.paths.data_dir):
            reference = load_reference(settings.paths.reference_dir)
            units.restore(store, reference)
            return write(store, reference, settings)
    finally:
        store.close()


def write(store: Store, reference: Reference, settings: Settings) -> Path:
    """Build and replace the workbook atomically: a temp file in the same folder, flushed
    to disk, then renamed over the old one, so a reader or a crash sees either the old
    workbook or the new one, whole."""
    path = settings.paths.workbook
    path.parent.mkdir(parents=True, exist_ok=True)
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
        build(store, reference, settings, Path(temp))
        with open(temp, "rb") as written:
            os.fsync(written.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return path
