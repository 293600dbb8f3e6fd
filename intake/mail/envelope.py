"""One raw message -> who sent it, when, whether it is real, whether it may be answered.

Parsing is defensive: a header that does not decode becomes empty text, never an
exception, because every message must end with a status (SPEC §4).
"""

from __future__ import annotations

import email
import html
import re
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage, Message
from email.utils import parseaddr

from ..text import clean, fold

_ADDRESS = re.compile(r"[\w.+'-]+@[\w-]+(?:\.[\w-]+)+")
_FORWARD_FROM = re.compile(r"^\s*(?:from|từ|tu)\s*:\s*(.+)$", re.IGNORECASE | re.MULTILINE)
_FORWARD_MARK = re.compile(r"(forwarded message|original message|thư đã chuyển tiếp|"
                           r"chuyển tiếp|-{5,})", re.IGNORECASE)
BLOCKED_LOCAL_PARTS = {"mailer-daemon", "postmaster", "noreply", "no-reply", "do-not-reply",
                       "donotreply"}


def parse(raw: bytes) -> EmailMessage:
    return email.message_from_bytes(raw, policy=policy.default)  # type: ignore[return-value]


def header(message: Message, name: str) -> str:
    """A header as clean text; undecodable or malformed headers give ''."""
    try:
        value = message.get(name)
    except Exception:  # malformed header: the parser raises on access, not on parse
        return ""
    return clean(str(value)) if value is not None else ""


def address(value: str) -> str:
    found = parseaddr(value)[1].strip().lower()
    if "@" not in found:
        match = _ADDRESS.search(value)
        found = match.group(0).lower() if match else ""
    return found


@dataclass
class Envelope:
    message_id: str
    sender: str  # address, lower case
    subject: str
    references: list[str] = field(default_factory=list)
    auto_reason: str = ""  # why no automatic reply may be sent ("" = may reply)
    bounce_of: list[str] = field(default_factory=list)  # our Message-IDs named by a DSN
    auth: str = "none"  # "pass" or "fail"/"none" from the trusted Authentication-Results
    forwarded_by: str = ""
    in_reply_to: str = ""
    first_line: str = ""  # the first non-empty line of the text body (staff commands)

    @property
    def addition(self) -> bool:
        """"bổ sung" in the subject (any case, with or without diacritics) adds rows."""
        return "bo sung" in fold(self.subject)


def _auto_reason(message: Message, sender: str, own: set[str]) -> str:
    auto = header(message, "Auto-Submitted").lower()
    if auto and auto != "no":
        return f"Auto-Submitted: {auto}"
    precedence = header(message, "Precedence").lower()
    if precedence in {"bulk", "list", "junk"}:
        return f"Precedence: {precedence}"
    if header(message, "List-Id") or header(message, "List-Unsubscribe"):
        return "mailing list"
    if message.get_content_type() == "multipart/report":
        return "delivery report"
    return_path = header(message, "Return-Path")
    if return_path.strip() in ("<>", "") and message.get("Return-Path") is not None:
        return "null return path"
    local = sender.split("@")[0]
    if local in BLOCKED_LOCAL_PARTS or "mailer-daemon" in return_path.lower():
        return "mailer-daemon"
    if sender in own:
        return "our own address"
    if header(message, "X-Autoreply") or header(message, "X-Autorespond"):
        return "auto-reply header"
    return ""


def _bounced_ids(message: Message) -> list[str]:
    """Message-IDs of ours a delivery report names (its returned headers or body)."""
    if message.get_content_type() != "multipart/report" and "mailer-daemon" not in header(message, "From").lower():
        return []
    ids: list[str] = []
    for part in message.walk():
        if part.get_content_type() in ("message/rfc822", "text/rfc822-headers", "message/rfc822-headers"):
            payload = part.get_payload()
            inner = payload[0] if isinstance(payload, list) and payload else payload
            text = inner.as_string() if isinstance(inner, Message) else str(inner)
            ids += re.findall(r"(?im)^message-id:\s*(<[^>]+>)", text)
    return ids


