"""The whole intake against a real Dovecot and a real SMTP server (aiosmtpd)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from imap_tools import MailBoxUnencrypted
from openpyxl import load_workbook

from intake.errors import MailboxError
from intake.samples import eligible_rows, form, unit_mail
from intake.workbook import LOG, ROWS

from .conftest import mail_settings, poll

pytestmark = pytest.mark.dovecot


def _folder_count(dovecot, user: str, folder: str) -> int:
    with MailBoxUnencrypted("127.0.0.1", dovecot.plain_port).login(
            user, dovecot.password, initial_folder=folder) as box:
        return len(box.uids())


@pytest.mark.parametrize("security", ["none", "starttls", "ssl"])
def test_accepted_submission_is_filed_answered_and_moved(
        tmp_path: Path, dovecot, smtp_sink, reference, security):
    user = dovecot.add_user()
    settings = mail_settings(tmp_path, dovecot, user, smtp_sink.port, security)
    unit = reference.units["CT"]
    rows = eligible_rows(settings, reference, unit)
    original = unit_mail(unit.emails[0], user, "Danh sách Chi đoàn kiểu mẫu Châu Thành",
                         attachments=[("DS_ChauThanh.xlsx", form(settings, reference, unit, rows))])
    dovecot.deliver(user, original, when=datetime(2021, 2, 10, 9, 30).astimezone())

    result = poll(settings)

    assert result.fetched == 1
    assert result.statuses == {"accepted": 1}
    [reply] = smtp_sink.messages
    assert reply["X-Intake-Status"] == "accepted"
    assert reply["In-Reply-To"] == original["Message-ID"]
    assert original["Message-ID"] in reply["References"]
    assert reply["Auto-Submitted"] == "auto-replied"
    assert reply["To"] == unit.emails[0]
    assert reply["Subject"] == "Re: Danh sách Chi đoàn kiểu mẫu Châu Thành"
    book = load_workbook(settings.paths.workbook)
    listing = book["Danh sách"]
    assert [c.value for c in listing[1]] == ROWS
    filed = list(listing.iter_rows(min_row=2, values_only=True))
    assert len(filed) == len(rows)
    assert {r[3] for r in filed} == {r[4] for r in rows}  # every party cell landed
    assert all(r[11] == "Hợp lệ" for r in filed)
    assert [c.value for c in book["Nhật ký"][1]] == LOG
    assert _folder_count(dovecot, user, "INBOX") == 0
    assert _folder_count(dovecot, user, "Intake/Processed") == 1

    again = poll(settings)
    assert again.fetched == 0
    assert again.statuses == {}
    assert len(smtp_sink.messages) == 1
    assert len(list(load_workbook(settings.paths.workbook)["Danh sách"].iter_rows(min_row=2))) \
        == len(rows)


def test_empty_required_cell_gets_needs_correction_naming_row_and_column(
        tmp_path: Path, dovecot, smtp_sink, reference):
    user = dovecot.add_user()
    settings = mail_settings(tmp_path, dovecot, user, smtp_sink.port)
    unit = reference.units["CL"]
    rows = eligible_rows(settings, reference, unit)
    rows[2][3] = None  # "Số lượng đoàn viên" of the third data row: Excel row 10, column D
    message = unit_mail(unit.emails[0], user, "DS CĐKM Chợ Lách",
                        attachments=[("cholach.xlsx", form(settings, reference, unit, rows))])
    dovecot.deliver(user, message, when=datetime(2021, 2, 1, 8, 0).astimezone())

    result = poll(settings)

    assert result.statuses == {"needs-correction": 1}
    [reply] = smtp_sink.messages
    assert reply["X-Intake-Status"] == "needs-correction"
    text = reply.get_body(("plain",)).get_content()
    assert "Dòng 10" in text and "ô D10" in text
    assert "Số lượng đoàn viên" in text
    [attachment] = list(reply.iter_attachments())
    assert attachment.get_filename() == "cholach_can-sua.xlsx"
    errors = load_workbook(settings.paths.workbook)["Lỗi"]
    found = [r for r in errors.iter_rows(min_row=2, values_only=True) if r[5] == "ROW_REQUIRED"]
    assert [(r[3], r[4]) for r in found] == [(10, "D")]


def test_second_message_replaces_and_late_mail_is_flagged(
        tmp_path: Path, dovecot, smtp_sink, reference):
    user = dovecot.add_user()
    settings = mail_settings(tmp_path, dovecot, user, smtp_sink.port)
    unit = reference.units["TPBT"]
    rows = eligible_rows(settings, reference, unit)
    first = unit_mail(unit.emails[0], user, "Danh sách",
                      attachments=[("a.xlsx", form(settings, reference, unit, rows[:3]))])
    dovecot.deliver(user, first, when=datetime(2021, 2, 1, 8, 0).astimezone())
    late_time = settings.campaign.deadline + timedelta(hours=1)
    second = unit_mail(unit.emails[0], user, "Danh sách (gửi lại)",
                       attachments=[("b.xlsx", form(settings, reference, unit, rows))])
    dovecot.deliver(user, second, when=late_time)

    poll(settings)

    replies = {m["In-Reply-To"]: m for m in smtp_sink.messages}
    assert replies[first["Message-ID"]]["X-Intake-Status"] == "needs-correction"  # coverage
    assert replies[second["Message-ID"]]["X-Intake-Status"] == "accepted"
    assert replies[second["Message-ID"]]["X-Intake-Late"] == "yes"
    listing = list(load_workbook(settings.paths.workbook)["Danh sách"].iter_rows(
        min_row=2, values_only=True))
    assert len(listing) == len(rows)
    assert {r[13] for r in listing} == {"b.xlsx"}


def test_unreachable_mailbox_raises_mailbox_error(tmp_path: Path, dovecot, smtp_sink):
    user = dovecot.add_user()
    settings = mail_settings(tmp_path, dovecot, user, smtp_sink.port)
    with pytest.raises(MailboxError, match="login refused"):
        poll(settings, password="wrong")
