"""Any supported file -> tables of cells at their Excel positions, within explicit limits.

One reader, python-calamine (Rust), for .xlsx/.xlsm/.xlsb/.xls/.ods: it is ten times
faster than openpyxl on large sheets, never runs macros, does not expand XML entities,
refuses ODS repeat bombs with a cell limit, reads Strict OOXML, and reports merged
ranges (needed for the two-row header). CSV goes through the standard library with an
encoding guess. What a file *declares* (dimensions, sizes) is never trusted: sizes are
checked against the zip directory, the extent of the cells that hold values is measured
from the sheet XML before calamine builds its grid (``extent.py``), and rows are counted
as they stream. Workbooks are read in a memory- and time-limited child process
(``sandbox.py``): Rust that aborts there costs the sender a finding, not intake its life.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import logging
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import PurePath
from typing import TYPE_CHECKING

import python_calamine as calamine

from ..findings import Finding, finding
from ..formats import ACCEPTED_TEXT, OLE_MAGIC, ZIP_MAGIC, format_of, is_accepted, suffix_of
from ..text import clean, nfc, safe_filename
from . import sandbox
from .extent import oversized
from .fonts import SheetExtras, extras
from .legacy import reading, reread

if TYPE_CHECKING:
    from ..config import Limits

log = logging.getLogger(__name__)


@dataclass
class Table:
    """One sheet's cells; ``rows[i][j]`` is the cell at Excel row i+1, column j+1."""

    file: str
    sheet: str
    rows: list[list[object]]
    merged: list[tuple[int, int, int, int]] = field(default_factory=list)  # 0-based, inclusive
    hidden: bool = False

    def value(self, row: int, col: int) -> object:
        """Cell value by 0-based position, None outside the grid."""
        if 0 <= row < len(self.rows) and 0 <= col < len(self.rows[row]):
            return self.rows[row][col]
        return None


@dataclass
class FileRead:
    """The outcome of reading one file: its tables, or the findings that explain why not."""

    file: str
    tables: list[Table] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    data: bytes = b""


class TooLarge(Exception):
    """A limit was hit; the message (Vietnamese) says which, the suggestion what to do."""

    def __init__(self, message: str, suggestion: str = "") -> None:
        super().__init__(message)
        self.suggestion = suggestion


def column_letter(index: int) -> str:
    """1-based column number -> Excel letters (1 -> A, 27 -> AA)."""
    letters = ""
    while index > 0:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def _cell(value: object) -> object:
    """Normalise a calamine value: '' -> None, whole floats -> int, text -> NFC Unicode."""
    if value == "" or value is None:
        return None
    if isinstance(value, float):
        return int(value) if value.is_integer() and abs(value) < 1e15 else value
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, dt.timedelta):
        return str(value)
    return value


@lru_cache(maxsize=65536)
def _text(value: str) -> str:
    """Cell text as NFC Unicode; cached (forms repeat their words). Legacy encodings are
    decided afterwards, per table (``_decode_legacy``): that needs the cell's font and
    its column."""
    return nfc(value)


