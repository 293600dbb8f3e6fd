"""Untrusted workbooks cannot take intake down (issue 10, item 9).

A 1.5 KB .xlsx with values at A1 and XFD1048576 makes calamine ask for 550 GB and the
Rust runtime abort the process. It is refused from its XML before calamine builds a
grid; whatever still kills a reader does so in a memory-limited child process and
becomes a finding. Anything that could abort the process under test runs in a
subprocess, so a regression fails one test instead of ending the run.
"""

from __future__ import annotations

import ctypes
import io
import json
import operator
import os
import signal
import subprocess
import sys
import threading
import time
import zipfile
from datetime import datetime
from pathlib import Path

import pytest
import python_calamine as calamine

from intake.config import Limits
from intake.samples import eligible_rows, form, unit_mail
from intake.sheets.extent import _expat_ooxml, oversized
from intake.sheets.read import read_file
from intake.sheets.sandbox import Sandbox, SandboxError

from .conftest import mail_settings, poll

ROOT = Path(__file__).resolve().parent.parent
CORPUS = Path(__file__).parent / "corpus" / "sheets"
MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
RELS = "http://schemas.openxmlformats.org/package/2006/relationships"
DOC_RELS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
A1 = '<row r="1"><c r="A1"><v>1</v></c></row>'


def xlsx(sheet_data: str) -> bytes:
    """The smallest workbook calamine opens, one sheet holding ``sheet_data`` verbatim."""
    parts = {
        "[Content_Types].xml": (
            '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.'
            'openxmlformats.org/package/2006/content-types"><Default Extension="rels" '
            'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/><Override '
            'PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-'
            'officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/'
            'worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-'
            'officedocument.spreadsheetml.worksheet+xml"/></Types>'),
        "_rels/.rels": (
            f'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="{RELS}">'
            f'<Relationship Id="rId1" Type="{DOC_RELS}/officeDocument" '
            'Target="xl/workbook.xml"/></Relationships>'),
        "xl/workbook.xml": (
            f'<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="{MAIN}" '
            f'xmlns:r="{DOC_RELS}"><sheets><sheet name="Danh sách" sheetId="1" '
            'r:id="rId1"/></sheets></workbook>'),
        "xl/_rels/workbook.xml.rels": (
            f'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="{RELS}">'
            f'<Relationship Id="rId1" Type="{DOC_RELS}/worksheet" '
            'Target="worksheets/sheet1.xml"/></Relationships>'),
        "xl/worksheets/sheet1.xml": (
            f'<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="{MAIN}">'
            f'<sheetData>{sheet_data}</sheetData></worksheet>'),
    }
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in parts.items():
            archive.writestr(name, text)
    return out.getvalue()


def ods(table: str) -> bytes:
    """The smallest .ods calamine opens, one table holding ``table`` (rows) verbatim."""
    office = "urn:oasis:names:tc:opendocument:xmlns"
    content = (
        f'<?xml version="1.0" encoding="UTF-8"?><office:document-content '
        f'xmlns:office="{office}:office:1.0" xmlns:table="{office}:table:1.0" '
        f'xmlns:text="{office}:text:1.0" office:version="1.2"><office:body>'
        f'<office:spreadsheet><table:table table:name="Danh sách">{table}</table:table>'
        '</office:spreadsheet></office:body></office:document-content>')
    manifest = (
        f'<?xml version="1.0" encoding="UTF-8"?><manifest:manifest xmlns:manifest='
        f'"{office}:manifest:1.0" manifest:version="1.2"><manifest:file-entry '
        'manifest:full-path="/" manifest:media-type="application/vnd.oasis.opendocument.'
        'spreadsheet"/></manifest:manifest>')
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet")
        archive.writestr("META-INF/manifest.xml", manifest, zipfile.ZIP_DEFLATED)
        archive.writestr("content.xml", content, zipfile.ZIP_DEFLATED)
    return out.getvalue()


GIANT = xlsx(A1 + '<row r="1048576"><c r="XFD1048576"><v>2</v></c></row>')

