"""TCVN3 and VNI-Windows text (SPEC §3): decided by the cell's font, then by the column,
then by Vietnamese syllables; and files from xlsxwriter (rich text, an Excel table)."""

from __future__ import annotations

import io

import pytest
import xlsxwriter

from intake.config import Limits
from intake.sheets.fonts import extras
from intake.sheets.legacy import (
    TCVN3,
    VNI,
    is_syllable,
    reading,
    tcvn3_to_unicode,
    unicode_to_tcvn3,
    unicode_to_vni,
    vni_to_unicode,
)
from intake.sheets.read import read_file
from intake.sheets.report import check_files

from . import office


def every_name(reference) -> set[str]:
    names = set()
    for unit in reference.units.values():
        names |= {unit.name, unit.district}
    for communes in reference.communes.values():
        for commune in communes:
            names.add(commune.name)
            for cell in commune.cells:
                names |= {cell.hamlet, cell.name}
    return names


def test_vni_table_round_trips_every_vietnamese_letter():
    letters = ("aàảãáạăằẳẵắặâầẩẫấậeèẻẽéẹêềểễếệiìỉĩíịoòỏõóọôồổỗốộơờởỡớợ"
               "uùủũúụưừửữứựyỳỷỹýỵđ")
    for text in (letters, letters.upper()):
        assert vni_to_unicode(unicode_to_vni(text)) == text
    assert vni_to_unicode("Chi ñoaøn aáp Phuù Hoäi") == "Chi đoàn ấp Phú Hội"
    assert vni_to_unicode("CAÁP TÆNH") == "CẤP TỈNH"
    assert tcvn3_to_unicode("Chi ®oµn Êp Phó Héi") == "Chi đoàn ấp Phú Hội"


@pytest.mark.parametrize("word,ok", [
    ("thới", True), ("phước", True), ("giồng", True), ("quới", True), ("nhuận", True),
    ("người", True), ("rượu", True), ("hoà", True), ("hòa", True), ("khuya", True),
    ("gìn", True), ("giếng", True), ("êp", False), ("héi", False), ("tròc", False),
    ("xaõ", False), ("phoá", False), ("th¹nh", False),
])
def test_syllables(word, ok):
    assert is_syllable(word) is ok


def test_no_reference_name_in_unicode_is_decoded_and_every_legacy_one_is(reference):
    """Every unit, commune, hamlet and party cell name of the province: Unicode stays as it
    is; VNI is always recognised; TCVN3 is, except where both readings are Vietnamese
    ("Chi bé khu phè 1"), which only the font or the column can tell."""
    names = every_name(reference)
    assert [n for n in names if reading(n)[0] != n] == []
    assert [n for n in names if reading(unicode_to_vni(n))[0] != n] == []
    missed = [n for n in names
              if reading(unicode_to_tcvn3(n))[0].casefold() != n.casefold()]
    assert all(reading(unicode_to_tcvn3(n))[1] is None for n in missed)
    assert all(is_syllable(w) for n in missed for w in reading(unicode_to_tcvn3(n))[0].split()
               if w.isalpha())
    assert len(missed) < len(names) // 20
    assert reading("chi bé Êp phó héi")[0] == "chi bộ ấp phú hội"


def _csv(rows: list[list[str]]) -> bytes:
    return "\n".join(",".join(r) for r in rows).encode()


def test_font_beats_syllables_and_column_beats_doubt():
    """"Chi bé khu phè 1" is Vietnamese both ways: as Unicode in a file without fonts, as
    TCVN3 in a .VnTime cell or beside sure TCVN3 cells of its column."""
    ambiguous = unicode_to_tcvn3("Chi bộ khu phố 1")
    assert ambiguous == "Chi bé khu phè 1"
    [alone] = read_file("a.csv", _csv([["Chi bộ"], [ambiguous]]), Limits())
    assert alone.tables[0].rows[1] == [ambiguous]
    sure = unicode_to_tcvn3("Chi bộ ấp Phú Hội")  # "Chi bé Êp Phó Héi": no syllables as stored
    [column] = read_file("b.csv", _csv([["Chi bộ"], [sure], [ambiguous]]), Limits())
    assert column.tables[0].rows[1:] == [["Chi bộ ấp Phú Hội"], ["Chi bộ khu phố 1"]]
    book = io.BytesIO()
    with xlsxwriter.Workbook(book) as workbook:
        sheet = workbook.add_worksheet("DS")
        sheet.write("A1", "Chi bộ")
        sheet.write("A2", ambiguous, workbook.add_format({"font_name": ".VnTime"}))
        sheet.write("B2", unicode_to_vni("Khu phố 1"), workbook.add_format(
            {"font_name": "VNI-Times"}))
    [fonts] = read_file("c.xlsx", book.getvalue(), Limits())
    assert fonts.tables[0].rows[1] == ["Chi bộ khu phố 1", "Khu phố 1"]


def test_rich_text_is_decoded_run_by_run():
    """An Excel rich-text cell whose runs are in different fonts: each run as its font says."""
    book = io.BytesIO()
    with xlsxwriter.Workbook(book) as workbook:
        sheet = workbook.add_worksheet("DS")
        unicode = workbook.add_format({"font_name": "Times New Roman", "bold": True})
        tcvn3 = workbook.add_format({"font_name": ".VnTime"})
        sheet.write_rich_string("A1", unicode, "Chi bộ ", tcvn3, unicode_to_tcvn3("ấp Phú Hội"))
    data = book.getvalue()
    [sheet_extras] = extras(data, ".xlsx").values()
    assert sheet_extras.texts == {(0, 0): "Chi bộ ấp Phú Hội"}
    [read] = read_file("r.xlsx", data, Limits())
    assert read.tables[0].rows[0] == ["Chi bộ ấp Phú Hội"]


