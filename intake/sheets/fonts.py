"""What a workbook keeps beside its values that calamine does not give: cell fonts and,
for .ods, merged ranges.

The font a cell was typed in is the strongest sign of a legacy encoding (SPEC §3): a
cell in .VnTime holds TCVN3, one in VNI-Times holds VNI-Windows, whatever its bytes look
like. Each format keeps it its own way, and each is read here without a new dependency:

* .xlsx/.xlsm: ``styles.xml`` (fonts, cell formats) and the ``s`` of each cell; rich
  text runs (``rFont``) in the shared strings.
* .xls: the BIFF8 FONT and XF records and the format index of each text cell, read from
  the OLE2 container by a small reader below.
* .ods: font faces and cell/text styles in ``content.xml``/``styles.xml``; the same pass
  collects merged ranges (``number-rows-spanned``), which calamine leaves out for .ods.

Everything here runs inside the sandboxed reader, on input calamine has already
accepted, with XML entities off; a part that cannot be understood gives no hints rather
than an error (the values are still read, and judged by their syllables).
"""

from __future__ import annotations

import io
import re
import struct
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field

from lxml import etree

from ..formats import OLE_MAGIC, ZIP_MAGIC
from .legacy import TCVN3, TCVN3_CAPITALS, VNI, decode, font_encoding

Position = tuple[int, int]  # 0-based (row, column), as Table.rows


@dataclass
class SheetExtras:
    """One sheet's legacy-font cells and, for .ods, its merged ranges."""

    hints: dict[Position, str] = field(default_factory=dict)  # cell -> encoding of its font
    texts: dict[Position, str] = field(default_factory=dict)  # rich text decoded run by run
    merged: list[tuple[int, int, int, int]] = field(default_factory=list)


_LEGACY_NAME = re.compile(rb"(?i)(?:val|font-family|font-name|name)=\"'?(?:\.vn|vni)")
_PARSER = dict(resolve_entities=False, no_network=True, huge_tree=False, load_dtd=False)
MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
REL = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"


def extras(data: bytes, suffix: str) -> dict[str, SheetExtras]:
    """Sheet name -> extras; empty when the file has no legacy font and nothing to add."""
    try:
        if data.startswith(ZIP_MAGIC):
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                names = set(archive.namelist())
                if "content.xml" in names:
                    return _ods(archive)
                if "xl/workbook.xml" in names:
                    return _xlsx(archive)
            return {}
        if data.startswith(OLE_MAGIC):
            return _xls(data)
    except (zipfile.BadZipFile, etree.LxmlError, KeyError, ValueError, struct.error,
            IndexError, OSError):
        return {}
    return {}


# --- .xlsx ---------------------------------------------------------------------------
def _xml(archive: zipfile.ZipFile, name: str) -> etree._Element:
    return etree.fromstring(archive.read(name), etree.XMLParser(**_PARSER))


def _cell_position(ref: str) -> Position:
    match = re.fullmatch(r"([A-Z]{1,3})(\d+)", ref)
    if not match:
        raise ValueError(ref)
    col = 0
    for char in match.group(1):
        col = col * 26 + ord(char) - 64
    return int(match.group(2)) - 1, col - 1


