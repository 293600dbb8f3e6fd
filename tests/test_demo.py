"""``intake demo`` as a user runs it: a subprocess, embedded pymap + aiosmtpd."""

from __future__ import annotations

import email
import subprocess
import sys
from email import policy
from pathlib import Path

from openpyxl import load_workbook

ROOT = Path(__file__).resolve().parent.parent


def test_demo_runs_end_to_end_twice(tmp_path: Path):
    config = tmp_path / "config" / "intake.toml"  # its data_dir "../data" is tmp_path/data
    config.parent.mkdir()
    text = (ROOT / "config" / "intake.toml").read_text(encoding="utf-8")
    text = text.replace('reference_dir = "reference"', f'reference_dir = "{ROOT}/config/reference"')
    text = text.replace('templates_dir = "../templates"', f'templates_dir = "{ROOT}/templates"')
    config.write_text(text, encoding="utf-8")
    for _ in range(2):  # running it twice works (the demo folder is recreated)
        done = subprocess.run([sys.executable, "-m", "intake", "--config", str(config), "demo"],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    demo = tmp_path / "data" / "demo"
    workbook = demo / "TongHop_ChiDoanKieuMau.xlsx"
    assert str(workbook) in out.replace("\n", "")
    for name in ("Huyện đoàn Ba Tri", "Huyện đoàn Bình Đại", "Huyện đoàn Châu Thành",
                 "Huyện đoàn Chợ Lách", "Huyện đoàn Giồng Trôm", "Huyện đoàn Mỏ Cày Bắc",
                 "Huyện đoàn Mỏ Cày Nam", "Huyện đoàn Thạnh Phú", "Thành đoàn Bến Tre"):
        assert name in out
    units = {r[0] for r in load_workbook(workbook)["Danh sách"].iter_rows(min_row=2,
                                                                          values_only=True)}
    assert len(units) >= 5
    statuses = set()
    for path in sorted((demo / "replies").glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        statuses.add(message["X-Intake-Status"])
    assert statuses == {"accepted", "needs-correction", "no-attachment", "unknown-sender"}
    assert "<Status." not in out  # statuses print as their plain values
