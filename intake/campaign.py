"""Messages we start over a campaign: reminders, the daily digest, the final report, alerts.

Each job takes ``now`` so a test can drive it with any clock, and records what it sent
as an event in the store ("reminder:CT:2021-02-13"), so it sends each message once
however often the scheduler calls it, across restarts.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta

from .config import TZ, Settings
from .labels import kind_label, status_label
from .mail import smtp
from .reference import Reference
from .replies import local_time, notice
from .sheets.template import template_bytes
from .staff import waiting
from .store import Status, Store, events, messages, outbox, units
from .workbook import write as write_workbook

log = logging.getLogger(__name__)


def _done(store: Store, key: str) -> bool:
    return events.happened(store, key)


def _mark(store: Store, key: str, detail: str = "") -> None:
    store.event(key, detail)


def _at_or_after(now: datetime, hhmm: str) -> bool:
    hour, minute = (int(x) for x in hhmm.split(":"))
    local = now.astimezone(TZ)
    return (local.hour, local.minute) >= (hour, minute)


def summary(store: Store, reference: Reference) -> dict[str, object]:
    """The units' stored states as the digest and final-report templates read them (the
    same figures as the workbook's first sheet and ``intake status``)."""
    states = units.summaries(store, reference)
    rows = [{
        "code": item.unit.code, "name": item.unit.name, "status": status_label(item.status),
        "raw_status": item.status, "count": item.submissions, "valid": item.valid,
        "provincial": item.provincial, "district": item.district, "invalid": item.invalid,
        "late": item.late,
        "coverage": f"{item.coverage:.0%}" if item.coverage is not None else "",
    } for item in states]
    totals = {k: sum(getattr(item, k) for item in states)
              for k in ("valid", "provincial", "district")}
    not_sent = [item.unit.name for item in states if item.status != Status.ACCEPTED]
    return {"units": rows, "totals": totals, "not_sent": not_sent}


def send_reminders(store: Store, reference: Reference, settings: Settings, env,
                   now: datetime) -> list[str]:
    """On each configured day before the deadline, once, to units not yet accepted."""
    deadline = settings.campaign.deadline
    if now >= deadline or not _at_or_after(now, settings.schedule.reminder_time):
        return []
    days_left = (deadline.astimezone(TZ).date() - now.astimezone(TZ).date()).days
    if days_left not in settings.schedule.reminder_days_before:
        return []
    figures = {u["code"]: u for u in summary(store, reference)["units"]}  # type: ignore[union-attr]
    sent = []
    for unit in reference.units.values():
        state = figures[unit.code]
        key = f"reminder:{unit.code}:{now.astimezone(TZ).date().isoformat()}"
        if state["raw_status"] == "accepted" or _done(store, key) or not unit.emails:
            continue
        blank = template_bytes(settings, reference, unit)
        message = notice(
            settings, env, "reminder",
            {"unit_name": unit.name, "year": settings.campaign.year,
             "deadline": local_time(deadline), "days_left": days_left,
             "status": state["status"] if state["raw_status"] else "",
             "since": settings.rules.recognised_since},
            to=unit.emails[0],
            subject=f"Nhắc hạn gửi danh sách Chi đoàn kiểu mẫu năm {settings.campaign.year}",
            attachments=[(f"Mau_DS_CDKM_{unit.code}.xlsx", blank)])
        with store.transaction():
            smtp.queue(store, None, "reminder", message)
            _mark(store, key)
        sent.append(unit.code)
    return sent


def _staff_mail(store: Store, reference: Reference, settings: Settings, env, kind: str,
                subject: str, now: datetime, extra: dict[str, object]) -> int:
    if not settings.rules.staff:
        log.warning("%s not sent: no [rules] staff addresses configured", kind)
        return 0
    path = write_workbook(store, reference, settings)
    context = {"year": settings.campaign.year, "deadline": local_time(settings.campaign.deadline),
               "now": local_time(now), **summary(store, reference), **extra}
    for address in settings.rules.staff:
        message = notice(settings, env, kind, context, to=address, subject=subject,
                         attachments=[(path.name, path.read_bytes())])
        smtp.queue(store, None, kind, message)
    return len(settings.rules.staff)


