"""Replies and the outbox, delivered to a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import io
import unicodedata
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from intake.config import TZ
from intake.demo import free_port
from intake.errors import TemplateError
from intake.findings import finding
from intake.mail import smtp
from intake.reference import load_reference
from intake.replies import check_templates, group_findings, reply_subject
from intake.samples import eligible_rows, form, unit_mail
from intake.store import open_store

from .conftest import REFERENCE, TEMPLATES, make_settings, reply


def outbox_settings(tmp_path: Path, port: int, **smtp_keys):
    return make_settings(tmp_path, smtp={"host": "127.0.0.1", "port": port, "security": "none",
                                         "username": "", "from_address": "ban@example.org",
                                         **smtp_keys})


def test_subject_gets_one_re():
    assert reply_subject("Re: RE: Fwd: TL: Danh sách") == "Re: Danh sách"
    assert reply_subject("") == "Re: Danh sách Chi đoàn kiểu mẫu"


@pytest.mark.parametrize("kind", ["accepted", "needs-correction", "no-attachment",
                                  "unknown-sender", "rejected-late"])
def test_each_kind_is_delivered_threaded_with_both_alternatives(tmp_path, smtp_sink, kind):
    settings = outbox_settings(tmp_path, smtp_sink.port)
    errors = [finding("ROW_REQUIRED", "Dòng 9: chưa ghi “Số lượng đoàn viên”.", file="a.xlsx",
                      sheet="Danh sách", row=9, column="D")]
    message = reply(settings, kind, late=kind == "rejected-late", errors=errors,
                    groups=group_findings(errors))
    store = open_store(settings.paths.data_dir)
    smtp.queue(store, None, kind, message, kind)
    assert smtp.deliver(store, settings)["sent"] == 1
    store.close()
    [got] = smtp_sink.messages
    assert got["X-Intake-Status"] == kind
    assert got["In-Reply-To"] == "<orig@example.org>"
    assert got["References"] == "<earlier@example.org> <orig@example.org>"
    assert got["Subject"] == "Re: Danh sách Chi đoàn kiểu mẫu Châu Thành"
    assert got["Auto-Submitted"] == "auto-replied"
    assert got["X-Auto-Response-Suppress"] == "All"
    assert got["Message-ID"].endswith("@example.org>")
    assert got["Date"]
    assert (got["X-Intake-Late"] == "yes") == (kind == "rejected-late")
    text = got.get_body(("plain",)).get_content()
    html = got.get_body(("html",)).get_content()
    assert text == unicodedata.normalize("NFC", text) and "Kính gửi" in text
    assert "<p>" in html and "{{" not in html and "{%" not in html
    if kind == "needs-correction":
        assert "Dòng 9" in text and "ô D9" in text


def test_hostile_values_are_escaped_in_html(tmp_path, smtp_sink):
    settings = outbox_settings(tmp_path, smtp_sink.port)
    evil = finding("ROW_COMMUNE_UNKNOWN", "Dòng 8: “<script>alert(1)</script>” không thuộc…",
                   file="<img src=x onerror=alert(1)>.xlsx", row=8, column="B",
                   value="=HYPERLINK(\"http://evil\")\u202e")
    message = reply(settings, "needs-correction", errors=[evil], groups=group_findings([evil]))
    html = message.get_body(("html",)).get_content()
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "<img" not in html and "&lt;img" in html


def test_broken_template_is_reported_at_start(tmp_path):
    folder = tmp_path / "templates"
    folder.mkdir()
    for path in TEMPLATES.iterdir():
        (folder / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    (folder / "accepted.html.j2").write_text("{% if %}", encoding="utf-8")
    with pytest.raises(TemplateError, match=r"accepted\.html\.j2 line 1"):
        check_templates(folder)
    (folder / "accepted.html.j2").unlink()
    with pytest.raises(TemplateError, match=r"accepted\.html\.j2"):
        check_templates(folder)


class Scripted:
    """An SMTP handler that answers DATA from a script, then 250 for ever."""

    def __init__(self, answers: list[str]):
        self.answers = answers
        self.received: list[bytes] = []

    async def handle_DATA(self, server, session, envelope):
        if self.answers:
            return self.answers.pop(0)
        self.received.append(envelope.content)
        return "250 OK"


def scripted_server(answers):
    handler = Scripted(answers)
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    return handler, controller


def test_server_down_then_up_delivers_once(tmp_path):
    port = free_port()  # nothing listens yet
    settings = outbox_settings(tmp_path, port, timeout_seconds=2)
    store = open_store(settings.paths.data_dir)
    smtp.queue(store, None, "accepted", reply(settings), "accepted")
    now = datetime.now(UTC)
    assert smtp.deliver(store, settings, now)["deferred"] == 1
    row = store.one("SELECT state, attempts, last_error FROM outbox")
    # The server's failure is not held against the reply: no attempt counted.
    assert (row["state"], row["attempts"]) == ("queued", 0) and row["last_error"]
    assert smtp.deliver(store, settings, now)["sent"] == 0  # the server rests: back-off
    handler = Scripted([])
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        later = now + timedelta(minutes=5)
        assert smtp.deliver(store, settings, later)["sent"] == 1
        assert smtp.deliver(store, settings, later + timedelta(hours=1))["sent"] == 0
    finally:
        controller.stop()
    assert len(handler.received) == 1
    assert store.one("SELECT state FROM outbox")[0] == "sent"
    store.close()


def test_temporary_4xx_then_ok_arrives_once(tmp_path):
    handler, controller = scripted_server(["451 4.3.0 try again later"])
    try:
        settings = outbox_settings(tmp_path, controller.port)
        store = open_store(settings.paths.data_dir)
        smtp.queue(store, None, "accepted", reply(settings), "accepted")
        now = datetime.now(UTC)
        assert smtp.deliver(store, settings, now)["deferred"] == 1
        assert smtp.deliver(store, settings, now + timedelta(minutes=2))["sent"] == 1
        assert smtp.deliver(store, settings, now + timedelta(hours=3))["sent"] == 0
        store.close()
    finally:
        controller.stop()
    assert len(handler.received) == 1


def test_permanent_5xx_is_marked_failed_and_never_retried(tmp_path):
    handler, controller = scripted_server(["550 5.1.1 no such user"] * 10)
    try:
        settings = outbox_settings(tmp_path, controller.port)
        store = open_store(settings.paths.data_dir)
        smtp.queue(store, None, "accepted", reply(settings), "accepted")
        now = datetime.now(UTC)
        assert smtp.deliver(store, settings, now)["failed"] == 1
        for hours in (1, 5, 50):
            assert smtp.deliver(store, settings, now + timedelta(hours=hours)) == {
                "sent": 0, "deferred": 0, "failed": 0, "limited": 0}
        row = store.one("SELECT state, last_error FROM outbox")
        assert row["state"] == "failed" and row["last_error"].startswith("550")
        store.close()
    finally:
        controller.stop()
    assert handler.received == [] and len(handler.answers) == 9


def test_rate_limit_blocked_addresses_and_dry_run(tmp_path, smtp_sink):
    settings = outbox_settings(tmp_path, smtp_sink.port, max_replies_per_hour=2)
    store = open_store(settings.paths.data_dir)
    for _ in range(3):
        smtp.queue(store, None, "accepted", reply(settings), "accepted")
    smtp.queue(store, None, "accepted", reply(settings, to="MAILER-DAEMON@example.org"),
               "accepted")
    counts = smtp.deliver(store, settings)
    assert (counts["sent"], counts["limited"]) == (2, 1)
    assert len(smtp_sink.messages) == 2
    assert store.one("SELECT state FROM outbox WHERE recipient LIKE 'mailer-daemon%'")[0] \
        == "suppressed"
    store.close()

    dry = outbox_settings(tmp_path / "dry", smtp_sink.port, dry_run=True)
    store = open_store(dry.paths.data_dir)
    smtp.queue(store, None, "accepted", reply(dry), "accepted")
    assert smtp.deliver(store, dry)["sent"] == 1
    store.close()
    [written] = list((dry.paths.data_dir / "outbox-dry-run").glob("*.eml"))
    assert b"X-Intake-Status: accepted" in written.read_bytes()
    assert len(smtp_sink.messages) == 2  # nothing sent in dry-run


# What each rendered page must say, read back from Chromium's own PDF, and what it must
# not (another kind's verdict). Every page names the board and the time the mail came.
EVERY_PAGE = ["Ban Tổ chức – Kiểm tra Tỉnh đoàn Bến Tre", "09:30 ngày 10/02/2021",
              "“Re: RE: Danh sách Chi đoàn kiểu mẫu Châu Thành”"]
SAYS = {
    "accepted": ["Kính gửi Huyện đoàn Châu Thành", "của đơn vị đã được TIẾP NHẬN",
                 "a.xlsx 12 11", "Số Chi đoàn hợp lệ: 11 (cấp tỉnh: 6, cấp huyện: 5)"],
    "needs-correction": ["Kính gửi Huyện đoàn Châu Thành",
                         "Danh sách CHƯA ĐƯỢC TIẾP NHẬN vì còn 1 lỗi cần sửa",
                         "Dòng 9: chưa ghi “Số lượng đoàn viên”."],
    "no-attachment": ["Kính gửi Huyện đoàn Châu Thành", "không kèm tệp bảng tính"],
    "unknown-sender": ["Kính gửi Quý đồng chí", "gửi từ địa chỉ hd@example.org",
                       "chưa được tiếp nhận tự động"],
    "rejected-late": ["Kính gửi Huyện đoàn Châu Thành", "sau hạn chót 00:00 ngày 20/02/2021",
                      "không được tiếp nhận"],
}
NEVER = {
    "accepted": ["CHƯA ĐƯỢC", "lỗi cần sửa", "sau hạn chót"],
    "needs-correction": ["đã được TIẾP NHẬN", "Số Chi đoàn hợp lệ"],
    "no-attachment": ["TIẾP NHẬN", "Dòng 9"],
    "unknown-sender": ["Huyện đoàn Châu Thành", "TIẾP NHẬN", "Dòng 9"],
    "rejected-late": ["TIẾP NHẬN", "Dòng 9", "Số Chi đoàn hợp lệ"],
}


@pytest.mark.parametrize("kind", list(SAYS))
def test_html_renders_in_headless_chromium(tmp_path, kind):
    """The HTML part as a mail client shows it: Chromium prints it to PDF, and the text
    read back from that PDF says what the reply must say, in Vietnamese, whole, and
    nothing of another kind's verdict or of the markup."""
    import subprocess

    from .conftest import need

    chromium, pdftotext = need("chromium"), need("pdftotext")
    settings = outbox_settings(tmp_path, 25)
    errors = [finding("ROW_REQUIRED", "Dòng 9: chưa ghi “Số lượng đoàn viên”.", file="a.xlsx",
                      sheet="Danh sách", row=9, column="D")]
    message = reply(settings, kind, errors=errors, groups=group_findings(errors),
                    files=[{"name": "a.xlsx", "rows": 12, "valid_rows": 11}],
                    valid_rows=11, provincial=6, district=5)
    html = message.get_body(("html",)).get_content()
    assert "{{" not in html and "{%" not in html
    page = tmp_path / f"{kind}.html"
    page.write_text(html, encoding="utf-8")
    pdf = tmp_path / f"{kind}.pdf"
    done = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", f"--print-to-pdf={pdf}",
         "--no-pdf-header-footer", page.as_uri()],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and pdf.exists(), done.stderr[-2000:]
    text = subprocess.run([pdftotext, "-enc", "UTF-8", str(pdf), "-"], capture_output=True,
                          text=True, check=True).stdout
    flat = " ".join(text.split())
    for phrase in EVERY_PAGE + SAYS[kind]:
        assert phrase in flat, (phrase, flat[:1500])
    for phrase in NEVER[kind] + ["<p", "<strong", "&lt;", "&amp;", "{{", "None"]:
        assert phrase not in flat, (phrase, flat[:1500])