def _xlsx(archive: zipfile.ZipFile) -> dict[str, SheetExtras]:
    names = set(archive.namelist())
    styles = archive.read("xl/styles.xml") if "xl/styles.xml" in names else b""
    strings = archive.read("xl/sharedStrings.xml") if "xl/sharedStrings.xml" in names else b""
    rich_fonts = b"<rFont" in strings and _LEGACY_NAME.search(strings) is not None
    if not _LEGACY_NAME.search(styles) and not rich_fonts:
        return {}
    xf_encoding: dict[int, str] = {}
    if styles:
        root = etree.fromstring(styles, etree.XMLParser(**_PARSER))
        fonts = [font_encoding(f.find(f"{MAIN}name").get("val", ""))
                 if f.find(f"{MAIN}name") is not None else None
                 for f in root.iterfind(f"{MAIN}fonts/{MAIN}font")]
        for index, xf in enumerate(root.iterfind(f"{MAIN}cellXfs/{MAIN}xf")):
            font = int(xf.get("fontId", "0"))
            if font < len(fonts) and fonts[font]:
                xf_encoding[index] = fonts[font]  # type: ignore[assignment]
    rich = _rich_strings(strings) if rich_fonts else {}
    out: dict[str, SheetExtras] = {}
    for name, path in _xlsx_sheets(archive):
        if path not in names:
            continue
        sheet = SheetExtras()
        with archive.open(path) as handle:
            for _event, cell in etree.iterparse(handle, tag=f"{MAIN}c", **_PARSER):
                ref, style = cell.get("r"), cell.get("s")
                encoding = xf_encoding.get(int(style)) if style else None
                runs = None
                if cell.get("t") == "s" and rich:
                    value = cell.findtext(f"{MAIN}v")
                    runs = rich.get(int(value)) if value and value.isdigit() else None
                if ref and (encoding or runs):
                    position = _cell_position(ref)
                    if runs:
                        sheet.texts[position] = _join(runs, encoding)
                    elif encoding:
                        sheet.hints[position] = encoding
                cell.clear()
        if sheet.hints or sheet.texts:
            out[name] = sheet
    return out


def _rich_strings(data: bytes) -> dict[int, list[tuple[str, str | None]]]:
    """Shared strings with runs in a named font: index -> [(text, encoding or None)].

    A run without its own font takes the cell's; "" marks a run in a Unicode font."""
    out: dict[int, list[tuple[str, str | None]]] = {}
    for index, item in enumerate(etree.fromstring(data, etree.XMLParser(**_PARSER))
                                 .iterfind(f"{MAIN}si")):
        runs = item.findall(f"{MAIN}r")
        if not runs:
            continue
        parts: list[tuple[str, str | None]] = []
        legacy = False
        for run in runs:
            font = run.find(f"{MAIN}rPr/{MAIN}rFont")
            own = None if font is None else (font_encoding(font.get("val", "")) or "")
            legacy = legacy or bool(own)
            parts.append(("".join(t.text or "" for t in run.iter(f"{MAIN}t")), own))
        if legacy:
            out[index] = parts
    return out


def _join(runs: list[tuple[str, str | None]], cell: str | None) -> str:
    """Rich text as read: each run in its own font's encoding ("" is a Unicode font),
    a run without a font of its own in the cell's."""
    out = []
    for text, own in runs:
        encoding = cell if own is None else (own or None)
        out.append(decode(text, encoding) if encoding else text)
    return "".join(out)


def _xlsx_sheets(archive: zipfile.ZipFile) -> Iterator[tuple[str, str]]:
    book = _xml(archive, "xl/workbook.xml")
    rels = _xml(archive, "xl/_rels/workbook.xml.rels")
    targets = {r.get("Id"): r.get("Target", "") for r in rels}
    for sheet in book.iterfind(f"{MAIN}sheets/{MAIN}sheet"):
        target = targets.get(sheet.get(f"{REL}id"), "")
        path = target.lstrip("/") if target.startswith("/") else "xl/" + target
        yield sheet.get("name", ""), re.sub(r"[^/]+/\.\./", "", path)


# --- .ods ----------------------------------------------------------------------------
TABLE = "{urn:oasis:names:tc:opendocument:xmlns:table:1.0}"
STYLE = "{urn:oasis:names:tc:opendocument:xmlns:style:1.0}"
TEXT = "{urn:oasis:names:tc:opendocument:xmlns:text:1.0}"
FO = "{urn:oasis:names:tc:opendocument:xmlns:xsl-fo-compatible:1.0}"
SVG = "{urn:oasis:names:tc:opendocument:xmlns:svg-compatible:1.0}"
MAX_REPEAT = 1 << 20


def _ods_styles(roots: list[etree._Element]) -> dict[str, str | None]:
    """Style name -> encoding of its font (following parent styles), for cell and text styles."""
    faces: dict[str, str] = {}
    parents: dict[str, str] = {}
    own: dict[str, str | None] = {}
    for root in roots:
        for face in root.iter(f"{STYLE}font-face"):
            faces[face.get(f"{STYLE}name", "")] = face.get(f"{SVG}font-family", "")
        for style in root.iter(f"{STYLE}style"):
            name = style.get(f"{STYLE}name", "")
            if style.get(f"{STYLE}parent-style-name"):
                parents[name] = style.get(f"{STYLE}parent-style-name", "")
            props = style.find(f"{STYLE}text-properties")
            if props is not None:
                font = props.get(f"{STYLE}font-name") or props.get(f"{FO}font-family")
                if font:
                    own[name] = font_encoding(faces.get(font, font))
    resolved: dict[str, str | None] = {}
    for name in set(own) | set(parents):
        seen, current = set(), name
        while current not in own and current in parents and current not in seen:
            seen.add(current)
            current = parents[current]
        resolved[name] = own.get(current)
    return resolved


