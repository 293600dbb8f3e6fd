"""The consolidated workbook: contract sheets and headers, formula safety, rebuild from store."""

from __future__ import annotations

import zipfile
from datetime import datetime
from pathlib import Path

from openpyxl import load_workbook

from intake.mail.imap import Fetched
from intake.pipeline import Pipeline, rebuild
from intake.samples import eligible_rows, form, unit_mail
from intake.store import SCHEMA_VERSION, open_store
from intake.workbook import COVERAGE, FINDINGS, LOG, ROWS, SHEETS, SUMMARY

from .conftest import make_settings


def file_offline(settings, messages: list) -> Pipeline:
    """Run the pipeline's record and file steps on messages, without a mailbox."""
    pipeline = Pipeline(settings)
    for uid, (message, when) in enumerate(messages, start=1):
        raw = message.as_bytes()
        pipeline._record("INBOX", 1, Fetched(uid, when, len(raw), raw))
    pipeline._process_pending("INBOX", 1, type("R", (), {"statuses": {}, "errors": []})())
    return pipeline


def test_sheets_headers_and_formula_safety(tmp_path: Path, reference):
    settings = make_settings(tmp_path, rules={"require_sender_auth": False})
    unit = reference.units["CL"]
    rows = eligible_rows(settings, reference, unit)
    rows[0][2] = "=cmd|' /C calc'!A0"
    rows[1][12] = "+HYPERLINK(\"http://x\")"
    message = unit_mail(unit.emails[0], "board@example.org", "@SUM(1)",
                        attachments=[("ds.xlsx", form(settings, reference, unit, rows))])
    pipeline = file_offline(settings, [(message, datetime(2021, 2, 1, 8, 0).astimezone())])
    from intake.workbook import write

    path = write(pipeline.store, reference, settings)
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
    assert cho_lach[1] == "Đã tiếp nhận (accepted)"
    assert cho_lach[9] == 1  # every hamlet of its NTM communes registered
    assert isinstance(cho_lach[3], datetime)


def test_coverage_sheet_counts_a_partial_submission(tmp_path: Path, reference):
    settings = make_settings(tmp_path, rules={"require_sender_auth": False})
    unit = reference.units["CL"]
    titled = reference.titled_communes("CL")[0]
    rows = [r for r in eligible_rows(settings, reference, unit) if r[1] == titled.name]
    kept = rows[:-1]
    missing_hamlet = rows[-1][2].removeprefix("Chi đoàn ")
    message = unit_mail(unit.emails[0], "board@example.org", "DS",
                        attachments=[("ds.xlsx", form(settings, reference, unit, kept))])
    pipeline = file_offline(settings, [(message, datetime(2021, 2, 1, 8, 0).astimezone())])
    path = rebuild(settings)
    del pipeline
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
