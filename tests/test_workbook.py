"""The consolidated workbook: contract sheets and headers, formula safety, rebuild from store."""

from __future__ import annotations

import io
import re
import zipfile
from datetime import datetime
from pathlib import Path

import pytest
from openpyxl import load_workbook

from intake.samples import eligible_rows, form, unit_mail
from intake.store import SCHEMA_VERSION, open_store
from intake.workbook import COVERAGE, FINDINGS, LOG, ROWS, SHEETS, SUMMARY, rebuild

from .conftest import file_offline, make_settings


def test_sheets_headers_and_formula_safety(tmp_path: Path, reference):
    settings = make_settings(tmp_path, rules={"require_sender_auth": False})
    unit = reference.units["CL"]
    rows = eligible_rows(settings, reference, unit)
    rows[0][2] = "=cmd|' /C calc'!A0"
    rows[1][12] = "+HYPERLINK(\"http://x\")"
    message = unit_mail(unit.emails[0], "board@example.org", "@SUM(1)",
                        attachments=[("ds.xlsx", form(settings, reference, unit, rows))])
    file_offline(settings, [(message, datetime(2021, 2, 1, 8, 0).astimezone())])
    path = rebuild(settings)
    book = load_workbook(path)
    assert book.sheetnames == SHEETS
    for name, headers in zip(SHEETS, [SUMMARY, ROWS, FINDINGS, COVERAGE, LOG], strict=True):
        assert [c.value for c in book[name][1]] == headers, name
        assert book[name].freeze_panes == "A2"
    listing = book["Danh sách"]
    values = [c for row in listing.iter_rows(min_row=2) for c in row]
    dangerous = [c for c in values if isinstance(c.value, str) and c.value[:1] in "=+@"]
    assert {c.value for c in dangerous} >= {"=cmd|' /C calc'!A0", '+HYPERLINK("http://x")'}
    assert all(c.data_type == "s" for c in dangerous)
    assert book["Nhật ký"]["C2"].value == "@SUM(1)"
    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            if name.startswith("xl/worksheets/sheet"):
                assert b"<f>" not in archive.read(name), name
    # Summary: every unit, then a totals row that adds them up.
    summary = list(book["Tổng hợp"].iter_rows(min_row=2, values_only=True))
    assert len(summary) == len(reference.units) + 1
    assert summary[-1][0] == "Tổng cộng"
    assert summary[-1][5] == sum(r[5] for r in summary[:-1]) == len(rows)
    [cho_lach] = [r for r in summary if r[0] == unit.name]
    assert cho_lach[1] == "Đã tiếp nhận"
    assert cho_lach[9] == 1  # every hamlet of its NTM communes registered
    assert isinstance(cho_lach[3], datetime)


def test_formats_print_setup_and_chart_survive_the_streaming_writer(tmp_path: Path):
    """What the workbook looks like, read back: the fills, formats, fonts, sizes, print
    setup and chart that the writer has to give each sheet by hand."""
    from intake.demo import sample_mail
    from intake.workbook import LAYOUTS

    settings = make_settings(tmp_path)
    file_offline(settings, sample_mail(settings))  # corrections, late, additions…
    book = load_workbook(rebuild(settings))
    error, late = "FFE0E0", "FFF2CC"  # RGB (the alpha byte differs from writer to writer)

    def fill(cell) -> str | None:
        return cell.fill.fgColor.rgb[-6:] if cell.fill.fill_type == "solid" else None

    for sheet in book.worksheets:
        layout = LAYOUTS[sheet.title]
        widths = {c: d.width for d in sheet.column_dimensions.values()  # ranges (G:H)
                  for c in range(d.min, d.max + 1)}
        assert [widths[c] for c in range(1, len(layout.widths) + 1)] == list(layout.widths)
        assert sheet.auto_filter.ref.startswith("A1:") and sheet.print_title_rows == "$1:$1"
        assert (sheet.page_setup.orientation, sheet.page_setup.paperSize) == ("landscape", 9)
        assert sheet.print_options.horizontalCentered
        assert (sheet.oddHeader.left.font, sheet.oddHeader.left.size) == ("Times New Roman", 9)
        assert sheet.oddHeader.center.text.startswith("&B")
        assert sheet.oddFooter.right.text == "Trang &P/&N"
        assert {c.font.name for row in sheet.iter_rows(max_row=5) for c in row if c.value
                is not None} == {"Times New Roman"}, sheet.title
        assert sheet.row_dimensions[1].height > 15  # the header row, sized to its text
    listing = book["Danh sách"]
    assert (listing.print_title_cols, [b.id for b in listing.col_breaks.brk]) == ("$A:$C", [10])
    assert (listing.page_setup.scale, listing.page_setup.pageOrder) == (85, "overThenDown")
    assert book["Tổng hợp"].sheet_properties.pageSetUpPr.fitToPage
    rows = list(listing.iter_rows(min_row=2))
    wrong = [r for r in rows if r[11].value == "Lỗi"]
    right = [r for r in rows if r[11].value == "Hợp lệ"]
    assert wrong and right
    assert {(fill(r[11]), fill(r[12])) for r in wrong} == {(error, error)}
    assert {fill(r[11]) for r in right} == {None}
    assert all(isinstance(r[15].value, datetime) and r[15].number_format == "dd/mm/yyyy hh:mm"
               for r in rows)
    assert {(r[0].alignment.vertical, r[0].alignment.wrap_text) for r in rows} == {("top", True)}
    assert book["Lỗi"]["F2"].font.sz == 9 and book["Lỗi"]["H2"].font.sz == 11  # codes smaller
    summary = list(book["Tổng hợp"].iter_rows(min_row=2))
    assert {r[9].number_format for r in summary[:-1]} == {"0%"}
    assert any(r[4].value == "Trễ hạn" and fill(r[4]) == late for r in summary)
    assert all(fill(r[8]) == error for r in summary[:-1] if r[8].value)
    assert all(c.font.b for c in summary[-1])  # the totals row, every cell
    [chart] = book["Tổng hợp"]._charts
    assert (chart.type, chart.grouping, len(chart.series)) == ("col", "stacked", 2)
    assert any(fill(r[0]) == late for r in book["Nhật ký"].iter_rows(min_row=2))