def _decode_legacy(rows: list[list[object]], extra: SheetExtras | None,
                   foreign: list[tuple[int, int]]) -> None:
    """Read TCVN3 and VNI-Windows text as the Vietnamese it means, in place.

    Strongest sign first: the cell's own font (and rich text decoded run by run), then
    characters only the legacy encodings produce; a cell that could be either Unicode or
    legacy ("chi bé Êp phó héi") follows its column's sure cells, else its sheet's,
    else whether decoding makes real Vietnamese syllables of it (``legacy.reading``).
    ``foreign`` are the cells with text beyond ASCII (``_limit_rows`` notes them): the
    only ones either encoding can change.
    """
    hints = extra.hints if extra else {}
    texts = extra.texts if extra else {}
    by_column: dict[int, dict[str, int]] = {}
    by_sheet: dict[str, int] = {}
    unsure: list[tuple[int, int, str, str]] = []
    for (r, c), text in texts.items():
        if r < len(rows) and c < len(rows[r]) and type(rows[r][c]) is str:
            rows[r][c] = nfc(text)
    for r, c in foreign:
        if texts and (r, c) in texts:
            continue
        value = rows[r][c]
        text, encoding, sure = reading(value, hints.get((r, c)) if hints else None)  # type: ignore[arg-type]
        if encoding:  # surely legacy, or made of syllables only once decoded
            rows[r][c] = text
            column = by_column.setdefault(c, {})
            column[encoding] = column.get(encoding, 0) + 1
            by_sheet[encoding] = by_sheet.get(encoding, 0) + 1
        elif not sure:
            unsure.append((r, c, value, text))  # type: ignore[arg-type]
    for r, c, value, _text in unsure:
        around = by_column.get(c) or by_sheet
        if around:
            rows[r][c] = reread(value, max(around, key=lambda e: around[e]))


def _limit_rows(rows: Iterator[list[object]], limits: Limits | ReaderLimits, offset: int,
                foreign: list[tuple[int, int]]) -> list[list[object]]:
    """Rows as lists of normalised cells (``_cell``), within the row and column limits.

    The loop is ``_cell`` written out: it runs once per cell of the file, and a function
    call per cell was a fifth of reading a 20,000-row sheet.
    """
    out: list[list[object]] = []
    width = max(0, limits.max_columns - offset)
    text = _text
    note = foreign.append
    for count, raw in enumerate(rows, start=1):
        if count > limits.max_rows:
            raise TooLarge(f"trang tính có hơn {limits.max_rows:,} dòng".replace(",", "."))
        cells: list[object] = [None] * offset
        for value in raw[:width] if len(raw) > width else raw:
            kind = type(value)
            if kind is str:
                if not value:
                    cells.append(None)
                elif value.isascii():
                    cells.append(value)
                else:
                    note((count - 1, len(cells)))
                    cells.append(text(value))
            elif kind is float:
                cells.append(int(value) if value.is_integer() and abs(value) < 1e15 else value)
            else:
                cells.append(_cell(value))
        while cells and cells[-1] is None:
            cells.pop()
        out.append(cells)
    while out and not out[-1]:
        out.pop()
    return out


