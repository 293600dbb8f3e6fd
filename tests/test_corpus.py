"""Every message of the mail corpus, decided and filed offline (no servers), ends with the
status its manifest line gives: as it came, and as if the Ba Tri unit had sent it.

The expected statuses were decided by reading each message (``tests/mail_corpus.py``);
a handful of the same messages also go through Dovecot in ``test_mail.py``.
"""

from __future__ import annotations

import pytest

from intake.config import Settings
from intake.pipeline import CycleResult
from intake.store import Status, open_store

from .conftest import ON_TIME, file_offline, make_settings
from .mail_corpus import CORPUS, UNIT, CorpusMail, as_unit, corpus_mail

MAILS = corpus_mail()


def _param(mail: CorpusMail):
    return pytest.param(mail, id=mail.path.removeprefix("mail/"))


@pytest.fixture(scope="module")
def filed(tmp_path_factory, reference) -> tuple[tuple[CycleResult, Settings], dict[int, dict]]:
    """The whole corpus filed once into one store: each message as it came (odd UIDs)
    and as the unit's (even UIDs). Returns the cycle's result and the rows by UID."""
    base = tmp_path_factory.mktemp("corpus")
    settings = make_settings(base, rules={"require_sender_auth": True})
    sender = reference.units[UNIT].emails[0]
    messages = []
    for mail in MAILS:
        raw = mail.raw
        messages += [(raw, ON_TIME), (as_unit(raw, sender), ON_TIME)]
    result = file_offline(settings, messages)
    store = open_store(settings.paths.data_dir)
    try:
        rows = {int(r["uid"]): dict(r) for r in store.query("SELECT * FROM messages")}
    finally:
        store.close()
    return (result, settings), rows


def test_the_manifest_gives_every_corpus_message_a_status():
    listed = {m.path for m in MAILS}
    on_disk = {str(p.relative_to(CORPUS)) for p in (CORPUS / "mail").rglob("*") if p.is_file()}
    assert listed == on_disk
    assert len(MAILS) >= 130
    statuses = {str(s) for s in Status}
    for mail in MAILS:
        assert {mail.expected, mail.expected_as_unit} <= statuses and mail.why, mail.path


def test_filing_the_corpus_fails_on_nothing_and_keeps_names_in_the_archive(filed):
    (result, settings), rows = filed
    assert result.errors == []
    assert len(rows) == 2 * len(MAILS)
    assert all(r["stage"] == "filed" and r["error"] == "" for r in rows.values())
    # Hostile attachment names never become paths outside the archive.
    archive = settings.paths.data_dir / "archive" / "files"
    kept = list(archive.rglob("*")) if archive.exists() else []
    assert kept, "the unit's .zip and .csv files are kept"
    for path in kept:
        assert path.parent == archive
        assert "\n" not in path.name and ".." not in path.name.split("-", 1)[1][:2]


@pytest.mark.parametrize("mail", [_param(m) for m in MAILS])
def test_corpus_message_ends_with_the_status_read_in_it(filed, mail: CorpusMail):
    _result, rows = filed
    uid = 2 * MAILS.index(mail) + 1
    got = (rows[uid]["status"], rows[uid + 1]["status"])
    assert got == (mail.expected, mail.expected_as_unit), \
        f"{mail.path}: as it came / as the unit's; read in it: {mail.why}"
    if mail.expected_as_unit in ("needs-correction", "no-attachment"):
        assert rows[uid + 1]["unit_code"] == UNIT


def test_the_as_unit_rewrite_names_the_unit(reference):
    sender = reference.units[UNIT].emails[0]
    raw = (CORPUS / "mail/imap_tools/attachment_emails/attachment_pdf.eml").read_bytes()
    rewritten = as_unit(raw, sender)
    assert rewritten.startswith(b"Authentication-Results: mx.google.com; dmarc=pass")
    assert f"\r\nFrom: {sender}\r\n".encode() in rewritten  # the line ending kept
    assert b"From: Test Tester" not in rewritten
