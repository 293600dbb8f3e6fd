"""Check every current submission again, from its archived files (SPEC §10 ``recheck``).

When the board corrects a reference list (a party cell that did register) or a rule,
lists already filed must follow: each unit's current submissions (its last full list and
the "bổ sung" after it) are read again from the archive, checked against today's
reference and rules, and replayed in order, in one transaction per unit. What changed
for the unit (rows now valid or now wrong, findings gone or new) is reported, and with
``notify`` the unit gets a fresh reply when its status or its errors changed.

A reference file that changes between cycles is noticed by the next cycle, which runs
this at once (without notifying units) and tells staff what changed, so the workbook
never disagrees with the lists; staff then send "KIỂM TRA LẠI" to answer the units.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from . import archive
from .labels import status_label
from .mail.envelope import parse
from .reference import Unit
from .sheets.report import Report, check_files
from .store import events, messages, submissions, units

if TYPE_CHECKING:
    from .pipeline import Pipeline

log = logging.getLogger(__name__)

REFERENCE_FILES = ("units.csv", "communes.csv", "party_cells.csv")
REFERENCE_KEY = "reference_sha256"
TOLD_KEY = "told:"  # meta key prefix: the fingerprint of what each unit was last told


@dataclass
class UnitChange:
    """What a recheck changed for one unit."""

    unit: Unit
    status_before: str
    status_after: str
    now_valid: list[str] = field(default_factory=list)
    now_wrong: list[str] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)
    new: list[str] = field(default_factory=list)
    notified: bool = False

    @property
    def changed(self) -> bool:
        return bool(self.status_before != self.status_after or self.now_valid or
                    self.now_wrong or self.gone or self.new or self.notified)

    def lines(self) -> list[str]:
        out = [f"{self.unit.name}: "
               + (f"{status_label(self.status_before)} → {status_label(self.status_after)}"
                  if self.status_before != self.status_after
                  else status_label(self.status_after))
               + ("; đã gửi thư trả lời mới cho đơn vị" if self.notified else "")]
        for label, items in (("nay hợp lệ", self.now_valid), ("nay có lỗi", self.now_wrong),
                             ("lỗi không còn", self.gone), ("lỗi mới", self.new)):
            if items:
                shown = "; ".join(items[:10]) + (f"; … (+{len(items) - 10})"
                                                 if len(items) > 10 else "")
                out.append(f"  {label} ({len(items)}): {shown}")
        return out


@dataclass
class RecheckResult:
    changes: list[UnitChange]

    @property
    def changed(self) -> list[UnitChange]:
        return [c for c in self.changes if c.changed]

    def lines(self) -> list[str]:
        if not self.changes:
            return ["Chưa có danh sách nào để kiểm tra lại."]
        changed = self.changed
        if not changed:
            return [f"Đã kiểm tra lại danh sách của {len(self.changes)} đơn vị: không có gì "
                    "thay đổi."]
        return [f"Đã kiểm tra lại danh sách của {len(self.changes)} đơn vị; "
                f"{len(changed)} đơn vị có thay đổi:"] + [
            line for change in changed for line in change.lines()]


def _last_status(store, unit_code: str) -> str:
    last = submissions.last(store, unit_code)
    return last["status"] if last else ""


def _snapshot(pipeline: Pipeline, unit_code: str) -> tuple[str, dict[str, bool], set[str]]:
    """(status, validity by row label, finding texts) of a unit's current list."""
    store = pipeline.store
    rows = {f"{r['party_cell']} ({r['commune']})": bool(r["valid"])
            for r in submissions.current_rows(store, unit_code)}
    findings = {f"[{r['code']}] {r['message']}"
                for r in submissions.current_findings(store, unit_code)
                if r["code"] != "MAIL_LATE"}
    return _last_status(store, unit_code), rows, findings


def fingerprint(store, unit_code: str) -> str:
    """What a unit's result is, as far as a reply tells it: its status and its errors."""
    errors = sorted(f"{r['code']}|{r['message']}"
                    for r in submissions.current_findings(store, unit_code, level="error"))
    text = "\n".join([_last_status(store, unit_code), *errors])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def remember_told(store, unit_code: str) -> None:
    """The unit has just been answered with its current result (in the caller's
    transaction): a later recheck answers it again only when that result changes."""
    events.put(store, f"{TOLD_KEY}{unit_code}", fingerprint(store, unit_code))


def _told(store, unit_code: str) -> str | None:
    return events.get(store, f"{TOLD_KEY}{unit_code}")


def _chain(pipeline: Pipeline, unit_code: str) -> list:
    """The unit's current submissions: its last full list and the additions after it."""
    subs = submissions.of_unit(pipeline.store, unit_code)
    start = max((i for i, s in enumerate(subs) if not s["addition"]), default=0)
    return list(subs[start:])


def _report(pipeline: Pipeline, submission, unit: Unit) -> Report:
    data_dir = pipeline.settings.paths.data_dir
    files = [(f["name"], archive.read(data_dir, f["path"]))
             for f in submissions.files(pipeline.store, int(submission["id"]))]
    return check_files(files, pipeline.reference, pipeline.settings, unit=unit, coverage=False,
                       held=pipeline.decider.held_by_others)


