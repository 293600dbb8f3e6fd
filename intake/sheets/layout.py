"""Fonts, row heights and print setup shared by the official form and the consolidated
workbook.

Neither Excel nor LibreOffice sizes a wrapped row when it opens a file written by a
program, and a cell without a font name prints in whatever face the viewer picks. So
both documents name their font (Times New Roman, as Decree 30/2020/NĐ-CP asks of
administrative documents; LibreOffice uses the metric-compatible Liberation Serif) and
set the height of every row that wraps, estimated from the text.
"""

from __future__ import annotations

import math
import unicodedata
from functools import lru_cache

from openpyxl import Workbook
from openpyxl.styles import Font
from openpyxl.utils.indexed_list import IndexedList
from openpyxl.worksheet.page import PageMargins
from openpyxl.worksheet.properties import PageSetupProperties

FONT_NAME = "Times New Roman"
CM = 1 / 2.54  # openpyxl margins are in inches


def set_default_font(book: Workbook, size: float) -> Font:
    """Make ``FONT_NAME`` the workbook's Normal font, before any cell is styled.

    Column widths are counted in digits of this font, so the same file lays out alike
    on the board's Windows machines and under LibreOffice on the server; and every cell
    left unstyled (most of a 20,000-row sheet) prints in it without a style of its own.
    """
    font = Font(name=FONT_NAME, size=size)
    book._fonts = IndexedList([font])  # index 0 is the font of every unstyled cell
    book._named_styles["Normal"].font = font
    return font


# Advance widths of Times New Roman (and of Liberation Serif, metric-compatible), in
# digit widths; a Vietnamese letter is as wide as its base letter ("ệ" as "e").
_WIDTHS = {
    **dict(zip("abcdefghijklmnopqrstuvwxyz",
               (0.89, 1, 0.89, 1, 0.89, 0.67, 1, 1, 0.56, 0.56, 1, 0.56, 1.56, 1, 1, 1, 1,
                0.67, 0.78, 0.56, 1, 1, 1.44, 1, 1, 0.89), strict=True)),
    **dict(zip("ABCDEFGHIJKLMNOPQRSTUVWXYZ",
               (1.44, 1.33, 1.33, 1.44, 1.22, 1.11, 1.44, 1.44, 0.67, 0.78, 1.44, 1.22, 1.78,
                1.44, 1.44, 1.11, 1.44, 1.33, 1.11, 1.22, 1.44, 1.44, 1.89, 1.44, 1.44, 1.22),
               strict=True)),
    " ": 0.5, ".": 0.5, ",": 0.5, ":": 0.56, ";": 0.56, "'": 0.36, "|": 0.4, "!": 0.67,
    "/": 0.56, "(": 0.67, ")": 0.67, "[": 0.67, "]": 0.67, "-": 0.67, "_": 1.0, "@": 1.84,
    "%": 1.67, "&": 1.56, "“": 0.89, "”": 0.89, "—": 2.0, "–": 1.0, "đ": 1.0, "Đ": 1.44,
}


@lru_cache(maxsize=4096)
def _char_width(char: str) -> float:
    """Width of one character in digit widths of the same font."""
    if char in _WIDTHS:
        return _WIDTHS[char]
    base = unicodedata.normalize("NFD", char)[0]
    return _WIDTHS.get(base, 1.0)


def text_width(text: str, bold: bool = False) -> float:
    """Estimated width of ``text`` in digit widths (bold is about 8 % wider)."""
    return sum(map(_char_width, text)) * (1.08 if bold else 1.0)


def wrapped_lines(text: object, width: float, size: float = 11, base: float = 11,
                  bold: bool = False) -> int:
    """Lines ``text`` needs in a column ``width`` wide (Excel units of a ``base``-point
    default font) at ``size`` points, wrapping at spaces as Excel does."""
    if text is None or text == "":
        return 1
    # A column is ``width`` digits of the default font, counted in whole pixels (7 for
    # 11 points, whose digits are 7.3 wide), plus 5 pixels, 4 of them the cell's padding.
    digit_px, text_digit_px = math.floor(base * 2 / 3), size * 2 / 3
    room = max((width * digit_px + 1) / text_digit_px, 1.0)
    text = str(text)
    if "\n" not in text and (len(text) * 2.0 <= room  # fits whatever its letters
                             or text_width(text, bold) <= room):  # fits, spaces included
        return 1
    lines = 0
    for paragraph in text.split("\n"):
        used, count = 0.0, 1
        for word in paragraph.split(" "):
            need = text_width(word, bold)
            gap = 0.5 if used else 0.0
            if used and used + gap + need > room:
                count += 1
                used = 0.0
                gap = 0.0
            if need > room:  # a word longer than the column is broken across lines
                count += math.ceil(need / room) - 1
                need = need % room
            used += gap + need
        lines += count
    return lines


def row_height(lines: int, size: float = 11) -> float:
    """Points for ``lines`` lines of ``size``-point text, with the cell's padding."""
    return round(lines * size * 1.25 + 3, 1)


def print_setup(sheet, *, landscape: bool = True, title_rows: str | None = None,
                fit_width: bool = True, page_numbers: bool = True, left_cm: float = 2.0,
                right_cm: float = 1.5, top_cm: float = 1.5, bottom_cm: float = 1.5) -> None:
    """A4, one page wide (as many pages down as needed), header rows on every page,
    page numbers from the second page; margins of an administrative document."""
    setup = sheet.page_setup
    setup.orientation = "landscape" if landscape else "portrait"
    setup.paperSize = "9"  # A4
    if fit_width:
        setup.fitToWidth = 1
        setup.fitToHeight = 0
        sheet.sheet_properties.pageSetUpPr = PageSetupProperties(fitToPage=True)
    sheet.page_margins = PageMargins(left=left_cm * CM, right=right_cm * CM, top=top_cm * CM,
                                     bottom=bottom_cm * CM, header=0.8 * CM,
                                     footer=0.8 * CM)
    sheet.print_options.horizontalCentered = True
    if title_rows:
        sheet.print_title_rows = title_rows
    if not page_numbers:
        return
    # Page numbers at the top centre from the second page on (Decree 30/2020/NĐ-CP).
    sheet.HeaderFooter.differentFirst = True
    sheet.oddHeader.center.text = "&P"
    sheet.oddHeader.center.size = 11
    sheet.oddHeader.center.font = FONT_NAME
