"""Findings: what is wrong with a file, a row or a mail, as small frozen values.

The codes and their levels are the contract of SPEC §5. The terminal table, the JSON,
the reply email, the annotated copy and the workbook's ``Lỗi`` sheet all render the same
values, so they can never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Level = Literal["error", "warning"]

# code -> (level, short Vietnamese title used in tables and replies)
CODES: dict[str, tuple[Level, str]] = {
    "FILE_UNREADABLE": ("error", "Không đọc được tệp"),
    "FILE_ENCRYPTED": ("error", "Tệp có mật khẩu"),
    "FILE_TOO_LARGE": ("error", "Tệp vượt giới hạn"),
    "FILE_UNSUPPORTED": ("error", "Định dạng tệp không được hỗ trợ"),
    "SHEET_NO_HEADER": ("error", "Không tìm thấy dòng tiêu đề"),
    "SHEET_MISSING_COLUMN": ("error", "Thiếu cột bắt buộc"),
    "SHEET_NO_ROWS": ("error", "Không có dòng dữ liệu"),
    "ROW_REQUIRED": ("error", "Thiếu thông tin bắt buộc"),
    "ROW_MEMBERS_INVALID": ("error", "Số lượng đoàn viên không hợp lệ"),
    "ROW_MEMBERS_BELOW_MIN": ("error", "Số lượng đoàn viên dưới mức tối thiểu"),
    "ROW_LEVEL_INVALID": ("error", "Cấp đăng ký không hợp lệ"),
    "ROW_UNIT_MISMATCH": ("error", "Dòng thuộc đơn vị khác"),
    "ROW_COMMUNE_UNKNOWN": ("error", "Xã, phường, thị trấn không thuộc đơn vị"),
    "ROW_PARTY_CELL_UNKNOWN": ("error", "Không có Chi bộ ấp, khu phố này"),
    "ROW_PARTY_CELL_NOT_ELIGIBLE": ("error", "Chi bộ chưa đủ điều kiện"),
    "ROW_STATUS_INVALID": ("error", "Tình trạng Chi bộ không hợp lệ"),
    "ROW_DISTRICT_MODEL_REQUIRED": ("error", "Thiếu năm đạt Chi đoàn kiểu mẫu cấp huyện"),
    "ROW_DUPLICATE": ("error", "Ấp, khu phố bị trùng"),
    "ROW_CONFLICT": ("error", "Ấp, khu phố đã được đơn vị khác đăng ký"),
    "ROW_BRANCH_MISMATCH": ("warning", "Tên Chi đoàn không khớp với Chi bộ"),
    "ROW_PHONE_INVALID": ("warning", "Số điện thoại không hợp lệ"),
    "COVERAGE_INCOMPLETE": ("error", "Chưa đăng ký đủ 100% Chi đoàn xã NTM/ĐTVM"),
    "MAIL_LATE": ("warning", "Gửi sau hạn chót"),
}

LEVEL_LABELS = {"error": "Lỗi", "warning": "Cảnh báo"}


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem, located as the sender sees it in Excel (sheet, row number, column letter)."""

    code: str
    message: str
    file: str = ""
    sheet: str = ""
    row: int | None = None
    column: str = ""
    field: str = ""
    value: str = ""
    suggestion: str = ""
    level: Level = "error"

    def __post_init__(self) -> None:
        if self.code not in CODES:
            raise ValueError(f"unknown finding code {self.code}")

    @property
    def title(self) -> str:
        return CODES[self.code][1]

    @property
    def is_error(self) -> bool:
        return self.level == "error"

    @property
    def cell(self) -> str:
        """"C7"-style reference, or the row or column alone, or ""."""
        return f"{self.column}{self.row or ''}" if self.column else (str(self.row or ""))

    def as_json(self) -> dict[str, object]:
        """The SPEC §8 JSON object; a literal, not ``asdict`` (which deep-copies every
        field and costs ten times more on a file with thousands of findings)."""
        return {"code": self.code, "level": self.level, "sheet": self.sheet, "row": self.row,
                "column": self.column, "field": self.field, "value": self.value,
                "message": self.message, "suggestion": self.suggestion}


def finding(code: str, message: str, **where: object) -> Finding:
    """Build a finding with the level the contract gives its code."""
    level = where.pop("level", None) or CODES[code][0]
    return Finding(code=code, message=message, level=level, **where)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Line:
    """One line of a short report: a finding, or one mistake repeated down a column."""

    code: str
    level: Level
    file: str
    sheet: str
    column: str
    rows: tuple[int, ...]
    text: str  # Vietnamese, ready to show
    count: int  # findings this line stands for


def number(value: int) -> str:
    """1048576 -> "1.048.576": Vietnamese thousands separator."""
    return f"{value:,}".replace(",", ".")


def row_ranges(rows: list[int] | tuple[int, ...], most: int = 6) -> str:
    """[9, 10, 11, 15] -> "9–11, 15" (Vietnamese thousands: "9–3.608"); past ``most``
    runs, the first and last row only, with the count ("9–3.608, 2.400 dòng")."""
    runs: list[list[int]] = []
    for row in sorted(set(rows)):
        if runs and row == runs[-1][-1] + 1:
            runs[-1].append(row)
        else:
            runs.append([row])

    if len(runs) > most:
        return f"{number(runs[0][0])}–{number(runs[-1][-1])}, {number(len(set(rows)))} dòng"
    return ", ".join(f"{number(r[0])}–{number(r[-1])}" if len(r) > 1 else number(r[0])
                     for r in runs)


def condense(findings: list[Finding], limit: int = 50) -> tuple[list[Line], int]:
    """At most ``limit`` lines for a reply, errors first, and how many findings they leave
    out (SPEC §6): the same mistake down a column of one sheet is one line ("cột D, dòng
    9–3.608: Số lượng đoàn viên không hợp lệ, ví dụ …"); a finding alone keeps its own
    message. Every finding stays in the marked-up file and in ``intake check``."""
    groups: dict[tuple[str, str, str, str], list[Finding]] = {}
    for f in findings:
        key = (f.file, f.sheet, f.code, f.column) if f.column and f.row else \
            (f.file, f.sheet, f.code, f"#{id(f)}")
        groups.setdefault(key, []).append(f)
    lines: list[Line] = []
    for (file, sheet, code, column), items in groups.items():
        first = items[0]
        if len(items) == 1:
            lines.append(Line(code, first.level, file, sheet, first.column,
                              (first.row,) if first.row else (), first.message, 1))
            continue
        rows = tuple(f.row for f in items if f.row)
        example = first.message + (f" {first.suggestion}" if first.suggestion else "")
        text = (f"Cột {column}, dòng {row_ranges(rows)}: {CODES[code][1]} "
                f"({number(len(items))} ô; ví dụ: {example})")
        lines.append(Line(code, first.level, file, sheet, column, rows, text, len(items)))
    lines.sort(key=lambda line: (line.level != "error", line.file, line.sheet,
                                 min(line.rows) if line.rows else 0, line.column))
    shown = lines[:limit]
    return shown, sum(line.count for line in lines[limit:])
