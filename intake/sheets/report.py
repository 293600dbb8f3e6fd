"""Files -> one check report: the single value every renderer (terminal, JSON, reply,
workbook, annotated copy) draws from, so the pipeline and ``intake check`` agree."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from ..config import Settings
from ..findings import Finding, finding
from ..reference import Reference, Unit
from ..text import fold
from .checks import (
    Hamlet,
    RowResult,
    check_conflict,
    check_coverage,
    check_duplicates,
    check_row,
    guess_unit,
    registered_hamlets,
)
from .header import FIELD_LABELS, Header, find_header
from .read import FileRead, Table, read_file
from .rows import Row, level_of_name, read_rows

# (unit code, hamlets of its rows) -> those of them other units hold, with the holder's
# code: what ROW_CONFLICT is checked against (``store.submissions.held_elsewhere``).
HeldBy = Callable[[str, set[Hamlet]], Mapping[Hamlet, str]]

_HEADING_UNIT = re.compile(r"\b(huyen doan|thanh doan|doan huyen|doan thanh pho|doan tp)\s+(.+)$")


@dataclass
class FileReport:
    file: str
    data: bytes = b""
    findings: list[Finding] = field(default_factory=list)  # file- and sheet-level
    results: list[RowResult] = field(default_factory=list)
    headers: list[Header] = field(default_factory=list)
    heading_unit: Unit | None = None
    unit: Unit | None = None  # the unit its rows were checked against
    coverage: list[Finding] = field(default_factory=list)  # placed on this file

    @property
    def all_findings(self) -> list[Finding]:
        """File-level findings, then each row's (coverage findings are the report's)."""
        return self.findings + [f for r in self.results for f in r.findings]

    @property
    def valid_rows(self) -> int:
        return sum(1 for r in self.results if r.valid)

    def as_json(self) -> dict[str, object]:
        return {"file": self.file, "rows": len(self.results), "valid_rows": self.valid_rows,
                "findings": [f.as_json() for f in self.all_findings]}


@dataclass
class Report:
    files: list[FileReport]
    unit: Unit | None = None
    coverage: list[Finding] = field(default_factory=list)

    @property
    def results(self) -> list[RowResult]:
        return [r for f in self.files for r in f.results]

    @property
    def findings(self) -> list[Finding]:
        return [x for f in self.files for x in f.all_findings] + self.coverage

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.is_error]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if not f.is_error]

    def json_chunks(self) -> Iterator[str]:
        """``as_json`` serialised piece by piece (one finding at a time), so that a file
        with 100,000 findings never holds them all as dicts and one string at once."""
        yield '{"files": ['
        for index, file in enumerate(self.files):
            head = {"file": file.file, "rows": len(file.results), "valid_rows": file.valid_rows}
            yield ("," if index else "") + json.dumps(head, ensure_ascii=False)[:-1]
            yield ', "findings": ['
            findings = [*file.findings, *(f for r in file.results for f in r.findings),
                        *file.coverage]
            for start in range(0, len(findings), 1000):  # a thousand at a time: few calls
                batch = [f.as_json() for f in findings[start:start + 1000]]
                yield ("," if start else "") + json.dumps(batch, ensure_ascii=False)[1:-1]
            yield "]}"
        yield "]}\n"

    def as_json(self) -> dict[str, object]:
        files = [f.as_json() for f in self.files]
        for file, data in zip(self.files, files, strict=True):
            data["findings"] += [f.as_json() for f in file.coverage]  # type: ignore[operator]
        return {"files": files}


def _heading_unit(table: Table, header: Header, reference: Reference) -> Unit | None:
    for row in table.rows[: header.first_row]:
        for value in row:
            match = _HEADING_UNIT.search(fold(value)) if value else None
            if match and (unit := reference.unit_by_text(match.group(2))):
                return unit
    return None


def _sheet_level(table: Table, header: Header) -> str | None:
    """The level a whole sheet registers for when no column says: its name ("Cấp tỉnh"),
    else its title ("DANH SÁCH … CẤP HUYỆN"); None when neither names exactly one."""
    named = level_of_name(table.sheet)
    if named:
        return named
    titles = {level_of_name(v) for row in table.rows[: header.first_row] for v in row
              if isinstance(v, str)} - {None}
    return titles.pop() if len(titles) == 1 else None


def _sheet_rows(read: FileRead, report: FileReport, reference: Reference) -> list[Row]:
    headers = [(t, find_header(t)) for t in read.tables]
    found = [(t, h) for t, h in headers if h is not None]
    visible = [(t, h) for t, h in found if not t.hidden]
    chosen = visible or found
    if not chosen:
        names = ", ".join(t.sheet for t in read.tables) or "(không có)"
        report.findings.append(finding(
            "SHEET_NO_HEADER",
            f"Tệp {read.file}: không tìm thấy dòng tiêu đề của danh sách ở trang tính nào "
            f"({names}). Vui lòng dùng mẫu của Ban (các cột Xã, phường, thị trấn; Tên Chi đoàn; "
            "Số lượng đoàn viên; Chi bộ ấp, khu phố; Cấp đăng ký).", file=read.file))
        return []
    rows: list[Row] = []
    for table, header in chosen:
        assert header is not None
        report.headers.append(header)
        report.heading_unit = report.heading_unit or _heading_unit(table, header, reference)
        missing = header.missing()
        level = _sheet_level(table, header)
        sheet_rows = read_rows(header, level) if missing in ([], ["level"]) else []
        if missing == ["level"] and (level or any(r.level_from == "section" for r in sheet_rows)):
            missing = []  # the level is given by where the rows stand
        for need in missing:
            report.findings.append(finding(
                "SHEET_MISSING_COLUMN",
                f"Trang tính “{table.sheet}”: thiếu cột “{FIELD_LABELS[need]}”.",
                file=read.file, sheet=table.sheet, row=header.last_row + 1, field=need))
        if missing:
            continue
        if not sheet_rows and len(chosen) == 1:
            report.findings.append(finding(
                "SHEET_NO_ROWS",
                f"Trang tính “{table.sheet}” có dòng tiêu đề nhưng chưa có Chi đoàn nào.",
                file=read.file, sheet=table.sheet, row=header.last_row + 1))
        rows.extend(sheet_rows)
    return rows


def check_files(files: list[tuple[str, bytes]], reference: Reference, settings: Settings,
                unit: Unit | None = None, coverage: bool = True,
                held: HeldBy | None = None) -> Report:
    """Read and check attachments as one submission (a zip counts as its members)."""
    reads = [r for name, data in files for r in read_file(name, data, settings.limits)]
    return check_reads(reads, reference, settings, unit, coverage, held)


def check_reads(reads: list[FileRead], reference: Reference, settings: Settings,
                unit: Unit | None = None, coverage: bool = True,
                held: HeldBy | None = None) -> Report:
    """Check files already read (``read_file``): reading needs no reference lists, so a
    caller may read while they load.

    ``held`` says which hamlets other units hold (ROW_CONFLICT); without it (``intake
    check``, offline) the rows are checked against the reference lists alone.
    """
    reports: list[FileReport] = []
    rows_by_file: list[list[Row]] = []
    for read in reads:
        report = FileReport(read.file, data=read.data, findings=list(read.findings))
        rows_by_file.append(_sheet_rows(read, report, reference) if read.tables else [])
        reports.append(report)
    units = _units(reports, rows_by_file, reference) if unit is None else [unit] * len(reports)
    for report, rows, own in zip(reports, rows_by_file, units, strict=True):
        report.unit = own
        report.results = [check_row(row, own, reference, settings) for row in rows]
    distinct = list(dict.fromkeys(u for u in units if u is not None))
    result = Report(reports, unit or (distinct[0] if len(distinct) == 1 else None))
    check_duplicates(result.results)
    if held is not None:
        _check_conflicts(reports, distinct, held, reference)
    if coverage:
        for each in distinct:
            mine = [r for r in reports if r.unit is each]
            results = [x for r in mine for x in r.results]
            if results:
                found = check_coverage(registered_hamlets(results), each, reference, mine[0].file,
                                       attempted=results)
                mine[0].coverage = found
                result.coverage += found
    return result


def _check_conflicts(reports: list[FileReport], units: list[Unit], held: HeldBy,
                     reference: Reference) -> None:
    """ROW_CONFLICT on each unit's rows, asking once per unit which hamlets others hold."""
    for unit in units:
        results = [r for report in reports if report.unit is unit for r in report.results]
        taken = held(unit.code, {(r.cell.commune_code, r.cell.key) for r in results if r.cell})
        for r in results:
            if r.cell is not None:
                r.findings += check_conflict(r.row, r.cell, taken, reference)


def _units(reports: list[FileReport], rows_by_file: list[list[Row]],
           reference: Reference) -> list[Unit | None]:
    """Each file's own unit when nobody said which (``intake check`` of several files):
    its heading, else its unit column or communes; a file with neither takes the unit
    the files show together."""
    own = [report.heading_unit or guess_unit(rows, reference)
           for report, rows in zip(reports, rows_by_file, strict=True)]
    if all(u is not None for u in own):
        return own
    together = next((u for u in own if u is not None), None)
    return [u or together for u in own]
