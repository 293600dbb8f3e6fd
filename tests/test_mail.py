"""Mail intake against real Dovecot + aiosmtpd: odd messages, forged senders, crashes."""

from __future__ import annotations

import time

import pytest
from imap_tools import MailBoxUnencrypted

from intake.pipeline import Pipeline
from intake.samples import eligible_rows, form, unit_mail
from intake.store import open_store

from .conftest import count, mail_settings, poll
from .mail_corpus import UNIT, as_unit, corpus_mail

pytestmark = pytest.mark.dovecot


def messages(settings) -> list:
    store = open_store(settings.paths.data_dir)
    try:
        return store.query("SELECT * FROM messages ORDER BY uid")
    finally:
        store.close()


def full_list(settings, reference, unit, to: str, subject: str = "DS"):
    """A unit's email carrying its complete, valid list in the official form."""
    return unit_mail(unit.emails[0], to, subject, attachments=[
        ("ds.xlsx", form(settings, reference, unit, eligible_rows(settings, reference, unit)))])


def folder_uids(dovecot, user: str, folder: str) -> list[str]:
    with MailBoxUnencrypted("127.0.0.1", dovecot.plain_port).login(
            user, dovecot.password, initial_folder=folder) as box:
        return list(box.uids())


# A handful of the corpus end to end (every message is checked offline in test_corpus.py):
# an auto-reply, a bounce, a message with no header at all, one whose headers run into its
# body, a Word file with a raw 8-bit name, a .csv the reader reads, a bounce's text that
# names no automaton once a unit's address is on it.
HANDFUL = ["mail/sisimai-set-of-emails/bsd/rfc3834-01.eml",
           "mail/imap_tools/multipart_report_emails/report_530.eml",
           "mail/imap_tools/error_emails/bad_encoded_subject.eml",
           "mail/cpython/msg_35.txt",
           "mail/enmime/mail/mime-bad-8bit-filename.raw",
           "mail/enmime/mail/attachment-only-text-attachment.raw",
           "mail/sisimai-set-of-emails/bsd/lhost-yahoo-01.eml"]


def test_a_handful_of_the_corpus_end_with_their_statuses_through_dovecot(
        tmp_path, dovecot, smtp_sink, reference):
    user = dovecot.add_user()
    settings = mail_settings(tmp_path, dovecot, user, smtp_sink.port,
                             smtp={"max_replies_per_hour": 0})
    sender = reference.units[UNIT].emails[0]
    mails = {m.path: m for m in corpus_mail()}
    handful = [mails[path] for path in HANDFUL]
    for mail in handful:
        dovecot.deliver(user, mail.raw, as_unit(mail.raw, sender))

    result = poll(settings)

    assert result.errors == []
    rows = messages(settings)
    assert len(rows) == 2 * len(handful) == result.fetched
    expected = [status for m in handful for status in (m.expected, m.expected_as_unit)]
    assert [r["status"] for r in rows] == expected
    assert all(r["stage"] == "moved" for r in rows)
    assert folder_uids(dovecot, user, "INBOX") == []
    waiting = sum(1 for s in expected if s in ("unknown-sender", "held"))
    assert len(folder_uids(dovecot, user, "Intake/Review")) == waiting
    assert len(folder_uids(dovecot, user, "Intake/Processed")) == len(expected) - waiting
    # Only the unit is answered: the senders as they came are unknown and unauthenticated
    # (no reply to a possibly forged From), automatons never.
    replies = sorted((m["To"], m["X-Intake-Status"]) for m in smtp_sink.messages)
    assert replies == sorted((sender, m.expected_as_unit) for m in handful
                             if m.expected_as_unit in ("no-attachment", "needs-correction"))
    second = poll(settings)
    assert second.fetched == 0 and second.statuses == {}


