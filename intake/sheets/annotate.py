"""A sender's own file with every wrong cell filled red and a comment saying why.

Formats openpyxl can edit (``Format.editable`` in ``formats.py``: .xlsx, .xlsm) are opened
with it so the unit's formatting stays (macros are dropped: ``keep_vba`` is off); other
formats are rebuilt as .xlsx from the values read.
Notes that have no cell (a missing column, coverage) go on a first sheet.
"""

from __future__ import annotations

import io
import logging
import re
from pathlib import Path, PurePath

from openpyxl import Workbook, load_workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.comments import Comment
from openpyxl.styles import Font, PatternFill

from ..findings import Finding, row_ranges
from ..formats import format_of
from ..text import safe_filename
from .read import column_letter
from .report import FileReport, Report

log = logging.getLogger(__name__)
RED = PatternFill("solid", fgColor="FF9999")
YELLOW = PatternFill("solid", fgColor="FFE699")
NOTES_SHEET = "Ghi chú kiểm tra"


FAST_ROWS = 2_000  # above this, rebuild in write-only mode instead of editing in place


def _open(report: FileReport) -> Workbook | None:
    form = format_of(report.file)
    if form is not None and form.editable and report.data:
        try:
            return load_workbook(io.BytesIO(report.data), keep_vba=False, rich_text=False)
        except Exception as exc:  # openpyxl fails on files calamine reads (Strict OOXML…)
            log.info("openpyxl cannot open %s (%s: %s); the annotated copy is rebuilt from "
                     "the values read", report.file, type(exc).__name__, exc)
    if not report.headers:
        return None
    book = Workbook()
    book.remove(book.active)
    for header in report.headers:
        sheet = book.create_sheet(header.table.sheet[:31] or "Sheet")
        for r, row in enumerate(header.table.rows, start=1):
            for c, value in enumerate(row, start=1):
                if value is not None:
                    cell = sheet.cell(r, c, _value(value))
                    if isinstance(value, str):
                        cell.data_type = "s"
    return book


def _value(value: object) -> object:
    """Cell text as openpyxl will write it: control characters (a CSV may hold \x01)
    have no place in XML, and one of them must not cost the unit its reply."""
    if isinstance(value, str) and not value.isprintable():
        return ILLEGAL_CHARACTERS_RE.sub("", value)
    return value


_ROW_PREFIX = re.compile(r"^Dòng (\d+): ")


def _comment(findings: list[Finding]) -> Comment:
    """One line per mistake: the same one on several rows of a merged cell is said once,
    naming the rows ("Dòng 8–12: “Xã Không Có” không thuộc …")."""
    grouped: dict[tuple[str, str, str], list[int]] = {}
    for f in findings:
        match = _ROW_PREFIX.match(f.message)
        rest = f.message[match.end():] if match else f.message
        grouped.setdefault((f.code, rest, f.suggestion), []).append(
            int(match.group(1)) if match else 0)
    lines = []
    for (_code, rest, suggestion), rows in grouped.items():
        numbers = [r for r in rows if r]
        # Vietnamese only, where people read: the code stays in `intake check` and JSON.
        line = (f"Dòng {row_ranges(numbers)}: " if numbers else "") + rest
        if suggestion:
            line += f" {suggestion}"
        lines.append(line)
    comment = Comment(str(_value("\n".join(lines)[:2000])), "Ban TC-KT")
    comment.width, comment.height = 320, 40 + 40 * len(lines)
    return comment


def _origins(report: FileReport) -> dict[tuple[str, int, str], tuple[int, str]]:
    """(sheet, row, column) of each cell a merge covers -> its merge's first cell, where
    the value (and so the mark) is shown."""
    out: dict[tuple[str, int, str], tuple[int, str]] = {}
    for header in report.headers:
        for r1, c1, r2, c2 in header.table.merged:
            if (r2 - r1 + 1) * (c2 - c1 + 1) > 100_000:
                continue
            for r in range(r1, r2 + 1):
                for c in range(c1, c2 + 1):
                    if (r, c) != (r1, c1):
                        out[(header.table.sheet, r + 1, column_letter(c + 1))] = (
                            r1 + 1, column_letter(c1 + 1))
    return out


