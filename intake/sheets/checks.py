"""Rows + reference lists -> findings, one small function per SPEC §5 code.

Checks never raise for bad data. Each returns the findings it has (usually zero or
one), located at the Excel row and column the sender sees, with the value it found and,
where one exists, a suggestion.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache

from rapidfuzz import fuzz, process

from ..config import Settings
from ..findings import Finding, finding, row_ranges
from ..reference import Commune, PartyCell, Reference, Unit
from ..text import name_key, strip_diacritics
from .header import FIELD_LABELS
from .rows import Row

REQUIRED_FIELDS = ("commune", "branch", "members", "party_cell")
_PHONE = re.compile(r"(?:\+?84|0)(?:[35789]\d{8}|2\d{9})")
_PHONE_NO_ZERO = re.compile(r"[35789]\d{8}|2\d{9}")  # the leading 0 Excel dropped
_PHONE_NOISE = re.compile(r"[\s.\-()]|^(?:đt|dt|sđt|sdt|tel|mobile|dđ|dd)\s*:?", re.IGNORECASE)
_PHONE_SPLIT = re.compile(r"\s*(?:[/;,]|\s-\s|\bhoặc\b|\bhoac\b)\s*", re.IGNORECASE)

Hamlet = tuple[str, str]  # (commune code, hamlet key): one hamlet, as rows are stored


@dataclass(slots=True)
class RowResult:
    """A row with what it resolved to in the reference lists and what is wrong with it."""

    row: Row
    commune: Commune | None = None
    cell: PartyCell | None = None
    findings: list[Finding] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not any(f.is_error for f in self.findings)

    @property
    def status_label(self) -> str:
        if self.row.registering:
            return "Đăng ký TSVMTD"
        if self.row.recognised_year:
            return f"Đã công nhận TSVMTD năm {self.row.recognised_year}"
        return ""


def _at(row: Row, name: str, **extra: object) -> dict[str, object]:
    """Location keywords of a finding on one cell of a row."""
    where: dict[str, object] = {"file": row.file, "sheet": row.sheet, "row": row.number,
                                "column": row.column(name), "field": name,
                                "value": row.text(name)}
    where.update(extra)
    return where


class _Choices:
    """Reference names prepared once for fuzzy matching, with every answer remembered.

    A file full of mistakes asks about thousands of names; scoring each against every
    name of its commune with WRatio (keys rebuilt, no cutoff) was two thirds of the time
    of checking such a file. Now WRatio scores only the likely names: the closest by
    plain edit ratio (25 times cheaper) and those sharing a word with the query.
    """

    SHORTLIST = 12

    def __init__(self, options: tuple[str, ...]) -> None:
        self.options = options
        self.keys = [name_key(option) for option in options]
        self.words: dict[str, list[int]] = {}
        for index, key in enumerate(self.keys):
            for word in set(key.split()):
                self.words.setdefault(word, []).append(index)
        self.answers: dict[str, list[str]] = {}

    def _shortlist(self, query: str) -> list[int]:
        if len(self.keys) <= self.SHORTLIST * 2:
            return list(range(len(self.keys)))
        near = process.extract(query, self.keys, scorer=fuzz.ratio, limit=self.SHORTLIST)
        picked = dict.fromkeys(index for _key, _score, index in near)
        for word in set(query.split()):
            for index in self.words.get(word, ())[: self.SHORTLIST * 4]:
                picked.setdefault(index)
        return list(picked)

    def best(self, text: str) -> list[str]:
        query = name_key(text) or strip_diacritics(text).lower()
        answer = self.answers.get(query)
        if answer is None:
            shortlist = self._shortlist(query)
            scored = process.extract(query, [self.keys[i] for i in shortlist],
                                     scorer=fuzz.WRatio, limit=3, score_cutoff=60)
            ranked = [(self.options[shortlist[index]], score) for _key, score, index in scored]
            if not ranked:
                answer = []
            elif len(ranked) == 1 or ranked[0][1] - ranked[1][1] >= 10:
                answer = [ranked[0][0]]
            else:
                answer = [option for option, _score in ranked]
            if len(self.answers) < 100_000:
                self.answers[query] = answer
        return answer


@lru_cache(maxsize=4096)
def _choices(options: tuple[str, ...]) -> _Choices:
    return _Choices(options)


def suggest(text: str, choices: Iterable[str]) -> list[str]:
    """Closest reference names: one clear winner, else up to three, compared without accents."""
    options = tuple(dict.fromkeys(choices))
    if not options or not text:
        return []
    return _choices(options).best(text)


_BY_COMMUNE: dict[tuple[str, str, int], _Choices] = {}


def _cell_choices(commune: Commune) -> _Choices:
    """A commune's party-cell names prepared once (not per unknown name)."""
    key = (commune.unit_code, commune.code, len(commune.cells))
    found = _BY_COMMUNE.get(key)
    if found is None:
        if len(_BY_COMMUNE) > 4096:
            _BY_COMMUNE.clear()
        found = _BY_COMMUNE[key] = _Choices(tuple(dict.fromkeys(c.name for c in commune.cells)))
    return found


