"""The outbox under pressure, against real SMTP servers on loopback (aiosmtpd, and small
socket servers for what aiosmtpd will not do: a 421 banner, a server trickling bytes).

Two senders at once, a sender that died holding a claim, a refused login, an unreachable
server, days of temporary refusals, and a total deadline per send.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sqlite3
import ssl
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from intake.demo import free_port
from intake.mail import smtp
from intake.store import MIGRATIONS, SCHEMA_VERSION, open_store

from .conftest import make_cert, make_settings, reply

STAFF = "canbo@example.org"
PASSWORD = "s3cret-app-password"


def outbox_settings(base: Path, port: int, *, staff: bool = True, **smtp_keys):
    keys = {"host": "127.0.0.1", "port": port, "security": "none", "username": "",
            "from_address": "ban@example.org", "max_replies_per_hour": 0, **smtp_keys}
    return make_settings(base, smtp=keys, rules={"staff": [STAFF] if staff else []})


def fill(settings, count: int) -> list[str]:
    """Queue ``count`` replies; returns their Message-IDs."""
    store = open_store(settings.paths.data_dir)
    ids = []
    for number in range(count):
        message = reply(settings, to=f"hd{number}@example.org")
        smtp.queue(store, None, "accepted", message, "accepted")
        ids.append(str(message["Message-ID"]))
    store.close()
    return ids


def rows(settings, where: str = "kind != 'alert'") -> list[sqlite3.Row]:
    store = open_store(settings.paths.data_dir)
    try:
        return store.query(f"SELECT * FROM outbox WHERE {where} ORDER BY id")
    finally:
        store.close()


def deliver(settings, now: datetime) -> dict[str, int]:
    store = open_store(settings.paths.data_dir)
    try:
        return smtp.deliver(store, settings, now)
    finally:
        store.close()


class Recording:
    """Keeps every message; a little slow, as a real server is, so senders interleave."""

    def __init__(self, delay: float = 0.005) -> None:
        self.delay = delay
        self.raw: list[bytes] = []

    async def handle_DATA(self, server, session, envelope):
        await asyncio.sleep(self.delay)
        self.raw.append(envelope.original_content or envelope.content)
        return "250 OK"

    def message_ids(self) -> Counter:
        return Counter(str(message_from_bytes(raw, policy=policy.default)["Message-ID"])
                       for raw in self.raw)

    def kinds(self) -> Counter:
        return Counter(str(message_from_bytes(raw, policy=policy.default)["X-Intake-Kind"])
                       for raw in self.raw)


@contextmanager
def aiosmtpd(handler, **options) -> Iterator[Controller]:
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(), **options)
    controller.start()
    try:
        yield controller
    finally:
        controller.stop()


# -- 1. claim before send ------------------------------------------------------------------


def test_two_threads_deliver_a_backlog_of_60_exactly_once(tmp_path):
    handler = Recording()
    with aiosmtpd(handler) as server:
        settings = outbox_settings(tmp_path, server.port)
        ids = fill(settings, 60)
        start = threading.Barrier(2)
        results: list[dict[str, int]] = []

        def job() -> None:
            store = open_store(settings.paths.data_dir)
            start.wait()
            results.append(smtp.deliver(store, settings))
            store.close()

        threads = [threading.Thread(target=job) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    received = handler.message_ids()
    assert set(received) == set(ids)
    assert [m for m, n in received.items() if n > 1] == []  # no reply sent twice
    assert sum(r["sent"] for r in results) == 60
    assert all(r["sent"] > 0 for r in results), results  # both really took part
    assert {r["state"] for r in rows(settings)} == {"sent"}


CHILD = """
import json, sys, time
from pathlib import Path
from intake.config import Settings
from intake.mail import smtp
from intake.store import open_store
settings = Settings.model_validate_json(sys.argv[1])
go = Path(sys.argv[2])
store = open_store(settings.paths.data_dir)
print("ready", flush=True)
while not go.exists():
    time.sleep(0.005)
