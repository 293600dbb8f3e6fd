"""Benchmark: what reading workbooks in the sandboxed worker costs (issue 10, item 9).

Checks the 20,000-row form and a batch of 50 small forms (20 rows, one file per
submission as the pipeline checks them) with ``[limits] isolate_readers`` false
(calamine in this process) and true (calamine in the memory-limited worker), printed
side by side. Each mode runs in its own fresh interpreter; imports are not timed, the
worker's start is timed apart (it happens once per process and after a reader dies);
each figure is the best of ``--repeat`` runs. Both modes include the XML extent scan,
timed apart too.

    .venv/bin/python bench/reader_speed.py [--rows 20000] [--small 50] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from check_speed import make_form, make_reference  # noqa: E402

MODE = """
import json, sys, time
from pathlib import Path
sys.path.insert(0, {root!r})
from intake.config import settings_for
from intake.reference import load_reference
from intake.sheets import sandbox
from intake.sheets.extent import oversized
from intake.sheets.report import check_files

settings = settings_for(Path({root!r}), paths={{"reference_dir": {reference!r}}},
                        limits={{"isolate_readers": {isolate!r}}})
reference = load_reference(Path({reference!r}))
unit = reference.units["CT"]
big = Path({big!r}).read_bytes()
small = [(p.name, p.read_bytes()) for p in sorted(Path({small!r}).iterdir())]

start = time.perf_counter()
check_files(small[:1], reference, settings, unit)  # starts the worker when isolated
first = time.perf_counter() - start

def best(work):
    times = []
    for _ in range({repeat}):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)

def check_big():
    report = check_files([("ds.xlsx", big)], reference, settings, unit)
    assert report.results and not report.findings, report.findings[:3]

def check_small():
    for name, data in small:
        assert check_files([(name, data)], reference, settings, unit).results

figures = {{"first": first, "big": best(check_big), "small": best(check_small),
           "scan": best(lambda: oversized(big, settings.limits.max_rows,
                                          settings.limits.max_columns)),
           "workers": sandbox.default().started}}
if settings.limits.isolate_readers:
    import resource
    usage = sandbox.default().call(resource.getrusage, resource.RUSAGE_SELF,
                                   memory_mb=settings.limits.max_reader_memory_mb, seconds=10)
    figures["worker_peak_mb"] = usage.value.ru_maxrss / 1024
print(json.dumps(figures))
"""


def run(isolate: bool, **paths: str) -> dict[str, float]:
    code = MODE.format(root=str(ROOT), isolate=isolate, **paths)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(done.stderr)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--small", type=int, default=50)
    parser.add_argument("--small-rows", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder)
        reference = make_reference(base / "reference", args.rows)
        big = base / "ds.xlsx"
        make_form(big, reference, args.rows, 0)
        small = base / "small"
        small.mkdir()
        one = base / "one.xlsx"
        make_form(one, reference, args.small_rows, 0)
        for number in range(args.small):
            (small / f"ds{number:02d}.xlsx").write_bytes(one.read_bytes())
        paths = {"reference": str(reference), "big": str(big), "small": str(small),
                 "repeat": str(args.repeat)}
        inside, isolated = run(False, **paths), run(True, **paths)
    rows = [
        (f"check one {args.rows:,}-row .xlsx", "big"),
        (f"check {args.small} files of {args.small_rows} rows, one by one", "small"),
    ]
    print(f"{'case':<44} {'in-process':>10} {'sandboxed':>10} {'overhead':>16}")
    for label, key in rows:
        a, b = inside[key], isolated[key]
        print(f"{label:<44} {a:>9.3f}s {b:>9.3f}s {b - a:>+8.3f}s ({(b - a) / a:+.0%})")
    print(f"{'first check in a process (worker start)':<44} {inside['first']:>9.3f}s "
          f"{isolated['first']:>9.3f}s {isolated['first'] - inside['first']:>+8.3f}s")
    print(f"extent scan of the {args.rows:,}-row sheet (in both columns): "
          f"{inside['scan']:.3f}s; workers started: {isolated['workers']:.0f}, "
          f"worker peak memory {isolated['worker_peak_mb']:.0f} MB")


if __name__ == "__main__":
    main()
