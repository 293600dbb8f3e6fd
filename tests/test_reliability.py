"""Nothing doubled, nothing lost, nothing stalls (issue 10), against real Dovecot + aiosmtpd.

Each test names the failure it proves gone. Crashes are simulated the way a power cut
looks to the program: a ``KeyboardInterrupt`` (which no handler catches) raised right
after a real server has done its part.
"""

from __future__ import annotations

import imaplib
import os
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest

from intake import schedule
from intake.mail.envelope import parse
from intake.pipeline import Pipeline
from intake.samples import eligible_rows, form, unit_mail
from intake.store import open_store

from .conftest import (
    ON_TIME,
    count,
    file_offline,
    mail_settings,
    need,
    poll,
    running_dovecot,
    write_run_config,
)

pytestmark = pytest.mark.dovecot


def unit_lists(settings, reference, user: str, n: int, code: str = "TPBT") -> list:
    unit = reference.units[code]
    data = form(settings, reference, unit, eligible_rows(settings, reference, unit))
    return [unit_mail(unit.emails[0], user, f"DS lần {i}", attachments=[("ds.xlsx", data)])
            for i in range(n)]


def command_line_mailbox(tmp_path, dovecot, smtp_sink, reference, lists: int):
    """A mailbox holding ``lists`` unit lists, with settings and a config file for running
    intake as a command (password in TEST_IMAP_PASSWORD)."""
    user = dovecot.add_user()
    settings = mail_settings(tmp_path, dovecot, user, smtp_sink.port)
    dovecot.deliver(user, *unit_lists(settings, reference, user, lists))
    config = write_run_config(tmp_path / "intake.toml", dovecot, user, smtp_sink.port,
                              password_env="TEST_IMAP_PASSWORD", poll_minutes=5, idle=False)
    return user, settings, config


def replies_once(sink, expected: int, key: str = "In-Reply-To") -> None:
    """Every reply arrived exactly once: ``expected`` messages, each answering another."""
    answered = [m[key] for m in sink.messages]
    assert len(answered) == expected, f"{len(answered)} replies for {expected} messages"
    assert len(set(answered)) == expected


def crash_after_command(monkeypatch, commands: set[str]) -> None:
    """The process dies right after the server carried out one of ``commands``."""
    original = imaplib.IMAP4.uid

    def uid(self, command, *args):
        answer = original(self, command, *args)
        if command.upper() in commands:
            monkeypatch.setattr(imaplib.IMAP4, "uid", original)
            raise KeyboardInterrupt(f"power cut after {command}")
        return answer

    monkeypatch.setattr(imaplib.IMAP4, "uid", uid)


# -- doubled replies -------------------------------------------------------------------


def test_poll_job_and_campaign_job_at_once_send_each_reply_once(tmp_path, dovecot, smtp_sink,
                                                                reference, monkeypatch):
    """Item 1: `intake run`'s two jobs delivering the same outbox at the same moment."""
    user = dovecot.add_user()
    monkeypatch.setenv("TEST_IMAP_PASSWORD", dovecot.password)
    settings = mail_settings(tmp_path, dovecot, user, smtp_sink.port,
                             mailbox={"password_env": "TEST_IMAP_PASSWORD"})
    backlog = unit_lists(settings, reference, user, 40)
    file_offline(settings, [(m, ON_TIME) for m in backlog])  # 40 replies queued, none sent
    jobs = [threading.Thread(target=schedule.poll_job, args=(settings,)),
            threading.Thread(target=schedule.campaign_job, args=(settings,)),
            threading.Thread(target=schedule.campaign_job, args=(settings,))]
    for job in jobs:
        job.start()
    for job in jobs:
        job.join(120)
    replies_once(smtp_sink, 40)


