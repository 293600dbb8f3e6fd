"""Steps 1–5 of SPEC §4: one raw message and the time it was received → an ``Outcome``.

Pure: it reads the settings, the reference lists and, through the lookups it is given,
the addresses staff added and the hamlets other units hold; it writes nothing. Who the
sender is, whether they are real, whether they may be answered, what their files say;
filing (``filing.py``) then writes what was decided, in one transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from . import staff
from .config import Settings
from .findings import Finding, finding
from .mail.attachments import extract, unreadable_candidates
from .mail.envelope import Envelope, envelope, parse
from .reference import Reference, Unit
from .replies import Reply, local_time
from .sheets.report import HeldBy, Report, check_files
from .store import Status


@dataclass
class Outcome:
    """What processing decided for one message, before anything is written."""

    status: str
    unit: Unit | None = None
    detail: str = ""
    late: bool = False
    reply_kind: str = ""
    reply: Reply | None = None  # what a reply will say; filing adds the figures
    report: Report | None = None
    attachments: list[tuple[str, bytes]] = field(default_factory=list)
    extra_findings: list[Finding] = field(default_factory=list)
    envelope: Envelope | None = None  # set by ``decide``; the reply is addressed from it
    bounce_of: list[str] = field(default_factory=list)  # our replies a DSN reports lost
    command: staff.Command | None = None  # a staff command (status "staff-command")
    answer: list[str] = field(default_factory=list)  # what was done, for the staff member


class Decider:
    """Decides messages for one configuration; ``unit_for`` maps a sender to its unit
    (units.csv plus the addresses staff added), ``held_by_others`` says which hamlets
    other units hold (ROW_CONFLICT; ``store.submissions.held_elsewhere``). Both are
    lookups it is given: it reads through them and writes nothing."""

    def __init__(self, settings: Settings, reference: Reference,
                 unit_for: Callable[[str], Unit | None],
                 held_by_others: HeldBy | None = None) -> None:
        self.settings = settings
        self.reference = reference
        self.unit_for = unit_for
        self.held_by_others = held_by_others

    def decide(self, raw: bytes, received: datetime, trusted_unit: Unit | None = None
               ) -> Outcome:
        """Steps 1–5 of SPEC §4 for one message.

        ``trusted_unit``: staff released the message as this unit's (SPEC §10): the
        sender check is skipped, on staff's word.
        """
        message = parse(raw)
        env = self.envelope_of(message)
        outcome = self._decide(message, env, received, trusted_unit)
        outcome.envelope = env
        if outcome.reply is None:
            outcome.reply = self.reply(env, received)
        return outcome

    def envelope_of(self, message) -> Envelope:
        """Who sent it, as this configuration reads senders (our own addresses, the
        receiving server to believe, trusted forwarders)."""
        settings = self.settings
        own = {settings.smtp.from_address.lower(), settings.mailbox.username.lower()}
        return envelope(message, own, settings.rules.authserv_id,
                        {a.lower() for a in settings.rules.trusted_forwarders})

    def _staff_command(self, env: Envelope) -> Outcome | None:
        """A command from staff (SPEC §10), or a command-like message from anyone else,
        which is held: only a staff address that passes the sender check may command."""
        command = staff.parse_command(env.first_line, set(self.reference.units))
        settings = self.settings
        genuine = not settings.rules.require_sender_auth or env.auth == "pass"
        from_staff = env.sender in {a.lower() for a in settings.rules.staff} and genuine
        if command is None:
            if from_staff:  # a colleague's mail is not a unit's list: no unit-facing reply
                return Outcome(Status.IGNORED, detail="thư của cán bộ Ban, không có lệnh")
            return None
        if from_staff:
            return Outcome(Status.STAFF_COMMAND, detail=env.first_line[:200], command=command,
                           reply_kind="staff-command")
        if command.verb == "unknown":
            return None  # an ordinary message that happens to begin with such a word
        return Outcome(Status.HELD, detail="thư có dạng lệnh của cán bộ nhưng không gửi từ địa chỉ "
                       "cán bộ đã xác thực; không thực hiện")

    def _decide(self, message, env: Envelope, received: datetime,
                trusted_unit: Unit | None = None) -> Outcome:
        settings = self.settings
        context = self.reply(env, received)
        if env.bounce_of:  # filing marks our reply bounced; deciding writes nothing
            return Outcome(Status.IGNORED, detail="thư báo gửi không thành công",
                           bounce_of=list(env.bounce_of))
        if env.auto_reason:
            return Outcome(Status.IGNORED, detail=f"thư tự động ({env.auto_reason})")
        if trusted_unit is None and (command := self._staff_command(env)) is not None:
            return command
        unit = trusted_unit or self.unit_for(env.sender)
        files, ignored = extract(message, settings.limits.max_attachments)
        attachments = [(f.name, f.data) for f in files]
        if unit is None:
            # Answer only a sender who is real: a reply to a forged From is backscatter.
            genuine = not settings.rules.require_sender_auth or env.auth == "pass"
            return Outcome(Status.UNKNOWN_SENDER, detail=f"địa chỉ {env.sender or '(trống)'} chưa đăng ký",
                           reply_kind="unknown-sender" if env.sender and genuine else "",
                           reply=context, attachments=attachments)
        context.unit_name = unit.name
        if trusted_unit is None and settings.rules.require_sender_auth and env.auth != "pass":
            return Outcome(Status.HELD, unit, attachments=attachments, detail=(
                "không xác thực được người gửi: có thể là thư giả mạo địa chỉ của đơn vị "
                f"(Authentication-Results của {settings.rules.authserv_id}: {env.auth})"))
        late = received >= settings.campaign.deadline
        if late and settings.campaign.late_policy == "reject":
            return Outcome(Status.REJECTED_LATE, unit, late=True, reply_kind="rejected-late",
                           reply=context, detail="gửi sau hạn chót")
        candidates = unreadable_candidates(ignored)
        if not attachments and candidates:  # the list, most likely, in a form we cannot read
            attachments = [(name, b"") for name in candidates]
        if not attachments:
            context.ignored = list(ignored)
            return Outcome(Status.NO_ATTACHMENT, unit, late=late, reply_kind="no-attachment",
                           reply=context)
        report = check_files(attachments, self.reference, settings, unit=unit, coverage=False,
                             held=self.held_by_others)
        extra = [self.late_finding(received)] if late else []
        return Outcome(Status.ACCEPTED, unit, late=late, report=report, attachments=attachments,
                       reply=context, extra_findings=extra,
                       detail="bổ sung" if env.addition else "")

    def reply(self, env: Envelope, received: datetime) -> Reply:
        """The reply to this message as far as deciding knows it: to whom, under which
        message, received when; its kind and status are set when it is queued."""
        return Reply(kind="", to=env.sender, status="", original_subject=env.subject,
                     original_id=env.message_id, references=list(env.references),
                     sender=env.sender, received_at=local_time(received),
                     late=received >= self.settings.campaign.deadline)

    def late_finding(self, received: datetime) -> Finding:
        return finding(
            "MAIL_LATE", f"Thư được nhận lúc {local_time(received)}, sau hạn chót "
            f"{local_time(self.settings.campaign.deadline)}.", value=local_time(received))
