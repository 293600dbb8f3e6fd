"""Which reply a message gets, rendered from the staff-editable templates in ``templates/``.

Text and HTML alternatives of one template pair; HTML is auto-escaped, so sender text
(names, cell values) can never become markup. Every template is compiled at start, so a
broken edit is reported before the first unit is answered, not in the middle of a cycle.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from jinja2 import TemplateError as JinjaError

from .config import TZ, Settings
from .errors import TemplateError
from .findings import Finding, number
from .formats import XLSX_TYPE
from .text import nfc

KINDS = ("accepted", "needs-correction", "no-attachment", "unknown-sender", "rejected-late",
         "reminder", "digest", "final-report", "alert", "waiting", "staff-command",
         "reference-changed")
_RE_PREFIX = re.compile(r"^\s*((re|fw|fwd|tl|trả lời|tr)\s*:\s*)+", re.IGNORECASE)


def environment(templates_dir: Path) -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(templates_dir)),
        autoescape=lambda name: bool(name and name.endswith(".html.j2")),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
    )
    env.filters["number"] = number  # "14.400", as the findings write counts
    return env


def check_templates(templates_dir: Path, kinds: tuple[str, ...] = KINDS) -> Environment:
    """Compile every template now; a missing or broken one is a ``TemplateError``."""
    env = environment(templates_dir)
    for kind in kinds:
        for suffix in ("txt", "html"):
            name = f"{kind}.{suffix}.j2"
            try:
                env.get_template(name)
            except JinjaError as exc:
                where = f" line {exc.lineno}" if getattr(exc, "lineno", None) else ""
                raise TemplateError(f"template {templates_dir / name}{where}: {exc}") from None
    return env


def reply_subject(original: str) -> str:
    """"Re: " once, whatever chain of Re:/Fwd:/TL: the original carried."""
    return "Re: " + (_RE_PREFIX.sub("", original).strip() or "Danh sách Chi đoàn kiểu mẫu")


def local_time(moment: datetime | None) -> str:
    """"09:30 ngày 10/02/2021": local time as a Vietnamese sentence says it."""
    return moment.astimezone(TZ).strftime("%H:%M ngày %d/%m/%Y") if moment else ""


def short_time(moment: datetime | str | None) -> str:
    """"10/02/2021 09:30": local time in tables, subjects and the status screen."""
    if not moment:
        return ""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return moment.astimezone(TZ).strftime("%d/%m/%Y %H:%M")


def before(deadline: datetime) -> str:
    """"trước ngày 20/02/2021" for a deadline at midnight (as the letter words it), else
    "trước 17:00 ngày 20/02/2021": "trước 00:00 ngày 20/02" reads like a trick."""
    moment = deadline.astimezone(TZ)
    if (moment.hour, moment.minute) == (0, 0):
        return moment.strftime("trước ngày %d/%m/%Y")
    return "trước " + local_time(moment)


def where(f: Finding) -> str:
    parts = []
    if f.file:
        parts.append(f"tệp {f.file}")
    if f.cell:
        parts.append(f"ô {f.cell}")
    return (", ".join(parts) + ": ") if parts else ""


@dataclass
class Line:
    """One finding as a reply shows it: a finding, or one condensed line for several."""

    message: str
    cell: str = ""
    suggestion: str = ""
    row: int | None = None
    column: str = ""
    code: str = ""
    value: str = ""

    @classmethod
    def of(cls, f: Finding) -> Line:
        return cls(f.message, f.cell, f.suggestion, f.row, f.column, f.code, f.value)


@dataclass
class Group:
    """A reply's findings of one file and sheet (or the coverage, or the whole list)."""

    file: str
    sheet: str
    title: str
    findings: list[Line]


@dataclass
class Note:
    """A warning the reply mentions, located ("tệp …, ô …: ")."""

    where: str
    message: str
    suggestion: str = ""


@dataclass
class FileLine:
    name: str
    rows: int
    valid_rows: int


