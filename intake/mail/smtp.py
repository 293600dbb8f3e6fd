"""The outbox: replies are queued in the store (Message-ID first), claimed, then sent.

A reply is never lost to a network error, and never blamed for the server's:

* **Claim before send.** Each reply is claimed (``state='sending'``) by one atomic
  UPDATE before it is sent, so two senders (the poll and campaign jobs, ``intake run``
  and ``intake poll``) never send the same reply. A claim left by a process that died
  is handed back to the queue after ``claim_timeout`` — that, and a crash between the
  server's "250 OK" and our record of it, are the only ways a reply can go out twice,
  which SPEC §4 accepts.
* **Server failures are not the reply's fault.** A refused login (530/534/535), a
  refused connection, a TLS error, a timeout or 421 at connect stop the round, leave
  every reply queued without counting an attempt, rest the server with back-off and
  alert staff once per incident.
* **Only the reply's own refusal counts.** A temporary refusal (4xx) is retried with
  back-off capped at an hour for ``[smtp] give_up_after_hours``; a permanent one (5xx)
  fails the reply at once. Failed replies are shown by ``intake status`` and sent again
  by ``intake resend``.
* **A total deadline.** Connecting, logging in and sending one reply share
  ``[smtp] send_deadline_seconds`` (a socket timeout bounds only one read: a server
  trickling bytes would hold a send for ever).
"""

from __future__ import annotations

import contextlib
import logging
import os
import smtplib
import socket
import ssl
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email import policy
from email.header import Header
from email.message import EmailMessage
from email.utils import parseaddr
from pathlib import Path
from sqlite3 import Row

from ..config import Settings
from ..errors import MailboxError
from ..labels import OUTBOX_LABELS, kind_label
from ..store import Store, events, outbox
from .deadline import Deadline, DeadlineExceeded
from .envelope import BLOCKED_LOCAL_PARTS
from .oauth import login_secret, smtp_auth, xoauth2_string
from .tls import ssl_context

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
BACKOFF_CAP = timedelta(hours=1)  # a reply refused for now is tried at least hourly
SERVER_BACKOFF_CAP = timedelta(minutes=15)  # a fixed password is used within 15 minutes
RATE_LIMIT_WAIT = timedelta(minutes=15)
CLAIM_TIMEOUT_MIN = timedelta(minutes=30)
LOGIN_CODES = frozenset({530, 534, 535})  # authentication required / too weak / refused
CLOSING_CODE = 421  # the server is closing the connection: it, not the reply, is unwell
TOO_BIG_CODE = 552

SERVER_PROBLEMS = {
    "login": "máy chủ gửi thư {server} từ chối đăng nhập ({error}). Các thư trả lời vẫn "
             "được giữ trong hộp thư đi và sẽ tự động được gửi khi đăng nhập được; đề nghị "
             "kiểm tra tài khoản [smtp] username và mật khẩu trong biến môi trường "
             "{password_env}.",
    "connect": "không kết nối được với máy chủ gửi thư {server} ({error}). Các thư trả lời "
               "vẫn được giữ trong hộp thư đi và sẽ tự động được gửi khi máy chủ hoạt động "
               "trở lại.",
    "sender": "máy chủ gửi thư {server} không chấp nhận địa chỉ gửi {sender} ({error}). "
              "Các thư trả lời vẫn được giữ trong hộp thư đi; đề nghị kiểm tra "
              "[smtp] from_address.",
}
SERVER_KIND_LABELS = {"login": "đăng nhập", "connect": "kết nối", "sender": "địa chỉ gửi"}


def queue(store: Store, message_row: int | None, kind: str, reply: EmailMessage,
          status: str = "", *, content: str = "") -> int:
    """Record a reply for sending; its Message-ID is known before any attempt.
    ``content``: what it says (``replies.Reply`` as JSON), to render it again."""
    recipient = parseaddr(str(reply["To"]))[1].lower()
    local = recipient.split("@")[0]
    state = "suppressed" if (not recipient or local in BLOCKED_LOCAL_PARTS) else "queued"
    return outbox.add(store, {
        "message": message_row, "kind": kind, "recipient": recipient,
        "subject": str(reply["Subject"]), "message_id": str(reply["Message-ID"]),
        "status_header": status, "raw": reply.as_bytes(policy=SMTP_POLICY), "state": state,
        "content": content})