def did_you_mean(names: list[str]) -> str:
    if not names:
        return ""
    return "Có phải là " + " hoặc ".join(f"“{n}”" for n in names) + "?"


def check_required(row: Row) -> list[Finding]:
    return [
        finding("ROW_REQUIRED",
                f"Dòng {row.number}: chưa ghi “{FIELD_LABELS[name]}” (thông tin bắt buộc).",
                **_at(row, name))
        for name in REQUIRED_FIELDS
        if not row.text(name)
    ]


def check_members(row: Row, rules: Settings) -> list[Finding]:
    if not row.text("members"):
        return []
    if row.members is None or row.members <= 0:
        return [finding(
            "ROW_MEMBERS_INVALID",
            f"Dòng {row.number}: số lượng đoàn viên “{row.text('members')}” không phải là "
            "số nguyên dương.", **_at(row, "members"),
            suggestion="Ghi một số, ví dụ 18.")]
    minimum = {"provincial": rules.rules.min_members_provincial,
               "district": rules.rules.min_members_district}.get(row.level or "")
    if minimum and row.members < minimum:
        level = "cấp tỉnh" if row.level == "provincial" else "cấp huyện"
        return [finding(
            "ROW_MEMBERS_BELOW_MIN",
            f"Dòng {row.number}: Chi đoàn có {row.members} đoàn viên, dưới mức tối thiểu "
            f"{minimum} đoàn viên để đăng ký {level}.", **_at(row, "members"))]
    return []


def check_level(row: Row) -> list[Finding]:
    name = "level" if "level" in row.columns else "level_provincial"
    reason = row.problems.get("level")
    if reason == "both levels marked":
        message = f"Dòng {row.number}: đánh dấu cả “Cấp tỉnh” và “Cấp huyện”; chỉ chọn một cấp."
    elif reason:
        message = f"Dòng {row.number}: không hiểu cấp đăng ký “{row.text(name)}”."
    elif row.level is None:
        message = (f"Dòng {row.number}: chưa chọn cấp đăng ký; đánh dấu “x” vào "
                   "“Cấp tỉnh” hoặc “Cấp huyện”.")
    else:
        return []
    return [finding("ROW_LEVEL_INVALID", message, **_at(row, name),
                    suggestion="Đánh dấu “x” vào đúng một cột: Cấp tỉnh hoặc Cấp huyện.")]


