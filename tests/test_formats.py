"""Which files are lists: one table (intake/formats.py) for the mail side and the reader."""

from __future__ import annotations

from intake.formats import (
    FORMATS,
    XLSX_TYPE,
    format_of,
    is_accepted,
    may_hold_list,
    suffix_for_type,
)


def test_suffixes_are_read_whatever_their_case():
    assert is_accepted("DS.XLSX") and is_accepted("goi.Zip") and is_accepted("ds.csv")
    assert not is_accepted("ds.pdf") and not is_accepted("xlsx") and not is_accepted("")
    readers = {name: (f.reader, f.editable) for name in ("Ds.Xlsm", "ds.ods", "ds.xls", "g.zip")
               if (f := format_of(name))}
    assert readers == {"Ds.Xlsm": ("workbook", True), "ds.ods": ("workbook", False),
                       "ds.xls": ("workbook", False), "g.zip": ("zip", False)}


def test_mime_types_name_a_part_without_a_file_name():
    assert suffix_for_type(XLSX_TYPE) == ".xlsx"
    assert suffix_for_type("application/vnd.ms-excel.sheet.macroEnabled.12") == ".xlsm"
    assert suffix_for_type("application/x-zip-compressed") == ".zip"
    assert suffix_for_type("text/plain") == "" and suffix_for_type("application/pdf") == ""


def test_every_format_is_named_once():
    suffixes = [f.suffix for f in FORMATS]
    types = [t for f in FORMATS for t in f.mime_types]
    assert len(set(suffixes)) == len(suffixes) and len(set(types)) == len(types)
    assert all(s.startswith(".") and s == s.lower() for s in suffixes)
    assert all(t == t.lower() for t in types)  # email.message lower-cases content types


def test_files_that_may_hold_the_list_are_not_accepted():
    assert may_hold_list("DS.PDF") and may_hold_list("ds.rar")
    assert not may_hold_list("ds.xlsx") and not may_hold_list("anh.jpg")
    assert not any(may_hold_list("x" + f.suffix) for f in FORMATS)
