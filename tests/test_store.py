"""The store package owns every query; a unit's state is decided at filing and stored."""

from __future__ import annotations

import ast
import re
import sqlite3
from datetime import datetime
from pathlib import Path

from openpyxl import load_workbook

import intake
from intake.samples import eligible_rows, form, unit_mail
from intake.store import SCHEMA_VERSION, Status, open_store, units
from intake.workbook import rebuild

from .conftest import file_offline, make_settings

PACKAGE = Path(intake.__file__).parent
# SQL, not the IMAP commands of the same names (SELECT INBOX, CREATE folder).
SQL = re.compile(r"^\s*(SELECT\b.*\bFROM\b|SELECT\s+\d|INSERT\s+(OR\s+\w+\s+)?INTO\b|"
                 r"UPDATE\s+\w+\s+SET\b|DELETE\s+FROM\b|(CREATE|ALTER|DROP)\s+(TABLE|INDEX|UNIQUE)\b|"
                 r"PRAGMA\s+\w+)", re.IGNORECASE | re.DOTALL)


def _sql_strings(path: Path) -> list[str]:
    """String constants (f-string parts included) that begin like an SQL statement."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and \
                SQL.match(node.value):
            found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {node.value[:60]!r}")
    return found


def test_no_sql_outside_the_store_package():
    outside = [p for p in PACKAGE.rglob("*.py") if "store" not in p.relative_to(PACKAGE).parts]
    assert len(outside) > 30  # the scan sees the whole program
    found = [hit for path in outside for hit in _sql_strings(path)]
    assert found == []


def test_the_scan_finds_sql_where_it_is(tmp_path):
    """The check above can fail: it finds a query in a module that holds one."""
    hits = _sql_strings(PACKAGE / "store" / "outbox.py")
    assert any("UPDATE outbox SET state='sending'" in h for h in hits)
    sample = PACKAGE / "sample_for_scan.py"
    try:
        sample.write_text('x = f"SELECT * FROM rows WHERE id={1}"\n', encoding="utf-8")
        assert _sql_strings(sample)
    finally:
        sample.unlink()


def _file_list(settings, reference, code: str, *, leave_out_one: bool = False):
    """A unit's eligible list; with ``leave_out_one``, without one hamlet of an NTM commune."""
    unit = reference.units[code]
    rows = eligible_rows(settings, reference, unit)
    if leave_out_one:
        titled = reference.titled_communes(code)[0].name
        rows.remove([r for r in rows if r[1] == titled][-1])
    message = unit_mail(unit.emails[0], "board@example.org", "Danh sách",
                        attachments=[("ds.xlsx", form(settings, reference, unit, rows))])
    file_offline(settings, [(message, datetime(2021, 2, 1, 8, 0).astimezone())])
    return unit, rows


def test_unit_state_is_stored_at_filing(tmp_path, reference):
    settings = make_settings(tmp_path, rules={"require_sender_auth": False})
    _unit, rows = _file_list(settings, reference, "CL", leave_out_one=True)
    with open_store(settings.paths.data_dir) as store:
        state = {s.unit.code: s for s in units.summaries(store, reference)}
    cho_lach = state["CL"]
    # One hamlet of an NTM commune left out: the list needs correction (coverage error),
    # every sent row is valid, and the missing hamlet is named in its commune's coverage.
    assert cho_lach.status == Status.NEEDS_CORRECTION
    assert (cho_lach.submissions, cho_lach.valid, cho_lach.invalid) == (1, len(rows), 0)
    assert cho_lach.valid == cho_lach.provincial + cho_lach.district
    incomplete = [c for c in cho_lach.communes if c.missing]
    assert len(incomplete) == 1 and incomplete[0].registered == incomplete[0].hamlets - 1
    assert cho_lach.coverage is not None and 0 < cho_lach.coverage < 1
    # A unit that sent nothing: no status, nothing registered.
    assert state["BT"].status is None and state["BT"].submissions == 0
    assert all(c.registered == 0 for c in state["BT"].communes)


def test_a_store_from_before_unit_states_gets_them_back(tmp_path, reference):
    """A schema-4 store (lists filed, no unit_states) is migrated, and `intake rebuild`
    restores each unit's state from the lists it holds: the workbook shows them."""
    settings = make_settings(tmp_path, rules={"require_sender_auth": False})
    unit, rows = _file_list(settings, reference, "TPBT")
    path = settings.paths.data_dir / "intake.sqlite3"
    db = sqlite3.connect(path)
    db.execute("DROP TABLE unit_states")  # what migration 5 adds, taken away again
    db.execute("ALTER TABLE outbox DROP COLUMN content")
    db.execute("UPDATE meta SET value='4' WHERE key='schema_version'")
    db.commit()
    db.close()
    with open_store(settings.paths.data_dir) as store:
        assert store.version == SCHEMA_VERSION
        assert units.unsaved(store) == ["TPBT"]
    workbook = rebuild(settings)
    summary = {r[0]: r for r in load_workbook(workbook)["Tổng hợp"].iter_rows(
        min_row=2, values_only=True)}
    assert summary[unit.name][1] == "Đã tiếp nhận"
    assert summary[unit.name][5] == len(rows)
    with open_store(settings.paths.data_dir) as store:
        assert units.unsaved(store) == []


def test_restoring_unit_states_reads_the_store_not_the_archive(tmp_path, reference):
    """A schema-4 store gets its unit states from the lists it holds, as filing would have
    stored them: nothing is read or checked again, so an archived file that is gone (or a
    rule changed since) neither stops `intake rebuild` (and every cycle) nor re-files rows."""
    settings = make_settings(tmp_path, rules={"require_sender_auth": False})
    unit, rows = _file_list(settings, reference, "CL", leave_out_one=True)
    with open_store(settings.paths.data_dir) as store:
        [filed] = [s for s in units.summaries(store, reference) if s.unit.code == "CL"]
        kept = [Path(settings.paths.data_dir / r["path"]) for r in
                store.query("SELECT path FROM files")]
        stored_rows = store.one("SELECT COUNT(*) FROM rows")[0]
        store.db.execute("DELETE FROM unit_states")  # as a store from before schema 5
    for path in kept:
        path.unlink()
    workbook = rebuild(settings)
    with open_store(settings.paths.data_dir) as store:
        assert units.unsaved(store) == []
        [again] = [s for s in units.summaries(store, reference) if s.unit.code == "CL"]
        assert store.one("SELECT COUNT(*) FROM rows")[0] == stored_rows
    assert again == filed and again.status == Status.NEEDS_CORRECTION
    summary = {r[0]: r for r in load_workbook(workbook)["Tổng hợp"].iter_rows(
        min_row=2, values_only=True)}
    assert summary[unit.name][5] == len(rows)
