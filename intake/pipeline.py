"""One intake cycle: new mail -> recorded -> filed -> reply queued -> sent -> moved.

Each arrow is one committed step in the store, and each step is idempotent, so a crash
anywhere is finished by the next cycle: a message recorded but not filed is filed from
its archived copy; a reply queued but not sent is sent; a message answered but not moved
is moved. The UID high-water mark advances when a message is *recorded*, so nothing is
fetched twice and nothing recorded is forgotten.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from pathlib import Path

from imap_tools import MailBox

from . import archive
from .config import TZ, Settings
from .errors import MailboxError, StorageError
from .findings import Finding, finding
from .locks import cycle_lock
from .mail import imap, smtp
from .mail.attachments import extract
from .mail.envelope import Envelope, envelope, identity, parse
from .reference import Reference, Unit, load_reference
from .replies import build as build_reply
from .replies import check_templates, group_findings, local_time, where
from .sheets.annotate import annotate, annotated_name
from .sheets.checks import RowResult, check_coverage
from .sheets.report import Report, check_files
from .store import Stage, Store, now_iso, open_store
from .text import name_key
from .workbook import LEVELS
from .workbook import write as write_workbook

log = logging.getLogger(__name__)

REVIEW_STATUSES = {"unknown-sender", "held"}


@dataclass
class CycleResult:
    fetched: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    sent: dict[str, int] = field(default_factory=dict)
    moved: int = 0
    errors: list[str] = field(default_factory=list)
    workbook: Path | None = None


@dataclass
class Outcome:
    """What processing decided for one message, before anything is written."""

    status: str
    unit: Unit | None = None
    detail: str = ""
    late: bool = False
    reply_kind: str = ""
    reply_context: dict[str, object] = field(default_factory=dict)
    report: Report | None = None
    attachments: list[tuple[str, bytes]] = field(default_factory=list)
    extra_findings: list[Finding] = field(default_factory=list)
    envelope: Envelope | None = None  # set by ``decide``; the reply is addressed from it


class Pipeline:
    def __init__(self, settings: Settings, store: Store | None = None,
                 reference: Reference | None = None) -> None:
        self.settings = settings
        self.store = store or open_store(settings.paths.data_dir, settings.paths.workbook)
        self.reference = reference or load_reference(settings.paths.reference_dir)
        self.templates = check_templates(settings.paths.templates_dir)
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
        password = password if password is not None else settings.mail_secret(
            settings.mailbox.password_env, settings.mailbox.timeout_seconds)
        with cycle_lock(settings.paths.data_dir, on_wait=on_wait):
            try:
                self._cycle(password, result, backlog)
                self.store.event("cycle", f"fetched={result.fetched}")
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
            last_uid, since = self._high_water(box, folder, validity)
            if backlog:
                known = {int(r["uid"]) for r in self.store.query(
                    "SELECT uid FROM messages WHERE folder=? AND uidvalidity=?",
                    (folder, validity))}
                uids, since = [u for u in imap.all_uids(box) if u not in known], None
            else:
                uids = imap.uids_after(box, last_uid)
            for start in range(0, len(uids), settings.mailbox.batch_size):
                batch = uids[start:start + settings.mailbox.batch_size]
                for item in imap.fetch(box, batch, settings.limits.max_message_bytes):
                    if since and item.internal_date and item.internal_date < since:
                        self._skip_old(folder, item.uid)
                        continue
                    result.fetched += 1
                    self._record(folder, validity, item)
            self._process_pending(result)
            result.sent = smtp.deliver(self.store, settings)
            result.moved = self._move_done(box, folder, validity, result)

    def _high_water(self, box: MailBox, folder: str, validity: int
                    ) -> tuple[int, datetime | None]:
        """The last UID already seen, and the instant before which mail is left alone.

        On a first start the mark is set by ``start_from``; after a UIDVALIDITY change
        every UID is new again and the whole folder is re-read (repeats are recognised by
        Message-ID and content), still leaving alone what came before the first start.
        """
        row = self.store.one("SELECT uidvalidity, last_uid FROM folders WHERE name=?", (folder,))
        since_key = f"since:{folder}"
        since_row = self.store.one("SELECT value FROM meta WHERE key=?", (since_key,))
        since = datetime.fromisoformat(since_row[0]) if since_row else None
        if row is None:
            start = self.settings.mailbox.start_from
            if start == "all":
                last = 0
            else:
                day = None if start == "now" else start
                last = imap.last_uid_before(box, day)  # type: ignore[arg-type]
                since = (datetime.now(UTC) if day is None
                         else datetime.combine(day, time(0), tzinfo=TZ))  # type: ignore[arg-type]
            with self.store.transaction() as db:
                db.execute("INSERT INTO folders(name, uidvalidity, last_uid) VALUES (?,?,?)",
                           (folder, validity, last))
                if since is not None:
                    db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?,?)",
                               (since_key, since.isoformat(timespec="seconds")))
                self.store.event("start", f"{folder}: start_from={start}, mail up to UID "
                                 f"{last} left alone")
            return last, since
        if int(row["uidvalidity"]) != validity:
            log.warning("UIDVALIDITY of %s changed %s -> %s", folder, row["uidvalidity"],
                        validity)
            with self.store.transaction() as db:
                self.store.event("uidvalidity", f"{folder}: {row['uidvalidity']} -> {validity}")
                db.execute("UPDATE folders SET uidvalidity=?, last_uid=0 WHERE name=?",
                           (validity, folder))
            return 0, since
        return int(row["last_uid"]), since

    def _skip_old(self, folder: str, uid: int) -> None:
        with self.store.transaction() as db:
            db.execute("UPDATE folders SET last_uid=MAX(last_uid, ?) WHERE name=?", (uid, folder))

    def _record(self, folder: str, validity: int, item: imap.Fetched) -> None:
        """Step 1: remember the message (and archive it) before doing anything with it.

        Nothing here may raise for what the message contains: a message that cannot be
        parsed is still recorded, and its processing error sets it aside for staff.
        """
        raw = item.raw
        received = (item.internal_date or datetime.now(UTC)).astimezone(UTC)
        status: str | None = None
        detail = ""
        stage = Stage.RECORDED
        digest = path = ""
        message_id = sender = subject = ""
        if item.missing:
            status, stage = "ignored", Stage.MOVED
            detail = "thư đã bị xóa khỏi hộp thư (bởi một chương trình khác) trước khi tải về"
        elif raw is None:
            status, stage = "held", Stage.FILED
            detail = (f"thư quá lớn ({item.size / 1_000_000:.1f} MB, giới hạn "
                      f"{self.settings.limits.max_message_bytes / 1_000_000:.0f} MB), chưa tải về")
        else:
            digest = hashlib.sha256(raw).hexdigest()
            path = archive.keep_message(self.settings.paths.data_dir, raw)
            message_id, sender, subject = identity(raw, self.settings.rules.authserv_id)
        with self.store.transaction() as db:
            exists = db.execute("SELECT 1 FROM messages WHERE folder=? AND uidvalidity=? AND uid=?",
                                (folder, validity, item.uid)).fetchone()
            twin = db.execute(
                "SELECT id, folder, uidvalidity, stage FROM messages WHERE message_id=? AND"
                " sha256=? ORDER BY id LIMIT 1", (message_id, digest)).fetchone() \
                if digest and not exists else None
            if exists:
                pass
            elif twin is not None and twin["folder"] == folder and \
                    int(twin["uidvalidity"]) != validity and twin["stage"] != Stage.MOVED:
                # The same message, renumbered by a UIDVALIDITY change before we finished
                # with it: it takes its new address and its work goes on from where it was.
                db.execute("UPDATE messages SET uidvalidity=?, uid=? WHERE id=?",
                           (validity, item.uid, twin["id"]))
                log.info("uid=%s is message %s renumbered; its work continues", item.uid,
                         twin["id"])
            else:
                filed_twin = twin is not None and twin["stage"] != Stage.RECORDED
                if filed_twin:
                    status, detail, stage = "ignored", "thư trùng lặp", Stage.FILED
                db.execute(
                    "INSERT INTO messages(folder, uidvalidity, uid, message_id, sha256, received_at,"
                    " sender, subject, status, detail, stage, archive, duplicate_of, created_at)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (folder, validity, item.uid, message_id, digest,
                     received.isoformat(timespec="seconds"), sender, subject, status, detail,
                     stage, path, twin["id"] if twin else None, now_iso()))
            db.execute("UPDATE folders SET last_uid=MAX(last_uid, ?) WHERE name=?",
                       (item.uid, folder))
        log.info("recorded uid=%s message_id=%s", item.uid, message_id)

    def _process_pending(self, result: CycleResult) -> None:
        """Decide and file every recorded message, whatever folder or UIDVALIDITY it was
        recorded under (work left by a crash is finished even after a renumbering)."""
        pending = self.store.query("SELECT * FROM messages WHERE stage=? ORDER BY id",
                                   (Stage.RECORDED,))
        for row in pending:
            try:
                if row["duplicate_of"] is not None:
                    self._settle_duplicate(row)
                    continue
                raw = archive.read(self.settings.paths.data_dir, row["archive"])
                outcome = self.decide(raw, datetime.fromisoformat(row["received_at"]))
                if not self.file(row, outcome):
                    continue
                result.statuses[outcome.status] = result.statuses.get(outcome.status, 0) + 1
                if self.on_message:
                    self.on_message(outcome.status)
            except Exception as exc:  # a bug or a pathological message must not stop the cycle
                log.exception("processing failed uid=%s", row["uid"])
                self._failed(row, exc, result)

    def _settle_duplicate(self, row) -> None:
        """A second copy waits for its twin: once the twin is filed, the copy is ignored;
        until then it stays pending (a copy is a duplicate only of a twin that was filed)."""
        with self.store.transaction() as db:
            twin = db.execute("SELECT stage FROM messages WHERE id=?",
                              (row["duplicate_of"],)).fetchone()
            if twin is None or twin["stage"] == Stage.RECORDED:
                return
            db.execute("UPDATE messages SET status='ignored', detail='thư trùng lặp', stage=?"
                       " WHERE id=? AND stage=?", (Stage.FILED, row["id"], Stage.RECORDED))

    def _failed(self, row, exc: Exception, result: CycleResult) -> None:
        attempts = int(row["attempts"]) + 1
        error = f"{type(exc).__name__}: {exc}"[:500]
        result.errors.append(f"uid {row['uid']}: {error}")
        with self.store.transaction() as db:
            if attempts >= self.settings.mailbox.max_attempts:
                db.execute("UPDATE messages SET attempts=?, error=?, status='held', stage=?,"
                           " detail=? WHERE id=? AND stage=?",
                           (attempts, error, Stage.FILED, "lỗi khi xử lý, chờ Ban xem xét",
                            row["id"], Stage.RECORDED))
            else:
                db.execute("UPDATE messages SET attempts=?, error=? WHERE id=?",
                           (attempts, error, row["id"]))

    # -- deciding ---------------------------------------------------------------------

    def decide(self, raw: bytes, received: datetime) -> Outcome:
        """Steps 1–5 of SPEC §4 for one message; pure apart from reading the reference."""
        settings = self.settings
        message = parse(raw)
        own = {settings.smtp.from_address.lower(), settings.mailbox.username.lower()}
        env = envelope(message, own, settings.rules.authserv_id,
                       {a.lower() for a in settings.rules.trusted_forwarders})
        outcome = self._decide(message, env, received)
        outcome.envelope = env
        return outcome

    def _decide(self, message, env: Envelope, received: datetime) -> Outcome:
        settings = self.settings
        context = self._context(env, received)
        if env.bounce_of:
            smtp.mark_bounced(self.store, env.bounce_of)
            return Outcome("ignored", detail="thư báo gửi không thành công")
        if env.auto_reason:
            return Outcome("ignored", detail=f"thư tự động ({env.auto_reason})")
        unit = self.reference.unit_for_address(env.sender)
        if unit is None:
            # Answer only a sender who is real: a reply to a forged From is backscatter.
            genuine = not settings.rules.require_sender_auth or env.auth == "pass"
            return Outcome("unknown-sender", detail=f"địa chỉ {env.sender or '(trống)'} chưa đăng ký",
                           reply_kind="unknown-sender" if env.sender and genuine else "",
                           reply_context=context)
        context["unit_name"] = unit.name
        if settings.rules.require_sender_auth and env.auth != "pass":
            return Outcome("held", unit, detail="không xác thực được người gửi "
                           f"(Authentication-Results của {settings.rules.authserv_id}: {env.auth})")
        late = received >= settings.campaign.deadline
        if late and settings.campaign.late_policy == "reject":
            return Outcome("rejected-late", unit, late=True, reply_kind="rejected-late",
                           reply_context=context, detail="gửi sau hạn chót")
        files, ignored = extract(message, settings.limits.max_attachments)
        attachments = [(f.name, f.data) for f in files]
        if not attachments:
            context["ignored"] = ignored
            return Outcome("no-attachment", unit, late=late, reply_kind="no-attachment",
                           reply_context=context)
        report = check_files(attachments, self.reference, settings, unit=unit, coverage=False)
        extra = []
        if late:
            extra.append(finding(
                "MAIL_LATE", f"Thư được nhận lúc {local_time(received)}, sau hạn chót "
                f"{local_time(settings.campaign.deadline)}.", value=local_time(received)))
        return Outcome("accepted", unit, late=late, report=report, attachments=attachments,
                       reply_context=context, extra_findings=extra,
                       detail="bổ sung" if env.addition else "")

    def _context(self, env: Envelope, received: datetime) -> dict[str, object]:
        return {"unit_name": "", "sender": env.sender, "received_at": local_time(received),
                "deadline": local_time(self.settings.campaign.deadline),
                "year": self.settings.campaign.year,
                "late": received >= self.settings.campaign.deadline}

    # -- filing -----------------------------------------------------------------------

    def file(self, row, outcome: Outcome) -> bool:
        """Steps 6–7 in one transaction: submission, rows, findings, and the queued reply.

        The stage is read again inside the transaction: a message someone else filed in
        the meantime is left as it is (returns False), never filed or answered twice.
        """
        env = outcome.envelope
        assert env is not None, "file() takes an outcome from decide()"
        with self.store.transaction() as db:
            current = db.execute("SELECT stage FROM messages WHERE id=?", (row["id"],)).fetchone()
            if current is None or current["stage"] != Stage.RECORDED:
                log.info("uid=%s already filed elsewhere; left as it is", row["uid"])
                return False
            names = ", ".join(name for name, _ in outcome.attachments)
            if outcome.report is not None and outcome.unit is not None:
                outcome.status = self._file_submission(row, outcome, env)
            db.execute("UPDATE messages SET status=?, unit_code=?, detail=?, late=?, attachments=?,"
                       " stage=?, error='' WHERE id=?",
                       (outcome.status, outcome.unit.code if outcome.unit else None,
                        outcome.detail, int(outcome.late), names, Stage.FILED, row["id"]))
            if outcome.reply_kind or outcome.report is not None:
                self._queue_reply(row, outcome, env)
        log.info("filed uid=%s status=%s unit=%s", row["uid"], outcome.status,
                 outcome.unit.code if outcome.unit else "-")
        return True

    def _file_submission(self, row, outcome: Outcome, env: Envelope) -> str:
        db = self.store.db
        unit = outcome.unit
        report = outcome.report
        assert unit is not None and report is not None
        addition = env.addition
        cursor = db.execute(
            "INSERT INTO submissions(message, unit_code, received_at, addition, status, late)"
            " VALUES (?,?,?,?,?,?)",
            (row["id"], unit.code, row["received_at"], int(addition), "accepted",
             int(outcome.late)))
        submission = cursor.lastrowid
        for name, data in outcome.attachments:
            path, digest = archive.keep_attachment(self.settings.paths.data_dir, name, data)
            db.execute("INSERT INTO files(submission, name, sha256, path) VALUES (?,?,?,?)",
                       (submission, name, digest, path))
        if addition:
            for result in report.results:
                key = self._hamlet(result)
                if key[0]:
                    old = [r[0] for r in db.execute(
                        "SELECT id FROM rows WHERE unit_code=? AND current=1 AND commune_code=?"
                        " AND hamlet_key=?", (unit.code, *key))]
                    for old_id in old:
                        db.execute("UPDATE rows SET current=0 WHERE id=?", (old_id,))
                        db.execute("UPDATE findings SET current=0 WHERE row=?", (old_id,))
            db.execute("UPDATE findings SET current=0 WHERE unit_code=? AND code IN"
                       " ('COVERAGE_INCOMPLETE','MAIL_LATE')", (unit.code,))
        else:
            db.execute("UPDATE rows SET current=0 WHERE unit_code=?", (unit.code,))
            db.execute("UPDATE findings SET current=0 WHERE unit_code=?", (unit.code,))
        for file_report in report.files:
            for f in file_report.findings:
                self._insert_finding(submission, None, unit.code, f)
        self._check_conflicts(unit.code, report.results)
        for result in report.results:
            row_id = self._insert_row(submission, unit.code, row["received_at"], result)
            for f in result.findings:
                self._insert_finding(submission, row_id, unit.code, f)
        registered = {
            (r[0], r[1]) for r in db.execute(
                "SELECT commune_code, hamlet_key FROM rows WHERE unit_code=? AND current=1 AND"
                " valid=1", (unit.code,))
        }
        coverage = check_coverage(registered, unit, self.reference, attempted=report.results)
        for f in coverage + outcome.extra_findings:
            self._insert_finding(submission, None, unit.code, f)
        errors = [f for f in report.findings + coverage if f.is_error]
        late_error = outcome.late and self.settings.campaign.late_policy == "reject"
        status = "needs-correction" if errors or late_error else "accepted"
        if not report.results and not errors:
            status = "needs-correction"
        db.execute("UPDATE submissions SET status=? WHERE id=?", (status, submission))
        outcome.reply_context.update(self._summary(report, coverage, outcome))
        return status

    def _check_conflicts(self, unit_code: str, results: list[RowResult]) -> None:
        """ROW_CONFLICT: the hamlet is already in another unit's current list."""
        names = {code: unit.name for code, unit in self.reference.units.items()}
        for result in results:
            if result.cell is None:
                continue
            other = self.store.db.execute(
                "SELECT unit_code, file, row_number FROM rows WHERE current=1 AND valid=1 AND"
                " unit_code != ? AND commune_code=? AND hamlet_key=? LIMIT 1",
                (unit_code, result.cell.commune_code, result.cell.key)).fetchone()
            if other is None:
                continue
            row = result.row
            result.findings.append(finding(
                "ROW_CONFLICT",
                f"Dòng {row.number}: {result.cell.name} ({result.cell.commune_name}) đã được "
                f"{names.get(other['unit_code'], other['unit_code'])} đăng ký.",
                file=row.file, sheet=row.sheet, row=row.number,
                column=row.column("party_cell"), field="party_cell",
                value=row.text("party_cell"),
                suggestion="Hai đơn vị thống nhất với nhau; mỗi ấp, khu phố chỉ do một đơn vị "
                           "đăng ký."))

    def _hamlet(self, result: RowResult) -> tuple[str, str]:
        if result.cell is not None:
            return result.cell.commune_code, result.cell.key
        code = result.commune.code if result.commune else ""
        return code, name_key(result.row.text("party_cell"))

    def _insert_row(self, submission: int, unit_code: str, received: str, r: RowResult) -> int:
        row = r.row
        commune_code, key = self._hamlet(r)
        errors = "; ".join(f"{f.cell}: {f.title}" if f.cell else f.title
                           for f in r.findings if f.is_error)
        cursor = self.store.db.execute(
            "INSERT INTO rows(submission, unit_code, file, sheet, row_number, commune, commune_code,"
            " hamlet_key, branch, party_cell, cell_status, members, members_text, level,"
            " district_model_year, secretary, phone, notes, valid, errors, received_at)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (submission, unit_code, row.file, row.sheet, row.number,
             r.commune.name if r.commune else row.text("commune"), commune_code, key,
             row.text("branch"), row.text("party_cell"), r.status_label, row.members,
             row.text("members"), row.level, row.district_model_year, row.text("secretary"),
             row.text("phone"), row.text("notes"), int(r.valid), errors, received))
        return int(cursor.lastrowid or 0)

    def _insert_finding(self, submission: int, row_id: int | None, unit_code: str,
                        f: Finding) -> None:
        self.store.db.execute(
            "INSERT INTO findings(submission, row, unit_code, file, sheet, row_number,"
            " column_letter, code, level, field, value, message, suggestion)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (submission, row_id, unit_code, f.file, f.sheet, f.row, f.column, f.code, f.level,
             f.field, f.value, f.message, f.suggestion))

    def _summary(self, report: Report, coverage: list[Finding], outcome: Outcome
                 ) -> dict[str, object]:
        findings = report.findings + coverage + outcome.extra_findings
        errors = [f for f in findings if f.is_error]
        # MAIL_LATE is said once, by the template's own late notice (it knows the policy).
        warnings = [f for f in findings if not f.is_error and f.code != "MAIL_LATE"]
        valid = [r for r in report.results if r.valid]
        unit = outcome.unit.code if outcome.unit else ""
        levels = dict(self.store.db.execute(  # the unit's list after this mail ("bổ sung")
            "SELECT level, COUNT(*) FROM rows WHERE unit_code=? AND current=1 AND valid=1"
            " GROUP BY level", (unit,)).fetchall())
        return {
            "addition": bool(outcome.envelope and outcome.envelope.addition),
            "unit_valid": sum(levels.values()), "unit_provincial": levels.get("provincial", 0),
            "unit_district": levels.get("district", 0),
            "files": [{"name": f.file, "rows": len(f.results), "valid_rows": f.valid_rows}
                      for f in report.files],
            "valid_rows": len(valid),
            "provincial": sum(1 for r in valid if r.row.level == "provincial"),
            "district": sum(1 for r in valid if r.row.level == "district"),
            "errors": errors,
            "groups": group_findings(errors),
            "warnings": [{"where": where(f), "message": f.message, "suggestion": f.suggestion}
                         for f in warnings],
            "annotated": False,
            "levels": LEVELS,
        }

    def _queue_reply(self, row, outcome: Outcome, env: Envelope) -> None:
        kind = outcome.reply_kind or outcome.status
        context = dict(outcome.reply_context)
        context.setdefault("unit_name", outcome.unit.name if outcome.unit else "")
        context.setdefault("ignored", [])
        files = self._annotated(outcome) if outcome.status == "needs-correction" else []
        context["annotated"] = bool(files)
        reply = build_reply(
            self.settings, self.templates, kind, context, to=env.sender,
            original_subject=env.subject, original_id=env.message_id,
            references=env.references, status=outcome.status, late=outcome.late,
            attachments=files)
        smtp.queue(self.store, row["id"], kind, reply, outcome.status)

    def _annotated(self, outcome: Outcome) -> list[tuple[str, bytes]]:
        """The unit's own files, wrong cells in red, for the correction reply."""
        report = outcome.report
        if report is None:
            return []
        coverage = [f for f in outcome.reply_context.get("errors", [])  # type: ignore[union-attr]
                    if f.code == "COVERAGE_INCOMPLETE"]
        out = []
        for index, file in enumerate(report.files):
            extra = coverage if index == 0 else []
            if not any(f.is_error for f in file.all_findings) and not extra:
                continue
            try:
                data = annotate(file, extra)
            except Exception:  # the reply still goes, listing every finding in its body
                log.exception("could not mark up %s; the reply goes without it", file.file)
                continue
            if data is not None:
                out.append((annotated_name(file.file), data))
        return out

    # -- moving -----------------------------------------------------------------------

    def _move_done(self, box: MailBox, folder: str, validity: int, result: CycleResult) -> int:
        """Step 8: answered messages leave the watched folder (review when held).

        The stage becomes "moving" before the server is asked, so a move interrupted by a
        crash is known as such and retried without copying the message a second time.
        """
        moved = 0
        for row in self.store.query(
            "SELECT id, uid, status, stage, message_id FROM messages WHERE folder=? AND"
            " uidvalidity=? AND stage IN (?, ?) ORDER BY uid",
                (folder, validity, Stage.FILED, Stage.MOVING)):
            target = (self.settings.mailbox.review_folder if row["status"] in REVIEW_STATUSES
                      else self.settings.mailbox.processed_folder)
            with self.store.transaction() as db:
                db.execute("UPDATE messages SET stage=? WHERE id=?", (Stage.MOVING, row["id"]))
            try:
                imap.move(box, int(row["uid"]), target, message_id=row["message_id"],
                          retry=row["stage"] == Stage.MOVING)
            except MailboxError as exc:  # left "moving": the next cycle tries again
                result.errors.append(f"uid {row['uid']}: {exc}")
                continue
            with self.store.transaction() as db:
                db.execute("UPDATE messages SET stage=? WHERE id=?", (Stage.MOVED, row["id"]))
            moved += 1
        return moved


def rebuild(settings: Settings) -> Path:
    """Rewrite the workbook from the store alone (``intake rebuild``), in its turn."""
    store = open_store(settings.paths.data_dir, settings.paths.workbook)
    try:
        with cycle_lock(settings.paths.data_dir):
            return write_workbook(store, load_reference(settings.paths.reference_dir), settings)
    finally:
        store.close()
