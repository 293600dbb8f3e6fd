"""What people print: the official form and the consolidated workbook, rendered by
LibreOffice to PDF and read back as text (issue 14)."""

from __future__ import annotations

import io
import re
import subprocess
from pathlib import Path

import pytest
from openpyxl import load_workbook

from intake.sheets.template import FIRST_DATA_ROW, HEADER_ROW, template_bytes, write_template
from intake.text import vietnamese_sort_key

from .conftest import need
from .printing import flat, pages_text, to_pdf, to_png

pytestmark = pytest.mark.libreoffice

TITLE = "DANH SÁCH ĐĂNG KÝ XÂY DỰNG CHI ĐOÀN KIỂU MẪU NĂM 2021"


def a4_landscape(pdf: Path) -> bool:
    info = subprocess.run([need("pdfinfo"), str(pdf)], capture_output=True, text=True,
                          check=True).stdout
    width, height = (float(x) for x in re.search(r"Page size:\s+([\d.]+) x ([\d.]+)",
                                                 info).groups())  # type: ignore[union-attr]
    return (round(width), round(height)) == (842, 595)


def form_and_guide(texts: list[str]) -> tuple[list[str], list[str]]:
    guide = [t for t in texts if "HƯỚNG DẪN LẬP DANH SÁCH" in t]
    return [t for t in texts if t not in guide], guide


def lines(page: str) -> list[str]:
    return [line.strip() for line in page.splitlines() if line.strip()]


def test_blank_form_prints_on_one_a4_landscape_page(tmp_path: Path, settings, reference):
    path = write_template(tmp_path / "mau.xlsx", settings, reference)
    pdf = to_pdf(path, tmp_path / "pdf")
    assert a4_landscape(pdf)
    form, guide = form_and_guide(pages_text(pdf))
    assert len(form) == 1 and len(guide) == 1
    page = lines(form[0])
    assert any(TITLE in line for line in page), "the title is cut or split"
    # The Youth Union's heading: its name on the right of the first line, level with the
    # provincial body; the issuing body, "***", the number, then the place and date.
    assert "TỈNH ĐOÀN BẾN TRE" in page[0] and page[0].endswith("ĐOÀN TNCS HỒ CHÍ MINH")
    assert page[1].startswith("BCH HUYỆN, THÀNH ĐOÀN")
    assert page[1].endswith("ngày …… tháng …… năm 2021")
    assert page[2] == "***" and page[3].startswith("Số:") and "-DS/" in page[3]
    assert page.index(next(x for x in page if TITLE in x)) == 4
    # One page wide: the first and the last columns are on the same page.
    text = form[0]
    for label in ("STT", "Xã, phường, thị", "Số điện thoại", "Ghi chú", "NGƯỜI LẬP BIỂU",
                  "TM. BAN THƯỜNG VỤ", "BÍ THƯ", "(Ký, ghi rõ họ tên)"):
        assert label in text, label
    numbers = [x for x in page if x.isdigit()]
    assert numbers == [str(n) for n in range(1, 16)]
    # Signatures come after the last row, in the order they are signed.
    sign = next(i for i, x in enumerate(page) if "NGƯỜI LẬP BIỂU" in x)
    assert sign > page.index("15") and "TM. BAN THƯỜNG VỤ" in page[sign]
    assert to_png(pdf, tmp_path, "mau")


def test_guide_lines_are_never_cut(tmp_path: Path, settings, reference):
    path = write_template(tmp_path / "mau.xlsx", settings, reference, reference.units["CL"])
    _form, guide = form_and_guide(pages_text(to_pdf(path, tmp_path / "pdf")))
    assert len(guide) == 1
    printed = flat(guide[0])
    written = [c.value for c in load_workbook(path)["Hướng dẫn"]["A"] if c.value]
    assert len(written) >= 12
    for line in written:
        assert flat(line) in printed, line
    assert "trước ngày 20/02/2021" in printed and "Ban Tổ chức – Kiểm tra Tỉnh đoàn Bến Tre" \
        in printed


