"""Spreadsheets written the way district offices write them, for the reader's tests.

Each layout builder returns ``(xlsx bytes, where)``: ``where`` maps each registration
(its index in the list given) to the Excel row it landed on, so a test can plant an
error at a known cell and expect the finding there. LibreOffice turns the same files
into .xls and .ods (``convert``), as an office that saves in another format does.
"""

from __future__ import annotations

import io
import subprocess
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path

from openpyxl import Workbook
from openpyxl.styles import Font

from intake.config import Settings
from intake.reference import Reference
from intake.samples import eligible_rows
from intake.sheets.legacy import unicode_to_tcvn3, unicode_to_vni

from .conftest import REFERENCE, need

__all__ = ["REFERENCE", "Registration", "convert", "registrations"]


@dataclass
class Registration:
    """One branch as an office means it, before any layout writes it down."""

    commune: str
    hamlet: str
    members: int
    party_cell: str
    recognised: int | None
    level: str  # "provincial" | "district"
    district_model: int | None

    @property
    def branch(self) -> str:
        return f"Chi đoàn {self.hamlet}"

    @property
    def status(self) -> str:
        return (f"Đã công nhận năm {self.recognised}" if self.recognised
                else "Đăng ký năm 2021")

    @property
    def level_text(self) -> str:
        return "Cấp tỉnh" if self.level == "provincial" else "Cấp huyện"


def registrations(settings: Settings, reference: Reference, unit: str = "CT"
                  ) -> list[Registration]:
    """Every eligible hamlet of the unit (so coverage is complete), grouped by commune."""
    out = []
    for row in eligible_rows(settings, reference, reference.units[unit]):
        out.append(Registration(row[1], row[2].removeprefix("Chi đoàn "), row[3], row[4],
                                row[5], "provincial" if row[7] else "district", row[9]))
    return out


def save(book: Workbook) -> bytes:
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


HEADING = [["HUYỆN ĐOÀN CHÂU THÀNH", None, None, None, None, "ĐOÀN TNCS HỒ CHÍ MINH"],
           ["BCH ĐOÀN HUYỆN", None, None, None, None, "Châu Thành, ngày 15 tháng 02 năm 2021"],
           [],
           ["DANH SÁCH ĐĂNG KÝ XÂY DỰNG CHI ĐOÀN KIỂU MẪU NĂM 2021"],
           []]
SIGNATURE = [[], [None, None, None, None, None, "TM. BAN THƯỜNG VỤ"],
             [None, None, None, None, None, "BÍ THƯ"], [],
             [None, None, None, None, None, "Nguyễn Văn Bình"]]


def merged_down(items: list[Registration]) -> tuple[bytes, dict[int, int]]:
    """Two-row header, a numbering row, the commune merged down over its hamlets, the level
    and the status each in one column and merged over runs of equal values, totals and
    a signature below."""
    book = Workbook()
    sheet = book.active
    sheet.title = "Danh sách"
    for row in HEADING:
        sheet.append(row)
    sheet.merge_cells("A4:I4")
    sheet.append(["STT", "Xã, phường,\nthị trấn", "Tên Chi đoàn", "Số lượng đoàn viên",
                  "Chi bộ ấp, khu phố", None, "Cấp đăng ký", "Năm đạt CĐKM cấp huyện",
                  "Ghi chú"])
    sheet.append([None, None, None, None, "Tên Chi bộ", "Tình trạng Chi bộ"])
    for col in "ABCDGHI":
        sheet.merge_cells(f"{col}6:{col}7")
    sheet.merge_cells("E6:F6")
    sheet.append([f"({n})" for n in range(1, 10)])
    where: dict[int, int] = {}
    start = sheet.max_row + 1
    for number, item in enumerate(items, start=1):
        where[number - 1] = sheet.max_row + 1
        sheet.append([number, item.commune, item.branch, item.members, item.party_cell,
                      item.status, item.level_text, item.district_model])
    _merge_runs(sheet, start, [(i.commune,) for i in items], "B")
    _merge_runs(sheet, start, [(i.commune, i.level_text) for i in items], "G")
    _merge_runs(sheet, start, [(i.commune, i.status) for i in items], "F")
    sheet.append(["Tổng cộng", None, f"{len(items)} Chi đoàn",
                  sum(i.members for i in items if isinstance(i.members, int))])
    for row in SIGNATURE:
        sheet.append(row)
    return save(book), where


def _merge_runs(sheet, start: int, keys: list[tuple], column: str) -> None:
    """Merge each run of equal keys down the column, leaving the value in its first cell."""
    row = start
    for _key, run in groupby(keys):
        length = len(list(run))
        if length > 1:
            sheet.merge_cells(f"{column}{row}:{column}{row + length - 1}")
        row += length


