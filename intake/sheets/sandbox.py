"""Run a reader on untrusted bytes in a separate process with memory and time limits.

Why: python-calamine is Rust. When an allocation fails (a 1.8 KB .xlsx spanning
A1:XFD1048576 asks for 550 GB) or it hits a bug, the Rust runtime aborts the whole
process; a daemon that dies on the same message at every poll never gets past it. In a
child process with an address-space limit (``RLIMIT_AS``) the same failure ends only
the child, and the caller gets an ``Outcome`` saying why.

One worker serves file after file: a request is a pickle over a pipe (about a
millisecond for a small file), not a new interpreter (~0.3 s, paid once per process and
after each failure). The worker is a fresh ``python`` started with ``subprocess``, not a
fork: it inherits no socket, lock or thread state from intake, and sees only a minimal
environment (no mailbox secrets). Calls are serialised; intake reads one file at a time.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import IntakeError

try:
    import resource
except ImportError:  # not POSIX: the worker runs without a memory limit
    resource = None  # type: ignore[assignment]

MB = 1024 * 1024
# Rust aborts (SIGABRT) when an allocation fails; the kernel's OOM killer sends SIGKILL.
MEMORY_SIGNALS = frozenset({signal.SIGABRT, signal.SIGKILL})
HEADER = struct.Struct("!Q")
PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the folder holding ``intake/``
ENVIRONMENT = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "RUST_BACKTRACE")
STARTUP_SECONDS = 60.0  # a cold interpreter and its imports; the per-file limit starts after


@dataclass(frozen=True)
class Outcome:
    """What a sandboxed call gave: its value, or why there is none.

    ``failure`` is "" (success), "memory" (MemoryError, or killed by SIGABRT/SIGKILL),
    "timeout", "crashed" (another signal or exit) or "error" (an exception in the call).
    """

    value: Any = None
    failure: str = ""
    detail: str = ""

    @property
    def ok(self) -> bool:
        return not self.failure


class SandboxError(IntakeError):
    """The worker could not be started: a fault of this machine, not of any file."""

    hint = ("the reader process runs `python -c 'import intake.sheets.read'` with this "
            "interpreter; check that it works (its error is on stderr)")


class _Gone(Exception):
    """The other end closed the pipe."""


class _Late(Exception):
    """No complete reply before the deadline."""


def _write(fd: int, obj: object) -> None:
    payload = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    view = memoryview(HEADER.pack(len(payload)) + payload)
    while view:
        view = view[os.write(fd, view):]


class _TooBig(Exception):
    """A message over the size allowed; it was read and dropped, the pipe stays in step."""


def _read(fd: int, deadline: float | None = None, max_size: int = 0) -> Any:
    (size,) = HEADER.unpack(_read_exactly(fd, HEADER.size, deadline))
    if max_size and size > max_size:
        while size:
            size -= len(_read_exactly(fd, min(size, 1 << 20), deadline))
        raise _TooBig
    return pickle.loads(_read_exactly(fd, size, deadline))


def _read_exactly(fd: int, size: int, deadline: float | None) -> bytes:
    chunks: list[bytes] = []
    while size:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise _Late
        chunk = os.read(fd, min(size, 1 << 20))
        if not chunk:
            raise _Gone
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _address_space() -> int:
    """Bytes of address space this process maps now (Linux ``/proc``); 0 when unknown."""
    try:
        with open("/proc/self/statm", encoding="ascii") as handle:
            return int(handle.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _limit_memory(budget: int) -> None:
    """Cap this process's address space at what it maps now plus ``budget`` bytes.

    Relative to the current size (interpreter, calamine, pydantic: ~70 MB) so that the
    budget means "what one file may cost", whatever the libraries map.
    """
    if resource is None or budget <= 0:
        return
    limit = _address_space() + budget
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def serve(requests: int, replies: int, budget: int) -> None:
    """The worker's loop: load the readers, limit memory, then answer each request.

    Stop signals are ignored: systemd sends SIGTERM to every process of the service, and
    intake finishes its running step first, which may be a read in this worker. It ends
    when intake closes the pipe (or with SIGKILL).
    """
    for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(number, signal.SIG_IGN)
    import intake.sheets.read  # noqa: F401  (loaded before the limit is measured)

    _limit_memory(budget)
    _write(replies, ("ready", os.getpid()))
    while True:
        try:
            # Receiving and unpickling holds a request about three times over.
            function, args = _read(requests, max_size=budget // 3)
        except _TooBig:
            _write(replies, ("memory", "the request alone is over the memory budget"))
            continue
        except (_Gone, OSError):
            return
        try:
            reply: tuple[str, Any] = ("ok", function(*args))
        except MemoryError:
            reply = ("memory", "MemoryError")
        except Exception as exc:
            reply = ("error", f"{type(exc).__name__}: {exc}"[:500])
        try:
            _write(replies, reply)
        except MemoryError:  # pickling a result too big for the budget
            _write(replies, ("memory", "MemoryError while sending the result"))
        except OSError:
            return


class Sandbox:
    """A persistent, memory- and time-limited worker process for untrusted readers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._requests = self._replies = -1  # our ends of the two pipes
        self._budget = -1
        self._ready = False  # the worker said it is ready (a prestarted one may not have yet)
        self.started = 0  # workers started so far (tests and benchmarks read it)

    def call(self, function: Callable[..., Any], *args: Any, memory_mb: int,
             seconds: float) -> Outcome:
        """Run ``function(*args)`` in the worker; never raises for what the call does.

        ``function`` must be importable by name (a module-level function) and its
        arguments and result picklable. Raises ``SandboxError`` only when no worker can
        be started at all.
        """
        with self._lock:
            budget = memory_mb * MB
            for attempt in (1, 2):
                self._worker(budget)
                try:
                    _write(self._requests, (function, args))
                    break
                except (BrokenPipeError, ConnectionResetError):
                    if attempt == 2:  # it died reading this very request
                        return self._died()
                    self._stop()  # it died between calls (killed from outside): a new one
            try:
                kind, payload = _read(self._replies, time.monotonic() + seconds)
            except _Late:
                self._stop()
                return Outcome(failure="timeout", detail=f"no result within {seconds:g} s")
            except (_Gone, OSError):
                return self._died()
            if kind == "memory":
                self._stop()  # a fresh worker, not one whose heap just ran out
        if kind == "ok":
            return Outcome(value=payload)
        return Outcome(failure=kind, detail=str(payload))

    @property
    def pid(self) -> int | None:
        """The worker's process id, None before the first call or after a failure."""
        return self._process.pid if self._process is not None else None

    def close(self) -> None:
        """Stop the worker (at exit, and in tests)."""
        with self._lock:
            self._stop()

    def _worker(self, budget: int) -> None:
        if self._process is not None and (self._budget != budget
                                          or self._process.poll() is not None):
            self._stop()
        if self._process is None:
            self._spawn(budget)
        if self._ready:
            return
        try:  # the time limit of a call counts from here, not from the interpreter's start
            _read(self._replies, time.monotonic() + STARTUP_SECONDS)
        except (_Late, _Gone, OSError) as exc:
            self._stop()
            raise SandboxError(f"the reader process did not start ({type(exc).__name__})"
                               ) from None
        self._ready = True

    def _spawn(self, budget: int) -> None:
        requests_r, requests_w = os.pipe()
        replies_r, replies_w = os.pipe()
        environment = {k: os.environ[k] for k in ENVIRONMENT if k in os.environ}
        environment["PYTHONPATH"] = str(PACKAGE_ROOT)
        code = (f"from intake.sheets.sandbox import serve; "
                f"serve({requests_r}, {replies_w}, {budget})")
        try:
            self._process = subprocess.Popen(
                # -P: this intake (PYTHONPATH), never one in the working directory
                [sys.executable, "-P", "-c", code], pass_fds=(requests_r, replies_w),
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,  # intake's stdout may be JSON
                env=environment,
                start_new_session=True)  # Ctrl-C is for intake; the worker ends at EOF
        finally:
            os.close(requests_r)
            os.close(replies_w)
        self._requests, self._replies, self._budget = requests_w, replies_r, budget
        self._ready = False
        self.started += 1

    def _died(self) -> Outcome:
        """The worker closed its pipe mid-call: say how it ended, and forget it."""
        code = None
        if self._process is not None:
            try:
                code = self._process.wait(5)
            except subprocess.TimeoutExpired:
                pass
        self._stop()
        if code is not None and code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            kind = "memory" if -code in MEMORY_SIGNALS else "crashed"
            return Outcome(failure=kind, detail=f"reader killed by {name}")
        return Outcome(failure="crashed", detail=f"reader exited with status {code}")

    def _stop(self) -> None:
        for fd in (self._requests, self._replies):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        if self._process is not None:
            if self._process.poll() is None:
                self._process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(5)
        self._process, self._requests, self._replies, self._budget = None, -1, -1, -1
        self._ready = False


_default: Sandbox | None = None
_default_lock = threading.Lock()


def default() -> Sandbox:
    """The process-wide sandbox that ``read_file`` uses."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Sandbox()
            atexit.register(_default.close)
        return _default
