"""Sample district mail: filled forms and the emails that carry them.

Used by ``intake demo`` and by the tests, so both exercise the same, realistic input: a
form written by the same code as ``intake template``, an email as Gmail delivers it
(with the receiving server's Authentication-Results on top).
"""

from __future__ import annotations

import imaplib
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from .config import Settings
from .formats import XLSX_TYPE
from .reference import Reference, Unit
from .sheets.template import template_bytes


def eligible_rows(settings: Settings, reference: Reference, unit: Unit,
                  limit: int | None = None, titled_first: bool = True) -> list[list[object]]:
    """Valid form rows for a unit: every eligible hamlet of its titled communes first."""
    since, year = settings.rules.recognised_since, settings.campaign.year
    communes = sorted(reference.communes.get(unit.code, []), key=lambda c: not c.title) \
        if titled_first else reference.communes.get(unit.code, [])
    rows: list[list[object]] = []
    for commune in communes:
        for cell in commune.cells:
            recognised = cell.recognised_year is not None and cell.recognised_year >= since
            registering = cell.registered_year == year
            if not (recognised or registering):
                continue
            provincial = len(rows) % 4 == 0
            rows.append([
                len(rows) + 1, commune.name, f"Chi đoàn {cell.hamlet}",
                settings.rules.min_members_provincial + 5, cell.name,
                cell.recognised_year if recognised else None, None if recognised else "x",
                "x" if provincial else None, None if provincial else "x",
                2019 if provincial else None, "Nguyễn Văn An", "0912 345 678", None,
            ])
            if limit is not None and len(rows) >= limit:
                return rows
    return rows


def form(settings: Settings, reference: Reference, unit: Unit,
         rows: list[list[object]]) -> bytes:
    return template_bytes(settings, reference, unit, rows)


def unit_mail(sender: str, to: str, subject: str, *, body: str = "",
              attachments: list[tuple[str, bytes]] = (),  # type: ignore[assignment]
              date: datetime | None = None, authserv_id: str = "mx.google.com",
              auth: str = "pass", headers: dict[str, str] | None = None) -> EmailMessage:
    """An email as the board's mailbox receives it from a district unit."""
    message = EmailMessage()
    domain = sender.rsplit("@", 1)[-1]
    if auth:
        message["Authentication-Results"] = (
            f"{authserv_id}; dkim={auth} header.i=@{domain}; spf={auth} "
            f"smtp.mailfrom={sender}; dmarc={auth} header.from={domain}")
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(date or datetime.now().astimezone())
    message["Message-ID"] = make_msgid("unit", domain=domain)
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(body or "Kính gửi Ban Tổ chức – Kiểm tra,\n\nĐơn vị gửi danh sách "
                        "đăng ký xây dựng Chi đoàn kiểu mẫu.\n\nTrân trọng.")
    for name, data in attachments:
        maintype, subtype = XLSX_TYPE.split("/")
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return message


def append(client: imaplib.IMAP4, folder: str, message: EmailMessage | bytes,
           received: datetime) -> None:
    """APPEND with a chosen INTERNALDATE (the time the deadline test uses)."""
    raw = message if isinstance(message, bytes) else message.as_bytes()
    status, data = client.append(folder, "", imaplib.Time2Internaldate(received), raw)
    if status != "OK":
        raise RuntimeError(f"APPEND failed: {data!r}")