def test_board_and_province_come_from_configuration(tmp_path):
    """Another board (or province) edits [board]; nothing in the code or templates names
    Bến Tre's board."""
    settings = make_settings(tmp_path, board={"name": "Ban Tuyên giáo",
                                              "organisation": "Tỉnh đoàn Trà Vinh",
                                              "province": "Trà Vinh"})
    for kind in ("accepted", "needs-correction", "unknown-sender", "rejected-late"):
        message = reply(settings, kind)
        text = message.get_body(("plain",)).get_content()
        html = message.get_body(("html",)).get_content()
        assert "Ban Tuyên giáo Tỉnh đoàn Trà Vinh" in text and "Bến Tre" not in text, kind
        assert "Ban Tuyên giáo Tỉnh đoàn Trà Vinh" in html and "Bến Tre" not in html, kind
        assert "Trà Vinh" in str(message["From"])
    sources = [*TEMPLATES.glob("*.j2"), *(TEMPLATES.parent / "intake").rglob("*.py")]
    hard_coded = [p.name for p in sources if p.name != "config.py"
                  and "tỉnh đoàn bến tre" in p.read_text(encoding="utf-8").casefold()]
    assert hard_coded == []
    from intake.sheets.template import build_template

    form = build_template(settings, load_reference(REFERENCE))
    heading = [c.value for row in form["Danh sách"].iter_rows(max_row=5) for c in row if c.value]
    assert heading[0] == "TỈNH ĐOÀN TRÀ VINH"
    guide = " ".join(c.value for c in form["Hướng dẫn"]["A"] if c.value)
    assert "Ban Tuyên giáo Tỉnh đoàn Trà Vinh" in guide and "Bến Tre" not in guide


