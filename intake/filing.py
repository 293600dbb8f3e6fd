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
from .findings import Finding, condense, number
from .mail import smtp
from .mail.envelope import Envelope
from .reference import Reference, Unit
from .replies import FileLine, Group, Line, Note, Reply, group_findings, render_reply, where
from .sheets.annotate import annotate, annotated_name
from .sheets.checks import RowResult, check_coverage
from .sheets.report import Report
from .store import Stage, Status, Store, events, messages, submissions, units
from .text import name_key

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Filing:
    """What filing one message did: the status it was filed with (a list's status is
    decided by its findings), the coverage findings of the unit's list after it, and
    the reply that says so (None: the one ``decide`` described is enough)."""

    status: str
    coverage: list[Finding] = dataclasses.field(default_factory=list)
    reply: Reply | None = None


class Filer:
    """Writes decisions into one store; only filing writes submissions, rows, findings."""

    def __init__(self, settings: Settings, reference: Reference, templates: Environment,
                 store: Store) -> None:
        self.settings = settings
        self.reference = reference
        self.templates = templates
        self.store = store

    def file(self, row, outcome: Outcome, release: dict[str, str] | None = None
             ) -> Filing | None:
        """Steps 6–7 in one transaction: submission, rows, findings, and the queued reply.

        The stage is read again inside the transaction: a message someone else filed in
        the meantime is left as it is (returns None), never filed or answered twice.
        ``release`` (actor, note): staff release a waiting message (SPEC §10); it must
        still be waiting, and it is moved from the review to the processed folder.
        """
        env = outcome.envelope
        assert env is not None, "file() takes an outcome from decide()"
        with self.store.transaction():
            current = messages.filing_state(self.store, int(row["id"]))
            if release is not None:
                if current is None or current["settled"] or \
                        current["status"] not in staff.WAITING_STATUSES:
                    raise staff.StaffError(f"thư mã {row['token'] or row['id']} không còn chờ "
                                           "Ban xem xét")
                messages.release(self.store, int(row["id"]),
                                 self.settings.mailbox.processed_folder)
                events.act(self.store, release["actor"], "release", int(row["id"]),
                           outcome.unit.code if outcome.unit else None, release.get("note", ""),
                           outcome.status)
            elif current is None or current["stage"] != Stage.RECORDED:
                log.info("uid=%s already filed elsewhere; left as it is", row["uid"])
                return None
            if outcome.bounce_of:
                smtp.mark_bounced(self.store, outcome.bounce_of)
            names = ", ".join(name for name, _ in outcome.attachments)
            filing = Filing(outcome.status)
            if outcome.report is not None and outcome.unit is not None:
                filing = self._file_submission(row, outcome, env)
            messages.decided(self.store, int(row["id"]), status=filing.status,
                             unit_code=outcome.unit.code if outcome.unit else None,
                             detail=outcome.detail, late=outcome.late, attachments=names,
                             stage=current["stage"] if release is not None else Stage.FILED)
            if outcome.reply_kind or outcome.report is not None:
                self.queue_reply(row, outcome, filing)
            if outcome.report is not None and outcome.unit is not None:
                from .recheck import remember_told

                remember_told(self.store, outcome.unit.code)
        log.info("filed uid=%s status=%s unit=%s", row["uid"], filing.status,
                 outcome.unit.code if outcome.unit else "-")
        return filing

    def _file_submission(self, row, outcome: Outcome, env: Envelope) -> Filing:
        unit = outcome.unit
        report = outcome.report
        assert unit is not None and report is not None
        addition = env.addition
        submission = submissions.add(self.store, message=int(row["id"]), unit_code=unit.code,
                                     received_at=row["received_at"], addition=addition,
                                     late=outcome.late, status=Status.ACCEPTED)
        for name, data in outcome.attachments:
            if not data:  # named only (a .pdf sent instead of the list): nothing to keep
                continue
            path, digest = archive.keep_attachment(self.settings.paths.data_dir, name, data)
            submissions.add_file(self.store, submission, name, digest, path)
        status, coverage = self.apply(submission, unit, report, addition=addition,
                                      received_at=row["received_at"], late=outcome.late,
                                      extra=outcome.extra_findings)
        if outcome.reply is not None:
            return Filing(status, coverage,
                          self.describe(outcome.reply, report, coverage, outcome))
        return Filing(status, coverage)

    def apply(self, submission: int, unit: Unit, report: Report, *, addition: bool,
              received_at: str, late: bool, extra: list[Finding]) -> tuple[str, list[Finding]]:
        """A checked submission's rows and findings become the unit's current list.

        Used when a message is filed and again by ``intake recheck``, which replays a
        unit's current submissions in order; the caller holds the transaction. Returns
        the submission's status and its coverage findings.
        """
        store = self.store
        if addition:
            for result in report.results:
                key = self._hamlet(result)
                if key[0]:
                    submissions.retire_hamlet(store, unit.code, *key)
            submissions.retire_findings(store, unit.code, ("COVERAGE_INCOMPLETE", "MAIL_LATE"))
        else:
            submissions.retire_unit(store, unit.code)
        for file_report in report.files:
            for f in file_report.findings:
                self._insert_finding(submission, None, unit.code, f)
        accepted = self._accept(unit.code, report.results)
        for result in report.results:
            row_id = self._insert_row(submission, unit.code, received_at, result)
            for f in result.findings:
                self._insert_finding(submission, row_id, unit.code, f, accepted.get(id(f), ""))
        registered = submissions.registered(store, unit.code)
        coverage = check_coverage(registered, unit, self.reference, attempted=report.results)
        for f in coverage + extra:
            self._insert_finding(submission, None, unit.code, f)
        errors = [f for f in report.findings + coverage if f.is_error]
        # (a late list under late_policy "reject" never gets here: decide rejects it)
        status = "needs-correction" if errors else "accepted"
        if not report.results and not errors:
            status = "needs-correction"
        submissions.set_status(store, submission, status)
        units.save(store, unit.code, self.reference.coverage(unit.code, registered))
        return status, coverage

    def _accept(self, unit_code: str, results: list[RowResult]) -> dict[int, str]:
        """Findings staff accepted against the rules (``intake accept``): the row counts as
        valid, and the finding stays visible, as a warning saying so. Returns the notes by
        the id of the finding that replaced each accepted one."""
        accepted = submissions.acceptances(self.store, unit_code)
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
        return submissions.add_row(self.store, {
            "submission": submission, "unit_code": unit_code, "file": row.file,
            "sheet": row.sheet, "row_number": row.number,
            "commune": r.commune.name if r.commune else row.text("commune"),
            "commune_code": commune_code, "hamlet_key": key, "branch": row.text("branch"),
            "party_cell": row.text("party_cell"), "cell_status": r.status_label,
            "members": row.members, "members_text": row.text("members"), "level": row.level,
            "district_model_year": row.district_model_year,
            "secretary": row.text("secretary"), "phone": row.text("phone"),
            "notes": row.text("notes"), "valid": int(r.valid), "errors": errors,
            "received_at": received})

    def _insert_finding(self, submission: int, row_id: int | None, unit_code: str,
                        f: Finding, accepted_note: str = "") -> None:
        submissions.add_finding(self.store, {
            "submission": submission, "row": row_id, "unit_code": unit_code, "file": f.file,
            "sheet": f.sheet, "row_number": f.row, "column_letter": f.column, "code": f.code,
            "level": f.level, "field": f.field, "value": f.value, "message": f.message,
            "suggestion": f.suggestion, "accepted_note": accepted_note})

    def describe(self, reply: Reply, report: Report, coverage: list[Finding],
                 outcome: Outcome) -> Reply:
        """The reply, saying what it must about a filed list: its files and figures, its
        errors (bounded, SPEC §6), its warnings, and the unit's whole list after it."""
        findings = report.findings + coverage + outcome.extra_findings
        errors = [f for f in findings if f.is_error]
        # MAIL_LATE is said once, by the template's own late notice (it knows the policy).
        warnings = [f for f in findings if not f.is_error and f.code != "MAIL_LATE"]
        valid = [r for r in report.results if r.valid]
        groups, more, shown_warnings = self._bounded(errors, warnings)
        # the unit's whole list after this mail, as filing has just stored it
        state = units.saved(self.store, outcome.unit.code) if outcome.unit else None
        return dataclasses.replace(
            reply, addition=bool(outcome.envelope and outcome.envelope.addition),
            unit_valid=state["valid"] if state else 0,
            unit_provincial=state["provincial"] if state else 0,
            unit_district=state["district"] if state else 0,
            files=[FileLine(f.file, len(f.results), f.valid_rows) for f in report.files],
            valid_rows=len(valid),
            provincial=sum(1 for r in valid if r.row.level == "provincial"),
            district=sum(1 for r in valid if r.row.level == "district"),
            errors=[Line.of(f) for f in errors], groups=groups, more=more,
            warnings=[Note(where(f), f.message, f.suggestion) for f in shown_warnings])

    def _bounded(self, errors: list[Finding], warnings: list[Finding]
                 ) -> tuple[list[Group], int, list[Finding]]:
        """A reply stays short and readable whatever the file (SPEC §6): past
        ``max_findings_in_reply`` findings, one line per mistake repeated down a column,
        and the count of what only the marked-up file shows."""
        limit = self.settings.limits.max_findings_in_reply
        if len(errors) <= limit:
            return group_findings(errors), 0, warnings[:limit]
        lines, more = condense(errors, limit)
        shown = [Line(line.text) for line in lines]
        title = (f"Tóm tắt {number(len(errors))} lỗi (lỗi giống nhau trong một cột được gộp "
                 "thành một dòng)")
        return [Group("", "", title, shown)], more, warnings[:limit]

    def queue_reply(self, row, outcome: Outcome, filing: Filing) -> None:
        """Queue the reply (in the filing transaction), its content stored beside it."""
        described = filing.reply or outcome.reply
        assert described is not None, "a reply is described by decide()"
        files = self._annotated(outcome, filing.coverage) \
            if filing.status == Status.NEEDS_CORRECTION else []
        reply = dataclasses.replace(
            described, kind=outcome.reply_kind or filing.status, status=filing.status,
            answer=list(outcome.answer),
            command=outcome.command.line if outcome.command else "",
            unit_name=outcome.unit.name if outcome.unit else described.unit_name,
            annotated=bool(files))
        message = render_reply(self.settings, self.templates, reply, files)
        smtp.queue(self.store, row["id"], reply.kind, message, filing.status,
                   content=reply.to_json())

    def _annotated(self, outcome: Outcome, coverage: list[Finding]) -> list[tuple[str, bytes]]:
        """The unit's own files, wrong cells in red, for the correction reply; the
        coverage errors go on the first file's notes sheet."""
        report = outcome.report
        if report is None:
            return []
        coverage = [f for f in coverage if f.is_error]
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
