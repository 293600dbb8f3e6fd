"""Settings: a TOML file validated by pydantic, with ``INTAKE_<SECTION>__<KEY>`` overrides.

Why a file plus environment: the file is what the operator edits and keeps in version
control; the environment is where deployments put per-machine values and the only place
secrets may come from (``password_env`` names the variable, the file never holds one).
"""

from __future__ import annotations

import json
import os
import tomllib
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import ConfigError

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
DEFAULT_CONFIG = Path("config/intake.toml")
CONFIG_ENV = "INTAKE_CONFIG"  # the configuration file, when --config is not given
ENV_PREFIX = "INTAKE_"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Board(_Section):
    """Who the documents speak for: the form's heading, every mail's signature.

    Configuration, never code, so another province (or the next board) reuses the
    program by editing the file; the defaults are the board of letter 2077-CV/TĐTN-TCKT.
    """

    name: str = "Ban Tổ chức – Kiểm tra"
    organisation: str = "Tỉnh đoàn Bến Tre"  # the provincial Youth Union the board belongs to
    province: str = "Bến Tre"                # place name of the board's documents
    letter: str = "2077-CV/TĐTN-TCKT"        # the letter that asked for the lists ("" = none)

    @property
    def full_name(self) -> str:
        """"Ban Tổ chức – Kiểm tra Tỉnh đoàn Bến Tre": how mails are signed."""
        return f"{self.name} {self.organisation}".strip()


class Campaign(_Section):
    year: int = Field(2021, ge=2000, le=2100)
    deadline: datetime = datetime(2021, 2, 20, tzinfo=TZ)
    late_policy: Literal["accept", "reject"] = "accept"

    @field_validator("deadline")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        # A deadline without an offset means Vietnamese local time, as the letter does.
        return value if value.tzinfo else value.replace(tzinfo=TZ)


class OAuth(_Section):
    """XOAUTH2 login (Gmail). Secrets are named by *_env keys, never stored here."""

    token_url: str = "https://oauth2.googleapis.com/token"
    client_id: str = ""
    client_secret_env: str = "INTAKE_OAUTH_CLIENT_SECRET"
    refresh_token_env: str = "INTAKE_OAUTH_REFRESH_TOKEN"


class Mailbox(_Section):
    host: str = "imap.gmail.com"
    port: int = Field(993, ge=1, le=65535)
    security: Literal["ssl", "starttls", "none"] = "ssl"
    username: str = "bantckt.tdbentre@gmail.com"
    password_env: str = "INTAKE_IMAP_PASSWORD"
    auth: Literal["password", "xoauth2"] = "password"
    folder: str = "INBOX"
    processed_folder: str = "Intake/Processed"
    review_folder: str = "Intake/Review"
    timeout_seconds: float = Field(60.0, gt=0)
    deadline_seconds: float = Field(120.0, gt=0)  # each IMAP command, whole (plus downloads)
    batch_size: int = Field(50, ge=1, le=1000)
    max_attempts: int = Field(3, ge=1)
    ca_file: Path | None = None
    # First start: "now" leaves mail already in the folder alone, a date takes mail received
    # from that day on, "all" takes everything (``intake poll --backlog`` does so later).
    start_from: Literal["now", "all"] | date = "now"


class Smtp(_Section):
    host: str = "smtp.gmail.com"
    port: int = Field(465, ge=1, le=65535)
    security: Literal["ssl", "starttls", "none"] = "ssl"
    username: str = "bantckt.tdbentre@gmail.com"
    password_env: str = "INTAKE_SMTP_PASSWORD"
    from_address: str = "bantckt.tdbentre@gmail.com"
    from_name: str = ""  # "" = the board's full name ([board])
    auth: Literal["password", "xoauth2", "same"] = "same"  # "same": as [mailbox] auth
    max_replies_per_hour: int = Field(5, ge=0)
    dry_run: bool = False
    timeout_seconds: float = Field(60.0, gt=0)  # each socket operation
    send_deadline_seconds: float = Field(180.0, gt=0)  # connection + one reply, in total
    give_up_after_hours: float = Field(72.0, gt=0)  # temporary (4xx) failures retried this long
    max_attempts: int | None = Field(None, ge=1)  # no longer used: see give_up_after_hours
    ca_file: Path | None = None


class Rules(_Section):
    min_members_provincial: int = Field(15, ge=0)
    min_members_district: int = Field(10, ge=0)
    provincial_requires_district_model: bool = True
    recognised_since: int = 2018
    require_sender_auth: bool = True
    authserv_id: str = "mx.google.com"
    trusted_forwarders: list[str] = []
    staff: list[str] = []

    @field_validator("trusted_forwarders", "staff", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.replace(";", ",").split(",") if part.strip()]
        return value


class Limits(_Section):
    """Explicit ceilings on what one sender can make us read (bombs, giants, nesting)."""

    max_file_bytes: int = Field(10 * 1024 * 1024, ge=1)
    max_uncompressed_bytes: int = Field(100 * 1024 * 1024, ge=1)
    max_rows: int = Field(50_000, ge=1)
    max_columns: int = Field(200, ge=1)
    max_sheets: int = Field(50, ge=1)
    max_zip_members: int = Field(50, ge=1)
    max_zip_depth: int = Field(2, ge=0)
    max_attachments: int = Field(20, ge=1)
    max_message_bytes: int = Field(40 * 1024 * 1024, ge=1)
    max_findings_in_reply: int = Field(50, ge=1)  # lines; the marked-up file shows the rest
    # Workbooks are read in a child process (a Rust abort or an exhausted memory limit
    # there is a FILE_TOO_LARGE finding, not the end of ``intake run``).
    isolate_readers: bool = True
    max_reader_memory_mb: int = Field(1024, ge=64)
    max_reader_seconds: float = Field(60.0, gt=0)