def check_status(row: Row, year: int) -> list[Finding]:
    """Status given once, readably, and a registration for the campaign year only."""
    name = "status" if "status" in row.columns else "recognised_year"
    if row.registering and "registering" in row.columns and "status" not in row.columns:
        name = "registering"
    if "status" in row.problems:
        message = (f"Dòng {row.number}: không đọc được tình trạng Chi bộ "
                   f"“{row.text('status') or row.text('recognised_year') or row.text('registering')}”.")
    elif row.recognised_year and row.registering:
        message = (f"Dòng {row.number}: vừa ghi năm được công nhận TSVMTD vừa đánh dấu đăng ký; "
                   "chỉ ghi một trong hai.")
    elif not row.recognised_year and not row.registering:
        message = (f"Dòng {row.number}: chưa ghi năm Chi bộ được công nhận TSVMTD hoặc "
                   "đánh dấu đăng ký TSVMTD.")
    elif row.registering and row.registering_year not in (None, year):
        return [finding(
            "ROW_STATUS_INVALID",
            f"Dòng {row.number}: ghi “{row.text(name)}”, nhưng đợt đăng ký xây dựng Chi bộ "
            f"TSVMTD hiện nay là năm {year}.", **_at(row, name),
            suggestion=f"Nếu Chi bộ đăng ký TSVMTD năm {year}, ghi “Đăng ký năm {year}”; nếu "
                       "Chi bộ đã được công nhận, ghi năm được công nhận.")]
    else:
        return []
    return [finding("ROW_STATUS_INVALID", message, **_at(row, name),
                    suggestion="Ghi năm được công nhận (ví dụ 2019) hoặc đánh dấu “x” "
                               "vào cột đăng ký, không ghi cả hai.")]


def check_unit(row: Row, unit: Unit, reference: Reference) -> list[Finding]:
    if not row.text("unit"):
        return []
    named = reference.unit_by_text(row.text("unit"))
    if named is None or named.code == unit.code:
        return []
    return [finding(
        "ROW_UNIT_MISMATCH",
        f"Dòng {row.number}: ghi đơn vị “{row.text('unit')}”, nhưng danh sách gửi từ "
        f"{unit.name}.", **_at(row, "unit"),
        suggestion=f"Mỗi đơn vị chỉ gửi danh sách của mình ({unit.name}).")]


def check_commune(row: Row, unit: Unit, reference: Reference) -> tuple[Commune | None, list[Finding]]:
    text = row.text("commune")
    if not text:
        return None, []
    commune = reference.commune(unit.code, text)
    if commune:
        return commune, []
    names = suggest(text, [c.name for c in reference.communes.get(unit.code, [])])
    others = [u.name for u in reference.units_with_commune(text) if u.code != unit.code]
    message = f"Dòng {row.number}: “{text}” không thuộc {unit.name}."
    if others:
        message += f" Xã, phường này thuộc {', '.join(others)}."
    return None, [finding("ROW_COMMUNE_UNKNOWN", message, **_at(row, "commune"),
                          suggestion=did_you_mean(names))]


def check_party_cell(row: Row, commune: Commune) -> tuple[PartyCell | None, list[Finding]]:
    text = row.text("party_cell")
    if not text:
        return None, []
    cell = commune.cell(text)
    if cell:
        return cell, []
    names = _cell_choices(commune).best(text) if commune.cells else []
    return None, [finding(
        "ROW_PARTY_CELL_UNKNOWN",
        f"Dòng {row.number}: {commune.name} không có “{text}” trong danh sách Chi bộ ấp, khu phố.",
        **_at(row, "party_cell"), suggestion=did_you_mean(names))]


