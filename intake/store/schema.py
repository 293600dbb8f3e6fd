"""The store's schema, as numbered migrations run whole, one transaction each.

A new table or index is a new migration at the end; a released migration never changes,
because stores in the field have already run it.
"""

from __future__ import annotations

import sqlite3

SCHEMA_VERSION = 5

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
    # A unit's state is decided once, when a list is filed (or rechecked), and stored: the
    # workbook, ``intake status``, the digest and reports read it and derive nothing. A
    # reply keeps what it says (``replies.Reply`` as JSON), so it can be rendered again.
    5: """
    ALTER TABLE outbox ADD COLUMN content TEXT NOT NULL DEFAULT '';
    CREATE TABLE unit_states (
        unit_code TEXT PRIMARY KEY,
        status TEXT NOT NULL,
        submissions INTEGER NOT NULL,
        received_at TEXT NOT NULL,
        late INTEGER NOT NULL,
        valid INTEGER NOT NULL,
        provincial INTEGER NOT NULL,
        district INTEGER NOT NULL,
        invalid INTEGER NOT NULL,
        errors INTEGER NOT NULL,
        coverage TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    """,
}


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
