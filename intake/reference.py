"""The province's reference lists: units, communes and hamlet party cells (SPEC §2).

Loaded once per cycle from the CSVs in ``reference_dir``; lookups are by the name key of
``text.name_key`` and always inside one unit, because three commune names exist in two
units each.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from email.utils import parseaddr
from functools import cached_property
from pathlib import Path

from .errors import ReferenceDataError
from .text import clean, name_key, vietnamese_sort_key


@dataclass(frozen=True)
class Unit:
    code: str
    name: str
    district: str
    emails: tuple[str, ...]


@dataclass(frozen=True)
class PartyCell:
    unit_code: str
    commune_code: str
    commune_name: str
    hamlet: str
    name: str
    recognised_year: int | None
    registered_year: int | None

    @cached_property
    def key(self) -> str:
        return name_key(self.hamlet)


@dataclass
class Commune:
    unit_code: str
    code: str
    name: str
    title: str  # "NTM", "ĐTVM" or ""
    cells: list[PartyCell] = field(default_factory=list)
    _index: dict[str, PartyCell] = field(default_factory=dict, repr=False, compare=False)
    _indexed: int = field(default=-1, repr=False, compare=False)

    @property
    def key(self) -> str:
        return name_key(self.name)

    def _lookup(self) -> dict[str, PartyCell]:
        """Hamlet and party-cell name keys -> cell, built once (rebuilt if cells change)."""
        if self._indexed != len(self.cells):
            self._index.clear()
            for cell in reversed(self.cells):
                self._index[cell.key] = cell
                self._index.setdefault(name_key(cell.name), cell)
            self._indexed = len(self.cells)
        return self._index

    def cell(self, text: str) -> PartyCell | None:
        """The party cell named by hamlet or party-cell name, in any spelling."""
        return self._lookup().get(name_key(text))

    def by_key(self, key: str) -> PartyCell | None:
        return self._lookup().get(key)


@dataclass(frozen=True)
class CommuneCoverage:
    """How much of an NTM/ĐTVM commune a unit has registered (SPEC §1 rule 3): decided at
    filing, stored with the unit's state, read by the workbook, ``status`` and the digest."""

    code: str
    name: str
    title: str
    hamlets: int
    missing: tuple[tuple[str, str], ...]  # (hamlet key, hamlet name), in Vietnamese order

    @property
    def registered(self) -> int:
        return self.hamlets - len(self.missing)

    @property
    def missing_names(self) -> list[str]:
        return [name for _key, name in self.missing]

    def as_json(self) -> list[object]:
        return [self.code, self.name, self.title, self.hamlets, [list(m) for m in self.missing]]

    @classmethod
    def from_json(cls, value: list) -> CommuneCoverage:
        code, name, title, hamlets, missing = value
        return cls(code, name, title, int(hamlets), tuple((k, n) for k, n in missing))


@dataclass
class Reference:
    units: dict[str, Unit]
    communes: dict[str, list[Commune]]  # by unit code
    _commune_index: dict[str, dict[str, Commune]] = field(default_factory=dict, repr=False)

    def unit_for_address(self, address: str) -> Unit | None:
        wanted = parseaddr(address)[1].strip().lower()
        for unit in self.units.values():
            if wanted and wanted in unit.emails:
                return unit
        return None

    def unit_by_text(self, text: str) -> Unit | None:
        """A unit named in a cell or heading: code, full name or district name."""
        key = name_key(text)
        if not key:
            return None
        for unit in self.units.values():
            names = {unit.code.lower(), name_key(unit.name), name_key(unit.district)}
            names |= {name_key(unit.name.replace("Huyện đoàn", "").replace("Thành đoàn", ""))}
            if key in names or key.removeprefix("huyen doan ") in names:
                return unit
            if key.removeprefix("thanh doan ") in names or key.removeprefix("huyen ") in names:
                return unit
        return None

    def commune(self, unit_code: str, text: str) -> Commune | None:
        """A commune of one unit (three names exist in two units each)."""
        index = self._commune_index.get(unit_code)
        if index is None:
            index = {c.key: c for c in reversed(self.communes.get(unit_code, []))}
            self._commune_index[unit_code] = index
        return index.get(name_key(text))

    def units_with_commune(self, text: str) -> list[Unit]:
        key = name_key(text)
        return [
            self.units[code]
            for code, communes in self.communes.items()
            if any(commune.key == key for commune in communes)
        ]

    def titled_communes(self, unit_code: str) -> list[Commune]:
        return [c for c in self.communes.get(unit_code, []) if c.title]

    def coverage(self, unit_code: str, registered: set[tuple[str, str]]
                 ) -> list[CommuneCoverage]:
        """Each titled commune of the unit against its registered (commune code, hamlet
        key) pairs, in the reference's order: the one place coverage is computed."""
        out = []
        for commune in self.titled_communes(unit_code):
            absent = sorted(((c.key, c.hamlet) for c in commune.cells
                             if (commune.code, c.key) not in registered),
                            key=lambda m: vietnamese_sort_key(m[1]))
            out.append(CommuneCoverage(commune.code, commune.name, commune.title,
                                       len(commune.cells), tuple(absent)))
        return out


def _read(path: Path, columns: list[str]) -> list[dict[str, str]]:
    if not path.is_file():
        raise ReferenceDataError(f"reference file missing: {path}")
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise ReferenceDataError(f"{path.name}: missing column(s) {', '.join(missing)}")
        return [{k: clean(v) for k, v in row.items() if k} for row in reader]


def _year(text: str, path: Path, line: int) -> int | None:
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise ReferenceDataError(f"{path.name} line {line}: not a year: {text!r}") from None


def load_reference(folder: Path) -> Reference:
    """Read the three CSVs; a malformed file is an operator error, raised with its line."""
    units = {
        row["unit_code"]: Unit(
            code=row["unit_code"],
            name=row["unit_name"],
            district=row["district_name"],
            emails=tuple(e.strip().lower() for e in row["emails"].split(";") if e.strip()),
        )
        for row in _read(folder / "units.csv", ["unit_code", "unit_name", "district_name", "emails"])
    }
    communes: dict[str, list[Commune]] = {code: [] for code in units}
    by_code: dict[tuple[str, str], Commune] = {}
    path = folder / "communes.csv"
    for line, row in enumerate(
        _read(path, ["unit_code", "commune_code", "commune_name", "title"]), start=2
    ):
        if row["unit_code"] not in units:
            raise ReferenceDataError(f"{path.name} line {line}: unknown unit {row['unit_code']}")
        commune = Commune(row["unit_code"], row["commune_code"], row["commune_name"], row["title"])
        communes[commune.unit_code].append(commune)
        by_code[(commune.unit_code, commune.code)] = commune
    path = folder / "party_cells.csv"
    columns = ["unit_code", "commune_code", "commune_name", "hamlet_name", "party_cell_name",
               "recognised_year", "registered_year"]
    for line, row in enumerate(_read(path, columns), start=2):
        commune = by_code.get((row["unit_code"], row["commune_code"]))
        if commune is None:
            raise ReferenceDataError(
                f"{path.name} line {line}: commune {row['commune_code']} not in communes.csv"
            )
        commune.cells.append(
            PartyCell(
                unit_code=row["unit_code"],
                commune_code=row["commune_code"],
                commune_name=commune.name,
                hamlet=row["hamlet_name"],
                name=row["party_cell_name"],
                recognised_year=_year(row["recognised_year"], path, line),
                registered_year=_year(row["registered_year"], path, line),
            )
        )
    return Reference(units=units, communes=communes)