def test_two_polls_beside_each_other_file_move_and_answer_once(tmp_path, dovecot, smtp_sink,
                                                               reference):
    """Item 2: two `intake poll` processes at once (and the lock makes the second wait)."""
    user, settings, config = command_line_mailbox(tmp_path, dovecot, smtp_sink, reference,
                                                  30)
    env = {**os.environ, "TEST_IMAP_PASSWORD": dovecot.password}
    command = [sys.executable, "-m", "intake", "--config", str(config), "poll"]
    polls = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(3)]
    outputs = [p.communicate(timeout=180) for p in polls]
    for poll_process, (_out, err) in zip(polls, outputs, strict=True):
        assert poll_process.returncode == 0, err
        assert "Traceback" not in err and "IntegrityError" not in err
    replies_once(smtp_sink, 30)
    assert dovecot.uids(user, "INBOX") == []
    assert len(dovecot.uids(user, "Intake/Processed")) == 30
    assert count(settings, "SELECT COUNT(*) FROM submissions") == 30


def test_file_rechecks_the_stage_inside_its_transaction(tmp_path, dovecot, smtp_sink, reference):
    """Item 2: a message filed by someone else meanwhile is not filed a second time."""
    user = dovecot.add_user()
    settings = mail_settings(tmp_path, dovecot, user, smtp_sink.port)
    [message] = unit_lists(settings, reference, user, 1)
    dovecot.deliver(user, message)
    poll(settings)
    pipeline = Pipeline(settings)
    try:
        row = pipeline.store.one("SELECT * FROM messages")
        outcome = pipeline.decide(message.as_bytes(), ON_TIME)
        assert pipeline.file(row, outcome) is None  # this row was read as "recorded" before
        assert pipeline.store.one("SELECT COUNT(*) FROM submissions")[0] == 1
        assert pipeline.store.one("SELECT COUNT(*) FROM outbox")[0] == 1
    finally:
        pipeline.store.close()


def _crash_after_copy_then_retry(server, tmp_path, smtp_sink, reference, monkeypatch,
                                 commands: set[str]) -> None:
    user = server.add_user()
    settings = mail_settings(tmp_path, server, user, smtp_sink.port)
    server.deliver(user, *unit_lists(settings, reference, user, 2))
    crash_after_command(monkeypatch, commands)
    with pytest.raises(KeyboardInterrupt):
        poll(settings)
    poll(settings)
    assert server.uids(user, "INBOX") == []
    assert len(server.uids(user, "Intake/Processed")) == 2
    replies_once(smtp_sink, 2)


def test_crash_between_copy_and_expunge_leaves_one_copy(tmp_path, dovecot, smtp_sink,
                                                       reference, monkeypatch):
    """Item 3: capabilities are asked again after login, so Dovecot's MOVE is used; a
    crash right after it is finished without a second copy in the processed folder."""
    _crash_after_copy_then_retry(dovecot, tmp_path, smtp_sink, reference, monkeypatch,
                                 {"COPY", "MOVE"})


def test_without_move_an_interrupted_copy_is_not_repeated(tmp_path, smtp_sink, reference,
                                                           monkeypatch):
    """Item 3 on a server without MOVE: COPY, crash, then the retry finds the copy."""
    no_move = "protocol imap {\n  imap_capability = IMAP4rev1 IDLE UIDPLUS LITERAL+\n}\n"
    with running_dovecot(need("dovecot"), extra=no_move) as server:
        _crash_after_copy_then_retry(server, tmp_path, smtp_sink, reference, monkeypatch,
                                     {"COPY"})


# -- lost messages -----------------------------------------------------------------------


