"""Finding the header row(s) of a sheet and mapping its columns to fields.

Matching is by *known aliases* on a canonical form of the header text, not by width or
type guessing: Vietnamese forms put a title block, merged group cells and a numbering
row around the header, and generic detectors pick the title or count totals as data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

from ..text import fold
from .read import Table, column_letter

# Required fields, and the alternatives that satisfy them (SPEC §3).
REQUIRED: dict[str, tuple[str, ...]] = {
    "commune": ("commune",),
    "branch": ("branch",),
    "members": ("members",),
    "party_cell": ("party_cell",),
    "status": ("recognised_year", "registering", "status"),
    "level": ("level", "level_provincial", "level_district"),
}

# Vietnamese names of fields, as the official form words them (for messages).
FIELD_LABELS: dict[str, str] = {
    "stt": "STT",
    "unit": "Đơn vị",
    "commune": "Xã, phường, thị trấn",
    "branch": "Tên Chi đoàn",
    "members": "Số lượng đoàn viên",
    "party_cell": "Tên Chi bộ ấp, khu phố",
    "recognised_year": "Năm được công nhận TSVMTD",
    "registering": "Đăng ký TSVMTD",
    "status": "Tình trạng Chi bộ (năm công nhận hoặc đăng ký TSVMTD)",
    "level": "Cấp đăng ký (Cấp tỉnh / Cấp huyện)",
    "level_provincial": "Cấp tỉnh",
    "level_district": "Cấp huyện",
    "district_model_year": "Năm đạt Chi đoàn kiểu mẫu cấp huyện",
    "secretary": "Bí thư Chi đoàn – Họ và tên",
    "phone": "Bí thư Chi đoàn – Số điện thoại",
    "notes": "Ghi chú",
}

# Abbreviations people use, expanded to one canonical short form before matching.
_SUBSTITUTIONS = [
    (r"\btrong sach vung manh toan dien\b", "tsvmtd"),
    (r"\btrong sach vung manh\b", "tsvmtd"),
    (r"\btsvm\b", "tsvmtd"),
    (r"\bchi doan kieu mau\b", "cdkm"),
    (r"\bckdm\b", "cdkm"),
    (r"\bchi doan\b", "cd"),
    (r"\bchi bo\b", "cb"),
    (r"\bdoan vien\b", "dv"),
    (r"\bso luong\b", "sl"),
    (r"\bso dien thoai\b", "sdt"),
    (r"\bdien thoai\b", "sdt"),
    (r"\bso dt\b", "sdt"),
    (r"\bthi tran\b", "tt"),
    (r"\bkhu pho\b", "kp"),
    (r"\bdang ky\b", "dk"),
    (r"\bdang ki\b", "dk"),
    (r"\bthanh pho\b", "tp"),
    (r"\bduoc\b", ""),
    (r"\b(x|danh dau x|danh dau)\b$", ""),
]

_RULES: list[tuple[str, str]] = [
    (r"stt|so tt|so thu tu|tt", "stt"),
    (r"(ten )?(don vi|huyen doan|thanh doan|huyen thanh doan|huyen tp doan|huyen doan thanh doan"
     r"|huyen doan tp|don vi huyen thanh doan)", "unit"),
    (r"(ten )?(xa|phuong|xa phuong|xa phuong tt|xa phuong tt tp|phuong xa|xa tt|dia ban"
     r"|don vi xa|xa phuong tt thuoc huyen)", "commune"),
    (r"(ten )?(cd|cd dk|cd dk xay dung cdkm|cdkm|cd dk cdkm|cd dk xd cdkm)", "branch"),
    (r"(tong )?(sl|so|sl dv|so dv|dv|sl dv cd|so dv cd)", "members"),
    (r"(ten )?(cb|cb ap|cb ap kp|cb ap kp khom|ap kp|ap|ten ap|cb ap khu pho|cb kp)", "party_cell"),
    (r"(nam )?(cong nhan|da cong nhan)( tsvmtd)?( nam)?|nam (cong nhan|dat) tsvmtd"
     r"|(da )?dat tsvmtd( nam)?|nam cong nhan tsvmtd", "recognised_year"),
    (r"dk tsvmtd( nam)?( \d{4})?|dk( nam)? \d{4}|dk tsvmtd nam \d{4}|dk cong nhan tsvmtd( nam)?"
     r"( \d{4})?|dk", "registering"),
    (r"tinh trang( cb)?( tsvmtd)?|tinh trang cong nhan( tsvmtd)?", "status"),
    (r"cap dk|cap|cap dk cdkm|cap dk xay dung|dk cap", "level"),
    (r"(cap )?tinh", "level_provincial"),
    (r"(cap )?huyen|cap huyen tp", "level_district"),
    (r"nam (dat )?cdkm( cap huyen)?|nam dat cd kieu mau( cap huyen)?|cdkm cap huyen( nam)?"
     r"|nam dat cdkm cap huyen|da dat cdkm cap huyen( nam)?", "district_model_year"),
    (r"ho (va )?ten( bi thu)?( cd)?|bi thu( cd)?|ho ten bi thu cd", "secretary"),
    (r"sdt( bi thu)?( cd)?|sdt lien he|dt|so dt", "phone"),
    (r"ghi chu", "notes"),
]
_COMPILED = [(re.compile(pattern), name) for pattern, name in _RULES]
_SUBS = [(re.compile(pattern), repl) for pattern, repl in _SUBSTITUTIONS]


@lru_cache(maxsize=16384)
def canonical(text: object) -> str:
    """Header text in its canonical short form ("Số lượng đoàn viên" -> "sl dv")."""
    value = fold(text)
    for pattern, repl in _SUBS:
        value = pattern.sub(repl, value)
    return re.sub(r"\s+", " ", value).strip()


def match_field(text: object) -> str | None:
    """The field a header cell names, or None."""
    value = canonical(text)
    if not value or len(value) > 80:
        return None
    for pattern, name in _COMPILED:
        if pattern.fullmatch(value):
            return name
    return None


@dataclass
class Header:
    """Where a sheet's header is and which column holds which field."""

    table: Table
    first_row: int  # 0-based index of the first header row
    last_row: int  # 0-based index of the last header row
    columns: dict[str, int] = field(default_factory=dict)  # field -> 0-based column

    @property
    def data_start(self) -> int:
        return self.last_row + 1

    def letter(self, name: str) -> str:
        return column_letter(self.columns[name] + 1) if name in self.columns else ""

    def missing(self) -> list[str]:
        """Required fields none of whose alternatives has a column."""
        return [
            need for need, options in REQUIRED.items()
            if not any(option in self.columns for option in options)
        ]

    @property
    def score(self) -> int:
        return len(REQUIRED) - len(self.missing())


