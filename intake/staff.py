"""Staff put right what the machine cannot decide (SPEC §10): review, release, reject, assign.

A message the machine sets aside (a failed sender check, an unknown sender, an error it
could not get past) waits for staff under a **token**: eight characters from an alphabet
without look-alikes ("K7QM-2XDH"), derived with HMAC from a secret kept in the data
folder, so nobody can guess the token of a message from its number, and good for one
decision only (a settled message is no longer waiting).

Every decision is recorded in ``actions`` (who, when, what, note) and can be repeated
safely: releasing a message twice files it once and says so the second time. The same
functions serve the command line and commands sent by email; the caller holds the cycle
lock, so a decision never overlaps an intake cycle.
"""

from __future__ import annotations

import getpass
import hashlib
import hmac
import logging
import os
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from . import archive
from .errors import IntakeError, MailboxError
from .labels import status_label
from .mail import imap, smtp
from .replies import local_time, notice
from .store import WAITING, Stage, Status, events, messages, now_iso, outbox, submissions
from .text import fold, strip_diacritics

if TYPE_CHECKING:
    from imap_tools import BaseMailBox as MailBox

    from .pipeline import Pipeline
    from .reference import Reference, Unit
    from .store import Store

log = logging.getLogger(__name__)

WAITING_STATUSES = WAITING
ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I/L: read aloud, typed by hand
KEY_FILE = "staff.key"


class StaffError(IntakeError):
    """A staff decision that cannot be carried out (unknown token, not waiting, …)."""

    hint = "see the waiting messages and their tokens with `intake review`"


def cli_actor() -> str:
    """Who acted, for the record, when a decision comes from the command line."""
    try:
        user = getpass.getuser()
    except Exception:  # no passwd entry (containers)
        user = str(os.getuid())
    return f"{user} (dòng lệnh)"


# -- tokens --------------------------------------------------------------------------------


def _key(data_dir: Path) -> bytes:
    """The secret behind the tokens, made once per data folder (readable by us only)."""
    path = data_dir / KEY_FILE
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it a moment ago
        return bytes.fromhex(path.read_text().strip())
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_hex(32))
    return bytes.fromhex(path.read_text().strip())


def make_token(data_dir: Path, message_id: int, digest: str) -> str:
    mac = hmac.new(_key(data_dir), f"{message_id}:{digest}".encode(), hashlib.sha256).digest()
    number = int.from_bytes(mac[:8], "big")
    chars = []
    for _ in range(8):
        number, index = divmod(number, len(ALPHABET))
        chars.append(ALPHABET[index])
    return "".join(chars[:4]) + "-" + "".join(chars[4:])


def normalise_token(text: str) -> str:
    """"k7qm 2xdh", "K7QM-2XDH", "k7qm2xdh" are one token."""
    compact = "".join(ch for ch in text.upper() if ch.isalnum())
    return f"{compact[:4]}-{compact[4:]}" if len(compact) == 8 else compact


def looks_like_token(text: str) -> bool:
    compact = normalise_token(text).replace("-", "")
    return len(compact) == 8 and all(ch in ALPHABET for ch in compact)


# -- what is waiting -------------------------------------------------------------------------


@dataclass(frozen=True)
class Waiting:
    """One message waiting for staff, as ``intake review`` shows it (SPEC §10 JSON keys)."""

    id: int
    token: str
    status: str
    received_at: str  # ISO 8601
    sender: str
    subject: str
    reason: str
    attachments: str

    def as_json(self) -> dict[str, str]:
        return {"token": self.token, "status": self.status, "received_at": self.received_at,
                "sender": self.sender, "subject": self.subject, "reason": self.reason,
                "attachments": self.attachments}


def _waiting(row) -> Waiting:
    reason = row["detail"] or ""
    if row["error"] and row["error"] not in reason:
        reason = f"{reason}: {row['error']}" if reason else row["error"]
    return Waiting(int(row["id"]), row["token"] or "", row["status"], row["received_at"],
                   row["sender"], row["subject"], reason, row["attachments"])


