"""Files written the way district offices write them (SPEC §3), in every format they save.

Each layout is made with openpyxl, then saved as .xls and .ods by LibreOffice (as an
office that opens the form and saves it in another format does), and each reading must
give every registration with its level and no finding at all; some files have errors
planted at known cells, which must be found there and nowhere else.
"""

from __future__ import annotations

import pytest
from openpyxl import load_workbook

from intake.sheets.report import check_files

from . import office

pytestmark = pytest.mark.libreoffice

LAYOUTS = {
    "merged_down": office.merged_down,
    "sections": office.sections,
    "sheet_per_level": office.sheet_per_level,
    "legacy_fonts": office.legacy_fonts,
}


@pytest.fixture(scope="module")
def files(tmp_path_factory, reference) -> dict[tuple[str, str], bytes]:
    """(layout, format) -> bytes: each layout as openpyxl wrote it and as LibreOffice
    saved it in .xls and .ods (two LibreOffice runs for all of them)."""
    from .conftest import make_settings

    folder = tmp_path_factory.mktemp("office")
    items = office.registrations(make_settings(folder), reference)
    sources = []
    out: dict[tuple[str, str], bytes] = {}
    for name, build in LAYOUTS.items():
        data, _where = build(items)
        path = folder / f"{name}.xlsx"
        path.write_bytes(data)
        sources.append(path)
        out[(name, "xlsx")] = data
    for target in ("xls", "ods"):
        for path in office.convert(sources, target, folder / target):
            out[(path.stem, target)] = path.read_bytes()
    return out


@pytest.fixture(scope="module")
def items(tmp_path_factory, reference) -> list[office.Registration]:
    from .conftest import make_settings

    return office.registrations(make_settings(tmp_path_factory.mktemp("s")), reference)


@pytest.mark.parametrize("kind", ["xlsx", "xls", "ods"])
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_office_layout_reads_every_row_with_its_level(files, items, settings, reference,
                                                      layout, kind):
    data = files[(layout, kind)]
    report = check_files([(f"{layout}.{kind}", data)], reference, settings,
                         reference.units["CT"])
    assert [(f.code, f.sheet, f.cell, f.message) for f in report.findings] == []
    read = sorted((r.row.text("commune"), r.cell.name, r.row.level) for r in report.results)
    assert read == sorted((i.commune, i.party_cell, i.level) for i in items)
    assert len(report.results) == len(items)


def test_merged_commune_applies_to_each_row_and_planted_errors_are_found_there(
        items, settings, reference, tmp_path):
    """A wrong commune merged over its hamlets is wrong on each of their rows; a bad
    member count and an unknown party cell are found at their own cells only."""
    changed = [office.Registration(**vars(i)) for i in items]
    first = changed[0].commune
    run = [n for n, i in enumerate(changed) if i.commune == first]
    for n in run:
        changed[n].commune = "Xã Không Có"
    changed[20].members = "mười"  # type: ignore[assignment]
    changed[30].party_cell = "Chi bộ ấp Không Tên"
    data, where = office.merged_down(changed)
    source = tmp_path / "planted.xlsx"
    source.write_bytes(data)
    [xls] = office.convert([source], "xls", tmp_path / "out")
    for name, payload in (("planted.xlsx", data), ("planted.xls", xls.read_bytes())):
        report = check_files([(name, payload)], reference, settings, reference.units["CT"],
                             coverage=False)
        found = sorted((f.code, f.row, f.column) for f in report.findings)
        assert found == sorted(
            [("ROW_COMMUNE_UNKNOWN", where[n], "B") for n in run]
            + [("ROW_MEMBERS_INVALID", where[20], "D"),
               ("ROW_PARTY_CELL_UNKNOWN", where[30], "E")]), name


def test_sections_with_planted_errors(items, settings, reference):
    changed = [office.Registration(**vars(i)) for i in items]
    changed[3].recognised = 2010  # not recognised since 2018 by this file's word
    changed[5].party_cell = changed[4].party_cell  # the same hamlet twice
    data, where = office.sections(changed, phone="0912 345 67")
    report = check_files([("s.xlsx", data)], reference, settings, reference.units["CT"],
                         coverage=False)
    errors = sorted((f.code, f.row, f.column) for f in report.findings if f.is_error)
    assert ("ROW_PARTY_CELL_NOT_ELIGIBLE", where[3], "F") in errors
    assert ("ROW_DUPLICATE", where[5], "E") in errors
    assert {code for code, _r, _c in errors} <= {"ROW_PARTY_CELL_NOT_ELIGIBLE",
                                                 "ROW_DUPLICATE", "ROW_BRANCH_MISMATCH"}
    warnings = {f.code for f in report.findings if not f.is_error}
    assert warnings <= {"ROW_PHONE_INVALID", "ROW_BRANCH_MISMATCH"}
    assert len([f for f in report.findings if f.code == "ROW_PHONE_INVALID"]) == len(items)


def test_annotated_merged_file_marks_the_first_cell_of_a_merge(items, settings, reference):
    """Findings on cells a merge covers are shown on the merge's own (first) cell, once."""
    from intake.sheets.annotate import annotate

    changed = [office.Registration(**vars(i)) for i in items]
    first = changed[0].commune
    run = [n for n, i in enumerate(changed) if i.commune == first]
    for n in run:
        changed[n].commune = "Xã Không Có"
    data, where = office.merged_down(changed)
    report = check_files([("m.xlsx", data)], reference, settings, reference.units["CT"],
                         coverage=False)
    import io

    book = load_workbook(io.BytesIO(annotate(report.files[0])))
    sheet = book["Danh sách"]
    origin = sheet[f"B{where[run[0]]}"]
    assert origin.comment is not None and origin.fill.fgColor.rgb.endswith("FF9999")
    assert origin.comment.text.count("không thuộc Huyện đoàn") == 1  # said once for the merge
    assert "ROW_" not in origin.comment.text  # Vietnamese only where people read
    assert f"Dòng {where[run[0]]}–{where[run[-1]]}: " in origin.comment.text
