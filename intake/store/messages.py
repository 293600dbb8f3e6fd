"""Messages and the folders they come from: the high-water mark, recording, the stage of
each message on its way through a cycle, and what waits for staff (SPEC §4, §10)."""

from __future__ import annotations

from sqlite3 import Row

from .db import WAITING, Stage, Status, Store

# What waits for staff: held or from an unknown sender, not yet settled, already decided.
_WAITING = (f"SELECT * FROM messages WHERE status IN ({', '.join(repr(str(s)) for s in WAITING)})"
            " AND settled='' AND stage != 'recorded'")


# -- folders: the UID high-water mark per folder and UIDVALIDITY ---------------------------

def folder(store: Store, name: str) -> Row | None:
    """The folder's (uidvalidity, last_uid), or None before its first cycle."""
    return store.one("SELECT uidvalidity, last_uid FROM folders WHERE name=?", (name,))


def start_folder(store: Store, name: str, validity: int, last_uid: int) -> None:
    store.db.execute("INSERT INTO folders(name, uidvalidity, last_uid) VALUES (?,?,?)",
                     (name, validity, last_uid))


def renumber_folder(store: Store, name: str, validity: int) -> None:
    """After a UIDVALIDITY change every UID is new again."""
    store.db.execute("UPDATE folders SET uidvalidity=?, last_uid=0 WHERE name=?",
                     (validity, name))


def advance(store: Store, name: str, uid: int) -> None:
    """The high-water mark moves past ``uid`` (never back)."""
    store.db.execute("UPDATE folders SET last_uid=MAX(last_uid, ?) WHERE name=?", (uid, name))


def known_uids(store: Store, name: str, validity: int) -> set[int]:
    return {int(r[0]) for r in store.query(
        "SELECT uid FROM messages WHERE folder=? AND uidvalidity=?", (name, validity))}


# -- recording -------------------------------------------------------------------------------

def at_uid(store: Store, name: str, validity: int, uid: int) -> bool:
    return store.one("SELECT 1 FROM messages WHERE folder=? AND uidvalidity=? AND uid=?",
                     (name, validity, uid)) is not None


def twin(store: Store, message_id: str, digest: str) -> Row | None:
    """The first message with this identity (Message-ID and content)."""
    return store.one("SELECT id, folder, uidvalidity, stage FROM messages WHERE message_id=?"
                     " AND sha256=? ORDER BY id LIMIT 1", (message_id, digest))


def renumber(store: Store, message: int, validity: int, uid: int) -> None:
    store.db.execute("UPDATE messages SET uidvalidity=?, uid=? WHERE id=?",
                     (validity, uid, message))


def add(store: Store, values: dict[str, object]) -> int:
    return store.insert("messages", values)


def get(store: Store, message: int) -> Row | None:
    return store.one("SELECT * FROM messages WHERE id=?", (message,))


def by_token(store: Store, token: str) -> Row | None:
    return store.one("SELECT * FROM messages WHERE token=?", (token,))


# -- stages ----------------------------------------------------------------------------------

def pending(store: Store) -> list[Row]:
    """Recorded, not yet decided: whatever folder or UIDVALIDITY they were recorded under."""
    return store.query("SELECT * FROM messages WHERE stage=? ORDER BY id", (Stage.RECORDED,))


def stage_of(store: Store, message: int) -> str | None:
    row = store.one("SELECT stage FROM messages WHERE id=?", (message,))
    return row[0] if row else None


def settle_copy(store: Store, message: int, twin: int) -> None:
    """A second copy of a message is ignored once its twin is filed; until then it stays
    pending (a copy is a duplicate only of a twin that was filed)."""
    stage = stage_of(store, twin)
    if stage is not None and stage != Stage.RECORDED:
        store.db.execute("UPDATE messages SET status=?, detail='thư trùng lặp', stage=?"
                         " WHERE id=? AND stage=?",
                         (Status.IGNORED, Stage.FILED, message, Stage.RECORDED))


def failed(store: Store, message: int, attempts: int, error: str, *, hold: str = "") -> None:
    """A processing error; with ``hold`` (the reason) the message is set aside for staff."""
    if hold:
        store.db.execute("UPDATE messages SET attempts=?, error=?, status=?, stage=?, detail=?"
                         " WHERE id=? AND stage=?",
                         (attempts, error, Status.HELD, Stage.FILED, hold, message,
                          Stage.RECORDED))
    else:
        store.db.execute("UPDATE messages SET attempts=?, error=? WHERE id=?",
                         (attempts, error, message))


def filing_state(store: Store, message: int) -> Row | None:
    """(stage, status, settled), read inside the filing transaction."""
    return store.one("SELECT stage, status, settled FROM messages WHERE id=?", (message,))


def decided(store: Store, message: int, *, status: str, unit_code: str | None, detail: str,
            late: bool, attachments: str, stage: str) -> None:
    store.db.execute("UPDATE messages SET status=?, unit_code=?, detail=?, late=?, attachments=?,"
                     " stage=?, error='' WHERE id=?",
                     (status, unit_code, detail, int(late), attachments, stage, message))


def to_move(store: Store, name: str, validity: int) -> list[Row]:
    return store.query("SELECT id, uid, status, stage, message_id FROM messages WHERE folder=?"
                       " AND uidvalidity=? AND stage IN (?, ?) ORDER BY uid",
                       (name, validity, Stage.FILED, Stage.MOVING))


def set_stage(store: Store, message: int, stage: Stage) -> None:
    store.db.execute("UPDATE messages SET stage=? WHERE id=?", (stage, message))


def received_since(store: Store, since: str) -> int:
    return int(store.one("SELECT COUNT(*) FROM messages WHERE created_at >= ?", (since,))[0])


def last_status(store: Store, unit_code: str) -> str | None:
    """The status of the unit's latest decided message (a unit with no list yet)."""
    row = store.one("SELECT status FROM messages WHERE unit_code=? AND status IS NOT NULL"
                    " ORDER BY received_at DESC, id DESC LIMIT 1", (unit_code,))
    return row[0] if row else None


def log(store: Store) -> list[Row]:
    """Every message but the copies of another, in the order received (``Nhật ký``)."""
    return store.query("SELECT * FROM messages WHERE duplicate_of IS NULL"
                       " ORDER BY received_at, id")


# -- waiting for staff (SPEC §10) -------------------------------------------------------------

def waiting(store: Store) -> list[Row]:
    """What waits for staff, oldest first."""
    return store.query(_WAITING + " ORDER BY received_at, id")


def waiting_without_token(store: Store) -> list[Row]:
    """Newly waiting: staff have not been told yet."""
    return store.query(_WAITING + " AND token IS NULL ORDER BY id")


def set_token(store: Store, message: int, token: str) -> None:
    store.db.execute("UPDATE messages SET token=? WHERE id=? AND token IS NULL",
                     (token, message))


def release(store: Store, message: int, folder: str) -> None:
    """Settled as released; the message is to go from review to ``folder``."""
    store.db.execute("UPDATE messages SET settled='released', relocate=? WHERE id=?",
                     (folder, message))


def reject(store: Store, message: int) -> bool:
    """Settled as rejected; False when it was already settled."""
    return bool(store.db.execute("UPDATE messages SET settled='rejected' WHERE id=? AND"
                                 " settled=''", (message,)).rowcount)


def to_relocate(store: Store) -> list[Row]:
    return store.query("SELECT id, message_id, relocate FROM messages WHERE relocate != ''")


def relocated(store: Store, message: int) -> None:
    store.db.execute("UPDATE messages SET relocate='' WHERE id=?", (message,))