@dataclass
class Reply:
    """Everything a unit-facing reply says and where it goes.

    Built by deciding and filing, rendered by the templates, and stored as JSON with its
    outbox row, so that any reply can be rendered again (``intake resend --rebuild``) with
    the templates of the day.
    """

    kind: str
    to: str
    status: str
    original_subject: str = ""
    original_id: str = ""
    references: list[str] = field(default_factory=list)
    unit_name: str = ""
    sender: str = ""
    received_at: str = ""  # local time, as the reply says it
    late: bool = False
    addition: bool = False
    recheck: bool = False
    ignored: list[str] = field(default_factory=list)
    files: list[FileLine] = field(default_factory=list)
    valid_rows: int = 0
    provincial: int = 0
    district: int = 0
    unit_valid: int = 0  # the unit's whole current list (after a "bổ sung")
    unit_provincial: int = 0
    unit_district: int = 0
    errors: list[Line] = field(default_factory=list)
    groups: list[Group] = field(default_factory=list)
    more: int = 0  # errors only the marked-up file shows
    warnings: list[Note] = field(default_factory=list)
    annotated: bool = False
    answer: list[str] = field(default_factory=list)  # a staff command's result
    command: str = ""

    def context(self) -> dict[str, object]:
        """The template variables (nested values stay objects, as templates read them)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> Reply:
        data = json.loads(text)
        data["files"] = [FileLine(**f) for f in data["files"]]
        data["errors"] = [Line(**f) for f in data["errors"]]
        data["groups"] = [Group(g["file"], g["sheet"], g["title"],
                                [Line(**f) for f in g["findings"]]) for g in data["groups"]]
        data["warnings"] = [Note(**w) for w in data["warnings"]]
        return cls(**data)


def group_findings(findings: list[Finding]) -> list[Group]:
    """Errors grouped by file and sheet, in row order, for the correction reply."""
    groups: dict[tuple[str, str], list[Finding]] = {}
    for f in findings:
        groups.setdefault((f.file, f.sheet), []).append(f)
    return [
        Group(file, sheet, _group_title(file, sheet, items),
              [Line.of(f) for f in sorted(items, key=lambda f: (f.row or 0, f.column))])
        for (file, sheet), items in groups.items()
    ]


def _group_title(file: str, sheet: str, items: list[Finding]) -> str:
    if file and not all(f.code == "COVERAGE_INCOMPLETE" for f in items):
        return f"Tệp {file}" + (f", trang tính “{sheet}”" if sheet else "")
    if all(f.code == "COVERAGE_INCOMPLETE" for f in items):
        return "Xã, phường đạt chuẩn Nông thôn mới, Đô thị văn minh"
    return "Toàn bộ danh sách"


def render(env: Environment, kind: str, context: dict[str, object]) -> tuple[str, str]:
    try:
        text = env.get_template(f"{kind}.txt.j2").render(context)
        html = env.get_template(f"{kind}.html.j2").render(context)
    except JinjaError as exc:
        raise TemplateError(f"template {kind}: {exc}") from None
    return nfc(text), nfc(html)


def common_context(settings: Settings) -> dict[str, object]:
    """What every template may use: who signs, the campaign, and the late policy (with
    the message's own ``late``, a reply never offers a date already past to resend by)."""
    deadline = settings.campaign.deadline
    return {
        "board": settings.board.full_name,
        "board_name": settings.board.name,
        "organisation": settings.board.organisation,
        "letter": settings.board.letter,
        "year": settings.campaign.year,
        "deadline": local_time(deadline),
        "deadline_before": before(deadline),
        "late_policy": settings.campaign.late_policy,
    }


def compose(settings: Settings, env: Environment, kind: str, context: dict[str, object], *,
            to: str, subject: str, headers: dict[str, str],
            attachments: list[tuple[str, bytes]] = ()) -> EmailMessage:  # type: ignore[assignment]
    """One automatic message from its template pair, with our own Message-ID and Date."""
    text, html = render(env, kind, {"subject": subject, **common_context(settings), **context})
    message = EmailMessage()
    message["From"] = formataddr((settings.smtp.from_name or settings.board.full_name,
                                  settings.smtp.from_address))
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(datetime.now(TZ))
    domain = settings.smtp.from_address.rsplit("@", 1)[-1] or "intake.invalid"
    message["Message-ID"] = make_msgid("intake", domain=domain)
    for name, value in headers.items():
        message[name] = value
    message["X-Auto-Response-Suppress"] = "All"
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    maintype, subtype = XLSX_TYPE.split("/")
    for name, data in attachments:
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return message


def build(settings: Settings, env: Environment, kind: str, context: dict[str, object], *,
          to: str, original_subject: str, original_id: str, references: list[str],
          status: str, late: bool = False,
          attachments: list[tuple[str, bytes]] = ()) -> EmailMessage:  # type: ignore[assignment]
    """A reply threaded under the unit's email, marked automatic (RFC 3834)."""
    headers = {}
    if original_id:
        headers["In-Reply-To"] = original_id
        headers["References"] = " ".join([*references[-10:], original_id])
    headers["Auto-Submitted"] = "auto-replied"
    headers["X-Intake-Status"] = status
    if late:
        headers["X-Intake-Late"] = "yes"
    return compose(settings, env, kind, {"original_subject": original_subject, **context},
                   to=to, subject=reply_subject(original_subject), headers=headers,
                   attachments=attachments)


def render_reply(settings: Settings, env: Environment, reply: Reply,
                 attachments: list[tuple[str, bytes]] = ()) -> EmailMessage:  # type: ignore[assignment]
    """The email of a reply, from its stored or freshly built content."""
    return build(settings, env, reply.kind, reply.context(), to=reply.to,
                 original_subject=reply.original_subject, original_id=reply.original_id,
                 references=reply.references, status=reply.status, late=reply.late,
                 attachments=attachments)


def notice(settings: Settings, env: Environment, kind: str, context: dict[str, object], *,
           to: str, subject: str,
           attachments: list[tuple[str, bytes]] = ()) -> EmailMessage:  # type: ignore[assignment]
    """A message we start (reminder, digest, report, alert): auto-generated, not a reply."""
    return compose(settings, env, kind, context, to=to, subject=subject,
                   headers={"Auto-Submitted": "auto-generated", "X-Intake-Kind": kind},
                   attachments=attachments)