def test_forged_sender_is_held_without_reply(tmp_path, dovecot, smtp_sink, reference):
    user = dovecot.add_user()
    settings = mail_settings(tmp_path, dovecot, user, smtp_sink.port)
    unit = reference.units["CT"]
    data = form(settings, reference, unit, eligible_rows(settings, reference, unit, limit=3))
    failing = unit_mail(unit.emails[0], user, "DS", attachments=[("a.xlsx", data)], auth="fail")
    missing = unit_mail(unit.emails[0], user, "DS", attachments=[("a.xlsx", data)], auth="")
    # The sender wrote a "pass" header himself; the server's own (topmost) says fail.
    below = unit_mail(unit.emails[0], user, "DS", attachments=[("a.xlsx", data)], auth="")
    below["Authentication-Results"] = "mx.google.com; dmarc=fail header.from=example.org"
    below["Authentication-Results"] = "mx.google.com; dmarc=pass header.from=example.org"
    other_server = unit_mail(unit.emails[0], user, "DS", attachments=[("a.xlsx", data)],
                             authserv_id="mx.evil.example")
    for message in (failing, missing, below, other_server):
        dovecot.deliver(user, message)

    result = poll(settings)

    assert result.statuses == {"held": 4}
    assert smtp_sink.messages == []
    assert len(folder_uids(dovecot, user, "Intake/Review")) == 4
    assert count(settings, "SELECT COUNT(*) FROM rows") == 0


def test_auto_replies_and_bounces_get_no_reply(tmp_path, dovecot, smtp_sink, reference):
    user = dovecot.add_user()
    settings = mail_settings(tmp_path, dovecot, user, smtp_sink.port)
    unit = reference.units["CT"]
    dovecot.deliver(user, unit_mail(unit.emails[0], user, "Không có tệp"))  # gets a reply
    poll(settings)
    [our_reply] = smtp_sink.messages
    assert our_reply["X-Intake-Status"] == "no-attachment"
    auto = unit_mail(unit.emails[0], user, "Tự động trả lời: Re: Không có tệp",
                     headers={"Auto-Submitted": "auto-replied"})
    bulk = unit_mail(unit.emails[0], user, "Bản tin", headers={"Precedence": "bulk"})
    listed = unit_mail(unit.emails[0], user, "Thư nhóm", headers={"List-Id": "<ds.example.org>"})
    ours = unit_mail(settings.smtp.from_address, user, "Vòng lặp")
    bounce = (
        "From: Mail Delivery Subsystem <mailer-daemon@example.org>\r\n"
        f"To: {user}\r\nSubject: Delivery Status Notification (Failure)\r\n"
        "Message-ID: <dsn1@example.org>\r\nMIME-Version: 1.0\r\n"
        "Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n"
        "--b\r\nContent-Type: text/plain\r\n\r\nDelivery failed.\r\n"
        "--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; example.org\r\n"
        "\r\nFinal-Recipient: rfc822; x@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        "--b\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"Message-ID: {our_reply['Message-ID']}\r\nSubject: {our_reply['Subject']}\r\n"
        "--b--\r\n").encode()
    for message in (auto, bulk, listed, ours):
        dovecot.deliver(user, message)
    dovecot.deliver(user, bounce)

    result = poll(settings)

    assert result.statuses == {"ignored": 5}
    assert len(smtp_sink.messages) == 1  # nothing more was sent
    store = open_store(settings.paths.data_dir)
    state = store.one("SELECT state FROM outbox WHERE message_id=?", (our_reply["Message-ID"],))
    store.close()
    assert state[0] == "bounced"


def test_two_instances_writing_to_each_other_stop(tmp_path, dovecot, smtp_sink, reference):
    """Our reply is marked Auto-Submitted, so another intake never answers it."""
    user = dovecot.add_user()
    settings = mail_settings(tmp_path, dovecot, user, smtp_sink.port)
    unit = reference.units["CT"]
    dovecot.deliver(user, unit_mail(unit.emails[0], user, "Không có tệp"))
    poll(settings)
    [reply] = smtp_sink.messages
    # The other board's mailbox receives our reply, as if from a known unit.
    echoed = as_unit(reply.as_bytes(), unit.emails[0])
    other = dovecot.add_user()
    other_settings = mail_settings(tmp_path / "other", dovecot, other, smtp_sink.port)
    dovecot.deliver(other, echoed)
    result = poll(other_settings)
    assert result.statuses == {"ignored": 1}
    assert len(smtp_sink.messages) == 1


def test_unknown_sender_gets_a_reply_and_goes_to_review(tmp_path, dovecot, smtp_sink):
    user = dovecot.add_user()
    settings = mail_settings(tmp_path, dovecot, user, smtp_sink.port)
    dovecot.deliver(user, unit_mail("ai.do@example.net", user, "Danh sách"))
    result = poll(settings)
    assert result.statuses == {"unknown-sender": 1}
    [reply] = smtp_sink.messages
    assert reply["X-Intake-Status"] == "unknown-sender"
    assert reply["To"] == "ai.do@example.net"
    assert len(folder_uids(dovecot, user, "Intake/Review")) == 1