def test_crash_then_uidvalidity_change_still_files_every_message(tmp_path, dovecot, smtp_sink,
                                                                 reference, monkeypatch):
    """Item 4: rows left "recorded" under the old UIDVALIDITY are finished, once."""
    user = dovecot.add_user()
    settings = mail_settings(tmp_path, dovecot, user, smtp_sink.port)
    dovecot.deliver(user, *unit_lists(settings, reference, user, 11))

    def power_cut(*args, **kwargs):
        raise KeyboardInterrupt("power cut before filing")

    monkeypatch.setattr(Pipeline, "decide", power_cut)
    with pytest.raises(KeyboardInterrupt):
        poll(settings)
    monkeypatch.undo()
    assert count(settings, "SELECT COUNT(*) FROM messages WHERE stage='recorded'") == 11
    dovecot.renumber(user)

    result = poll(settings)
    assert result.errors == []
    assert count(settings, "SELECT COUNT(*) FROM submissions") == 11
    assert count(settings, "SELECT COUNT(*) FROM messages") == 11
    replies_once(smtp_sink, 11)
    assert dovecot.uids(user, "INBOX") == []
    assert len(dovecot.uids(user, "Intake/Processed")) == 11


def _without_message_id(message: EmailMessage) -> bytes:
    del message["Message-ID"]
    return message.as_bytes()


def test_messages_without_message_id_are_not_refiled_after_uidvalidity_change(
        tmp_path, dovecot, smtp_sink, reference):
    """Item 5: identity falls back to the content hash."""
    user = dovecot.add_user()
    settings = mail_settings(tmp_path, dovecot, user, smtp_sink.port)
    dovecot.deliver(user, *(_without_message_id(m)
                            for m in unit_lists(settings, reference, user, 3)))
    poll(settings)
    replies_once(smtp_sink, 3, key="Subject")  # no Message-ID to answer: one per subject
    # The server is restored from a backup: the same three messages, renumbered.
    client = dovecot.client(user)
    client.select('"Intake/Processed"')
    client.uid("COPY", "1:*", "INBOX")
    client.logout()
    dovecot.renumber(user)
    result = poll(settings)
    assert result.fetched == 3
    assert count(settings, "SELECT COUNT(*) FROM submissions") == 3
    replies_once(smtp_sink, 3, key="Subject")
    assert dovecot.uids(user, "INBOX") == []


# -- one message must never stall the others ------------------------------------------


def test_nameless_authentication_results_does_not_stall_the_mailbox(tmp_path, dovecot,
                                                                    smtp_sink, reference):
    """Item 8: "Authentication-Results: ; dmarc=pass" on top made every poll exit 1."""
    user = dovecot.add_user()
    settings = mail_settings(tmp_path, dovecot, user, smtp_sink.port)
    first, second = unit_lists(settings, reference, user, 2)
    poisoned = b"Authentication-Results: ; dmarc=pass\r\n" + first.as_bytes()
    dovecot.deliver(user, poisoned, second)
    result = poll(settings)
    assert result.errors == []
    store = open_store(settings.paths.data_dir)
    try:
        statuses = [r["status"] for r in store.query("SELECT status FROM messages ORDER BY uid")]
    finally:
        store.close()
    # The nameless header is no verdict; Gmail's own one below it is read; both are filed.
    assert statuses == ["accepted", "accepted"]
    assert dovecot.uids(user, "INBOX") == []


def test_a_message_that_fails_every_time_is_set_aside_and_the_rest_go_on(
        tmp_path, dovecot, smtp_sink, reference, monkeypatch):
    """Item 8: any exception for one message: the others are filed in the same cycle; the
    failing one is retried, then held for staff with its error and moved to review."""
    user = dovecot.add_user()
    settings = mail_settings(tmp_path, dovecot, user, smtp_sink.port)
    messages = unit_lists(settings, reference, user, 3)
    dovecot.deliver(user, *messages)
    poisoned = messages[1]["Message-ID"]
    original = Pipeline.decide

    def decide(self, raw, received):
        if parse(raw)["Message-ID"] == poisoned:
            raise RecursionError("a pathological message")
        return original(self, raw, received)

    monkeypatch.setattr(Pipeline, "decide", decide)
    first = poll(settings)
    assert len(first.errors) == 1 and "RecursionError" in first.errors[0]
    assert first.statuses == {"accepted": 2}
    for _ in range(settings.mailbox.max_attempts - 1):
        poll(settings)
    store = open_store(settings.paths.data_dir)
    try:
        row = store.one("SELECT * FROM messages WHERE message_id=?", (poisoned,))
    finally:
        store.close()
    assert row["status"] == "held" and "RecursionError" in row["error"]
    assert len(dovecot.uids(user, "Intake/Review")) == 1
    assert len(dovecot.uids(user, "Intake/Processed")) == 2
    replies_once(smtp_sink, 2)