def _place(f: Finding, origins: dict[tuple[str, int, str], tuple[int, str]]) -> tuple[int, str]:
    return origins.get((f.sheet, f.row or 0, f.column), (f.row or 0, f.column))


def _notes_rows(notes: list[Finding]) -> list[list[str]]:
    return [["Nội dung cần sửa", "Gợi ý"],
            *[[str(_value(f.message)), str(_value(f.suggestion))] for f in notes]]


def _annotate_fast(report: FileReport, extra: list[Finding]) -> bytes:
    """Large files: stream a new workbook (values, red cells, comments) in write-only mode.

    Loading and saving a 20,000-row workbook with openpyxl in place takes seconds; the
    unit's formatting is kept only for files small enough to edit in place.
    """
    from openpyxl.cell import WriteOnlyCell

    by_sheet: dict[str, dict[tuple[int, str], list[Finding]]] = {}
    notes: list[Finding] = list(extra)
    sheets = {h.table.sheet for h in report.headers}
    origins = _origins(report)
    for f in report.all_findings:
        if f.sheet in sheets and f.row and f.column:
            by_sheet.setdefault(f.sheet, {}).setdefault(_place(f, origins), []).append(f)
        else:
            notes.append(f)
    book = Workbook(write_only=True)
    if notes:
        sheet = book.create_sheet(NOTES_SHEET)
        for values in _notes_rows(notes):
            sheet.append(values)
    for header in report.headers:
        marks = by_sheet.get(header.table.sheet, {})
        sheet = book.create_sheet(header.table.sheet[:31] or "Sheet")
        letters: dict[int, str] = {}
        for r, row in enumerate(header.table.rows, start=1):
            out = []
            for c, value in enumerate(row, start=1):
                letter = letters.get(c) or letters.setdefault(c, column_letter(c))
                items = marks.get((r, letter))
                if items is None and not isinstance(value, str):
                    out.append(value)
                    continue
                value = _value(value)
                cell = WriteOnlyCell(sheet, value=value)
                if isinstance(value, str):
                    cell.data_type = "s"
                if items:
                    cell.fill = RED if any(f.is_error for f in items) else YELLOW
                    cell.comment = _comment(items)
                out.append(cell)
            sheet.append(out)
    stream = io.BytesIO()
    book.save(stream)
    return stream.getvalue()


def annotate(report: FileReport, extra: list[Finding] = ()) -> bytes | None:  # type: ignore[assignment]
    """The annotated copy as .xlsx bytes, or None when the file could not be read at all."""
    if report.headers and sum(len(h.table.rows) for h in report.headers) > FAST_ROWS:
        return _annotate_fast(report, list(extra))
    book = _open(report)
    if book is None:
        return None
    by_cell: dict[tuple[str, int, str], list[Finding]] = {}
    notes: list[Finding] = list(extra)
    origins = _origins(report)
    for f in report.all_findings:
        if f.sheet in book.sheetnames and f.row and f.column:
            by_cell.setdefault((f.sheet, *_place(f, origins)), []).append(f)
        else:
            notes.append(f)
    for (sheet, row, column), items in by_cell.items():
        cell = book[sheet][f"{column}{row}"]
        cell.fill = RED if any(f.is_error for f in items) else YELLOW
        cell.comment = _comment(items)
    if notes:
        sheet = book.create_sheet(NOTES_SHEET, 0)
        for number, values in enumerate(_notes_rows(notes), start=1):
            for column, value in enumerate(values, start=1):
                cell = sheet.cell(number, column, value)
                cell.data_type = "s"
                if number == 1:
                    cell.font = Font(bold=True)
        sheet.column_dimensions["A"].width = 100
        sheet.column_dimensions["B"].width = 50
        book.active = 0
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def annotated_name(name: str) -> str:
    """The annotated copy's name: the sender's own (a zip member's, for one read from a
    zip) with "_can-sua", always .xlsx (what ``annotate`` writes)."""
    return safe_filename(PurePath(name.split("/")[-1]).stem + "_can-sua.xlsx")


def annotate_report(report: Report, folder: Path) -> list[Path]:
    """Write one annotated copy per file into ``folder`` (``intake check --annotate``)."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for file in report.files:
        data = annotate(file, file.coverage)
        if data is None:
            continue
        path = folder / annotated_name(file.file)
        path.write_bytes(data)
        written.append(path)
    return written