def recheck(pipeline: Pipeline, *, unit_code: str | None = None, notify: bool = False,
            actor: str) -> RecheckResult:
    """Replay every current submission against today's lists; the caller holds the lock."""
    units = [u for code, u in sorted(pipeline.reference.units.items())
             if unit_code is None or code == unit_code.upper()]
    changes: list[UnitChange] = []
    for unit in units:
        chain = _chain(pipeline, unit.code)
        if not chain:
            continue
        status_before, rows_before, findings_before = _snapshot(pipeline, unit.code)
        # What the unit was last told (not merely the store before this run: an automatic
        # recheck after a reference change updates the store without telling anyone).
        told = _told(pipeline.store, unit.code) or fingerprint(pipeline.store, unit.code)
        reports = [(sub, _report(pipeline, sub, unit)) for sub in chain]
        with pipeline.store.transaction():
            coverage: list = []
            for sub, report in reports:
                received = datetime.fromisoformat(sub["received_at"])
                extra = [pipeline.decider.late_finding(received)] if sub["late"] else []
                _status, coverage = pipeline.filer.apply(
                    int(sub["id"]), unit, report, addition=bool(sub["addition"]),
                    received_at=sub["received_at"], late=bool(sub["late"]), extra=extra)
            status_after, rows_after, findings_after = _snapshot(pipeline, unit.code)
            change = UnitChange(
                unit, status_before, status_after,
                now_valid=sorted(k for k, v in rows_after.items()
                                 if v and rows_before.get(k) is False),
                now_wrong=sorted(k for k, v in rows_after.items()
                                 if not v and rows_before.get(k) is True),
                gone=sorted(findings_before - findings_after),
                new=sorted(findings_after - findings_before))
            if notify and fingerprint(pipeline.store, unit.code) != told:
                _notify(pipeline, chain[-1], reports[-1][1], coverage, unit, status_after)
                remember_told(pipeline.store, unit.code)
                change.notified = True
            if change.changed or change.notified:
                events.act(pipeline.store, actor, "recheck", None, unit.code,
                           detail="; ".join(change.lines())[:2000])
        changes.append(change)
    if unit_code is None:  # every unit now agrees with today's lists: remember them
        with pipeline.store.transaction():
            events.put(pipeline.store, REFERENCE_KEY, reference_digest(pipeline))
    log.info("recheck by %s: %s units, %s changed", actor, len(changes),
             sum(1 for c in changes if c.changed))
    return RecheckResult(changes)


def _notify(pipeline: Pipeline, submission, report: Report, coverage: list, unit: Unit,
            status: str) -> None:
    """A fresh reply to the unit, threaded under its latest message, saying it is a recheck."""
    from .decide import Outcome
    from .filing import Filing

    decider, filer = pipeline.decider, pipeline.filer
    message = messages.get(pipeline.store, int(submission["message_row"]))
    assert message is not None
    raw = archive.read(pipeline.settings.paths.data_dir, message["archive"])
    env = decider.envelope_of(parse(raw))
    received = datetime.fromisoformat(submission["received_at"])
    extra = [decider.late_finding(received)] if submission["late"] else []
    reply = decider.reply(env, received)
    reply.unit_name, reply.recheck = unit.name, True
    outcome = Outcome(status, unit, late=bool(submission["late"]), reply_kind=status,
                      report=report, envelope=env, extra_findings=extra, reply=reply)
    filer.queue_reply(message, outcome, Filing(status, coverage,
                                               filer.describe(reply, report, coverage, outcome)))


def reference_digest(pipeline: Pipeline) -> str:
    folder = pipeline.settings.paths.reference_dir
    digest = hashlib.sha256()
    for name in REFERENCE_FILES:
        path = folder / name
        digest.update(name.encode() + b"\0" + (path.read_bytes() if path.exists() else b""))
    return digest.hexdigest()


def _tell_staff(pipeline: Pipeline, result: RecheckResult, key: str) -> None:
    """Once per change of the lists: what the recheck changed, and how to tell the units."""
    from .mail import smtp
    from .replies import notice

    store = pipeline.store
    if events.happened(store, key):
        return
    with store.transaction():
        for address in pipeline.settings.rules.staff:
            message = notice(pipeline.settings, pipeline.templates, "reference-changed",
                             {"lines": result.lines()}, to=address,
                             subject="Danh sách tham chiếu đã thay đổi: kết quả kiểm tra lại")
            smtp.queue(store, None, "reference-changed", message)
        store.event(key)


def notice_reference_change(pipeline: Pipeline) -> RecheckResult | None:
    """At each cycle: when the reference lists changed since the last one, recheck every
    unit (without answering units) and tell staff what changed. The caller holds the lock."""
    restored = RecheckResult([]) if units.restore(pipeline.store, pipeline.reference) else None
    digest = reference_digest(pipeline)
    store = pipeline.store
    known = events.get(store, REFERENCE_KEY)
    if known == digest:
        return restored
    result = None
    if known is not None:
        result = recheck(pipeline, notify=False, actor="hệ thống (danh sách tham chiếu thay đổi)")
        if result.changed:
            _tell_staff(pipeline, result, f"reference-changed:{digest[:16]}")
    with store.transaction():
        events.put(store, REFERENCE_KEY, digest)
    return result
