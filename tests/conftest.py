"""Real servers for the tests: a throwaway Dovecot (plain, STARTTLS and TLS) and aiosmtpd.

Dovecot runs from its own config in a temp folder on ports the OS picks. Mail is stored
as maildir owned by the unprivileged ``mail`` user (Dovecot refuses uid 0), under a
folder every parent of which that user can traverse, with "/" as the hierarchy
separator as on Gmail. In CI (``CI=true``) a missing Dovecot fails the test run.
"""

from __future__ import annotations

import imaplib
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from intake.config import Settings, settings_for
from intake.demo import SavingHandler, free_port
from intake.mail import sync
from intake.mail.imap import Fetched
from intake.pipeline import CycleResult, Pipeline
from intake.reference import Reference, load_reference
from intake.samples import append
from intake.store import open_store

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "config" / "reference"
TEMPLATES = ROOT / "templates"
USERS = 200
ON_TIME = datetime(2021, 2, 10, 9, 0).astimezone()  # before the sample deadline
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def need(program: str) -> str:
    """The path of a system program; fail in CI, skip elsewhere, when it is missing."""
    path = shutil.which(program) or (f"/usr/sbin/{program}" if Path(
        f"/usr/sbin/{program}").exists() else None)
    if path:
        return path
    message = f"{program} is not installed (.ci/run installs it with apt-get)"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


@dataclass
class Dovecot:
    root: Path
    config: Path
    plain_port: int
    tls_port: int
    ca_file: Path
    password: str = "secret"
    _users: itertools.count = field(default_factory=lambda: itertools.count(1))

    def add_user(self) -> str:
        """A fresh, empty mailbox for one test, from the pool written at start.

        (Dovecot re-reads passwd-file by mtime, which has one-second resolution, so
        users appended while it runs may not be seen at once.)
        """
        number = next(self._users)
        if number > USERS:
            raise RuntimeError("test user pool exhausted: raise USERS in conftest.py")
        return f"user{number}@example.org"

    def client(self, user: str) -> imaplib.IMAP4:
        client = imaplib.IMAP4("127.0.0.1", self.plain_port, timeout=10)
        client.login(user, self.password)
        return client

    def renumber(self, user: str, folder: str = "INBOX") -> int:
        """Give ``folder`` a new UIDVALIDITY, as a server restored from backup does."""
        client = self.client(user)
        try:
            status = client.status(folder, "(UIDVALIDITY)")[1][0].decode()
        finally:
            client.logout()
        validity = int(status.rsplit("UIDVALIDITY", 1)[1].strip(" )")) + 1000
        subprocess.run([need("doveadm"), "-c", str(self.config), "mailbox", "update", "-u", user,
                        "--uid-validity", str(validity), folder], check=True, capture_output=True,
                       timeout=30)
        return validity

    def sessions(self, user: str) -> int:
        """How many IMAP connections ``user`` has open now (``doveadm who``)."""
        done = subprocess.run([need("doveadm"), "-c", str(self.config), "who", "-1", user],
                              capture_output=True, text=True, timeout=30)
        return sum(1 for line in done.stdout.splitlines()[1:] if line.startswith(user))

    def idling(self, user: str) -> bool:
        """Whether one of ``user``'s IMAP sessions is in IDLE now: its process title says so
        (``verbose_proctitle``), among this server's processes only."""
        master = (self.root / "run" / "master.pid").read_text().strip()
        titles = subprocess.run(["ps", "-o", "args=", "--ppid", master], capture_output=True,
                                text=True, timeout=30).stdout
        return any(f"[{user} " in title and title.rstrip().endswith(" IDLE]")
                   for title in titles.splitlines())

    def uids(self, user: str, folder: str) -> list[int]:
        """UIDs in one folder of a user's mailbox."""
        client = self.client(user)
        try:
            client.select(f'"{folder}"', readonly=True)
            return [int(u) for u in client.uid("SEARCH", "ALL")[1][0].split()]
        finally:
            client.logout()

    def deliver(self, user: str, *messages: EmailMessage | bytes,
                when: datetime = ON_TIME) -> None:
        """APPEND messages to the user's INBOX with INTERNALDATE ``when``."""
        client = self.client(user)
        try:
            for message in messages:
                append(client, "INBOX", message, when)
        finally:
            client.logout()


