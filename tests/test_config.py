"""Configuration: TOML + environment overrides, one-line errors naming the bad key."""

from __future__ import annotations

from pathlib import Path

import pytest

from intake.config import load_settings
from intake.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "conf" / "intake.toml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_sample_config_loads_with_contract_values():
    settings = load_settings(ROOT / "config" / "intake.toml", environ={})
    assert settings.campaign.year == 2021
    assert settings.campaign.deadline.isoformat() == "2021-02-20T00:00:00+07:00"
    assert settings.mailbox.processed_folder == "Intake/Processed"
    assert settings.smtp.max_replies_per_hour == 5
    assert settings.rules.authserv_id == "mx.google.com"
    assert settings.paths.reference_dir == ROOT / "config" / "reference"
    assert (settings.paths.reference_dir / "units.csv").is_file()
    assert settings.paths.templates_dir == ROOT / "templates"


def test_relative_paths_resolve_against_the_config_folder(tmp_path: Path):
    path = write(tmp_path, '[paths]\ndata_dir = "state"\n')
    settings = load_settings(path, environ={})
    assert settings.paths.data_dir == tmp_path / "conf" / "state"


def test_environment_overrides_any_key(tmp_path: Path):
    path = write(tmp_path, "[mailbox]\nport = 993\n")
    settings = load_settings(path, environ={"INTAKE_MAILBOX__PORT": "1143",
                                            "INTAKE_RULES__TRUSTED_FORWARDERS": "a@x.vn; b@x.vn",
                                            "INTAKE_SMTP__DRY_RUN": "true"})
    assert settings.mailbox.port == 1143
    assert settings.rules.trusted_forwarders == ["a@x.vn", "b@x.vn"]
    assert settings.smtp.dry_run is True


def test_bad_key_is_named_in_one_line(tmp_path: Path):
    path = write(tmp_path, '[mailbox]\nsecurity = "tls"\n')
    with pytest.raises(ConfigError) as error:
        load_settings(path, environ={})
    message = str(error.value)
    assert "\n" not in message
    assert f"{path}: invalid key 'mailbox.security'" in message


def test_a_bad_value_from_the_environment_names_the_variable(tmp_path: Path):
    path = write(tmp_path, "[mailbox]\nport = 993\n")
    with pytest.raises(ConfigError) as error:
        load_settings(path, environ={"INTAKE_MAILBOX__PORT": "nine"})
    message = str(error.value)
    assert message.startswith("INTAKE_MAILBOX__PORT: invalid key 'mailbox.port'")
    assert str(path) not in message


def test_unknown_key_and_password_in_file_are_refused(tmp_path: Path):
    path = write(tmp_path, '[smtp]\npassword = "hunter2"\n')
    with pytest.raises(ConfigError, match=r"invalid key 'smtp.password': unknown key \(secrets"):
        load_settings(path, environ={})


def test_bad_environment_value_is_named(tmp_path: Path):
    path = write(tmp_path, "")
    with pytest.raises(ConfigError, match=r"invalid key 'campaign\.year'"):
        load_settings(path, environ={"INTAKE_CAMPAIGN__YEAR": "next year"})


def test_missing_file_and_broken_toml(tmp_path: Path):
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.toml", environ={})
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(write(tmp_path, "[campaign\n"), environ={})


def test_secret_comes_only_from_environment(monkeypatch):
    settings = load_settings(ROOT / "config" / "intake.toml", environ={})
    monkeypatch.delenv("INTAKE_IMAP_PASSWORD", raising=False)
    assert settings.secret("INTAKE_IMAP_PASSWORD") is None
    monkeypatch.setenv("INTAKE_IMAP_PASSWORD", "app-password")
    assert settings.secret("INTAKE_IMAP_PASSWORD") == "app-password"
