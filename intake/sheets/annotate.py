"""A sender's own file with every wrong cell filled red and a comment saying why.

.xlsx/.xlsm files are opened with openpyxl so the unit's formatting stays (macros are
dropped: ``keep_vba`` is off); other formats are rebuilt as .xlsx from the values read.
Notes that have no cell (a missing column, coverage) go on a first sheet.
"""

from __future__ import annotations

import io
from pathlib import Path, PurePath

from openpyxl import Workbook, load_workbook
from openpyxl.comments import Comment
from openpyxl.styles import Font, PatternFill

from ..findings import Finding
from ..mail.attachments import safe_name
from .report import FileReport, Report

RED = PatternFill("solid", fgColor="FF9999")
YELLOW = PatternFill("solid", fgColor="FFE699")
NOTES_SHEET = "Ghi chú kiểm tra"


def _open(report: FileReport) -> Workbook | None:
    if PurePath(report.file.lower()).suffix in (".xlsx", ".xlsm") and report.data:
        try:
            return load_workbook(io.BytesIO(report.data), keep_vba=False, rich_text=False)
        except Exception:  # openpyxl fails on files calamine reads (Strict OOXML…): rebuild
            pass
    if not report.headers:
        return None
    book = Workbook()
    book.remove(book.active)
    for header in report.headers:
        sheet = book.create_sheet(header.table.sheet[:31] or "Sheet")
        for r, row in enumerate(header.table.rows, start=1):
            for c, value in enumerate(row, start=1):
                if value is not None:
                    cell = sheet.cell(r, c, value)
                    if isinstance(value, str):
                        cell.data_type = "s"
    return book


def _comment(findings: list[Finding]) -> Comment:
    lines = []
    for f in findings:
        line = f"[{f.code}] {f.message}"
        if f.suggestion:
            line += f" {f.suggestion}"
        lines.append(line)
    comment = Comment("\n".join(lines)[:2000], "Ban TC-KT")
    comment.width, comment.height = 320, 40 + 40 * len(lines)
    return comment


def annotate(report: FileReport, extra: list[Finding] = ()) -> bytes | None:  # type: ignore[assignment]
    """The annotated copy as .xlsx bytes, or None when the file could not be read at all."""
    book = _open(report)
    if book is None:
        return None
    by_cell: dict[tuple[str, int, str], list[Finding]] = {}
    notes: list[Finding] = list(extra)
    for f in report.all_findings:
        if f.sheet in book.sheetnames and f.row and f.column:
            by_cell.setdefault((f.sheet, f.row, f.column), []).append(f)
        else:
            notes.append(f)
    for (sheet, row, column), items in by_cell.items():
        cell = book[sheet][f"{column}{row}"]
        cell.fill = RED if any(f.is_error for f in items) else YELLOW
        cell.comment = _comment(items)
    if notes:
        sheet = book.create_sheet(NOTES_SHEET, 0)
        sheet.append(["Nội dung cần sửa", "Gợi ý"])
        for cell in sheet[1]:
            cell.font = Font(bold=True)
        for f in notes:
            sheet.append([f.message, f.suggestion])
            for cell in sheet[sheet.max_row]:
                cell.data_type = "s"
        sheet.column_dimensions["A"].width = 100
        sheet.column_dimensions["B"].width = 50
        book.active = 0
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def annotated_name(name: str) -> str:
    return safe_name(PurePath(name.split("/")[-1]).stem + "_can-sua.xlsx")


def annotate_report(report: Report, folder: Path) -> list[Path]:
    """Write one annotated copy per file into ``folder`` (``intake check --annotate``)."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for index, file in enumerate(report.files):
        data = annotate(file, report.coverage if index == 0 else [])
        if data is None:
            continue
        path = folder / annotated_name(file.file)
        path.write_bytes(data)
        written.append(path)
    return written
