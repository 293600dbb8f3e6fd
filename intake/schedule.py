"""``intake run``: the intake cycle on a schedule (APScheduler 3.x), one instance per data folder.

Jobs run with ``max_instances=1`` and ``coalesce=True``: a slow cycle is never doubled
and a machine that slept catches up with one run, not a burst. SIGINT/SIGTERM let the
running cycle finish, then exit 0.
"""

from __future__ import annotations

import fcntl
import logging
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from apscheduler.schedulers.blocking import BlockingScheduler

from .config import TZ, Settings
from .errors import IntakeError, LockError
from .pipeline import Pipeline

log = logging.getLogger(__name__)


@contextmanager
def instance_lock(data_dir: Path) -> Iterator[Path]:
    """An exclusive lock file; a second process on the same data folder is refused."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "intake.lock"
    handle = path.open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise LockError(f"another intake process is already running on {data_dir}",
                        hint="stop it first, or give this one another data_dir") from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    try:
        yield path
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def poll_job(settings: Settings) -> None:
    """One cycle; network and server errors are logged, never allowed to stop the daemon."""
    try:
        pipeline = Pipeline(settings)
    except IntakeError as exc:
        log.error("cycle not started: %s", exc)
        return
    try:
        result = pipeline.run_cycle()
        log.info("cycle done fetched=%s statuses=%s sent=%s", result.fetched, result.statuses,
                 result.sent)
    except IntakeError as exc:
        log.error("cycle failed: %s", exc)
    except Exception:
        log.exception("cycle failed unexpectedly")
    finally:
        pipeline.store.close()


def run_forever(settings: Settings, interval_minutes: float | None = None) -> int:
    minutes = interval_minutes or settings.schedule.poll_minutes
    with instance_lock(settings.paths.data_dir):
        scheduler = BlockingScheduler(timezone=TZ)
        scheduler.add_job(poll_job, "interval", args=[settings], minutes=minutes,
                          id="poll", max_instances=1, coalesce=True,
                          misfire_grace_time=settings.schedule.misfire_grace_seconds,
                          next_run_time=_now())

        def stop(signum, _frame) -> None:
            log.info("signal %s: finishing the running step, then stopping", signum)
            scheduler.shutdown(wait=False)

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        log.info("intake run: polling every %s minutes", minutes)
        scheduler.start()
    return 0


def _now():
    from datetime import datetime

    return datetime.now(TZ)
