"""One intake cycle: new mail -> recorded -> decided -> filed -> reply sent -> moved.

The cycle only orders the steps, each in its own module: ``mail/sync.py`` records and
moves, ``decide.py`` decides (pure), ``filing.py`` writes, ``mail/smtp.py`` sends. Each
step commits before the next, and each is idempotent, so a crash anywhere is finished
by the next cycle: a message recorded but not filed is filed from its archived copy; a
reply queued but not sent is sent; a message answered but not moved is moved.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path

from . import archive, staff
from .config import Settings
from .decide import Decider, Outcome
from .errors import MailboxError, StorageError
from .filing import Filer, Filing
from .locks import cycle_lock
from .mail import imap, smtp, sync
from .mail.oauth import imap_secret
from .recheck import notice_reference_change
from .reference import Reference, Unit, load_reference
from .replies import check_templates
from .store import Store, messages, open_store, submissions
from .workbook import write as write_workbook

log = logging.getLogger(__name__)


@dataclass
class CycleResult:
    fetched: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    sent: dict[str, int] = field(default_factory=dict)
    moved: int = 0
    set_aside: int = 0
    errors: list[str] = field(default_factory=list)
    workbook: Path | None = None

    @property
    def changed(self) -> bool:
        """Whether the cycle changed anything the workbook shows (a quiet one does not)."""
        return bool(self.fetched or self.statuses or self.moved or self.set_aside
                    or any(self.sent.values()))


class Pipeline:
    def __init__(self, settings: Settings, store: Store | None = None,
                 reference: Reference | None = None) -> None:
        self.settings = settings
        self.store = store or open_store(settings.paths.data_dir, settings.paths.workbook)
        self.reference = reference or load_reference(settings.paths.reference_dir)
        self.templates = check_templates(settings.paths.templates_dir)
        self.filer = Filer(settings, self.reference, self.templates, self.store)
        self.unit_for = partial(staff.unit_for, self.reference, self.store)
        # ROW_CONFLICT is checked while the report is built, against the store as it is
        # just before the message is filed (the same turn of the cycle lock).
        self.decider = Decider(settings, self.reference, self.unit_for,
                               partial(submissions.held_elsewhere, self.store))
        self.on_message: Callable[[str], None] | None = None  # progress: called per message

    # -- the cycle -------------------------------------------------------------------

    def run_cycle(self, password: str | None = None, *, backlog: bool = False,
                  on_wait: Callable[[], None] | None = None) -> CycleResult:
        """Poll once, holding the cycle lock (another cycle or staff step waits its turn).

        Raises ``MailboxError`` when the mailbox cannot be reached and ``StorageError``
        when a local file cannot be written. ``backlog`` also takes mail that arrived
        before the first start (``[mailbox] start_from``).
        """
        settings = self.settings
        result = CycleResult()
        password = password if password is not None else imap_secret(settings)
        with cycle_lock(settings.paths.data_dir, on_wait=on_wait):
            try:
                rechecked = notice_reference_change(self)
                self._cycle(password, result, backlog)
                self.store.event("cycle", f"fetched={result.fetched}")
                result.workbook = settings.paths.workbook  # a quiet cycle keeps it
                if result.changed or rechecked is not None or not result.workbook.exists():
                    result.workbook = write_workbook(self.store, self.reference, settings)
            except OSError as exc:  # IMAP failures arrive as MailboxError: this one is ours
                raise StorageError(f"cannot write {exc.filename or 'a local file'}: "
                                   f"{exc.strerror or exc}") from None
        return result

    def _cycle(self, password: str | None, result: CycleResult, backlog: bool) -> None:
        settings = self.settings
        with imap.connect(settings.mailbox, password) as box:
            for folder in (settings.mailbox.processed_folder, settings.mailbox.review_folder):
                imap.ensure_folder(box, folder)
            folder = settings.mailbox.folder
            validity = imap.select(box, folder)
            result.fetched = sync.take_new(self.store, settings, box, folder, validity, backlog)
            self.process_pending(result)
            result.set_aside = staff.set_aside(self)
            result.sent = smtp.deliver(self.store, settings)
            result.moved = sync.move_done(self.store, settings, box, folder, validity,
                                          result.errors)
            try:
                result.moved += staff.relocate(self, box)
            except MailboxError as exc:  # released messages move at the next cycle
                result.errors.append(str(exc))

    def process_pending(self, result: CycleResult) -> None:
        """Decide and file every recorded message, whatever folder or UIDVALIDITY it was
        recorded under (work left by a crash is finished even after a renumbering)."""
        pending = messages.pending(self.store)
        for row in pending:
            try:
                if row["duplicate_of"] is not None:
                    # a copy waits for its twin; once the twin is filed, it is ignored
                    with self.store.transaction():
                        messages.settle_copy(self.store, int(row["id"]), int(row["duplicate_of"]))
                    continue
                raw = archive.read(self.settings.paths.data_dir, row["archive"])
                outcome = self.decide(raw, datetime.fromisoformat(row["received_at"]))
                if outcome.command is not None and outcome.envelope is not None:
                    # Carried out before the command message is filed: a crash in between
                    # repeats it, and every staff decision is safe to repeat.
                    outcome.answer = staff.execute(self, outcome.command,
                                                   actor=outcome.envelope.sender,
                                                   in_reply_to=outcome.envelope.in_reply_to)
                filing = self.file(row, outcome)
                if filing is None:
                    continue
                status = str(filing.status)  # the plain value, also for a Status member
                result.statuses[status] = result.statuses.get(status, 0) + 1
                if self.on_message:
                    self.on_message(filing.status)
            except Exception as exc:  # a bug or a pathological message must not stop the cycle
                log.exception("processing failed uid=%s", row["uid"])
                self._failed(row, exc, result)

    # The two steps as methods: staff actions run them as the cycle does, and tests break
    # them on purpose to prove that one bad message never stops the others.
    def decide(self, raw: bytes, received: datetime, trusted_unit: Unit | None = None
               ) -> Outcome:
        return self.decider.decide(raw, received, trusted_unit)

    def file(self, row, outcome: Outcome, release: dict[str, str] | None = None
             ) -> Filing | None:
        return self.filer.file(row, outcome, release)

    def _failed(self, row, exc: Exception, result: CycleResult) -> None:
        attempts = int(row["attempts"]) + 1
        error = f"{type(exc).__name__}: {exc}"[:500]
        result.errors.append(f"uid {row['uid']}: {error}")
        hold = ("lỗi khi xử lý, chờ Ban xem xét"
                if attempts >= self.settings.mailbox.max_attempts else "")
        with self.store.transaction():
            messages.failed(self.store, int(row["id"]), attempts, error, hold=hold)
