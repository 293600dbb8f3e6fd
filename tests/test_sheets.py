"""Reading and checking spreadsheets: layouts people send, and every row-level rule."""

from __future__ import annotations

import io
import unicodedata
import zipfile
from pathlib import Path

import pytest
from openpyxl import Workbook

from intake.config import Limits
from intake.samples import eligible_rows, form
from intake.sheets.checks import check_conflict
from intake.sheets.header import canonical, match_field
from intake.sheets.legacy import unicode_to_tcvn3
from intake.sheets.read import read_file
from intake.sheets.report import check_files
from intake.sheets.rows import mark, members, status_text, year

CORPUS = Path(__file__).parent / "corpus" / "sheets"


def xlsx(*sheets: tuple[str, list[list[object]]], hidden: tuple[str, ...] = ()) -> bytes:
    book = Workbook()
    book.remove(book.active)
    for title, rows in sheets:
        sheet = book.create_sheet(title)
        for row in rows:
            sheet.append(row)
        if title in hidden:
            sheet.sheet_state = "hidden"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


TONES = {"\u0300", "\u0301", "\u0303", "\u0309", "\u0323"}


def windows_1258(text: str) -> bytes:
    """Text as Windows writes Windows-1258: base vowels precomposed, tones as combining marks."""
    out = []
    for char in text:
        parts = unicodedata.normalize("NFD", char)
        tones = "".join(p for p in parts if p in TONES)
        base = unicodedata.normalize("NFC", "".join(p for p in parts if p not in TONES))
        out.append(base + tones)
    return "".join(out).encode("cp1258")


def codes(report) -> list[str]:
    return sorted(f.code for f in report.findings)


def ct_cells(reference, count=3):
    """(commune, cell) pairs of Châu Thành that are eligible, from the reference list."""
    out = []
    for commune in reference.communes["CT"]:
        for cell in commune.cells:
            if (cell.recognised_year or 0) >= 2018:
                out.append((commune, cell))
                if len(out) == count:
                    return out
    return out


ONE_ROW_HEADER = ["STT", "Xã/Phường", "Tên chi đoàn", "SL ĐV", "Chi bộ", "Tình trạng Chi bộ",
                  "Cấp đăng ký", "Năm đạt CĐKM cấp huyện", "Bí thư", "SĐT"]


def one_row_file(reference, rows=None) -> bytes:
    data = rows if rows is not None else [
        [i + 1, commune.name, f"Chi đoàn {cell.hamlet}", "25 ĐV", cell.name,
         f"Đã công nhận năm {cell.recognised_year}", "Cấp huyện", None, "Lê Thị B", "0987654321"]
        for i, (commune, cell) in enumerate(ct_cells(reference))]
    return xlsx(("Sheet1", [["HUYỆN ĐOÀN CHÂU THÀNH"], [],
                            ["DANH SÁCH ĐĂNG KÝ CHI ĐOÀN KIỂU MẪU"], ONE_ROW_HEADER, *data,
                            ["Tổng cộng", None, None, 75], [],
                            [None, None, None, None, None, None, "Người lập biểu"]]))


def test_official_template_is_read_as_written(settings, reference):
    unit = reference.units["CT"]
    rows = eligible_rows(settings, reference, unit)
    report = check_files([("ds.xlsx", form(settings, reference, unit, rows))], reference,
                         settings, unit)
    assert report.findings == []
    assert len(report.results) == len(rows)
    first = report.results[0].row
    assert first.number == 8 and first.column("members") == "D"
    assert first.text("commune") == rows[0][1]


