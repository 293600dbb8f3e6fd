"""The mailbox: log in, list new messages by UID, fetch them in batches, move them.

Only UIDs above the last one recorded are asked for, so a folder of 10,000 old messages
costs one SEARCH, not 10,000 downloads. Every socket has a timeout; every failure of the
server or the connection is a ``MailboxError`` carrying the server's answer, and nothing
else is (a full local disk is not "IMAP connection lost").
"""

from __future__ import annotations

import imaplib
import logging
import re
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime

from imap_tools import BaseMailBox as MailBox
from imap_tools.errors import ImapToolsError, MailboxLoginError, MailboxStarttlsError
from imap_tools.utils import check_command_status, encode_folder

from ..config import Mailbox as MailboxSettings
from ..errors import MailboxError
from .deadline import Deadline
from .tls import ssl_context

log = logging.getLogger(__name__)

_FETCH_META = re.compile(rb"UID (\d+)|INTERNALDATE \"([^\"]+)\"|RFC822\.SIZE (\d+)")
# What a broken connection or a refusing server raises; anything else is our own bug.
SERVER_ERRORS = (OSError, EOFError, imaplib.IMAP4.error, ssl.SSLError, ImapToolsError)
# A download may take longer than a command: the deadline grows by one second per this
# many bytes announced (RFC822.SIZE), i.e. a 40 MB message may take 400 s more.
DOWNLOAD_BYTES_PER_SECOND = 100_000


@dataclass
class Fetched:
    uid: int
    internal_date: datetime | None
    size: int
    raw: bytes | None  # None when over the size limit (not downloaded) or gone
    missing: bool = False  # listed, then deleted by another client before its body came


@contextmanager
def talking(what: str, box: MailBox | None = None, download: int = 0) -> Iterator[None]:
    """One IMAP command: within the mailbox's total deadline (a server trickling a byte at
    a time cannot hold a cycle), and a server or connection failure during it becomes a
    ``MailboxError``."""
    seconds = getattr(box, "intake_deadline", None) if box is not None else None
    try:
        if seconds and box is not None:
            with Deadline(lambda: box.client.sock, seconds + download / DOWNLOAD_BYTES_PER_SECOND,
                          f"IMAP {what}"):
                yield
        else:
            yield
    except MailboxError:
        raise
    except SERVER_ERRORS as exc:
        raise MailboxError(f"IMAP {what} failed: {_answer(exc)}") from None


class _Box(MailBox):
    """An imap-tools mailbox over a client we build, so the deadline can see the TCP socket
    from the moment it exists (before TLS and the server's greeting)."""

    def __init__(self, make_client) -> None:
        self._make_client = make_client
        super().__init__()

    def _get_mailbox_client(self) -> imaplib.IMAP4:
        return self._make_client()


def _client_factory(settings: MailboxSettings, sockets: list):
    """imaplib clients that record their raw socket in ``sockets`` as soon as it is made."""

    class Plain(imaplib.IMAP4):
        def _create_socket(self, timeout):  # type: ignore[override]
            sock = super()._create_socket(timeout)
            sockets.append(sock)
            return sock

    class Tls(imaplib.IMAP4_SSL, Plain):  # IMAP4_SSL wraps what Plain recorded
        pass

    host, port, timeout = settings.host, settings.port, settings.timeout_seconds

    def make() -> imaplib.IMAP4:
        if settings.security == "ssl":
            return Tls(host, port, ssl_context=ssl_context(settings.ca_file), timeout=timeout)
        client = Plain(host, port, timeout)
        if settings.security == "starttls":
            check_command_status(client.starttls(ssl_context(settings.ca_file)),
                                 MailboxStarttlsError)
        return client

    return make


CERTIFICATE_HINT = ("check [{section}] host; a server with a private certificate authority "
                    "needs [{section}] ca_file = the authority's PEM file (see config/intake.toml)")


def login_hint(settings: MailboxSettings) -> str:
    """What to check when the server says no: for Gmail, almost always the password kind."""
    if settings.auth == "xoauth2":
        return ("check [oauth] client_id and the refresh token "
                f"(${settings.password_env} or the [oauth] *_env variables)")
    gmail = settings.host.endswith(("gmail.com", "googlemail.com"))
    if gmail:
        return (f"Gmail takes an app password, not the account's password: turn on 2-Step "
                f"Verification, create one (Google Account → Security → App passwords) and "
                f"put it in ${settings.password_env}; check [mailbox] username")
    return f"check [mailbox] username and the password in ${settings.password_env}"


