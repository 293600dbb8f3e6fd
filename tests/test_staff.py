"""Staff put right what the machine cannot decide (SPEC §10), against Dovecot + aiosmtpd."""

from __future__ import annotations

import json
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from openpyxl import load_workbook

from intake.cli import main
from intake.samples import eligible_rows, form, unit_mail
from intake.store import open_store

from .conftest import REFERENCE, mail_settings, poll, write_run_config

pytestmark = pytest.mark.dovecot
STAFF = "canbo.tckt@example.org"


@pytest.fixture
def desk(tmp_path, dovecot, smtp_sink, monkeypatch):
    """A mailbox, its settings (staff configured, a reference copy staff may edit), and a
    config file for the command line pointing at the same data."""
    user = dovecot.add_user()
    reference = tmp_path / "reference"
    shutil.copytree(REFERENCE, reference)
    monkeypatch.setenv("TEST_IMAP_PASSWORD", dovecot.password)
    settings = mail_settings(tmp_path, dovecot, user, smtp_sink.port,
                             rules={"staff": [STAFF]},
                             mailbox={"password_env": "TEST_IMAP_PASSWORD"},
                             paths={"reference_dir": str(reference)})
    config = write_run_config(tmp_path / "intake.toml", dovecot, user, smtp_sink.port,
                              password_env="TEST_IMAP_PASSWORD", poll_minutes=5, idle=False)
    text = config.read_text(encoding="utf-8")
    text = text.replace("require_sender_auth = true", f'require_sender_auth = true\nstaff = ["{STAFF}"]')
    text = text.replace(f'reference_dir = "{REFERENCE}"', f'reference_dir = "{reference}"')
    config.write_text(text, encoding="utf-8")
    return user, settings, config


def cli(capsys, config: Path, *args: str) -> tuple[int, str, str]:
    code = main(["--config", str(config), *args])
    out, err = capsys.readouterr()
    return code, out, err


def sent(sink, status: str | None = None, to: str | None = None) -> list:
    return [m for m in sink.messages if (status is None or m["X-Intake-Status"] == status)
            and (to is None or m["To"] == to)]


def full_list(settings, reference, code: str, user: str, **kwargs):
    unit = reference.units[code]
    data = form(settings, reference, unit, eligible_rows(settings, reference, unit))
    return unit_mail(kwargs.pop("sender", unit.emails[0]), user, "Danh sách CĐKM",
                     attachments=[("ds.xlsx", data)], **kwargs)


def staff_mail(user: str, body: str, **kwargs):
    return unit_mail(kwargs.pop("sender", STAFF), user, kwargs.pop("subject", "Lệnh"),
                     body=body, **kwargs)


def row_of(settings, where: str, params: tuple = ()):
    store = open_store(settings.paths.data_dir)
    try:
        return store.one(f"SELECT * FROM messages WHERE {where}", params)
    finally:
        store.close()


