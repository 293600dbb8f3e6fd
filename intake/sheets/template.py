"""The official registration form of SPEC §3, blank or filled (demo mail, tests).

Laid out as a document of the Youth Union (Hướng dẫn 29-HD/TWĐTN-VP, in the frame of
Decree 30/2020/NĐ-CP): the issuing body on the left with "***" and the number under it,
"ĐOÀN TNCS HỒ CHÍ MINH" on the right over the place-and-date line, the title and
subtitle centred, the table, then the signatures. Board, province and year come from
the configuration and the reference lists, never from this file. It prints one A4
landscape page wide with the table header repeated on every page; the blank form with
no unit fits on one page.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from openpyxl import Workbook
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.datavalidation import DataValidation
from openpyxl.worksheet.worksheet import Worksheet

from ..config import Settings
from ..reference import Reference, Unit
from ..replies import before
from ..text import vietnamese_sort_key
from .layout import FONT_NAME, print_setup, row_height, set_default_font, wrapped_lines

HEADER_ROW = 6  # first of the two header rows
FIRST_DATA_ROW = 8
BLANK_ROWS = 15  # the blank form without a unit: one printed page
SPARE_ROWS = 10  # a unit's form: a row for each hamlet that may register, and these
SIZE = 12  # points, the form's body text

# (group, sub-column or None, width)
COLUMNS: list[tuple[str, str | None, int]] = [
    ("STT", None, 5),
    ("Xã, phường, thị trấn", None, 17),
    ("Tên Chi đoàn", None, 22),
    ("Số lượng đoàn viên", None, 9),
    ("Chi bộ ấp, khu phố", "Tên Chi bộ", 21),
    ("Chi bộ ấp, khu phố", "Năm được công nhận TSVMTD", 11),
    ("Chi bộ ấp, khu phố", "Đăng ký TSVMTD năm {year}", 11),
    ("Cấp đăng ký", "Cấp tỉnh", 7),
    ("Cấp đăng ký", "Cấp huyện", 8),
    ("Năm đạt Chi đoàn kiểu mẫu cấp huyện", None, 12),
    ("Bí thư Chi đoàn", "Họ và tên", 17),
    ("Bí thư Chi đoàn", "Số điện thoại", 13),
    ("Ghi chú", None, 9),
]
LEFT = (1, 5)  # heading: issuing body over columns A:E
RIGHT = (8, 13)  # heading: "ĐOÀN TNCS HỒ CHÍ MINH" and the date over H:M
CENTERED = {1, 4, 6, 7, 8, 9, 10}  # STT, numbers, years and marks

GUIDE_TITLE = "HƯỚNG DẪN LẬP DANH SÁCH ĐĂNG KÝ XÂY DỰNG CHI ĐOÀN KIỂU MẪU NĂM {year}"
GUIDE = [
    "1. Mỗi dòng là một Chi đoàn ấp, khu phố đăng ký xây dựng Chi đoàn kiểu mẫu.",
    "2. Cột “Xã, phường, thị trấn”: chọn trong danh sách thả xuống (đúng tên xã, phường, "
    "thị trấn của đơn vị).",
    "3. Cột “Tên Chi bộ”: chọn xã, phường ở cột “Xã, phường, thị trấn” trước, rồi chọn Chi bộ "
    "trong danh sách thả xuống (chỉ gồm các Chi bộ ấp, khu phố của xã, phường đã chọn).",
    "4. Cột “Số lượng đoàn viên”: ghi số (ví dụ 18); cấp tỉnh cần ít nhất {min_p} đoàn viên, "
    "cấp huyện ít nhất {min_d} đoàn viên.",
    "5. Chi đoàn phải gắn với Chi bộ ấp, khu phố được công nhận “trong sạch, vững mạnh toàn "
    "diện” (TSVMTD) từ năm {since} trở lại đây (ghi năm được công nhận), hoặc đăng ký TSVMTD "
    "năm {year} (đánh dấu “x”). Chỉ ghi một trong hai.",
    "6. Cấp đăng ký: đánh dấu “x” vào đúng một cột “Cấp tỉnh” hoặc “Cấp huyện”.",
    "7. Đăng ký cấp tỉnh: ghi năm Chi đoàn đã đạt Chi đoàn kiểu mẫu cấp huyện.",
    "8. Xã, phường, thị trấn đạt chuẩn Nông thôn mới hoặc Đô thị văn minh: 100% Chi đoàn ấp, "
    "khu phố phải đăng ký.",
    "9. Số điện thoại của Bí thư Chi đoàn: ghi đủ 10 chữ số, ví dụ 0912 345 678.",
    "10. Cần thêm dòng: chèn dòng (nhấp chuột phải vào số thứ tự dòng, chọn “Chèn”) ở giữa "
    "danh sách, phía trên phần chữ ký; các danh sách thả xuống được giữ nguyên. Không đổi tên, "
    "thứ tự các cột và hai dòng tiêu đề của bảng.",
    "11. Gửi tệp này (định dạng .xlsx) qua thư điện tử về {board} {deadline}. Gửi lại cả danh "
    "sách sẽ thay thế danh sách đã gửi; thư có chữ “bổ sung” trong tiêu đề thì các Chi đoàn "
    "trong thư được cộng thêm vào danh sách đã gửi. Hệ thống trả lời tự động trong vài phút.",
]
GUIDE_WIDTH = 88  # column A of "Hướng dẫn", in characters: A4 portrait

_THIN = Side(style="thin")
_BORDER = Border(left=_THIN, right=_THIN, top=_THIN, bottom=_THIN)
_BOLD = Font(name=FONT_NAME, bold=True, size=SIZE)
_NORMAL = Font(name=FONT_NAME, size=SIZE)
_ITALIC = Font(name=FONT_NAME, italic=True, size=SIZE)
_CENTER = Alignment(horizontal="center", vertical="center", wrap_text=True)
_LEFT = Alignment(horizontal="left", vertical="center", wrap_text=True)
_HEAD_FILL = PatternFill("solid", fgColor="DDEBF7")
_DISTRICT_PREFIX = re.compile(r"^(huyện|thành phố|thị xã|quận|tp\.?)\s+", re.IGNORECASE)
_DOTS = "……………"


def place_name(unit: Unit | None) -> str:
    """"Châu Thành" from "Huyện Châu Thành": the place in "Châu Thành, ngày …"."""
    if unit is None:
        return _DOTS
    return _DISTRICT_PREFIX.sub("", unit.district or unit.name).strip() or unit.name


def _merge(sheet: Worksheet, row: int, span: tuple[int, int], text: str, font: Font,
           height: float | None = None, align: Alignment = _CENTER) -> None:
    sheet.merge_cells(start_row=row, start_column=span[0], end_row=row, end_column=span[1])
    cell = sheet.cell(row, span[0], text)
    cell.font, cell.alignment = font, align
    if height:
        sheet.row_dimensions[row].height = height


def _heading(sheet: Worksheet, settings: Settings, unit: Unit | None) -> None:
    """Rows 1–5: issuing body | ĐOÀN TNCS HỒ CHÍ MINH, *** and number | place and date,
    then the title and the subtitle across the page (SPEC §3 keeps them in rows 1–5)."""
    year = settings.campaign.year
    width = len(COLUMNS)
    body = f"BCH {unit.name.upper()}" if unit else f"BCH HUYỆN, THÀNH ĐOÀN {_DOTS}"
    _merge(sheet, 1, LEFT, settings.board.organisation.upper(), _NORMAL, 18)
    _merge(sheet, 1, RIGHT, "ĐOÀN TNCS HỒ CHÍ MINH",
           Font(name=FONT_NAME, bold=True, underline="single", size=SIZE + 1))
    _merge(sheet, 2, LEFT, body, _BOLD, 18)
    _merge(sheet, 2, RIGHT, f"{place_name(unit)}, ngày …… tháng …… năm {year}", _ITALIC)
    _merge(sheet, 3, LEFT, f"***\nSố: {_DOTS}-DS/{_DOTS}", _NORMAL, 36)
    _merge(sheet, 4, (1, width), f"DANH SÁCH ĐĂNG KÝ XÂY DỰNG CHI ĐOÀN KIỂU MẪU NĂM {year}",
           Font(name=FONT_NAME, bold=True, size=SIZE + 2), 24)
    _merge(sheet, 5, (1, width), "(gắn với Chi bộ ấp, khu phố trong sạch, vững mạnh toàn diện)",
           _ITALIC, 30, Alignment(horizontal="center", vertical="top", wrap_text=True))


def _table_header(sheet: Worksheet, year: int) -> None:
    width = len(COLUMNS)
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
            cell.fill = _HEAD_FILL
    sheet.row_dimensions[HEADER_ROW].height = 33
    lines = max(wrapped_lines(sub.format(year=year) if sub else group, size, SIZE, SIZE, True)
                for group, sub, size in COLUMNS if sub)
    sheet.row_dimensions[sub_row].height = max(row_height(lines, SIZE), 33)


def _signatures(sheet: Worksheet, row: int) -> None:
    """NGƯỜI LẬP BIỂU on the left; the head of the unit, for its standing committee,
    signs and stamps on the right."""
    _merge(sheet, row, (2, 4), "NGƯỜI LẬP BIỂU", _BOLD)
    _merge(sheet, row, (10, 13), "TM. BAN THƯỜNG VỤ", _BOLD)
    _merge(sheet, row + 1, (2, 4), "(Ký, ghi rõ họ tên)", _ITALIC)
    _merge(sheet, row + 1, (10, 13), "BÍ THƯ", _BOLD)
    _merge(sheet, row + 2, (10, 13), "(Ký, ghi rõ họ tên, đóng dấu)", _ITALIC)
    for offset in range(3):
        sheet.row_dimensions[row + offset].height = 18


def blank_rows(reference: Reference, unit: Unit | None, settings: Settings) -> int:
    """Numbered rows of a blank form: one for every hamlet of the unit whose party cell
    may register this year (recognised or registering), and some spare."""
    if unit is None:
        return BLANK_ROWS
    since, year = settings.rules.recognised_since, settings.campaign.year
    eligible = sum(1 for commune in reference.communes.get(unit.code, [])
                   for cell in commune.cells
                   if (cell.recognised_year or 0) >= since or cell.registered_year == year)
    return max(BLANK_ROWS, eligible + SPARE_ROWS)


def build_template(settings: Settings, reference: Reference, unit: Unit | None = None,
                   rows: Iterable[Sequence[object]] = ()) -> Workbook:
    """The form as a workbook; ``rows`` (cells from column A) fill the data area."""
    year = settings.campaign.year
    book = Workbook()
    set_default_font(book, SIZE)
    sheet = book.active
    sheet.title = "Danh sách"
    guide = book.create_sheet("Hướng dẫn")  # second, before the hidden lists
    width = len(COLUMNS)
    _heading(sheet, settings, unit)
    _table_header(sheet, year)
    filled = [list(r) for r in rows]
    count = len(filled) or blank_rows(reference, unit, settings)
    for offset in range(count):
        number = FIRST_DATA_ROW + offset
        values = filled[offset] if offset < len(filled) else [offset + 1]
        for index in range(1, width + 1):
            value = values[index - 1] if index - 1 < len(values) else None
            cell = sheet.cell(number, index, value)
            if isinstance(value, str):
                cell.data_type = "s"  # typed text, as Excel stores '=…: never a formula
            cell.font, cell.border = _NORMAL, _BORDER
            cell.alignment = _CENTER if index in CENTERED else _LEFT
        sheet.cell(number, 12).number_format = "@"  # phone: the leading 0 stays
        if offset < len(filled):  # typed rows size themselves in Excel; written ones cannot
            lines = max(wrapped_lines(v, COLUMNS[i][2], SIZE, SIZE)
                        for i, v in enumerate(values[:width]))
            if lines > 1:
                sheet.row_dimensions[number].height = row_height(lines, SIZE)
    end = FIRST_DATA_ROW + count - 1
    _validations(book, sheet, settings, reference, unit, end)
    _signatures(sheet, end + 2)
    sheet.freeze_panes = f"C{FIRST_DATA_ROW}"
    print_setup(sheet, title_rows=f"{HEADER_ROW}:{HEADER_ROW + 1}")
    _guide(guide, settings)
    return book


def _rule(sheet: Worksheet, area: str, title: str, error: str, **kind: object) -> None:
    """Data validation that refuses what is outside it (error alert on: Excel's default
    off lets anything be typed), with the reason in Vietnamese."""
    rule = DataValidation(allow_blank=True, showErrorMessage=True, errorStyle="stop",
                          errorTitle=title, error=error, **kind)  # type: ignore[arg-type]
    sheet.add_data_validation(rule)
    rule.add(area)


def _validations(book: Workbook, sheet: Worksheet, settings: Settings, reference: Reference,
                 unit: Unit | None, end: int) -> None:
    first = FIRST_DATA_ROW
    year = settings.campaign.year

    def area(letter: str) -> str:
        return f"{letter}{first}:{letter}{end}"

    if unit is not None:
        communes = sorted(reference.communes.get(unit.code, []),
                          key=lambda c: vietnamese_sort_key(c.name))
        if communes:
            lists = book.create_sheet("DanhMuc")
            lists.sheet_state = "hidden"
            for index, commune in enumerate(communes, start=1):
                lists.cell(index, 1, commune.name)
            _rule(sheet, area("B"), "Xã, phường, thị trấn",
                  f"Chọn xã, phường, thị trấn của {unit.name} trong danh sách thả xuống.",
                  type="list", formula1=f"DanhMuc!$A$1:$A${len(communes)}")
            cells = book.create_sheet("DanhMucChiBo")
            cells.sheet_state = "hidden"
            pairs = [(c.name, p.name) for c in communes
                     for p in sorted(c.cells, key=lambda p: vietnamese_sort_key(p.name))]
            for index, (commune_name, cell_name) in enumerate(pairs, start=1):
                cells.cell(index, 1, commune_name)
                cells.cell(index, 2, cell_name)
            column = f"DanhMucChiBo!$A$1:$A${len(pairs)}"
            # The party cells of the commune chosen in column B: its block of the sorted list.
            _rule(sheet, area("E"), "Tên Chi bộ",
                  "Chọn Chi bộ trong danh sách thả xuống: chọn xã, phường ở cột B trước, danh "
                  "sách chỉ gồm các Chi bộ ấp, khu phố của xã, phường đó.",
                  type="list",
                  formula1=f"OFFSET(DanhMucChiBo!$B$1,MATCH($B{first},{column},0)-1,0,"
                           f"COUNTIF({column},$B{first}),1)")
    _rule(sheet, area("D"), "Số lượng đoàn viên",
          "Ghi số lượng đoàn viên bằng số nguyên dương, ví dụ 18.",
          type="whole", operator="between", formula1="1", formula2="10000")
    for letter, title in (("F", "Năm được công nhận TSVMTD"),
                          ("J", "Năm đạt Chi đoàn kiểu mẫu cấp huyện")):
        _rule(sheet, area(letter), title, f"Ghi năm bằng 4 chữ số, từ 1990 đến {year}.",
              type="whole", operator="between", formula1="1990", formula2=str(year))
    marks = DataValidation(type="list", formula1='"x"', allow_blank=True,
                           showErrorMessage=True, errorStyle="stop", errorTitle="Đánh dấu",
                           error="Chỉ đánh dấu “x” (hoặc để trống).")
    sheet.add_data_validation(marks)
    for letter in ("G", "H", "I"):
        marks.add(area(letter))


def _guide(guide: Worksheet, settings: Settings) -> None:
    """The second sheet: the rules in plain Vietnamese, wrapped to the printed width."""
    year = settings.campaign.year
    board = settings.board
    lines = [GUIDE_TITLE.format(year=year), ""]
    if board.letter:
        lines.append(f"(Kèm theo Công văn số {board.letter} của {board.full_name})")
        lines.append("")
    lines += [line.format(year=year, since=settings.rules.recognised_since,
                          deadline=before(settings.campaign.deadline), board=board.full_name,
                          min_p=settings.rules.min_members_provincial,
                          min_d=settings.rules.min_members_district) for line in GUIDE]
    guide.column_dimensions["A"].width = GUIDE_WIDTH
    for index, text in enumerate(lines, start=1):
        cell = guide.cell(index, 1, text or None)
        heading = index == 1
        cell.font = _BOLD if heading else (_ITALIC if text.startswith("(Kèm") else _NORMAL)
        cell.alignment = _CENTER if heading or text.startswith("(Kèm") else Alignment(
            horizontal="justify", vertical="top", wrap_text=True)
        lines_needed = wrapped_lines(text, GUIDE_WIDTH, SIZE, SIZE, heading)
        guide.row_dimensions[index].height = row_height(lines_needed, SIZE) + (0 if text else -6)
    print_setup(guide, landscape=False, page_numbers=False, left_cm=2.5, right_cm=1.5, top_cm=2.0, bottom_cm=2.0)


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
