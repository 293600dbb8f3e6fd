"""The official registration form of SPEC §3, blank or filled (demo mail, tests)."""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from pathlib import Path

from openpyxl import Workbook
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.datavalidation import DataValidation

from ..config import Settings
from ..reference import Reference, Unit
from ..text import vietnamese_sort_key

HEADER_ROW = 6  # first of the two header rows
FIRST_DATA_ROW = 8
BLANK_ROWS = 30

# (group, sub-column or None, width)
COLUMNS: list[tuple[str, str | None, int]] = [
    ("STT", None, 6),
    ("Xã, phường, thị trấn", None, 22),
    ("Tên Chi đoàn", None, 24),
    ("Số lượng đoàn viên", None, 11),
    ("Chi bộ ấp, khu phố", "Tên Chi bộ", 24),
    ("Chi bộ ấp, khu phố", "Năm được công nhận TSVMTD", 13),
    ("Chi bộ ấp, khu phố", "Đăng ký TSVMTD năm {year}", 13),
    ("Cấp đăng ký", "Cấp tỉnh", 8),
    ("Cấp đăng ký", "Cấp huyện", 8),
    ("Năm đạt Chi đoàn kiểu mẫu cấp huyện", None, 14),
    ("Bí thư Chi đoàn", "Họ và tên", 22),
    ("Bí thư Chi đoàn", "Số điện thoại", 14),
    ("Ghi chú", None, 18),
]

GUIDE = [
    "HƯỚNG DẪN LẬP DANH SÁCH ĐĂNG KÝ XÂY DỰNG CHI ĐOÀN KIỂU MẪU",
    "",
    "1. Mỗi dòng là một Chi đoàn ấp, khu phố đăng ký xây dựng Chi đoàn kiểu mẫu.",
    "2. Cột “Xã, phường, thị trấn”: chọn trong danh sách thả xuống (đúng tên xã, phường của đơn vị).",
    "3. Cột “Số lượng đoàn viên”: ghi số (ví dụ 18); cấp tỉnh cần ít nhất {min_p} đoàn viên, "
    "cấp huyện ít nhất {min_d} đoàn viên.",
    "4. Chi đoàn phải gắn với Chi bộ ấp, khu phố được công nhận “trong sạch, vững mạnh toàn diện” "
    "từ năm {since} trở lại đây (ghi năm được công nhận), hoặc đăng ký TSVMTD năm {year} "
    "(đánh dấu “x”). Chỉ ghi một trong hai.",
    "5. Cấp đăng ký: đánh dấu “x” vào đúng một cột “Cấp tỉnh” hoặc “Cấp huyện”.",
    "6. Đăng ký cấp tỉnh: ghi năm Chi đoàn đã đạt Chi đoàn kiểu mẫu cấp huyện.",
    "7. Xã, phường đạt chuẩn Nông thôn mới hoặc Đô thị văn minh: 100% Chi đoàn ấp, khu phố "
    "phải đăng ký.",
    "8. Gửi tệp này (định dạng .xlsx) qua thư điện tử về Ban Tổ chức – Kiểm tra trước ngày "
    "{deadline}. Gửi lại cả danh sách sẽ thay thế danh sách trước; tiêu đề thư có chữ "
    "“bổ sung” sẽ được cộng thêm vào danh sách đã gửi.",
]

_THIN = Side(style="thin")
_BORDER = Border(left=_THIN, right=_THIN, top=_THIN, bottom=_THIN)
_BOLD = Font(name="Times New Roman", bold=True, size=12)
_NORMAL = Font(name="Times New Roman", size=12)
_CENTER = Alignment(horizontal="center", vertical="center", wrap_text=True)


def header_labels(year: int) -> list[tuple[str, str | None]]:
    return [(group, sub.format(year=year) if sub else None) for group, sub, _w in COLUMNS]


