"""Where a workbook's values really are, found in its XML before any reader builds a grid.

calamine allocates one cell for every position between the first and the last cell that
holds a value, in one block: a 1.8 KB .xlsx with values at A1 and XFD1048576 asks for
550 GB and the Rust runtime aborts the whole process. What a sheet *declares* is no
guide (calamine's issue 174 declares ``A1:XFD1048576`` and styles empty cells that far,
yet holds a few rows), so the extent is judged from cells that carry a value, following
calamine's own rules for where a cell is (its ``r``, else the next column of the row).

OOXML parts (.xlsx/.xlsm) and ODS ``content.xml`` are scanned; .xls/.xlsb are binary and
left to the memory-limited reader process (``sandbox.py``). Nothing here builds a tree:
a fast byte-level pass decides the ordinary case (every cell written as ``<c r="B7"``,
as Excel, LibreOffice and openpyxl do), and expat streams everything else with handlers
that keep a few integers. A part expat cannot parse is skipped: the reader then refuses
or reads it inside its sandbox.
"""

from __future__ import annotations

import io
import posixpath
import pyexpat
import re
import string
import zipfile
import zlib
from dataclasses import dataclass
from functools import lru_cache
from operator import itemgetter

# A cell tag and its position: r first (Excel, LibreOffice, openpyxl; the quickest to
# find), or anywhere among the attributes (Google Sheets writes it last). A ">" inside
# an attribute value hides the r from the second form: the counts then differ (expat).
CELL_R_FIRST = re.compile(rb'<c r="([A-Z]{1,3})([0-9]{1,7})"')
CELL_R_ANYWHERE = re.compile(rb'<c [^>]*?(?<=\s)r="([A-Z]{1,3})([0-9]{1,7})"')
# Forms the fast pass does not read; any of them sends the part to expat.
OTHER_CELL_TAG = re.compile(rb'<c[\t\n\r/>]')  # a cell tag not followed by a space
PREFIXED_CELL_TAG = re.compile(rb':c[\s/>]')  # x:c
SPACED_R = re.compile(rb'r\s+=')  # r ="…", a second position the fast pass would miss
GLUED_R = re.compile(rb'r=(?<=[\t\n\r"\']r=)')  # r= after a tab, newline or quote
LETTERS = string.ascii_letters


@dataclass(frozen=True)
class Extent:
    """The box of one sheet's valued cells, 0-based and inclusive (calamine's grid)."""

    sheet: str
    first_row: int
    first_col: int
    last_row: int
    last_col: int

    @property
    def cells(self) -> int:
        return (self.last_row - self.first_row + 1) * (self.last_col - self.first_col + 1)

    def exceeds(self, max_rows: int, max_columns: int) -> bool:
        """More rows than the reader would take (it counts from row 1), or a bigger grid."""
        return self.last_row + 1 > max_rows or self.cells > max_rows * max_columns


class _Over(Exception):
    """Raised from an expat handler: the extent is already over the limit, stop parsing."""


class _Box:
    """Running min/max of valued positions; raises ``_Over`` once past the limits."""

    __slots__ = ("first_col", "first_row", "last_col", "last_row", "max_cells", "max_rows",
                 "sheet")

    def __init__(self, sheet: str, max_rows: int, max_columns: int) -> None:
        self.sheet = sheet
        self.max_rows, self.max_cells = max_rows, max_rows * max_columns
        self.first_row = self.first_col = self.last_row = self.last_col = -1

    def add(self, row: int, col: int, last_row: int = -1, last_col: int = -1) -> None:
        """One valued cell, or a block of them (ODS repeats) ending at last_row/last_col."""
        last_row, last_col = max(row, last_row), max(col, last_col)
        if self.first_row < 0:
            self.first_row, self.first_col = row, col
            self.last_row, self.last_col = last_row, last_col
        else:
            self.first_row = min(self.first_row, row)
            self.first_col = min(self.first_col, col)
            self.last_row = max(self.last_row, last_row)
            self.last_col = max(self.last_col, last_col)
        if self.last_row >= self.max_rows or (self.last_row - self.first_row + 1) * (
                self.last_col - self.first_col + 1) > self.max_cells:
            raise _Over

    def extent(self) -> Extent | None:
        if self.first_row < 0:
            return None
        return Extent(self.sheet, self.first_row, self.first_col, self.last_row, self.last_col)