def authentication(message: Message, authserv_id: str, sender: str) -> str:
    """Read only the topmost Authentication-Results of the trusted receiving server.

    Headers lower down could have been written by the sender; the receiving server adds
    its own on top. dmarc=pass, or dkim/spf pass for the sender's own domain, is a pass.
    """
    try:
        values = message.get_all("Authentication-Results") or []
    except Exception:
        return "none"
    domain = sender.rsplit("@", 1)[-1]
    for value in values:
        try:
            text = " ".join(str(value).split())
        except Exception:  # a header the parser cannot render is no evidence of anything
            continue
        words = text.split(";", 1)[0].split()
        server = words[0].lower() if words else ""  # "; dmarc=pass" names no server
        if server != authserv_id.lower():
            continue
        lowered = text.lower()
        # DMARC passed for the domain in header.from: that must be the sender's domain,
        # or the pass vouches for someone else's message.
        for match in re.finditer(r"\bdmarc=pass\b([^;]*)", lowered):
            aligned = re.search(r"header\.from=([^\s;]+)", match.group(1))
            if aligned and aligned.group(1).rsplit("@", 1)[-1].strip(">") == domain:
                return "pass"
        for method in ("dkim", "spf"):
            for match in re.finditer(rf"\b{method}=pass\b([^;]*)", lowered):
                rest = match.group(1)
                where = re.search(r"(?:header\.[di]|smtp\.mailfrom|header\.from)=([^\s;]+)", rest)
                if where and where.group(1).rsplit("@", 1)[-1].strip(">") == domain:
                    return "pass"
        return "fail"
    return "none"


def original_sender(message: Message) -> str:
    """The first author of a forwarded message: an attached message/rfc822 or inline text."""
    for part in message.walk():
        if part.get_content_type() == "message/rfc822":
            payload = part.get_payload()
            inner = payload[0] if isinstance(payload, list) and payload else None
            if isinstance(inner, Message):
                return address(header(inner, "From"))
    for part in message.walk():
        if part.get_content_type() == "text/plain" and not part.get_filename():
            try:
                text = part.get_content()
            except Exception:
                continue
            mark = _FORWARD_MARK.search(text)
            if mark:
                found = _FORWARD_FROM.search(text[mark.end():])
                if found:
                    return address(found.group(1))
    return ""


def envelope(message: Message, own: set[str], authserv_id: str,
             trusted_forwarders: set[str]) -> Envelope:
    raw_from = header(message, "From")
    sender = address(raw_from)
    if not sender:
        sender = address(header(message, "Sender")) or address(header(message, "Return-Path"))
    references = re.findall(r"<[^>]+>", header(message, "References"))
    result = Envelope(
        message_id=message_id(message),
        sender=sender,
        subject=header(message, "Subject"),
        references=references,
        auto_reason=_auto_reason(message, sender, own),
        bounce_of=_bounced_ids(message),
        auth=authentication(message, authserv_id, sender),
        in_reply_to=(re.findall(r"<[^>]+>", header(message, "In-Reply-To")) or [""])[0],
        first_line=first_body_line(message),
    )
    if sender in trusted_forwarders:
        original = original_sender(message)
        if original:
            result.forwarded_by, result.sender = sender, original
    return result


_TAG = re.compile(r"<[^>]*>")


def _own_text_parts(message: Message, wanted: str):
    """The message's own text parts of one type, never those inside an attached message
    (a forwarded mail's words are not the forwarder's) nor named attachments."""
    if message.get_content_maintype() == "multipart":
        payload = message.get_payload()
        for part in payload if isinstance(payload, list) else []:
            if part.get_content_maintype() == "message":
                continue
            yield from _own_text_parts(part, wanted)
    elif message.get_content_type() == wanted and not message.get_filename():
        yield message


def _html_text(text: str) -> str:
    text = re.sub(r"(?is)<(style|script|head|title)\b[^>]*>.*?</\1\s*>", "", text)
    text = re.sub(r"(?i)<br\s*/?>|</(p|div|li|tr|h\d)\s*>", "\n", text)
    return html.unescape(_TAG.sub(" ", text))


def first_body_line(message: Message) -> str:
    """The first non-empty line the sender wrote (plain text, else HTML as text).

    Quoted text (">") and signatures come after it, so a command typed on top of a reply
    is found; nothing here may raise for a malformed body.
    """
    for wanted in ("text/plain", "text/html"):
        for part in _own_text_parts(message, wanted):
            try:
                text = str(part.get_content())
            except Exception:
                continue
            if wanted == "text/html":
                text = _html_text(text)
            for line in text.splitlines():
                line = clean(line.replace("\xa0", " "))
                if line and not line.startswith(">"):
                    return line[:300]
    return ""


def message_id(message: Message) -> str:
    """The Message-ID as it stands in the header (ASCII, as servers search for it); an
    encoded-word in place of one is no Message-ID (identity falls back to the content)."""
    try:
        for name, value in message.raw_items():
            if name.lower() == "message-id":
                found = re.findall(r"<[\x21-\x7e]+?>", str(value))
                return found[0] if found else ""
    except Exception:
        return ""
    return ""


def identity(raw: bytes, authserv_id: str) -> tuple[str, str, str]:
    """(Message-ID, sender, subject) for recording a message; never raises.

    Recording must succeed for every message, however broken, so that it can be set aside
    with its error instead of stopping every message behind it.
    """
    try:
        env = envelope(parse(raw), set(), authserv_id, set())
    except Exception:
        return "", "", ""
    return env.message_id, env.sender, env.subject