def test_held_list_released_by_staff_email_ten_days_after_the_deadline(desk, dovecot, smtp_sink,
                                                                        reference):
    user, settings, _config = desk
    on_time = settings.campaign.deadline - timedelta(days=5)
    message = full_list(settings, reference, "CL", user, auth="fail")  # sender check fails
    dovecot.deliver(user, message, when=on_time)
    poll(settings)
    held = row_of(settings, "1=1")
    assert held["status"] == "held" and held["token"]
    [alert] = sent(smtp_sink, to=STAFF)  # staff told at once, with the token and how to answer
    alert_text = alert.get_body(("plain",)).get_content()
    assert held["token"] in alert_text and "DUYỆT" in alert_text
    assert "Nhận lúc" in alert_text and reference.units["CL"].emails[0] in alert_text
    assert len(dovecot.uids(user, "Intake/Review")) == 1

    late = settings.campaign.deadline + timedelta(days=10)
    dovecot.deliver(user, staff_mail(user, f"duyet {held['token'].lower()}"), when=late)
    poll(settings)

    released = row_of(settings, "id=?", (held["id"],))
    assert released["status"] == "accepted" and released["settled"] == "released"
    assert released["late"] == 0  # judged by the time the unit's mail was received
    [answer] = sent(smtp_sink, "accepted")
    assert answer["To"] == reference.units["CL"].emails[0]
    assert answer["In-Reply-To"] == message["Message-ID"]
    [confirmation] = sent(smtp_sink, "staff-command")
    assert confirmation["To"] == STAFF and held["token"] in confirmation.get_body(
        ("plain",)).get_content()
    assert dovecot.uids(user, "Intake/Review") == []
    assert len(dovecot.uids(user, "Intake/Processed")) == 2  # the list and the command
    book = load_workbook(settings.paths.workbook)
    units = {r[0] for r in book["Danh sách"].iter_rows(min_row=2, values_only=True)}
    assert units == {reference.units["CL"].name}
    [logged] = [r for r in book["Nhật ký"].iter_rows(min_row=2, values_only=True)
                if r[7] == message["Message-ID"]]
    assert f"→ Ban duyệt ({STAFF}, " in logged[5]  # who decided, and when, beside the message

    # The token was good once: used again, it is refused with a clear answer.
    dovecot.deliver(user, staff_mail(user, f"DUYỆT {held['token']}"), when=late)
    poll(settings)
    again = sent(smtp_sink, "staff-command")[-1].get_body(("plain",)).get_content()
    assert "đã được duyệt trước đó" in again
    assert len(sent(smtp_sink, "accepted")) == 1


def test_reply_to_the_alert_may_leave_the_token_out(desk, dovecot, smtp_sink, reference):
    user, settings, _config = desk
    dovecot.deliver(user, full_list(settings, reference, "CL", user, auth="fail"))
    poll(settings)
    [alert] = sent(smtp_sink, to=STAFF)
    dovecot.deliver(user, staff_mail(user, "Từ chối thư giả mạo\n\n> trích thư cũ",
                                     headers={"In-Reply-To": alert["Message-ID"]}))
    poll(settings)
    closed = row_of(settings, "status='held'")
    assert closed["settled"] == "rejected"
    assert sent(smtp_sink, "accepted") == []
    assert "Đã đóng thư" in sent(smtp_sink, "staff-command")[0].get_body(("plain",)).get_content()


def test_unknown_sender_assigned_to_a_unit(desk, dovecot, smtp_sink, reference, capsys):
    user, settings, config = desk
    personal = "bithu.chauthanh@gmail.example"
    dovecot.deliver(user, full_list(settings, reference, "CT", user, sender=personal))
    poll(settings)
    assert row_of(settings, "1=1")["status"] == "unknown-sender"

    code, out, err = cli(capsys, config, "review", "--format", "json")
    assert code == 0, err
    [item] = json.loads(out)["waiting"]
    assert set(item) == {"token", "status", "received_at", "sender", "subject", "reason",
                         "attachments"}
    assert item["sender"] == personal and item["status"] == "unknown-sender"

    code, out, err = cli(capsys, config, "assign", personal, "CT")
    assert code == 0, err
    assert "Huyện đoàn Châu Thành" in out
    [answer] = sent(smtp_sink, "accepted")
    assert answer["To"] == personal
    assert dovecot.uids(user, "Intake/Review") == []

    dovecot.deliver(user, full_list(settings, reference, "CT", user, sender=personal))
    assert poll(settings).statuses == {"accepted": 1}  # filed directly now
    code, out, _ = cli(capsys, config, "status")
    assert personal in out

    code, _out, err = cli(capsys, config, "release", item["token"])
    assert code == 2 and "duyệt trước đó" in err
    code, _out, err = cli(capsys, config, "release", "ZZZZ-ZZZZ")
    assert code == 2 and "không có thư nào" in err
    code, _out, err = cli(capsys, config, "assign", personal, "XX")
    assert code == 2


