"""The state store: SQLite in WAL mode, the one source of truth.

Everything else (the workbook, the replies, ``intake status``) is a view of it. Each
pipeline step commits before the next one starts, so a crash leaves a state that the
next cycle can finish from: a message is recorded before it is filed, a reply is queued
(with its Message-ID) before it is sent, and moved only when it is fully answered.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from .errors import StoreCorruptError


class Stage(StrEnum):
    """Where a message is on its way through one cycle (``messages.stage``)."""

    RECORDED = "recorded"  # archived and remembered; not yet decided
    FILED = "filed"        # decided, filed, its reply queued: all in one transaction
    MOVING = "moving"      # a move to the processed/review folder was started
    MOVED = "moved"        # out of the watched folder (or nothing left to move)


class Status(StrEnum):
    """A message's submission status (SPEC §4, contract: also the ``X-Intake-Status`` header)."""

    ACCEPTED = "accepted"
    NEEDS_CORRECTION = "needs-correction"
    NO_ATTACHMENT = "no-attachment"
    UNKNOWN_SENDER = "unknown-sender"
    HELD = "held"
    IGNORED = "ignored"
    REJECTED_LATE = "rejected-late"
    STAFF_COMMAND = "staff-command"


WAITING = (Status.HELD, Status.UNKNOWN_SENDER)  # what staff decide (SPEC §10)

SCHEMA_VERSION = 4

MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE folders (
        name TEXT PRIMARY KEY,
        uidvalidity INTEGER NOT NULL,
        last_uid INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY,
        folder TEXT NOT NULL,
        uidvalidity INTEGER NOT NULL,
        uid INTEGER NOT NULL,
        message_id TEXT NOT NULL DEFAULT '',
        sha256 TEXT NOT NULL,
        received_at TEXT NOT NULL,
        sender TEXT NOT NULL DEFAULT '',
        subject TEXT NOT NULL DEFAULT '',
        unit_code TEXT,
        status TEXT,
        detail TEXT NOT NULL DEFAULT '',
        late INTEGER NOT NULL DEFAULT 0,
        attachments TEXT NOT NULL DEFAULT '',
        stage TEXT NOT NULL DEFAULT 'recorded',
        attempts INTEGER NOT NULL DEFAULT 0,
        error TEXT NOT NULL DEFAULT '',
        archive TEXT NOT NULL DEFAULT '',
        duplicate_of INTEGER,
        created_at TEXT NOT NULL,
        UNIQUE (folder, uidvalidity, uid)
    );
    CREATE INDEX messages_identity ON messages (message_id, sha256);
    CREATE TABLE submissions (
        id INTEGER PRIMARY KEY,
        message INTEGER NOT NULL UNIQUE REFERENCES messages(id),
        unit_code TEXT NOT NULL,
        received_at TEXT NOT NULL,
        addition INTEGER NOT NULL DEFAULT 0,
        status TEXT NOT NULL,
        late INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE files (
        id INTEGER PRIMARY KEY,
        submission INTEGER NOT NULL REFERENCES submissions(id),
        name TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        path TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE rows (
        id INTEGER PRIMARY KEY,
        submission INTEGER NOT NULL REFERENCES submissions(id),
        unit_code TEXT NOT NULL,
        file TEXT NOT NULL,
        sheet TEXT NOT NULL,
        row_number INTEGER NOT NULL,
        commune TEXT NOT NULL,
        commune_code TEXT NOT NULL DEFAULT '',
        hamlet_key TEXT NOT NULL DEFAULT '',
        branch TEXT NOT NULL,
        party_cell TEXT NOT NULL,
        cell_status TEXT NOT NULL DEFAULT '',
        members INTEGER,
        members_text TEXT NOT NULL DEFAULT '',
        level TEXT,
        district_model_year INTEGER,
        secretary TEXT NOT NULL DEFAULT '',
        phone TEXT NOT NULL DEFAULT '',
        notes TEXT NOT NULL DEFAULT '',
        valid INTEGER NOT NULL,
        errors TEXT NOT NULL DEFAULT '',
        received_at TEXT NOT NULL,
        current INTEGER NOT NULL DEFAULT 1
    );
    CREATE INDEX rows_current ON rows (unit_code, current);
    CREATE TABLE findings (
        id INTEGER PRIMARY KEY,
        submission INTEGER NOT NULL REFERENCES submissions(id),
        row INTEGER REFERENCES rows(id),
        unit_code TEXT NOT NULL,
        file TEXT NOT NULL DEFAULT '',
        sheet TEXT NOT NULL DEFAULT '',
        row_number INTEGER,
        column_letter TEXT NOT NULL DEFAULT '',
        code TEXT NOT NULL,
        level TEXT NOT NULL,
        field TEXT NOT NULL DEFAULT '',
        value TEXT NOT NULL DEFAULT '',
        message TEXT NOT NULL,
        suggestion TEXT NOT NULL DEFAULT '',
        current INTEGER NOT NULL DEFAULT 1
    );
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY,
        message INTEGER REFERENCES messages(id),
        kind TEXT NOT NULL,
        recipient TEXT NOT NULL,
        subject TEXT NOT NULL,
        message_id TEXT NOT NULL UNIQUE,
        status_header TEXT NOT NULL DEFAULT '',
        raw BLOB NOT NULL,
        state TEXT NOT NULL DEFAULT 'queued',
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TEXT NOT NULL,
        last_error TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL,
        sent_at TEXT
    );
    CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        kind TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT ''
    );
    """,
    # The outbox claims a reply before sending it (two senders never send one reply),
    # and keeps when a reply was last tried and since when it has been refused.
    2: """
    ALTER TABLE outbox ADD COLUMN claimed_at TEXT;
    ALTER TABLE outbox ADD COLUMN claimed_by TEXT NOT NULL DEFAULT '';
    ALTER TABLE outbox ADD COLUMN last_attempt_at TEXT;
    ALTER TABLE outbox ADD COLUMN failing_since TEXT;
    CREATE INDEX outbox_due ON outbox (state, next_attempt_at);
    """,
    # Staff actions (SPEC §10): tokens for waiting messages, what staff decided, the
    # sender addresses they added, and findings they accepted against the rules.
    3: """
    ALTER TABLE messages ADD COLUMN token TEXT;
    ALTER TABLE messages ADD COLUMN settled TEXT NOT NULL DEFAULT '';
    ALTER TABLE messages ADD COLUMN relocate TEXT NOT NULL DEFAULT '';
    CREATE UNIQUE INDEX messages_token ON messages (token);
    CREATE INDEX messages_stage ON messages (stage);
    CREATE TABLE actions (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        message INTEGER REFERENCES messages(id),
        unit_code TEXT,
        note TEXT NOT NULL DEFAULT '',
        detail TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE sender_addresses (
        address TEXT PRIMARY KEY,
        unit_code TEXT NOT NULL,
        actor TEXT NOT NULL,
        at TEXT NOT NULL
    );
    CREATE TABLE acceptances (
        id INTEGER PRIMARY KEY,
        unit_code TEXT NOT NULL,
        commune_code TEXT NOT NULL,
        hamlet_key TEXT NOT NULL,
        code TEXT NOT NULL,
        hamlet TEXT NOT NULL DEFAULT '',
        note TEXT NOT NULL,
        actor TEXT NOT NULL,
        at TEXT NOT NULL,
        UNIQUE (unit_code, commune_code, hamlet_key, code)
    );
    ALTER TABLE findings ADD COLUMN accepted_note TEXT NOT NULL DEFAULT '';
    """,
    # Every query of a cycle served by an index (a national campaign has 100k rows):
    # ROW_CONFLICT looks hamlets up across units, views read the current rows.
    4: """
    CREATE INDEX rows_hamlet ON rows (commune_code, hamlet_key, current);
    CREATE INDEX rows_live ON rows (current, unit_code);
    CREATE INDEX rows_submission ON rows (submission);
    CREATE INDEX findings_live ON findings (current, unit_code);
    CREATE INDEX findings_row ON findings (row);
    CREATE INDEX findings_submission ON findings (submission);
    CREATE INDEX submissions_unit ON submissions (unit_code, received_at);
    CREATE INDEX files_submission ON files (submission);
    CREATE INDEX outbox_message ON outbox (message);
    CREATE INDEX outbox_recipient ON outbox (recipient, state, sent_at);
    CREATE INDEX messages_waiting ON messages (status, settled);
    CREATE INDEX messages_relocate ON messages (relocate) WHERE relocate != '';
    CREATE INDEX events_kind ON events (kind, id);
    """,
}


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Store:
    """A thin wrapper over one SQLite connection; SQL stays in the modules that own it."""

    def __init__(self, path: Path, evidence: tuple[Path, ...] = ()) -> None:
        """Open (or create) the store at ``path``.

        ``evidence`` are files that only exist once the store has held data (the archive,
        the workbook): beside them, a missing, empty or blank store is a lost one, and is
        refused instead of silently starting a new campaign from nothing.
        """
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        found = [p for p in evidence if _has_data(p)]
        if found and (not path.exists() or path.stat().st_size == 0):
            raise StoreCorruptError(
                f"the state store {path} is {'empty' if path.exists() else 'missing'} while "
                f"{found[0]} still holds data")
        archived = [p for p in evidence if p.is_dir() and _has_data(p)]
        try:
            self.db = sqlite3.connect(path, timeout=30, isolation_level=None)
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            self.db.execute("PRAGMA synchronous=NORMAL")
            # Reading the schema finds a file that is not (or no longer) a database at the
            # cost of one page; a full quick_check would read every page at every open.
            self.db.execute("SELECT count(*) FROM sqlite_master").fetchone()
            self._migrate()
            if archived and self.one("SELECT 1 FROM messages LIMIT 1") is None:
                raise StoreCorruptError(
                    f"the state store {path} holds no messages while {archived[0]} still "
                    "holds archived mail")
        except sqlite3.DatabaseError as exc:
            self.db.close()
            raise StoreCorruptError(f"the state store {path} is damaged ({exc})") from None
        except StoreCorruptError:
            self.db.close()
            raise

    def _migrate(self) -> None:
        """Bring the schema up to date, one version per transaction; the version is read
        inside the transaction, so two processes starting at once never migrate twice."""
        self.db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
        while True:
            with self.transaction():
                row = self.db.execute(
                    "SELECT value FROM meta WHERE key='schema_version'").fetchone()
                version = int(row[0]) if row else 0
                if version > SCHEMA_VERSION:
                    raise StoreCorruptError(
                        f"the state store {self.path} has schema {version}, newer than this "
                        f"program ({SCHEMA_VERSION})", hint="upgrade intake")
                if version == SCHEMA_VERSION:
                    return
                for statement in statements(MIGRATIONS[version + 1]):
                    self.db.execute(statement)
                self.db.execute(
                    "INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?)",
                    (str(version + 1),))

    @property
    def version(self) -> int:
        return int(self.db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0])

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic step: committed on success, rolled back on any exception."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        else:
            self.db.execute("COMMIT")

    def query(self, sql: str, params: tuple | dict = ()) -> list[sqlite3.Row]:
        return self.db.execute(sql, params).fetchall()

    def one(self, sql: str, params: tuple | dict = ()) -> sqlite3.Row | None:
        return self.db.execute(sql, params).fetchone()

    def event(self, kind: str, detail: str = "") -> None:
        self.db.execute("INSERT INTO events(at, kind, detail) VALUES (?,?,?)",
                        (now_iso(), kind, detail))

    def last_event(self, kind: str) -> str | None:
        row = self.one("SELECT at FROM events WHERE kind=? ORDER BY id DESC LIMIT 1", (kind,))
        return row[0] if row else None

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def statements(script: str) -> list[str]:
    """A migration script as whole SQL statements, as SQLite itself delimits them (a ';'
    inside a string or a trigger body does not end a statement). ``executescript`` would
    commit the transaction each migration must run in."""
    out: list[str] = []
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            if pending.strip():
                out.append(pending.strip())
            pending = ""
    if pending.strip():
        raise ValueError(f"incomplete SQL statement in a migration: {pending.strip()[:80]}")
    return out


def _has_data(path: Path) -> bool:
    """A non-empty file (the workbook), or a folder holding archived mail (the archive)."""
    if path.is_dir():
        return any(path.glob("*.eml"))
    return path.suffix == ".xlsx" and path.is_file() and path.stat().st_size > 0


def open_store(data_dir: Path, workbook: Path | None = None) -> Store:
    """The store of a data folder, refused when it was lost beside its archive/workbook."""
    evidence = (data_dir / "archive",) + ((workbook,) if workbook else ())
    return Store(data_dir / "intake.sqlite3", evidence)