@pytest.mark.parametrize("text,field", [
    ("Xã, phường, thị trấn", "commune"), ("Tên Chi đoàn", "branch"),
    ("Số lượng\nđoàn viên", "members"), ("SL ĐV", "members"), ("Chi bộ ấp, khu phố", "party_cell"),
    ("Năm được công nhận TSVMTD", "recognised_year"), ("Đăng ký TSVMTD năm 2021", "registering"),
    ("Cấp tỉnh", "level_provincial"), ("Cấp huyện", "level_district"),
    ("Cấp đăng ký", "level"), ("Tình trạng Chi bộ", "status"),
    ("Năm đạt Chi đoàn kiểu mẫu cấp huyện", "district_model_year"), ("Năm đạt CĐKM", "district_model_year"),
    ("Ten Chi doan", "branch"), ("SĐT", "phone"), ("Họ và tên", "secretary"), ("TT", "stt"),
    ("Huyện/Thành đoàn", "unit"), ("Đơn vị", "unit"), ("Ghi  chú", "notes"),
])
def test_header_aliases(text, field):
    assert match_field(text) == field, canonical(text)


@pytest.mark.parametrize("text", ["Xã An Thạnh", "Chi đoàn ấp 1", "15", "x", "Nguyễn Văn An"])
def test_data_values_are_not_headers(text):
    assert match_field(text) is None


def test_one_row_header_with_title_totals_and_signature(settings, reference):
    report = check_files([("ct.xlsx", one_row_file(reference))], reference, settings)
    assert report.unit is not None and report.unit.code == "CT"  # from the heading
    assert len(report.results) == 3
    assert all(r.row.level == "district" and r.row.members == 25 for r in report.results)
    assert [r.row.number for r in report.results] == [5, 6, 7]
    assert codes(report) == ["COVERAGE_INCOMPLETE"] * len(reference.titled_communes("CT"))


def test_columns_in_any_order_missing_diacritics_and_extra_columns(settings, reference):
    header = ["Ghi chu", "Chi bo ap, khu pho", "Nam cong nhan TSVMTD", "Xa, phuong, thi tran",
              "Ten Chi doan", "So luong doan vien", "Cap tinh", "Cap huyen", "Cot them"]
    rows = [[None, cell.name, cell.recognised_year, commune.name, f"CĐ {cell.hamlet}", 12, None,
             "X", "abc"] for commune, cell in ct_cells(reference)]
    report = check_files([("x.xlsx", xlsx(("DS", [header, *rows])))], reference, settings,
                         reference.units["CT"])
    assert len(report.results) == 3
    assert not [f for f in report.findings if f.code != "COVERAGE_INCOMPLETE"]


def test_instructions_sheet_first_and_hidden_sheet_skipped(settings, reference):
    data = one_row_file(reference)
    guide = ("Hướng dẫn", [["Điền danh sách vào trang sau"]])
    old = ("Cũ", [ONE_ROW_HEADER, [1, "Xã Không Có", "CĐ", 5, "CB", "x", "x"]])
    from openpyxl import load_workbook

    book = load_workbook(io.BytesIO(data))
    book.create_sheet(guide[0], 0).append(guide[1][0])
    hidden = book.create_sheet(old[0])
    for row in old[1]:
        hidden.append(row)
    hidden.sheet_state = "hidden"
    out = io.BytesIO()
    book.save(out)
    report = check_files([("ct.xlsx", out.getvalue())], reference, settings,
                         reference.units["CT"])
    assert {r.row.sheet for r in report.results} == {"Sheet1"}
    assert len(report.results) == 3


def test_one_sheet_per_level_reads_both(settings, reference):
    cells = ct_cells(reference, 4)
    header = ["Xã", "Tên Chi đoàn", "Số ĐV", "Tên Chi bộ", "Năm được công nhận TSVMTD",
              "Cấp đăng ký", "Năm đạt CĐKM cấp huyện"]
    tinh = [[c.name, f"CĐ {p.hamlet}", 20, p.name, p.recognised_year, "Tỉnh", 2019]
            for c, p in cells[:2]]
    huyen = [[c.name, f"CĐ {p.hamlet}", 20, p.name, p.recognised_year, "Huyện", None]
             for c, p in cells[2:]]
    report = check_files([("2cap.xlsx", xlsx(("Cấp tỉnh", [header, *tinh]),
                                              ("Cấp huyện", [header, *huyen])))],
                         reference, settings, reference.units["CT"])
    assert [r.row.level for r in report.results] == ["provincial"] * 2 + ["district"] * 2
    assert all(r.valid for r in report.results)


