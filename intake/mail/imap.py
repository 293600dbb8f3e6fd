"""The mailbox: log in, list new messages by UID, fetch them in batches, move them.

Only UIDs above the last one recorded are asked for, so a folder of 10,000 old messages
costs one SEARCH, not 10,000 downloads. Every socket has a timeout; every failure is a
``MailboxError`` carrying the server's answer.
"""

from __future__ import annotations

import imaplib
import re
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from imap_tools import MailBox, MailBoxStartTls, MailBoxUnencrypted
from imap_tools.errors import MailboxLoginError

from ..config import Mailbox as MailboxSettings
from ..errors import MailboxError

_FETCH_META = re.compile(rb"UID (\d+)|INTERNALDATE \"([^\"]+)\"|RFC822\.SIZE (\d+)")


@dataclass
class Fetched:
    uid: int
    internal_date: datetime | None
    size: int
    raw: bytes | None  # None when over the size limit (not downloaded)


def ssl_context(ca_file: object | None) -> ssl.SSLContext:
    """Certificate checks always on; a private CA (tests, self-hosted) via ``ca_file``."""
    return ssl.create_default_context(cafile=str(ca_file) if ca_file else None)


@contextmanager
def connect(settings: MailboxSettings, password: str | None) -> Iterator[MailBox]:
    """A logged-in mailbox; the password never appears in errors or logs."""
    if not password:
        raise MailboxError(
            f"no IMAP {'access token' if settings.auth == 'xoauth2' else 'password'}: set the "
            f"environment variable {settings.password_env}")
    try:
        if settings.security == "ssl":
            box = MailBox(settings.host, settings.port, timeout=settings.timeout_seconds,
                          ssl_context=ssl_context(settings.ca_file))
        elif settings.security == "starttls":
            box = MailBoxStartTls(settings.host, settings.port, timeout=settings.timeout_seconds,
                                  ssl_context=ssl_context(settings.ca_file))
        else:
            box = MailBoxUnencrypted(settings.host, settings.port,
                                     timeout=settings.timeout_seconds)
        if settings.auth == "xoauth2":
            box.xoauth2(settings.username, password, initial_folder=None)
        else:
            box.login(settings.username, password, initial_folder=None)
    except MailboxLoginError as exc:
        raise MailboxError(f"IMAP login refused for {settings.username} at {settings.host}: "
                           f"{_answer(exc)}") from None
    except (OSError, imaplib.IMAP4.error, ssl.SSLError) as exc:
        raise MailboxError(f"cannot reach IMAP server {settings.host}:{settings.port} "
                           f"({settings.security}): {exc}") from None
    try:
        yield box
    finally:
        try:
            box.logout()
        except Exception:  # the connection may already be gone; nothing to keep
            pass


def _answer(exc: Exception) -> str:
    text = str(exc)
    return text[-200:]


def _check(result: tuple, what: str) -> list:
    status, data = result
    if status != "OK":
        raise MailboxError(f"IMAP {what} failed: {data!r}"[:300])
    return data


def select(box: MailBox, folder: str) -> int:
    """Select a folder and return its UIDVALIDITY."""
    try:
        validity = int(box.folder.status(folder, ["UIDVALIDITY"])["UIDVALIDITY"])
        box.folder.set(folder)
    except Exception as exc:
        raise MailboxError(f"cannot open folder {folder!r}: {exc}") from None
    return validity


def uids_after(box: MailBox, last_uid: int) -> list[int]:
    """UIDs above ``last_uid`` ("N:*" also returns the highest UID, so filter it)."""
    data = _check(box.client.uid("SEARCH", f"UID {last_uid + 1}:*"), "UID SEARCH")
    found = [int(x) for x in b" ".join(d for d in data if d).split()]
    return sorted(uid for uid in found if uid > last_uid)


def fetch(box: MailBox, uids: list[int], max_bytes: int) -> list[Fetched]:
    """Size and INTERNALDATE first, then bodies only for messages within the size limit."""
    if not uids:
        return []
    uid_set = ",".join(str(u) for u in uids)
    meta: dict[int, Fetched] = {}
    for item in _check(box.client.uid("FETCH", uid_set, "(UID INTERNALDATE RFC822.SIZE)"),
                       "UID FETCH"):
        line = item[0] if isinstance(item, tuple) else item
        if not isinstance(line, bytes):
            continue
        uid = size = None
        date = None
        for match in _FETCH_META.finditer(line):
            if match.group(1):
                uid = int(match.group(1))
            elif match.group(2):
                date = _internal_date(match.group(2))
            elif match.group(3):
                size = int(match.group(3))
        if uid is not None:
            meta[uid] = Fetched(uid, date, size or 0, None)
    wanted = [u for u in uids if u in meta and meta[u].size <= max_bytes]
    if wanted:
        data = _check(box.client.uid("FETCH", ",".join(map(str, wanted)), "(UID BODY.PEEK[])"),
                      "UID FETCH BODY")
        for item in data:
            if isinstance(item, tuple) and len(item) == 2:
                match = re.search(rb"UID (\d+)", item[0])
                if match and int(match.group(1)) in meta:
                    meta[int(match.group(1))].raw = item[1]
    return [meta[u] for u in uids if u in meta]


def _internal_date(text: bytes) -> datetime | None:
    try:
        return datetime.strptime(text.decode("ascii"), "%d-%b-%Y %H:%M:%S %z")
    except ValueError:
        return None


def ensure_folder(box: MailBox, folder: str) -> None:
    if not box.folder.exists(folder):
        box.folder.create(folder)


def move(box: MailBox, uid: int, folder: str) -> None:
    """MOVE where the server has it, else COPY + \\Deleted + UID EXPUNGE (imap-tools)."""
    try:
        box.move(str(uid), folder)
    except Exception as exc:
        raise MailboxError(f"cannot move message {uid} to {folder}: {exc}") from None