@pytest.mark.parametrize("step", ["file", "deliver", "move"])
def test_crash_at_each_step_then_rerun_files_exactly_once(
        tmp_path, dovecot, smtp_sink, reference, monkeypatch, step):
    user = dovecot.add_user()
    settings = mail_settings(tmp_path, dovecot, user, smtp_sink.port)
    unit = reference.units["TPBT"]
    rows = eligible_rows(settings, reference, unit)
    for index in range(3):
        dovecot.deliver(user, unit_mail(unit.emails[0], user, f"DS lần {index}", attachments=[
            ("ds.xlsx", form(settings, reference, unit, rows))]))

    import intake.pipeline as pipeline_module

    targets = {"file": (Pipeline, "file"), "deliver": (pipeline_module.smtp, "deliver"),
               "move": (pipeline_module.imap, "move")}
    owner, name = targets[step]
    original = getattr(owner, name)
    calls = {"n": 0}

    def crash(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2 or step == "deliver":
            raise KeyboardInterrupt("power cut")  # not an Exception: nothing catches it
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, crash)
    with pytest.raises(KeyboardInterrupt):
        poll(settings)
    monkeypatch.setattr(owner, name, original)

    poll(settings)
    poll(settings)

    store = open_store(settings.paths.data_dir)
    assert store.one("SELECT COUNT(*) FROM messages")[0] == 3
    assert store.one("SELECT COUNT(*) FROM submissions")[0] == 3
    assert store.one("SELECT COUNT(*) FROM rows WHERE current=1")[0] == len(rows)
    assert store.one("SELECT COUNT(*) FROM outbox")[0] == 3
    store.close()
    assert len(smtp_sink.messages) == 3
    assert len({m["In-Reply-To"] for m in smtp_sink.messages}) == 3
    assert folder_uids(dovecot, user, "INBOX") == []
    assert len(folder_uids(dovecot, user, "Intake/Processed")) == 3


def test_same_message_delivered_twice_is_filed_once(tmp_path, dovecot, smtp_sink, reference):
    user = dovecot.add_user()
    settings = mail_settings(tmp_path, dovecot, user, smtp_sink.port)
    unit = reference.units["TPBT"]
    message = full_list(settings, reference, unit, user)
    dovecot.deliver(user, message)
    dovecot.deliver(user, message)
    result = poll(settings)
    assert result.fetched == 2
    assert len(smtp_sink.messages) == 1
    assert count(settings, "SELECT COUNT(*) FROM submissions") == 1


def test_uidvalidity_change_refiles_nothing(tmp_path, dovecot, smtp_sink, reference):
    user = dovecot.add_user()
    settings = mail_settings(tmp_path, dovecot, user, smtp_sink.port)
    unit = reference.units["TPBT"]
    message = full_list(settings, reference, unit, user)
    dovecot.deliver(user, message)
    poll(settings)
    # The server renumbers: our record says another UIDVALIDITY, and the mail is back.
    store = open_store(settings.paths.data_dir)
    store.db.execute("UPDATE folders SET uidvalidity=uidvalidity+1")
    store.close()
    with MailBoxUnencrypted("127.0.0.1", dovecot.plain_port).login(
            user, dovecot.password, initial_folder="Intake/Processed") as box:
        box.copy(box.uids(), "INBOX")
    result = poll(settings)
    assert result.fetched == 1
    assert result.statuses == {}  # recognised by Message-ID + sha256: nothing filed
    assert len(smtp_sink.messages) == 1
    store = open_store(settings.paths.data_dir)
    assert store.one("SELECT COUNT(*) FROM submissions")[0] == 1
    assert store.last_event("uidvalidity")
    store.close()


