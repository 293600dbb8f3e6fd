"""The state store's connection: SQLite in WAL mode, the one source of truth.

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

from ..errors import StoreCorruptError
from .schema import MIGRATIONS, SCHEMA_VERSION, statements


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

def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Store:
    """One SQLite connection. The queries live beside it, in the store package's modules
    grouped by what they serve (messages, submissions, outbox, events); nothing outside
    the package writes SQL."""

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

    def insert(self, table: str, values: dict[str, object]) -> int:
        """One row into ``table`` (a name from this package, never from input); its id."""
        columns = ", ".join(values)
        marks = ", ".join("?" * len(values))
        cursor = self.db.execute(f"INSERT INTO {table}({columns}) VALUES ({marks})",
                                 tuple(values.values()))
        return int(cursor.lastrowid or 0)

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


def _has_data(path: Path) -> bool:
    """A non-empty file (the workbook), or a folder holding archived mail (the archive)."""
    if path.is_dir():
        return any(path.glob("*.eml"))
    return path.suffix == ".xlsx" and path.is_file() and path.stat().st_size > 0


def open_store(data_dir: Path, workbook: Path | None = None) -> Store:
    """The store of a data folder, refused when it was lost beside its archive/workbook."""
    evidence = (data_dir / "archive",) + ((workbook,) if workbook else ())
    return Store(data_dir / "intake.sqlite3", evidence)