def _ods(archive: zipfile.ZipFile) -> dict[str, SheetExtras]:
    content = archive.read("content.xml")
    legacy = _LEGACY_NAME.search(content) is not None
    styles_xml = archive.read("styles.xml") if "styles.xml" in archive.namelist() else b""
    legacy = legacy or _LEGACY_NAME.search(styles_xml) is not None
    if not legacy and b"number-rows-spanned" not in content:
        return {}
    roots = [etree.fromstring(content, etree.XMLParser(**_PARSER))]
    if styles_xml and legacy:
        roots.append(etree.fromstring(styles_xml, etree.XMLParser(**_PARSER)))
    encodings = _ods_styles(roots) if legacy else {}
    out: dict[str, SheetExtras] = {}
    for table in roots[0].iter(f"{TABLE}table"):
        sheet = SheetExtras()
        columns: list[tuple[int, str]] = []  # (last column, default style)
        col = 0
        for column in table.iter(f"{TABLE}table-column"):
            repeat = min(int(column.get(f"{TABLE}number-columns-repeated", "1")), MAX_REPEAT)
            col += repeat
            columns.append((col - 1, column.get(f"{TABLE}default-cell-style-name", "")))
        row = 0
        for element in table.iter(f"{TABLE}table-row"):
            repeat = min(int(element.get(f"{TABLE}number-rows-repeated", "1")), MAX_REPEAT)
            row_style = element.get(f"{TABLE}default-cell-style-name", "")
            col = 0
            for cell in element:
                if cell.tag not in (f"{TABLE}table-cell", f"{TABLE}covered-table-cell"):
                    continue
                span = min(int(cell.get(f"{TABLE}number-columns-repeated", "1")), MAX_REPEAT)
                if cell.tag == f"{TABLE}table-cell" and len(cell):
                    _ods_cell(cell, row, col, row_style, columns, encodings, sheet)
                    down = int(cell.get(f"{TABLE}number-rows-spanned", "1"))
                    across = int(cell.get(f"{TABLE}number-columns-spanned", "1"))
                    if down > 1 or across > 1:
                        sheet.merged.append((row, col, row + min(down, MAX_REPEAT) - 1,
                                             col + min(across, MAX_REPEAT) - 1))
                col += span
            row += repeat
        if sheet.hints or sheet.texts or sheet.merged:
            out[table.get(f"{TABLE}name", "")] = sheet
    return out


def _ods_cell(cell: etree._Element, row: int, col: int, row_style: str,
              columns: list[tuple[int, str]], encodings: dict[str, str | None],
              sheet: SheetExtras) -> None:
    if not encodings:
        return
    style = cell.get(f"{TABLE}style-name") or row_style or next(
        (name for last, name in columns if col <= last), "")
    encoding = encodings.get(style)
    spans = [s for s in cell.iter(f"{TEXT}span") if s.get(f"{TEXT}style-name") in encodings]
    if spans:
        sheet.texts[(row, col)] = "\n".join(
            _ods_text(p, encoding, encodings) for p in cell.iter(f"{TEXT}p"))
    elif encoding:
        sheet.hints[(row, col)] = encoding


def _ods_text(element: etree._Element, encoding: str | None,
              encodings: dict[str, str | None]) -> str:
    """A paragraph's text with each span decoded in its own font's encoding."""
    own = encodings.get(element.get(f"{TEXT}style-name", ""), encoding) \
        if element.tag == f"{TEXT}span" else encoding
    parts = [decode(element.text, own) if own and element.text else (element.text or "")]
    for child in element:
        if child.tag == f"{TEXT}s":
            parts.append(" " * int(child.get(f"{TEXT}c", "1")))
        elif child.tag == f"{TEXT}tab":
            parts.append("\t")
        elif child.tag == f"{TEXT}line-break":
            parts.append("\n")
        else:
            parts.append(_ods_text(child, own, encodings))
        if child.tail:
            parts.append(decode(child.tail, own) if own else child.tail)
    return "".join(parts)