def sections(items: list[Registration], phone: object = 912345678
             ) -> tuple[bytes, dict[int, int]]:
    """One-row header, "1 2 3 …" numbering, no level column: "I. CẤP TỈNH" / "II. CẤP
    HUYỆN" sections, a group row per commune with a "Cộng xã" subtotal under it, the
    header repeated after a page break, registrations ticked with √, phones as numbers."""
    book = Workbook()
    sheet = book.active
    for row in HEADING:
        sheet.append(row)
    header = ["TT", "Xã/Phường", "Tên Chi đoàn", "SL ĐV", "Tên Chi bộ ấp",
              "Năm công nhận TSVMTD", "Đăng ký TSVMTD năm 2021", "Năm đạt CĐKM cấp huyện",
              "Bí thư", "SĐT"]
    sheet.append(header)
    sheet.append(list(range(1, len(header) + 1)))
    where: dict[int, int] = {}
    indexed = list(enumerate(items))
    for title, level in (("I. CẤP TỈNH", "provincial"), ("II. CẤP HUYỆN", "district")):
        sheet.append([title])
        sheet.merge_cells(f"A{sheet.max_row}:J{sheet.max_row}")
        mine = [(i, item) for i, item in indexed if item.level == level]
        for position, (commune, group) in enumerate(groupby(mine, key=lambda p: p[1].commune)):
            if position == 2:  # a page break: the header again, as printed forms repeat it
                sheet.append(header)
            sheet.append([None, commune])
            sheet.merge_cells(f"B{sheet.max_row}:J{sheet.max_row}")
            group = list(group)
            for number, (index, item) in enumerate(group, start=1):
                where[index] = sheet.max_row + 1
                sheet.append([number, None, item.branch, item.members, item.party_cell,
                              item.recognised, None if item.recognised else "√",
                              item.district_model, "Trần Thị Hoa", phone])
            sheet.append([None, f"Cộng {commune.lower()}", None,
                          sum(item.members for _i, item in group)])
    sheet.append(["Tổng số: " + str(len(items))])
    for row in SIGNATURE:
        sheet.append(row)
    return save(book), where


def sheet_per_level(items: list[Registration]) -> tuple[bytes, dict[int, tuple[str, int]]]:
    """Sheets "Cấp tỉnh" and "Cấp huyện" with no level column; status in two columns,
    ticked with ✔ and ☑; an instructions sheet first."""
    book = Workbook()
    guide = book.active
    guide.title = "Hướng dẫn"
    guide.append(["Mỗi cấp một trang tính; đánh dấu ✔ nếu Chi bộ đăng ký TSVMTD."])
    where: dict[int, tuple[str, int]] = {}
    for title, level, tick in (("Cấp tỉnh", "provincial", "✔"), ("Cấp huyện", "district", "☑")):
        sheet = book.create_sheet(title)
        sheet.append([f"DANH SÁCH CHI ĐOÀN ĐĂNG KÝ {title.upper()}"])
        sheet.append(["STT", "Xã", "Tên Chi đoàn", "Số ĐV", "Chi bộ", "Năm được công nhận",
                      "Đăng ký TSVMTD", "Năm đạt CĐKM cấp huyện"])
        for number, (index, item) in enumerate(
                ((i, x) for i, x in enumerate(items) if x.level == level), start=1):
            where[index] = (title, sheet.max_row + 1)
            sheet.append([number, item.commune, item.branch, f"{item.members} ĐV",
                          item.party_cell, item.recognised, None if item.recognised else tick,
                          item.district_model])
    return save(book), where


def legacy_fonts(items: list[Registration]) -> tuple[bytes, dict[int, int]]:
    """A form kept since the 2000s: communes and party cells typed in TCVN3 with .VnTime,
    branches in VNI-Windows with VNI-Times, the header in Unicode Times New Roman."""
    book = Workbook()
    sheet = book.active
    sheet.title = "DS"
    sheet.append(["DANH SÁCH ĐĂNG KÝ CHI ĐOÀN KIỂU MẪU"])
    sheet.append(["STT", "Xã, phường, thị trấn", "Tên Chi đoàn", "Số lượng đoàn viên",
                  "Chi bộ ấp, khu phố", "Tình trạng Chi bộ", "Cấp đăng ký",
                  "Năm đạt CĐKM cấp huyện"])
    for cell in sheet[2]:
        cell.font = Font(name="Times New Roman", bold=True)
    where: dict[int, int] = {}
    tcvn3, vni = Font(name=".VnTime"), Font(name="VNI-Times")
    for number, item in enumerate(items, start=1):
        where[number - 1] = sheet.max_row + 1
        sheet.append([number, unicode_to_tcvn3(item.commune), unicode_to_vni(item.branch),
                      item.members, unicode_to_tcvn3(item.party_cell),
                      unicode_to_tcvn3(item.status), unicode_to_vni(item.level_text),
                      item.district_model])
        row = sheet.max_row
        for col in "BEF":
            sheet[f"{col}{row}"].font = tcvn3
        for col in "CG":
            sheet[f"{col}{row}"].font = vni
    return save(book), where


def convert(sources: list[Path], target: str, out_dir: Path) -> list[Path]:
    """Save files in another format with LibreOffice headless, all in one run."""
    soffice = need("soffice")
    out_dir.mkdir(parents=True, exist_ok=True)
    profile = out_dir / "lo-profile"
    done = subprocess.run(
        [soffice, f"-env:UserInstallation=file://{profile}", "--headless", "--norestore",
         "--convert-to", target, "--outdir", str(out_dir), *map(str, sources)],
        capture_output=True, text=True, timeout=300)
    produced = [out_dir / f"{s.stem}.{target.split(':')[0]}" for s in sources]
    missing = [p for p in produced if not p.exists()]
    assert done.returncode == 0 and not missing, done.stderr + done.stdout
    return produced
