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


@dataclass(frozen=True)
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