@contextmanager
def connect(settings: MailboxSettings, password: str | None) -> Iterator[MailBox]:
    """A logged-in mailbox; the password never appears in errors or logs."""
    if not password:
        raise MailboxError(
            f"no IMAP {'access token' if settings.auth == 'xoauth2' else 'password'}: set the "
            f"environment variable {settings.password_env}")
    sockets: list = []
    try:
        with Deadline(lambda: sockets[-1] if sockets else None, settings.deadline_seconds,
                      f"IMAP login to {settings.host}:{settings.port}"):
            box = _Box(_client_factory(settings, sockets))
            if settings.auth == "xoauth2":
                box.xoauth2(settings.username, password, initial_folder=None)
            else:
                box.login(settings.username, password, initial_folder=None)
    except MailboxLoginError as exc:
        raise MailboxError(f"IMAP login refused for {settings.username} at {settings.host}: "
                           f"{_answer(exc)}", hint=login_hint(settings)) from None
    except ssl.SSLCertVerificationError as exc:
        raise MailboxError(f"the certificate of IMAP server {settings.host}:{settings.port} is "
                           f"not trusted: {exc.verify_message or exc}",
                           hint=CERTIFICATE_HINT.format(section="mailbox")) from None
    except SERVER_ERRORS as exc:
        raise MailboxError(f"cannot reach IMAP server {settings.host}:{settings.port} "
                           f"({settings.security}): {exc}") from None
    box.intake_deadline = settings.deadline_seconds  # type: ignore[attr-defined]
    try:
        with talking("CAPABILITY", box):
            refresh_capabilities(box)
        yield box
    finally:
        try:
            box.logout()
        except Exception:  # the connection may already be gone; nothing to keep
            pass


def refresh_capabilities(box: MailBox) -> tuple[str, ...]:
    """Ask again after login: servers announce MOVE, UIDPLUS… only to a logged-in client,
    and imaplib keeps the list it got before login (so MOVE was never used on Dovecot)."""
    data = _check(box.client.capability(), "CAPABILITY")
    words = b" ".join(d for d in data if isinstance(d, bytes)).decode("ascii", "replace")
    if words.strip():
        box.client.capabilities = tuple(words.upper().split())
    return box.client.capabilities