def test_value_parsers():
    assert [members(v) for v in (15, 15.0, "15", "15 ĐV", " 15 đoàn viên", "15,5", "mười", -3)] \
        == [15, 15, 15, 15, 15, None, None, -3]
    assert [mark(v) for v in ("x", "X", "✓", "1", "có", "", None, "0", "không", "?")] \
        == [True, True, True, True, True, False, False, False, False, None]
    assert [mark(v) for v in ("√", "✔", "☑", "Ｘ", " √ ", "✅")] == [True] * 6
    assert [year(v) for v in (2019, 2019.0, "2019", "năm 2019", "19", "2018-2019")] \
        == [2019, 2019, 2019, 2019, None, None]
    assert status_text("Đã công nhận năm 2019") == (2019, False)
    assert status_text("Đăng ký năm 2021") == (2021, True)  # the year is checked against the campaign
    assert status_text("Đăng ký TSVMTD") == (None, True)
    assert status_text("không rõ") is None


def test_nfd_and_tcvn3_text_are_read_as_vietnamese(settings, reference):
    cells = ct_cells(reference, 2)
    header = ["Xã, phường, thị trấn", "Tên Chi đoàn", "Số lượng đoàn viên", "Tên Chi bộ",
              "Năm được công nhận TSVMTD", "Cấp đăng ký"]
    (c1, p1), (c2, p2) = cells
    rows = [[unicodedata.normalize("NFD", c1.name), "CĐ 1", 20,
             unicodedata.normalize("NFD", p1.name), p1.recognised_year, "Cấp huyện"],
            [unicode_to_tcvn3(c2.name), "CĐ 2", 20, unicode_to_tcvn3(p2.name),
             p2.recognised_year, unicode_to_tcvn3("Cấp huyện")]]
    report = check_files([("legacy.xlsx", xlsx(("DS", [header, *rows])))], reference, settings,
                         reference.units["CT"])
    assert [r.cell for r in report.results] == [p1, p2]
    assert report.results[1].row.text("commune") == c2.name


def _row_findings(settings, reference, edit, unit="CT") -> list[tuple[str, int, str]]:
    """(code, Excel row, column letter) of every finding after ``edit`` of valid rows."""
    rows = eligible_rows(settings, reference, reference.units[unit])
    edit(rows)
    report = check_files([("t.xlsx", form(settings, reference, reference.units[unit], rows))],
                         reference, settings, reference.units[unit], coverage=False)
    return sorted({(f.code, f.row, f.column) for f in report.findings})


def _row_codes(settings, reference, edit, unit="CT") -> list[str]:
    return sorted({code for code, _row, _col in _row_findings(settings, reference, edit, unit)})


def _set(row: int, col: int, value):
    def edit(rows):
        rows[row][col] = value
    return edit


# Data starts at Excel row 8 in the official form; columns A (STT) … M (Ghi chú).
@pytest.mark.parametrize("edit,expected", [
    (_set(0, 2, None), ("ROW_REQUIRED", 8, "C")),
    (_set(0, 3, "mười lăm"), ("ROW_MEMBERS_INVALID", 8, "D")),
    (_set(0, 3, 0), ("ROW_MEMBERS_INVALID", 8, "D")),
    (_set(0, 3, 12), ("ROW_MEMBERS_BELOW_MIN", 8, "D")),  # row 0 is provincial (min 15)
    (_set(1, 3, 9), ("ROW_MEMBERS_BELOW_MIN", 9, "D")),  # row 1 is district (min 10)
    (_set(1, 7, "x"), ("ROW_LEVEL_INVALID", 9, "H")),  # both levels
    (_set(1, 8, None), ("ROW_LEVEL_INVALID", 9, "H")),  # none
    (_set(1, 8, "?"), ("ROW_LEVEL_INVALID", 9, "H")),  # not a mark
    (_set(0, 9, None), ("ROW_DISTRICT_MODEL_REQUIRED", 8, "J")),
    (_set(0, 1, "Xã Không Tồn Tại"), ("ROW_COMMUNE_UNKNOWN", 8, "B")),
    (_set(0, 4, "Chi bộ ấp Không Có"), ("ROW_PARTY_CELL_UNKNOWN", 8, "E")),
    (_set(2, 11, "12345"), ("ROW_PHONE_INVALID", 10, "L")),
])
def test_each_row_rule(settings, reference, edit, expected):
    assert _row_findings(settings, reference, edit) == [expected]