def unit_for(reference: Reference, store: Store, address: str) -> Unit | None:
    """The unit of a sender: units.csv, or an address staff added (``intake assign``)."""
    unit = reference.unit_for_address(address)
    if unit is None and address:
        code = events.unit_of_address(store, address)
        unit = reference.units.get(code) if code else None
    return unit


def waiting(store) -> list[Waiting]:
    """What waits for staff, oldest first (``intake review``, the digest, ``status``)."""
    return [_waiting(r) for r in messages.waiting(store)]


def find(pipeline: Pipeline, ident: str):
    """The message a token (or the store's own id) names; ``StaffError`` when none does."""
    text = ident.strip()
    row = None
    if text.isdigit():
        row = messages.get(pipeline.store, int(text))
    if row is None:
        row = messages.by_token(pipeline.store, normalise_token(text))
    if row is None:
        raise StaffError(f"không có thư nào mang mã {text!r}")
    return row


def _require_waiting(row) -> None:
    if row["settled"]:
        done = "đã được duyệt" if row["settled"] == "released" else "đã bị từ chối"
        raise StaffError(f"thư mã {row['token'] or row['id']} {done} trước đó; không còn chờ xử lý")
    if row["status"] not in WAITING_STATUSES or row["stage"] == Stage.RECORDED:
        raise StaffError(f"thư mã {row['token'] or row['id']} không ở trạng thái chờ Ban xem xét")


# -- setting aside ---------------------------------------------------------------------------


def set_aside(pipeline: Pipeline) -> int:
    """Give every newly waiting message its token and tell staff at once (SPEC §10)."""
    settings = pipeline.settings
    fresh = messages.waiting_without_token(pipeline.store)
    for row in fresh:
        token = make_token(settings.paths.data_dir, int(row["id"]), row["sha256"])
        with pipeline.store.transaction():
            messages.set_token(pipeline.store, int(row["id"]), token)
            item = _waiting(row)
            for address in settings.rules.staff:
                alert = notice(settings, pipeline.templates, "waiting", {
                    "token": token, "sender": item.sender or "(không rõ)",
                    "subject": item.subject or "(không có tiêu đề)",
                    "received_at": local_time(datetime.fromisoformat(item.received_at)),
                    "reason": item.reason, "attachments": item.attachments,
                    "unknown": item.status == Status.UNKNOWN_SENDER,
                    "codes": ", ".join(sorted(pipeline.reference.units)),
                }, to=address, subject=f"Thư chờ Ban xem xét (mã {token}): "
                                        f"{item.subject or item.sender}"[:200])
                smtp.queue(pipeline.store, int(row["id"]), "waiting", alert)
    return len(fresh)


# -- decisions -------------------------------------------------------------------------------