# The same giant spelled the ways calamine accepts; each takes the XML parser's path.
GIANT_SPELLINGS = {
    "cell without r": A1 + '<row r="1048576"><c><v>2</v></c></row>',
    "after XFD5": A1 + '<row r="5"><c r="XFC5"><v>1</v></c></row>'
                       '<row r="1048576"><c><v>2</v></c></row>',
    "lower case": A1 + '<row r="1048576"><c r="xfd1048576"><v>2</v></c></row>',
    "prefixed": A1 + f'<row r="1048576"><x:c xmlns:x="{MAIN}" r="XFD1048576">'
                     '<x:v>2</x:v></x:c></row>',
    "spaced =": A1 + '<row r="1048576"><c r = "XFD1048576"><v>2</v></c></row>',
    "single quotes": A1 + "<row r='1048576'><c r='XFD1048576'><v>2</v></c></row>",
    "r last": A1 + '<row r="1048576"><c t="n" s="0" r="XFD1048576"><v>2</v></c></row>',
    "empty inline string": A1 + '<row r="1048576"><c r="XFD1048576" t="inlineStr">'
                                '<is/></c></row>',
    "styled cells, then a value": A1 + '<row r="2">' + "".join(
        f'<c r="{col}2" s="1"/>' for col in ("B", "C", "D")) + '</row>'
        '<row r="1048576"><c r="XFD1048576" s="1"/><c r="A1048576"><v>1</v></c></row>',
    "wide, within the rows": A1 + '<row r="50000"><c r="XFD50000"><v>2</v></c></row>',
}


