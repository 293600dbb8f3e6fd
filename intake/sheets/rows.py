"""Cells under a header -> typed registration rows, with the sender's row numbers kept.

Parsing never fails: a value that cannot be read keeps its raw text and a ``None`` typed
value, and the checks turn that into a finding that quotes what the sender wrote.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

from ..text import clean, fold
from .header import Header
from .read import column_letter

MARKS_YES = {"x", "1", "co", "v", "yes", "true", "dung", "dk", "dang ky", "+"}
MARKS_YES_RAW = {"✓", "✔", "☑", "✗", "☒", "●", "•"}
MARKS_NO = {"0", "khong", "no", "false", "-"}

_FOOTER = re.compile(
    r"^(ghi chu|luu y|nguoi lap|nguoi lap bieu|t ?m |tm |noi nhan|xac nhan|bi thu$|pho bi thu"
    r"|ban thuong vu|k ?t |kt |ngay \d+ thang|.*ngay \d+ thang \d+ nam)"
)
_TOTAL = re.compile(r"^(tong cong|tong so|tong|cong)\b")
_MEMBERS = re.compile(r"^(\d+)(?:[.,]0+)?\s*(?:dv|doan vien|nguoi|d v)?$")
_YEAR = re.compile(r"(?<!\d)(19\d{2}|20\d{2})(?!\d)")

DATA_FIELDS = ("unit", "commune", "branch", "members", "party_cell")


@dataclass
class Row:
    """One registration row as read: raw text per field, typed values, and where it was."""

    file: str
    sheet: str
    number: int  # Excel row number (1-based), as the sender sees it
    raw: dict[str, str] = field(default_factory=dict)
    columns: dict[str, str] = field(default_factory=dict)  # field -> column letter
    members: int | None = None
    level: str | None = None  # "provincial" | "district"
    recognised_year: int | None = None
    registering: bool = False
    district_model_year: int | None = None
    problems: dict[str, str] = field(default_factory=dict)  # field -> why it is unreadable

    def text(self, name: str) -> str:
        return self.raw.get(name, "")

    def column(self, name: str) -> str:
        return self.columns.get(name, "")


def mark(value: object) -> bool | None:
    """A tick cell: True, False (empty or a "no"), or None when it is something else."""
    text = clean(value)
    if not text:
        return False
    if text in MARKS_YES_RAW:
        return True
    folded = fold(text)
    if folded in MARKS_YES:
        return True
    if folded in MARKS_NO:
        return False
    return None


def members(value: object) -> int | None:
    """A member count: 15, 15.0, "15", "15 ĐV"; None for anything not a whole number."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    match = _MEMBERS.match(fold(value))
    return int(match.group(1)) if match else None


def year(value: object) -> int | None:
    """A year written as 2019, 2019.0, "2019", "năm 2019" or a date."""
    if isinstance(value, dt.date):
        return value.year
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value if 1900 <= value <= 2100 else None
    found = _YEAR.findall(clean(value))
    return int(found[0]) if len(found) == 1 else None


def level_text(value: object) -> str | None:
    """A single "Cấp đăng ký" cell: "Cấp tỉnh"/"Tỉnh" or "Cấp huyện"/"Huyện"/"Thành phố"."""
    folded = fold(value)
    provincial = bool(re.search(r"\btinh\b", folded))
    district = bool(re.search(r"\b(huyen|thanh pho|tp)\b", folded))
    if provincial != district:
        return "provincial" if provincial else "district"
    return None


def status_text(value: object) -> tuple[int | None, bool] | None:
    """A single status cell: ("Đã công nhận năm 2019") -> (2019, False); "Đăng ký 2021" -> (None, True)."""
    folded = fold(value)
    years = _YEAR.findall(folded)
    recognised = "cong nhan" in folded or "da dat" in folded
    registering = "dang ky" in folded or re.search(r"\bdk\b", folded) is not None
    if recognised and not registering and len(years) == 1:
        return int(years[0]), False
    if registering and not recognised:
        return None, True
    if not recognised and not registering and len(years) == 1:
        return int(years[0]), False
    return None


def _is_footer(texts: list[str]) -> bool:
    return any(_FOOTER.match(fold(t)) for t in texts[:2])


def _is_total(texts: list[str]) -> bool:
    return any(_TOTAL.match(fold(t)) for t in texts[:3])


def _filled(cells: list[object]) -> list[str]:
    return [t for t in (clean(v) for v in cells if v is not None) if t]


def read_rows(header: Header) -> list[Row]:
    """Every data row under the header; totals, blank and numbering rows skipped, footer ends."""
    table = header.table
    out: list[Row] = []
    letters = {name: column_letter(col + 1) for name, col in header.columns.items()}
    columns = list(header.columns.items())
    for index in range(header.data_start, len(table.rows)):
        cells = table.rows[index]
        if not any(v is not None for v in cells):
            continue
        width = len(cells)
        row = Row(file=table.file, sheet=table.sheet, number=index + 1, columns=letters)
        row.raw = {name: (clean(cells[col]) if col < width else "") for name, col in columns}
        if not any(row.raw.get(name) for name in DATA_FIELDS if name != "unit"):
            texts = _filled(cells)
            if not texts:
                continue
            if out and _is_footer(texts):
                break
            continue
        if not row.raw.get("party_cell") and _is_total(_filled(cells)):
            continue
        if not row.raw.get("members") and _is_footer(_filled(cells)):
            break
        _type(row, cells, header)
        out.append(row)
    return out


def _type(row: Row, cells: list[object], header: Header) -> None:
    def cell(name: str) -> object:
        col = header.columns.get(name)
        return cells[col] if col is not None and col < len(cells) else None

    if row.text("members"):
        row.members = members(cell("members"))
        if row.members is None:
            row.problems["members"] = "not a whole number"
    if "level" in header.columns:
        if row.text("level"):
            row.level = level_text(cell("level"))
            if row.level is None:
                row.problems["level"] = "unknown level"
    else:
        provincial = mark(cell("level_provincial"))
        district = mark(cell("level_district"))
        if provincial is None or district is None:
            row.problems["level"] = "unreadable mark"
        elif provincial and district:
            row.problems["level"] = "both levels marked"
        elif provincial or district:
            row.level = "provincial" if provincial else "district"
    if "status" in header.columns:
        if row.text("status"):
            parsed = status_text(cell("status"))
            if parsed is None:
                row.problems["status"] = "unreadable status"
            else:
                row.recognised_year, row.registering = parsed
    else:
        if row.text("recognised_year"):
            row.recognised_year = year(cell("recognised_year"))
            if row.recognised_year is None:
                row.problems["status"] = "unreadable year"
        if row.text("registering"):
            registering = mark(cell("registering"))
            if registering is None and year(cell("registering")) is not None:
                registering = True  # the campaign year written instead of a tick
            if registering is None:
                row.problems["status"] = "unreadable mark"
            row.registering = bool(registering)
    if row.text("district_model_year"):
        row.district_model_year = year(cell("district_model_year"))
        if row.district_model_year is None:
            row.problems["district_model_year"] = "unreadable year"