# -- what went wrong ---------------------------------------------------------------------


class ServerFailure(Exception):
    """The server (or our account on it) failed, not this reply: nothing is held against
    the reply; the round stops and staff are alerted once per incident."""

    def __init__(self, kind: str, error: str) -> None:
        super().__init__(error)
        self.kind = kind  # login | connect | sender
        self.error = error


class MessageFailure(Exception):
    """This reply was refused (``permanent`` for 5xx), or the connection broke while it
    was being sent (``transport``: the round stops, the reply is retried later)."""

    def __init__(self, code: int, error: str, *, permanent: bool = False,
                 transport: bool = False) -> None:
        super().__init__(error)
        self.code = code
        self.error = error
        self.permanent = permanent
        self.transport = transport


def _text(code: int, answer: bytes | str) -> str:
    text = answer.decode(errors="replace") if isinstance(answer, bytes) else str(answer)
    return (f"{code} {text}" if code else text).strip()[:500]


def _by_code(code: int, answer: bytes | str) -> ServerFailure | MessageFailure:
    """An SMTP answer to one reply: whose fault it is, and for how long."""
    text = _text(code, answer)
    if code == CLOSING_CODE:
        return ServerFailure("connect", text)
    if code in LOGIN_CODES:
        return ServerFailure("login", text)
    if 400 <= code < 500:
        return MessageFailure(code, text)
    if code >= 500:
        return MessageFailure(code, text, permanent=True)
    return MessageFailure(code, text, transport=True)  # no answer or garbled: try later


def _classify(exc: Exception, stage: str) -> ServerFailure | MessageFailure:
    """Sort an error by the stage it happened in (connect, login, send)."""
    if stage == "login" and isinstance(exc, (smtplib.SMTPAuthenticationError,
                                             smtplib.SMTPNotSupportedError, MailboxError)):
        return ServerFailure("login", _text(getattr(exc, "smtp_code", 0),
                                            getattr(exc, "smtp_error", str(exc))))
    if stage != "send":
        if isinstance(exc, smtplib.SMTPResponseException):
            failure = _by_code(exc.smtp_code, exc.smtp_error)
            if isinstance(failure, ServerFailure):
                return failure
            return ServerFailure("connect", failure.error)
        return ServerFailure("connect", f"{type(exc).__name__}: {exc}")
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        code, answer = next(iter(exc.recipients.values()))
        return _by_code(code, answer)
    if isinstance(exc, smtplib.SMTPSenderRefused):
        failure = _by_code(exc.smtp_code, exc.smtp_error)
        if (isinstance(failure, MessageFailure) and failure.permanent
                and exc.smtp_code != TOO_BIG_CODE):
            return ServerFailure("sender", failure.error)  # our From, refused for every reply
        return failure
    if isinstance(exc, smtplib.SMTPResponseException):
        return _by_code(exc.smtp_code, exc.smtp_error)
    if isinstance(exc, (UnicodeError, ValueError)):
        # e.g. a non-ASCII address without SMTPUTF8: this reply can never go out.
        return MessageFailure(553, f"553 địa chỉ không gửi được: {exc}", permanent=True)
    return MessageFailure(0, f"{type(exc).__name__}: {exc}", transport=True)


# -- one connection ------------------------------------------------------------------------


class _TlsTap:
    """Stands in for the SSL context so the TLS socket is known *before* its handshake:
    the deadline can then cut a handshake that trickles, too."""

    def __init__(self, context: ssl.SSLContext, host: str) -> None:
        self.context = context
        self.host = host
        self.socket: ssl.SSLSocket | None = None

    def wrap_socket(self, sock: socket.socket, server_hostname: str | None = None,
                    **_: object) -> ssl.SSLSocket:
        tls = self.context.wrap_socket(sock, server_hostname=self.host,
                                       do_handshake_on_connect=False)
        self.socket = tls
        tls.do_handshake()
        return tls