CONFIG = """
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
info_log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = yes
ssl_cert = <{root}/cert.pem
ssl_key = <{root}/key.pem
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
verbose_proctitle = yes
first_valid_uid = 1
mail_location = maildir:~/Maildir:LAYOUT=fs
namespace inbox {{
  inbox = yes
  separator = /
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = uid=mail gid=mail home={root}/home/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {plain}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
  # No growing penalty for failed logins from one address: the tests fail logins on
  # purpose, one after another, from 127.0.0.1 (auth_failure_delay covers the first).
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
"""


def wait_until(condition: Callable[[], bool], seconds: float, every: float = 0.05) -> bool:
    """Poll ``condition`` until it holds (True) or ``seconds`` have passed (False)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(every)
    return True


def refuses(port: int) -> bool:
    """Nothing listens on the loopback port any more."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return False
    except OSError:
        return True


def _wait_for(port: int, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    text = log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"
    raise RuntimeError(f"Dovecot did not listen on {port}: {text}")


def make_cert(folder: Path) -> None:
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-keyout", str(folder / "key.pem"), "-out", str(folder / "cert.pem"),
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True)


@contextmanager
def running_dovecot(binary: str, extra: str = "",
                    files: dict[str, str] | None = None) -> Iterator[Dovecot]:
    """A throwaway Dovecot (plain + TLS on free ports) for tests and benchmarks.

    ``extra`` is appended to the configuration ("{root}" is its folder); ``files`` are
    written into that folder before the server starts.
    """
    # Under /tmp, not pytest's 0700 tmp: the mail user must traverse every parent.
    root = Path(tempfile.mkdtemp(prefix="intake-dovecot-", dir="/tmp"))
    root.chmod(0o755)
    make_cert(root)
    (root / "passwd").write_text("".join(
        f"user{n}@example.org:{{PLAIN}}secret\n" for n in range(1, USERS + 1)))
    (root / "passwd").chmod(0o644)  # read by Dovecot's auth user, whatever our umask is
    (root / "home").mkdir()
    mail = pwd.getpwnam("mail")
    os.chown(root / "home", mail.pw_uid, mail.pw_gid)
    plain, tls = free_port(), free_port()
    config = root / "dovecot.conf"
    for name, text in (files or {}).items():
        (root / name).write_text(text)
    config.write_text(CONFIG.format(root=root, plain=plain, tls=tls)
                      + extra.replace("{root}", str(root)))
    # The daemon inherits our descriptors: pipes would never close, so output goes to a file.
    with (root / "start.log").open("w") as out:
        started = subprocess.run([binary, "-c", str(config)], stdin=subprocess.DEVNULL,
                                 stdout=out, stderr=subprocess.STDOUT, timeout=30)
    if started.returncode != 0:
        raise RuntimeError(f"dovecot failed to start: {(root / 'start.log').read_text()}")
    try:
        _wait_for(plain, 10, root / "dovecot.log")
        _wait_for(tls, 10, root / "dovecot.log")
        yield Dovecot(root, config, plain, tls, root / "cert.pem")
    finally:
        subprocess.run([binary, "-c", str(config), "stop"], stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
        log = root / "dovecot.log"
        text = log.read_text(errors="replace") if log.exists() else ""
        if any(word in text for word in ("Fatal:", "Panic:", "Error:")):  # keep the evidence
            shutil.copy(log, Path(tempfile.gettempdir()) / f"{root.name}-failed.log")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(autouse=True)
def _umask_restored() -> Iterator[None]:
    """``intake.cli.main`` tightens the process umask (as the real command does); a test
    that calls it in-process must not change the mode of what later tests write."""
    mask = os.umask(0o022)
    os.umask(mask)
    yield
    os.umask(mask)


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    need("openssl")
    with running_dovecot(need("dovecot")) as server:
        yield server


@dataclass
class SmtpSink:
    handler: SavingHandler
    port: int

    @property
    def messages(self) -> list[EmailMessage]:
        return [message_from_bytes(raw, policy=policy.default)  # type: ignore[misc]
                for raw in self.handler.messages]


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    handler = SavingHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield SmtpSink(handler, controller.port)
    finally:
        controller.stop()


@pytest.fixture(scope="session")
def reference() -> Reference:
    return load_reference(REFERENCE)


def make_settings(base: Path, **sections: dict) -> Settings:
    """Settings for a test: paths in ``base``, the repo's reference data and templates."""
    paths = {"reference_dir": str(REFERENCE), "templates_dir": str(TEMPLATES),
             "data_dir": str(base / "data"), "workbook": str(base / "data" / "TongHop.xlsx")}
    paths.update(sections.pop("paths", {}))
    # Tests put mail in the box before the first poll: take it all (the default is "now").
    mailbox = {"start_from": "all", **sections.pop("mailbox", {})}
    return settings_for(base, paths=paths, mailbox=mailbox, **sections)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


def mail_settings(base: Path, dovecot: Dovecot, user: str, smtp_port: int,
                  security: str = "none", **sections: dict) -> Settings:
    """Settings for one test mailbox; ``sections`` override keys section by section."""
    port = dovecot.tls_port if security == "ssl" else dovecot.plain_port
    rules = {"require_sender_auth": True, **sections.pop("rules", {})}
    mailbox = {"host": "127.0.0.1" if security == "none" else "localhost", "port": port,
               "security": security, "username": user, "password_env": "TEST_IMAP_PASSWORD",
               "ca_file": str(dovecot.ca_file), "timeout_seconds": 10,
               **sections.pop("mailbox", {})}
    smtp = {"host": "127.0.0.1", "port": smtp_port, "security": "none", "username": "",
            "from_address": "bantckt@example.org", "max_replies_per_hour": 50,
            **sections.pop("smtp", {})}
    return make_settings(base, mailbox=mailbox, smtp=smtp, rules=rules, **sections)


def poll(settings: Settings, password: str | None = "secret") -> CycleResult:
    """One intake cycle, as ``intake poll`` runs it."""
    pipeline = Pipeline(settings)
    try:
        return pipeline.run_cycle(password=password)
    finally:
        pipeline.store.close()


def file_offline(settings, messages: list, first_uid: int = 1) -> CycleResult:
    """Run the pipeline's record, decide and file steps on (message, received) pairs
    (a message is an ``EmailMessage`` or its raw bytes), without a mailbox; UIDs count from
    ``first_uid``, so later calls must start above earlier ones."""
    pipeline = Pipeline(settings)
    result = CycleResult()
    try:
        for uid, (message, when) in enumerate(messages, start=first_uid):
            raw = message if isinstance(message, bytes) else message.as_bytes()
            sync.record(pipeline.store, settings, "INBOX", 1, Fetched(uid, when, len(raw), raw))
        pipeline.process_pending(result)
    finally:
        pipeline.store.close()
    return result


# A reply's context as filing builds it, for rendering replies in tests.
BASE = {"unit_name": "Huyện đoàn Châu Thành", "sender": "hd@example.org",
        "received_at": "09:30 ngày 10/02/2021", "deadline": "00:00 ngày 20/02/2021",
        "year": 2021, "late": False, "ignored": [], "files": [], "valid_rows": 0,
        "provincial": 0, "district": 0, "errors": [], "groups": [], "warnings": [],
        "annotated": False, "addition": False, "unit_valid": 0, "unit_provincial": 0,
        "unit_district": 0}


def reply(settings, kind="accepted", to="hd@example.org", **context):
    """A reply of ``kind`` built as filing builds it, threaded under an earlier message."""
    from intake.replies import build, check_templates

    env = check_templates(settings.paths.templates_dir)
    return build(settings, env, kind, {**BASE, **context}, to=to,
                 original_subject="Re: RE: Danh sách Chi đoàn kiểu mẫu Châu Thành",
                 original_id="<orig@example.org>", references=["<earlier@example.org>"],
                 status=kind, late=context.get("late", False))


def count(settings: Settings, sql: str) -> int:
    """A single number from the state store (``SELECT COUNT(*) …``)."""
    store = open_store(settings.paths.data_dir)
    try:
        return int(store.one(sql)[0])
    finally:
        store.close()


def write_run_config(path: Path, dovecot: Dovecot, user: str, smtp_port: int, *,
                     password_env: str, poll_minutes: float, idle: bool) -> Path:
    """A config file for ``intake run`` in a subprocess, pointed at the test servers."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"""
[mailbox]
host = "127.0.0.1"
port = {dovecot.plain_port}
security = "none"
username = "{user}"
password_env = "{password_env}"
timeout_seconds = 10
start_from = "all"
[smtp]
host = "127.0.0.1"
port = {smtp_port}
security = "none"
username = ""
from_address = "ban@example.org"
max_replies_per_hour = 0
[rules]
require_sender_auth = true
[schedule]
poll_minutes = {poll_minutes}
idle = {str(idle).lower()}
[paths]
reference_dir = "{REFERENCE}"
templates_dir = "{TEMPLATES}"
data_dir = "data"
workbook = "data/TongHop.xlsx"
""", encoding="utf-8")
    return path