def send_digest(store: Store, reference: Reference, settings: Settings, env,
                now: datetime) -> int:
    """Once a day at ``digest_time``: who sent, who has not, what failed, the workbook."""
    day = now.astimezone(TZ).date().isoformat()
    key = f"digest:{day}"
    if not _at_or_after(now, settings.schedule.digest_time) or _done(store, key):
        return 0
    since = (now - timedelta(days=1)).astimezone(UTC).isoformat(timespec="seconds")
    received = messages.received_since(store, since)
    failures = [f"{kind_label(r['kind']).capitalize()} tới {r['recipient']} "
                f"{'bị trả lại' if r['state'] == 'bounced' else 'gửi lỗi'}: {r['last_error']}"
                for r in outbox.in_state(store, "failed", "bounced")]
    failures += [f"Thư chờ Ban xem xét (mã {w.token}): {w.sender or '(không rõ)'}, "
                 f"“{w.subject}”, nhận lúc {local_time(datetime.fromisoformat(w.received_at))}"
                 f" – {w.reason}"
                 for w in waiting(store) if w.token]
    with store.transaction():
        count = _staff_mail(store, reference, settings, env, "digest",
                            "Tổng hợp tiếp nhận danh sách Chi đoàn kiểu mẫu ngày "
                            f"{now.astimezone(TZ):%d/%m/%Y}", now,
                            {"received_today": received, "failures": failures})
        _mark(store, key)
    return count


def _figures(store: Store, reference: Reference) -> str:
    """What the final report reports, as one comparable string: status and counts per unit."""
    units = summary(store, reference)["units"]
    return json.dumps([[u["code"], u["raw_status"], u["valid"], u["provincial"], u["district"],
                        u["invalid"]] for u in units])  # type: ignore[union-attr]


def send_final_report(store: Store, reference: Reference, settings: Settings, env,
                      now: datetime) -> int:
    """After the deadline, once an intake cycle has completed past it (so the mail that
    arrived before the deadline is in it, not only what was filed before a restart);
    again, marked as an update, whenever a late list or a correction changes the figures.
    """
    deadline = settings.campaign.deadline
    cycle = store.last_event("cycle")
    if now < deadline or cycle is None or datetime.fromisoformat(cycle) < deadline:
        return 0
    figures = _figures(store, reference)
    sent = events.of_kind_prefix(store, "final-report")
    if sent and sent[-1]["detail"] == figures:
        return 0
    if sent and not sent[-1]["detail"]:  # sent by a version that kept no figures: from now
        _mark(store, "final-report:baseline", figures)
        return 0
    update = sum(1 for e in sent if e["detail"]) if sent else 0
    year = settings.campaign.year
    subject = (f"Báo cáo cập nhật (lần {update}) kết quả đăng ký Chi đoàn kiểu mẫu năm {year}"
               if update else f"Báo cáo kết quả đăng ký Chi đoàn kiểu mẫu năm {year}")
    previous = local_time(datetime.fromisoformat(sent[-1]["at"])) if sent else ""
    with store.transaction():
        count = _staff_mail(store, reference, settings, env, "final-report", subject, now,
                            {"update": update, "previous": previous})
        _mark(store, f"final-report:{update}" if update else "final-report", figures)
    return count


def alert(store: Store, settings: Settings, env, now: datetime, problem: str,
          key: str) -> int:
    """One email to staff per incident (``key``), never a stream of them.

    The key is checked again inside the transaction: two jobs (or processes) meeting the
    same incident at once still queue one alert.
    """
    if not settings.rules.staff or _done(store, key):
        return 0
    last = store.last_event("cycle")
    messages = [notice(settings, env, "alert",
                       {"problem": problem,
                        "last_success": local_time(datetime.fromisoformat(last)) if last else ""},
                       to=address, subject="Cảnh báo: hệ thống tiếp nhận danh sách")
                for address in settings.rules.staff]
    with store.transaction():
        if _done(store, key):
            return 0
        for message in messages:
            smtp.queue(store, None, "alert", message)
        _mark(store, key, problem)
    return len(messages)


def watchdog(store: Store, settings: Settings, env, now: datetime) -> int:
    """No successful cycle for ``alert_after_minutes``: tell staff once per silence."""
    last = store.last_event("cycle") or store.last_event("started")
    if last is None:
        return 0
    silent = now - datetime.fromisoformat(last)
    if silent < timedelta(minutes=settings.schedule.alert_after_minutes):
        return 0
    minutes = int(silent.total_seconds() // 60)
    return alert(store, settings, env, now,
                 f"không quét được hộp thư trong {minutes} phút.", f"alert:silent:{last}")
