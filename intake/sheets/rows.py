"""Cells under a header -> typed registration rows, with the sender's row numbers kept.

Parsing never fails: a value that cannot be read keeps its raw text and a ``None`` typed
value, and the checks turn that into a finding that quotes what the sender wrote.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass, field
from itertools import pairwise

from ..text import clean, fold
from .header import Header, canonical
from .read import Table, column_letter

MARKS_YES = {"x", "1", "co", "v", "yes", "true", "dung", "dk", "dang ky", "+"}
# Ticks typed or pasted: ✓ ✔ √ (U+221A, the one Vietnamese Word/Excel users insert) ☑ ✅,
# crosses meaning "chosen" as an x does, and Wingdings ticks seen without their font
# (ü = ✓, þ = ☑): none of these is ever a Vietnamese word on its own.
MARKS_YES_RAW = {"✓", "✔", "√", "☑", "✅", "🗸", "✗", "✘", "☒", "●", "•", "ü", "þ", "Ü", "Þ"}
MARKS_NO = {"0", "khong", "no", "false", "-"}

_FOOTER = re.compile(
    r"^(ghi chu|luu y|nguoi lap|nguoi lap bieu|t ?m |tm |noi nhan|xac nhan|bi thu$|pho bi thu"
    r"|ban thuong vu|k ?t |kt |ngay \d+ thang|.*ngay \d+ thang \d+ nam)"
)
# Totals and subtotals: "Tổng cộng", "Cộng", "Cộng xã An Khánh", "Tổng số: 12".
_TOTAL = re.compile(r"^(tong cong|tong so|tong|cong)\b")
_MEMBERS = re.compile(r"^(\d+)(?:[.,]0+)?\s*(?:dv|doan vien|nguoi|d v)?$")
_YEAR = re.compile(r"(?<!\d)(19\d{2}|20\d{2})(?!\d)")
# A row that says which level the rows under it register for: "I. CẤP TỈNH",
# "II. Cấp huyện", "A. Đăng ký cấp huyện", "Chi đoàn đăng ký cấp tỉnh (03 Chi đoàn)".
_SECTION = re.compile(
    r"^(?:(?:[ivx]+|[a-h]|\d{1,2})\s+)?(?:phan\s+)?(?:danh sach\s+)?(?:cac\s+)?(?:chi doan\s+)?"
    r"(?:dang ky\s+|dk\s+)?(?:xay dung\s+)?(?:chi doan kieu mau\s+|cdkm\s+)?"
    r"cap (tinh|huyen)\b(?!.*\bcap (?:tinh|huyen)\b)")
# A group label over a commune's rows: "Xã An Khánh", "1. Phường 8", "I. XÃ TÂN THẠCH (5)".
_GROUP = re.compile(r"^(?:(?:[ivx]+|[a-h]|\d{1,2})\s+)?((?:xa|phuong|thi tran|tt|p|x)\s+.+?)"
                    r"(?:\s+(?:co\s+)?\d+\s*(?:chi doan|cd)?)?$")
_GROUP_PREFIX = re.compile(r"^\s*(?:[IVXivx]+|[A-Ha-h]|\d{1,2})\s*[.):\-]\s*")
_NUMBERING = re.compile(r"\(?(?:\d{1,2}|[A-Ea-e])\)?")

DATA_FIELDS = ("unit", "commune", "branch", "members", "party_cell")
LEVELS = {"tinh": "provincial", "huyen": "district"}


@dataclass(slots=True)
class Row:
    """One registration row as read: raw text per field, typed values, and where it was."""

    file: str
    sheet: str
    number: int  # Excel row number (1-based), as the sender sees it
    raw: dict[str, str] = field(default_factory=dict)
    columns: dict[str, str] = field(default_factory=dict)  # field -> column letter
    members: int | None = None
    level: str | None = None  # "provincial" | "district"
    level_from: str = ""  # "column", "section" (a row above), "sheet" (its name or title)
    recognised_year: int | None = None
    registering: bool = False
    registering_year: int | None = None  # the year written with "Đăng ký", if any
    district_model_year: int | None = None
    commune_above: str = ""  # the commune of the group row or data row above, if any
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
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)  # a full-width Ｘ is an x
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
    """A single status cell: ("Đã công nhận năm 2019") -> (2019, False); "Đăng ký 2021" -> (2021, True).

    For a registration the year is the one written with it (None when there is none):
    whether it is the campaign year is for the checks to say.
    """
    folded = fold(value)
    years = _YEAR.findall(folded)
    recognised = "cong nhan" in folded or "da dat" in folded
    registering = "dang ky" in folded or re.search(r"\bdk\b", folded) is not None
    if recognised and not registering and len(years) == 1:
        return int(years[0]), False
    if registering and not recognised and len(years) <= 1:
        return (int(years[0]) if years else None), True
    if not recognised and not registering and len(years) == 1:
        return int(years[0]), False
    return None


def level_of_name(text: object) -> str | None:
    """The level a sheet name or title names alone ("Cấp tỉnh", "DS cấp huyện", "Tỉnh")."""
    folded = fold(text)
    found = set(re.findall(r"\bcap (tinh|huyen)\b", folded))
    if not found and folded in LEVELS:
        found = {folded}
    return LEVELS[found.pop()] if len(found) == 1 else None


def section_level(text: str) -> str | None:
    """The level a section row announces ("I. CẤP TỈNH" -> provincial), else None."""
    match = _SECTION.match(fold(text))
    return LEVELS[match.group(1)] if match else None


def group_commune(text: str) -> str:
    """The commune a group row names ("1. Xã An Khánh (5 Chi đoàn)" -> "Xã An Khánh"), or ""."""
    match = _GROUP.match(fold(text))
    if not match:
        return ""
    label = _GROUP_PREFIX.sub("", text, count=1).strip()
    return re.sub(r"\s*[(:].*$", "", label).strip()


def _is_footer(texts: list[str]) -> bool:
    return any(_FOOTER.match(fold(t)) for t in texts[:2])


def _is_total(texts: list[str]) -> bool:
    return any(_TOTAL.match(fold(t)) for t in texts[:3])


def _filled(cells: list[object]) -> list[str]:
    return [t for t in (clean(v) for v in cells if v is not None) if t]


def is_numbering(values: list[object]) -> bool:
    """The "(1) (2) (3) …", "1 2 3 …" or "A B 1 2 …" row many forms put under the header."""
    texts = []
    for value in values:
        if value is None:
            continue
        if type(value) is int:
            texts.append(str(value))
        elif isinstance(value, str) and len(value) <= 6:
            texts.append(value.strip())
        else:
            return False  # a name, a date, a long text: a data row (the common case)
    if len(texts) < 3 or not all(_NUMBERING.fullmatch(t) for t in texts):
        return False
    numbers = [int(t.strip("()")) for t in texts if t.strip("()").isdigit()]
    return len(numbers) >= 2 and all(a < b for a, b in pairwise(numbers))


def _merged_below(table: Table, start: int) -> dict[int, dict[int, object]]:
    """Row -> {column: value} for the cells a vertical merge covers under the header.

    A commune, level or status written once over its hamlets applies to every row of
    the merge; the cells under the first hold nothing in the file. Merges one row high
    (a section title across the columns) give nothing: they are not values of rows.
    """
    out: dict[int, dict[int, object]] = {}
    for r1, c1, r2, c2 in table.merged:
        if r2 <= r1 or r2 < start:
            continue
        origin = table.value(r1, c1)
        if origin is None:
            continue
        for row in range(max(r1 + 1, start), min(r2, len(table.rows) - 1) + 1):
            cells = out.setdefault(row, {})
            for col in range(c1, min(c2, c1 + 60) + 1):
                cells.setdefault(col, origin)
    return out


def _header_cells(header: Header) -> tuple[set[object], set[str]]:
    """The header's cell values as they are, and in canonical form, to know the header
    when it comes again."""
    values: set[object] = set()
    for row in range(header.first_row, header.last_row + 1):
        for value in header.table.rows[row] if row < len(header.table.rows) else []:
            if isinstance(value, str) and value.strip():
                values.add(value)
    return values, {w for v in values if (w := canonical(v))}


def _is_header_again(cells: list[object], values: set[object], words: set[str]) -> bool:
    """The header (or one of its two rows) repeated inside the data, after a page break:
    at least two of its texts, and at least half the row's."""
    if sum(1 for v in cells if type(v) is str and v in values) < 1:
        return False  # not even one header text as it was: the common case, in C
    texts = [t for t in (clean(v) for v in cells if v is not None) if t]
    hits = sum(1 for t in texts if canonical(t) in words)
    return hits >= 2 and hits * 2 >= len(texts)