# -- what the replies tell a unit to do (issue 14) ------------------------------------------


def filed_replies(tmp_path, mails, **sections):
    """File (message, received) pairs offline; the queued replies, oldest first."""
    from email import message_from_bytes, policy

    from .conftest import file_offline

    settings = make_settings(tmp_path, rules={"require_sender_auth": False}, **sections)
    file_offline(settings, mails)
    store = open_store(settings.paths.data_dir)
    raws = [r["raw"] for r in store.query("SELECT raw FROM outbox ORDER BY id")]
    store.close()
    return [message_from_bytes(raw, policy=policy.default) for raw in raws]


def bodies(message) -> tuple[str, str]:
    """Text and HTML, each with its lines joined (HTML source wraps anywhere)."""
    return (message.get_body(("plain",)).get_content(),
            " ".join(message.get_body(("html",)).get_content().split()))


ON_TIME_CL = datetime(2021, 2, 15, 9, 0, tzinfo=TZ)


def unit_list(settings, reference, code, rows, subject="Danh sách Chi đoàn kiểu mẫu",
              when=ON_TIME_CL):
    unit = reference.units[code]
    return (unit_mail(unit.emails[0], "ban@example.org", subject,
                      attachments=[(f"DS_{code}.xlsx", form(settings, reference, unit, rows))]),
            when)