print(json.dumps(smtp.deliver(store, settings)), flush=True)
"""


def test_two_processes_deliver_a_backlog_of_60_exactly_once(tmp_path):
    handler = Recording()
    with aiosmtpd(handler) as server:
        settings = outbox_settings(tmp_path, server.port)
        ids = fill(settings, 60)
        go = tmp_path / "go"
        children = [subprocess.Popen([sys.executable, "-c", CHILD, settings.model_dump_json(),
                                      str(go)], stdout=subprocess.PIPE, text=True)
                    for _ in range(2)]
        for child in children:
            assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        go.touch()
        results = [json.loads(child.communicate(timeout=60)[0]) for child in children]
    received = handler.message_ids()
    assert set(received) == set(ids)
    assert [m for m, n in received.items() if n > 1] == []
    assert sum(r["sent"] for r in results) == 60
    assert {r["state"] for r in rows(settings)} == {"sent"}


def test_a_dead_senders_claim_is_requeued_a_live_one_is_left_alone(tmp_path, caplog):
    handler = Recording()
    with aiosmtpd(handler) as server:
        settings = outbox_settings(tmp_path, server.port)
        dead, live = fill(settings, 2)
        now = datetime.now(UTC)
        store = open_store(settings.paths.data_dir)
        for message_id, age in ((dead, timedelta(hours=2)), (live, timedelta(minutes=1))):
            store.db.execute("UPDATE outbox SET state='sending', claimed_at=?, claimed_by=?"
                             " WHERE message_id=?",
                             ((now - age).isoformat(timespec="seconds"), "host/4242/poll",
                              message_id))
        store.close()
        assert deliver(settings, now)["sent"] == 1
    assert list(handler.message_ids()) == [dead]
    states = {r["message_id"]: r["state"] for r in rows(settings)}
    assert states == {dead: "sent", live: "sending"}
    assert "claimed by host/4242/poll" in caplog.text and "queued again" in caplog.text


def test_a_claim_of_a_killed_process_on_this_host_is_requeued_at_once(tmp_path):
    """A SIGKILL between claim and record: the reply goes out at the next round, not after
    the 30-minute claim timeout (the process is known to be gone)."""
    handler = Recording()
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    with aiosmtpd(handler) as server:
        settings = outbox_settings(tmp_path, server.port)
        [orphan] = fill(settings, 1)
        store = open_store(settings.paths.data_dir)
        store.db.execute("UPDATE outbox SET state='sending', claimed_at=?, claimed_by=?",
                         (datetime.now(UTC).isoformat(timespec="seconds"),
                          f"{socket.gethostname()}/{gone}/poll"))
        store.close()
        assert deliver(settings, datetime.now(UTC))["sent"] == 1
    assert list(handler.message_ids()) == [orphan]


def test_a_store_of_schema_1_is_migrated_and_its_queue_still_sent(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    db = sqlite3.connect(data / "intake.sqlite3", isolation_level=None)
    for statement in MIGRATIONS[1].split(";"):
        if statement.strip():
            db.execute(statement)
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
    db.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    db.execute("INSERT INTO outbox(kind, recipient, subject, message_id, raw, next_attempt_at,"
               " created_at) VALUES ('accepted', 'hd@example.org', 's', '<old@example.org>',"
               " ?, '2021-02-10T00:00:00+00:00', '2021-02-10T00:00:00+00:00')",
               (b"Subject: s\r\nMessage-ID: <old@example.org>\r\n\r\nbody\r\n",))
    db.close()
    handler = Recording()
    with aiosmtpd(handler) as server:
        settings = outbox_settings(tmp_path, server.port)
        store = open_store(settings.paths.data_dir)
        assert store.version == SCHEMA_VERSION
        store.close()
        assert deliver(settings, datetime.now(UTC))["sent"] == 1
    assert list(handler.message_ids()) == ["<old@example.org>"]


# -- 2. server failures are not the reply's fault ------------------------------------------


class Gatekeeper:
    """An aiosmtpd authenticator that refuses every login until told otherwise."""

    def __init__(self) -> None:
        self.accept = False
        self.tries = 0

    def __call__(self, server, session, envelope, mechanism, auth_data):
        self.tries += 1
        return AuthResult(success=self.accept, handled=False)  # aiosmtpd answers 535


def test_refused_login_keeps_every_reply_queued_and_alerts_staff_once(tmp_path, monkeypatch,
                                                                      caplog):
    monkeypatch.setenv("TEST_SMTP_PASSWORD", PASSWORD)
    handler, gate = Recording(), Gatekeeper()
    with aiosmtpd(handler, authenticator=gate, auth_require_tls=False) as server:
        settings = outbox_settings(tmp_path, server.port, username="ban@example.org",
                                   password_env="TEST_SMTP_PASSWORD")
        ids = fill(settings, 5)
        now = datetime.now(UTC)
        assert deliver(settings, now) == {"sent": 0, "deferred": 1, "failed": 0, "limited": 0}
        assert deliver(settings, now + timedelta(seconds=30))["deferred"] == 0  # resting
        for hours in range(1, 4):  # three more hours of a wrong password
            assert deliver(settings, now + timedelta(hours=hours))["failed"] == 0
        replies = rows(settings)
        assert {(r["state"], r["attempts"]) for r in replies} == {("queued", 0)}
        assert replies[0]["last_error"].startswith("535")
        [alert] = rows(settings, "kind = 'alert'")  # one alert for the whole incident
        assert alert["recipient"] == STAFF and alert["state"] == "queued"
        store = open_store(settings.paths.data_dir)
        lines = smtp.status_lines(store)
        store.close()
        assert any("Máy chủ gửi thư đang gặp sự cố (đăng nhập)" in line for line in lines)

        gate.accept = True  # staff fixed the password
        assert deliver(settings, now + timedelta(hours=4))["sent"] == 6
    assert set(handler.message_ids()) == {*ids, alert["message_id"]}
    [sent_alert] = [message_from_bytes(r, policy=policy.default) for r in handler.raw
                    if b"X-Intake-Kind: alert" in r]
    text = sent_alert.get_body(("plain",)).get_content()
    assert "từ chối đăng nhập" in text and "TEST_SMTP_PASSWORD" in text
    assert PASSWORD not in caplog.text and PASSWORD not in text
    assert "SMTP login failure" in caplog.text


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_authentication_required_at_mail_from_is_a_login_failure(tmp_path):
    handler = Recording()
    with aiosmtpd(handler, authenticator=Gatekeeper(), auth_require_tls=False,
                  auth_required=True) as server:
        settings = outbox_settings(tmp_path, server.port)  # no username: never logs in
        fill(settings, 3)
        assert deliver(settings, datetime.now(UTC))["failed"] == 0
    assert {(r["state"], r["attempts"]) for r in rows(settings)} == {("queued", 0)}
    store = open_store(settings.paths.data_dir)
    assert store.one("SELECT 1 FROM events WHERE kind LIKE 'alert:smtp:login:%'")
    store.close()


@contextmanager
def loopback_server(session, stop: threading.Event | None = None) -> Iterator[int]:
    """A server on a free loopback port running ``session(conn)`` for each connection in
    its own thread; yields the port."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = stop or threading.Event()

    def serve() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=session, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        listener.close()


