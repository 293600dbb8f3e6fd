"""Print a spreadsheet the way a district officer or a board clerk would: LibreOffice
headless to PDF, then poppler for the page count, the text of each page and images.

Everything is written under the calling test's temp folder (LibreOffice's profile too).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from .conftest import need


def to_pdf(source: Path, out_dir: Path) -> Path:
    soffice = need("soffice")
    out_dir.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [soffice, f"-env:UserInstallation=file://{out_dir / 'lo-profile'}", "--headless",
         "--norestore", "--convert-to", "pdf", "--outdir", str(out_dir), str(source)],
        capture_output=True, text=True, timeout=180)
    pdf = out_dir / f"{source.stem}.pdf"
    assert done.returncode == 0 and pdf.exists(), done.stderr + done.stdout
    return pdf


def page_count(pdf: Path) -> int:
    info = subprocess.run([need("pdfinfo"), str(pdf)], capture_output=True, text=True,
                          check=True, timeout=60).stdout
    return int(re.search(r"^Pages:\s+(\d+)", info, re.MULTILINE).group(1))  # type: ignore[union-attr]


def pages_text(pdf: Path) -> list[str]:
    """The text of each page, laid out as printed (``pdftotext -layout``)."""
    return [subprocess.run([need("pdftotext"), "-layout", "-f", str(n), "-l", str(n), str(pdf),
                            "-"], capture_output=True, text=True, check=True,
                           timeout=60).stdout
            for n in range(1, page_count(pdf) + 1)]


def flat(text: str) -> str:
    """Whitespace collapsed: a sentence wrapped over lines reads as one line."""
    return " ".join(text.split())


def to_png(pdf: Path, out_dir: Path, stem: str, dpi: int = 70) -> list[Path]:
    """Every page as PNG (for people to look at; the tests only check they exist)."""
    subprocess.run([need("pdftoppm"), "-png", "-r", str(dpi), str(pdf), str(out_dir / stem)],
                   check=True, timeout=180)
    return sorted(out_dir.glob(f"{stem}*.png"))
