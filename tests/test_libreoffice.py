"""Files written by a real third-party spreadsheet program (LibreOffice headless)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from intake.samples import eligible_rows, form
from intake.sheets.report import check_files

from .conftest import need

pytestmark = pytest.mark.libreoffice


def convert(source: Path, target_format: str, out_dir: Path) -> Path:
    soffice = need("soffice")
    profile = out_dir / "lo-profile"
    done = subprocess.run(
        [soffice, f"-env:UserInstallation=file://{profile}", "--headless", "--norestore",
         "--convert-to", target_format, "--outdir", str(out_dir), str(source)],
        capture_output=True, text=True, timeout=180)
    produced = out_dir / f"{source.stem}.{target_format.split(':')[0]}"
    assert done.returncode == 0 and produced.exists(), done.stderr + done.stdout
    return produced


@pytest.mark.parametrize("target", ["xls", "ods", "xlsx"])
def test_form_saved_by_libreoffice_reads_the_same(tmp_path: Path, settings, reference, target):
    unit = reference.units["CT"]
    rows = eligible_rows(settings, reference, unit)
    source = tmp_path / "src" / "ds.xlsx"
    source.parent.mkdir()
    source.write_bytes(form(settings, reference, unit, rows))
    produced = convert(source, target, tmp_path)
    report = check_files([(produced.name, produced.read_bytes())], reference, settings, unit)
    assert report.findings == []
    assert [r.cell.name for r in report.results] == [r[4] for r in rows]
    assert [r.row.number for r in report.results][:2] == [8, 9]
    assert [r.row.members for r in report.results] == [r[3] for r in rows]
