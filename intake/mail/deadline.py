"""A total deadline for a blocking network conversation (SMTP now, IMAP commands later).

A socket timeout bounds one ``recv``: a server that trickles one byte every few seconds
never trips it, and holds a send for minutes. ``Deadline`` bounds the whole block: when
the time is up a timer thread shuts the socket down (the blocked call then fails at
once) and the block's error is replaced by a ``DeadlineExceeded`` naming the operation
and the limit.

The socket is asked for through a callable, because the conversation may replace it
while it runs (STARTTLS wraps it, a reconnect opens a new one); once the deadline has
passed, every socket the callable shows is shut down until the block ends.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from types import TracebackType

SocketSource = Callable[[], "socket.socket | None"]
POLL_SECONDS = 0.05  # how often an expired deadline looks for a socket to cut


class DeadlineExceeded(TimeoutError):
    """An operation ran past its total deadline (a ``TimeoutError``, hence an ``OSError``,
    so code that already treats network failures as temporary keeps doing so)."""

    def __init__(self, operation: str, seconds: float) -> None:
        super().__init__(f"{operation} exceeded its deadline of {seconds:g} s")
        self.operation = operation
        self.seconds = seconds


class Deadline:
    """``with Deadline(lambda: client.sock, 30, "SMTP send to host:25"):`` …

    Once the timer has fired the block raises ``DeadlineExceeded`` however it ended: a
    cut socket often reads as a clean end of file, which must not pass for success. A
    caller whose work may have completed in the very last instant (a server's "250 OK")
    notes that inside the block and checks it when the error arrives.
    """

    def __init__(self, get_socket: SocketSource, seconds: float, operation: str) -> None:
        self.get_socket = get_socket
        self.seconds = seconds
        self.operation = operation
        self.expired = False
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Deadline:
        self._thread = threading.Thread(target=self._watch, name="deadline", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()
        if not self.expired or isinstance(exc, DeadlineExceeded):
            return
        if exc is None or isinstance(exc, Exception):  # never mask KeyboardInterrupt & co
            raise DeadlineExceeded(self.operation, self.seconds) from exc

    def _watch(self) -> None:
        if self._done.wait(self.seconds):
            return
        self.expired = True
        cut: set[int] = set()
        while not self._done.is_set():
            sock = self._current()
            if sock is not None and id(sock) not in cut and _shutdown(sock):
                cut.add(id(sock))
            self._done.wait(POLL_SECONDS)

    def _current(self) -> socket.socket | None:
        try:
            return self.get_socket()
        except Exception:  # the owner is half torn down: nothing to cut this round
            return None


def _shutdown(sock: socket.socket) -> bool:
    """Shut both directions so a blocked recv/send in the owning thread returns now.

    ``socket.socket.shutdown`` is called on the class, not the instance: on a TLS socket
    the ``SSLSocket`` override would also drop its TLS state under the other thread's feet.
    """
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:  # closed, or not connected yet: try again at the next poll
        return False
    return True


def deadline(get_socket: SocketSource, seconds: float, operation: str) -> Deadline:
    """The context manager, as a function for call sites that read better that way."""
    return Deadline(get_socket, seconds, operation)