def test_unit_form_is_one_page_wide_with_the_header_on_every_page(tmp_path: Path, settings,
                                                                   reference):
    unit = reference.units["CT"]
    path = write_template(tmp_path / "mau-ct.xlsx", settings, reference, unit)
    pdf = to_pdf(path, tmp_path / "pdf")
    form, _guide = form_and_guide(pages_text(pdf))
    assert len(form) >= 2
    for page in form:
        for label in ("STT", "Tên Chi đoàn", "Chi bộ ấp, khu phố", "Số điện thoại", "Ghi chú"):
            assert label in page, label
    first = lines(form[0])
    assert first[1].startswith("BCH HUYỆN ĐOÀN CHÂU THÀNH")
    assert first[1].endswith("Châu Thành, ngày …… tháng …… năm 2021")
    # Pages are numbered at the top from the second one on (Decree 30/2020/NĐ-CP).
    assert all(lines(page)[0] == str(n) for n, page in enumerate(form[1:], start=2))
    numbers = [int(x) for n, page in enumerate(form) for x in lines(page)[1 if n else 0:]
               if x.isdigit()]
    rows = load_workbook(path)["Danh sách"].max_row
    assert numbers[0] == 1 and numbers == list(range(1, len(numbers) + 1))
    assert FIRST_DATA_ROW + len(numbers) - 1 < rows  # the signatures follow the rows
    assert "NGƯỜI LẬP BIỂU" in form[-1] and all("NGƯỜI LẬP BIỂU" not in p for p in form[:-1])
    assert to_png(pdf, tmp_path, "mau-ct")


def test_unit_form_dropdowns_cover_every_hamlet_and_refuse_other_values(settings, reference):
    unit = reference.units["GT"]  # the unit with the most hamlets
    book = load_workbook(io.BytesIO(template_bytes(settings, reference, unit)))
    sheet = book["Danh sách"]
    assert book.sheetnames[:2] == ["Danh sách", "Hướng dẫn"]
    eligible = sum(1 for c in reference.communes[unit.code] for p in c.cells
                   if (p.recognised_year or 0) >= 2018 or p.registered_year == 2021)
    assert eligible > 60
    last = FIRST_DATA_ROW + eligible - 1
    rules = sheet.data_validations.dataValidation
    by_column = {str(r.sqref).split(":")[0].rstrip("0123456789"): r for r in rules}
    assert set(by_column) >= {"B", "D", "E", "F", "G", "J"}
    for rule in rules:
        assert rule.showErrorMessage and rule.errorStyle == "stop" and rule.error, rule.sqref
        for part in str(rule.sqref).split():
            start, end = part.split(":")
            assert int(start[1:]) == FIRST_DATA_ROW and int(end[1:]) >= last, part
    assert by_column["B"].formula1.startswith("DanhMuc!")
    # Column E lists the party cells of the commune chosen in column B (same row).
    formula = by_column["E"].formula1
    assert f"$B{FIRST_DATA_ROW}" in formula and "DanhMucChiBo" in formula
    communes = [r[0] for r in book["DanhMuc"].iter_rows(values_only=True)]
    pairs = list(book["DanhMucChiBo"].iter_rows(values_only=True))
    assert communes == sorted(communes, key=vietnamese_sort_key)
    assert [c for c in dict.fromkeys(p[0] for p in pairs)] == communes  # one block each
    for commune in reference.communes[unit.code]:
        block = [p[1] for p in pairs if p[0] == commune.name]
        assert block == sorted((c.name for c in commune.cells), key=vietnamese_sort_key)
    assert book["DanhMuc"].sheet_state == book["DanhMucChiBo"].sheet_state == "hidden"
    assert sheet.print_title_rows == f"${HEADER_ROW}:${HEADER_ROW + 1}"
    assert sheet.sheet_properties.pageSetUpPr.fitToPage
    assert (sheet.page_setup.fitToWidth, sheet.page_setup.fitToHeight) == (1, 0)
    assert sheet.cell(FIRST_DATA_ROW, 12).number_format == "@"  # phone keeps its leading 0


# -- the consolidated workbook -------------------------------------------------------------

SHEET_TITLES = {
    "TỔNG HỢP ĐĂNG KÝ": "Tổng hợp",
    "DANH SÁCH CHI ĐOÀN ĐĂNG KÝ": "Danh sách",
    "CÁC LỖI TRONG DANH SÁCH": "Lỗi",
    "ĐỘ PHỦ CHI ĐOÀN ĐĂNG KÝ": "Độ phủ NTM-ĐTVM",
    "NHẬT KÝ THƯ NHẬN": "Nhật ký",
}


def by_sheet(texts: list[str]) -> dict[str, list[str]]:
    """Pages grouped by the sheet title printed in their page header."""
    out: dict[str, list[str]] = {}
    for text in texts:
        head = lines(text)[0]
        [sheet] = [name for title, name in SHEET_TITLES.items() if title in head]
        out.setdefault(sheet, []).append(text)
    return out


def printed_in_order(text: str, page: str) -> bool:
    """Every word of ``text`` is on the page, in order (a neighbouring cell's wrapped
    words may come in between); a word clipped by a short row is missing."""
    words = iter(page.split())
    return all(any(word == seen for seen in words) for word in text.split())


