"""Typed errors under one base, so the CLI can turn any of them into a one-line message.

Bad *data* from senders never raises: it becomes a finding. These errors are for the
operator's side: a wrong configuration, an unreachable server, a broken template.
"""

from __future__ import annotations


class IntakeError(Exception):
    """Base of every error the command line reports as one line (with a hint)."""

    hint: str = ""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        if hint:
            self.hint = hint


class ConfigError(IntakeError):
    """The configuration file or an environment override is invalid."""

    hint = "check the configuration file (see config/intake.toml for every key)"


class ReferenceDataError(IntakeError):
    """A reference CSV is missing or malformed."""

    hint = "the reference folder needs units.csv, communes.csv and party_cells.csv"


class MailboxError(IntakeError):
    """The IMAP server could not be reached, refused the login or a command."""

    hint = "check [mailbox] host, port, security and the password environment variable"


class StorageError(IntakeError):
    """A local file (the store, the archive, the workbook) could not be read or written."""

    hint = "check free disk space and the permissions of [paths] data_dir"


class StoreCorruptError(IntakeError):
    """The state store is unreadable, or empty while the data it indexes still exists."""

    hint = "restore intake.sqlite3 from a backup; never delete it to start over"


class TemplateError(IntakeError):
    """A reply template is missing or does not compile."""

    hint = "fix the template in the templates folder; staff edits are checked at start"


class LockError(IntakeError):
    """Another intake process already works on this data folder."""