def _check_zip(data: bytes, limits: Limits | ReaderLimits) -> None:
    """Refuse zip bombs from the central directory before any member is inflated."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            total = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ValueError(str(exc)) from exc
    if total > limits.max_uncompressed_bytes:
        raise TooLarge(
            f"dung lượng sau giải nén ({total // 1_000_000} MB) vượt giới hạn "
            f"{limits.max_uncompressed_bytes // 1_000_000} MB"
        )


class Encrypted(Exception):
    """The file is password-protected (an OLE2 envelope around OOXML, or encrypted ODS)."""


def _is_encrypted(data: bytes) -> bool:
    """Tell a password-protected file from a broken one, without decrypting anything.

    Encrypted .xlsx is not a zip but an OLE2 container holding an ``EncryptionInfo``
    stream; an encrypted .ods lists ``encryption-data`` in its manifest.
    """
    if data.startswith(OLE_MAGIC):
        return "EncryptionInfo".encode("utf-16-le") in data
    if data.startswith(ZIP_MAGIC):
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                if "META-INF/manifest.xml" in archive.namelist():
                    with archive.open("META-INF/manifest.xml") as handle:
                        return b"encryption-data" in handle.read(1_000_000)
        except (zipfile.BadZipFile, OSError, ValueError, KeyError):
            return False
    return False


def _check_extent(data: bytes, limits: Limits | ReaderLimits) -> None:
    """Refuse a sheet whose valued cells span more than the limits, before calamine sees it.

    calamine allocates the whole box between the first and last valued cell at once, so
    this is the only point where a sparse giant can be refused without that allocation.
    """
    extent = oversized(data, limits.max_rows, limits.max_columns)
    if extent is None:
        return
    last = f"{column_letter(extent.last_col + 1)}{extent.last_row + 1}"
    sheet = f"trang tính “{nfc(extent.sheet)}”" if extent.sheet else "một trang tính"
    raise TooLarge(
        f"{sheet} có dữ liệu trải đến ô {last} (dòng {_number(extent.last_row + 1)}, "
        f"cột {column_letter(extent.last_col + 1)}), vượt quá {_number(limits.max_rows)} "
        f"dòng × {_number(limits.max_columns)} cột mà hệ thống đọc được",
        "Vui lòng xóa các ô có dữ liệu nằm ngoài danh sách (hoặc chép riêng danh sách "
        "sang một tệp mới) rồi gửi lại.")


def _number(value: int) -> str:
    """1048576 -> "1.048.576" (Vietnamese thousands separator)."""
    return f"{value:,}".replace(",", ".")


def _read_workbook(name: str, data: bytes, limits: Limits | ReaderLimits) -> list[Table]:
    if data.startswith(ZIP_MAGIC):
        _check_zip(data, limits)
    if _is_encrypted(data):
        raise Encrypted(name)
    if data.startswith(ZIP_MAGIC):
        _check_extent(data, limits)
    workbook = calamine.CalamineWorkbook.from_filelike(io.BytesIO(data))
    try:
        metadata = workbook.sheets_metadata
        if len(metadata) > limits.max_sheets:
            raise TooLarge(f"tệp có {len(metadata)} trang tính (tối đa {limits.max_sheets})")
        kept = extras(data, suffix_of(name))
        tables = []
        for index, meta in enumerate(metadata):
            if str(meta.typ) not in ("SheetTypeEnum.WorkSheet", "WorkSheet"):
                continue
            sheet = workbook.get_sheet_by_index(index)
            start = sheet.start
            offset = start[1] if start else 0
            foreign: list[tuple[int, int]] = []
            rows = _limit_rows(sheet.iter_rows(), limits, offset, foreign) if start else []
            merged = [
                (r1, c1, r2, c2)
                for (r1, c1), (r2, c2) in (sheet.merged_cell_ranges or [])
            ]
            hidden = not str(meta.visible).endswith(".Visible")
            extra = kept.get(meta.name)
            if extra and extra.merged and not merged:
                merged = extra.merged  # .ods: calamine does not report them
            _decode_legacy(rows, extra, foreign)
            tables.append(Table(name, nfc(meta.name), rows, merged, hidden))
        return tables
    finally:
        workbook.close()


Verdict = tuple[str, object, str]  # (kind, tables or reason, suggestion)


def _workbook_verdict(name: str, data: bytes, limits: Limits | ReaderLimits) -> Verdict:
    """Read a workbook and say how it went in plain, picklable values.

    This is what runs inside the sandbox: exceptions (calamine's own types among them)
    do not cross the process boundary, their meaning does.
    """
    try:
        return ("tables", _read_workbook(name, data, limits), "")
    except TooLarge as exc:
        return ("too_large", str(exc), exc.suggestion)
    except (calamine.PasswordError, Encrypted):
        return ("encrypted", "", "")
    except MemoryError:
        return ("too_large", _memory_reason(limits), "")
    except Exception as exc:  # calamine raises several types for broken files; all mean one thing
        if "cell limit" in str(exc).lower():  # calamine's own ceiling (ODS, 10^8 cells)
            return ("too_large", "tệp khai báo số ô quá lớn", "")
        return ("unreadable", _reason(exc), "")


def _memory_reason(limits: Limits | ReaderLimits) -> str:
    return (f"đọc tệp cần hơn {_number(limits.max_reader_memory_mb)} MB bộ nhớ "
            "(bảng tính quá lớn hoặc khai báo vùng dữ liệu quá rộng)")


@dataclass(frozen=True)
class ReaderLimits:
    """The limits the reader itself applies, as plain values: the worker unpickles this
    without importing the settings models (pydantic), a tenth of a second of its start."""

    max_rows: int
    max_columns: int
    max_sheets: int
    max_uncompressed_bytes: int
    max_reader_memory_mb: int

    @classmethod
    def of(cls, limits: Limits) -> ReaderLimits:
        return cls(limits.max_rows, limits.max_columns, limits.max_sheets,
                   limits.max_uncompressed_bytes, limits.max_reader_memory_mb)


def _read_workbook_safely(name: str, data: bytes, limits: Limits) -> Verdict:
    """The verdict, from the sandboxed worker unless isolation is switched off."""
    if not limits.isolate_readers:
        return _workbook_verdict(name, data, limits)
    outcome = sandbox.default().call(_workbook_verdict, name, data, ReaderLimits.of(limits),
                                     memory_mb=limits.max_reader_memory_mb,
                                     seconds=limits.max_reader_seconds)
    if outcome.ok:
        return outcome.value  # type: ignore[no-any-return]
    log.warning("reader failed file=%s failure=%s detail=%s", name, outcome.failure,
                outcome.detail)
    if outcome.failure == "memory":
        return ("too_large", _memory_reason(limits), "")
    if outcome.failure == "timeout":
        return ("too_large", f"đọc tệp mất hơn {limits.max_reader_seconds:g} giây", "")
    return ("unreadable", "trình đọc bảng tính gặp lỗi khi mở tệp (tệp có thể bị hỏng)", "")


def _decode_text(data: bytes) -> str:
    """CSV bytes -> text: BOMs first, then strict UTF-8, then Windows-1258 (Vietnamese)."""
    for bom, encoding in ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
                          (codecs.BOM_UTF16_BE, "utf-16")):
        if data.startswith(bom):
            return data.decode(encoding, errors="replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1258", errors="replace")


def _read_csv(name: str, data: bytes, limits: Limits) -> list[Table]:
    text = _decode_text(data).replace("\x00", "")
    sample = text[:8192]
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(sample, delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text, newline=""), dialect)
    foreign: list[tuple[int, int]] = []
    rows = _limit_rows(iter(reader), limits, 0, foreign)
    _decode_legacy(rows, None, foreign)
    return [Table(name, PurePath(name).stem or "CSV", rows)]


def _unreadable(name: str, why: str) -> Finding:
    return finding(
        "FILE_UNREADABLE",
        f"Không đọc được tệp {name}: {why}. Vui lòng lưu lại bằng Excel (.xlsx) và gửi lại.",
        file=name,
    )


def read_file(name: str, data: bytes, limits: Limits, depth: int = 0) -> list[FileRead]:
    """Read one attachment; a .zip gives one result per spreadsheet inside it.

    Never raises for bad input: every failure is a ``FILE_*`` finding.
    """
    display = clean(name) or "(không tên)"
    suffix = suffix_of(display)
    form = format_of(display)
    reader = form.reader if form else None
    if len(data) > limits.max_file_bytes:
        return [FileRead(display, findings=[finding(
            "FILE_TOO_LARGE",
            f"Tệp {display} có dung lượng {len(data) // 1024:,} KB, vượt giới hạn "
            f"{limits.max_file_bytes // 1024:,} KB.".replace(",", "."),
            file=display)])]
    if reader == "zip" or (reader is None and _is_plain_zip(data)):  # a zip by any name
        return _read_zip(display, data, limits, depth)
    if reader is None:
        return [FileRead(display, findings=[finding(
            "FILE_UNSUPPORTED",
            f"Tệp {display} không phải bảng tính. Vui lòng gửi danh sách dạng {ACCEPTED_TEXT}.",
            file=display, value=suffix)])]
    if not data:
        return [FileRead(display, findings=[_unreadable(display, "tệp rỗng (0 byte)")])]
    result = FileRead(display, data=data)
    if reader == "csv" and not data.startswith((ZIP_MAGIC, OLE_MAGIC)):
        try:  # pure Python and bounded: no need for a separate process
            result.tables = _read_csv(display, data, limits)
        except TooLarge as exc:
            result.findings.append(_too_large(display, str(exc), exc.suggestion))
        except Exception as exc:
            result.findings.append(_unreadable(display, _reason(exc)))
        return [result]
    kind, payload, suggestion = _read_workbook_safely(display, data, limits)
    if kind == "tables":
        result.tables = payload  # type: ignore[assignment]
    elif kind == "too_large":
        result.findings.append(_too_large(display, str(payload), suggestion))
    elif kind == "encrypted":
        result.findings.append(finding(
            "FILE_ENCRYPTED",
            f"Tệp {display} được đặt mật khẩu nên không mở được. Vui lòng gỡ mật khẩu và gửi lại.",
            file=display))
    else:
        result.findings.append(_unreadable(display, str(payload)))
    return [result]


def _too_large(name: str, why: str, suggestion: str = "") -> Finding:
    return finding("FILE_TOO_LARGE", f"Tệp {name} vượt giới hạn: {why}.", file=name,
                   suggestion=suggestion)


def _reason(exc: Exception) -> str:
    text = str(exc).lower()
    if "password" in text or "encrypt" in text:
        return "tệp được mã hóa"
    return "tệp bị hỏng, không đúng định dạng hoặc bị cắt cụt"


def _is_plain_zip(data: bytes) -> bool:
    if not data.startswith(ZIP_MAGIC):
        return False
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return False
    return "[Content_Types].xml" not in names and "mimetype" not in names


def _read_zip(name: str, data: bytes, limits: Limits, depth: int) -> list[FileRead]:
    if depth >= limits.max_zip_depth:
        return [FileRead(name, findings=[finding(
            "FILE_TOO_LARGE", f"Tệp nén {name} lồng quá {limits.max_zip_depth} cấp.", file=name)])]
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = [info for info in archive.infolist() if not info.is_dir()]
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        return [FileRead(name, findings=[_unreadable(name, _reason(exc))])]
    with archive:
        if len(members) > limits.max_zip_members:
            return [FileRead(name, findings=[finding(
                "FILE_TOO_LARGE",
                f"Tệp nén {name} chứa {len(members)} tệp (tối đa {limits.max_zip_members}).",
                file=name)])]
        if sum(m.file_size for m in members) > limits.max_uncompressed_bytes:
            return [FileRead(name, findings=[finding(
                "FILE_TOO_LARGE", f"Tệp nén {name} vượt giới hạn dung lượng sau giải nén.",
                file=name)])]
        results: list[FileRead] = []
        for member in members:
            inner = f"{name}/{_member_name(member)}"
            if not is_accepted(inner):
                continue
            try:
                with archive.open(member) as handle:
                    payload = handle.read(limits.max_file_bytes + 1)
            except (zipfile.BadZipFile, OSError, ValueError, RuntimeError, NotImplementedError) as exc:
                encrypted = "encrypted" in str(exc).lower() or "password" in str(exc).lower()
                code = "FILE_ENCRYPTED" if encrypted else "FILE_UNREADABLE"
                results.append(FileRead(inner, findings=[finding(
                    code, f"Không giải nén được {inner}: "
                    + ("tệp nén có mật khẩu." if encrypted else "tệp nén bị hỏng."), file=inner)]))
                continue
            results.extend(read_file(inner, payload, limits, depth + 1))
        if not results:
            results.append(FileRead(name, findings=[finding(
                "FILE_UNSUPPORTED", f"Tệp nén {name} không chứa bảng tính nào.", file=name)]))
        return results


def _member_name(info: zipfile.ZipInfo) -> str:
    # Old Windows zips store names in cp437 without the UTF-8 flag; Vietnamese becomes mojibake.
    raw = info.filename
    if not info.flag_bits & 0x800:
        try:
            raw = raw.encode("cp437").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            pass
    return safe_filename(raw)