def test_coverage_sheet_counts_a_partial_submission(tmp_path: Path, reference):
    settings = make_settings(tmp_path, rules={"require_sender_auth": False})
    unit = reference.units["CL"]
    titled = reference.titled_communes("CL")[0]
    rows = [r for r in eligible_rows(settings, reference, unit) if r[1] == titled.name]
    kept = rows[:-1]
    missing_hamlet = rows[-1][2].removeprefix("Chi đoàn ")
    message = unit_mail(unit.emails[0], "board@example.org", "DS",
                        attachments=[("ds.xlsx", form(settings, reference, unit, kept))])
    file_offline(settings, [(message, datetime(2021, 2, 1, 8, 0).astimezone())])
    path = rebuild(settings)
    cover = [r for r in load_workbook(path)["Độ phủ NTM-ĐTVM"].iter_rows(min_row=2,
                                                                         values_only=True)
             if r[1] == titled.name]
    assert cover == [(unit.name, titled.name, titled.title, len(titled.cells), len(kept),
                      missing_hamlet)]


def test_rebuild_reproduces_the_same_content(tmp_path: Path, reference):
    settings = make_settings(tmp_path, rules={"require_sender_auth": False})
    unit = reference.units["TPBT"]
    message = unit_mail(unit.emails[0], "board@example.org", "DS", attachments=[
        ("ds.xlsx", form(settings, reference, unit, eligible_rows(settings, reference, unit)))])
    file_offline(settings, [(message, datetime(2021, 2, 1, 8, 0).astimezone())])

    def content(path: Path) -> list:
        book = load_workbook(path)
        return [list(book[name].iter_rows(values_only=True)) for name in book.sheetnames]

    first = content(rebuild(settings))
    second = content(rebuild(settings))
    assert first == second
    assert len(first[1]) > 1


def test_store_schema_version_and_reopen(tmp_path: Path):
    store = open_store(tmp_path)
    assert store.version == SCHEMA_VERSION
    assert store.one("PRAGMA journal_mode")[0] == "wal"
    store.close()
    again = open_store(tmp_path)
    assert again.version == SCHEMA_VERSION
    again.close()


