"""Submissions and what they hold: archived files, rows, findings, the hamlets each unit
holds, and the findings staff accepted against the rules (SPEC §5, §7, §10).

A unit's *current* list is its rows with ``current=1``: a full list replaces them all, a
"bổ sung" only the hamlets it names. Filing is the one writer (inside its transaction).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from sqlite3 import Row

from .db import Store


def add(store: Store, *, message: int, unit_code: str, received_at: str, addition: bool,
        late: bool, status: str) -> int:
    return store.insert("submissions", {
        "message": message, "unit_code": unit_code, "received_at": received_at,
        "addition": int(addition), "status": status, "late": int(late)})


def set_status(store: Store, submission: int, status: str) -> None:
    store.db.execute("UPDATE submissions SET status=? WHERE id=?", (status, submission))


def add_file(store: Store, submission: int, name: str, digest: str, path: str) -> None:
    store.insert("files", {"submission": submission, "name": name, "sha256": digest,
                           "path": path})


def files(store: Store, submission: int) -> list[Row]:
    return store.query("SELECT name, path FROM files WHERE submission=? ORDER BY id",
                       (submission,))


def last(store: Store, unit_code: str) -> Row | None:
    """The unit's latest submission."""
    return store.one("SELECT * FROM submissions WHERE unit_code=? ORDER BY received_at DESC,"
                     " id DESC LIMIT 1", (unit_code,))


def count(store: Store, unit_code: str) -> int:
    return int(store.one("SELECT COUNT(*) FROM submissions WHERE unit_code=?",
                         (unit_code,))[0])


def of_unit(store: Store, unit_code: str) -> list[Row]:
    """The unit's submissions in the order received, with their message's archive."""
    return store.query("SELECT s.*, m.archive, m.id AS message_row FROM submissions s"
                       " JOIN messages m ON m.id = s.message WHERE s.unit_code=?"
                       " ORDER BY s.received_at, s.id", (unit_code,))


def newer(store: Store, unit_code: str, than: str, *, full_only: bool) -> Row | None:
    """The latest list the unit sent after ``than`` (a full one only, with ``full_only``):
    an older list released by staff must not replace it."""
    return store.one("SELECT received_at FROM submissions WHERE unit_code=? AND received_at > ?"
                     + (" AND addition=0" if full_only else "")
                     + " ORDER BY received_at DESC LIMIT 1", (unit_code, than))


# -- rows and findings -------------------------------------------------------------------------

def retire_hamlet(store: Store, unit_code: str, commune_code: str, hamlet_key: str) -> None:
    """A "bổ sung" row replaces the unit's current row for the same hamlet."""
    for (old,) in store.query("SELECT id FROM rows WHERE unit_code=? AND current=1 AND"
                              " commune_code=? AND hamlet_key=?",
                              (unit_code, commune_code, hamlet_key)):
        store.db.execute("UPDATE rows SET current=0 WHERE id=?", (old,))
        store.db.execute("UPDATE findings SET current=0 WHERE row=?", (old,))


def retire_findings(store: Store, unit_code: str, codes: Iterable[str]) -> None:
    """Unit-wide findings (coverage, lateness) that the next filing states afresh."""
    codes = list(codes)
    store.db.execute(f"UPDATE findings SET current=0 WHERE current=1 AND unit_code=? AND code IN"
                     f" ({', '.join('?' * len(codes))})", (unit_code, *codes))


def retire_unit(store: Store, unit_code: str) -> None:
    """A full list replaces everything the unit had."""
    store.db.execute("UPDATE rows SET current=0 WHERE current=1 AND unit_code=?", (unit_code,))
    store.db.execute("UPDATE findings SET current=0 WHERE current=1 AND unit_code=?",
                     (unit_code,))


def add_row(store: Store, values: dict[str, object]) -> int:
    return store.insert("rows", values)


def add_finding(store: Store, values: dict[str, object]) -> int:
    return store.insert("findings", values)


def registered(store: Store, unit_code: str) -> set[tuple[str, str]]:
    """(commune_code, hamlet_key) of the unit's current valid rows."""
    return {(r[0], r[1]) for r in store.query(
        "SELECT commune_code, hamlet_key FROM rows WHERE unit_code=? AND current=1 AND valid=1",
        (unit_code,))}


def held_elsewhere(store: Store, unit_code: str, hamlets: Iterable[tuple[str, str]]
                   ) -> dict[tuple[str, str], str]:
    """Of these (commune_code, hamlet_key), those in another unit's current valid list, with
    that unit's code (ROW_CONFLICT)."""
    held: dict[tuple[str, str], str] = {}
    for commune_code, hamlet_key in set(hamlets):
        row = store.one("SELECT unit_code FROM rows WHERE commune_code=? AND hamlet_key=? AND"
                        " current=1 AND valid=1 AND unit_code != ? LIMIT 1",
                        (commune_code, hamlet_key, unit_code))
        if row is not None:
            held[(commune_code, hamlet_key)] = row[0]
    return held