def _answer(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text[-200:]


def _check(result: tuple, what: str) -> list:
    status, data = result
    if status != "OK":
        raise MailboxError(f"IMAP {what} failed: {data!r}"[:300])
    return data


def select(box: MailBox, folder: str) -> int:
    """Select a folder and return its UIDVALIDITY."""
    try:
        with talking(f"SELECT {folder}", box):
            validity = int(box.folder.status(folder, ["UIDVALIDITY"])["UIDVALIDITY"])
            box.folder.set(folder)
    except MailboxError as exc:
        raise MailboxError(f"cannot open folder {folder!r}: {exc}") from None
    return validity


def _uid_search(box: MailBox, criteria: str) -> list[int]:
    with talking("UID SEARCH", box):
        data = _check(box.client.uid("SEARCH", criteria), "UID SEARCH")
    return sorted(int(x) for x in b" ".join(d for d in data if d).split())


def uids_after(box: MailBox, last_uid: int) -> list[int]:
    """UIDs above ``last_uid`` ("N:*" also returns the highest UID, so filter it)."""
    return [uid for uid in _uid_search(box, f"UID {last_uid + 1}:*") if uid > last_uid]


def all_uids(box: MailBox) -> list[int]:
    return _uid_search(box, "ALL")


def last_uid_before(box: MailBox, day: date | None) -> int:
    """The highest UID received before ``day`` (None: before now); 0 when there is none.

    This is where a first start sets its high-water mark, so old correspondence already in
    the mailbox is never answered by surprise (``[mailbox] start_from``).
    """
    if day is None:
        uids = all_uids(box)
        return uids[-1] if uids else 0
    older = _uid_search(box, f"BEFORE {day.strftime('%d-%b-%Y')}")
    return older[-1] if older else 0


def fetch(box: MailBox, uids: list[int], max_bytes: int) -> list[Fetched]:
    """Size and INTERNALDATE first, then bodies only for messages within the size limit."""
    if not uids:
        return []
    uid_set = ",".join(str(u) for u in uids)
    meta: dict[int, Fetched] = {}
    with talking("UID FETCH", box):
        answer = _check(box.client.uid("FETCH", uid_set, "(UID INTERNALDATE RFC822.SIZE)"),
                        "UID FETCH")
    for item in answer:
        line = item[0] if isinstance(item, tuple) else item
        if not isinstance(line, bytes):
            continue
        uid = size = None
        when = None
        for match in _FETCH_META.finditer(line):
            if match.group(1):
                uid = int(match.group(1))
            elif match.group(2):
                when = _internal_date(match.group(2))
            elif match.group(3):
                size = int(match.group(3))
        if uid is not None:
            meta[uid] = Fetched(uid, when, size or 0, None)
    for uid in uids:
        if uid not in meta:
            log.info("uid=%s vanished before it could be fetched", uid)
    wanted = [u for u in uids if u in meta and meta[u].size <= max_bytes]
    if wanted:
        with talking("UID FETCH BODY", box, download=sum(meta[u].size for u in wanted)):
            status, data = box.client.uid("FETCH", ",".join(map(str, wanted)),
                                          "(UID BODY.PEEK[])")
        if status != "OK" and not any(isinstance(item, tuple) for item in data):
            raise MailboxError(f"IMAP UID FETCH BODY failed: {data!r}"[:300])
        for item in data:
            if isinstance(item, tuple) and len(item) == 2:
                match = re.search(rb"UID (\d+)", item[0])
                if match and int(match.group(1)) in meta:
                    meta[int(match.group(1))].raw = item[1]
        for uid in wanted:  # listed a moment ago, body gone now: deleted by another client
            meta[uid].missing = meta[uid].raw is None
    return [meta[u] for u in uids if u in meta]


def _internal_date(text: bytes) -> datetime | None:
    try:
        return datetime.strptime(text.decode("ascii"), "%d-%b-%Y %H:%M:%S %z")
    except ValueError:
        return None


def ensure_folder(box: MailBox, folder: str) -> None:
    with talking(f"CREATE {folder}", box):
        if not box.folder.exists(folder):
            box.folder.create(folder)


def move(box: MailBox, uid: int, folder: str, *, message_id: str = "",
         retry: bool = False) -> None:
    """Move one message: UID MOVE where the server offers it (one atomic step).

    Without MOVE: COPY, then \\Deleted and UID EXPUNGE of that message only. A crash
    between COPY and EXPUNGE is the one way a second copy could appear, so a ``retry``
    of an interrupted move first looks for the message (by Message-ID) in the target and
    copies only when it is not there yet.
    """
    client = box.client
    source = box.folder.get()
    target = encode_folder(folder)
    try:
        with talking(f"moving message {uid} to {folder}", box):
            if "MOVE" in client.capabilities:
                _check(client.uid("MOVE", str(uid), target), "UID MOVE")
                return
            if not (retry and message_id and _holds(box, folder, message_id, source)):
                _check(client.uid("COPY", str(uid), target), "UID COPY")
            _check(client.uid("STORE", str(uid), "+FLAGS.SILENT", r"(\Deleted)"), "UID STORE")
            if "UIDPLUS" in client.capabilities:
                _check(client.uid("EXPUNGE", str(uid)), "UID EXPUNGE")
            else:
                _check(client.expunge(), "EXPUNGE")
    except MailboxError as exc:
        raise MailboxError(f"cannot move message {uid} to {folder}: {exc}") from None


def _holds(box: MailBox, folder: str, message_id: str, source: str | None) -> bool:
    """Whether ``folder`` already has a message with this Message-ID (then reselect)."""
    client = box.client
    _check(client.select(encode_folder(folder), readonly=True), f"EXAMINE {folder}")
    try:
        return bool(_search(box, message_id))
    finally:
        if source:
            _check(client.select(encode_folder(source)), f"SELECT {source}")


def search_message_id(box: MailBox, message_id: str) -> list[int]:
    """UIDs of the messages in the selected folder carrying this Message-ID."""
    with talking("UID SEARCH HEADER", box):
        return _search(box, message_id)


def _search(box: MailBox, message_id: str) -> list[int]:
    if not message_id.isascii():  # not a Message-ID a server can be asked for
        return []
    quoted = message_id.replace("\\", "\\\\").replace('"', '\\"')
    data = _check(box.client.uid("SEARCH", "HEADER", "Message-ID", f'"{quoted}"'),
                  "UID SEARCH")
    return [int(x) for x in b" ".join(d for d in data if d).split()]