class Schedule(_Section):
    """How often ``intake run`` polls; later keys (reminders, digest) join this section."""

    poll_minutes: float = Field(5.0, gt=0)
    misfire_grace_seconds: int = Field(300, ge=1)
    reminder_days_before: list[int] = [7, 3, 1]
    reminder_time: str = Field("08:00", pattern=r"^\d{2}:\d{2}$")
    digest_time: str = Field("17:00", pattern=r"^\d{2}:\d{2}$")
    alert_after_minutes: int = Field(120, ge=1)
    idle: bool = True  # IMAP IDLE for replies within seconds; the interval poll stays

    @field_validator("reminder_days_before", mode="before")
    @classmethod
    def _days(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [int(part) for part in value.replace(";", ",").split(",") if part.strip()]
        return value


class Paths(_Section):
    reference_dir: Path = Path("config/reference")
    data_dir: Path = Path("data")
    workbook: Path = Path("data/TongHop_ChiDoanKieuMau.xlsx")
    templates_dir: Path = Path("templates")


class Settings(_Section):
    board: Board = Board()
    campaign: Campaign = Campaign()
    mailbox: Mailbox = Mailbox()
    smtp: Smtp = Smtp()
    rules: Rules = Rules()
    limits: Limits = Limits()
    schedule: Schedule = Schedule()
    oauth: OAuth = OAuth()
    paths: Paths = Paths()

    def secret(self, variable: str) -> str | None:
        """Read a secret from the environment only; never logged, never stored."""
        value = os.environ.get(variable)
        return value if value else None


def _env_overrides(environ: dict[str, str]) -> dict[str, dict[str, str]]:
    overrides: dict[str, dict[str, str]] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        section, _, key = name[len(ENV_PREFIX):].partition("__")
        overrides.setdefault(section.lower(), {})[key.lower()] = value
    return overrides


def _describe(error: ValidationError, source: str, from_env: set[tuple[str, str]]) -> str:
    """One line naming where the bad value came from: the environment variable that set
    it, or the file."""
    first = error.errors()[0]
    key = ".".join(str(part) for part in first["loc"])
    loc = tuple(str(part) for part in first["loc"][:2])
    if len(loc) == 2 and loc in from_env:
        source = f"{ENV_PREFIX}{loc[0].upper()}__{loc[1].upper()}"
    if first["type"] == "extra_forbidden":
        reason = "unknown key"
        if key.endswith("password"):
            reason += " (secrets come only from the environment: set password_env)"
    else:
        reason = first["msg"]
    more = len(error.errors()) - 1
    tail = f" (+{more} more)" if more else ""
    return f"{source}: invalid key '{key}': {reason}{tail}"


def _resolve(settings: Settings, base: Path) -> Settings:
    def absolute(path: Path | None) -> Path | None:
        if path is None:
            return None
        path = path.expanduser()
        return path if path.is_absolute() else (base / path).resolve()

    paths = settings.paths.model_copy(
        update={name: absolute(getattr(settings.paths, name)) for name in Paths.model_fields}
    )
    mailbox = settings.mailbox.model_copy(update={"ca_file": absolute(settings.mailbox.ca_file)})
    smtp = settings.smtp.model_copy(update={"ca_file": absolute(settings.smtp.ca_file)})
    return settings.model_copy(update={"paths": paths, "mailbox": mailbox, "smtp": smtp})


def load_settings(path: Path | str | None = None, environ: dict[str, str] | None = None) -> Settings:
    """Load, override from the environment, validate and resolve relative paths.

    Relative paths are resolved against the configuration file's folder, so the service
    behaves the same whatever directory systemd or cron starts it in.
    """
    path = Path(path) if path else DEFAULT_CONFIG
    environ = dict(os.environ if environ is None else environ)
    if not path.is_file():
        raise ConfigError(f"configuration file not found: {path}")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    from_env: set[tuple[str, str]] = set()
    for section, values in _env_overrides(environ).items():
        from_env.update((section, key) for key in values)
        target = data.setdefault(section, {})
        if not isinstance(target, dict):
            raise ConfigError(f"environment override for '{section}' but it is not a section")
        target.update(values)
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, str(path), from_env)) from None
    return _resolve(settings, path.resolve().parent)


def find_config(given: Path | None = None, environ: dict[str, str] | None = None,
                cwd: Path | None = None) -> Path:
    """The configuration to use: ``--config``, else ``$INTAKE_CONFIG``, else
    ``config/intake.toml`` in the current folder or the nearest folder above it (a
    deployment written by ``intake init``), so a command run from ``data/`` finds it.

    Never a configuration found elsewhere (the source checkout's sample): running
    against the wrong mailbox or data folder is worse than being asked which one.
    """
    if given is not None:
        return given
    environ = dict(os.environ if environ is None else environ)
    if environ.get(CONFIG_ENV):
        return Path(environ[CONFIG_ENV])
    cwd = (cwd or Path.cwd()).resolve()
    for folder in (cwd, *cwd.parents):
        if (folder / DEFAULT_CONFIG).is_file():
            return folder / DEFAULT_CONFIG
    raise ConfigError(
        f"no configuration found: no {DEFAULT_CONFIG} in {cwd} or a folder above it, and "
        f"{CONFIG_ENV} is not set",
        hint="pass --config FILE, set INTAKE_CONFIG, or run intake in its deployment folder "
             "(intake init DIR writes one)")


def settings_for(base: Path, **sections: dict[str, Any]) -> Settings:
    """Settings built in code (tests, demo), paths resolved against ``base``."""
    return _resolve(Settings.model_validate(sections), base)