def test_long_vietnamese_file_name_is_filed_and_answered(tmp_path, dovecot, smtp_sink,
                                                         reference):
    """Item 10: 79 × "ệ" made the archive path longer than 255 bytes: held, no reply."""
    user = dovecot.add_user()
    settings = mail_settings(tmp_path, dovecot, user, smtp_sink.port)
    unit = reference.units["TPBT"]
    data = form(settings, reference, unit, eligible_rows(settings, reference, unit))
    dovecot.deliver(user, unit_mail(unit.emails[0], user, "DS",
                                    attachments=[("ệ" * 79 + ".xlsx", data)]))
    result = poll(settings)
    assert result.errors == [] and result.statuses == {"accepted": 1}
    replies_once(smtp_sink, 1)
    [stored] = (settings.paths.data_dir / "archive" / "files").iterdir()
    assert len(stored.name.encode()) <= 255 and stored.read_bytes() == data


def test_control_character_in_a_csv_cell_still_gets_a_marked_up_reply(tmp_path, dovecot,
                                                                       smtp_sink, reference):
    """Item 10: a CSV cell holding \\x01 made the marked-up copy fail: held, no reply."""
    user = dovecot.add_user()
    settings = mail_settings(tmp_path, dovecot, user, smtp_sink.port)
    unit = reference.units["TPBT"]
    [row] = eligible_rows(settings, reference, unit, limit=1)
    header = ("STT,\"Xã, phường, thị trấn\",Tên Chi đoàn,Số lượng đoàn viên,Chi bộ ấp,"
              "Năm được công nhận TSVMTD,Đăng ký TSVMTD năm 2021,Cấp tỉnh,Cấp huyện,"
              "Năm đạt Chi đoàn kiểu mẫu cấp huyện,Họ và tên,Số điện thoại,Ghi chú")
    values = ["" if v is None else str(v) for v in row]
    values[3] = "3"  # below the minimum: an error, so the reply carries the marked-up file
    values[12] = "ghi\x01chú"
    text = header + "\n" + ",".join(f'"{v}"' for v in values) + "\n"
    message = unit_mail(unit.emails[0], user, "DS", attachments=[])
    message.add_attachment(text.encode(), maintype="text", subtype="csv", filename="ds.csv")
    dovecot.deliver(user, message)
    result = poll(settings)
    assert result.errors == [] and result.statuses == {"needs-correction": 1}
    [reply] = smtp_sink.messages
    names = [part.get_filename() for part in reply.iter_attachments()]
    assert names == ["ds_can-sua.xlsx"]


# -- smaller -------------------------------------------------------------------------------


def test_message_deleted_before_its_body_is_fetched_is_recorded_as_missing(
        tmp_path, dovecot, smtp_sink, reference, monkeypatch):
    """Item 12: it was logged as "thư quá lớn (0 MB)"."""
    user = dovecot.add_user()
    settings = mail_settings(tmp_path, dovecot, user, smtp_sink.port)
    dovecot.deliver(user, *unit_lists(settings, reference, user, 2))
    original = imaplib.IMAP4.uid

    def uid(self, command, *args):
        if command == "FETCH" and "BODY.PEEK[]" in str(args[-1]):
            other = dovecot.client(user)  # another mail program deletes the first message
            other.select("INBOX")
            other.uid("STORE", "1", "+FLAGS", r"(\Deleted)")
            other.expunge()
            other.logout()
            monkeypatch.setattr(imaplib.IMAP4, "uid", original)
        return original(self, command, *args)

    monkeypatch.setattr(imaplib.IMAP4, "uid", uid)
    result = poll(settings)
    assert result.errors == []
    store = open_store(settings.paths.data_dir)
    try:
        gone, kept = store.query("SELECT * FROM messages ORDER BY uid")
    finally:
        store.close()
    assert gone["status"] == "ignored" and "bị xóa" in gone["detail"]
    assert "quá lớn" not in gone["detail"]
    assert kept["status"] == "accepted"


