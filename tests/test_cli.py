"""The command line contract (SPEC §8): commands, options, exit statuses, JSON shape."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from openpyxl import load_workbook

from intake.cli import main, parser
from intake.samples import eligible_rows, form
from intake.sheets.template import FIRST_DATA_ROW, HEADER_ROW

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "config" / "intake.toml"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """The sample config, with the data folder moved into the test's temp dir."""
    text = CONFIG.read_text(encoding="utf-8")
    text = text.replace('reference_dir = "reference"', f'reference_dir = "{ROOT}/config/reference"')
    text = text.replace('templates_dir = "../templates"', f'templates_dir = "{ROOT}/templates"')
    text = text.replace('"../data', f'"{tmp_path}/data')  # the store and the workbook
    path = tmp_path / "intake.toml"
    path.write_text(text, encoding="utf-8")
    return path


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def write_form(tmp_path: Path, settings, reference, edit=None, name="ds.xlsx") -> Path:
    unit = reference.units["CT"]
    rows = eligible_rows(settings, reference, unit)
    if edit:
        edit(rows)
    path = tmp_path / name
    path.write_bytes(form(settings, reference, unit, rows))
    return path


def test_every_command_has_help_with_an_example():
    sub = next(a for a in parser()._actions if a.dest == "command")
    assert set(sub.choices) == {"demo", "run", "poll", "check", "template", "status", "rebuild",
                                "init", "resend", "review", "release", "reject", "assign",
                                "recheck", "accept"}
    for name, command in sub.choices.items():
        assert command.description and "Example:" in command.description, name


def test_check_valid_file_exits_0(capsys, config, tmp_path, settings, reference):
    path = write_form(tmp_path, settings, reference)
    code, out, _ = run(capsys, "--config", str(config), "check", str(path), "--unit", "CT")
    assert code == 0
    assert "Không có lỗi" in out


def test_check_errors_exit_1_with_json_contract(capsys, config, tmp_path, settings, reference):
    def edit(rows):
        rows[0][3] = None
    path = write_form(tmp_path, settings, reference, edit)
    code, out, _ = run(capsys, "--config", str(config), "check", str(path), "--format", "json")
    assert code == 1
    data = json.loads(out)
    [file] = data["files"]
    assert file["file"] == "ds.xlsx"
    assert file["rows"] == len(eligible_rows(settings, reference, reference.units["CT"]))
    assert file["valid_rows"] == file["rows"] - 1
    # The emptied row is in an NTM commune, so that commune is no longer fully covered.
    assert [f["code"] for f in file["findings"]] == ["ROW_REQUIRED", "COVERAGE_INCOMPLETE"]
    finding = file["findings"][0]
    assert set(finding) == {"code", "level", "sheet", "row", "column", "field", "value",
                            "message", "suggestion"}
    assert (finding["code"], finding["level"], finding["row"], finding["column"]) == \
        ("ROW_REQUIRED", "error", FIRST_DATA_ROW, "D")


def test_check_unusable_arguments_exit_2(capsys, config, tmp_path):
    code, _, err = run(capsys, "--config", str(config), "check", str(tmp_path / "missing.xlsx"))
    assert code == 2 and "file not found" in err
    code, _, err = run(capsys, "--config", str(config), "check", str(CONFIG), "--unit", "XYZ")
    assert code == 2 and "unknown unit" in err
    with pytest.raises(SystemExit) as exit_info:
        main(["--config", str(config), "check"])
    assert exit_info.value.code == 2