def read_rows(header: Header, level: str | None = None) -> list[Row]:
    """Every data row under the header, as the sender meant it.

    Skipped: blank rows, the numbering row, the header repeated after a page break,
    totals and subtotals, group rows naming a commune (kept as the commune of the rows
    under them when theirs is empty) and section rows naming a level (the level of the
    rows under them that have none). The footer (notes, signatures) ends the list.
    ``level`` is the sheet's own (its name or title), the weakest sign.
    """
    table = header.table
    out: list[Row] = []
    letters = {name: column_letter(col + 1) for name, col in header.columns.items()}
    columns = list(header.columns.items())
    filled_by_merge = _merged_below(table, header.data_start)
    header_values, words = _header_cells(header)
    key_columns = [header.columns[n] for n in ("branch", "party_cell") if n in header.columns]
    commune_col = header.columns.get("commune")
    section: str | None = None
    commune_above = ""
    for index in range(header.data_start, len(table.rows)):
        own = table.rows[index]
        if not own:  # the reader drops trailing empty cells: an empty row is []
            continue
        if _is_header_again(own, header_values, words) or is_numbering(own):
            continue
        keyed = False
        for col in key_columns:  # the reader gives None for empty cells, never ""
            if col < len(own) and own[col] is not None and (
                    type(own[col]) is not str or own[col].strip()):
                keyed = True
                break
        if not keyed:
            texts = _filled(own)
            if not texts:
                continue
            if _is_total(texts):
                continue
            if found := section_level(texts[0]):
                section = found
                continue
            labels = [t for t in texts if not t.replace(".", "").isdigit()]
            if len(set(labels)) == 1:
                alone_in_commune = (commune_col is not None and commune_col < len(own)
                                    and clean(own[commune_col]) == labels[0])
                name = group_commune(labels[0]) or (labels[0] if alone_in_commune else "")
                if name:
                    commune_above = name
                    continue
        cells = own
        if index in filled_by_merge:
            cells = list(own) + [None] * (max(filled_by_merge[index]) + 1 - len(own))
            for col, value in filled_by_merge[index].items():
                if cells[col] is None:
                    cells[col] = value
        width = len(cells)
        row = Row(file=table.file, sheet=table.sheet, number=index + 1, columns=letters)
        row.raw = {name: (clean(cells[col]) if col < width else "") for name, col in columns}
        if not any(row.raw.get(name) for name in DATA_FIELDS if name != "unit"):
            if out and _is_footer(_filled(own)):
                break
            continue
        if not row.raw.get("party_cell") and _is_total(_filled(own)):
            continue
        if not row.raw.get("members") and _is_footer(_filled(own)):
            break
        row.commune_above = commune_above
        if row.raw.get("commune"):
            commune_above = row.raw["commune"]
        _type(row, cells, header)
        if row.level is None and "level" not in row.problems and (section or level):
            row.level, row.level_from = (section, "section") if section else (level, "sheet")
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
    elif "level_provincial" in header.columns or "level_district" in header.columns:
        provincial = mark(cell("level_provincial"))
        district = mark(cell("level_district"))
        if provincial is None or district is None:
            row.problems["level"] = "unreadable mark"
        elif provincial and district:
            row.problems["level"] = "both levels marked"
        elif provincial or district:
            row.level = "provincial" if provincial else "district"
    if row.level:
        row.level_from = "column"
    if "status" in header.columns:
        if row.text("status"):
            parsed = status_text(cell("status"))
            if parsed is None:
                row.problems["status"] = "unreadable status"
            elif parsed[1]:
                row.registering, row.registering_year = True, parsed[0]
            else:
                row.recognised_year = parsed[0]
    else:
        if row.text("recognised_year"):
            row.recognised_year = year(cell("recognised_year"))
            if row.recognised_year is None:
                row.problems["status"] = "unreadable year"
        if row.text("registering"):
            registering = mark(cell("registering"))
            if registering is None and (written := year(cell("registering"))) is not None:
                registering = True  # a year written instead of a tick: checked against the campaign's
                row.registering_year = written
            if registering is None:
                row.problems["status"] = "unreadable mark"
            row.registering = bool(registering)
    if row.text("district_model_year"):
        row.district_model_year = year(cell("district_model_year"))
        if row.district_model_year is None:
            row.problems["district_model_year"] = "unreadable year"