def test_a_local_disk_error_is_not_reported_as_an_imap_failure(tmp_path, dovecot, smtp_sink,
                                                               reference):
    """Item 14: a local OSError read "IMAP connection lost … check [mailbox] host"."""
    _user, _settings, config = command_line_mailbox(tmp_path, dovecot, smtp_sink, reference,
                                                  1)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "archive").write_text("not a folder")  # archive writes fail
    done = subprocess.run([sys.executable, "-m", "intake", "--config", str(config), "poll"],
                          env={**os.environ, "TEST_IMAP_PASSWORD": dovecot.password},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"error: cannot write {tmp_path / 'data' / 'archive'}")
    assert "IMAP" not in line and "[mailbox]" not in line
    assert "data_dir" in line  # the hint points at what to fix


def test_first_start_leaves_old_mail_alone_until_backlog_is_asked_for(
        tmp_path, dovecot, smtp_sink, reference):
    """Item 15: a first start on a mailbox of old mail answered all of it."""
    user = dovecot.add_user()
    settings = mail_settings(tmp_path, dovecot, user, smtp_sink.port,
                             mailbox={"start_from": "now"})
    old = unit_lists(settings, reference, user, 3)
    dovecot.deliver(user, *old, when=datetime.now().astimezone() - timedelta(days=30))
    first = poll(settings)
    assert first.fetched == 0 and smtp_sink.messages == []
    assert len(dovecot.uids(user, "INBOX")) == 3
    new = unit_lists(settings, reference, user, 1, code="CT")
    dovecot.deliver(user, *new, when=datetime.now().astimezone())
    assert poll(settings).statuses == {"accepted": 1}
    # After a renumbering the old mail is still left alone.
    dovecot.renumber(user)
    assert poll(settings).fetched == 0
    # The operator takes the old mail deliberately.
    pipeline = Pipeline(settings)
    try:
        backlog = pipeline.run_cycle(password=dovecot.password, backlog=True)
    finally:
        pipeline.store.close()
    assert backlog.fetched == 3
    assert dovecot.uids(user, "INBOX") == []
    replies_once(smtp_sink, 4)


def test_start_from_a_date_takes_mail_from_that_day_on(tmp_path, dovecot, smtp_sink,
                                                       reference):
    user = dovecot.add_user()
    settings = mail_settings(tmp_path, dovecot, user, smtp_sink.port,
                             mailbox={"start_from": "2021-02-01"})
    before, after = unit_lists(settings, reference, user, 2)
    dovecot.deliver(user, before, when=datetime(2021, 1, 30, 9, 0).astimezone())
    dovecot.deliver(user, after, when=datetime(2021, 2, 2, 9, 0).astimezone())
    result = poll(settings)
    assert result.fetched == 1
    [reply] = smtp_sink.messages
    assert reply["In-Reply-To"] == after["Message-ID"]


def test_unknown_sender_that_fails_the_sender_check_gets_no_reply(tmp_path, dovecot,
                                                                  smtp_sink):
    """Item 15: no backscatter to forged addresses."""
    user = dovecot.add_user()
    settings = mail_settings(tmp_path, dovecot, user, smtp_sink.port)
    dovecot.deliver(user, unit_mail("victim@example.net", user, "DS", auth="fail"))
    result = poll(settings)
    assert result.statuses == {"unknown-sender": 1}
    assert smtp_sink.messages == []
    assert len(dovecot.uids(user, "Intake/Review")) == 1


def _intake(config: Path, *args: str, password: str, umask: int | None = None
            ) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "intake", "--config", str(config), *args],
                          env={**os.environ, "TEST_IMAP_PASSWORD": password},
                          capture_output=True, text=True, timeout=120,
                          preexec_fn=(lambda: os.umask(umask)) if umask is not None else None)