def test_a_hamlet_sent_with_an_error_is_to_fix_never_missing(tmp_path, reference):
    """Chợ Lách sends every hamlet of Xã Phú Phụng, two rows wrong: the reply names those
    rows to fix and asks for nothing to be added (adding them again would duplicate)."""
    settings = make_settings(tmp_path)
    unit = reference.units["CL"]
    rows = eligible_rows(settings, reference, unit)
    commune = rows[0][1]
    first, second = rows[0][2].removeprefix("Chi đoàn "), rows[1][2].removeprefix("Chi đoàn ")
    rows[0][3] = None  # members missing
    rows[1][1] = rows[1][1].replace("Xã ", "Xa ") + "h"  # the commune misspelt
    [message] = filed_replies(tmp_path, [unit_list(settings, reference, "CL", rows)])
    assert message["X-Intake-Status"] == "needs-correction"
    text, html = bodies(message)
    [coverage] = [line for line in text.splitlines() if line.startswith(f"- {commune}")]
    assert f"Cần sửa: {first} (dòng 8), {second} (dòng 9)." in coverage
    assert "Còn thiếu" not in text and "không cần thêm Chi đoàn" in coverage
    assert "gửi lại toàn bộ danh sách trước ngày 20/02/2021" in text
    assert "thư có chữ “bổ sung”" not in text  # no advice to add what was sent
    assert "Còn thiếu" not in html and f"{first} (dòng 8)" in html
    assert "tô đỏ" in text  # D8 and B9 are marked


