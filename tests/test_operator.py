"""What the operator sees: which configuration is used, the status screen, the next steps
after ``intake init``, and hints when the mailbox refuses (issue 14)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from intake.cli import main
from intake.config import TZ, Mailbox, find_config, load_settings
from intake.errors import ConfigError, MailboxError
from intake.mail.imap import login_hint
from intake.samples import eligible_rows, form, unit_mail

from .conftest import REFERENCE, TEMPLATES, file_offline, mail_settings, poll


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def deployment(tmp_path: Path, capsys) -> Path:
    """``intake init`` into tmp_path/dep, with the repo's reference lists and templates."""
    target = tmp_path / "dep"
    assert run(capsys, "init", str(target))[0] == 0
    config = target / "config" / "intake.toml"
    text = config.read_text(encoding="utf-8").replace(
        'reference_dir = "reference"', f'reference_dir = "{REFERENCE}"').replace(
        'templates_dir = "../templates"', f'templates_dir = "{TEMPLATES}"').replace(
        "require_sender_auth = true", "require_sender_auth = false")
    config.write_text(text, encoding="utf-8")
    return config


def test_init_prints_the_next_steps(tmp_path: Path, capsys):
    code, out, _ = run(capsys, "init", str(tmp_path / "dep"))
    assert code == 0
    config = (tmp_path / "dep" / "config" / "intake.toml").resolve()
    assert f"Edit {config}" in out
    for step in ("[board]", "[campaign]", "[rules] staff", "config/reference",
                 "INTAKE_IMAP_PASSWORD", "INTAKE_SMTP__DRY_RUN=true intake poll",
                 "intake status", "Running as a service"):
        assert step in out, step


def test_configuration_is_found_from_the_deployment_folder_or_refused(tmp_path: Path, capsys,
                                                                      monkeypatch):
    config = deployment(tmp_path, capsys)
    below = config.parent.parent / "bao-cao" / "2021"  # any folder inside the deployment
    below.mkdir(parents=True)
    assert find_config(None, {}, below) == config
    assert find_config(None, {"INTAKE_CONFIG": "/elsewhere.toml"}, below) == Path(
        "/elsewhere.toml")
    assert find_config(tmp_path / "x.toml", {"INTAKE_CONFIG": "/e.toml"}, below) == \
        tmp_path / "x.toml"
    outside = tmp_path / "outside"
    outside.mkdir()
    with pytest.raises(ConfigError) as refused:
        find_config(None, {}, outside)
    assert "no configuration found" in str(refused.value) and "--config" in refused.value.hint
    # Run from outside the deployment, status refuses rather than using another one …
    monkeypatch.delenv("INTAKE_CONFIG", raising=False)
    monkeypatch.chdir(outside)
    code, out, err = run(capsys, "status")
    assert code == 2 and out == "" and "no configuration found" in err
    # … and from inside it, says which configuration it used.
    monkeypatch.chdir(below)
    code, out, _ = run(capsys, "status")
    assert code == 0 and out.splitlines()[0] == f"Cấu hình: {config.resolve()}"


def test_status_speaks_vietnamese_with_local_times(tmp_path: Path, capsys, reference):
    config = deployment(tmp_path, capsys)
    settings = load_settings(config, environ={})
    unit = reference.units["CT"]
    received = datetime(2021, 2, 10, 9, 5, tzinfo=TZ)
    file_offline(settings, [(unit_mail(unit.emails[0], "ban@example.org", "DS", attachments=[
        ("ds.xlsx", form(settings, reference, unit, eligible_rows(settings, reference,
                                                                  unit)))]), received)])
    code, out, _ = run(capsys, "--config", str(config), "status")
    assert code == 0
    [row] = [line for line in out.splitlines() if "Châu Thành" in line]
    assert "Đã tiếp nhận" in row and "10/02/2021 09:05" in row
    assert "accepted" not in out and "{" not in out and "+00:00" not in out
    assert "Lần quét hộp thư thành công gần nhất: chưa có" in out
    assert "Hộp thư đi: 1 chờ gửi" in out


def test_a_refused_gmail_login_points_at_the_app_password():
    gmail = Mailbox()  # the defaults: imap.gmail.com
    hint = login_hint(gmail)
    assert "app password" in hint and "2-Step Verification" in hint
    assert "$INTAKE_IMAP_PASSWORD" in hint
    other = Mailbox(host="mail.example.org")
    assert "app password" not in login_hint(other)


@pytest.mark.dovecot
def test_refused_login_and_untrusted_certificate_say_what_to_check(tmp_path: Path, dovecot,
                                                                  smtp_sink):
    user = dovecot.add_user()
    settings = mail_settings(tmp_path, dovecot, user, smtp_sink.port)
    with pytest.raises(MailboxError, match="login refused") as refused:
        poll(settings, password="wrong")
    assert "[mailbox] username" in refused.value.hint
    untrusted = mail_settings(tmp_path / "tls", dovecot, user, smtp_sink.port, security="ssl",
                              mailbox={"ca_file": None})
    with pytest.raises(MailboxError, match="not trusted") as bad_certificate:
        poll(untrusted)
    assert "[mailbox] ca_file" in bad_certificate.value.hint