@pytest.mark.parametrize("damage", ["truncated", "deleted", "garbled"])
def test_a_lost_or_damaged_store_is_refused_never_silently_reset(tmp_path, dovecot, smtp_sink,
                                                                  reference, damage):
    """Item 7: a store truncated to 0 bytes was silently replaced by an empty one."""
    user, settings, config = command_line_mailbox(tmp_path, dovecot, smtp_sink, reference,
                                                  2)
    assert _intake(config, "poll", password=dovecot.password).returncode == 0
    data = tmp_path / "data"
    store = data / "intake.sqlite3"
    workbook = (data / "TongHop.xlsx").read_bytes()
    if damage == "truncated":
        store.write_bytes(b"")
    elif damage == "deleted":
        store.unlink()
    else:
        raw = bytearray(store.read_bytes())
        raw[100:4096] = b"\xff" * (4096 - 100)  # the schema page overwritten
        store.write_bytes(bytes(raw))
    dovecot.deliver(user, *unit_lists(settings, reference, user, 1, code="CT"))
    for command, code in (("poll", 1), ("status", 2), ("rebuild", 2)):
        done = _intake(config, command, password=dovecot.password)
        assert done.returncode == code, done.stderr
        [line] = done.stderr.strip().splitlines()  # one line, no traceback
        assert line.startswith(f"error: the state store {store} is ")
        assert "restore intake.sqlite3 from a backup" in line
    assert (data / "TongHop.xlsx").read_bytes() == workbook  # not rebuilt from nothing
    assert len(dovecot.uids(user, "INBOX")) == 1  # the new message waits, untouched


def test_personal_data_is_group_readable_and_private_to_others(tmp_path, dovecot, smtp_sink,
                                                               reference):
    """Item 13: the store and archive were world-readable, the workbook 0600."""
    _user, _settings, config = command_line_mailbox(tmp_path, dovecot, smtp_sink, reference,
                                                  1)
    done = _intake(config, "poll", password=dovecot.password, umask=0o022)  # a shell default
    assert done.returncode == 0, done.stderr
    data = tmp_path / "data"
    files = [data / "intake.sqlite3", data / "TongHop.xlsx",
             *(data / "archive").rglob("*")]
    assert len(files) >= 4
    for path in files:
        mode = path.stat().st_mode & 0o777
        assert mode == (0o750 if path.is_dir() else 0o640), (path, oct(mode))
    assert data.stat().st_mode & 0o777 == 0o750


class TrickleProxy:
    """A sick server: a TCP proxy to Dovecot that, once the client has sent ``trigger``
    (or from the first byte when None), passes the server's answer one byte a second."""

    def __init__(self, target_port: int, trigger: bytes | None) -> None:
        import socket

        from intake.demo import free_port

        self.target_port, self.trigger = target_port, trigger
        self.port = free_port()
        self.listener = socket.create_server(("127.0.0.1", self.port))
        self.stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket

        while not self.stop.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target_port))
            trickling = threading.Event()
            if self.trigger is None:
                trickling.set()
            threading.Thread(target=self._up, args=(client, server, trickling), daemon=True).start()
            threading.Thread(target=self._down, args=(server, client, trickling),
                             daemon=True).start()

    def _up(self, client, server, trickling: threading.Event) -> None:
        seen = b""
        while data := _recv(client):
            seen = (seen + data)[-200:]
            if self.trigger and self.trigger in seen:
                trickling.set()
            server.sendall(data)

    def _down(self, server, client, trickling: threading.Event) -> None:
        while not self.stop.is_set() and (data := _recv(server)):
            try:
                if trickling.is_set():
                    for byte in data:
                        client.sendall(bytes([byte]))
                        if self.stop.wait(1.0):
                            return
                else:
                    client.sendall(data)
            except OSError:
                return

    def close(self) -> None:
        self.stop.set()
        self.listener.close()