# --- .xls (BIFF8 in an OLE2 compound file) ---------------------------------------------
def _ole_stream(data: bytes, names: tuple[str, ...]) -> bytes:
    """The named stream of an OLE2 compound file (FAT chains followed with cycle guards)."""
    sector = 1 << struct.unpack_from("<H", data, 0x1E)[0]
    mini = 1 << struct.unpack_from("<H", data, 0x20)[0]
    first_dir, cutoff, first_minifat, first_difat, n_difat = struct.unpack_from(
        "<I4xII4xII", data, 0x30)
    if sector not in (512, 4096):
        raise ValueError("sector size")

    def read_sector(number: int) -> bytes:
        start = (number + 1) * sector
        if start + sector > len(data) + sector:
            raise ValueError("sector outside file")
        return data[start:start + sector]

    difat = list(struct.unpack_from("<109I", data, 0x4C))
    number, guard = first_difat, 0
    while number < 0xFFFFFFFA and guard < n_difat + 1:
        chunk = read_sector(number)
        values = struct.unpack(f"<{sector // 4}I", chunk)
        difat.extend(values[:-1])
        number, guard = values[-1], guard + 1
    fat: list[int] = []
    for number in difat:
        if number >= 0xFFFFFFFA:
            continue
        fat.extend(struct.unpack(f"<{sector // 4}I", read_sector(number)))

    def chain(start: int, table: list[int]) -> Iterator[int]:
        seen: set[int] = set()
        while start < 0xFFFFFFFA and start not in seen and start < len(table):
            seen.add(start)
            yield start
            start = table[start]

    directory = b"".join(read_sector(n) for n in chain(first_dir, fat))
    entries = {}
    for offset in range(0, len(directory) - 127, 128):
        length = struct.unpack_from("<H", directory, offset + 0x40)[0]
        name = directory[offset:offset + max(0, min(length, 64) - 2)].decode("utf-16-le", "replace")
        start, size = struct.unpack_from("<II", directory, offset + 0x74)
        entries[name] = (start, size)
    root_start, root_size = struct.unpack_from("<II", directory, 0x74)
    for name in names:
        if name not in entries:
            continue
        start, size = entries[name]
        if size >= cutoff:
            return b"".join(read_sector(n) for n in chain(start, fat))[:size]
        stream = b"".join(read_sector(n) for n in chain(root_start, fat))[:root_size]
        minifat_bytes = b"".join(read_sector(n) for n in chain(first_minifat, fat))
        minifat = list(struct.unpack(f"<{len(minifat_bytes) // 4}I", minifat_bytes))
        return b"".join(stream[n * mini:(n + 1) * mini] for n in chain(start, minifat))[:size]
    raise KeyError("Workbook")


def _records(stream: bytes, start: int = 0) -> Iterator[tuple[int, bytes]]:
    offset = start
    while offset + 4 <= len(stream):
        kind, size = struct.unpack_from("<HH", stream, offset)
        yield kind, stream[offset + 4:offset + 4 + size]
        offset += 4 + size
        if kind == 0x000A:  # EOF of this substream
            return