def test_status_both_or_neither_given(settings, reference):
    def both(rows):
        rows[0][6] = "x"
    def neither(rows):
        rows[0][5] = None
        rows[0][6] = None
    assert _row_codes(settings, reference, both) == ["ROW_STATUS_INVALID"]
    assert _row_codes(settings, reference, neither) == ["ROW_STATUS_INVALID"]


def test_ineligible_party_cell_and_contradicting_status(settings, reference):
    commune = next(c for c in reference.communes["CT"] if any(
        p.recognised_year is None and p.registered_year is None for p in c.cells))
    cell = next(p for p in commune.cells if p.recognised_year is None and p.registered_year is None)

    def ineligible(rows):
        rows[0][1], rows[0][4], rows[0][5], rows[0][6] = commune.name, cell.name, None, "x"
    assert _row_codes(settings, reference, ineligible) == ["ROW_PARTY_CELL_NOT_ELIGIBLE"]

    def wrong_year(rows):
        rows[0][5] = (rows[0][5] or 2019) - 1 if rows[0][5] else 2019
        rows[0][6] = None
    assert _row_codes(settings, reference, wrong_year) == ["ROW_PARTY_CELL_NOT_ELIGIBLE"]


def test_duplicate_hamlet(settings, reference):
    def dup(rows):
        rows.append(list(rows[0]))
    assert _row_codes(settings, reference, dup) == ["ROW_DUPLICATE"]


def test_hamlet_held_by_another_unit_alone(settings, reference):
    """ROW_CONFLICT as a plain function: a row, its party cell and the hamlets other
    units hold (what filing reads from the store) in, findings out."""
    unit = reference.units["CT"]
    rows = eligible_rows(settings, reference, unit)[:2]
    report = check_files([("t.xlsx", form(settings, reference, unit, rows))], reference,
                         settings, unit, coverage=False)
    first, second = report.results
    assert first.cell is not None and second.cell is not None
    hamlet = (first.cell.commune_code, first.cell.key)
    held = {hamlet: "CL"}
    [found] = check_conflict(first.row, first.cell, held, reference)
    assert (found.code, found.level) == ("ROW_CONFLICT", "error")
    assert found.message == (f"Dòng {first.row.number}: {first.cell.name} "
                             f"({first.cell.commune_name}) đã được Huyện đoàn Chợ Lách đăng ký.")
    assert found.suggestion == ("Hai đơn vị thống nhất với nhau; mỗi ấp, khu phố chỉ do một "
                                "đơn vị đăng ký.")
    assert (found.file, found.sheet, found.row, found.column, found.field, found.value) == (
        "t.xlsx", first.row.sheet, first.row.number, first.row.column("party_cell"),
        "party_cell", first.row.text("party_cell"))
    assert check_conflict(second.row, second.cell, held, reference) == []
    assert check_conflict(first.row, first.cell, {}, reference) == []
    # A unit no longer in the reference lists is named by its code.
    [gone] = check_conflict(first.row, first.cell, {hamlet: "XX"}, reference)
    assert gone.message.endswith("đã được XX đăng ký.")