@contextmanager
def banner_server(banner: bytes) -> Iterator[int]:
    """Answers each connection with ``banner`` and hangs up (e.g. 421 at connect)."""

    def session(conn: socket.socket) -> None:
        with conn:
            conn.sendall(banner)

    with loopback_server(session) as port:
        yield port


@contextmanager
def unreachable(how: str) -> Iterator[dict]:
    if how == "refused":
        yield {"port": free_port()}
    elif how == "tls":
        with aiosmtpd(Recording()) as server:  # plain SMTP where TLS is expected
            yield {"port": server.port, "security": "ssl"}
    else:
        with banner_server(b"421 4.3.2 Service not available, closing channel\r\n") as port:
            yield {"port": port}


@pytest.mark.parametrize("how", ["refused", "tls", "421"])
def test_connection_failures_never_fail_a_reply(tmp_path, how):
    with unreachable(how) as where:
        port = where.pop("port")
        settings = outbox_settings(tmp_path, port, timeout_seconds=2, **where)
        fill(settings, 3)
        now = datetime.now(UTC)
        for hours in range(0, 30, 3):  # days of outage would be the same
            deliver(settings, now + timedelta(hours=hours))
    replies = rows(settings)
    assert {(r["state"], r["attempts"]) for r in replies} == {("queued", 0)}
    assert replies[0]["last_error"]
    store = open_store(settings.paths.data_dir)
    alerts = store.query("SELECT kind FROM events WHERE kind LIKE 'alert:smtp:%'")
    store.close()
    assert [a["kind"].rsplit(":", 1)[0] for a in alerts] == ["alert:smtp:connect"]