def _recv(sock) -> bytes:
    try:
        return sock.recv(65536)
    except OSError:
        return b""


@pytest.mark.parametrize("trigger,what", [(None, "IMAP login"), (b"UID SEARCH", "UID SEARCH")],
                         ids=["greeting", "command"])
def test_a_server_trickling_bytes_cannot_hold_a_cycle(tmp_path, dovecot, smtp_sink, reference,
                                                      trigger, what):
    """Item 11: each IMAP command (the login too) has a total deadline, not only a
    per-read timeout that one byte every few seconds never trips."""
    from intake.errors import MailboxError

    user = dovecot.add_user()
    proxy = TrickleProxy(dovecot.plain_port, trigger)
    settings = mail_settings(tmp_path, dovecot, user, smtp_sink.port,
                             mailbox={"port": proxy.port, "timeout_seconds": 5,
                                      "deadline_seconds": 2})
    outcome: dict[str, object] = {}

    def cycle() -> None:
        started = time.monotonic()
        try:
            poll(settings)
        except MailboxError as exc:
            outcome["error"] = str(exc)
        outcome["seconds"] = time.monotonic() - started

    try:
        worker = threading.Thread(target=cycle, daemon=True)
        worker.start()
        worker.join(30)
        assert not worker.is_alive(), "the cycle was still held by the server after 30 s"
    finally:
        proxy.close()
    assert what in str(outcome["error"]) and "deadline of 2 s" in str(outcome["error"])
    assert outcome["seconds"] < 6


def test_every_query_of_a_cycle_is_served_by_an_index(tmp_path, dovecot, smtp_sink, reference):
    """Issue 11 (scale): no full scan of rows or findings in the cycle (EXPLAIN QUERY PLAN of
    every statement a real cycle ran, with its values)."""
    import sqlite3

    user = dovecot.add_user()
    settings = mail_settings(tmp_path, dovecot, user, smtp_sink.port)
    dovecot.deliver(user, *unit_lists(settings, reference, user, 2),
                    *unit_lists(settings, reference, user, 1, code="CT"))
    poll(settings)  # something to find in the second cycle
    dovecot.deliver(user, *unit_lists(settings, reference, user, 1, code="CL"))
    statements: list[str] = []
    pipeline = Pipeline(settings)
    try:
        pipeline.store.db.set_trace_callback(statements.append)
        pipeline.run_cycle(password=dovecot.password)
    finally:
        pipeline.store.close()
    db = sqlite3.connect(settings.paths.data_dir / "intake.sqlite3")
    for name in ("intake_unit_rank", "intake_commune_rank"):  # the workbook's sort keys
        db.create_function(name, 1, lambda _value: 0)
    scans = set()
    checked = 0
    for sql in statements:
        if not sql.lstrip().upper().startswith(("SELECT", "UPDATE", "DELETE")):
            continue
        checked += 1
        for *_ids, detail in db.execute(f"EXPLAIN QUERY PLAN {sql}"):
            if detail.startswith("SCAN") and detail.split()[1] in ("rows", "findings"):
                scans.add(f"{detail} ← {sql[:160]}")
    db.close()
    assert checked > 20
    assert scans == set()


def test_a_quiet_cycle_does_not_rebuild_the_workbook(tmp_path, dovecot, smtp_sink, reference):
    """Issue 11 (scale): every quiet poll rebuilt the workbook (~40 s at 105k rows)."""
    user = dovecot.add_user()
    settings = mail_settings(tmp_path, dovecot, user, smtp_sink.port)
    dovecot.deliver(user, *unit_lists(settings, reference, user, 1))
    poll(settings)
    before = settings.paths.workbook.stat().st_mtime_ns
    quiet = poll(settings)
    assert quiet.fetched == 0 and settings.paths.workbook.stat().st_mtime_ns == before
    dovecot.deliver(user, *unit_lists(settings, reference, user, 1, code="CT"))
    poll(settings)
    assert settings.paths.workbook.stat().st_mtime_ns != before
