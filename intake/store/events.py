"""Events (what happened, for the record and for once-only work), small settings kept in
``meta``, staff actions and the sender addresses staff added."""

from __future__ import annotations

from sqlite3 import Row

from .db import Store, now_iso


def happened(store: Store, kind: str) -> bool:
    """Whether an event of this kind was ever recorded (once-only work: reports, notices)."""
    return store.one("SELECT 1 FROM events WHERE kind=? LIMIT 1", (kind,)) is not None


def of_kind(store: Store, kind: str) -> list[Row]:
    """Events of one kind, oldest first (id, at, detail)."""
    return store.query("SELECT id, at, detail FROM events WHERE kind=? ORDER BY id", (kind,))


def of_kind_prefix(store: Store, prefix: str) -> list[Row]:
    """Events whose kind starts with ``prefix`` (a report and its numbered updates)."""
    return store.query("SELECT id, at, kind, detail FROM events WHERE kind LIKE ? ORDER BY id",
                       (prefix.replace("%", "") + "%",))


def since_last(store: Store, kind: str, closing: str) -> list[Row]:
    """Events of ``kind`` after the last event of ``closing`` (an incident still open)."""
    return store.query(
        "SELECT id, at, detail FROM events WHERE kind=? AND id > (SELECT COALESCE(MAX(id), 0)"
        " FROM events WHERE kind=?) ORDER BY id", (kind, closing))


def add_at(store: Store, at: str, kind: str, detail: str = "") -> None:
    """An event at a given instant (the outbox records server incidents at its clock)."""
    store.db.execute("INSERT INTO events(at, kind, detail) VALUES (?,?,?)", (at, kind, detail))


# -- meta: small values the program keeps between runs -----------------------------------

def get(store: Store, key: str) -> str | None:
    row = store.one("SELECT value FROM meta WHERE key=?", (key,))
    return row[0] if row else None


def put(store: Store, key: str, value: str) -> None:
    store.db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?,?)", (key, value))


# -- staff actions and the addresses staff added (SPEC §10) --------------------------------

def act(store: Store, actor: str, action: str, message: int | None, unit_code: str | None,
        note: str = "", detail: str = "") -> None:
    """Record a staff decision (in the caller's transaction)."""
    store.insert("actions", {"at": now_iso(), "actor": actor, "action": action,
                             "message": message, "unit_code": unit_code, "note": note,
                             "detail": detail})


def actions(store: Store, last: int | None = None) -> list[Row]:
    """Staff actions, oldest first; only the ``last`` ones when given."""
    if last is None:
        return store.query("SELECT * FROM actions ORDER BY id")
    return list(reversed(store.query("SELECT * FROM actions ORDER BY id DESC LIMIT ?",
                                     (last,))))


def assign_address(store: Store, address: str, unit_code: str, actor: str) -> None:
    store.db.execute(
        "INSERT INTO sender_addresses(address, unit_code, actor, at) VALUES (?,?,?,?)"
        " ON CONFLICT(address) DO UPDATE SET unit_code=excluded.unit_code,"
        " actor=excluded.actor, at=excluded.at", (address, unit_code, actor, now_iso()))


def unit_of_address(store: Store, address: str) -> str | None:
    row = store.one("SELECT unit_code FROM sender_addresses WHERE address=?", (address.lower(),))
    return row[0] if row else None


def addresses(store: Store) -> list[Row]:
    return store.query("SELECT * FROM sender_addresses ORDER BY at")