def test_sender_address_refused_is_the_servers_problem_not_the_replys(tmp_path):
    class RefuseSender(Recording):
        async def handle_MAIL(self, server, session, envelope, address, options):
            return "553 5.7.1 Sender address rejected: not owned by user"

    with aiosmtpd(RefuseSender()) as server:
        settings = outbox_settings(tmp_path, server.port)
        fill(settings, 2)
        assert deliver(settings, datetime.now(UTC))["failed"] == 0
    assert {r["state"] for r in rows(settings)} == {"queued"}
    [alert] = rows(settings, "kind = 'alert'")
    assert b"ban@example.org" in alert["raw"] or alert["subject"]


class Refusing(Recording):
    """Answers DATA with a fixed SMTP code for ever."""

    def __init__(self, answer: str) -> None:
        super().__init__(0)
        self.answer = answer
        self.tries = 0

    async def handle_DATA(self, server, session, envelope):
        self.tries += 1
        return self.answer


def test_temporary_refusal_is_retried_for_days_then_failed(tmp_path):
    handler = Refusing("451 4.3.0 Mail server temporarily rejected message")
    with aiosmtpd(handler) as server:
        settings = outbox_settings(tmp_path, server.port, give_up_after_hours=72)
        fill(settings, 1)
        start = datetime.now(UTC)
        now = start
        while now < start + timedelta(hours=71):
            assert deliver(settings, now)["failed"] == 0
            now += timedelta(minutes=50)
        [row] = rows(settings)
        assert row["state"] == "queued" and row["attempts"] > 20
        gap = (datetime.fromisoformat(row["next_attempt_at"])
               - datetime.fromisoformat(row["last_attempt_at"]))
        assert gap == smtp.BACKOFF_CAP  # back-off capped at an hour
        assert deliver(settings, start + timedelta(hours=73))["failed"] == 1
    [row] = rows(settings)
    assert row["state"] == "failed"
    assert row["last_error"].startswith("451") and "72 giờ" in row["last_error"]
    assert handler.tries == row["attempts"]


def test_permanent_refusal_fails_at_once(tmp_path):
    handler = Refusing("550 5.1.1 The email account that you tried to reach does not exist")
    with aiosmtpd(handler) as server:
        settings = outbox_settings(tmp_path, server.port)
        fill(settings, 2)
        assert deliver(settings, datetime.now(UTC))["failed"] == 2
    assert {r["state"] for r in rows(settings)} == {"failed"}
    store = open_store(settings.paths.data_dir)
    assert store.one("SELECT 1 FROM events WHERE kind LIKE 'alert:smtp:%'") is None
    store.close()


# -- 3. a total deadline per send ----------------------------------------------------------