def test_report_is_built_with_the_conflicts(settings, reference):
    """Given who holds which hamlet, the report comes out with ROW_CONFLICT in it: asked
    once for the unit's hamlets, the conflicting row invalid, the others untouched."""
    unit = reference.units["CT"]
    rows = eligible_rows(settings, reference, unit)[:3]
    asked: list[tuple[str, set[tuple[str, str]]]] = []

    def held_by_others(unit_code, hamlets):
        asked.append((unit_code, set(hamlets)))
        return {min(hamlets): "CL"}
    report = check_files([("t.xlsx", form(settings, reference, unit, rows))], reference,
                         settings, unit, coverage=False, held=held_by_others)
    hamlets = {(r.cell.commune_code, r.cell.key) for r in report.results if r.cell}
    assert asked == [("CT", hamlets)] and len(hamlets) == 3
    assert codes(report) == ["ROW_CONFLICT"]
    assert [r.valid for r in report.results].count(False) == 1
    assert check_files([("t.xlsx", form(settings, reference, unit, rows))], reference,
                       settings, unit, coverage=False).errors == []


def test_branch_naming_another_hamlet_is_a_warning(settings, reference):
    def swap(rows):
        rows[0][2] = rows[1][2]
    rows = eligible_rows(settings, reference, reference.units["CT"])
    assert rows[0][1] == rows[1][1]  # same commune, so the swap names a sibling hamlet
    assert _row_codes(settings, reference, swap) == ["ROW_BRANCH_MISMATCH"]


def test_unit_column_naming_another_unit(settings, reference):
    cells = ct_cells(reference, 1)
    header = ["Đơn vị", "Xã", "Tên Chi đoàn", "Số lượng ĐV", "Tên Chi bộ",
              "Năm được công nhận TSVMTD", "Cấp đăng ký"]
    rows = [["Huyện đoàn Ba Tri", c.name, "CĐ", 20, p.name, p.recognised_year, "Huyện"]
            for c, p in cells]
    report = check_files([("u.xlsx", xlsx(("DS", [header, *rows])))], reference, settings,
                         reference.units["CT"], coverage=False)
    assert codes(report) == ["ROW_UNIT_MISMATCH"]


def test_commune_of_another_unit_says_which(settings, reference):
    other = reference.communes["BT"][0]

    def edit(rows):
        rows[0][1] = other.name
    rows = eligible_rows(settings, reference, reference.units["CT"])
    edit(rows)
    report = check_files([("t.xlsx", form(settings, reference, reference.units["CT"], rows))],
                         reference, settings, reference.units["CT"], coverage=False)
    [finding] = [f for f in report.findings if f.code == "ROW_COMMUNE_UNKNOWN"]
    assert "Huyện đoàn Ba Tri" in finding.message
    assert finding.row == 8 and finding.column == "B"


def test_misspelt_commune_gets_a_suggestion(settings, reference):
    commune = reference.communes["CT"][3]

    def edit(rows):
        rows[0][1] = commune.name.replace("Xã ", "Xa ")[:-1]
    rows = eligible_rows(settings, reference, reference.units["CT"])
    edit(rows)
    report = check_files([("t.xlsx", form(settings, reference, reference.units["CT"], rows))],
                         reference, settings, reference.units["CT"], coverage=False)
    [finding] = [f for f in report.findings if f.code == "ROW_COMMUNE_UNKNOWN"]
    assert finding.suggestion == f"Có phải là “{commune.name}”?"


def test_coverage_lists_missing_hamlets(settings, reference):
    unit = reference.units["CT"]
    rows = eligible_rows(settings, reference, unit)
    titled = reference.titled_communes("CT")[0]
    dropped = [r for r in rows if r[1] == titled.name][:2]
    kept = [r for r in rows if r not in dropped]
    report = check_files([("t.xlsx", form(settings, reference, unit, kept))], reference,
                         settings, unit)
    [finding] = report.coverage
    assert finding.code == "COVERAGE_INCOMPLETE"
    for row in dropped:
        hamlet = row[2].removeprefix("Chi đoàn ")
        assert hamlet in finding.message