def test_reference_fixed_then_recheck_notifies_only_units_whose_result_changed(
        desk, dovecot, smtp_sink, reference, capsys):
    user, settings, config = desk
    cells = Path(settings.paths.reference_dir) / "party_cells.csv"
    original = cells.read_text(encoding="utf-8")
    wrong = original.replace("CL,28870,Thị trấn Chợ Lách,Khu phố 1,Chi bộ khu phố 1,,2021",
                             "CL,28870,Thị trấn Chợ Lách,Khu phố 1,Chi bộ khu phố 1,,")
    assert wrong != original
    cells.write_text(wrong, encoding="utf-8")
    dovecot.deliver(user, full_list(settings, reference, "CL", user),
                    full_list(settings, reference, "TPBT", user))
    poll(settings)
    assert [m["X-Intake-Status"] for m in sent(smtp_sink)] == ["needs-correction", "accepted"]

    cells.write_text(original, encoding="utf-8")  # the board corrects its list
    code, out, err = cli(capsys, config, "recheck", "--notify")
    assert code == 0, err
    assert "Huyện đoàn Chợ Lách" in out and "Thành đoàn Bến Tre" not in out
    assert "nay hợp lệ (1): Chi bộ khu phố 1 (Thị trấn Chợ Lách)" in out
    fresh = sent(smtp_sink)[2:]
    assert [(m["X-Intake-Status"], m["To"]) for m in fresh] == [
        ("accepted", reference.units["CL"].emails[0])]
    assert "kiểm tra lại" in fresh[0].get_body(("plain",)).get_content()
    book = load_workbook(settings.paths.workbook)
    results = {r[11] for r in book["Danh sách"].iter_rows(min_row=2, values_only=True)}
    assert results == {"Hợp lệ"}
    # Nothing changed since: a second recheck answers nobody; the next cycle does not
    # take the corrected file for a new change.
    code, out, _ = cli(capsys, config, "recheck", "--notify")
    assert "không có gì thay đổi" in out
    poll(settings)
    assert len(sent(smtp_sink)) == 3


def test_a_changed_reference_is_noticed_at_the_next_cycle(desk, dovecot, smtp_sink, reference):
    user, settings, _config = desk
    dovecot.deliver(user, full_list(settings, reference, "CL", user))
    poll(settings)
    cells = Path(settings.paths.reference_dir) / "party_cells.csv"
    cells.write_text(cells.read_text(encoding="utf-8").replace(
        "CL,28870,Thị trấn Chợ Lách,Khu phố 1,Chi bộ khu phố 1,,2021",
        "CL,28870,Thị trấn Chợ Lách,Khu phố 1,Chi bộ khu phố 1,,"), encoding="utf-8")
    poll(settings)
    alerts = sent(smtp_sink, to=STAFF)
    assert len(alerts) == 1 and "KIỂM TRA LẠI" in alerts[0].get_body(("plain",)).get_content()
    book = load_workbook(settings.paths.workbook)  # the workbook follows the new list at once
    results = [r[11] for r in book["Danh sách"].iter_rows(min_row=2, values_only=True)]
    assert results.count("Lỗi") == 1
    assert sent(smtp_sink, to=reference.units["CL"].emails[0])[1:] == []  # units not told


def test_commands_from_others_are_held_and_do_nothing(desk, dovecot, smtp_sink, reference):
    user, settings, _config = desk
    dovecot.deliver(user, full_list(settings, reference, "CL", user, auth="fail"))
    poll(settings)
    token = row_of(settings, "status='held'")["token"]
    unit = reference.units["CT"].emails[0]
    dovecot.deliver(user, staff_mail(user, f"DUYỆT {token}", sender=unit),  # not staff
                    staff_mail(user, f"DUYỆT {token}", auth="fail"))  # staff, forged
    poll(settings)
    assert row_of(settings, "token=?", (token,))["settled"] == ""
    store = open_store(settings.paths.data_dir)
    try:
        statuses = [r["status"] for r in store.query("SELECT status FROM messages ORDER BY id")]
    finally:
        store.close()
    assert statuses == ["held", "held", "held"]
    assert sent(smtp_sink, "staff-command") == [] and sent(smtp_sink, "accepted") == []
    # A staff message that looks like a command but is not one gets the help.
    dovecot.deliver(user, staff_mail(user, "DUYỆT thư của Chợ Lách giúp"))
    poll(settings)
    [answer] = sent(smtp_sink, "staff-command")
    text = answer.get_body(("plain",)).get_content()
    assert "chưa hiểu" in text and "KIỂM TRA LẠI" in text


