"""The files intake accepts as a list: their suffixes, MIME types and the reader of each.

Why one module: which files are spreadsheets is asked by the mail side (which parts of a
message to keep, what to call a part that has no name) and by the sheets side (how to
read a file, whether its own formatting can be kept in the annotated copy). Both import
this module and neither imports the other, so a new input format is one line here plus,
when it needs one, a reader function in ``sheets/read.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePath
from typing import Literal

Reader = Literal["workbook", "csv", "zip"]

XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
ZIP_MAGIC = b"PK\x03\x04"  # OOXML and ODS are zip packages too
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # .xls, and any encrypted Office file


@dataclass(frozen=True)
class Format:
    """One accepted file suffix.

    ``reader``: ``"workbook"`` is calamine in the sandboxed worker, ``"csv"`` the standard
    library, ``"zip"`` every member read in turn. ``mime_types`` name a part that came
    without a file name (or with the wrong suffix). ``editable``: openpyxl opens it in
    place, so the annotated copy keeps the unit's own formatting; other formats are
    rebuilt from the values read.
    """

    suffix: str
    reader: Reader
    mime_types: tuple[str, ...] = ()
    editable: bool = False


FORMATS: tuple[Format, ...] = (
    Format(".xlsx", "workbook", (XLSX_TYPE,), editable=True),
    Format(".xlsm", "workbook", ("application/vnd.ms-excel.sheet.macroenabled.12",),
           editable=True),
    Format(".xlsb", "workbook"),
    Format(".xls", "workbook", ("application/vnd.ms-excel",)),
    Format(".ods", "workbook", ("application/vnd.oasis.opendocument.spreadsheet",)),
    Format(".csv", "csv", ("text/csv",)),
    Format(".zip", "zip", ("application/zip", "application/x-zip-compressed")),
)
_BY_SUFFIX = {f.suffix: f for f in FORMATS}
_BY_TYPE = {t: f for f in FORMATS for t in f.mime_types}

# What a sender is told to send instead of a file no reader takes (FILE_UNSUPPORTED).
ACCEPTED_TEXT = "Excel (.xlsx, .xls), LibreOffice (.ods) hoặc .csv"

# Files that may well hold the list but cannot be read as one (SPEC §4 step 4): sent
# alone, they get FILE_UNSUPPORTED naming each, not a "no attachment" reply.
LIST_CANDIDATES = frozenset({".rar", ".7z", ".tar", ".gz", ".pdf", ".doc", ".docx", ".odt",
                             ".rtf", ".numbers", ".gsheet"})


def suffix_of(name: str) -> str:
    """The lower-case suffix of a file name (".xlsx"), "" when it has none."""
    return PurePath(name.lower()).suffix


def format_of(name: str) -> Format | None:
    """The accepted format a file name says it is, None for any other file."""
    return _BY_SUFFIX.get(suffix_of(name))


def is_accepted(name: str) -> bool:
    """A spreadsheet or a zip that may hold some: a part of a message worth reading."""
    return suffix_of(name) in _BY_SUFFIX


def suffix_for_type(content_type: str) -> str:
    """The suffix a part of this MIME type is read as, "" when it is no spreadsheet."""
    found = _BY_TYPE.get(content_type.lower())
    return found.suffix if found else ""


def may_hold_list(name: str) -> bool:
    """A file no reader takes that a unit may have sent its list in (a .pdf, a .rar)."""
    return suffix_of(name) in LIST_CANDIDATES