@contextmanager
def trickling_server(slow: str, delay: float = 1.0) -> Iterator[int]:
    """A minimal SMTP server that sends the banner (``slow="banner"``) or its answer to
    the message (``slow="data"``) one byte every ``delay`` seconds."""
    stop = threading.Event()

    def say(conn: socket.socket, text: str, trickle: bool) -> None:
        if not trickle:
            conn.sendall(text.encode())
            return
        for byte in text.encode():
            if stop.wait(delay):
                return
            conn.sendall(bytes([byte]))

    def session(conn: socket.socket) -> None:
        with conn:
            try:
                say(conn, "220 trickle.example.org ESMTP\r\n", slow == "banner")
                lines = conn.makefile("rb")
                for line in lines:
                    verb = line[:4].upper()
                    if verb == b"EHLO":
                        say(conn, "250-trickle.example.org\r\n250 8BITMIME\r\n", False)
                    elif verb == b"DATA":
                        say(conn, "354 go ahead\r\n", False)
                        while lines.readline() not in (b".\r\n", b""):
                            pass
                        say(conn, "250 2.0.0 queued\r\n", slow == "data")
                    elif verb == b"QUIT":
                        say(conn, "221 bye\r\n", False)
                        return
                    else:
                        say(conn, "250 OK\r\n", False)
            except OSError:
                return  # the client cut us off: exactly what is tested

    with loopback_server(session, stop) as port:
        yield port


@pytest.mark.parametrize("slow, attempts", [("banner", 0), ("data", 1)])
def test_a_trickling_server_is_cut_off_at_the_deadline(tmp_path, slow, attempts):
    with trickling_server(slow) as port:
        # Each byte comes well within the 2 s socket timeout: only the total deadline helps.
        settings = outbox_settings(tmp_path, port, timeout_seconds=2, send_deadline_seconds=3)
        fill(settings, 2)
        started = time.monotonic()
        counts = deliver(settings, datetime.now(UTC))
        elapsed = time.monotonic() - started
    assert 3 <= elapsed < 3 + 1.5, elapsed
    assert counts["sent"] == 0 and counts["deferred"] == 1  # the round stopped
    replies = rows(settings)
    assert {r["state"] for r in replies} == {"queued"}
    assert [r["attempts"] for r in replies] == [attempts, 0]  # the connection, or the reply
    assert "exceeded its deadline of 3 s" in replies[0]["last_error"]
    assert f"127.0.0.1:{port}" in replies[0]["last_error"]


@contextmanager
def silent_server() -> Iterator[int]:
    """Accepts connections and never says a word (no banner, no TLS handshake)."""
    held: list[socket.socket] = []
    try:
        with loopback_server(held.append) as port:
            yield port
    finally:
        for conn in held:
            conn.close()


@pytest.mark.parametrize("security", ["none", "ssl"])
def test_a_silent_server_is_cut_off_even_in_the_tls_handshake(tmp_path, security):
    with silent_server() as port:
        settings = outbox_settings(tmp_path, port, security=security, timeout_seconds=10,
                                   send_deadline_seconds=1)
        fill(settings, 1)
        started = time.monotonic()
        deliver(settings, datetime.now(UTC))
        elapsed = time.monotonic() - started
    assert 1 <= elapsed < 1 + 1.5, elapsed
    [row] = rows(settings)
    assert row["state"] == "queued" and "exceeded its deadline of 1 s" in row["last_error"]


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("cert")
    make_cert(folder)
    return folder


@pytest.mark.parametrize("security", ["ssl", "starttls"])
def test_replies_go_out_over_tls_with_the_certificate_checked(tmp_path, certificate, security):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificate / "cert.pem", certificate / "key.pem")
    handler = Recording()
    tls = {"ssl_context": context} if security == "ssl" else {"tls_context": context,
                                                                "require_starttls": True}
    with aiosmtpd(handler, **tls) as server:
        settings = outbox_settings(tmp_path, server.port, security=security,
                                   ca_file=str(certificate / "cert.pem"))
        ids = fill(settings, 2)
        assert deliver(settings, datetime.now(UTC))["sent"] == 2
        other = outbox_settings(tmp_path / "untrusted", server.port, security=security)
        fill(other, 1)  # the system CAs do not know the test certificate
        assert deliver(other, datetime.now(UTC))["sent"] == 0
    assert sorted(handler.message_ids()) == sorted(ids)
    [row] = rows(other)
    assert row["state"] == "queued" and "CERTIFICATE_VERIFY_FAILED" in row["last_error"]