def check_eligible(row: Row, cell: PartyCell, settings: Settings) -> list[Finding]:
    since = settings.rules.recognised_since
    year = settings.campaign.year
    recognised = cell.recognised_year is not None and cell.recognised_year >= since
    registered = cell.registered_year == year
    name = "status" if "status" in row.columns else (
        "registering" if row.registering and "registering" in row.columns else "recognised_year")
    where = _at(row, name)
    if not recognised and not registered:
        return [finding(
            "ROW_PARTY_CELL_NOT_ELIGIBLE",
            f"Dòng {row.number}: {cell.name} ({cell.commune_name}) chưa được công nhận TSVMTD từ "
            f"năm {since} và chưa đăng ký TSVMTD năm {year}, nên Chi đoàn chưa đủ điều kiện "
            "đăng ký.", **where)]
    if row.recognised_year and row.recognised_year != cell.recognised_year:
        truth = (f"được công nhận năm {cell.recognised_year}" if cell.recognised_year
                 else f"đăng ký TSVMTD năm {year}, chưa được công nhận")
        return [finding(
            "ROW_PARTY_CELL_NOT_ELIGIBLE",
            f"Dòng {row.number}: ghi {cell.name} được công nhận năm {row.recognised_year}, "
            f"nhưng theo danh sách của Ban thì Chi bộ {truth}.", **where,
            suggestion="Sửa tình trạng Chi bộ cho đúng danh sách được công nhận.")]
    if row.registering and not registered:
        return [finding(
            "ROW_PARTY_CELL_NOT_ELIGIBLE",
            f"Dòng {row.number}: ghi {cell.name} đăng ký TSVMTD năm {year}, nhưng Chi bộ không "
            "có trong danh sách đăng ký; theo danh sách, Chi bộ được công nhận năm "
            f"{cell.recognised_year}.", **where,
            suggestion=f"Ghi năm được công nhận {cell.recognised_year} thay cho đánh dấu đăng ký.")]
    return []


def check_district_model(row: Row, settings: Settings) -> list[Finding]:
    name = "district_model_year"
    if "district_model_year" in row.problems:
        return [finding("ROW_DISTRICT_MODEL_REQUIRED",
                        f"Dòng {row.number}: không đọc được năm đạt Chi đoàn kiểu mẫu cấp huyện "
                        f"“{row.text(name)}”.", **_at(row, name),
                        suggestion="Ghi năm, ví dụ 2019.")]
    if (settings.rules.provincial_requires_district_model and row.level == "provincial"
            and not row.district_model_year):
        return [finding("ROW_DISTRICT_MODEL_REQUIRED",
                        f"Dòng {row.number}: đăng ký cấp tỉnh nhưng chưa ghi năm đạt Chi đoàn kiểu "
                        "mẫu cấp huyện.", **_at(row, name),
                        suggestion="Ghi năm Chi đoàn đạt kiểu mẫu cấp huyện, hoặc đăng ký cấp huyện.")]
    return []


def check_branch(row: Row, commune: Commune, cell: PartyCell) -> list[Finding]:
    branch = row.text("branch")
    if not branch:
        return []
    other = commune.by_key(name_key(branch))
    if other is None or other is cell:
        return []
    return [finding(
        "ROW_BRANCH_MISMATCH",
        f"Dòng {row.number}: Chi đoàn “{branch}” mang tên {other.hamlet}, nhưng gắn với "
        f"{cell.name}.", **_at(row, "branch"),
        suggestion=f"Kiểm tra lại: Chi đoàn {cell.hamlet} gắn với {cell.name}?")]


@lru_cache(maxsize=16384)
def phone_ok(text: str) -> bool:
    """A Vietnamese number as people write it: 0912 345 678, 0912.345.678, +84 912 345 678,
    84912345678, or 912345678 when Excel took it for a number and dropped the 0; two
    numbers separated by "/", ";", "," or "hoặc" when each is one."""
    parts = [p for p in _PHONE_SPLIT.split(text) if p.strip()]
    return bool(parts) and all(_phone_digits(p) for p in parts)


def _phone_digits(text: str) -> bool:
    digits = _PHONE_NOISE.sub("", text)
    if _PHONE.fullmatch(digits):
        return True
    return bool(_PHONE_NO_ZERO.fullmatch(digits))


def check_phone(row: Row) -> list[Finding]:
    text = row.text("phone")
    if not text or phone_ok(text):
        return []
    return [finding("ROW_PHONE_INVALID",
                    f"Dòng {row.number}: “{text}” không phải số điện thoại Việt Nam.",
                    **_at(row, "phone"), suggestion="Ví dụ: 0912 345 678.")]


