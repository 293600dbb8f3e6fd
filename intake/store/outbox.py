"""The outbox: every reply is queued here (with its Message-ID) in the transaction that
decided it, claimed by one sender at a time, and kept with its outcome (SPEC §6)."""

from __future__ import annotations

from sqlite3 import Row

from .db import Store, now_iso


def add(store: Store, values: dict[str, object]) -> int:
    return store.insert("outbox", {"next_attempt_at": now_iso(), "created_at": now_iso(),
                                   **values})


def get(store: Store, reply: int) -> Row | None:
    return store.one("SELECT * FROM outbox WHERE id=?", (reply,))


def due(store: Store, now: str) -> list[int]:
    return [int(r[0]) for r in store.query(
        "SELECT id FROM outbox WHERE state='queued' AND next_attempt_at <= ? ORDER BY id",
        (now,))]


def sent_since(store: Store, recipient: str, since: str) -> int:
    return int(store.one("SELECT COUNT(*) FROM outbox WHERE recipient=? AND state IN"
                         " ('sent','dry-run') AND sent_at >= ?", (recipient, since))[0])


def claim(store: Store, reply: int, owner: str, now: str) -> bool:
    """Take one due reply for this sender (in the caller's transaction)."""
    return bool(store.db.execute(
        "UPDATE outbox SET state='sending', claimed_at=?, claimed_by=?"
        " WHERE id=? AND state='queued' AND next_attempt_at <= ?",
        (now, owner, reply, now)).rowcount)


def unclaim(store: Store, reply: int, now: str, *, error: str | None = None,
            next_at: str | None = None) -> None:
    """Hand a claimed reply back to the queue, its attempts untouched."""
    store.db.execute(
        "UPDATE outbox SET state='queued', claimed_at=NULL, claimed_by='',"
        " next_attempt_at=COALESCE(?, next_attempt_at), last_error=COALESCE(?, last_error),"
        " last_attempt_at=CASE WHEN ? IS NULL THEN last_attempt_at ELSE ? END"
        " WHERE id=? AND state='sending'", (next_at, error, error, now, reply))


def done(store: Store, reply: int, state: str) -> None:
    """Sent (or dry-run, suppressed): the claim ends with the outcome."""
    store.db.execute(
        "UPDATE outbox SET state=?, sent_at=?, attempts=attempts+1, last_error='',"
        " last_attempt_at=?, claimed_at=NULL, claimed_by='' WHERE id=?",
        (state, now_iso(), now_iso(), reply))


def attempt_failed(store: Store, reply: int, *, final: bool, attempts: int, error: str,
                   next_at: str, now: str, since: str) -> None:
    store.db.execute(
        "UPDATE outbox SET state=?, attempts=?, last_error=?, next_attempt_at=?,"
        " last_attempt_at=?, failing_since=?, claimed_at=NULL, claimed_by='' WHERE id=?",
        ("failed" if final else "queued", attempts, error, next_at, now, since, reply))


def claims(store: Store) -> list[Row]:
    return store.query("SELECT id, claimed_by, claimed_at FROM outbox WHERE state='sending'")


def requeue_stale(store: Store, reply: int, owner: str, error: str) -> None:
    store.db.execute("UPDATE outbox SET state='queued', claimed_at=NULL, claimed_by='',"
                     " last_error=? WHERE id=? AND state='sending' AND claimed_by=?",
                     (error, reply, owner))


def in_state(store: Store, *states: str) -> list[Row]:
    return store.query(f"SELECT * FROM outbox WHERE state IN ({', '.join('?' * len(states))})"
                       " ORDER BY id", states)


def rewrite(store: Store, reply: int, *, subject: str, message_id: str, raw: bytes) -> None:
    """The reply rendered again (``intake resend --rebuild``): a new message, same row."""
    store.db.execute("UPDATE outbox SET subject=?, message_id=?, raw=? WHERE id=?",
                     (subject, message_id, raw, reply))


def requeue(store: Store, reply: int, now: str) -> None:
    """Sent again by staff (``intake resend``): a fresh start."""
    store.db.execute("UPDATE outbox SET state='queued', attempts=0, failing_since=NULL,"
                     " last_error='', next_attempt_at=? WHERE id=?", (now, reply))


def bounced(store: Store, message_id: str) -> int:
    return store.db.execute("UPDATE outbox SET state='bounced' WHERE message_id=?",
                            (message_id,)).rowcount


def counts(store: Store) -> dict[str, int]:
    return {r[0]: int(r[1]) for r in store.query("SELECT state, COUNT(*) FROM outbox"
                                                 " GROUP BY state")}


def queue_span(store: Store) -> tuple[str | None, str | None]:
    """(oldest queued reply's creation, the next attempt due)."""
    row = store.one("SELECT MIN(created_at), MIN(next_attempt_at) FROM outbox"
                    " WHERE state='queued'")
    return (row[0], row[1]) if row else (None, None)


def last_error(store: Store) -> Row | None:
    """The most recent error of a reply still waiting to go."""
    return store.one("SELECT id, kind, recipient, last_error, last_attempt_at FROM outbox"
                     " WHERE state IN ('queued','sending') AND last_error != ''"
                     " ORDER BY last_attempt_at DESC, id DESC LIMIT 1")


def by_message(store: Store) -> list[Row]:
    """(message, kind, state) of every reply, in order (``Nhật ký``)."""
    return store.query("SELECT message, kind, state FROM outbox ORDER BY id")


def token_of_alert(store: Store, message_id: str) -> str:
    """The token of the waiting message an alert (by its Message-ID) was about."""
    row = store.one("SELECT m.token FROM outbox o JOIN messages m ON m.id = o.message"
                    " WHERE o.message_id=? AND o.kind='waiting'", (message_id,))
    return row[0] if row and row[0] else ""
