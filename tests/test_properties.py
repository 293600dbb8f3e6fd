"""Property tests: whatever cells, layouts or bytes arrive, reading and checking never raise."""

from __future__ import annotations

import io
from datetime import date

from hypothesis import HealthCheck, example, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

from intake.config import Limits, settings_for
from intake.findings import CODES
from intake.reference import load_reference
from intake.sheets.read import read_file
from intake.sheets.report import check_files

from .conftest import REFERENCE

SETTINGS = settings_for(REFERENCE.parent, paths={"reference_dir": str(REFERENCE)})
REF = load_reference(REFERENCE)
HEADERS = ["STT", "Xã, phường, thị trấn", "Tên Chi đoàn", "Số lượng đoàn viên", "Tên Chi bộ",
           "Năm được công nhận TSVMTD", "Đăng ký TSVMTD năm 2021", "Cấp tỉnh", "Cấp huyện",
           "Tổng cộng", "x", "Ghi chú"]
VALUES = st.one_of(
    st.none(), st.integers(-10**12, 10**12), st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40), st.sampled_from([*HEADERS, "Xã An Thạnh", "Chi bộ ấp 1", "✓", "15 ĐV"]),
    st.dates(min_value=date(1900, 3, 1), max_value=date(2100, 1, 1)), st.booleans())


def xlsx(grid: list[list[object]]) -> bytes:
    book = Workbook()
    sheet = book.active
    for r, row in enumerate(grid, start=1):
        for c, value in enumerate(row, start=1):
            if isinstance(value, str):
                value = ILLEGAL_CHARACTERS_RE.sub("", value)
            cell = sheet.cell(r, c, value)
            if isinstance(value, str):
                cell.data_type = "s"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(VALUES, max_size=14), max_size=25))
def test_any_grid_checks_without_raising(grid):
    report = check_files([("x.xlsx", xlsx(grid))], REF, SETTINGS)
    assert all(f.code in CODES for f in report.findings)
    assert all(f.message for f in report.findings)


@hsettings(max_examples=40, deadline=None)
@example(order=HEADERS[:9], rows=[[None] * 7 + ["TT", "TT"]], offset=0)  # found by hypothesis
@given(st.permutations(HEADERS[:9]), st.lists(st.lists(VALUES, min_size=9, max_size=9),
                                               max_size=8), st.integers(0, 6))
def test_header_in_any_order_and_position_is_found(order, rows, offset):
    grid = [[None]] * offset + [list(order)] + rows
    report = check_files([("x.xlsx", xlsx(grid))], REF, SETTINGS, REF.units["CT"])
    codes = {f.code for f in report.findings}
    assert "SHEET_NO_HEADER" not in codes and "SHEET_MISSING_COLUMN" not in codes


@hsettings(max_examples=80, deadline=None)
@given(st.binary(max_size=3000), st.sampled_from(["a.xlsx", "a.xls", "a.ods", "a.csv",
                                                  "a.zip", "a.xlsm", "a.pdf"]))
def test_any_bytes_under_any_name_never_raise(data, name):
    for result in read_file(name, data, Limits()):
        assert all(f.code in CODES for f in result.findings)