def check_row(row: Row, unit: Unit | None, reference: Reference, settings: Settings) -> RowResult:
    """Every per-row check, in the order a reader would fix them."""
    result = RowResult(row)
    out = result.findings
    if unit is not None and not row.text("commune") and row.commune_above:
        _take_commune_above(row, unit, reference)
    out += check_required(row)
    out += check_members(row, settings)
    out += check_level(row)
    out += check_status(row, settings.campaign.year)
    out += check_district_model(row, settings)
    out += check_phone(row)
    if unit is None:
        return result
    out += check_unit(row, unit, reference)
    result.commune, found = check_commune(row, unit, reference)
    out += found
    if result.commune:
        result.cell, found = check_party_cell(row, result.commune)
        out += found
    if result.cell:
        if not any(f.code == "ROW_STATUS_INVALID" for f in out):
            out += check_eligible(row, result.cell, settings)
        out += check_branch(row, result.commune, result.cell)
    return result


def _take_commune_above(row: Row, unit: Unit, reference: Reference) -> None:
    """A commune written once (on a group row, or on the first of its hamlets) applies to
    the rows under it that leave theirs empty, when the row's party cell is in it: what
    the office meant. Otherwise the empty cell stays a ROW_REQUIRED finding."""
    commune = reference.commune(unit.code, row.commune_above)
    if commune is not None and row.text("party_cell") and commune.cell(row.text("party_cell")):
        row.raw["commune"] = commune.name


def check_duplicates(results: list[RowResult]) -> None:
    """The same hamlet twice in one submission: each repeat gets a finding."""
    seen: dict[tuple[str, str], RowResult] = {}
    for result in results:
        if result.cell is None:
            continue
        key = (result.cell.commune_code, result.cell.key)
        first = seen.setdefault(key, result)
        if first is result:
            continue
        row = result.row
        where = f"dòng {first.row.number}"
        if first.row.sheet != row.sheet or first.row.file != row.file:
            where += f" của trang tính “{first.row.sheet}”"
        if first.row.file != row.file:
            where += f", tệp {first.row.file}"
        result.findings.append(finding(
            "ROW_DUPLICATE",
            f"Dòng {row.number}: {result.cell.name} ({result.cell.commune_name}) đã có ở {where}.",
            **_at(row, "party_cell"), suggestion="Mỗi ấp, khu phố chỉ đăng ký một Chi đoàn."))


def check_conflict(row: Row, cell: PartyCell, held: Mapping[Hamlet, str],
                   reference: Reference) -> list[Finding]:
    """ROW_CONFLICT: the hamlet is already in another unit's current list.

    ``held`` maps the hamlets other units hold to the code of the unit holding each; the
    caller reads it from the store (``store.submissions.held_elsewhere``), so this check
    stays a plain function of its arguments. Where the reference gives one commune to two units (a
    boundary change), the second unit to register a hamlet is the one told.
    """
    other = held.get((cell.commune_code, cell.key))
    if other is None:
        return []
    holder = reference.units[other].name if other in reference.units else other
    return [finding(
        "ROW_CONFLICT",
        f"Dòng {row.number}: {cell.name} ({cell.commune_name}) đã được {holder} đăng ký.",
        **_at(row, "party_cell"),
        suggestion="Hai đơn vị thống nhất với nhau; mỗi ấp, khu phố chỉ do một đơn vị đăng ký.")]


def registered_hamlets(results: list[RowResult]) -> set[tuple[str, str]]:
    """(commune code, hamlet key) of every valid row: what counts towards coverage."""
    return {(r.cell.commune_code, r.cell.key) for r in results if r.cell and r.valid}


