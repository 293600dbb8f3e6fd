"""A unit's state: decided once, when one of its lists is filed or rechecked, and stored;
every view (the workbook, ``intake status``, the digest and the final report) reads it
through ``summaries`` and derives nothing itself."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from sqlite3 import Row

from ..reference import CommuneCoverage, Reference, Unit
from ..text import vietnamese_sort_key
from . import messages, submissions
from .db import Status, Store, now_iso

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UnitSummary:
    """One unit's standing in the campaign."""

    unit: Unit
    status: str | None  # None: nothing received from the unit yet
    submissions: int = 0
    received_at: str | None = None  # its latest list
    late: bool = False
    valid: int = 0
    provincial: int = 0
    district: int = 0
    invalid: int = 0
    errors: int = 0
    communes: tuple[CommuneCoverage, ...] = ()  # titled communes, in Vietnamese order

    @property
    def coverage(self) -> float | None:
        """The share of hamlets registered across the unit's NTM/ĐTVM communes."""
        total = sum(c.hamlets for c in self.communes)
        return sum(c.registered for c in self.communes) / total if total else None


def save(store: Store, unit_code: str, coverage: list[CommuneCoverage]) -> None:
    """Decide and store the unit's state from its current list (in the filing transaction).

    The status is its latest list's, except that a unit whose current list still has an
    error (an earlier row a "bổ sung" did not fix) or no row at all needs correction, and
    one whose errors are all fixed is accepted.
    """
    last = submissions.last(store, unit_code)
    if last is None:
        return
    rows, valid, provincial, district, errors = submissions.figures(store, unit_code)
    status = last["status"]
    if status in (Status.ACCEPTED, Status.NEEDS_CORRECTION):  # as filing judges a list
        status = Status.NEEDS_CORRECTION if errors or not rows else Status.ACCEPTED
    store.db.execute(
        "INSERT OR REPLACE INTO unit_states(unit_code, status, submissions, received_at, late,"
        " valid, provincial, district, invalid, errors, coverage, updated_at)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
        (unit_code, str(status), submissions.count(store, unit_code), last["received_at"],
         int(last["late"]), valid, provincial, district, rows - valid, errors,
         json.dumps([c.as_json() for c in coverage], ensure_ascii=False), now_iso()))


def saved(store: Store, unit_code: str) -> Row | None:
    """The unit's stored state (None before its first list)."""
    return store.one("SELECT * FROM unit_states WHERE unit_code=?", (unit_code,))


def restore(store: Store, reference: Reference) -> list[str]:
    """Units whose state was never stored (a store from before states were kept) get it
    from the list the store holds, as filing would have stored it: nothing is read from
    the archive or checked again, so a lost archived file or a rule changed since cannot
    stop a cycle or ``intake rebuild``. The caller holds the cycle lock. Returns the
    units restored."""
    missing = [code for code in unsaved(store) if code in reference.units]
    if missing:
        with store.transaction():
            for code in missing:
                save(store, code, reference.coverage(code, submissions.registered(store, code)))
        log.info("unit states restored for %s", ", ".join(missing))
    return missing


def unsaved(store: Store) -> list[str]:
    """Units with lists but no stored state (a store from before states were kept)."""
    return [r[0] for r in store.query("SELECT DISTINCT unit_code FROM submissions WHERE"
                                      " unit_code NOT IN (SELECT unit_code FROM unit_states)")]


def summaries(store: Store, reference: Reference) -> list[UnitSummary]:
    """Every unit of the reference lists, in Vietnamese order of their names."""
    saved = {r["unit_code"]: r for r in store.query("SELECT * FROM unit_states")}
    out = []
    for unit in sorted(reference.units.values(), key=lambda u: vietnamese_sort_key(u.name)):
        row = saved.get(unit.code)
        if row is None:  # no list yet: what its mail was, and nothing registered
            out.append(UnitSummary(unit, messages.last_status(store, unit.code),
                                   communes=_ordered(reference.coverage(unit.code, set()))))
            continue
        out.append(UnitSummary(
            unit, row["status"], submissions=row["submissions"], received_at=row["received_at"],
            late=bool(row["late"]), valid=row["valid"], provincial=row["provincial"],
            district=row["district"], invalid=row["invalid"], errors=row["errors"],
            communes=_ordered(CommuneCoverage.from_json(c)
                              for c in json.loads(row["coverage"]))))
    return out


def _ordered(communes) -> tuple[CommuneCoverage, ...]:
    return tuple(sorted(communes, key=lambda c: vietnamese_sort_key(c.name)))