def test_staff_accept_a_row_against_a_finding(desk, dovecot, smtp_sink, reference, capsys):
    user, settings, config = desk
    unit = reference.units["CL"]
    rows = eligible_rows(settings, reference, unit)
    rows[0][3] = 5  # below the minimum for its level
    dovecot.deliver(user, unit_mail(unit.emails[0], user, "DS", attachments=[
        ("ds.xlsx", form(settings, reference, unit, rows))]))
    assert poll(settings).statuses == {"needs-correction": 1}
    hamlet = rows[0][4]
    code, out, err = cli(capsys, config, "accept", "CL", hamlet, "ROW_MEMBERS_BELOW_MIN",
                         "--note", "Ban đồng ý vì ấp nhỏ")
    assert code == 0, err
    assert "Cần sửa → Đã tiếp nhận" in out
    book = load_workbook(settings.paths.workbook)
    assert {r[11] for r in book["Danh sách"].iter_rows(min_row=2, values_only=True)} == {"Hợp lệ"}
    messages = [r[7] for r in book["Lỗi"].iter_rows(min_row=2, values_only=True)]
    assert any(m.startswith("Ban chấp nhận: Ban đồng ý vì ấp nhỏ") for m in messages)
    [decision] = [r for r in book["Nhật ký"].iter_rows(min_row=2, values_only=True)
                  if r[2] == "Ban chấp nhận"]
    assert decision[3] == unit.name and "Ban đồng ý vì ấp nhỏ" in decision[5]
    # It holds through a recheck and through the unit's next list.
    code, out, _ = cli(capsys, config, "recheck")
    assert "không có gì thay đổi" in out
    dovecot.deliver(user, unit_mail(unit.emails[0], user, "DS gửi lại", attachments=[
        ("ds.xlsx", form(settings, reference, unit, rows))]))
    assert poll(settings).statuses == {"accepted": 1}


def test_digest_lists_what_waits_by_sender_subject_and_time_until_settled(
        desk, dovecot, smtp_sink, reference, capsys):
    from datetime import datetime

    from intake import campaign
    from intake.config import TZ
    from intake.mail import smtp
    from intake.pipeline import Pipeline

    user, settings, config = desk
    received = datetime(2021, 2, 12, 9, 30, tzinfo=TZ)
    dovecot.deliver(user, full_list(settings, reference, "CL", user, auth="fail"), when=received)
    poll(settings)
    token = row_of(settings, "status='held'")["token"]

    def digest(day: int) -> str:
        pipeline = Pipeline(settings)
        try:
            now = datetime(2021, 2, day, 17, 30, tzinfo=TZ)
            campaign.send_digest(pipeline.store, pipeline.reference, settings,
                                 pipeline.templates, now)
            smtp.deliver(pipeline.store, settings)
        finally:
            pipeline.store.close()
        return [m for m in smtp_sink.messages if m["X-Intake-Kind"] == "digest"][-1].get_body(
            ("plain",)).get_content()

    first = digest(12)
    assert f"mã {token}" in first and reference.units["CL"].emails[0] in first
    assert "Danh sách CĐKM" in first and "09:30 ngày 12/02/2021" in first
    assert "UID" not in first
    code, _out, err = cli(capsys, config, "reject", token, "--note", "giả mạo")
    assert code == 0, err
    assert f"mã {token}" not in digest(13)


