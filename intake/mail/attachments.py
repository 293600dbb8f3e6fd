"""Spreadsheet files out of a message, forwarded messages included; names made safe.

A file name from mail is sender text: it may hold "../", newlines, NUL or be 300
characters long. It is cleaned before it is shown or used as part of a path.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from email.message import Message
from pathlib import PurePath

from ..sheets.read import is_spreadsheet_name
from ..text import safe_filename

SPREADSHEET_TYPES = {
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": ".xlsx",
    "application/vnd.ms-excel": ".xls",
    "application/vnd.ms-excel.sheet.macroenabled.12": ".xlsm",
    "application/vnd.oasis.opendocument.spreadsheet": ".ods",
    "text/csv": ".csv",
    "application/zip": ".zip",
    "application/x-zip-compressed": ".zip",
}
log = logging.getLogger(__name__)


@dataclass
class Attachment:
    name: str
    data: bytes


def _filename(part: Message) -> str:
    try:
        name = part.get_filename()
    except Exception:
        name = None
    return str(name) if name else ""


# Files that may well hold the list but cannot be read as one (SPEC §4 step 4): sent
# alone, they get FILE_UNSUPPORTED naming each, not a "no attachment" reply.
LIST_CANDIDATES = {".rar", ".7z", ".tar", ".gz", ".pdf", ".doc", ".docx", ".odt", ".rtf",
                   ".numbers", ".gsheet"}


def unreadable_candidates(names: list[str]) -> list[str]:
    return [n for n in names if PurePath(n.lower()).suffix in LIST_CANDIDATES]


def extract(message: Message, max_attachments: int) -> tuple[list[Attachment], list[str]]:
    """(spreadsheets, names of the other files ignored); nested rfc822 parts are walked."""
    sheets: list[Attachment] = []
    ignored: list[str] = []
    for part in message.walk():
        if part.is_multipart() or part.get_content_type() == "message/rfc822":
            continue
        ctype = part.get_content_type()
        name = _filename(part)
        disposition = (part.get_content_disposition() or "").lower()
        if not name and ctype not in SPREADSHEET_TYPES:
            continue
        if not name and disposition != "attachment" and ctype == "text/csv":
            continue
        name = safe_filename(name or "tep-dinh-kem" + SPREADSHEET_TYPES.get(ctype, ""))
        if not is_spreadsheet_name(name) and ctype in SPREADSHEET_TYPES:
            name += SPREADSHEET_TYPES[ctype]
        if not is_spreadsheet_name(name):
            ignored.append(name)
            continue
        if len(sheets) >= max_attachments:
            ignored.append(name)
            continue
        try:
            data = part.get_payload(decode=True) or b""
        except Exception as exc:  # a broken transfer encoding: read what is there, say why
            log.warning("attachment %r could not be decoded (%s); reading it as it is",
                        name, exc)
            raw = part.get_payload()
            data = raw.encode("latin-1", "replace") if isinstance(raw, str) else b""
        sheets.append(Attachment(name, data))
    return sheets, ignored