def test_sheet_level_findings(settings, reference):
    no_header = xlsx(("A", [["Kính gửi Ban"], ["Danh sách kèm theo"]]))
    missing = xlsx(("A", [["Xã", "Tên Chi đoàn", "Tên Chi bộ", "Cấp đăng ký"],
                          ["Xã Tân Thạch", "CĐ", "CB", "Huyện"]]))
    empty = xlsx(("A", [["Xã", "Tên Chi đoàn", "Số ĐV", "Tên Chi bộ", "Tình trạng", "Cấp"]]))
    report = check_files([("a.xlsx", no_header), ("b.xlsx", missing), ("c.xlsx", empty)],
                         reference, settings, reference.units["CT"], coverage=False)
    found = {(f.file, f.code, f.field) for f in report.findings}
    assert ("a.xlsx", "SHEET_NO_HEADER", "") in found
    assert ("b.xlsx", "SHEET_MISSING_COLUMN", "members") in found
    assert ("b.xlsx", "SHEET_MISSING_COLUMN", "status") in found
    assert ("c.xlsx", "SHEET_NO_ROWS", "") in found


@pytest.mark.parametrize("name,code", [
    ("calamine/pass_protected.xlsx", "FILE_ENCRYPTED"),
    ("calamine/pass_protected.ods", "FILE_ENCRYPTED"),
    ("python-calamine/password.xlsx", "FILE_ENCRYPTED"),
    ("calamine/issue_594_dos.ods", "FILE_TOO_LARGE"),  # one valued cell repeated 10^18 times
    ("calamine/too_small.xls", "FILE_UNREADABLE"),
    ("python-calamine/empty_file.xlsx", "FILE_UNREADABLE"),
    ("calamine/issue252.xlsx", "FILE_UNREADABLE"),
    ("xlrd/biff4_no_format_no_window2.xls", "FILE_UNREADABLE"),
])
def test_broken_and_hostile_corpus_files_become_findings(name, code):
    [result] = read_file(Path(name).name, (CORPUS / name).read_bytes(), Limits())
    assert [f.code for f in result.findings] == [code]
    assert result.findings[0].message  # Vietnamese explanation for the sender


def test_every_corpus_file_yields_rows_or_a_file_or_sheet_finding(settings, reference):
    paths = sorted(p for p in CORPUS.rglob("*") if p.is_file())
    assert len(paths) >= 70
    for path in paths:
        report = check_files([(path.name, path.read_bytes())], reference, settings)
        assert report.files, path
        sheet_or_file = [f for f in report.findings if f.code.startswith(("FILE_", "SHEET_"))]
        assert report.results or sheet_or_file, path
    # Readable workbooks that are not registrations say so; never an empty success.
    for name in ("calamine/issue_174.xlsx", "calamine/strict_iso_paths.xlsx",
                 "calamine/vba.xlsm"):
        report = check_files([(name, (CORPUS / name).read_bytes())], reference, settings)
        assert [f.code for f in report.findings] == ["SHEET_NO_HEADER"], name


def test_declared_giant_dimension_is_not_trusted():
    data = (CORPUS / "calamine" / "issue_174.xlsx").read_bytes()
    [result] = read_file("issue_174.xlsx", data, Limits())
    assert result.tables and len(result.tables[0].rows) < 1000


def test_wrong_extension_and_zero_bytes(settings, reference):
    unit = reference.units["CT"]
    real = form(settings, reference, unit, eligible_rows(settings, reference, unit))
    report = check_files([("ds.xls", real)], reference, settings, unit)  # xlsx named .xls
    assert report.findings == [] and report.results
    [pdf] = read_file("ds.xlsx", b"%PDF-1.7\n" + b"0" * 500, Limits())
    assert [f.code for f in pdf.findings] == ["FILE_UNREADABLE"]
    [empty] = read_file("ds.xlsx", b"", Limits())
    assert [f.code for f in empty.findings] == ["FILE_UNREADABLE"]


