"""Benchmark: check a 20,000-row form with ``intake check`` beside ``frictionless validate``.

Goal (issue 3): intake ≤ 1 s and ≤ 200 MB peak, ≥ 5× faster than frictionless with an
equivalent schema; and ``--annotate`` with 1,000 wrong cells faster than openpyxl's 4.4 s.
Every figure is measured in its own subprocess (peak RSS is per process), in one run.

    .venv/bin/pip install 'frictionless[excel]'   # the peer, for the comparison only
    .venv/bin/python bench/check_speed.py [--rows 20000]
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


def make_reference(folder: Path, rows: int) -> Path:
    """A synthetic reference with enough hamlets for ``rows`` distinct, valid rows.

    The real province has a few thousand hamlets; a 20,000-row file of distinct hamlets
    needs a bigger list, or every repeat would be a duplicate finding.
    """
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "units.csv").write_text((ROOT / "config" / "reference" / "units.csv").read_text(
        encoding="utf-8"), encoding="utf-8")
    communes = ["unit_code,commune_code,commune_name,title"]
    cells = ["unit_code,commune_code,commune_name,hamlet_name,party_cell_name,"
             "recognised_year,registered_year"]
    per = 200
    for c in range(rows // per + 1):
        name = f"Xã Thử Nghiệm {c + 1}"
        communes.append(f"CT,9{c:04d},{name},")
        for h in range(per):
            cells.append(f"CT,9{c:04d},{name},Ấp {h + 1},Chi bộ ấp {h + 1},2019,")
    (folder / "communes.csv").write_text("\n".join(communes) + "\n", encoding="utf-8")
    (folder / "party_cells.csv").write_text("\n".join(cells) + "\n", encoding="utf-8")
    return folder


def make_form(path: Path, reference_dir: Path, rows: int, wrong: int) -> None:
    """The official layout, ``rows`` distinct valid rows; the first ``wrong`` get a bad count."""
    from intake.config import settings_for
    from intake.reference import load_reference
    from intake.samples import form

    settings = settings_for(ROOT, paths={"reference_dir": str(reference_dir)})
    reference = load_reference(reference_dir)
    data = []
    for number in range(rows):
        commune, hamlet = divmod(number, 200)
        data.append([number + 1, f"Xã Thử Nghiệm {commune + 1}", f"Chi đoàn ấp {hamlet + 1}",
                     "nhiều" if number < wrong else 20, f"Chi bộ ấp {hamlet + 1}", 2019, None,
                     None, "x", None, "Nguyễn Văn An", "0912 345 678", None])
    path.write_bytes(form(settings, reference, reference.units["CT"], data))


def measure(code: str, setup: str = "") -> dict[str, float]:
    """Run ``setup`` (imports) then ``code`` in a fresh interpreter.

    Time is the work only; peak memory is the process's VmHWM (ru_maxrss survives exec
    on Linux and would report this parent's peak).
    """
    wrapper = (
        "import time, json, sys\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        f"{setup}\n"
        "start = time.perf_counter()\n"
        f"{code}\n"
        "seconds = time.perf_counter() - start\n"
        "status = open('/proc/self/status').read()\n"
        "peak = int(status.split('VmHWM:')[1].split()[0]) / 1024\n"
        "print(json.dumps({'seconds': seconds, 'peak_mb': peak}))\n")
    done = subprocess.run([sys.executable, "-c", wrapper], capture_output=True, text=True,
                          cwd=ROOT)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr else "failed"}
    return json.loads(done.stdout.strip().splitlines()[-1])


INTAKE_SETUP = "from intake.cli import main\nimport contextlib, io"
INTAKE = """
with contextlib.redirect_stdout(io.StringIO()):
    main(['--config', {config!r}, 'check', {path!r}, '--unit', 'CT',
          '--format', 'json'{annotate}])
"""

FRICTIONLESS_SETUP = "from frictionless import Resource, Schema, Dialect, fields, formats"
FRICTIONLESS = """
schema = Schema(fields=[
    fields.IntegerField(name='stt'),
    fields.StringField(name='commune', constraints={{'required': True}}),
    fields.StringField(name='branch', constraints={{'required': True}}),
    fields.IntegerField(name='members', constraints={{'required': True, 'minimum': 1}}),
    fields.StringField(name='party_cell', constraints={{'required': True}}),
    fields.IntegerField(name='recognised_year', constraints={{'minimum': 2018}}),
    fields.StringField(name='registering', constraints={{'enum': ['x', 'X']}}),
    fields.StringField(name='provincial', constraints={{'enum': ['x', 'X']}}),
    fields.StringField(name='district', constraints={{'enum': ['x', 'X']}}),
    fields.IntegerField(name='district_model_year'),
    fields.StringField(name='secretary'),
    fields.StringField(name='phone', constraints={{'pattern': '0[0-9 ]{{9,12}}'}}),
    fields.StringField(name='notes'),
])
dialect = Dialect(header_rows=[6, 7])
res = Resource(path={name!r}, basepath={folder!r}, schema=schema, dialect=dialect,
                    control=formats.ExcelControl(sheet='Danh sách', fill_merged_cells=True))
report = res.validate(limit_errors=10**9)
assert report.tasks[0].stats['errors'] == 0 or report.tasks[0].errors[0].type != 'resource-error', report.tasks[0].errors[0].message
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--wrong", type=int, default=1_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        reference_dir = make_reference(Path(folder) / "reference", args.rows)
        config = Path(folder) / "intake.toml"
        config.write_text(f'[paths]\nreference_dir = "{reference_dir}"\n', encoding="utf-8")
        clean = Path(folder) / "ds.xlsx"
        marked = Path(folder) / "ds_wrong.xlsx"
        make_form(clean, reference_dir, args.rows, 0)
        make_form(marked, reference_dir, args.rows, args.wrong)
        out = Path(folder) / "annotated"
        results = {
            "intake check": measure(INTAKE.format(path=str(clean), annotate="",
                                                  config=str(config)), INTAKE_SETUP),
            "frictionless validate": measure(FRICTIONLESS.format(name=clean.name,
                                                               folder=str(clean.parent)),
                                            FRICTIONLESS_SETUP),
            f"intake check --annotate ({args.wrong} wrong cells)": measure(INTAKE.format(
                path=str(marked), annotate=f", '--annotate', {str(out)!r}",
                config=str(config)), INTAKE_SETUP),
            "openpyxl load + save (the annotate baseline)": measure(
                f"book = load_workbook({str(marked)!r})\nbook.save({str(out / 'x.xlsx')!r})",
                "from openpyxl import load_workbook"),
        }
    print(f"{args.rows:,} rows in the official layout; each line is a fresh process "
          "(imports not timed)")
    print(f"{'tool':<48} {'seconds':>8} {'peak MB':>8}")
    for name, r in results.items():
        if "error" in r:
            print(f"{name:<48} {'n/a':>8} {'':>8}  ({r['error']})")
        else:
            print(f"{name:<48} {r['seconds']:>8.2f} {r['peak_mb']:>8.0f}")
    a, b = results["intake check"], results["frictionless validate"]
    if "seconds" in a and "seconds" in b:
        print(f"frictionless / intake time ratio: {b['seconds'] / a['seconds']:.1f}×")


if __name__ == "__main__":
    main()