def build_template(settings: Settings, reference: Reference, unit: Unit | None = None,
                   rows: Iterable[Sequence[object]] = ()) -> Workbook:
    """The form as a workbook; ``rows`` (cells from column A) fill the data area."""
    year = settings.campaign.year
    book = Workbook()
    sheet = book.active
    sheet.title = "Danh sách"
    width = len(COLUMNS)
    last = get_column_letter(width)
    heading = [
        ("TỈNH ĐOÀN BẾN TRE", None),
        ((unit.name.upper() if unit else "HUYỆN, THÀNH ĐOÀN: ......................"), None),
        (f"DANH SÁCH ĐĂNG KÝ XÂY DỰNG CHI ĐOÀN KIỂU MẪU NĂM {year}", _BOLD),
        ("(gắn với Chi bộ ấp, khu phố trong sạch, vững mạnh toàn diện)", _NORMAL),
    ]
    for index, (text, font) in enumerate(heading, start=1):
        sheet.cell(index, 1, text).font = font or _BOLD
        if font is not None:
            sheet.merge_cells(f"A{index}:{last}{index}")
            sheet.cell(index, 1).alignment = _CENTER
    sub_row = HEADER_ROW + 1
    col = 1
    while col <= width:
        group, sub, _w = COLUMNS[col - 1]
        span = 1
        while col + span <= width and COLUMNS[col + span - 1][0] == group and sub:
            span += 1
        sheet.cell(HEADER_ROW, col, group)
        if sub is None:
            sheet.merge_cells(start_row=HEADER_ROW, start_column=col, end_row=sub_row,
                              end_column=col)
        else:
            if span > 1:
                sheet.merge_cells(start_row=HEADER_ROW, start_column=col, end_row=HEADER_ROW,
                                  end_column=col + span - 1)
            for offset in range(span):
                sheet.cell(sub_row, col + offset, COLUMNS[col + offset - 1][1].format(year=year))
        col += span
    for index, (_g, _s, size) in enumerate(COLUMNS, start=1):
        sheet.column_dimensions[get_column_letter(index)].width = size
        for row in (HEADER_ROW, sub_row):
            cell = sheet.cell(row, index)
            cell.font, cell.alignment, cell.border = _BOLD, _CENTER, _BORDER
            cell.fill = PatternFill("solid", fgColor="DDEBF7")
    sheet.row_dimensions[sub_row].height = 45
    filled = [list(r) for r in rows]
    count = max(len(filled), BLANK_ROWS if not filled else 0)
    for offset in range(count):
        number = FIRST_DATA_ROW + offset
        values = filled[offset] if offset < len(filled) else [offset + 1]
        for index in range(1, width + 1):
            value = values[index - 1] if index - 1 < len(values) else None
            cell = sheet.cell(number, index, value)
            if isinstance(value, str):
                cell.data_type = "s"  # typed text, as Excel stores '=…: never a formula
            cell.font, cell.border = _NORMAL, _BORDER
    end = FIRST_DATA_ROW + max(count, 1) - 1
    if unit is not None:
        names = sorted((c.name for c in reference.communes.get(unit.code, [])),
                       key=vietnamese_sort_key)
        _list_validation(book, sheet, names, f"B{FIRST_DATA_ROW}:B{end}")
    marks = DataValidation(type="list", formula1='"x"', allow_blank=True)
    marks.error = "Chỉ đánh dấu “x”."
    sheet.add_data_validation(marks)
    for letter in ("G", "H", "I"):
        marks.add(f"{letter}{FIRST_DATA_ROW}:{letter}{end}")
    sign = end + 2
    sheet.cell(sign, 10, "TM. BAN THƯỜNG VỤ").font = _BOLD
    sheet.cell(sign + 1, 10, "BÍ THƯ").font = _BOLD
    sheet.freeze_panes = f"C{FIRST_DATA_ROW}"
    sheet.page_setup.orientation = "landscape"
    sheet.page_setup.paperSize = sheet.PAPERSIZE_A4
    sheet.page_setup.fitToWidth = 1
    sheet.print_title_rows = f"{HEADER_ROW}:{sub_row}"
    guide = book.create_sheet("Hướng dẫn")
    deadline = settings.campaign.deadline.strftime("%d/%m/%Y")
    for index, line in enumerate(GUIDE, start=1):
        text = line.format(year=year, since=settings.rules.recognised_since, deadline=deadline,
                           min_p=settings.rules.min_members_provincial,
                           min_d=settings.rules.min_members_district)
        guide.cell(index, 1, text).font = _BOLD if index == 1 else _NORMAL
    guide.column_dimensions["A"].width = 120
    book.move_sheet(guide, offset=1 - book.index(guide))  # right after the form
    return book


def _list_validation(book: Workbook, sheet, names: list[str], area: str) -> None:
    """A dropdown fed from a hidden list sheet (inline lists are capped at 255 characters)."""
    if not names:
        return
    lists = book.create_sheet("DanhMuc")
    lists.sheet_state = "hidden"
    for index, name in enumerate(names, start=1):
        lists.cell(index, 1, name)
    rule = DataValidation(type="list", formula1=f"DanhMuc!$A$1:$A${len(names)}", allow_blank=True)
    rule.error = "Chọn xã, phường, thị trấn trong danh sách."
    sheet.add_data_validation(rule)
    rule.add(area)


def template_bytes(settings: Settings, reference: Reference, unit: Unit | None = None,
                   rows: Iterable[Sequence[object]] = ()) -> bytes:
    stream = io.BytesIO()
    build_template(settings, reference, unit, rows).save(stream)
    return stream.getvalue()


def write_template(path: Path, settings: Settings, reference: Reference,
                   unit: Unit | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(template_bytes(settings, reference, unit))
    return path
