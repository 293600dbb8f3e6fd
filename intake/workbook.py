"""The consolidated workbook (SPEC §7): a view of the store, rebuilt whole, written atomically.

Because it is built only from the store, ``intake rebuild`` gives the same content at any
time, and a crash while writing leaves the previous file in place (temp file + rename).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from datetime import datetime
from functools import lru_cache
from pathlib import Path

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.chart import BarChart
from openpyxl.chart import Reference as ChartRef
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.properties import PageSetupProperties
from openpyxl.worksheet.worksheet import Worksheet

from .archive import file_mode
from .config import TZ, Settings
from .findings import LEVEL_LABELS
from .reference import Reference
from .store import Store
from .text import clean, name_key, vietnamese_sort_key

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

STATUS_LABELS = {
    "accepted": "Đã tiếp nhận",
    "needs-correction": "Cần sửa",
    "no-attachment": "Không có tệp",
    "unknown-sender": "Người gửi lạ",
    "held": "Chờ Ban xem xét",
    "ignored": "Bỏ qua (thư tự động)",
    "rejected-late": "Từ chối (trễ hạn)",
    "staff-command": "Lệnh của cán bộ",
}
OUTBOX_LABELS = {"queued": "Đang chờ gửi", "sent": "Đã gửi", "failed": "Gửi lỗi",
                 "bounced": "Bị trả lại", "dry-run": "Chạy thử (không gửi)",
                 "suppressed": "Không gửi"}
LEVELS = {"provincial": "Cấp tỉnh", "district": "Cấp huyện"}
MAX_TEXT = 32_000
_HEAD_FONT = Font(bold=True)
_HEAD_FILL = PatternFill("solid", fgColor="DDEBF7")
_ERROR_FILL = PatternFill("solid", fgColor="FFE0E0")
_LATE_FILL = PatternFill("solid", fgColor="FFF2CC")
_DATE = "dd/mm/yyyy hh:mm"


def status_label(status: str | None) -> str:
    """The Vietnamese label with the contract value, so people and programs both read it."""
    if not status:
        return "Chưa gửi"
    return f"{STATUS_LABELS.get(status, status)} ({status})"


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


def _append(sheet: Worksheet, values: list[object], styles: Styles | None = None) -> int:
    """Stream one row (write-only mode) and return its Excel row number.

    Write-only streaming is what keeps a 20,000-row rebuild linear and fast; styles
    therefore have to be known when the row is written.
    """
    number = getattr(sheet, "_intake_rows", 0) + 1
    sheet._intake_rows = number  # type: ignore[attr-defined]
    styles = styles or {}
    row: list[object] = []
    for column, value in enumerate(values, start=1):
        value = safe(value)
        style = styles.get(column)
        if style is None and not isinstance(value, datetime) and not (
                isinstance(value, str) and value.startswith("=")):
            row.append(value)  # plain strings are stored as text; only "=" makes a formula
            continue
        cell = WriteOnlyCell(sheet, value=value)
        if isinstance(value, str):
            cell.data_type = "s"  # never a formula, whatever it starts with
        elif isinstance(value, datetime):
            cell.number_format = _DATE
        for name, attribute in (style or {}).items():
            setattr(cell, name, attribute)
        row.append(cell)
    sheet.append(row)
    return number


def _sheet(book: Workbook, title: str, headers: list[str], widths: list[int]) -> Worksheet:
    sheet = book.create_sheet(title)
    for index, width in enumerate(widths, start=1):
        sheet.column_dimensions[get_column_letter(index)].width = width
    sheet.freeze_panes = "A2"
    sheet.page_setup.orientation = "landscape"
    sheet.page_setup.paperSize = "9"  # A4
    sheet.page_setup.fitToWidth = 1
    sheet.page_setup.fitToHeight = 0  # as many pages down as needed, one page across
    sheet.sheet_properties.pageSetUpPr = PageSetupProperties(fitToPage=True)
    head = {"font": _HEAD_FONT, "fill": _HEAD_FILL,
            "alignment": Alignment(wrap_text=True, vertical="center")}
    _append(sheet, headers, dict.fromkeys(range(1, len(headers) + 1), head))
    return sheet


def _finish(sheet: Worksheet, columns: int) -> None:
    rows = getattr(sheet, "_intake_rows", 1)
    sheet.auto_filter.ref = f"A1:{get_column_letter(columns)}{rows}"


def _coverage(store: Store, reference: Reference, unit_code: str) -> list[tuple]:
    """(commune, hamlets, registered, missing names) for each titled commune of a unit."""
    registered = {
        (r["commune_code"], r["hamlet_key"])
        for r in store.query("SELECT commune_code, hamlet_key FROM rows WHERE unit_code=? AND"
                             " current=1 AND valid=1", (unit_code,))
    }
    out = []
    for commune in sorted(reference.titled_communes(unit_code),
                          key=lambda c: vietnamese_sort_key(c.name)):
        missing = sorted((c.hamlet for c in commune.cells
                          if (commune.code, name_key(c.hamlet)) not in registered),
                         key=vietnamese_sort_key)
        out.append((commune, len(commune.cells), len(commune.cells) - len(missing), missing))
    return out


def unit_summaries(store: Store, reference: Reference) -> list[dict[str, object]]:
    """Per-unit figures shared by the workbook's first sheet and ``intake status``."""
    out = []
    for unit in sorted(reference.units.values(), key=lambda u: vietnamese_sort_key(u.name)):
        last = store.one("SELECT * FROM submissions WHERE unit_code=? ORDER BY received_at DESC,"
                         " id DESC LIMIT 1", (unit.code,))
        count = store.one("SELECT COUNT(*) FROM submissions WHERE unit_code=?", (unit.code,))[0]
        rows = store.query("SELECT level, valid FROM rows WHERE unit_code=? AND current=1",
                           (unit.code,))
        errors = store.one("SELECT COUNT(*) FROM findings WHERE unit_code=? AND current=1 AND"
                           " level='error'", (unit.code,))[0]
        coverage = _coverage(store, reference, unit.code)
        total = sum(c[1] for c in coverage)
        done = sum(c[2] for c in coverage)
        status = None
        if last is None:
            message = store.one("SELECT status FROM messages WHERE unit_code=? AND status IS NOT"
                                " NULL ORDER BY received_at DESC, id DESC LIMIT 1", (unit.code,))
            status = message["status"] if message else None
        else:
            status = last["status"]
            if status in ("accepted", "needs-correction"):
                status = "needs-correction" if errors else "accepted"
        out.append({
            "unit": unit, "status": status, "count": count,
            "received_at": last["received_at"] if last else None,
            "late": bool(last and last["late"]),
            "valid": sum(1 for r in rows if r["valid"]),
            "provincial": sum(1 for r in rows if r["valid"] and r["level"] == "provincial"),
            "district": sum(1 for r in rows if r["valid"] and r["level"] == "district"),
            "invalid": sum(1 for r in rows if not r["valid"]),
            "coverage": (done / total) if total else None,
            "communes": coverage,
        })
    return out