def _xlsxwriter_form(items: list[office.Registration]) -> tuple[bytes, dict[int, int]]:
    """As Excel users make lists: an Excel table (banded, filter buttons) with a totals row,
    the party cell as rich text (bold "Chi bộ"), a merged title above, communes typed in
    VNI-Windows with a VNI-Times font."""
    book = io.BytesIO()
    where: dict[int, int] = {}
    with xlsxwriter.Workbook(book) as workbook:
        sheet = workbook.add_worksheet("Đăng ký")
        bold = workbook.add_format({"bold": True})
        vni = workbook.add_format({"font_name": "VNI-Times", "valign": "vcenter"})
        sheet.merge_range("A1:H1", "DANH SÁCH ĐĂNG KÝ CHI ĐOÀN KIỂU MẪU NĂM 2021", bold)
        columns = ["STT", "Xã, phường, thị trấn", "Tên Chi đoàn", "Số lượng đoàn viên",
                   "Chi bộ ấp, khu phố", "Tình trạng Chi bộ", "Cấp đăng ký",
                   "Năm đạt CĐKM cấp huyện"]
        first, last = 3, 3 + len(items) - 1  # 0-based header row 2, data from row 3
        sheet.add_table(2, 0, last + 1, len(columns) - 1, {
            "total_row": True, "style": "Table Style Medium 2",
            "columns": [{"header": columns[0], "total_string": "Tổng cộng"}]
            + [{"header": c} for c in columns[1:3]]
            + [{"header": columns[3], "total_function": "sum"}]
            + [{"header": c} for c in columns[4:]]})
        row = first
        for commune, group in _groups(items):
            for index, item in group:  # no merges: Excel allows none inside a table
                where[index] = row + 1
                sheet.write(row, 1, unicode_to_vni(commune), vni)
                sheet.write(row, 0, index + 1)
                sheet.write(row, 2, item.branch)
                sheet.write(row, 3, item.members)
                _, _, rest = item.party_cell.partition(" ấp ")
                if rest:
                    sheet.write_rich_string(row, 4, bold, "Chi bộ", f" ấp {rest}")
                else:
                    sheet.write(row, 4, item.party_cell)
                sheet.write(row, 5, item.status)
                sheet.write(row, 6, item.level_text)
                if item.district_model:
                    sheet.write(row, 7, item.district_model)
                row += 1
    return book.getvalue(), where


def _groups(items):
    out: list[tuple[str, list]] = []
    for index, item in enumerate(items):
        if out and out[-1][0] == item.commune:
            out[-1][1].append((index, item))
        else:
            out.append((item.commune, [(index, item)]))
    return out


@pytest.mark.libreoffice
def test_xlsxwriter_table_with_totals_rich_text_and_vni(settings, reference, tmp_path):
    items = office.registrations(settings, reference)
    data, _where = _xlsxwriter_form(items)
    source = tmp_path / "excel.xlsx"
    source.write_bytes(data)
    [ods] = office.convert([source], "ods", tmp_path / "out")
    for name, payload in (("excel.xlsx", data), ("excel.ods", ods.read_bytes())):
        report = check_files([(name, payload)], reference, settings, reference.units["CT"])
        assert [(f.code, f.cell, f.message) for f in report.findings] == [], name
        assert sorted((r.row.text("commune"), r.cell.name, r.row.level)
                      for r in report.results) == sorted(
            (i.commune, i.party_cell, i.level) for i in items), name


def test_xlsxwriter_form_with_planted_errors(settings, reference):
    items = office.registrations(settings, reference)
    items[2].members = 3
    items[7].party_cell = "Chi bộ ấp Không Có"
    data, where = _xlsxwriter_form(items)
    report = check_files([("excel.xlsx", data)], reference, settings, reference.units["CT"],
                         coverage=False)
    assert sorted((f.code, f.row, f.column) for f in report.findings) == sorted([
        ("ROW_MEMBERS_BELOW_MIN", where[2], "D"), ("ROW_PARTY_CELL_UNKNOWN", where[7], "E")])


@pytest.mark.libreoffice
def test_fonts_survive_libreoffice_as_xls_and_ods(settings, reference, tmp_path):
    """The font path is what decides (not only the characters): LibreOffice keeps .VnTime
    and VNI-Times in .xls FONT records and .ods font faces, and cells are hinted by them."""
    items = office.registrations(settings, reference)
    data, where = office.legacy_fonts(items)
    source = tmp_path / "legacy.xlsx"
    source.write_bytes(data)
    produced = {".xlsx": data}
    for target in ("xls", "ods"):
        [path] = office.convert([source], target, tmp_path / target)
        produced[f".{target}"] = path.read_bytes()
    row = where[0] - 1
    for suffix, payload in produced.items():
        [sheet] = extras(payload, suffix).values()
        assert sheet.hints.get((row, 1)) == TCVN3, suffix  # commune, .VnTime
        assert sheet.hints.get((row, 2)) == VNI, suffix  # branch, VNI-Times
        assert (row - 1, 1) not in sheet.hints, suffix  # the Unicode header