# -- found by trying to break it (review of issues 10 and 12) -----------------------------


def test_recheck_by_email_after_the_automatic_one_still_answers_the_unit(desk, dovecot,
                                                                         smtp_sink, reference):
    """The cycle rechecks a changed reference at once without telling units; the staff's
    KIỂM TRA LẠI afterwards must still answer the unit whose result changed."""
    user, settings, _config = desk
    cells = Path(settings.paths.reference_dir) / "party_cells.csv"
    original = cells.read_text(encoding="utf-8")
    cells.write_text(original.replace(
        "CL,28870,Thị trấn Chợ Lách,Khu phố 1,Chi bộ khu phố 1,,2021",
        "CL,28870,Thị trấn Chợ Lách,Khu phố 1,Chi bộ khu phố 1,,"), encoding="utf-8")
    dovecot.deliver(user, full_list(settings, reference, "CL", user),
                    full_list(settings, reference, "TPBT", user))
    poll(settings)
    cells.write_text(original, encoding="utf-8")
    poll(settings)  # noticed: rechecked, staff told, units not yet
    [told] = [m for m in sent(smtp_sink, to=STAFF) if "tham chiếu" in str(m["Subject"])]
    assert "KIỂM TRA LẠI" in told.get_body(("plain",)).get_content()
    assert len(sent(smtp_sink, to=reference.units["CL"].emails[0])) == 1
    dovecot.deliver(user, staff_mail(user, "KIỂM TRA LẠI", headers={
        "In-Reply-To": told["Message-ID"]}))
    poll(settings)
    to_cl = sent(smtp_sink, to=reference.units["CL"].emails[0])
    assert [m["X-Intake-Status"] for m in to_cl] == ["needs-correction", "accepted"]
    assert len(sent(smtp_sink, to=reference.units["TPBT"].emails[0])) == 1  # unchanged: nothing
    answer = sent(smtp_sink, "staff-command")[-1].get_body(("plain",)).get_content()
    assert "Huyện đoàn Chợ Lách" in answer and "đã gửi thư trả lời mới" in answer


@pytest.mark.parametrize("since", ["full list", "addition"])
def test_an_older_held_list_does_not_replace_what_the_unit_sent_since(since, desk, dovecot,
                                                                      smtp_sink, reference,
                                                                      capsys):
    """Released, an older held full list would replace the unit's newer list; a newer
    "bổ sung" was not checked at first (found in review), and its rows were retired."""
    from datetime import datetime

    from intake.config import TZ

    user, settings, config = desk
    unit = reference.units["CL"]
    rows = eligible_rows(settings, reference, unit)

    def mail(subject: str, part: list, day: int, **kw) -> None:
        dovecot.deliver(user, unit_mail(unit.emails[0], user, subject, attachments=[
            ("ds.xlsx", form(settings, reference, unit, part))], **kw),
            when=datetime(2021, 2, day, 9, 0, tzinfo=TZ))

    if since == "addition":
        mail("DS", rows[:-3], 9)
    mail("DS cũ", rows[:1], 10, auth="fail")
    if since == "addition":
        mail("DS bổ sung", rows[-3:], 12)
    else:
        mail("DS", rows, 12)
    poll(settings)
    token = row_of(settings, "status='held'")["token"]
    code, _out, err = cli(capsys, config, "release", token)
    assert code == 2 and "danh sách mới hơn" in err and "12/02/2021" in err
    book = load_workbook(settings.paths.workbook)
    assert len(list(book["Danh sách"].iter_rows(min_row=2))) == len(rows)
    assert sent(smtp_sink, "needs-correction") == []


