"""Rules as offices meet them (issue 13): the registration year, duplicates across sheets,
several files of several units in one `intake check`, phone numbers as Excel keeps them."""

from __future__ import annotations

import json

import pytest
from openpyxl import Workbook

from intake.cli import main
from intake.sheets.checks import phone_ok
from intake.sheets.report import check_files

from . import office


def _one_sheet(header, rows, title="DS") -> bytes:
    book = Workbook()
    sheet = book.active
    sheet.title = title
    sheet.append(header)
    for row in rows:
        sheet.append(row)
    return office.save(book)


HEADER = ["Xã", "Tên Chi đoàn", "Số ĐV", "Tên Chi bộ", "Tình trạng Chi bộ", "Cấp đăng ký"]


def _registering_cell(reference):
    for commune in reference.communes["CT"]:
        for cell in commune.cells:
            if cell.registered_year == 2021:
                return commune, cell
    raise AssertionError("no registering cell in the sample")


@pytest.mark.parametrize("status,ok", [
    ("Đăng ký năm 2021", True), ("Đăng ký TSVMTD", True), ("ĐK 2021", True),
    ("Đăng ký năm 2022", False), ("Đăng ký 2020", False), ("đăng ký TSVMTD năm 2019", False),
])
def test_registering_must_name_the_campaign_year(settings, reference, status, ok):
    commune, cell = _registering_cell(reference)
    data = _one_sheet(HEADER, [[commune.name, "CĐ", 20, cell.name, status, "Cấp huyện"]])
    report = check_files([("y.xlsx", data)], reference, settings, reference.units["CT"],
                         coverage=False)
    found = [(f.code, f.row, f.column) for f in report.findings]
    assert found == ([] if ok else [("ROW_STATUS_INVALID", 2, "E")])
    if not ok:
        assert "năm 2021" in report.findings[0].message


def test_a_year_in_the_registering_column_is_checked_too(settings, reference):
    commune, cell = _registering_cell(reference)
    header = ["Xã", "Tên Chi đoàn", "Số ĐV", "Tên Chi bộ", "Năm được công nhận TSVMTD",
              "Đăng ký TSVMTD", "Cấp đăng ký"]
    rows = [[commune.name, "CĐ", 20, cell.name, None, year, "Huyện"] for year in (2021, 2022)]
    report = check_files([("y.xlsx", _one_sheet(header, rows[1:]))], reference, settings,
                         reference.units["CT"], coverage=False)
    assert [(f.code, f.row, f.column) for f in report.findings] == [
        ("ROW_STATUS_INVALID", 2, "F")]
    report = check_files([("y.xlsx", _one_sheet(header, rows[:1]))], reference, settings,
                         reference.units["CT"], coverage=False)
    assert report.findings == []


def test_duplicate_across_sheets_names_the_other_sheet(settings, reference):
    items = office.registrations(settings, reference)
    data, where = office.sheet_per_level(items)
    import io

    from openpyxl import load_workbook

    book = load_workbook(io.BytesIO(data))
    first = next(i for i, item in enumerate(items) if item.level == "provincial")
    sheet, row = where[first]
    copied = [c.value for c in book[sheet][row]]
    book["Cấp huyện"].append(copied)
    report = check_files([("2cap.xlsx", office.save(book))], reference, settings,
                         reference.units["CT"], coverage=False)
    [dup] = report.findings
    assert (dup.code, dup.sheet) == ("ROW_DUPLICATE", "Cấp huyện")
    assert f"dòng {row} của trang tính “Cấp tỉnh”" in dup.message


def test_check_of_several_units_files_resolves_each_unit(capsys, tmp_path, settings, reference):
    from intake.samples import eligible_rows, form

    paths = []
    for code in ("CT", "BT", "MCB"):
        unit = reference.units[code]
        path = tmp_path / f"{code}.xlsx"
        path.write_bytes(form(settings, reference, unit, eligible_rows(settings, reference, unit)))
        paths.append(str(path))
    config = tmp_path / "intake.toml"
    config.write_text(f'[paths]\nreference_dir = "{office.REFERENCE}"\n', encoding="utf-8")
    code = main(["--config", str(config), "check", *paths, "--format", "json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0, out
    assert [f["findings"] for f in out["files"]] == [[], [], []]
    code = main(["--config", str(config), "check", *paths])
    text = capsys.readouterr().out
    assert code == 0 and "Huyện đoàn Ba Tri" in text and "Huyện đoàn Châu Thành" in text


@pytest.mark.parametrize("text,ok", [
    ("912345678", True), ("0912345678", True), ("+84 912 345 678", True),
    ("84912345678", True), ("(+84) 912.345.678", True), ("0275 3822 123", True),
    ("2753822123", True), ("0912 345 678 / 0987 654 321", True), ("ĐT: 0912345678", True),
    ("12345", False), ("0912 345 67", False), ("612345678", False), ("không có", False),
])
def test_phone_numbers_as_offices_keep_them(text, ok):
    assert phone_ok(text) is ok


def test_phone_stored_as_a_number_is_not_warned_about(settings, reference):
    items = office.registrations(settings, reference)
    data, _where = office.sections(items, phone=912345678)
    report = check_files([("p.xlsx", data)], reference, settings, reference.units["CT"])
    assert report.findings == []
    data, _where = office.sections(items, phone="+84 912 345 678")
    assert check_files([("p.xlsx", data)], reference, settings,
                       reference.units["CT"]).findings == []
