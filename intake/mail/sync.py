"""The mailbox side of a cycle: which messages are new, recording them, moving them out.

Step 1 (record) and step 8 (move) of SPEC §4. The UID high-water mark is kept per folder
and UIDVALIDITY and advances when a message is *recorded*, so nothing is fetched twice
and nothing recorded is forgotten; a renumbered folder is re-read and its messages
recognised by Message-ID and content.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime, time

from imap_tools import BaseMailBox as MailBox

from .. import archive
from ..config import TZ, Settings
from ..errors import MailboxError
from ..store import WAITING, Stage, Status, Store, events, messages, now_iso
from . import imap
from .envelope import identity

log = logging.getLogger(__name__)

REVIEW_STATUSES = set(WAITING)


def high_water(store: Store, settings: Settings, box: MailBox, folder: str,
               validity: int) -> tuple[int, datetime | None]:
    """The last UID already seen, and the instant before which mail is left alone.

    On a first start the mark is set by ``start_from``; after a UIDVALIDITY change
    every UID is new again and the whole folder is re-read (repeats are recognised by
    Message-ID and content), still leaving alone what came before the first start.
    """
    row = messages.folder(store, folder)
    since_key = f"since:{folder}"
    since_text = events.get(store, since_key)
    since = datetime.fromisoformat(since_text) if since_text else None
    if row is None:
        start = settings.mailbox.start_from
        if start == "all":
            last = 0
        else:
            day = None if start == "now" else start
            last = imap.last_uid_before(box, day)  # type: ignore[arg-type]
            since = (datetime.now(UTC) if day is None
                     else datetime.combine(day, time(0), tzinfo=TZ))  # type: ignore[arg-type]
        with store.transaction():
            messages.start_folder(store, folder, validity, last)
            if since is not None:
                events.put(store, since_key, since.isoformat(timespec="seconds"))
            store.event("start", f"{folder}: start_from={start}, mail up to UID "
                             f"{last} left alone")
        return last, since
    if int(row["uidvalidity"]) != validity:
        log.warning("UIDVALIDITY of %s changed %s -> %s", folder, row["uidvalidity"],
                    validity)
        with store.transaction():
            store.event("uidvalidity", f"{folder}: {row['uidvalidity']} -> {validity}")
            messages.renumber_folder(store, folder, validity)
        return 0, since
    return int(row["last_uid"]), since

def take_new(store: Store, settings: Settings, box: MailBox, folder: str, validity: int,
             backlog: bool = False) -> int:
    """Fetch and record the new messages of the selected folder, in batches; mail from
    before the first start is left alone unless ``backlog`` asks for it. Returns how
    many were recorded."""
    last_uid, since = high_water(store, settings, box, folder, validity)
    if backlog:
        known = messages.known_uids(store, folder, validity)
        uids, since = [u for u in imap.all_uids(box) if u not in known], None
    else:
        uids = imap.uids_after(box, last_uid)
    taken = 0
    size = settings.mailbox.batch_size
    for start in range(0, len(uids), size):
        for item in imap.fetch(box, uids[start:start + size], settings.limits.max_message_bytes):
            if since and item.internal_date and item.internal_date < since:
                skip_old(store, folder, item.uid)
                continue
            taken += 1
            record(store, settings, folder, validity, item)
    return taken


def skip_old(store: Store, folder: str, uid: int) -> None:
    """A message from before the first start: only the high-water mark moves past it."""
    with store.transaction():
        messages.advance(store, folder, uid)

def record(store: Store, settings: Settings, folder: str, validity: int,
           item: imap.Fetched) -> None:
    """Step 1: remember the message (and archive it) before doing anything with it.

    Nothing here may raise for what the message contains: a message that cannot be
    parsed is still recorded, and its processing error sets it aside for staff.
    """
    raw = item.raw
    received = (item.internal_date or datetime.now(UTC)).astimezone(UTC)
    status: str | None = None
    detail = ""
    stage = Stage.RECORDED
    digest = path = ""
    message_id = sender = subject = ""
    if item.missing:
        status, stage = Status.IGNORED, Stage.MOVED
        detail = "thư đã bị xóa khỏi hộp thư (bởi một chương trình khác) trước khi tải về"
    elif raw is None:
        status, stage = Status.HELD, Stage.FILED
        detail = (f"thư quá lớn ({item.size / 1_000_000:.1f} MB, giới hạn "
                  f"{settings.limits.max_message_bytes / 1_000_000:.0f} MB), chưa tải về")
    else:
        digest = hashlib.sha256(raw).hexdigest()
        path = archive.keep_message(settings.paths.data_dir, raw)
        message_id, sender, subject = identity(raw, settings.rules.authserv_id)
    with store.transaction():
        exists = messages.at_uid(store, folder, validity, item.uid)
        twin = messages.twin(store, message_id, digest) if digest and not exists else None
        if exists:
            pass
        elif twin is not None and twin["folder"] == folder and \
                int(twin["uidvalidity"]) != validity and twin["stage"] != Stage.MOVED:
            # The same message, renumbered by a UIDVALIDITY change before we finished
            # with it: it takes its new address and its work goes on from where it was.
            messages.renumber(store, int(twin["id"]), validity, item.uid)
            log.info("uid=%s is message %s renumbered; its work continues", item.uid,
                     twin["id"])
        else:
            filed_twin = twin is not None and twin["stage"] != Stage.RECORDED
            if filed_twin:
                status, detail, stage = Status.IGNORED, "thư trùng lặp", Stage.FILED
            messages.add(store, {
                "folder": folder, "uidvalidity": validity, "uid": item.uid,
                "message_id": message_id, "sha256": digest,
                "received_at": received.isoformat(timespec="seconds"), "sender": sender,
                "subject": subject, "status": status, "detail": detail, "stage": stage,
                "archive": path, "duplicate_of": twin["id"] if twin else None,
                "created_at": now_iso()})
        messages.advance(store, folder, item.uid)
    log.info("recorded uid=%s message_id=%s", item.uid, message_id)

def move_done(store: Store, settings: Settings, box: MailBox, folder: str, validity: int,
              errors: list[str]) -> int:
    """Step 8: answered messages leave the watched folder (review when held).

    The stage becomes "moving" before the server is asked, so a move interrupted by a
    crash is known as such and retried without copying the message a second time.
    """
    moved = 0
    for row in messages.to_move(store, folder, validity):
        target = (settings.mailbox.review_folder if row["status"] in REVIEW_STATUSES
                  else settings.mailbox.processed_folder)
        with store.transaction():
            messages.set_stage(store, int(row["id"]), Stage.MOVING)
        try:
            imap.move(box, int(row["uid"]), target, message_id=row["message_id"],
                      retry=row["stage"] == Stage.MOVING)
        except MailboxError as exc:  # left "moving": the next cycle tries again
            errors.append(f"uid {row['uid']}: {exc}")
            continue
        with store.transaction():
            messages.set_stage(store, int(row["id"]), Stage.MOVED)
        moved += 1
    return moved