def word_heights(pdf: Path, page: int) -> list[float]:
    """Heights (points) of the words printed on a page: how big the text really is."""
    html = subprocess.run([need("pdftotext"), "-bbox", "-f", str(page), "-l", str(page),
                           str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    return [float(b) - float(a) for a, b in
            re.findall(r'<word xMin="[\d.]+" yMin="([\d.]+)" xMax="[\d.]+" yMax="([\d.]+)"', html)]


@pytest.fixture
def demo_workbook(tmp_path: Path) -> tuple[Path, object]:
    """The workbook after the demo's mail from every unit (corrections, late, additions…)."""
    from intake.demo import sample_mail
    from intake.workbook import rebuild

    from .conftest import file_offline, make_settings

    settings = make_settings(tmp_path)
    file_offline(settings, sample_mail(settings))
    return rebuild(settings), settings


def test_workbook_sheets_print_legibly_with_their_header_on_every_page(tmp_path: Path,
                                                                       demo_workbook):
    path, _settings = demo_workbook
    book = load_workbook(path)
    for sheet in book.worksheets:  # a named face, never the viewer's fallback
        assert {c.font.name for c in sheet[1]} == {"Times New Roman"}, sheet.title
    pdf = to_pdf(path, tmp_path / "pdf")
    texts = pages_text(pdf)
    sheets = by_sheet(texts)
    assert list(sheets) == ["Tổng hợp", "Danh sách", "Lỗi", "Độ phủ NTM-ĐTVM", "Nhật ký"]
    assert len(sheets["Tổng hợp"]) == 1
    summary = sheets["Tổng hợp"][0]
    for unit in ("Huyện đoàn Ba Tri", "Huyện đoàn Chợ Lách", "Thành đoàn Bến Tre", "Tổng cộng"):
        assert unit in summary
    # Danh sách: registration on one page, check result on the next, Đơn vị, Xã and Tên
    # Chi đoàn repeated on both, the header row on every page.
    listing = sheets["Danh sách"]
    assert len(listing) >= 4 and len(listing) % 2 == 0
    for number, page in enumerate(listing):
        header = " ".join(lines(page)[1:6])
        assert "Đơn vị" in header and "Tên Chi đoàn" in header, number
        half = ("Bí thư Chi đoàn", "Số điện thoại") if number % 2 == 0 else ("Kết quả", "Nhận lúc")
        assert all(label in header for label in half), (number, header)
    for sheet in ("Lỗi", "Độ phủ NTM-ĐTVM", "Nhật ký"):
        first = "Nhận lúc" if sheet == "Nhật ký" else "Đơn vị"
        assert all(first in " ".join(lines(p)[1:4]) for p in sheets[sheet]), sheet
    # Legible: the words of a Danh sách page stand 10 points high or more (about 9-point
    # text); fitting its 16 columns to one page width printed them 5 points high.
    first_listing = texts.index(listing[0]) + 1
    heights = sorted(word_heights(pdf, first_listing))
    assert heights[len(heights) // 2] >= 10.0, heights[len(heights) // 2]
    # People read Vietnamese only: no status codes left in what is printed.
    everything = "\n".join(texts)
    for code in ("accepted", "needs-correction", "no-attachment", "unknown-sender", "(held)"):
        assert code not in everything, code
    assert to_png(pdf, tmp_path, "tong-hop")


def test_wrapped_cells_are_printed_whole(tmp_path: Path, demo_workbook):
    """Row heights follow the text: the long cells of Lỗi and Độ phủ print every word, and
    Lỗi gives the suggestion the reply gave."""
    path, _settings = demo_workbook
    book = load_workbook(path)
    texts = by_sheet(pages_text(to_pdf(path, tmp_path / "pdf")))
    errors = [r for r in book["Lỗi"].iter_rows(min_row=2, values_only=True) if r[5]]
    misspelt = next(r for r in errors if r[5] == "ROW_COMMUNE_UNKNOWN")
    assert misspelt[7].endswith("Gợi ý: Có phải là “Xã Phú Phụng”?")
    printed = " ".join(texts["Lỗi"])
    for row in errors:
        assert printed_in_order(row[7], printed), row[7]
    missing = [r for r in book["Độ phủ NTM-ĐTVM"].iter_rows(min_row=2, values_only=True)
               if r[5] and len(r[5]) > 60]
    assert missing
    printed = " ".join(texts["Độ phủ NTM-ĐTVM"])
    for row in missing:
        assert printed_in_order(row[5], printed), row[5]
    heights = {r: book["Độ phủ NTM-ĐTVM"].row_dimensions[r].height
               for r in range(2, book["Độ phủ NTM-ĐTVM"].max_row + 1)}
    assert max(h or 0 for h in heights.values()) > 30  # two lines and more, sized