def oversized(data: bytes, max_rows: int, max_columns: int) -> Extent | None:
    """The first sheet whose valued cells span more than the limits allow, else None.

    "More" means a value below row ``max_rows`` (the reader counts rows from the top) or
    a grid of more than ``max_rows × max_columns`` cells. The extent returned may stop
    at the first cell found beyond the limits. None also when ``data`` is not an OOXML
    or ODS package that can be scanned.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError):
        return None
    with archive:
        try:
            names = set(archive.namelist())
            if "content.xml" in names and "mimetype" in names:
                return _scan_ods(archive.read("content.xml"), max_rows, max_columns)
            return _scan_ooxml(archive, max_rows, max_columns)
        except (zipfile.BadZipFile, OSError, ValueError, RuntimeError, NotImplementedError,
                EOFError, zlib.error):
            return None  # a damaged package: the reader says so


def _scan_ooxml(archive: zipfile.ZipFile, max_rows: int, max_columns: int) -> Extent | None:
    try:
        names = _sheet_names(archive)
    except (zipfile.BadZipFile, OSError, ValueError, RuntimeError, NotImplementedError,
            EOFError, zlib.error):
        names = {}  # a damaged workbook part costs the message its sheet name, no more
    for info in archive.infolist():
        if info.is_dir():
            continue
        try:
            part = archive.read(info)
        except (zipfile.BadZipFile, OSError, ValueError, RuntimeError, NotImplementedError,
                EOFError, zlib.error):
            continue  # calamine cannot read a damaged part either
        # calamine reads cells only after <sheetData>; a part without one holds none.
        # UTF-16 parts (which quick-xml decodes) hide the word, so they are parsed too.
        if b"sheetData" not in part and not part.startswith((b"\xff\xfe", b"\xfe\xff")):
            continue
        sheet = names.get(info.filename, "")
        fast = _fast_ooxml_bound(part, sheet)
        if fast is not None and not fast.exceeds(max_rows, max_columns):
            continue
        found = _expat_ooxml(part, sheet, max_rows, max_columns)
        if found is not None and found.exceeds(max_rows, max_columns):
            return found
    return None


def _fast_ooxml_bound(part: bytes, sheet: str) -> Extent | None:
    """A box around *every* cell (valued or not), when each is written ``<c r="B7"``.

    Only byte searches and regular expressions with a literal prefix (a 20,000-row
    sheet in ~0.15 s, a third of expat's time). None when the part has any other spelling
    of a cell or of an ``r`` attribute (prefixes, tabs, spaces around ``=``, a second
    ``r`` in a tag, whose last one calamine would use): expat then decides.
    """
    tags = part.count(b"<c ")
    refs = CELL_R_FIRST.findall(part)
    if len(refs) != tags:
        refs = CELL_R_ANYWHERE.findall(part)
    if not refs or len(refs) != tags:
        return None
    if part.count(b" r=") != len(refs) + part.count(b"<row r="):
        return None
    for pattern in (OTHER_CELL_TAG, PREFIXED_CELL_TAG, SPACED_R, GLUED_R):
        if pattern.search(part):
            return None
    rows = [int(row) for row in set(map(itemgetter(1), refs))]
    cols = [_column_number(letters.decode()) for letters in set(map(itemgetter(0), refs))]
    return Extent(sheet, min(rows) - 1, min(cols) - 1, max(rows) - 1, max(cols) - 1)


def _expat_ooxml(part: bytes, sheet: str, max_rows: int, max_columns: int) -> Extent | None:
    """Valued cells of one worksheet part, placed as calamine places them.

    A cell counts when it has a ``<v>`` or ``<is>`` child, even an empty one (calamine
    keeps an empty string). Rows without ``r`` follow the previous row; cells without
    ``r`` follow the previous cell. None when the part is not well-formed XML. The
    handlers keep plain integers (this runs once per element: ~0.4 s for 20,000 rows).
    """
    box = _Box(sheet, max_rows, max_columns)
    row = col = cell_row = cell_col = 0
    pending = in_data = False

    def start(tag: str, attrs: dict[str, str]) -> None:
        nonlocal row, col, cell_row, cell_col, pending, in_data
        if ":" in tag:
            tag = tag.rpartition(":")[2]
        if not in_data:
            in_data = tag == "sheetData"
        elif tag == "c":
            ref = attrs.get("r")
            if ref is None:
                cell_row, cell_col = row, col
            else:
                digits = ref.lstrip(LETTERS)
                cell_row = int(digits) - 1
                cell_col = _column_number(ref[: len(ref) - len(digits)]) - 1
            col = cell_col + 1
            pending = True
        elif tag == "v" or tag == "is":
            if pending:
                pending = False
                if (cell_row < box.first_row or cell_row > box.last_row
                        or cell_col < box.first_col or cell_col > box.last_col):
                    box.add(cell_row, cell_col)
        elif tag == "row":
            ref = attrs.get("r")
            if ref is not None:
                row = int(ref) - 1

    def end(tag: str) -> None:
        nonlocal row, col, pending, in_data
        if ":" in tag:
            tag = tag.rpartition(":")[2]
        if tag == "c":
            pending = False
        elif tag == "row":
            row += 1
            col = 0
        elif tag == "sheetData":
            in_data = False

    return _parse(part, start, end, box)


def _scan_ods(content: bytes, max_rows: int, max_columns: int) -> Extent | None:
    """Valued cells of every ``table:table`` in an ODS ``content.xml``.

    Positions follow ``number-rows-repeated`` and ``number-columns-repeated``, as
    calamine expands them; a repeated valued cell fills its whole block. A cell counts
    when it has a value type or a paragraph (``<text:p>``). Names are matched with the
    ``table:`` prefix, as calamine matches them. Start tags only: a cell's block is
    known when it opens, and the next row or cell closes it.
    """
    found: list[Extent] = []
    box: _Box | None = None
    row = rows = col = cell_col = cell_cols = 0
    pending = False

    def start(tag: str, attrs: dict[str, str]) -> None:
        nonlocal box, row, rows, col, cell_col, cell_cols, pending
        if tag == "table:table-cell" or tag == "table:covered-table-cell":
            cell_col, cell_cols = col, _repeat(attrs.get("table:number-columns-repeated"))
            col += cell_cols
            pending = "office:value-type" in attrs
        elif tag == "table:table-row":
            row += rows
            rows = _repeat(attrs.get("table:number-rows-repeated"))
            col = cell_cols = 0
            pending = False
            return
        elif tag == "table:table":
            if box is not None and box.extent() is not None:
                found.append(box.extent())  # type: ignore[arg-type]
            box = _Box(attrs.get("table:name", ""), max_rows, max_columns)
            row = rows = col = cell_cols = 0
            pending = False
            return
        elif tag == "text:p" and cell_cols:
            pending = True  # the cell's text, which calamine reads when there is no type
        if pending and box is not None:
            pending = False
            box.add(row, cell_col, row + rows - 1, cell_col + cell_cols - 1)
            cell_cols = 0  # counted once, however many children it has

    parser = _parser(start, None)
    try:
        parser.Parse(content, True)
    except _Over:
        return box.extent() if box is not None else None
    except (pyexpat.ExpatError, ValueError, RecursionError):
        return None
    if box is not None and box.extent() is not None:
        found.append(box.extent())  # type: ignore[arg-type]
    return next((e for e in found if e.exceeds(max_rows, max_columns)), None)


def _repeat(value: str | None) -> int:
    return max(1, int(value)) if value and value.strip().isdigit() else 1


def _parse(part: bytes, start: object, end: object, box: _Box) -> Extent | None:
    parser = _parser(start, end)
    try:
        parser.Parse(part, True)
    except _Over:
        pass
    except (pyexpat.ExpatError, ValueError, RecursionError):
        return None
    return box.extent()


def _parser(start: object, end: object) -> pyexpat.XMLParserType:
    """expat without namespaces (calamine matches prefixes itself) and without DTDs.

    A DTD could declare entities; no spreadsheet writer emits one, so it ends the parse
    (the part is then left to the sandboxed reader, which does not expand entities).
    """
    parser = pyexpat.ParserCreate()
    parser.StartElementHandler = start
    parser.EndElementHandler = end

    def refuse_dtd(*_: object) -> None:
        raise ValueError("DTD in a spreadsheet part")

    parser.StartDoctypeDeclHandler = refuse_dtd
    parser.EntityDeclHandler = refuse_dtd
    return parser


@lru_cache(maxsize=4096)
def _column_number(letters: str) -> int:
    """"A" -> 1, "XFD" -> 16384 (letters of either case, as calamine reads them)."""
    if not letters:
        raise ValueError("cell reference without a column")
    number = 0
    for letter in letters.upper():
        number = number * 26 + ord(letter) - 64
    return number


def _sheet_names(archive: zipfile.ZipFile) -> dict[str, str]:
    """Part name -> sheet name, from the workbook and its relationships (best effort).

    Only for the message; a package that hides its names still gets its sheets scanned.
    """
    names = set(archive.namelist())
    workbook = next((n for n in sorted(names) if n.lower().endswith("workbook.xml")), None)
    if workbook is None:
        return {}
    folder, base = posixpath.split(workbook)
    rels_name = posixpath.join(folder, "_rels", base + ".rels")
    sheets: dict[str, str] = {}
    targets: dict[str, str] = {}

    def sheet(tag: str, attrs: dict[str, str]) -> None:
        if tag.rpartition(":")[2] == "sheet":
            rid = next((v for k, v in attrs.items() if k.rpartition(":")[2] == "id"
                        and k != "sheetId"), None)
            if rid is not None:
                sheets[rid] = attrs.get("name", "")

    def relationship(tag: str, attrs: dict[str, str]) -> None:
        if tag.rpartition(":")[2] == "Relationship" and "Id" in attrs:
            target = attrs.get("Target", "")
            path = target.lstrip("/") if target.startswith("/") else posixpath.normpath(
                posixpath.join(folder, target))
            targets[attrs["Id"]] = path

    for part, handler in ((workbook, sheet), (rels_name, relationship)):
        if part not in names or archive.getinfo(part).file_size > 10_000_000:
            continue
        parser = _parser(handler, None)
        try:
            parser.Parse(archive.read(part), True)
        except (pyexpat.ExpatError, ValueError):
            continue
    return {targets[rid]: name for rid, name in sheets.items() if rid in targets}
