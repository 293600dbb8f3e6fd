"""The generic total deadline (intake/mail/deadline.py) on a plain socket pair."""

from __future__ import annotations

import socket
import time

import pytest

from intake.mail.deadline import Deadline, DeadlineExceeded


def test_deadline_cuts_a_blocked_read_and_names_the_operation():
    ours, theirs = socket.socketpair()
    with ours, theirs:
        started = time.monotonic()
        with pytest.raises(DeadlineExceeded, match="reading the greeting exceeded its "
                                                   r"deadline of 0\.3 s") as caught:
            with Deadline(lambda: ours, 0.3, "reading the greeting"):
                ours.recv(1)  # the peer never writes; the cut reads as end of file
        assert time.monotonic() - started < 0.3 + 0.5
        assert isinstance(caught.value, TimeoutError)
        assert (caught.value.operation, caught.value.seconds) == ("reading the greeting", 0.3)


def test_deadline_stays_out_of_the_way_of_quick_work():
    ours, theirs = socket.socketpair()
    with ours, theirs:
        theirs.sendall(b"x")
        with Deadline(lambda: ours, 5, "quick read"):
            assert ours.recv(1) == b"x"
        theirs.sendall(b"y")
        assert ours.recv(1) == b"y"  # the socket was left alone