def test_bad_config_is_one_line_and_exit_2(capsys, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[rules]\nmin_members_district = -1\n")
    code, _, err = run(capsys, "--config", str(bad), "status")
    assert code == 2
    assert err.count("\n") == 1 and "invalid key 'rules.min_members_district'" in err


def test_annotate_marks_wrong_cells_red_with_a_comment(capsys, config, tmp_path, settings,
                                                       reference):
    def edit(rows):
        rows[1][3] = "nhiều"
    path = write_form(tmp_path, settings, reference, edit)
    out_dir = tmp_path / "marked"
    code, _, _ = run(capsys, "--config", str(config), "check", str(path), "--unit", "CT",
                     "--annotate", str(out_dir))
    assert code == 1
    book = load_workbook(out_dir / "ds_can-sua.xlsx")
    cell = book["Danh sách"][f"D{FIRST_DATA_ROW + 1}"]
    assert cell.fill.fgColor.rgb.endswith("FF9999")
    assert "“nhiều”" in cell.comment.text and "ROW_" not in cell.comment.text
    assert cell.value == "nhiều"  # the sender's value is kept


def test_template_is_the_official_form(capsys, config, tmp_path):
    out = tmp_path / "mau.xlsx"
    code, _, _ = run(capsys, "--config", str(config), "template", "--unit", "CT", "-o", str(out))
    assert code == 0
    book = load_workbook(out)
    assert book.sheetnames[:2] == ["Danh sách", "Hướng dẫn"]
    sheet = book["Danh sách"]
    assert sheet[f"A{HEADER_ROW}"].value == "STT"
    assert sheet[f"E{HEADER_ROW}"].value == "Chi bộ ấp, khu phố"
    assert sheet[f"G{HEADER_ROW + 1}"].value == "Đăng ký TSVMTD năm 2021"
    assert sheet["A4"].value == "DANH SÁCH ĐĂNG KÝ XÂY DỰNG CHI ĐOÀN KIỂU MẪU NĂM 2021"
    assert f"E{HEADER_ROW}:G{HEADER_ROW}" in {str(r) for r in sheet.merged_cells.ranges}
    validations = [v.sqref for v in sheet.data_validations.dataValidation]
    assert any(f"B{FIRST_DATA_ROW}" in str(v) for v in validations)
    assert sheet.page_setup.orientation == "landscape"
    # A blank form read back: header found, no rows yet.
    code, out_json, _ = run(capsys, "--config", str(config), "check", str(out), "--unit", "CT",
                            "--format", "json")
    codes = [f["code"] for f in json.loads(out_json)["files"][0]["findings"]]
    assert codes == ["SHEET_NO_ROWS"]


def test_status_and_rebuild_on_an_empty_store(capsys, config):
    code, out, _ = run(capsys, "--config", str(config), "status")
    assert code == 0
    assert out.count("Chưa gửi") == 9
    code, out, _ = run(capsys, "--config", str(config), "rebuild")
    assert code == 0
    book = load_workbook(out.strip())
    assert book.sheetnames == ["Tổng hợp", "Danh sách", "Lỗi", "Độ phủ NTM-ĐTVM", "Nhật ký"]


def test_init_writes_a_deployment(capsys, tmp_path):
    target = tmp_path / "deploy"
    code, _, _ = run(capsys, "init", str(target))
    assert code == 0
    assert (target / "config" / "intake.toml").is_file()
    assert (target / "config" / "reference" / "party_cells.csv").is_file()
    assert (target / "templates" / "accepted.html.j2").is_file()
    code, _, err = run(capsys, "init", str(target))
    assert code == 2 and "already exists" in err


def test_console_script_and_module_entry_points(config, tmp_path, settings, reference):
    path = write_form(tmp_path, settings, reference)
    script = Path(sys.executable).parent / "intake"
    for command in ([str(script)], [sys.executable, "-m", "intake"]):
        done = subprocess.run([*command, "--config", str(config), "check", str(path)],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr


def test_resend_requeues_failed_replies_and_status_shows_the_outbox(capsys, config, tmp_path,
                                                                   monkeypatch):
    from intake.config import load_settings
    from intake.mail import smtp
    from intake.store import open_store

    from .conftest import reply

    monkeypatch.setenv("INTAKE_PATHS__DATA_DIR", str(tmp_path / "data"))
    settings = load_settings(config)
    store = open_store(settings.paths.data_dir)
    ids = [smtp.queue(store, None, "accepted", reply(settings, to=f"hd{n}@example.org"))
           for n in range(3)]
    store.db.execute("UPDATE outbox SET state='failed', attempts=9, last_error=?"
                     " WHERE id IN (?, ?)", ("550 5.2.2 mailbox full", ids[0], ids[1]))
    store.db.execute("UPDATE outbox SET last_error='451 4.3.0 try later', attempts=2,"
                     " last_attempt_at=created_at WHERE id=?", (ids[2],))
    store.close()

    code, out, _ = run(capsys, "--config", str(config), "status")
    assert code == 0
    assert "Hộp thư đi: 1 chờ gửi, 2 gửi lỗi." in out
    assert "Thư chờ gửi lâu nhất: từ " in out and "lần gửi tiếp theo: " in out
    assert f"Lỗi gần nhất (thư số {ids[2]}, thư tiếp nhận → hd2@example.org" in out
    assert (f"Gửi lỗi (thư số {ids[0]}) thư tiếp nhận → hd0@example.org: 550 5.2.2 mailbox full"
            in out)
    assert "intake resend --id" in out

    code, out, _ = run(capsys, "--config", str(config), "resend", "--id", str(ids[0]))
    assert code == 0 and f"số {ids[0]}" in out
    code, _, err = run(capsys, "--config", str(config), "resend", "--id", "999")
    assert code == 2 and "reply 999: no such reply" in err
    code, out, _ = run(capsys, "--config", str(config), "resend", "--all-failed")
    assert code == 0 and f"số {ids[1]}" in out
    code, out, _ = run(capsys, "--config", str(config), "resend", "--all-failed")
    assert code == 0 and "Không có thư gửi lỗi nào" in out

    store = open_store(settings.paths.data_dir)
    assert [tuple(r) for r in store.query("SELECT state, attempts, last_error FROM outbox"
                                          " WHERE id IN (?, ?)", tuple(ids[:2]))] == \
        [("queued", 0, ""), ("queued", 0, "")]
    store.db.execute("UPDATE outbox SET state='sent' WHERE id=?", (ids[0],))
    store.close()
    code, _, err = run(capsys, "--config", str(config), "resend", "--id", str(ids[0]))
    assert code == 2 and "it is sent, not failed" in err


def test_an_unwritable_output_path_is_one_line_and_exit_2(capsys, config, tmp_path):
    (tmp_path / "taken").write_text("a file, not a folder")
    code, _out, err = run(capsys, "--config", str(config), "template", "-o",
                         str(tmp_path / "taken" / "mau.xlsx"))
    assert code == 2
    assert err == (f"error: {tmp_path / 'taken'}: File exists "
                   "(hint: check the path and its permissions)\n")


def test_a_demo_server_that_will_not_start_is_one_line(monkeypatch):
    import socket

    import intake.demo as demo

    busy = socket.create_server(("127.0.0.1", 0))  # another program holds the port
    monkeypatch.setattr(demo, "free_port", lambda: busy.getsockname()[1])
    try:
        with pytest.raises(demo.DemoError) as error:
            demo.start_pymap("demo@example.org", "secret", timeout=10)
    finally:
        busy.close()
    assert "\n" not in str(error.value) and "pymap" in str(error.value)


def test_the_installed_wheel_runs_init_template_and_check(tmp_path):
    """Issue 11: the wheel shipped only py.typed, so `intake init` crashed outside the
    checkout. Build the wheel, install it on its own (its dependencies come from this
    environment), and use it from a folder that has nothing of the checkout."""
    root = Path(__file__).resolve().parent.parent
    dist, site, work = tmp_path / "dist", tmp_path / "site", tmp_path / "elsewhere"
    work.mkdir()
    # Built from a copy: setuptools writes build/ and *.egg-info beside the sources, and a
    # test writes nothing into the checkout. The links in intake/defaults stay links.
    source = tmp_path / "source"
    for name in ("pyproject.toml", "README.md"):
        source.mkdir(exist_ok=True)
        shutil.copy(root / name, source / name)
    for name in ("intake", "templates", "config"):
        shutil.copytree(root / name, source / name, symlinks=True,
                        ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist),
                    str(source)], check=True, capture_output=True, timeout=300, cwd=tmp_path)
    [wheel] = dist.glob("intake-*.whl")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
                    str(site), str(wheel)], check=True, capture_output=True, timeout=300)
    prelude = f"import sys; sys.path.insert(0, {str(site)!r}); "

    def python(code: str, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-I", "-c", prelude + code, *args], cwd=work,
                              capture_output=True, text=True, timeout=120)

    def intake(*args: str) -> subprocess.CompletedProcess:
        return python("from intake.cli import main; sys.exit(main(sys.argv[1:]))", *args)

    found = python("import intake; print(intake.__file__)")
    assert found.stdout.startswith(str(site)), found.stdout + found.stderr  # the wheel's
    init = intake("init", "deploy")
    assert init.returncode == 0, init.stderr
    config = work / "deploy" / "config" / "intake.toml"
    assert (work / "deploy" / "templates" / "accepted.html.j2").is_file()
    form = intake("--config", str(config), "template", "--unit", "CT", "-o", "mau.xlsx")
    assert form.returncode == 0, form.stderr
    check = intake("--config", str(config), "check", "mau.xlsx", "--unit", "CT")
    assert check.returncode == 1, check.stderr  # the blank form: no rows yet
    assert "SHEET_NO_ROWS" in check.stdout or "chưa có Chi đoàn" in check.stdout


