"""The outbox: replies are queued in the store (Message-ID first), then sent.

A reply is never lost to a network error: temporary failures (4xx, refused, timeouts)
are retried with exponential back-off; permanent ones (5xx) are marked failed and shown
to staff. A crash between the server's "250 OK" and our record of it is the only way a
reply can go out twice, which SPEC §4 accepts.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from datetime import UTC, datetime, timedelta
from email import policy
from email.header import Header
from email.message import EmailMessage
from email.utils import parseaddr
from pathlib import Path

from ..config import Settings
from ..errors import MailboxError
from ..store import Store, now_iso
from .envelope import BLOCKED_LOCAL_PARTS
from .imap import ssl_context
from .oauth import xoauth2_string

log = logging.getLogger(__name__)



class _ReplyPolicy(policy.EmailPolicy):
    """CRLF line ends (smtplib does not fix them in bytes) and a correct Vietnamese subject.

    The standard folder splits a long non-ASCII subject into encoded words with the
    space *between* them, where RFC 2047 says to ignore it: "Châu Thành" arrives as
    "ChâuThành". ``email.header.Header`` keeps spaces inside the encoded words.
    """

    def fold_binary(self, name: str, value: str) -> bytes:
        if name.lower() == "subject" and not str(value).isascii():
            encoded = Header(str(value), "utf-8", header_name=name).encode(linesep=self.linesep)
            return f"{name}: {encoded}{self.linesep}".encode("ascii")
        return super().fold_binary(name, value)


SMTP_POLICY = _ReplyPolicy(linesep="\r\n")
BACKOFF_BASE = timedelta(minutes=1)
BACKOFF_CAP = timedelta(hours=2)


def queue(store: Store, message_row: int | None, kind: str, reply: EmailMessage,
          status: str = "") -> int:
    """Record a reply for sending; its Message-ID is known before any attempt."""
    recipient = parseaddr(str(reply["To"]))[1].lower()
    local = recipient.split("@")[0]
    state = "suppressed" if (not recipient or local in BLOCKED_LOCAL_PARTS) else "queued"
    cursor = store.db.execute(
        "INSERT INTO outbox(message, kind, recipient, subject, message_id, status_header, raw,"
        " state, next_attempt_at, created_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
        (message_row, kind, recipient, str(reply["Subject"]), str(reply["Message-ID"]), status,
         reply.as_bytes(policy=SMTP_POLICY), state, now_iso(), now_iso()))
    return int(cursor.lastrowid or 0)


def _open(settings: Settings) -> smtplib.SMTP:
    smtp = settings.smtp
    if smtp.security == "ssl":
        client: smtplib.SMTP = smtplib.SMTP_SSL(
            smtp.host, smtp.port, timeout=smtp.timeout_seconds,
            context=ssl_context(smtp.ca_file))
    else:
        client = smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout_seconds)
        if smtp.security == "starttls":
            client.starttls(context=ssl_context(smtp.ca_file))
    if smtp.username and settings.mailbox.auth == "xoauth2":
        token = settings.mail_secret(smtp.password_env, smtp.timeout_seconds)
        if token:
            client.ehlo_or_helo_if_needed()
            client.auth("XOAUTH2", lambda challenge=None: xoauth2_string(smtp.username, token),
                        initial_response_ok=True)
        return client
    password = settings.secret(smtp.password_env)
    if password and smtp.username:
        client.login(smtp.username, password)
    return client


def _sent_last_hour(store: Store, recipient: str, now: datetime) -> int:
    since = (now - timedelta(hours=1)).isoformat(timespec="seconds")
    row = store.one("SELECT COUNT(*) FROM outbox WHERE recipient=? AND state IN ('sent','dry-run')"
                    " AND sent_at >= ?", (recipient, since))
    return int(row[0]) if row else 0


def _backoff(attempts: int) -> timedelta:
    return min(BACKOFF_BASE * (2 ** max(attempts - 1, 0)), BACKOFF_CAP)


def deliver(store: Store, settings: Settings, now: datetime | None = None) -> dict[str, int]:
    """Send every due reply; returns counts by outcome. Never raises for network errors."""
    now = now or datetime.now(UTC)
    due = store.query("SELECT * FROM outbox WHERE state='queued' AND next_attempt_at <= ?"
                      " ORDER BY id", (now.isoformat(timespec="seconds"),))
    counts = {"sent": 0, "deferred": 0, "failed": 0, "limited": 0}
    if not due:
        return counts
    client: smtplib.SMTP | None = None
    try:
        for item in due:
            limit = settings.smtp.max_replies_per_hour
            if limit and _sent_last_hour(store, item["recipient"], now) >= limit:
                store.db.execute("UPDATE outbox SET next_attempt_at=? WHERE id=?",
                                 ((now + timedelta(minutes=15)).isoformat(timespec="seconds"),
                                  item["id"]))
                counts["limited"] += 1
                continue
            if settings.smtp.dry_run:
                _write_dry_run(settings.paths.data_dir, item)
                store.db.execute("UPDATE outbox SET state='dry-run', sent_at=? WHERE id=?",
                                 (now_iso(), item["id"]))
                counts["sent"] += 1
                continue
            try:
                if client is None:
                    client = _open(settings)
                client.sendmail(settings.smtp.from_address, [item["recipient"]], item["raw"])
            except (UnicodeError, ValueError) as exc:
                # e.g. a non-ASCII address without SMTPUTF8: this reply can never go out.
                _failed(store, item, settings, 553, f"địa chỉ không gửi được: {exc}", now)
                counts["failed"] += 1
                client = _drop(client)
            except smtplib.SMTPRecipientsRefused as exc:
                code, answer = next(iter(exc.recipients.values()))
                _failed(store, item, settings, code, answer, now)
                counts["failed" if code >= 500 else "deferred"] += 1
            except smtplib.SMTPResponseException as exc:
                _failed(store, item, settings, exc.smtp_code, exc.smtp_error, now)
                counts["failed" if exc.smtp_code >= 500 else "deferred"] += 1
                client = _drop(client)
            except (OSError, smtplib.SMTPException, ssl.SSLError, MailboxError) as exc:
                _failed(store, item, settings, 0, str(exc).encode(), now)
                counts["deferred"] += 1
                client = _drop(client)
                break  # the server is unreachable: the rest wait for the next round
            else:
                store.db.execute(
                    "UPDATE outbox SET state='sent', sent_at=?, attempts=attempts+1, last_error=''"
                    " WHERE id=?", (now_iso(), item["id"]))
                log.info("reply sent id=%s kind=%s message_id=%s", item["id"], item["kind"],
                         item["message_id"])
                counts["sent"] += 1
    finally:
        _drop(client)
    return counts


def _drop(client: smtplib.SMTP | None) -> None:
    if client is not None:
        try:
            client.quit()
        except Exception:  # already closed by the server
            pass
    return None


def _failed(store: Store, item, settings: Settings, code: int, answer: bytes | str,
            now: datetime) -> None:
    text = answer.decode(errors="replace") if isinstance(answer, bytes) else str(answer)
    error = f"{code} {text}".strip()[:500]
    attempts = int(item["attempts"]) + 1
    permanent = code >= 500 or attempts >= settings.smtp.max_attempts
    next_at = (now + _backoff(attempts)).isoformat(timespec="seconds")
    store.db.execute(
        "UPDATE outbox SET state=?, attempts=?, last_error=?, next_attempt_at=? WHERE id=?",
        ("failed" if permanent else "queued", attempts, error, next_at, item["id"]))
    log.warning("reply %s id=%s: %s", "failed" if permanent else "deferred", item["id"], error)


def _write_dry_run(data_dir: Path, item) -> Path:
    folder = data_dir / "outbox-dry-run"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{int(item['id']):05d}-{item['kind']}.eml"
    path.write_bytes(item["raw"])
    return path


def mark_bounced(store: Store, message_ids: list[str]) -> int:
    """A delivery report named one of our replies: staff must see that it never arrived."""
    changed = 0
    for message_id in message_ids:
        changed += store.db.execute(
            "UPDATE outbox SET state='bounced' WHERE message_id=?", (message_id,)).rowcount
    return changed