def test_addition_resubmission_and_silent_units(tmp_path: Path, reference):
    settings = make_settings(tmp_path, rules={"require_sender_auth": False})
    unit = reference.units["TP"]
    rows = eligible_rows(settings, reference, unit)
    half = len(rows) // 2
    changed = list(rows[0])
    changed[3] = 99  # the addition repeats the first hamlet with a new member count
    first = unit_mail(unit.emails[0], "ban@example.org", "Danh sách",
                      attachments=[("dot1.xlsx", form(settings, reference, unit, rows[:half]))])
    addition = unit_mail(unit.emails[0], "ban@example.org", "BỔ SUNG danh sách", attachments=[
        ("dot2.xlsx", form(settings, reference, unit, [changed, *rows[half:]]))])
    file_offline(settings, [(first, datetime(2021, 2, 1, 8, 0).astimezone()),
                            (addition, datetime(2021, 2, 2, 8, 0).astimezone())])
    store = open_store(settings.paths.data_dir)
    statuses = [r["status"] for r in store.query("SELECT status FROM submissions ORDER BY id")]
    store.close()
    assert statuses == ["needs-correction", "accepted"]  # coverage complete only after
    path = rebuild(settings)
    book = load_workbook(path)
    listing = [r for r in book["Danh sách"].iter_rows(min_row=2, values_only=True)
               if r[0] == unit.name]
    assert len(listing) == len(rows)
    [first_hamlet] = [r for r in listing if (r[1], r[3]) == (rows[0][1], rows[0][4])]
    assert first_hamlet[5] == 99 and first_hamlet[13] == "dot2.xlsx"
    summary = {r[0]: r for r in book["Tổng hợp"].iter_rows(min_row=2, values_only=True)}
    assert summary[unit.name][1:3] == ("Đã tiếp nhận", 2)
    assert summary["Huyện đoàn Ba Tri"][1:3] == ("Chưa gửi", 0)
    assert summary["Huyện đoàn Ba Tri"][5] == 0
    assert not [r for r in book["Lỗi"].iter_rows(min_row=2, values_only=True)
                if r[0] == unit.name]  # the coverage error of the first list is gone

    # A full resend replaces everything the unit had.
    again = unit_mail(unit.emails[0], "ban@example.org", "Danh sách (gửi lại)",
                      attachments=[("dot3.xlsx", form(settings, reference, unit, rows[:2]))])
    file_offline(settings, [(again, datetime(2021, 2, 3, 8, 0).astimezone())], first_uid=3)
    listing = [r for r in load_workbook(rebuild(settings))["Danh sách"].iter_rows(
        min_row=2, values_only=True) if r[0] == unit.name]
    assert {r[13] for r in listing} == {"dot3.xlsx"} and len(listing) == 2


def _cell(value):
    """A cell as both readers give it: a whole float is an int, an empty cell None."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None if value == "" else value


def test_libreoffice_reads_the_workbook_back_with_the_same_values(tmp_path: Path, reference):
    """LibreOffice opens the workbook and saves it as .ods: every sheet, every value comes
    back the same, text that looks like a formula stays text, and the summary's chart is
    still a bar chart of the units' provincial and district counts."""
    from python_calamine import CalamineWorkbook

    from .office import convert

    settings = make_settings(tmp_path, rules={"require_sender_auth": False})
    sent = {}
    for uid, code in enumerate(("CT", "CL"), start=1):
        unit = reference.units[code]
        rows = eligible_rows(settings, reference, unit)
        if code == "CT":
            rows[0][12] = "=1+1"  # Ghi chú
        sent[unit.name] = len(rows)
        message = unit_mail(unit.emails[0], "ban@example.org", "@SUM(1)" if code == "CL" else "DS",
                            attachments=[("ds.xlsx", form(settings, reference, unit, rows))])
        file_offline(settings, [(message, datetime(2021, 2, 1, 8, 0).astimezone())],
                     first_uid=uid)
    path = rebuild(settings)
    [ods] = convert([path], "ods", tmp_path / "lo")

    book = load_workbook(path)
    back = CalamineWorkbook.from_path(str(ods))
    assert back.sheet_names == SHEETS
    for name in SHEETS:
        written = [[_cell(v) for v in row] for row in book[name].iter_rows(values_only=True)]
        read = [[_cell(v) for v in row] for row in back.get_sheet_by_name(name).to_python()]
        assert read == written, name
    summary = back.get_sheet_by_name("Tổng hợp").to_python()
    valid = {row[0]: _cell(row[5]) for row in summary[1:]}
    assert len(valid) == 10 and valid["Huyện đoàn Châu Thành"] == sent["Huyện đoàn Châu Thành"]
    assert valid["Huyện đoàn Chợ Lách"] == sent["Huyện đoàn Chợ Lách"] > 0
    assert valid["Tổng cộng"] == sum(sent.values()) == sum(
        v for unit, v in valid.items() if unit != "Tổng cộng")
    notes = [row[10] for row in back.get_sheet_by_name("Danh sách").to_python()]
    assert "=1+1" in notes and 2 not in notes and 2.0 not in notes
    assert "@SUM(1)" in [row[2] for row in back.get_sheet_by_name("Nhật ký").to_python()]
    with zipfile.ZipFile(ods) as archive:
        chart = archive.read("Object 1/content.xml").decode()
    assert 'chart:class="chart:bar"' in chart
    assert "Số Chi đoàn đăng ký hợp lệ theo đơn vị" in chart
    series = sorted(re.findall(r'chart:values-cell-range-address="([^"]+)"', chart))
    assert series == [f"&apos;Tổng hợp&apos;.{col}2:&apos;Tổng hợp&apos;.{col}10"
                      for col in "GH"]  # the nine units, not the totals row