def test_imap_server_restarted_during_a_cycle(tmp_path, smtp_sink, reference, monkeypatch):
    """Dovecot stops between fetching two batches; after it restarts, the next cycle
    completes: every message filed and answered exactly once."""
    import subprocess

    import intake.pipeline as pipeline_module
    from intake.errors import MailboxError

    from .conftest import need, refuses, running_dovecot, wait_until

    binary = need("dovecot")
    with running_dovecot(binary) as server:
        user = server.add_user()
        settings = mail_settings(tmp_path, server, user, smtp_sink.port,
                                 mailbox={"batch_size": 2})
        unit = reference.units["TPBT"]
        data = form(settings, reference, unit, eligible_rows(settings, reference, unit))
        server.deliver(user, *(unit_mail(unit.emails[0], user, f"DS {index}",
                                         attachments=[("ds.xlsx", data)]) for index in range(5)))
        original = pipeline_module.imap.fetch
        calls = {"n": 0}

        def fetch_then_crash(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == 2:  # the server goes away before the second batch
                # Open sessions outlive "dovecot stop"; kick them first, as a crash would.
                subprocess.run([need("doveadm"), "-c", str(server.config),
                                "kick", user], capture_output=True, timeout=30)
                assert wait_until(lambda: server.sessions(user) == 0, 10), "not kicked"
                subprocess.run([binary, "-c", str(server.config), "stop"], check=True,
                               capture_output=True, timeout=30)
                assert wait_until(lambda: refuses(server.plain_port), 10), "still listening"
            return original(*args, **kwargs)

        monkeypatch.setattr(pipeline_module.imap, "fetch", fetch_then_crash)
        with pytest.raises(MailboxError):
            poll(settings)
        monkeypatch.setattr(pipeline_module.imap, "fetch", original)
        with pytest.raises(MailboxError):  # still down: a clear error, nothing lost
            poll(settings)
        with (server.root / "restart.log").open("w") as out:
            subprocess.run([binary, "-c", str(server.config)], stdin=subprocess.DEVNULL,
                           stdout=out, stderr=subprocess.STDOUT, check=True, timeout=30)
        for _ in range(50):
            try:
                result = poll(settings)
                break
            except MailboxError:
                time.sleep(0.2)
        assert result.errors == []
        store = open_store(settings.paths.data_dir)
        assert store.one("SELECT COUNT(*) FROM messages")[0] == 5
        assert store.one("SELECT COUNT(*) FROM submissions")[0] == 5
        assert store.one("SELECT COUNT(*) FROM outbox")[0] == 5
        store.close()
        assert len(smtp_sink.messages) == 5
        with MailBoxUnencrypted("127.0.0.1", server.plain_port).login(
                user, server.password, initial_folder="Intake/Processed") as box:
            assert len(box.uids()) == 5


def test_message_composed_by_s_nail_with_vietnamese_attachment(tmp_path, dovecot, smtp_sink,
                                                                reference):
    """A real mail program writes the RFC 2047 subject and RFC 2231 file name."""
    import os
    import subprocess

    from intake.demo import SavingHandler, free_port

    from .conftest import need

    snail = need("s-nail")
    user = dovecot.add_user()
    settings = mail_settings(tmp_path, dovecot, user, smtp_sink.port)
    unit = reference.units["CT"]
    attachment = tmp_path / "Danh sách Châu Thành.xlsx"
    attachment.write_bytes(form(settings, reference, unit,
                                eligible_rows(settings, reference, unit)))
    from aiosmtpd.controller import Controller

    outgoing = SavingHandler()
    relay = Controller(outgoing, hostname="127.0.0.1", port=free_port())
    relay.start()
    try:
        done = subprocess.run(
            [snail, "-n", "-#", "-S", f"mta=smtp://127.0.0.1:{relay.port}",
             "-S", f"from={unit.emails[0]}", "-S", "ttycharset=utf-8",
             "-s", "Danh sách đăng ký Chi đoàn kiểu mẫu năm 2021", "-a", str(attachment), user],
            input="Kính gửi Ban Tổ chức – Kiểm tra.\n", text=True, capture_output=True,
            env={**os.environ, "LC_ALL": "C.UTF-8"}, timeout=60, cwd=tmp_path)
    finally:
        relay.stop()
    assert done.returncode == 0, done.stderr
    [raw] = outgoing.messages
    assert b"filename*=utf-8''Danh%20s%C3%A1ch" in raw  # RFC 2231, as s-nail writes it
    auth = "Authentication-Results: mx.google.com; dmarc=pass header.from=example.org\r\n"
    dovecot.deliver(user, auth.encode() + raw)

    result = poll(settings)

    assert result.statuses == {"accepted": 1}
    [reply] = smtp_sink.messages
    assert reply["Subject"] == "Re: Danh sách đăng ký Chi đoàn kiểu mẫu năm 2021"
    [row] = messages(settings)
    assert row["attachments"] == "Danh sách Châu Thành.xlsx"
    assert row["subject"] == "Danh sách đăng ký Chi đoàn kiểu mẫu năm 2021"