def read_elsewhere(tmp_path: Path, files: dict[str, bytes], **limits: object) -> list[dict]:
    """``read_file`` each file, in order, in one fresh interpreter; what each gave.

    A reader that aborts kills that interpreter, not pytest: ``returncode`` says so.
    """
    folder = tmp_path / "in"
    folder.mkdir(exist_ok=True)
    for index, (name, data) in enumerate(files.items()):
        (folder / f"{index:02d}-{name}").write_bytes(data)
    script = f"""
import json, sys, time
from pathlib import Path
from intake.config import Limits
from intake.sheets import sandbox
from intake.sheets.read import read_file
limits = Limits(**{limits!r})
for path in sorted(Path({str(folder)!r}).iterdir()):
    start = time.perf_counter()
    [result] = read_file(path.name.split("-", 1)[1], path.read_bytes(), limits)
    print(json.dumps({{
        "file": result.file, "codes": [f.code for f in result.findings],
        "messages": [f.message for f in result.findings],
        "suggestions": [f.suggestion for f in result.findings],
        "rows": sum(len(t.rows) for t in result.tables),
        "seconds": time.perf_counter() - start,
        "workers": sandbox.default().started}}), flush=True)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert done.returncode == 0, f"reading killed the process ({done.returncode}): " + \
        done.stderr[-2000:]
    return [json.loads(line) for line in done.stdout.splitlines()]


@pytest.mark.parametrize("isolate", [True, False])
def test_sparse_giant_is_refused_quickly_and_the_process_lives(tmp_path, isolate):
    assert len(GIANT) < 2048
    [giant] = read_elsewhere(tmp_path, {"giant.xlsx": GIANT}, isolate_readers=isolate)
    assert giant["codes"] == ["FILE_TOO_LARGE"]
    message = giant["messages"][0]
    assert "“Danh sách”" in message and "XFD1048576" in message
    assert "dòng 1.048.576" in message and "cột XFD" in message
    assert "50.000 dòng × 200 cột" in message
    assert "xóa các ô" in giant["suggestions"][0]
    assert giant["seconds"] < 2  # refused from the XML, not after a failed allocation
    if isolate:
        assert giant["workers"] == 1  # no reader died on the way


def test_every_spelling_of_a_giant_is_refused_before_calamine(tmp_path):
    # In-process (isolate_readers=false): were the XML scan to miss one, calamine would
    # abort the interpreter and read_elsewhere would fail.
    files = {f"{name}.xlsx": xlsx(data) for name, data in GIANT_SPELLINGS.items()}
    files["ods giant.ods"] = ods(
        '<table:table-row><table:table-cell office:value-type="float" office:value="1">'
        '<text:p>1</text:p></table:table-cell></table:table-row>'
        '<table:table-row table:number-rows-repeated="1048574"><table:table-cell/>'
        '</table:table-row><table:table-row><table:table-cell '
        'table:number-columns-repeated="16383"/><table:table-cell><text:p>x</text:p>'
        '</table:table-cell></table:table-row>')
    results = read_elsewhere(tmp_path, files, isolate_readers=False)
    assert [r["file"] for r in results] == list(files)
    for result in results:
        assert result["codes"] == ["FILE_TOO_LARGE"], result
        assert "vượt quá 50.000 dòng × 200 cột" in result["messages"][0], result


def test_reader_killed_in_the_child_is_a_finding_and_the_next_file_reads(tmp_path, settings,
                                                                        reference):
    # Limits wide enough for the scan to let the giant through: calamine really tries
    # to allocate 550 GB, and the Rust runtime aborts the worker.
    unit = reference.units["CT"]
    good = form(settings, reference, unit, eligible_rows(settings, reference, unit, limit=3))
    giant, after = read_elsewhere(tmp_path, {"giant.xlsx": GIANT, "ds.xlsx": good},
                                  max_rows=2_000_000, max_columns=20_000)
    assert giant["codes"] == ["FILE_TOO_LARGE"]
    assert "1.024 MB bộ nhớ" in giant["messages"][0]
    assert after["codes"] == [] and after["rows"] > 3
    assert after["workers"] == 2  # the dead worker was replaced


@pytest.mark.dovecot
def test_giant_attachment_is_answered_and_the_cycle_goes_on(tmp_path, dovecot, smtp_sink,
                                                           reference):
    # The issue: this message aborted `intake run` at every poll, and no mail after it
    # was ever filed.
    user = dovecot.add_user()
    settings = mail_settings(tmp_path, dovecot, user, smtp_sink.port)
    unit = reference.units["CT"]
    good = form(settings, reference, unit, eligible_rows(settings, reference, unit))
    for minute, subject, data in ((0, "DS CĐKM Châu Thành", GIANT),
                                  (5, "DS CĐKM Châu Thành (gửi lại)", good)):
        dovecot.deliver(user, unit_mail(unit.emails[0], user, subject,
                                        attachments=[("DS_ChauThanh.xlsx", data)]),
                        when=datetime(2021, 2, 10, 9, minute).astimezone())

    result = poll(settings)

    assert result.fetched == 2
    assert result.statuses == {"needs-correction": 1, "accepted": 1}
    [correction] = [m for m in smtp_sink.messages
                    if m["X-Intake-Status"] == "needs-correction"]
    assert "XFD1048576" in correction.get_body(("plain",)).get_content()


def test_reader_over_its_time_is_refused_and_the_next_file_reads(settings, reference):
    unit = reference.units["CT"]
    rows = eligible_rows(settings, reference, unit)
    big = form(settings, reference, unit, rows * (3000 // len(rows) + 1))
    start = time.perf_counter()
    [slow] = read_file("ds.xlsx", big, Limits(max_reader_seconds=0.005))
    assert time.perf_counter() - start < 5
    assert [f.code for f in slow.findings] == ["FILE_TOO_LARGE"]
    assert "0.005 giây" in slow.findings[0].message
    [again] = read_file("ds.xlsx", big, Limits())
    assert again.findings == [] and len(again.tables[0].rows) > 3000


def test_legitimate_wide_or_styled_sheets_still_read():
    declared = (CORPUS / "calamine" / "issue_174.xlsx").read_bytes()
    assert oversized(declared, 50_000, 200) is None  # styled to XFD1048576, values in K2
    for name, data in {
        "styled far": xlsx(A1 + '<row r="1048576"><c r="XFD1048576" s="1"/></row>'),
        "formula without a value far": xlsx(
            A1 + '<row r="1048576"><c r="XFD1048576"><f>1+1</f></c></row>'),
        "one stray note in column XFD": xlsx(A1 + '<row r="5"><c r="XFD5"><v>2</v></c></row>'),
    }.items():
        [result] = read_file(f"{name}.xlsx", data, Limits())
        assert result.findings == [] and result.tables[0].rows[0][0] == 1, name


@pytest.mark.parametrize("sheet_data", [
    '<row r="3"><c r="C3"><v>1</v></c><c><v>2</v></c></row><row><c><v>3</v></c></row>',
    '<row><c r="E2"><v>1</v></c></row><row><c><v>2</v></c><c><v>3</v></c></row>',
    '<row r="9"><c t="n" r="AB9"><v>0</v></c></row><row r="2"><c r="b2"><v>1</v></c></row>',
    '<row r="4"><c r="D4" t="inlineStr"><is><t>x</t></is></c><c r="Z7" s="2"/></row>',
    '<row r="1"><c r="A1"><f>1</f></c><c r="C1"><v>5</v></c></row>',
])
def test_xml_scan_places_cells_where_calamine_does(sheet_data):
    data = xlsx(sheet_data)
    book = calamine.CalamineWorkbook.from_filelike(io.BytesIO(data))
    sheet = book.get_sheet_by_index(0)
    part = zipfile.ZipFile(io.BytesIO(data)).read("xl/worksheets/sheet1.xml")
    extent = _expat_ooxml(part, "", 1000, 1000)
    assert extent is not None
    assert ((extent.first_row, extent.first_col), (extent.last_row, extent.last_col)) == (
        tuple(sheet.start), tuple(sheet.end))


@pytest.fixture
def box():
    sandbox = Sandbox()
    yield sandbox
    sandbox.close()


def test_sandbox_abort_segfault_and_memory_become_outcomes_and_it_recovers(box):
    died = box.call(os.abort, memory_mb=256, seconds=30)
    assert (died.failure, died.detail) == ("memory", "reader killed by SIGABRT")
    crashed = box.call(ctypes.string_at, 0, memory_mb=256, seconds=30)
    assert (crashed.failure, crashed.detail) == ("crashed", "reader killed by SIGSEGV")
    hog = box.call(bytearray, 4 * 1024**3, memory_mb=256, seconds=30)
    assert hog.failure == "memory"  # RLIMIT_AS: 4 GiB is far over the 256 MB budget
    fine = box.call(operator.add, 2, 3, memory_mb=256, seconds=30)
    assert fine.ok and fine.value == 5
    assert box.started == 4


def test_sandbox_timeout_kills_the_worker_and_errors_keep_it(box):
    start = time.perf_counter()
    stuck = box.call(time.sleep, 60, memory_mb=256, seconds=0.5)
    assert stuck.failure == "timeout" and time.perf_counter() - start < 5
    wrong = box.call(int, "x", memory_mb=256, seconds=30)
    assert wrong.failure == "error" and "ValueError" in wrong.detail
    assert box.call(operator.mul, 6, 7, memory_mb=256, seconds=30).value == 42
    assert box.started == 2  # replaced after the timeout, kept after the exception


def test_sandbox_worker_sees_no_secrets_and_serves_threads_in_turn(box, monkeypatch):
    monkeypatch.setenv("INTAKE_IMAP_PASSWORD", "app password")
    assert box.call(os.getenv, "INTAKE_IMAP_PASSWORD", memory_mb=256, seconds=30).value is None
    results: list[object] = []
    threads = [threading.Thread(target=lambda n=n: results.append(
        box.call(operator.add, n, 1, memory_mb=256, seconds=30).value)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == list(range(1, 9))  # type: ignore[type-var]
    assert box.started == 1


def test_a_worker_that_cannot_start_is_the_operators_error_not_a_finding(box, monkeypatch):
    monkeypatch.setattr(sys, "executable", "/bin/false")
    with pytest.raises(SandboxError, match="did not start") as raised:
        box.call(operator.add, 1, 2, memory_mb=256, seconds=30)
    assert raised.value.hint  # the CLI prints it under the one-line error


def test_worker_runs_this_intake_whatever_the_working_directory(box, tmp_path, monkeypatch):
    impostor = tmp_path / "intake"
    impostor.mkdir()
    (impostor / "__init__.py").write_text("raise ImportError('another intake')\n")
    monkeypatch.chdir(tmp_path)
    assert box.call(operator.add, 1, 2, memory_mb=256, seconds=30).value == 3


def test_worker_finishes_its_read_when_the_service_is_stopped(box):
    # systemd sends SIGTERM to every process of the unit; intake finishes its running
    # step, so the read under way must not die with a wrong "unreadable" for its sender.
    assert box.call(operator.add, 0, 0, memory_mb=256, seconds=30).ok
    pid = box.pid
    assert pid is not None
    timer = threading.Timer(0.3, os.kill, (pid, signal.SIGTERM))
    timer.start()
    slow = box.call(time.sleep, 1, memory_mb=256, seconds=30)
    timer.join()
    assert slow.ok and box.pid == pid


def test_request_over_the_memory_budget_is_refused_and_the_pipe_stays_in_step(box):
    refused = box.call(len, bytes(100 * 1024 * 1024), memory_mb=64, seconds=30)
    assert refused.failure == "memory"
    assert box.call(len, bytes(1000), memory_mb=64, seconds=30).value == 1000
