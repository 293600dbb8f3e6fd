"""Spreadsheet files out of a message, forwarded messages included; names made safe.

A file name from mail is sender text: it may hold "../", newlines, NUL or be 300
characters long. It is cleaned before it is shown or used as part of a path.
"""

from __future__ import annotations

import logging
import mimetypes
import re
from dataclasses import dataclass
from email.header import decode_header, make_header
from email.message import Message

from ..formats import is_accepted, may_hold_list, suffix_for_type
from ..text import safe_filename

log = logging.getLogger(__name__)


@dataclass
class Attachment:
    name: str
    data: bytes


# A name parameter written the way some mailers do, outside the standard (an unquoted
# encoded word: ``filename==?utf-8?B?…?=``), which the parser does not return.
_RAW_NAME = re.compile(r"(?:^|;)\s*(?:file)?name\s*=\s*(\"[^\"]*\"|[^;]*)", re.IGNORECASE)


def _filename(part: Message) -> str:
    try:
        name = part.get_filename()
    except Exception as exc:  # a malformed RFC 2231 name: the part is named by its type
        log.warning("attachment name could not be decoded (%s: %s)", type(exc).__name__, exc)
        name = None
    return str(name) if name else _raw_filename(part)


MAX_RAW_NAME = 2_000  # characters of a raw name parameter read (names are cut to 120 bytes)


def _raw_filename(part: Message) -> str:
    """The name as written in the headers, encoded words decoded, when the parser gave
    none: a unit's file must never vanish because its mailer wrote the name loosely."""
    items = list(getattr(part, "raw_items", part.items)())  # as written, not as parsed
    for header in ("content-disposition", "content-type"):
        for value in (v for k, v in items if k.lower() == header):
            match = _RAW_NAME.search(" ".join(str(value).split()))
            if not match or not match.group(1).strip().strip('"'):
                continue
            # A file name needs no more: decoding thousands of encoded words is slow.
            text = match.group(1).strip().strip('"')[:MAX_RAW_NAME]
            try:
                return str(make_header(decode_header(text)))
            except Exception as exc:  # an undecodable word: keep the text as written
                log.warning("attachment name %r could not be decoded (%s)", text, exc)
                return text
    return ""


def _disposition(part: Message) -> str:
    """"attachment", "inline" or ""; from the header as written when the parser cannot
    read its parameters (a name in UTF-7 that spells a lone surrogate)."""
    try:
        return (part.get_content_disposition() or "").lower()
    except Exception as exc:
        log.warning("content disposition could not be parsed (%s: %s)", type(exc).__name__, exc)
    for key, value in getattr(part, "raw_items", part.items)():
        if key.lower() == "content-disposition":
            return str(value).split(";", 1)[0].strip().lower()
    return ""


def _type_suffix(ctype: str) -> str:
    """".pdf" for application/pdf: how to name a nameless attached file of that type."""
    return mimetypes.guess_extension(ctype, strict=False) or ""


def unreadable_candidates(names: list[str]) -> list[str]:
    """The ignored files that may hold the list in a form no reader takes (a .pdf, a .rar):
    sent alone, they get FILE_UNSUPPORTED naming each, not a "no attachment" reply."""
    return [n for n in names if may_hold_list(n)]


def extract(message: Message, max_attachments: int) -> tuple[list[Attachment], list[str]]:
    """(spreadsheets, names of the other files ignored); nested rfc822 parts are walked."""
    sheets: list[Attachment] = []
    ignored: list[str] = []
    for part in message.walk():
        if part.is_multipart() or part.get_content_type() == "message/rfc822":
            continue
        ctype = part.get_content_type()
        name = _filename(part)
        disposition = _disposition(part)
        typed = suffix_for_type(ctype)  # the suffix its MIME type says, "" for others
        if not name and not typed:
            if disposition == "attachment" and not ctype.startswith("text/"):
                # an attached file with no usable name: said to be ignored, never dropped
                ignored.append(safe_filename("tep-dinh-kem" + _type_suffix(ctype)))
            continue
        if not name and disposition != "attachment" and typed == ".csv":
            continue  # a text/csv body part, not a file the sender attached
        name = safe_filename(name or "tep-dinh-kem" + typed)
        if not is_accepted(name) and typed:
            name += typed
        if not is_accepted(name):
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