def release(pipeline: Pipeline, ident: str, *, unit_code: str | None = None, note: str = "",
            actor: str) -> str:
    """File a waiting message as its unit's submission, trusting the sender on staff's word.

    Decided again from the archived original with its original received time (the
    deadline is judged as if it had been filed then); the reply is threaded under the
    unit's own message; the message is moved to the processed folder at the next chance.
    """
    row = find(pipeline, ident)
    _require_waiting(row)
    if not row["archive"]:
        raise StaffError(f"thư mã {row['token']} quá lớn nên chưa được tải về; không thể ghi "
                         "nhận tự động, đề nghị chuyển tiếp tệp đính kèm")
    own = pipeline.unit_for(row["sender"])
    unit = own
    if unit_code:
        unit = pipeline.reference.units.get(unit_code.upper())
        if unit is None:
            raise StaffError(f"không có đơn vị mã {unit_code!r} (các mã: "
                             f"{', '.join(sorted(pipeline.reference.units))})")
        if own is not None and own.code != unit.code:  # a typo must not replace a list
            raise StaffError(f"địa chỉ {row['sender']} là của {own.name}, không phải "
                             f"{unit.name}: bỏ mã đơn vị đi (DUYỆT {row['token']})")
    elif unit is None:
        raise StaffError(f"địa chỉ {row['sender']} chưa thuộc đơn vị nào: ghi rõ mã đơn vị "
                         f"(DUYỆT {row['token']} <MÃ ĐƠN VỊ>, hoặc intake release … --unit MÃ)")
    # An older full list would replace whatever the unit sent since, additions included;
    # an older addition only what a newer full list holds.
    full_list = "bo sung" not in fold(row["subject"] or "")
    newer = submissions.newer(pipeline.store, unit.code, row["received_at"],
                              full_only=not full_list)
    if newer is not None:  # the older list must not replace what the unit sent since
        raise StaffError(
            f"{unit.name} đã gửi danh sách mới hơn (nhận lúc "
            f"{local_time(datetime.fromisoformat(newer['received_at']))}); thư mã {row['token']} "
            "cũ hơn nên không thay thế danh sách đó. Nếu không cần nữa: TỪ CHỐI "
            f"{row['token']}")
    raw = archive.read(pipeline.settings.paths.data_dir, row["archive"])
    outcome = pipeline.decide(raw, datetime.fromisoformat(row["received_at"]), trusted_unit=unit)
    filing = pipeline.file(row, outcome, release={"actor": actor, "note": note})
    assert filing is not None  # a release files, or raises StaffError
    log.info("released message=%s token=%s unit=%s status=%s by %s", row["id"], row["token"],
             unit.code, filing.status, actor)
    return (f"Đã ghi nhận thư mã {row['token']} ({row['sender']}, “{row['subject']}”) là danh sách "
            f"của {unit.name}: {status_label(filing.status)}; đã trả lời đơn vị.")


def reject(pipeline: Pipeline, ident: str, *, note: str = "", actor: str) -> str:
    """Close a waiting message: nothing filed, nobody answered; it stays in review."""
    row = find(pipeline, ident)
    _require_waiting(row)
    with pipeline.store.transaction():
        if messages.reject(pipeline.store, int(row["id"])):
            events.act(pipeline.store, actor, "reject", int(row["id"]), row["unit_code"], note)
    log.info("rejected message=%s token=%s by %s", row["id"], row["token"], actor)
    return f"Đã đóng thư mã {row['token']} ({row['sender']}, “{row['subject']}”), không ghi nhận."


def assign(pipeline: Pipeline, address: str, unit_code: str, *, actor: str) -> list[str]:
    """Add a sender address to a unit (kept beside units.csv) and release what it sent."""
    unit = pipeline.reference.units.get(unit_code.upper())
    if unit is None:
        raise StaffError(f"không có đơn vị mã {unit_code!r} (các mã: "
                         f"{', '.join(sorted(pipeline.reference.units))})")
    address = address.strip().lower()
    if "@" not in address:
        raise StaffError(f"{address!r} không phải địa chỉ thư điện tử")
    with pipeline.store.transaction():
        events.assign_address(pipeline.store, address, unit.code, actor)
        events.act(pipeline.store, actor, "assign", None, unit.code, detail=address)
    done = [f"Đã thêm địa chỉ {address} cho {unit.name}."]
    # Only what waited because the address was unknown: a message held because the sender
    # check failed may be forged, and stays for its own decision.
    for item in waiting(pipeline.store):
        if item.sender == address and item.status == Status.UNKNOWN_SENDER:
            try:
                done.append(release(pipeline, str(item.id), unit_code=unit.code, actor=actor))
            except StaffError as exc:
                done.append(f"Thư mã {item.token}: {exc}.")
    return done


