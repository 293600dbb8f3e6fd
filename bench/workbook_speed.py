"""Benchmark: rebuild the consolidated workbook from a store of 1,000 … 20,000 rows.

Goal (issue 6): 20,000 rows across 9 units in ≤ 3 s and ≤ 300 MB peak, growing linearly.
Each size runs in a fresh subprocess so its peak RSS is its own.

    .venv/bin/python bench/workbook_speed.py [--sizes 1000,5000,10000,20000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def fill(store, reference, rows: int) -> None:
    """Submissions and rows straight into the store, spread over the 9 units."""
    units = list(reference.units)
    with store.transaction() as db:
        for index, code in enumerate(units):
            db.execute("INSERT INTO messages(folder, uidvalidity, uid, message_id, sha256,"
                       " received_at, sender, subject, unit_code, status, stage, created_at)"
                       " VALUES ('INBOX',1,?,?,?,?,?,?,?,'accepted','moved',?)",
                       (index + 1, f"<m{index}@x>", f"{index:064x}", "2021-02-10T02:00:00+00:00",
                        reference.units[code].emails[0], "Danh sách", code,
                        "2021-02-10T02:00:00+00:00"))
            db.execute("INSERT INTO submissions(message, unit_code, received_at, status)"
                       " VALUES (?,?,?,'accepted')", (index + 1, code, "2021-02-10T02:00:00+00:00"))
        for number in range(rows):
            code = units[number % len(units)]
            submission = units.index(code) + 1
            communes = reference.communes[code]
            commune = communes[number % len(communes)]
            valid = number % 10 != 0
            row = db.execute(
                "INSERT INTO rows(submission, unit_code, file, sheet, row_number, commune,"
                " commune_code, hamlet_key, branch, party_cell, cell_status, members, level,"
                " secretary, phone, valid, errors, received_at) VALUES"
                " (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (submission, code, "DS.xlsx", "Danh sách", number + 8, commune.name, commune.code,
                 f"ap {number}", f"Chi đoàn ấp {number}", f"Chi bộ ấp {number}",
                 "Đã công nhận TSVMTD năm 2019", 20, "district", "Nguyễn Văn An", "0912345678",
                 int(valid), "" if valid else "D9: Số lượng đoàn viên không hợp lệ",
                 "2021-02-10T02:00:00+00:00")).lastrowid
            if not valid:
                db.execute("INSERT INTO findings(submission, row, unit_code, file, sheet,"
                           " row_number, column_letter, code, level, message) VALUES"
                           " (?,?,?,?,?,?,?,?,?,?)",
                           (submission, row, code, "DS.xlsx", "Danh sách", number + 8, "D",
                            "ROW_MEMBERS_INVALID", "error", "Số lượng đoàn viên không hợp lệ"))


def _hwm_kb() -> int:
    """Peak resident memory of this process (VmHWM; ru_maxrss survives exec on Linux)."""
    status = Path("/proc/self/status").read_text()
    return int(status.split("VmHWM:")[1].split()[0])


def one(rows: int) -> dict[str, float]:
    from intake.config import settings_for
    from intake.reference import load_reference
    from intake.store import open_store
    from intake.workbook import write

    with tempfile.TemporaryDirectory() as folder:
        settings = settings_for(Path(folder), paths={
            "reference_dir": str(ROOT / "config" / "reference"), "data_dir": folder,
            "workbook": f"{folder}/TongHop.xlsx", "templates_dir": str(ROOT / "templates")})
        reference = load_reference(settings.paths.reference_dir)
        store = open_store(settings.paths.data_dir)
        fill(store, reference, rows)
        before = _hwm_kb()
        start = time.perf_counter()
        path = write(store, reference, settings)
        seconds = time.perf_counter() - start
        peak = _hwm_kb()
        return {"rows": rows, "seconds": round(seconds, 3), "peak_mb": round(peak / 1024, 1),
                "growth_mb": round((peak - before) / 1024, 1),
                "size_kb": round(path.stat().st_size / 1024)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1000,5000,10000,20000")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one)))
        return
    results = []
    for size in (int(s) for s in args.sizes.split(",")):
        done = subprocess.run([sys.executable, __file__, "--one", str(size)], check=True,
                              capture_output=True, text=True, cwd=ROOT)
        results.append(json.loads(done.stdout))
    print(f"{'rows':>7} {'seconds':>8} {'s/1000 rows':>12} {'peak MB':>8} {'file KB':>8}")
    for r in results:
        print(f"{r['rows']:>7} {r['seconds']:>8.2f} {r['seconds'] * 1000 / r['rows']:>12.3f}"
              f" {r['peak_mb']:>8.1f} {r['size_kb']:>8}")
    last = results[-1]
    print(f"goal for 20,000 rows: ≤ 3 s and ≤ 300 MB; measured {last['seconds']:.2f} s, "
          f"{last['peak_mb']:.0f} MB peak (whole process)")


if __name__ == "__main__":
    main()