def test_missing_hamlets_only_ask_for_a_bo_sung_and_nothing_is_said_red(tmp_path, reference):
    from openpyxl import load_workbook

    settings = make_settings(tmp_path)
    unit = reference.units["TP"]
    rows = eligible_rows(settings, reference, unit)
    [message] = filed_replies(tmp_path, [unit_list(settings, reference, "TP",
                                                   rows[:len(rows) // 2])])
    assert message["X-Intake-Status"] == "needs-correction"
    text, html = bodies(message)
    assert "Còn thiếu:" in text and "Cần sửa" not in text
    assert "gửi bổ sung các Chi đoàn còn thiếu" in text and "trước ngày 20/02/2021" in text
    # The attached copy marks no cell, so the reply does not say cells are red.
    assert "tô đỏ" not in text and "tô đỏ" not in html
    assert "trang “Ghi chú kiểm tra”" in text
    [attachment] = list(message.iter_attachments())
    book = load_workbook(io.BytesIO(attachment.get_content()))
    assert "Ghi chú kiểm tra" in book.sheetnames
    red = [c.coordinate for s in book.worksheets for row in s.iter_rows() for c in row
           if c.fill and c.fill.fgColor and str(c.fill.fgColor.rgb).endswith("FF9999")]
    assert red == []
    # The same suggestion is not repeated on every commune's line.
    assert text.count("Gửi bổ sung Chi đoàn của các ấp, khu phố còn thiếu") == 1


def test_late_lists_are_told_what_late_means_once(tmp_path, reference):
    settings = make_settings(tmp_path)
    late = datetime(2021, 2, 22, 8, 0, tzinfo=TZ)
    ct = eligible_rows(settings, reference, reference.units["CT"])
    cl = eligible_rows(settings, reference, reference.units["CL"])
    cl[0][3] = None
    accepted, correction = filed_replies(tmp_path, [
        unit_list(settings, reference, "CT", ct, when=late),
        unit_list(settings, reference, "CL", cl, when=late)])
    assert accepted["X-Intake-Status"] == "accepted"
    for body in bodies(accepted):
        assert body.count("sau hạn chót") == 1, body
        assert "vẫn được tiếp nhận và được ghi nhận là nộp trễ hạn" in body
    assert correction["X-Intake-Status"] == "needs-correction"
    for body in bodies(correction):
        assert body.count("sau hạn chót") == 1, body
        assert "trước ngày 20/02/2021" not in body and "trước 00:00" not in body
        assert "danh sách gửi lại vẫn được tiếp nhận và được ghi nhận là nộp trễ hạn" in body


def test_a_bo_sung_states_the_units_new_total(tmp_path, reference):
    settings = make_settings(tmp_path)
    rows = eligible_rows(settings, reference, reference.units["TP"])
    half = len(rows) // 2
    _first, addition = filed_replies(tmp_path, [
        unit_list(settings, reference, "TP", rows[:half]),
        unit_list(settings, reference, "TP", rows[half:], subject="Bổ sung danh sách CĐKM",
                  when=ON_TIME_CL + timedelta(hours=3))])
    assert addition["X-Intake-Status"] == "accepted"
    text, html = bodies(addition)
    provincial = sum(1 for r in rows if r[7] == "x")
    assert f"Thư bổ sung: {len(rows) - half} Chi đoàn hợp lệ" in text
    assert (f"Tổng số Chi đoàn hợp lệ của đơn vị sau khi bổ sung: {len(rows)} (cấp tỉnh: "
            f"{provincial}, cấp huyện: {len(rows) - provincial})") in text
    assert f"<strong>{len(rows)}</strong>" in html
    assert "(thư bổ sung)" in text