def accept(pipeline: Pipeline, unit_code: str, hamlet: str, code: str, *, note: str,
           commune: str | None = None, actor: str) -> list[str]:
    """Accept a row against one finding (the board decides); then recheck the unit so the
    workbook and the status agree at once."""
    from .findings import CODES
    from .recheck import recheck
    from .text import name_key

    unit = pipeline.reference.units.get(unit_code.upper())
    if unit is None:
        raise StaffError(f"không có đơn vị mã {unit_code!r}")
    code = code.upper()
    if code not in CODES or not code.startswith("ROW_"):
        raise StaffError(f"{code!r} không phải mã lỗi của một dòng (ví dụ ROW_MEMBERS_BELOW_MIN)")
    if not note.strip():
        raise StaffError("cần ghi rõ lý do Ban chấp nhận (--note)")
    key = name_key(hamlet)
    rows = [r for r in submissions.current_rows(pipeline.store, unit.code)
            if key in (r["hamlet_key"], name_key(r["party_cell"]))
        and (commune is None or name_key(commune) == name_key(r["commune"]))]
    if not rows:
        raise StaffError(f"danh sách hiện tại của {unit.name} không có ấp, khu phố “{hamlet}”")
    if len({(r["commune_code"], r["hamlet_key"]) for r in rows}) > 1:
        names = ", ".join(sorted({r["commune"] for r in rows}))
        raise StaffError(f"“{hamlet}” có ở nhiều xã ({names}): ghi thêm --commune")
    target = rows[0]
    if not submissions.row_has_finding(pipeline.store, unit.code, target["commune_code"],
                                       target["hamlet_key"], code):
        raise StaffError(f"dòng {target['party_cell']} ({target['commune']}) không có lỗi {code}")
    with pipeline.store.transaction():
        submissions.accept(pipeline.store, unit_code=unit.code,
                           commune_code=target["commune_code"], hamlet_key=target["hamlet_key"],
                           code=code, hamlet=f"{target['party_cell']} ({target['commune']})",
                           note=note.strip(), actor=actor, at=now_iso())
        events.act(pipeline.store, actor, "accept", None, unit.code, note.strip(),
                   f"{code}: {target['party_cell']} ({target['commune']})")
    result = recheck(pipeline, unit_code=unit.code, notify=False, actor=actor)
    return [f"Ban chấp nhận {code} cho {target['party_cell']} ({target['commune']}) của "
            f"{unit.name}: {note.strip()}", *result.lines()]


def relocate(pipeline: Pipeline, box: MailBox) -> int:
    """Move released messages from the review folder to the processed folder.

    Found by Message-ID (their UID in the review folder was never ours to know); a
    message that is no longer there (moved by hand) is simply settled.
    """
    settings = pipeline.settings
    rows = messages.to_relocate(pipeline.store)
    if not rows:
        return 0
    imap.select(box, settings.mailbox.review_folder)
    moved = 0
    for row in rows:
        try:
            uids = imap.search_message_id(box, row["message_id"]) if row["message_id"] else []
            for uid in uids:
                imap.move(box, uid, row["relocate"])
        except MailboxError:
            raise  # the connection: the next cycle tries again
        except Exception:  # this one message: leave it in review, never stall the others
            log.exception("could not move released message %s out of review", row["id"])
            uids = []
        with pipeline.store.transaction():
            messages.relocated(pipeline.store, int(row["id"]))
        moved += len(uids)
    return moved


def relocate_now(pipeline: Pipeline, password: str | None) -> str:
    """After a decision on the command line: move at once if the mailbox answers."""
    if not messages.to_relocate(pipeline.store):
        return ""
    try:
        with imap.connect(pipeline.settings.mailbox, password) as box:
            relocate(pipeline, box)
    except MailboxError as exc:
        return f"the message will be moved to the processed folder at the next cycle ({exc})"
    return ""


# -- commands by email ---------------------------------------------------------------------

COMMAND_WORDS = {("duyet",): "release", ("tu", "choi"): "reject",
                 ("kiem", "tra", "lai"): "recheck"}
# Words staff might start a command with, recognised only to answer with help.
NEAR_COMMANDS = {"duyet", "tu", "kiem", "xoa", "huy", "dong", "chap", "approve", "reject",
                 "release", "lenh", "ma"}


