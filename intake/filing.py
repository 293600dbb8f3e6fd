"""Steps 6–7 of SPEC §4: what ``decide`` concluded becomes the store's truth, at once.

One transaction per message: the message's status, the submission with its files, rows
and findings, the unit's coverage, and the queued reply. The stage is read again inside
that transaction, so a message is never filed twice whatever runs beside us. The same
``apply`` replays stored submissions for ``intake recheck``.
"""

from __future__ import annotations

import dataclasses
import logging

from jinja2 import Environment

from . import archive, staff
from .config import Settings
from .decide import Outcome
from .findings import Finding, condense, finding, number
from .labels import LEVELS
from .mail import smtp
from .mail.envelope import Envelope
from .reference import Reference, Unit
from .replies import build as build_reply
from .replies import group_findings, where
from .sheets.annotate import annotate, annotated_name
from .sheets.checks import RowResult, check_coverage
from .sheets.report import Report
from .store import Stage, Store
from .text import name_key

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Shown:
    """One condensed line of a reply, shaped like a finding for the templates."""

    message: str
    cell: str = ""
    suggestion: str = ""
    row: int | None = None
    value: str = ""


class Filer:
    """Writes decisions into one store; only filing writes submissions, rows, findings."""

    def __init__(self, settings: Settings, reference: Reference, templates: Environment,
                 store: Store) -> None:
        self.settings = settings
        self.reference = reference
        self.templates = templates
        self.store = store

    def file(self, row, outcome: Outcome, release: dict[str, str] | None = None) -> bool:
        """Steps 6–7 in one transaction: submission, rows, findings, and the queued reply.

        The stage is read again inside the transaction: a message someone else filed in
        the meantime is left as it is (returns False), never filed or answered twice.
        ``release`` (actor, note): staff release a waiting message (SPEC §10); it must
        still be waiting, and it is moved from the review to the processed folder.
        """
        env = outcome.envelope
        assert env is not None, "file() takes an outcome from decide()"
        with self.store.transaction() as db:
            current = db.execute("SELECT stage, status, settled FROM messages WHERE id=?",
                                 (row["id"],)).fetchone()
            if release is not None:
                if current is None or current["settled"] or \
                        current["status"] not in staff.WAITING_STATUSES:
                    raise staff.StaffError(f"thư mã {row['token'] or row['id']} không còn chờ "
                                           "Ban xem xét")
                db.execute("UPDATE messages SET settled='released', relocate=? WHERE id=?",
                           (self.settings.mailbox.processed_folder, row["id"]))
                staff.record(db, release["actor"], "release", int(row["id"]),
                             outcome.unit.code if outcome.unit else None, release.get("note", ""),
                             outcome.status)
            elif current is None or current["stage"] != Stage.RECORDED:
                log.info("uid=%s already filed elsewhere; left as it is", row["uid"])
                return False
            if outcome.bounce_of:
                smtp.mark_bounced(self.store, outcome.bounce_of)
            names = ", ".join(name for name, _ in outcome.attachments)
            if outcome.report is not None and outcome.unit is not None:
                outcome.status = self._file_submission(row, outcome, env)
            db.execute("UPDATE messages SET status=?, unit_code=?, detail=?, late=?, attachments=?,"
                       " stage=?, error='' WHERE id=?",
                       (outcome.status, outcome.unit.code if outcome.unit else None,
                        outcome.detail, int(outcome.late), names,
                        current["stage"] if release is not None else Stage.FILED, row["id"]))
            if outcome.reply_kind or outcome.report is not None:
                self.queue_reply(row, outcome, env)
            if outcome.report is not None and outcome.unit is not None:
                from .recheck import remember_told

                remember_told(db, self.store, outcome.unit.code)
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
            if not data:  # named only (a .pdf sent instead of the list): nothing to keep
                continue
            path, digest = archive.keep_attachment(self.settings.paths.data_dir, name, data)
            db.execute("INSERT INTO files(submission, name, sha256, path) VALUES (?,?,?,?)",
                       (submission, name, digest, path))
        status, coverage = self.apply(int(submission or 0), unit, report, addition=addition,
                                      received_at=row["received_at"], late=outcome.late,
                                      extra=outcome.extra_findings)
        outcome.reply_context.update(self.summary(report, coverage, outcome))
        return status

    def apply(self, submission: int, unit: Unit, report: Report, *, addition: bool,
              received_at: str, late: bool, extra: list[Finding]) -> tuple[str, list[Finding]]:
        """A checked submission's rows and findings become the unit's current list.

        Used when a message is filed and again by ``intake recheck``, which replays a
        unit's current submissions in order; the caller holds the transaction. Returns
        the submission's status and its coverage findings.
        """
        db = self.store.db
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
            db.execute("UPDATE findings SET current=0 WHERE current=1 AND unit_code=? AND code IN"
                       " ('COVERAGE_INCOMPLETE','MAIL_LATE')", (unit.code,))
        else:
            db.execute("UPDATE rows SET current=0 WHERE current=1 AND unit_code=?", (unit.code,))
            db.execute("UPDATE findings SET current=0 WHERE current=1 AND unit_code=?",
                       (unit.code,))
        for file_report in report.files:
            for f in file_report.findings:
                self._insert_finding(submission, None, unit.code, f)
        self._check_conflicts(unit.code, report.results)
        accepted = self._accept(unit.code, report.results)
        for result in report.results:
            row_id = self._insert_row(submission, unit.code, received_at, result)
            for f in result.findings:
                self._insert_finding(submission, row_id, unit.code, f, accepted.get(id(f), ""))
        registered = {
            (r[0], r[1]) for r in db.execute(
                "SELECT commune_code, hamlet_key FROM rows WHERE unit_code=? AND current=1 AND"
                " valid=1", (unit.code,))
        }
        coverage = check_coverage(registered, unit, self.reference, attempted=report.results)
        for f in coverage + extra:
            self._insert_finding(submission, None, unit.code, f)
        errors = [f for f in report.findings + coverage if f.is_error]
        # (a late list under late_policy "reject" never gets here: decide rejects it)
        status = "needs-correction" if errors else "accepted"
        if not report.results and not errors:
            status = "needs-correction"
        db.execute("UPDATE submissions SET status=? WHERE id=?", (status, submission))
        return status, coverage

    def _accept(self, unit_code: str, results: list[RowResult]) -> dict[int, str]:
        """Findings staff accepted against the rules (``intake accept``): the row counts as
        valid, and the finding stays visible, as a warning saying so. Returns the notes by
        the id of the finding that replaced each accepted one."""
        accepted = {(r["commune_code"], r["hamlet_key"], r["code"]): r["note"]
                    for r in self.store.query(
                        "SELECT commune_code, hamlet_key, code, note FROM acceptances"
                        " WHERE unit_code=?", (unit_code,))}
        notes: dict[int, str] = {}
        if not accepted:
            return notes
        for result in results:
            commune_code, key = self._hamlet(result)
            for index, f in enumerate(result.findings):
                note = accepted.get((commune_code, key, f.code))
                if note is None or not f.is_error:
                    continue
                kept = dataclasses.replace(f, level="warning",
                                           message=f"Ban chấp nhận: {note}. ({f.message})")
                result.findings[index] = kept
                notes[id(kept)] = note
        return notes

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
                        f: Finding, accepted_note: str = "") -> None:
        self.store.db.execute(
            "INSERT INTO findings(submission, row, unit_code, file, sheet, row_number,"
            " column_letter, code, level, field, value, message, suggestion, accepted_note)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (submission, row_id, unit_code, f.file, f.sheet, f.row, f.column, f.code, f.level,
             f.field, f.value, f.message, f.suggestion, accepted_note))

    def summary(self, report: Report, coverage: list[Finding], outcome: Outcome
                ) -> dict[str, object]:
        findings = report.findings + coverage + outcome.extra_findings
        errors = [f for f in findings if f.is_error]
        # MAIL_LATE is said once, by the template's own late notice (it knows the policy).
        warnings = [f for f in findings if not f.is_error and f.code != "MAIL_LATE"]
        valid = [r for r in report.results if r.valid]
        groups, more, shown_warnings = self._bounded(errors, warnings)
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
            "groups": groups,
            "more": more,
            "warnings": [{"where": where(f), "message": f.message, "suggestion": f.suggestion}
                         for f in shown_warnings],
            "annotated": False,
            "levels": LEVELS,
        }

    def _bounded(self, errors: list[Finding], warnings: list[Finding]
                 ) -> tuple[list[dict[str, object]], int, list[Finding]]:
        """A reply stays short and readable whatever the file (SPEC §6): past
        ``max_findings_in_reply`` findings, one line per mistake repeated down a column,
        and the count of what only the marked-up file shows."""
        limit = self.settings.limits.max_findings_in_reply
        if len(errors) <= limit:
            return group_findings(errors), 0, warnings[:limit]
        lines, more = condense(errors, limit)
        shown = [Shown(line.text) for line in lines]
        title = (f"Tóm tắt {number(len(errors))} lỗi (lỗi giống nhau trong một cột được gộp "
                 "thành một dòng)")
        return [{"file": "", "sheet": "", "title": title, "findings": shown}], more, \
            warnings[:limit]

    def queue_reply(self, row, outcome: Outcome, env: Envelope) -> None:
        kind = outcome.reply_kind or outcome.status
        context = dict(outcome.reply_context)
        context.setdefault("answer", outcome.answer)
        context.setdefault("command", outcome.command.line if outcome.command else "")
        context.setdefault("unit_name", outcome.unit.name if outcome.unit else "")
        context.setdefault("ignored", [])
        context.setdefault("more", 0)
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