class _Continued:
    """A record split by CONTINUE records, read as one, characters restarting at each
    boundary with a fresh high-byte flag (the BIFF8 rule for long strings)."""

    def __init__(self, parts: list[bytes]) -> None:
        self.data = b"".join(parts)
        self.bounds, total = set(), 0
        for part in parts[:-1]:
            total += len(part)
            self.bounds.add(total)
        self.pos = 0

    def take(self, count: int) -> bytes:
        chunk = self.data[self.pos:self.pos + count]
        if len(chunk) < count:
            raise ValueError("truncated")
        self.pos += count
        return chunk

    def chars(self, count: int, wide: bool) -> str:
        out = []
        while count > 0:
            nxt = min((b for b in self.bounds if b > self.pos), default=len(self.data))
            width = 2 if wide else 1
            fit = min(count, (nxt - self.pos) // width)
            raw = self.take(fit * width)
            out.append(raw.decode("utf-16-le" if wide else "latin-1"))
            count -= fit
            if count > 0:
                if self.pos != nxt:
                    raise ValueError("character across a boundary")
                wide = bool(self.take(1)[0] & 1)
        return "".join(out)


def _sst(parts: list[bytes], fonts: list[str | None]) -> dict[int, list[tuple[str, str | None]]]:
    """Shared strings with rich-text runs in a legacy font: index -> runs."""
    reader = _Continued(parts)
    _total, unique = struct.unpack("<II", reader.take(8))
    out: dict[int, list[tuple[str, str | None]]] = {}
    for index in range(unique):
        count = struct.unpack("<H", reader.take(2))[0]
        flags = reader.take(1)[0]
        runs = struct.unpack("<H", reader.take(2))[0] if flags & 0x08 else 0
        extra = struct.unpack("<I", reader.take(4))[0] if flags & 0x04 else 0
        text = reader.chars(count, bool(flags & 0x01))
        marks = [struct.unpack("<HH", reader.take(4)) for _ in range(runs)]
        reader.take(extra)
        if not marks:
            continue
        encodings = [_font(fonts, ifnt) for _pos, ifnt in marks]
        if not any(encodings):
            continue
        cuts = [pos for pos, _ifnt in marks] + [len(text)]
        pieces = [(text[: cuts[0]], None)] if cuts[0] > 0 else []
        pieces += [(text[cuts[i]:cuts[i + 1]], encodings[i] or "") for i in range(len(marks))]
        out[index] = pieces
    return out


def _font(fonts: list[str | None], index: int) -> str | None:
    index = index - 1 if index >= 4 else index  # BIFF skips font index 4
    return fonts[index] if 0 <= index < len(fonts) else None


def _xls(data: bytes) -> dict[str, SheetExtras]:
    stream = _ole_stream(data, ("Workbook", "Book"))
    fonts: list[str | None] = []
    xfs: list[str | None] = []
    sheets: list[tuple[int, str]] = []
    sst_parts: list[bytes] = []
    in_sst = False
    for kind, body in _records(stream):
        if kind == 0x003C and in_sst:
            sst_parts.append(body)
            continue
        in_sst = kind == 0x00FC
        if in_sst:
            sst_parts = [body]
        elif kind == 0x0031 and len(body) >= 16:  # FONT
            count, wide = body[14], body[15] & 1
            raw = body[16:16 + count * (2 if wide else 1)]
            fonts.append(font_encoding(raw.decode("utf-16-le" if wide else "latin-1")))
        elif kind == 0x00E0 and len(body) >= 2:  # XF
            xfs.append(_font(fonts, struct.unpack_from("<H", body)[0]))
        elif kind == 0x0085 and len(body) >= 8:  # BOUNDSHEET
            position, count, wide = struct.unpack_from("<I", body)[0], body[6], body[7] & 1
            name = body[8:8 + count * (2 if wide else 1)].decode(
                "utf-16-le" if wide else "latin-1")
            sheets.append((position, name))
    if not any(fonts):
        return {}
    rich = _sst(sst_parts, fonts) if sst_parts and any(fonts) else {}
    shared_plain = not rich
    out: dict[str, SheetExtras] = {}
    for position, name in sheets:
        sheet = SheetExtras()
        for kind, body in _records(stream, position):
            if kind == 0x00FD and len(body) >= 10:  # LABELSST
                row, col, xf, index = struct.unpack_from("<HHHI", body)
                encoding = xfs[xf] if xf < len(xfs) else None
                runs = None if shared_plain else rich.get(index)
                if runs:
                    sheet.texts[(row, col)] = _join(runs, encoding)
                elif encoding:
                    sheet.hints[(row, col)] = encoding
            elif kind == 0x0204 and len(body) >= 6:  # LABEL
                row, col, xf = struct.unpack_from("<HHH", body)
                if xf < len(xfs) and xfs[xf]:
                    sheet.hints[(row, col)] = xfs[xf]  # type: ignore[assignment]
        if sheet.hints or sheet.texts:
            out[name] = sheet
    return out


__all__ = ["TCVN3", "TCVN3_CAPITALS", "VNI", "SheetExtras", "extras"]