def _attempted_hamlets(attempted: Iterable[RowResult], unit: Unit, reference: Reference
                       ) -> dict[tuple[str, str], list[RowResult]]:
    """(commune code, hamlet key) -> the rows with errors that name that hamlet.

    A row whose commune was misspelt still names its hamlet in the party-cell (or branch)
    column: it is matched within the unit's titled communes, by the commune the sender
    probably meant when the hamlet name occurs in more than one.
    """
    titled = reference.titled_communes(unit.code)
    out: dict[tuple[str, str], list[RowResult]] = {}
    for result in attempted:
        if result.valid:
            continue
        cell = result.cell
        if cell is None:
            texts = [result.row.text("party_cell"), result.row.text("branch")]
            communes = [result.commune] if result.commune else titled
            found = [(c, c.cell(t)) for c in communes for t in texts if t and c.cell(t)]
            if len({c.code for c, _ in found}) > 1:  # "Ấp 1" in several: the closest commune
                meant = suggest(result.row.text("commune"), [c.name for c, _ in found])
                found = [(c, p) for c, p in found if c.name in meant[:1]]
            cell = found[0][1] if found else None
        if cell is not None:
            out.setdefault((cell.commune_code, cell.key), []).append(result)
    return out


def _rows_text(results: list[RowResult]) -> str:
    """"dòng 8", "các dòng 47–51, 107–111" (a long list stays one short line)."""
    numbers = sorted({r.row.number for r in results})
    return ("dòng " if len(numbers) == 1 else "các dòng ") + row_ranges(numbers)


def check_coverage(registered: set[tuple[str, str]], unit: Unit, reference: Reference,
                   file: str = "", attempted: Iterable[RowResult] = ()) -> list[Finding]:
    """Every hamlet of an NTM/ĐTVM commune must be registered (SPEC §1 rule 3).

    ``attempted`` are the rows of the submission being answered. A hamlet that is in
    them with an error is "cần sửa" (fixing the row completes the commune), never "còn
    thiếu", and the suggestion says what the unit has to send: a unit told to add a row
    it already sent would send it twice.
    """
    attempted = list(attempted)
    tried = _attempted_hamlets(attempted, unit, reference)
    # Rows to fix (or nothing read at all): the whole list goes again, corrected, and the
    # missing hamlets go in it; otherwise a "bổ sung" with only them is enough.
    resend = not attempted or any(not r.valid for r in attempted)
    out = []
    for commune in reference.coverage(unit.code, registered):
        if not commune.missing:
            continue
        to_fix = [(key, name) for key, name in commune.missing if (commune.code, key) in tried]
        missing = [name for key, name in commune.missing if (commune.code, key) not in tried]
        message = (f"{commune.name} đạt chuẩn {commune.title}, phải đăng ký 100% Chi đoàn ấp, "
                   f"khu phố; mới có {commune.registered}/{commune.hamlets} hợp lệ.")
        if to_fix:
            message += " Cần sửa: " + ", ".join(
                f"{name} ({_rows_text(tried[(commune.code, key)])})" for key, name in to_fix) + "."
        if missing:
            message += f" Còn thiếu: {', '.join(missing)}."
        if not missing:
            rows = [r for key, _name in to_fix for r in tried[(commune.code, key)]]
            suggestion = (f"Sau khi sửa {_rows_text(rows)}, {commune.name} đủ 100%; không cần "
                          "thêm Chi đoàn.")
        elif resend:
            suggestion = ("Thêm Chi đoàn của các ấp, khu phố còn thiếu vào danh sách khi gửi "
                          "lại toàn bộ danh sách đã sửa.")
        else:
            suggestion = ("Gửi bổ sung Chi đoàn của các ấp, khu phố còn thiếu: thư có chữ "
                          "“bổ sung” trong tiêu đề, tệp chỉ gồm các Chi đoàn này (các Chi đoàn "
                          "đã gửi được giữ nguyên).")
        out.append(finding("COVERAGE_INCOMPLETE", message, file=file, field="commune",
                           value=commune.name, suggestion=suggestion))
    return out


def guess_unit(rows: list[Row], reference: Reference) -> Unit | None:
    """The unit a file belongs to when nobody said: its unit column, else its communes."""
    for row in rows:
        if row.text("unit") and (unit := reference.unit_by_text(row.text("unit"))):
            return unit
    votes: dict[str, int] = {}
    for row in rows:
        for unit in reference.units_with_commune(row.text("commune")):
            votes[unit.code] = votes.get(unit.code, 0) + 1
    if not votes:
        return None
    best = max(votes, key=lambda code: votes[code])
    return reference.units[best]
