"""Who may work on a data folder, and when: two advisory locks (``flock``).

* The **instance lock** (``intake.lock``) is held by ``intake run`` for its whole life, so
  two daemons never share a data folder; a second one is refused at once.
* The **cycle lock** (``intake.cycle.lock``) is held only while a step that changes the
  store works: an intake cycle, a campaign job, a rebuild, a staff command. Everything
  else waits its turn (SPEC §4), so ``intake poll`` beside ``intake run`` never files,
  sends or moves the same message twice.

``flock`` locks belong to an open file description, so two threads of one process that
each open the file exclude each other too, and the kernel drops a lock when its process
dies: a SIGKILL can never leave a stale lock behind.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import LockError

log = logging.getLogger(__name__)

INSTANCE_LOCK = "intake.lock"
CYCLE_LOCK = "intake.cycle.lock"
DEFAULT_WAIT_SECONDS = 900.0  # a cycle on a large backlog can take minutes, not hours


def _open(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.open("a+")


@contextmanager
def instance_lock(data_dir: Path) -> Iterator[Path]:
    """An exclusive lock for the daemon; a second daemon on the same folder is refused."""
    path = data_dir / INSTANCE_LOCK
    handle = _open(path)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise LockError(f"another intake run is already running on {data_dir}",
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


@contextmanager
def cycle_lock(data_dir: Path, wait_seconds: float = DEFAULT_WAIT_SECONDS,
               on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """Hold the store for one step; wait (up to ``wait_seconds``) while another step runs.

    ``on_wait`` is called once when the lock is busy, so a command can say why it pauses.
    """
    handle = _open(data_dir / CYCLE_LOCK)
    try:
        if not _try(handle):
            if on_wait is not None:
                on_wait()
            log.info("waiting for the running intake step on %s", data_dir)
            deadline = time.monotonic() + wait_seconds
            while not _try(handle):
                if time.monotonic() >= deadline:
                    raise LockError(
                        f"another intake step has held {data_dir} for over "
                        f"{wait_seconds:.0f} s",
                        hint="see `intake status`, or the journal of intake run; try again later")
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
    finally:
        handle.close()


def _try(handle) -> bool:
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True