def figures(store: Store, unit_code: str) -> tuple[int, int, int, int, int]:
    """The unit's current list counted: (rows, valid, provincial, district, errors)."""
    rows = store.one(
        "SELECT COUNT(*), COALESCE(SUM(valid), 0),"
        " COALESCE(SUM(valid=1 AND level='provincial'), 0),"
        " COALESCE(SUM(valid=1 AND level='district'), 0)"
        " FROM rows WHERE unit_code=? AND current=1", (unit_code,))
    errors = store.one("SELECT COUNT(*) FROM findings WHERE current=1 AND unit_code=? AND"
                       " level='error'", (unit_code,))
    return int(rows[0]), int(rows[1]), int(rows[2]), int(rows[3]), int(errors[0])


def current_rows(store: Store, unit_code: str) -> list[Row]:
    """The current rows of one unit."""
    return store.query("SELECT * FROM rows WHERE unit_code=? AND current=1", (unit_code,))


def current_rows_in_order(store: Store, unit_rank: dict[str, int],
                          commune_key: Callable[[str], object]) -> Iterator[Row]:
    """Every current row, streamed in the workbook's order: units by ``unit_rank``, then
    communes by ``commune_key`` (Vietnamese order), then as received. SQLite sorts, so a
    national campaign's 100k rows are never all held in Python at once."""
    communes = sorted((r[0] for r in store.query("SELECT DISTINCT commune FROM rows"
                                                  " WHERE current=1")), key=commune_key)
    commune_rank = {name: i for i, name in enumerate(communes)}
    _rank_functions(store, unit_rank, commune_rank)
    yield from store.db.execute(
        "SELECT * FROM rows WHERE current=1 ORDER BY intake_unit_rank(unit_code),"
        " intake_commune_rank(commune), received_at, file, sheet, row_number, id")


def current_findings_in_order(store: Store, unit_rank: dict[str, int]) -> Iterator[Row]:
    """Every current finding, streamed: by unit, then by submission, file, sheet, cell."""
    _rank_functions(store, unit_rank, {})
    yield from store.db.execute(
        "SELECT * FROM findings WHERE current=1 ORDER BY intake_unit_rank(unit_code),"
        " submission, file, sheet, COALESCE(row_number, 0), column_letter, id")


def _rank_functions(store: Store, unit_rank: dict[str, int], commune_rank: dict[str, int]
                    ) -> None:
    last = len(unit_rank)
    store.db.create_function("intake_unit_rank", 1, lambda code: unit_rank.get(code, last),
                             deterministic=True)
    store.db.create_function("intake_commune_rank", 1, lambda name: commune_rank.get(name, 0),
                             deterministic=True)


def current_findings(store: Store, unit_code: str, *, level: str | None = None) -> list[Row]:
    """The current findings of one unit, of one level when given."""
    if level is None:
        return store.query("SELECT * FROM findings WHERE current=1 AND unit_code=?",
                           (unit_code,))
    return store.query("SELECT * FROM findings WHERE current=1 AND unit_code=? AND level=?",
                       (unit_code, level))


def row_has_finding(store: Store, unit_code: str, commune_code: str, hamlet_key: str,
                    code: str) -> bool:
    return store.one(
        "SELECT 1 FROM findings f JOIN rows r ON r.id = f.row WHERE r.unit_code=? AND"
        " r.current=1 AND r.commune_code=? AND r.hamlet_key=? AND f.code=? AND f.current=1",
        (unit_code, commune_code, hamlet_key, code)) is not None


# -- acceptances: findings staff accepted against the rules (``intake accept``) -----------

def accept(store: Store, *, unit_code: str, commune_code: str, hamlet_key: str, code: str,
           hamlet: str, note: str, actor: str, at: str) -> None:
    store.db.execute(
        "INSERT INTO acceptances(unit_code, commune_code, hamlet_key, code, hamlet, note, actor,"
        " at) VALUES (?,?,?,?,?,?,?,?) ON CONFLICT(unit_code, commune_code, hamlet_key, code)"
        " DO UPDATE SET note=excluded.note, actor=excluded.actor, at=excluded.at",
        (unit_code, commune_code, hamlet_key, code, hamlet, note, actor, at))


def acceptances(store: Store, unit_code: str) -> dict[tuple[str, str, str], str]:
    """The notes of accepted findings by (commune_code, hamlet_key, code)."""
    return {(r[0], r[1], r[2]): r[3] for r in store.query(
        "SELECT commune_code, hamlet_key, code, note FROM acceptances WHERE unit_code=?",
        (unit_code,))}