class _Sender:
    """One SMTP connection for a round, opened for its first reply. Connecting, logging
    in and sending one reply share one total deadline."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.client: smtplib.SMTP | None = None
        self.tap: _TlsTap | None = None
        self.opened = False  # a connection was opened (and logged in) this round
        self.broken = False  # the connection broke while a reply was being sent

    def _socket(self) -> socket.socket | None:
        if self.tap is not None and self.tap.socket is not None:
            return self.tap.socket
        return self.client.sock if self.client is not None else None

    def send(self, item: Row) -> None:
        """Send one reply; raises ``ServerFailure`` or ``MessageFailure``."""
        smtp = self.settings.smtp
        stage = "connect" if self.client is None else "send"
        operation = f"SMTP {stage} and send of reply id={item['id']} via {smtp.host}:{smtp.port}"
        accepted = False
        try:
            with Deadline(self._socket, smtp.send_deadline_seconds, operation):
                if self.client is None:
                    self._connect()
                    stage = "login"
                    self._login()
                    self.opened = True
                stage = "send"
                assert self.client is not None
                self.client.sendmail(smtp.from_address, [item["recipient"]], item["raw"])
                accepted = True
        except DeadlineExceeded as exc:
            self.close()  # the socket was cut: this connection is done
            if not accepted:
                self.broken = True
                raise _classify(exc, stage) from exc
            # accepted in the very instant the deadline passed: it was sent
        except Exception as exc:
            failure = _classify(exc, stage)
            if isinstance(failure, ServerFailure) or failure.transport:
                self.close()
                self.broken = True
            raise failure from exc

    def _connect(self) -> None:
        smtp = self.settings.smtp
        if smtp.security == "ssl":
            self.tap = _TlsTap(ssl_context(smtp.ca_file), smtp.host)
            self.client = smtplib.SMTP_SSL(timeout=smtp.timeout_seconds,
                                           context=self.tap)  # type: ignore[arg-type]
        else:
            self.client = smtplib.SMTP(timeout=smtp.timeout_seconds)
        code, answer = self.client.connect(smtp.host, smtp.port)
        if code != 220:
            raise smtplib.SMTPConnectError(code, answer)
        if smtp.security == "starttls":
            self.tap = _TlsTap(ssl_context(smtp.ca_file), smtp.host)
            self.client.starttls(context=self.tap)  # type: ignore[arg-type]

    def _login(self) -> None:
        settings, client = self.settings, self.client
        smtp = settings.smtp
        assert client is not None
        if smtp.username and smtp_auth(settings) == "xoauth2":
            token = login_secret(settings, "xoauth2", smtp.password_env, smtp.timeout_seconds)
            if token:
                client.ehlo_or_helo_if_needed()
                client.auth("XOAUTH2",
                            lambda challenge=None: xoauth2_string(smtp.username, token),
                            initial_response_ok=True)
            return
        password = settings.secret(smtp.password_env)
        if password and smtp.username:
            client.login(smtp.username, password)

    def close(self) -> None:
        """QUIT politely, within the per-operation timeout; a dead server is just closed."""
        client, self.client = self.client, None
        if client is None:
            return
        with contextlib.suppress(Exception):
            with Deadline(lambda: client.sock, self.settings.smtp.timeout_seconds, "SMTP QUIT"):
                client.quit()
        with contextlib.suppress(Exception):
            client.close()
        self.tap = None


# -- the round -----------------------------------------------------------------------------


def deliver(store: Store, settings: Settings, now: datetime | None = None) -> dict[str, int]:
    """Send every due reply; returns counts by outcome. Never raises for network errors.

    Safe to run at the same time in several threads and processes on one store: each
    reply is claimed before it is sent.
    """
    now = now or datetime.now(UTC)
    counts = {"sent": 0, "deferred": 0, "failed": 0, "limited": 0}
    _recover_stale_claims(store, settings, now)
    due = outbox.due(store, _iso(now))
    if not due or (not settings.smtp.dry_run and _server_resting(store, now)):
        return counts
    sender = _Sender(settings)
    server_seen = False
    try:
        for row_id in due:
            item = _claim(store, row_id, now)
            if item is None:
                continue  # another sender has it, or has already sent it
            try:
                outcome = _deliver_one(store, settings, sender, item, now)
            except ServerFailure as failure:
                _release(store, item, now, error=failure.error)
                _server_failed(store, settings, failure, now)
                counts["deferred"] += 1
                break  # the server is unusable: the rest wait, untouched
            except BaseException:
                _release(store, item, now)  # not sent: hand the claim back at once
                raise
            counts[outcome] += 1
            if sender.opened and not server_seen:
                server_seen = True
                _server_ok(store, now)  # logged in: any incident is over
            if sender.broken:
                break  # the connection broke while sending: the rest wait for next round
    finally:
        sender.close()
    return counts


def _deliver_one(store: Store, settings: Settings, sender: _Sender, item: Row,
                 now: datetime) -> str:
    limit = settings.smtp.max_replies_per_hour
    if limit and _sent_last_hour(store, item["recipient"], now) >= limit:
        _release(store, item, now, next_at=now + RATE_LIMIT_WAIT)
        return "limited"
    if settings.smtp.dry_run:
        _write_dry_run(settings.paths.data_dir, item)
        _record(store, item, "dry-run")
        return "sent"
    try:
        sender.send(item)
    except MessageFailure as failure:
        return "failed" if _refused(store, settings, item, failure, now) else "deferred"
    _record(store, item, "sent")
    log.info("reply sent id=%s kind=%s message_id=%s", item["id"], item["kind"],
             item["message_id"])
    return "sent"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def _sent_last_hour(store: Store, recipient: str, now: datetime) -> int:
    return outbox.sent_since(store, recipient, _iso(now - timedelta(hours=1)))


def _backoff(attempts: int, cap: timedelta = BACKOFF_CAP) -> timedelta:
    """1, 2, 4 … minutes, capped (the exponent too: days of retries must not overflow)."""
    return min(BACKOFF_BASE * 2 ** min(max(attempts - 1, 0), 16), cap)


# -- claims --------------------------------------------------------------------------------


def _owner() -> str:
    return f"{socket.gethostname()}/{os.getpid()}/{threading.current_thread().name}"


def claim_timeout(settings: Settings) -> timedelta:
    """How long a claim may stand before it is taken for abandoned: far longer than one
    send may take (the deadline), so a live sender is never overtaken."""
    return max(CLAIM_TIMEOUT_MIN, timedelta(seconds=10 * settings.smtp.send_deadline_seconds))


def _claim(store: Store, row_id: int, now: datetime) -> Row | None:
    """Take one due reply for this sender, atomically; None when someone else has it."""
    with store.transaction():
        taken = outbox.claim(store, row_id, _owner(), _iso(now))
        return outbox.get(store, row_id) if taken else None


def _release(store: Store, item: Row, now: datetime, *, error: str | None = None,
             next_at: datetime | None = None) -> None:
    """Hand a claimed reply back to the queue, its attempts untouched."""
    outbox.unclaim(store, int(item["id"]), _iso(now), error=error,
                   next_at=_iso(next_at) if next_at else None)


def _record(store: Store, item: Row, state: str) -> None:
    outbox.done(store, int(item["id"]), state)


def _claimant_gone(claimed_by: str) -> bool:
    """Whether the process that made a claim is known to be dead (same host, no such pid).

    A SIGKILL leaves its claim behind; on this host we can tell at once that nobody is
    sending it any more, instead of waiting out the claim timeout.
    """
    host, _, rest = claimed_by.partition("/")
    pid_text = rest.split("/", 1)[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    if int(pid_text) == os.getpid():
        return False  # one of our own threads: it may still be sending
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, owned by someone else
        return False
    return False


def _recover_stale_claims(store: Store, settings: Settings, now: datetime) -> int:
    """Claims whose sender died before recording the outcome go back to the queue.

    A claim is stale when its process is gone (same host) or it is older than the claim
    timeout (another host, or a hung sender). The reply may have been accepted by the
    server just before the crash: this is the one documented way a reply goes out
    twice (SPEC §4).
    """
    cutoff = _iso(now - claim_timeout(settings))
    claims = outbox.claims(store)
    if not claims:
        return 0  # the usual case: no write lock taken
    stale_ids = {int(r["id"]) for r in claims
                 if (r["claimed_at"] or "") < cutoff or _claimant_gone(r["claimed_by"] or "")}
    if not stale_ids:
        return 0
    with store.transaction():
        stale = [r for r in claims if int(r["id"]) in stale_ids]
        for row in stale:
            outbox.requeue_stale(
                store, int(row["id"]), row["claimed_by"],
                f"lần gửi trước bị gián đoạn ({row['claimed_by']} dừng khi đang gửi lúc "
                f"{row['claimed_at']}); đã đưa lại vào hàng đợi")
    for row in stale:
        log.warning("reply id=%s claimed by %s at %s was never recorded; queued again "
                    "(it may already have been sent)", row["id"], row["claimed_by"],
                    row["claimed_at"])
    return len(stale)


# -- a reply refused -----------------------------------------------------------------------


def _refused(store: Store, settings: Settings, item: Row, failure: MessageFailure,
             now: datetime) -> bool:
    """Count the attempt; True when the reply is now failed for good."""
    attempts = int(item["attempts"]) + 1
    since = datetime.fromisoformat(item["failing_since"]) if item["failing_since"] else now
    give_up = timedelta(hours=settings.smtp.give_up_after_hours)
    final = failure.permanent or now - since >= give_up
    error = failure.error
    if final and not failure.permanent:
        error = (f"{error} (máy chủ từ chối tạm thời suốt "
                 f"{settings.smtp.give_up_after_hours:g} giờ; đã ngừng gửi lại)")[:600]
    outbox.attempt_failed(store, int(item["id"]), final=final, attempts=attempts, error=error,
                          next_at=_iso(now + _backoff(attempts)), now=_iso(now),
                          since=_iso(since))
    log.warning("reply %s id=%s attempts=%s: %s", "failed" if final else "deferred",
                item["id"], attempts, failure.error)
    return final


# -- server incidents ----------------------------------------------------------------------


@dataclass
class Incident:
    """Consecutive server failures since the server last worked."""

    first_id: int
    started_at: datetime
    last_at: datetime
    failures: int
    kind: str
    error: str

    @property
    def retry_at(self) -> datetime:
        return self.last_at + _backoff(self.failures, SERVER_BACKOFF_CAP)


def open_incident(store: Store) -> Incident | None:
    """The current SMTP incident: 'smtp-down' events after the last 'smtp-up'."""
    rows = events.since_last(store, "smtp-down", "smtp-up")
    if not rows:
        return None
    kind, _, error = rows[-1]["detail"].partition(": ")
    return Incident(int(rows[0]["id"]), datetime.fromisoformat(rows[0]["at"]),
                    datetime.fromisoformat(rows[-1]["at"]), len(rows), kind, error)


def _server_resting(store: Store, now: datetime) -> bool:
    incident = open_incident(store)
    return incident is not None and now < incident.retry_at


def _server_ok(store: Store, now: datetime) -> None:
    incident = open_incident(store)
    if incident is not None:
        events.add_at(store, _iso(now), "smtp-up", f"after {incident.failures} failures")
        log.info("SMTP server works again after %s failures since %s", incident.failures,
                 incident.started_at.isoformat())


def _server_failed(store: Store, settings: Settings, failure: ServerFailure,
                   now: datetime) -> None:
    """Rest the server (back-off), log it, and alert staff once per incident and kind."""
    events.add_at(store, _iso(now), "smtp-down", f"{failure.kind}: {failure.error}"[:300])
    incident = open_incident(store)
    assert incident is not None
    smtp = settings.smtp
    log.error("SMTP %s failure at %s:%s, outbox round stopped (replies stay queued; retry "
              "after %s): %s", failure.kind, smtp.host, smtp.port,
              incident.retry_at.isoformat(timespec="seconds"), failure.error)
    problem = SERVER_PROBLEMS[failure.kind].format(
        server=f"{smtp.host}:{smtp.port}", error=failure.error, password_env=smtp.password_env,
        sender=smtp.from_address)
    _alert(store, settings, now, problem, f"alert:smtp:{failure.kind}:{incident.first_id}")


def _alert(store: Store, settings: Settings, now: datetime, problem: str, key: str) -> None:
    """Queue the staff alert; it goes out when the server works again (logged meanwhile)."""
    from .. import campaign  # campaign queues through this module
    from ..replies import check_templates

    try:
        env = check_templates(settings.paths.templates_dir, ("alert",))
        campaign.alert(store, settings, env, now, problem, key)
    except Exception:
        log.exception("could not queue the staff alert %s", key)


# -- staff ---------------------------------------------------------------------------------


RESENDABLE = ("failed", "bounced", "queued")


def requeue(store: Store, ids: list[int] | None = None, *, all_failed: bool = False,
            now: datetime | None = None, render=None) -> list[int]:
    """Put replies back in the queue, due now, with a fresh give-up clock.

    ``ids`` may name failed, bounced or queued replies (a queued one is just made due
    now); ``all_failed`` takes every failed reply. Returns the ids re-queued. Raises
    ``KeyError`` naming an id that does not exist or cannot be sent again.
    """
    now = now or datetime.now(UTC)
    with store.transaction():
        if all_failed:
            ids = [int(r["id"]) for r in outbox.in_state(store, "failed")]
        for row_id in ids or []:
            row = outbox.get(store, row_id)
            if row is None or row["state"] not in RESENDABLE:
                raise KeyError(row_id, row["state"] if row else None)
            if render is not None:  # rendered again first (``--rebuild``)
                render(row_id)
            outbox.requeue(store, row_id, _iso(now))
        if ids:
            store.event("resend", ",".join(str(i) for i in ids))
    log.info("replies re-queued by staff: %s", ids)
    return list(ids or [])


def rebuild(store: Store, settings: Settings, env, reply_id: int, *, strict: bool = True
            ) -> bool:
    """Render a reply again from what it says (its stored ``Reply``), with the templates
    of today, keeping its attachments; it gets a new Message-ID. In the caller's
    transaction. A reply kept without its content raises ``KeyError(id, reason)``, or
    with ``strict=False`` is left as it was (returns False)."""
    from email import message_from_bytes

    from ..replies import Reply, render_reply

    row = outbox.get(store, reply_id)
    if row is None:
        raise KeyError(reply_id, None)
    try:
        reply = Reply.from_json(row["content"]) if row["content"] else None
    except (ValueError, TypeError, KeyError) as exc:  # written by another version
        log.warning("reply id=%s: stored content unreadable (%s)", reply_id, exc)
        reply = None
    if reply is None:
        if not strict:
            return False
        raise KeyError(reply_id, "kept without readable content (a staff notice, or queued "
                                 "by an older version): send it again as it was, without "
                                 "--rebuild")
    old = message_from_bytes(row["raw"], policy=policy.default)
    attachments = [(part.get_filename() or "tep.xlsx", part.get_content())
                   for part in old.iter_attachments()]  # type: ignore[attr-defined]
    message = render_reply(settings, env, reply, attachments)
    outbox.rewrite(store, reply_id, subject=str(message["Subject"]),
                   message_id=str(message["Message-ID"]),
                   raw=message.as_bytes(policy=SMTP_POLICY))
    log.info("reply id=%s rendered again as %s", reply_id, message["Message-ID"])
    return True


def status_lines(store: Store) -> list[str]:
    """The outbox for ``intake status``, in Vietnamese for staff."""
    from ..replies import short_time

    def when(value: str | None) -> str:
        return short_time(value) if value else ""

    counts = outbox.counts(store)
    order = [*OUTBOX_LABELS, *sorted(set(counts) - set(OUTBOX_LABELS))]
    summary = ", ".join(f"{counts[state]} {OUTBOX_LABELS.get(state, state)}"
                        for state in order if state in counts)
    lines = [f"Hộp thư đi: {summary or 'trống'}."]
    oldest, upcoming = outbox.queue_span(store)
    if oldest:
        lines.append(f"Thư chờ gửi lâu nhất: từ {when(oldest)}; "
                     f"lần gửi tiếp theo: {when(upcoming)}.")
    last = outbox.last_error(store)
    if last:
        lines.append(f"Lỗi gần nhất (thư số {last['id']}, {kind_label(last['kind'])} → "
                     f"{last['recipient']}, {when(last['last_attempt_at'])}): "
                     f"{last['last_error']}")
    incident = open_incident(store)
    if incident:
        label = SERVER_KIND_LABELS.get(incident.kind, incident.kind)
        lines.append(
            f"Máy chủ gửi thư đang gặp sự cố ({label}) từ {short_time(incident.started_at)}, "
            f"{incident.failures} lần thử không được: {incident.error}. Thư vẫn được giữ lại; "
            f"lần thử tiếp theo: {short_time(incident.retry_at)}.")
    return lines


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
        changed += outbox.bounced(store, message_id)
    return changed
