"""A file full of mistakes (issue 13): a 3,600-row list sent in the wrong layout must give
a short, readable summary for the reply, and a marked-up file that marks every wrong cell."""

from __future__ import annotations

import io

from openpyxl import load_workbook

from intake.findings import condense, row_ranges
from intake.sheets.annotate import annotate
from intake.sheets.report import check_files

from . import office

HEADER = ["STT", "Xã, phường, thị trấn", "Tên Chi đoàn", "Số lượng đoàn viên", "Tên Chi bộ",
          "Tình trạng Chi bộ", "Cấp đăng ký"]


def wrong_layout(items: list[office.Registration], rows: int) -> bytes:
    """The data pasted one column to the right of the header, as happens when a unit's
    own sheet has an extra first column: every row is wrong in four or five cells."""
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.title = "DS"
    sheet.append(HEADER)
    for number in range(rows):
        item = items[number % len(items)]
        sheet.append([None, number + 1, item.commune, item.branch, item.members,
                      item.party_cell, item.status, item.level_text])
    return office.save(book)


def test_row_ranges():
    assert row_ranges([9, 10, 11, 15]) == "9–11, 15"
    assert row_ranges(list(range(9, 3609))) == "9–3.608"
    assert row_ranges(list(range(2, 40, 2))) == "2–38, 19 dòng"


def test_wrong_layout_reply_is_short_and_the_marked_file_marks_every_cell(settings,
                                                                          reference):
    items = office.registrations(settings, reference)
    data = wrong_layout(items, 3_600)
    report = check_files([("sai_mau.xlsx", data)], reference, settings, reference.units["CT"])
    findings = report.findings
    assert len(report.results) == 3_600 and len(findings) > 7_000

    lines, left_out = condense(findings, limit=50)
    assert len(lines) <= 50
    assert sum(line.count for line in lines) + left_out == len(findings)
    body = "\n".join(line.text for line in lines)
    assert len(body.encode()) < 20_000  # far under the 1 MB of SPEC §6, and readable
    assert any(line.text.startswith("Cột D, dòng 2–3.601: Số lượng đoàn viên không hợp lệ")
               for line in lines), body
    assert max(len(line.text) for line in lines) < 600

    marked = load_workbook(io.BytesIO(annotate(report.files[0], report.coverage)))
    wrong = {(f.row, f.column) for f in findings if f.row and f.column}
    sheet = marked["DS"]
    red = {(cell.row, cell.column_letter) for row in sheet.iter_rows() for cell in row
           if cell.comment is not None and cell.fill.fgColor.rgb.endswith("FF9999")}
    assert red == wrong


def test_the_reply_to_a_file_full_of_mistakes_is_short_and_marks_every_cell(tmp_path,
                                                                             reference):
    """SPEC §6: at most max_findings_in_reply lines, a mistake down a column is one line,
    the reply (with the marked-up file) stays under 1 MB."""
    from datetime import datetime

    from intake.config import TZ
    from intake.samples import unit_mail

    from .conftest import file_offline, make_settings

    settings = make_settings(tmp_path, rules={"require_sender_auth": False})
    items = office.registrations(settings, reference)
    unit = reference.units["CT"]
    message = unit_mail(unit.emails[0], "ban@example.org", "DS", attachments=[
        ("sai_mau.xlsx", wrong_layout(items, 3_600))])
    file_offline(settings, [(message, datetime(2021, 2, 10, 9, 0, tzinfo=TZ))])
    from intake.store import open_store

    with open_store(settings.paths.data_dir) as store:
        [raw] = [r["raw"] for r in store.query("SELECT raw FROM outbox")]
    assert len(raw) < 1_000_000
    from email import message_from_bytes, policy

    reply = message_from_bytes(raw, policy=policy.default)
    text = reply.get_body(("plain",)).get_content()
    lines = [line for line in text.splitlines() if line.startswith("- ")]
    assert len(lines) <= settings.limits.max_findings_in_reply + 1
    assert any(line.startswith("- Cột D, dòng 2–3.601:") for line in lines), text[:3000]
    assert "lỗi khác: xem các ô tô đỏ" in text or len(lines) < 50
    [marked] = [p for p in reply.iter_attachments()]
    assert marked.get_filename().endswith("_can-sua.xlsx")