def build(store: Store, reference: Reference, settings: Settings) -> Workbook:
    book = Workbook(write_only=True)
    names = {code: unit.name for code, unit in reference.units.items()}

    summary = _sheet(book, SHEETS[0], SUMMARY, [26, 24, 9, 17, 9, 12, 9, 9, 10, 14])
    figures = unit_summaries(store, reference)
    for item in figures:
        styles: Styles = {10: {"number_format": "0%"}}
        if item["invalid"]:
            styles[9] = {"fill": _ERROR_FILL}
        if item["late"]:
            styles[5] = {"fill": _LATE_FILL}
        _append(summary, [item["unit"].name, status_label(item["status"]),  # type: ignore[union-attr]
                          item["count"], local(item["received_at"]),  # type: ignore[arg-type]
                          "Trễ hạn" if item["late"] else "", item["valid"], item["provincial"],
                          item["district"], item["invalid"], item["coverage"]], styles)
    last = len(figures) + 1
    bold = {"font": _HEAD_FONT}
    _append(summary, ["Tổng cộng", "", sum(i["count"] for i in figures), None, "",  # type: ignore[misc]
                      sum(i["valid"] for i in figures), sum(i["provincial"] for i in figures),  # type: ignore[misc]
                      sum(i["district"] for i in figures), sum(i["invalid"] for i in figures),  # type: ignore[misc]
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
    listing = _sheet(book, SHEETS[1], ROWS, [22, 20, 22, 22, 22, 10, 11, 12, 20, 13, 18, 11, 40,
                                             22, 7, 17])
    rows = store.query("SELECT * FROM rows WHERE current=1")
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

    errors = _sheet(book, SHEETS[2], FINDINGS, [22, 24, 16, 7, 6, 28, 9, 80])
    found = store.query("SELECT * FROM findings WHERE current=1")
    found.sort(key=lambda f: (order.get(f["unit_code"], 99), f["submission"], f["file"],
                              f["sheet"], f["row_number"] or 0, f["column_letter"]))
    wrap: Styles = {8: {"alignment": Alignment(wrap_text=True)}}
    for f in found:
        _append(errors, [names.get(f["unit_code"], f["unit_code"]), f["file"], f["sheet"],
                         f["row_number"], f["column_letter"], f["code"],
                         LEVEL_LABELS.get(f["level"], f["level"]), f["message"]], wrap)
    _finish(errors, len(FINDINGS))

    cover = _sheet(book, SHEETS[3], COVERAGE, [22, 24, 11, 12, 11, 60])
    for item in figures:  # already in Vietnamese unit order, coverage computed once
        code = item["unit"].code  # type: ignore[union-attr]
        for commune, total, done, missing in item["communes"]:  # type: ignore[union-attr]
            style: dict[str, object] = {"alignment": Alignment(wrap_text=True)}
            if missing:
                style["fill"] = _ERROR_FILL
            _append(cover, [names[code], commune.name, commune.title, total, done,
                            ", ".join(missing)], {6: style})
    _finish(cover, len(COVERAGE))

    log = _sheet(book, SHEETS[4], LOG, [17, 30, 36, 22, 36, 24, 30, 40])
    replies: dict[int, list[str]] = {}
    for o in store.query("SELECT message, kind, state FROM outbox ORDER BY id"):
        replies.setdefault(o["message"], []).append(
            f"{OUTBOX_LABELS.get(o['state'], o['state'])}: {o['kind']}")
    late: Styles = {1: {"fill": _LATE_FILL, "number_format": _DATE}}
    for m in store.query("SELECT * FROM messages WHERE duplicate_of IS NULL"
                         " ORDER BY received_at, id"):
        status = status_label(m["status"]) if m["status"] else "Đang xử lý"
        if m["detail"]:
            status += f" – {m['detail']}"
        _append(log, [local(m["received_at"]), m["sender"], m["subject"],
                      names.get(m["unit_code"] or "", ""), m["attachments"], status,
                      "; ".join(replies.get(m["id"], [])), m["message_id"]],
                late if m["late"] else None)
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