def test_two_units_registering_the_same_hamlet(tmp_path: Path, reference):
    """Where the reference gives one commune to two units (a boundary change), the second
    unit to register a hamlet gets ROW_CONFLICT naming the first."""
    import csv
    import shutil

    from .conftest import REFERENCE

    folder = tmp_path / "reference"
    shutil.copytree(REFERENCE, folder)
    shared = next(c for c in reference.communes["CT"] if not c.title and any(
        (p.recognised_year or 0) >= 2018 for p in c.cells))
    with (folder / "communes.csv").open("a", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerow(["CL", shared.code, shared.name, ""])
    with (folder / "party_cells.csv").open("a", encoding="utf-8", newline="") as handle:
        for cell in shared.cells:
            csv.writer(handle).writerow(["CL", shared.code, shared.name, cell.hamlet, cell.name,
                                         cell.recognised_year or "", cell.registered_year or ""])
    settings = make_settings(tmp_path, rules={"require_sender_auth": False},
                             paths={"reference_dir": str(folder)})
    cell = next(p for p in shared.cells if (p.recognised_year or 0) >= 2018)
    row = [1, shared.name, f"Chi đoàn {cell.hamlet}", 20, cell.name, cell.recognised_year, None,
           None, "x", None, "Trần Văn C", "0912345678", None]
    messages = []
    for uid, code in enumerate(("CT", "CL"), start=1):
        unit = reference.units[code]
        messages.append((unit_mail(unit.emails[0], "ban@example.org", "DS", attachments=[
            (f"{code}.xlsx", form(settings, reference, unit, [row]))]),
            datetime(2021, 2, uid, 8, 0).astimezone()))
    file_offline(settings, messages)
    book = load_workbook(rebuild(settings))
    conflicts = [r for r in book["Lỗi"].iter_rows(min_row=2, values_only=True)
                 if r[5] == "ROW_CONFLICT"]
    assert len(conflicts) == 1
    assert conflicts[0][0] == "Huyện đoàn Chợ Lách" and conflicts[0][3:5] == (8, "E")
    assert "Huyện đoàn Châu Thành" in conflicts[0][7]
    listing = {r[0]: r[11] for r in book["Danh sách"].iter_rows(min_row=2, values_only=True)}
    assert listing == {"Huyện đoàn Châu Thành": "Hợp lệ", "Huyện đoàn Chợ Lách": "Lỗi"}


def test_lists_people_read_are_in_vietnamese_order(tmp_path: Path, reference):
    """Issue 15: units, communes and hamlets in Vietnamese order (base letters, then tones)."""
    from intake.sheets.template import template_bytes
    from intake.text import vietnamese_sort_key

    settings = make_settings(tmp_path)
    book = load_workbook(rebuild(settings))
    units = [r[0] for r in book[SHEETS[0]].iter_rows(min_row=2, max_row=10, values_only=True)]
    assert len(units) == 9 and units == sorted(units, key=vietnamese_sort_key)
    assert units[0] == "Huyện đoàn Ba Tri" and units[-1] == "Thành đoàn Bến Tre"
    for unit in reference.units.values():
        communes = [r[1] for r in book[SHEETS[3]].iter_rows(min_row=2, values_only=True)
                    if r[0] == unit.name]
        assert communes == sorted(communes, key=vietnamese_sort_key)
    form_book = load_workbook(io.BytesIO(template_bytes(settings, reference,
                                                        reference.units["CT"])))
    names = [r[0] for r in form_book["DanhMuc"].iter_rows(values_only=True)]
    assert len(names) > 10 and names == sorted(names, key=vietnamese_sort_key)


def test_migration_statements_are_split_as_sqlite_reads_them():
    from intake.store import MIGRATIONS, statements

    script = ("CREATE TABLE t (a TEXT DEFAULT 'x;y');\n"
              "CREATE TRIGGER g AFTER INSERT ON t BEGIN\n  UPDATE t SET a='1;2';\nEND;\n")
    assert len(statements(script)) == 2
    assert all(statements(sql) for sql in MIGRATIONS.values())
    with pytest.raises(ValueError):
        statements("CREATE TABLE t (a")