def _filled(table: Table, row: int) -> list[object]:
    """A row's values with merged cells spread over their range (group headers)."""
    values = list(table.rows[row]) if row < len(table.rows) else []
    for r1, c1, r2, c2 in table.merged:
        if r1 <= row <= r2 and c2 - c1 < 60:
            origin = table.value(r1, c1)
            while len(values) <= c2:
                values.append(None)
            for col in range(c1, c2 + 1):
                if values[col] is None:
                    values[col] = origin
    return values


def _map(values: list[object]) -> dict[int, str]:
    return {col: name for col, value in enumerate(values) if (name := match_field(value))}


def _is_subheader(values: list[object], mapped: dict[int, str]) -> bool:
    """A second header row: mostly header words, each naming a different field.

    A data row can hold alias-like words ("TT", "Tỉnh"), but never several distinct
    field names; and the two-row reading must still be the better one (see below).
    """
    texts = [v for v in values if v is not None and str(v).strip()]
    fields = list(mapped.values())
    return len(fields) >= 2 and len(set(fields)) == len(fields) and len(fields) * 2 > len(texts)


def _columns(group: dict[int, str], sub: dict[int, str]) -> dict[str, int]:
    columns: dict[str, int] = {}
    for col in sorted(set(group) | set(sub)):
        columns.setdefault(sub.get(col) or group[col], col)
    # A merged group with sub-columns must not also count as a single column.
    if "level_provincial" in columns or "level_district" in columns:
        columns.pop("level", None)
    if any(k in columns for k in ("recognised_year", "registering")):
        columns.pop("status", None)
    return columns


def find_header(table: Table, scan_rows: int = 30) -> Header | None:
    """The best header in the first ``scan_rows`` rows, or None when nothing looks like one."""
    best: Header | None = None
    limit = min(len(table.rows), scan_rows)
    for row in range(limit):
        values = _filled(table, row)
        group = _map(values)
        if len(group) < 2:
            continue
        header = Header(table, row, row, _columns(group, {}))
        if row + 1 < len(table.rows):
            below = _filled(table, row + 1)
            sub = _map(below)
            if _is_subheader(below, sub):
                two = Header(table, row, row + 1, _columns(group, sub))
                if (two.score, len(two.columns)) > (header.score, len(header.columns)):
                    header = two
        if best is None or header.score > best.score or (
            header.score == best.score and len(header.columns) > len(best.columns)
        ):
            best = header
    if best is None or best.score < 3:
        return None
    return best