@dataclass(frozen=True)
class Command:
    verb: str  # release | reject | recheck | unknown
    token: str = ""
    unit_code: str = ""
    note: str = ""
    line: str = ""


_SEPARATORS = re.compile(r"[\s:;,.!?\"“”'’()\[\]]+")


def parse_command(line: str, unit_codes: set[str]) -> Command | None:
    """The command a first body line gives, matched without case or diacritics.

    None when the line does not begin with a command word at all (then the message is
    not a command); ``unknown`` when it looks like one but cannot be understood. Words
    are split at spaces and punctuation alike ("DUYỆT:K7QM-2XDH", "Duyệt."), the same
    way for the command words and for what follows them.
    """
    original = [w for w in _SEPARATORS.split(line) if w]
    words = [strip_diacritics(w).casefold() for w in original]
    if not words:
        return None
    for prefix, verb in COMMAND_WORDS.items():
        if tuple(words[:len(prefix)]) != prefix:
            continue
        args = original[len(prefix):]
        token, rest = "", args
        if args and looks_like_token(args[0]):
            token, rest = args[0], args[1:]
        elif len(args) >= 2 and looks_like_token(args[0] + args[1]):  # "K7QM 2XDH"
            token, rest = args[0] + args[1], args[2:]
        if verb == "release":
            code = rest[0].upper() if rest and rest[0].upper() in unit_codes else ""
            if rest and not code:
                return Command("unknown", line=line)
            return Command(verb, normalise_token(token) if token else "", code, line=line)
        if verb == "reject":
            return Command(verb, normalise_token(token) if token else "",
                           note=" ".join(rest), line=line)
        code = args[0].upper() if args and args[0].upper() in unit_codes else ""
        if args and not code:
            return Command("unknown", line=line)
        return Command(verb, unit_code=code, line=line)
    if words[0] in NEAR_COMMANDS:
        return Command("unknown", line=line)
    return None


def token_of_alert(pipeline: Pipeline, in_reply_to: str) -> str:
    """The token of the message an alert was about, for a reply that leaves it out."""
    if not in_reply_to:
        return ""
    return outbox.token_of_alert(pipeline.store, in_reply_to)


HELP = ("Các lệnh Ban có thể gửi (dòng đầu tiên của thư, viết hoa hay thường, có dấu hay "
        "không dấu đều được): “DUYỆT <mã thư>” (thêm mã đơn vị nếu người gửi chưa đăng ký, "
        "ví dụ “DUYỆT K7QM-2XDH CT”), “TỪ CHỐI <mã thư> <lý do>”, “KIỂM TRA LẠI” hoặc "
        "“KIỂM TRA LẠI <mã đơn vị>”. Khi trả lời thư báo của hệ thống, có thể bỏ mã thư.")


def execute(pipeline: Pipeline, command: Command, *, actor: str, in_reply_to: str) -> list[str]:
    """Carry out a staff command from email; the lines of the answer to the staff member."""
    token = command.token or (token_of_alert(pipeline, in_reply_to)
                              if command.verb in ("release", "reject") else "")
    try:
        if command.verb == "release":
            if not token:
                raise StaffError("thiếu mã thư cần duyệt")
            return [release(pipeline, token, unit_code=command.unit_code or None,
                            note=command.line, actor=actor)]
        if command.verb == "reject":
            if not token:
                raise StaffError("thiếu mã thư cần từ chối")
            return [reject(pipeline, token, note=command.note, actor=actor)]
        if command.verb == "recheck":
            from .recheck import recheck

            return recheck(pipeline, unit_code=command.unit_code or None, notify=True,
                           actor=actor).lines()
    except StaffError as exc:
        return [f"Không thực hiện được lệnh “{command.line}”: {exc}.", HELP]
    return [f"Hệ thống chưa hiểu lệnh “{command.line}”.", HELP]