def test_a_unit_code_that_contradicts_the_sender_is_refused(desk, dovecot, smtp_sink,
                                                            reference):
    user, settings, _config = desk
    dovecot.deliver(user, full_list(settings, reference, "CT", user),
                    full_list(settings, reference, "CL", user, auth="fail"))
    poll(settings)
    token = row_of(settings, "status='held'")["token"]
    dovecot.deliver(user, staff_mail(user, f"DUYỆT {token} CT"))  # a typo: CL's list
    poll(settings)
    answer = sent(smtp_sink, "staff-command")[-1].get_body(("plain",)).get_content()
    assert "là của Huyện đoàn Chợ Lách, không phải Huyện đoàn Châu Thành" in answer
    assert row_of(settings, "token=?", (token,))["settled"] == ""
    assert [m["To"] for m in sent(smtp_sink, "needs-correction")] == []


def test_an_encoded_word_message_id_does_not_stall_later_cycles(desk, dovecot, smtp_sink,
                                                                reference, capsys):
    user, settings, config = desk
    personal = "bithu@gmail.example"
    import re

    raw = full_list(settings, reference, "CT", user, sender=personal).as_bytes()
    raw = re.sub(rb"(?m)^Message-ID: .*$",  # "<ệ@x.vn>" as an encoded word, ASCII on the wire
                 b"Message-ID: =?utf-8?b?POG7h0B4LnZuPg==?=\r", raw, count=1)
    dovecot.deliver(user, raw)
    poll(settings)
    assert row_of(settings, "1=1")["message_id"] == ""  # no usable Message-ID: none kept
    code, _out, err = cli(capsys, config, "assign", personal, "CT")
    assert code == 0, err
    dovecot.deliver(user, full_list(settings, reference, "CL", user))
    result = poll(settings)
    assert result.errors == [] and result.statuses == {"accepted": 1}


def test_staff_mail_is_read_as_staff_wrote_it(desk, dovecot, smtp_sink, reference):
    user, settings, _config = desk
    dovecot.deliver(user, full_list(settings, reference, "CL", user, auth="fail"),
                    full_list(settings, reference, "BT", user, auth="fail"))
    poll(settings)
    alerts = sent(smtp_sink, to=STAFF)
    first, second = (row_of(settings, "id=?", (n,))["token"] for n in (1, 2))
    # A reply to the alert about the first message that names the second: the second.
    reply = staff_mail(user, f"DUYỆT:{second}", headers={"In-Reply-To": alerts[0]["Message-ID"]})
    # An HTML-only command, as some webmail clients send it.
    html_only = staff_mail(user, "")
    html_only.set_content(f"<html><head><title>x</title></head><body><div>&nbsp;</div>"
                          f"<p>DUY&#7878;T&nbsp;{first}</p></body></html>", subtype="html")
    dovecot.deliver(user, reply)
    poll(settings)
    assert row_of(settings, "token=?", (second,))["settled"] == "released"
    assert row_of(settings, "token=?", (first,))["settled"] == ""
    dovecot.deliver(user, html_only)
    poll(settings)
    assert row_of(settings, "token=?", (first,))["settled"] == "released"
    # A colleague's ordinary mail is neither a command nor a unit's: no reply, no alert.
    before = len(smtp_sink.messages)
    dovecot.deliver(user, staff_mail(user, "Chiều nay họp lúc 14 giờ."))
    poll(settings)
    assert len(smtp_sink.messages) == before
    # A command inside a forwarded message is not the forwarder's command.
    forward = staff_mail(user, "")
    forward.add_attachment(staff_mail(user, "KIỂM TRA LẠI", sender="ai@example.net"))
    dovecot.deliver(user, forward)
    poll(settings)
    assert len(smtp_sink.messages) == before


def test_alerts_name_the_attachments_of_what_waits(desk, dovecot, smtp_sink, reference):
    user, settings, _config = desk
    dovecot.deliver(user, full_list(settings, reference, "CL", user, auth="fail"),
                    full_list(settings, reference, "CT", user, sender="la@example.net"))
    poll(settings)
    for alert in sent(smtp_sink, to=STAFF):
        assert "ds.xlsx" in alert.get_body(("plain",)).get_content()
