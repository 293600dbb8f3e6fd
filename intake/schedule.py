"""``intake run``: the intake cycle on a schedule (APScheduler 3.x), one instance per data folder.

Jobs run with ``max_instances=1`` and ``coalesce=True``: a slow cycle is never doubled
and a machine that slept catches up with one run, not a burst. SIGINT/SIGTERM let the
running cycle finish, then exit 0.
"""

from __future__ import annotations

import logging
import signal
import threading
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.blocking import BlockingScheduler

from . import campaign
from .config import TZ, Settings
from .errors import IntakeError, MailboxError
from .locks import cycle_lock, instance_lock
from .mail import imap, smtp
from .mail.oauth import imap_secret
from .pipeline import Pipeline
from .store import events

log = logging.getLogger(__name__)


def poll_job(settings: Settings) -> None:
    """One cycle; network and server errors are logged and alerted, never fatal."""
    try:
        pipeline = Pipeline(settings)
    except IntakeError as exc:
        log.error("cycle not started: %s", exc)
        return
    now = datetime.now(UTC)
    try:
        result = pipeline.run_cycle()
        log.info("cycle done fetched=%s statuses=%s sent=%s", result.fetched, result.statuses,
                 result.sent)
        with cycle_lock(settings.paths.data_dir):
            queued = sum(
                campaign.alert(pipeline.store, settings, pipeline.templates, now,
                               f"UIDVALIDITY của hộp thư thay đổi ({event['detail']}); hệ thống "
                               "đã đối chiếu lại bằng Message-ID, không ghi nhận trùng.",
                               f"alert:uidvalidity:{event['id']}")
                for event in events.of_kind(pipeline.store, "uidvalidity"))
            if queued:  # the cycle has already sent everything else that was due
                _deliver_quietly(pipeline)
    except MailboxError as exc:
        log.error("cycle failed: %s", exc)
        with cycle_lock(settings.paths.data_dir):
            pipeline.store.event("cycle-failed", str(exc)[:300])
            if "login" in str(exc).lower():
                campaign.alert(pipeline.store, settings, pipeline.templates, now,
                               f"không đăng nhập được hộp thư: {exc}",
                               f"alert:login:{now.astimezone(TZ):%Y-%m-%d}")
            _deliver_quietly(pipeline)  # replies already queued still go out
    except IntakeError as exc:
        log.error("cycle failed: %s", exc)
    except Exception:
        log.exception("cycle failed unexpectedly")
    finally:
        pipeline.store.close()


def campaign_job(settings: Settings, now: datetime | None = None) -> None:
    """Reminders, digest, final report and the watchdog; each sends once when due.

    Holds the cycle lock like an intake cycle: the two jobs of ``intake run`` (and any
    ``intake poll`` beside it) take turns on the store and the outbox.
    """
    now = now or datetime.now(UTC)
    try:
        pipeline = Pipeline(settings)
    except IntakeError as exc:
        log.error("campaign job not started: %s", exc)
        return
    try:
        with cycle_lock(settings.paths.data_dir):
            store, reference, env = pipeline.store, pipeline.reference, pipeline.templates
            sent = campaign.send_reminders(store, reference, settings, env, now)
            digests = campaign.send_digest(store, reference, settings, env, now)
            reports = campaign.send_final_report(store, reference, settings, env, now)
            alerts = campaign.watchdog(store, settings, env, now)
            if sent or digests or reports or alerts:
                log.info("campaign reminders=%s digest=%s final=%s alerts=%s", sent, digests,
                         reports, alerts)
            _deliver_quietly(pipeline)
    except Exception:
        log.exception("campaign job failed")
    finally:
        pipeline.store.close()


def _deliver_quietly(pipeline: Pipeline) -> None:
    """Send what is due; the caller holds the cycle lock."""
    try:
        smtp.deliver(pipeline.store, pipeline.settings)
    except Exception:
        log.exception("outbox delivery failed")


def build_scheduler(settings: Settings, minutes: float) -> BlockingScheduler:
    """The jobs of ``intake run``: never two of one at once, no burst after a sleep."""
    scheduler = BlockingScheduler(timezone=TZ)
    common = {"max_instances": 1, "coalesce": True,
              "misfire_grace_time": settings.schedule.misfire_grace_seconds}
    scheduler.add_job(poll_job, "interval", args=[settings], minutes=minutes, id="poll",
                      next_run_time=datetime.now(TZ), **common)
    scheduler.add_job(campaign_job, "interval", args=[settings], minutes=15, id="campaign",
                      next_run_time=datetime.now(TZ) + timedelta(seconds=5), **common)
    return scheduler


# Re-issue IDLE every 30 s: a stop is noticed promptly, and it stays far below Gmail's
# ~29 minutes and the NAT timeouts that silently kill long IDLEs.
IDLE_SECONDS = 30


def idle_watcher(settings: Settings, scheduler: BlockingScheduler,
                 stop: threading.Event) -> None:
    """IMAP IDLE: when the server announces new mail, run the poll job now.

    The interval poll stays as the safety net. A dropped connection is re-opened with
    exponential back-off (capped at 5 minutes); nothing here can stop the daemon.
    """
    delay = 1.0
    while not stop.is_set():
        try:
            with imap.connect(settings.mailbox, imap_secret(settings)) as box:
                if "IDLE" not in box.client.capabilities:
                    log.info("server has no IDLE; relying on the interval poll")
                    return
                box.folder.set(settings.mailbox.folder)
                delay = 1.0
                while not stop.is_set():
                    responses = box.idle.wait(timeout=IDLE_SECONDS)
                    if any(b"EXISTS" in r or b"RECENT" in r for r in responses):
                        log.info("IDLE: new mail, polling now")
                        scheduler.modify_job("poll", next_run_time=datetime.now(TZ))
        except Exception as exc:  # network errors, server restarts: wait, reconnect
            log.warning("IDLE connection lost (%s); reconnecting in %.0f s", exc, delay)
            stop.wait(delay)
            delay = min(delay * 2, 300)


def run_forever(settings: Settings, interval_minutes: float | None = None) -> int:
    minutes = interval_minutes or settings.schedule.poll_minutes
    with instance_lock(settings.paths.data_dir):
        first = Pipeline(settings)  # checks templates and reference data before starting
        first.store.event("started")
        first.store.close()
        scheduler = build_scheduler(settings, minutes)

        def stop(signum, _frame) -> None:
            log.info("signal %s: finishing the running step, then stopping", signum)
            scheduler.shutdown(wait=False)

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        stopping = threading.Event()
        if settings.schedule.idle:
            threading.Thread(target=idle_watcher, args=(settings, scheduler, stopping),
                             name="imap-idle", daemon=True).start()
        log.info("intake run: polling every %s minutes", minutes)
        try:
            scheduler.start()
        finally:
            stopping.set()
    return 0