def test_billion_laughs_xlsx_is_not_expanded(settings, reference):
    unit = reference.units["CT"]
    real = form(settings, reference, unit, eligible_rows(settings, reference, unit, limit=2))
    entities = '<!ENTITY l0 "ha">' + "".join(
        f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10))  # "ha" × 10^9
    bomb = (f'<?xml version="1.0"?><!DOCTYPE sst [{entities}]>'
            '<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" count="1"'
            ' uniqueCount="1"><si><t>&l9;</t></si></sst>').encode()
    source = zipfile.ZipFile(io.BytesIO(real))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            data = bomb if item.filename == "xl/sharedStrings.xml" else source.read(item)
            target.writestr(item, data)
    import tracemalloc

    tracemalloc.start()
    report = check_files([("bom.xlsx", out.getvalue())], reference, settings, unit)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 50_000_000
    assert report.findings  # a finding (unreadable or wrong cells), never "ha" × 10^9
    assert {f.code for f in report.findings} <= {"FILE_UNREADABLE", "ROW_REQUIRED",
                                                 "ROW_COMMUNE_UNKNOWN", "COVERAGE_INCOMPLETE",
                                                 "ROW_PARTY_CELL_UNKNOWN", "ROW_STATUS_INVALID",
                                                 "ROW_LEVEL_INVALID", "ROW_MEMBERS_INVALID",
                                                 "SHEET_NO_HEADER", "SHEET_MISSING_COLUMN"}
    assert all(len(str(v)) < 10_000 for f in report.files for r in f.results
               for v in r.row.raw.values())


def test_limits(settings):
    limits = Limits(max_file_bytes=100, max_rows=5)
    [big] = read_file("a.xlsx", b"x" * 101, limits)
    assert [f.code for f in big.findings] == ["FILE_TOO_LARGE"]
    rows = "\n".join(f"{i},a" for i in range(10)).encode()
    [many] = read_file("a.csv", rows, Limits(max_rows=5))
    assert [f.code for f in many.findings] == ["FILE_TOO_LARGE"]
    [pdf] = read_file("scan.pdf", b"%PDF-1.4", Limits())
    assert [f.code for f in pdf.findings] == ["FILE_UNSUPPORTED"]


def test_zip_bomb_is_refused_before_inflating():
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("ds.csv", b"0" * 5_000_000)
    [result] = read_file("ds.zip", out.getvalue(), Limits(max_uncompressed_bytes=1_000_000))
    assert [f.code for f in result.findings] == ["FILE_TOO_LARGE"]


def test_zip_of_spreadsheets_and_csv_encodings(settings, reference):
    data = one_row_file(reference)
    header = "Xã,Tên Chi đoàn,Số lượng đoàn viên,Tên Chi bộ,Năm được công nhận TSVMTD,Cấp đăng ký\n"
    (commune, cell), = ct_cells(reference, 1)
    line = f"{commune.name},CĐ 1,20,{cell.name},{cell.recognised_year},Cấp huyện\n"
    text = header + line
    cp1258 = windows_1258(text)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("ct.xlsx", data)
        archive.writestr("bom.csv", "\ufeff".encode() + text.encode())
        archive.writestr("win.csv", cp1258)
    report = check_files([("goi.zip", out.getvalue())], reference, settings,
                         reference.units["CT"], coverage=False)
    assert [f.file for f in report.files] == ["goi.zip/ct.xlsx", "goi.zip/bom.csv",
                                              "goi.zip/win.csv"]
    # The CSV rows repeat the workbook's first hamlet: read correctly, hence duplicates.
    assert [(f.file, f.code, f.row) for f in report.findings] == [
        ("goi.zip/bom.csv", "ROW_DUPLICATE", 2), ("goi.zip/win.csv", "ROW_DUPLICATE", 2)]
    assert report.files[1].results[0].cell == cell
    assert report.files[2].results[0].cell == cell
    assert report.files[2].results[0].row.text("commune") == commune.name