def test_a_failed_reply_is_rendered_again_with_todays_templates(capsys, tmp_path, reference,
                                                                monkeypatch):
    """A reply keeps what it says: after a template fix, `intake resend --id N --rebuild`
    renders it again (same unit, same errors, same marked-up file) with a new Message-ID."""
    import shutil
    from datetime import datetime
    from email import message_from_bytes, policy

    from intake.config import load_settings
    from intake.replies import Reply
    from intake.samples import unit_mail
    from intake.store import open_store

    from .conftest import file_offline

    templates = tmp_path / "templates"
    shutil.copytree(ROOT / "templates", templates)
    text = CONFIG.read_text(encoding="utf-8")
    text = text.replace('reference_dir = "reference"', f'reference_dir = "{ROOT}/config/reference"')
    text = text.replace('templates_dir = "../templates"', f'templates_dir = "{templates}"')
    text = text.replace('"../data', f'"{tmp_path}/data')
    config = tmp_path / "intake.toml"
    config.write_text(text, encoding="utf-8")
    monkeypatch.setenv("INTAKE_PATHS__DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("INTAKE_RULES__REQUIRE_SENDER_AUTH", "false")
    settings = load_settings(config)
    unit = reference.units["CT"]
    rows = eligible_rows(settings, reference, unit)
    rows[0][5] = "3"  # not a party cell status: one error in cell F of the first data row
    message = unit_mail(unit.emails[0], settings.mailbox.username, "Danh sách CĐKM",
                        attachments=[("ds.xlsx", form(settings, reference, unit, rows))])
    file_offline(settings, [(message, datetime(2021, 2, 1, 8, 0).astimezone())])

    store = open_store(settings.paths.data_dir)
    [row] = store.query("SELECT * FROM outbox WHERE kind='needs-correction'")
    said = Reply.from_json(row["content"])
    assert (said.unit_name, said.to, said.status) == (unit.name, unit.emails[0],
                                                      "needs-correction")
    # The row is wrong, and its hamlet (of an NTM commune) is therefore not registered.
    assert [(line.code, line.cell) for line in said.errors] == [
        ("ROW_STATUS_INVALID", f"F{FIRST_DATA_ROW}"), ("COVERAGE_INCOMPLETE", "")]
    first = message_from_bytes(row["raw"], policy=policy.default)
    store.db.execute("UPDATE outbox SET state='failed' WHERE id=?", (row["id"],))
    store.close()

    template = templates / "needs-correction.txt.j2"
    template.write_text(template.read_text(encoding="utf-8").replace(
        "Kính gửi {{ unit_name }},", "Kính gửi {{ unit_name }} (bản sửa mẫu thư),"),
        encoding="utf-8")
    code, _out, err = run(capsys, "--config", str(config), "resend", "--id", str(row["id"]),
                         "--rebuild")
    assert code == 0, err
    store = open_store(settings.paths.data_dir)
    again = store.one("SELECT * FROM outbox WHERE id=?", (row["id"],))
    store.close()
    second = message_from_bytes(again["raw"], policy=policy.default)
    assert again["state"] == "queued" and again["message_id"] != row["message_id"]
    body = second.get_body(("plain",)).get_content()
    assert f"Kính gửi {unit.name} (bản sửa mẫu thư)," in body
    assert f"F{FIRST_DATA_ROW}" in body
    assert second["In-Reply-To"] == first["In-Reply-To"] and second["To"] == first["To"]
    assert [p.get_filename() for p in second.iter_attachments()] == \
        [p.get_filename() for p in first.iter_attachments()] != []
    # Rendered from what it stored, with the same templates, a reply says what it said.
    first_body = first.get_body(("plain",)).get_content()
    assert body.replace(" (bản sửa mẫu thư)", "") == first_body


def test_a_notice_without_stored_content_cannot_be_rebuilt(capsys, config, tmp_path,
                                                           monkeypatch):
    from intake.config import load_settings
    from intake.mail import smtp
    from intake.store import open_store

    from .conftest import reply

    monkeypatch.setenv("INTAKE_PATHS__DATA_DIR", str(tmp_path / "data"))
    settings = load_settings(config)
    store = open_store(settings.paths.data_dir)
    reply_id = smtp.queue(store, None, "accepted", reply(settings))
    store.db.execute("UPDATE outbox SET state='failed' WHERE id=?", (reply_id,))
    store.close()
    code, _, err = run(capsys, "--config", str(config), "resend", "--id", str(reply_id),
                       "--rebuild")
    assert code == 2 and "without --rebuild" in err


def test_all_failed_rebuild_sends_a_notice_again_as_it_was(capsys, config, tmp_path,
                                                           monkeypatch):
    """Found in review: one reply without stored content made `--all-failed --rebuild`
    requeue nothing; it now goes again as it was, and the staff are told which."""
    from intake.config import load_settings
    from intake.mail import smtp
    from intake.store import open_store

    from .conftest import reply

    monkeypatch.setenv("INTAKE_PATHS__DATA_DIR", str(tmp_path / "data"))
    settings = load_settings(config)
    store = open_store(settings.paths.data_dir)
    reply_id = smtp.queue(store, None, "accepted", reply(settings))
    before = store.one("SELECT raw FROM outbox WHERE id=?", (reply_id,))["raw"]
    store.db.execute("UPDATE outbox SET state='failed' WHERE id=?", (reply_id,))
    store.close()
    code, out, err = run(capsys, "--config", str(config), "resend", "--all-failed", "--rebuild")
    assert code == 0, err
    assert f"số {reply_id}" in out and "nguyên như cũ" in out
    store = open_store(settings.paths.data_dir)
    again = store.one("SELECT state, raw FROM outbox WHERE id=?", (reply_id,))
    store.close()
    assert again["state"] == "queued" and again["raw"] == before
