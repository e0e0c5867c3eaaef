"""The deadline watchdog of ``gate.transport``: one thread that cuts a connection when its
request's deadline passes, woken only when a deadline comes sooner than those it knows."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

from gate.transport import COMPACT_AFTER, _Watchdog


class CountingCondition(threading.Condition):
    def __init__(self) -> None:
        super().__init__()
        self.notified = 0

    def notify(self, n: int = 1) -> None:
        self.notified += 1
        super().notify(n)


def watchdog() -> tuple[_Watchdog, CountingCondition]:
    made = _Watchdog()
    made._wake = wake = CountingCondition()
    return made, wake


def cut(peer: socket.socket) -> bool:
    """True when the other end of ``peer`` was shut down (well before a generous bound)."""
    peer.settimeout(20)
    try:
        return peer.recv(1) == b""
    except TimeoutError:
        return False


def test_watchdog__a_sooner_deadline_wakes_it_and_is_cut() -> None:
    dog, wake = watchdog()
    late, late_peer = socket.socketpair()
    soon, soon_peer = socket.socketpair()
    with late, late_peer, soon, soon_peer:
        dog.watch(time.monotonic() + 3600, late)
        dog.watch(time.monotonic() + 0.05, soon)
        assert cut(soon_peer)
        assert wake.notified == 1  # the first call started the thread; the second woke it
        late_peer.settimeout(0)
        try:
            late_peer.recv(1)
        except BlockingIOError:
            pass  # still open: nothing to read, not shut down
        else:
            raise AssertionError("the connection with an hour left was cut")


def test_watchdog__later_deadlines_do_not_wake_it() -> None:
    dog, wake = watchdog()
    sock, peer = socket.socketpair()
    with sock, peer:
        now = time.monotonic()
        tickets = [dog.watch(now + 3600 + i, sock) for i in range(50)]
        for ticket in tickets:
            dog.cancel(ticket)
    assert wake.notified == 0


def test_watchdog__cancelled_deadlines_do_not_pile_up() -> None:
    dog, _ = watchdog()
    sock, peer = socket.socketpair()
    live: list[Any] = []
    with sock, peer:
        now = time.monotonic()
        live.append(dog.watch(now + 3600, sock))  # one call that stays in flight
        for i in range(20 * COMPACT_AFTER):
            dog.cancel(dog.watch(now + 3601 + i, sock))
        assert len(dog._due) <= 2 * len(dog._watched) + COMPACT_AFTER + 1
        assert list(dog._watched) == live
