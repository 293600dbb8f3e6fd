"""Benchmark: rebuild the consolidated workbook from a store of 20,000 … 105,000 rows.

Goal (issue 11): a national campaign, 700 units × 150 rows = 105,000 rows, rebuilt in
≤ 10 s and ≤ 300 MB peak RSS (issue 6 asked 20,000 rows in ≤ 3 s). Each size is filled
in a fresh subprocess and rebuilt in another one, so the peak RSS is the rebuild's own.
``--units 700`` (the default) uses the national reference lists of bench/national.py,
``--units 9`` the province's own (config/reference).

    .venv/bin/python bench/workbook_speed.py [--sizes 20000,105000] [--units 700]
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
    """Submissions and rows straight into the store, spread over every unit."""
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
            submission = number % len(units) + 1  # the unit's message and submission
            code = units[submission - 1]
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
        # Each unit's state, as filing stores it (the summary and coverage sheets read it).
        from intake.store import submissions
        from intake.store import units as states

        for code in units:
            states.save(store, code, reference.coverage(code, submissions.registered(store, code)))


def _hwm_kb() -> int:
    """Peak resident memory of this process (VmHWM; ru_maxrss survives exec on Linux)."""
    status = Path("/proc/self/status").read_text()
    return int(status.split("VmHWM:")[1].split()[0])


def _settings(folder: Path, reference_dir: Path):
    from intake.config import settings_for

    return settings_for(folder, paths={
        "reference_dir": str(reference_dir), "data_dir": str(folder),
        "workbook": f"{folder}/TongHop.xlsx", "templates_dir": str(ROOT / "templates")})


def rebuild(folder: Path, reference_dir: Path) -> dict[str, float]:
    """Rebuild the workbook of the store in ``folder`` (run in a process of its own)."""
    from intake.reference import load_reference
    from intake.store import open_store
    from intake.workbook import write

    settings = _settings(folder, reference_dir)
    reference = load_reference(settings.paths.reference_dir)
    store = open_store(settings.paths.data_dir)
    start, cpu = time.perf_counter(), time.process_time()
    path = write(store, reference, settings)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    rows = store.one("SELECT COUNT(*) FROM rows WHERE current=1")[0]
    store.close()
    return {"rows": rows, "seconds": round(seconds, 3), "cpu": round(cpu, 3),
            "peak_mb": round(_hwm_kb() / 1024, 1),
            "size_kb": round(path.stat().st_size / 1024)}


def rebuild_apart(folder: Path, reference_dir: Path) -> dict[str, float]:
    """``rebuild`` in a fresh interpreter, so its peak RSS is its own."""
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--rebuild",
                           str(folder), "--reference", str(reference_dir)],
                          check=True, capture_output=True, text=True, cwd=ROOT)
    return json.loads(done.stdout)


def one(rows: int, units: int) -> dict[str, float]:
    from intake.reference import load_reference
    from intake.store import open_store

    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        if units == 9:
            reference_dir = ROOT / "config" / "reference"
        else:
            from national import write_reference

            reference_dir = write_reference(folder / "reference", units)
        store = open_store(folder)
        fill(store, load_reference(reference_dir), rows)
        store.close()
        return rebuild_apart(folder, reference_dir)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="20000,105000")
    parser.add_argument("--units", type=int, default=700, help="700 (national) or 9")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--rebuild", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--reference", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rebuild:
        print(json.dumps(rebuild(args.rebuild, args.reference)))
        return
    if args.one:
        print(json.dumps(one(args.one, args.units)))
        return
    results = []
    for size in (int(s) for s in args.sizes.split(",")):
        done = subprocess.run([sys.executable, __file__, "--one", str(size), "--units",
                               str(args.units)], check=True, capture_output=True, text=True,
                              cwd=ROOT)
        results.append(json.loads(done.stdout))
    print(f"{args.units} units")
    print(f"{'rows':>7} {'seconds':>8} {'cpu s':>6} {'s/1000 rows':>12} {'peak MB':>8}"
          f" {'file KB':>8}")
    for r in results:
        print(f"{r['rows']:>7} {r['seconds']:>8.2f} {r['cpu']:>6.2f}"
              f" {r['seconds'] * 1000 / r['rows']:>12.3f} {r['peak_mb']:>8.1f}"
              f" {r['size_kb']:>8}")
    last = results[-1]
    print(f"goal for 105,000 rows: ≤ 10 s and ≤ 300 MB; measured {last['seconds']:.2f} s "
          f"({last['cpu']:.2f} s of CPU), {last['peak_mb']:.0f} MB peak (the rebuild's "
          f"process); load average {Path('/proc/loadavg').read_text().split()[0]}")


if __name__ == "__main__":
    main()
