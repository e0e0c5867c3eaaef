"""HTTP for every client of the gate: pooled sessions, JSON POSTs whose failures are sorted the way
``gate.retry`` retries them, and every message built from a reply scrubbed (``gate.scrub``)."""

from __future__ import annotations

import contextlib
import heapq
import itertools
import json
import socket
import threading
import time
from collections.abc import Mapping
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ProtocolError, ReadTimeoutError

from gate.retry import CaseTimeout, Transient, retry_after
from gate.scrub import Scrubber


class HttpRefused(Exception):
    """A reply a retry would not fix: a 4xx other than 429, or a body that is not JSON."""


COMPACT_AFTER = 1024
"""Cancelled deadlines the watchdog's heap may hold beyond twice the calls in flight."""


class _Watchdog:
    """One thread that shuts a socket down when its deadline passes: a blocked read then returns
    at once, however slowly the server trickles the status line and headers."""

    def __init__(self) -> None:
        self._due: list[tuple[float, int]] = []
        self._watched: dict[int, socket.socket] = {}
        self._tickets = itertools.count()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def watch(self, deadline: float, sock: socket.socket) -> int:
        ticket = next(self._tickets)
        with self._wake:
            # The thread sleeps until the earliest deadline it knows of: it is woken only when
            # this one comes sooner. Calls with one timeout come due in the order they start,
            # so a run of them wakes it for none (a wake per call cost a thread switch each).
            sooner = not self._due or deadline < self._due[0][0]
            if len(self._due) > 2 * len(self._watched) + COMPACT_AFTER:
                # Cancelled tickets behind a live one stay until it comes due: drop them here, so
                # the heap stays proportional to the calls in flight.
                self._due = [due for due in self._due if due[1] in self._watched]
                heapq.heapify(self._due)
            heapq.heappush(self._due, (deadline, ticket))
            self._watched[ticket] = sock
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="gate-deadline", daemon=True)
                self._thread.start()
            elif sooner:
                self._wake.notify()
        return ticket

    def cancel(self, ticket: int) -> None:
        with self._wake:
            self._watched.pop(ticket, None)

    def _run(self) -> None:
        with self._wake:
            while True:
                # Cancelled tickets leave the heap when they reach its top.
                while self._due and self._due[0][1] not in self._watched:
                    heapq.heappop(self._due)
                if not self._due:
                    self._wake.wait()
                    continue
                deadline, ticket = self._due[0]
                left = deadline - time.monotonic()
                if left > 0:
                    self._wake.wait(left)
                    continue
                heapq.heappop(self._due)
                with contextlib.suppress(OSError):
                    self._watched.pop(ticket).shutdown(socket.SHUT_RDWR)


_WATCHDOG = _Watchdog()
_DEADLINE = threading.local()
"""The monotonic deadline of the request this thread is making (``post_json`` sets it)."""


class _Watched:
    """A connection whose wait for the reply's head ends at the thread's request deadline."""

    sock: socket.socket | None

    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        deadline = getattr(_DEADLINE, "at", None)
        if deadline is None or self.sock is None:
            return super().getresponse(*args, **kwargs)  # type: ignore[misc]
        ticket = _WATCHDOG.watch(deadline, self.sock)
        try:
            return super().getresponse(*args, **kwargs)  # type: ignore[misc]
        finally:
            _WATCHDOG.cancel(ticket)


class _WatchedHTTP(_Watched, HTTPConnection):
    pass


class _WatchedHTTPS(_Watched, HTTPSConnection):
    pass


class _Pool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTP


class _TLSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPS


def session(pool_size: int, headers: Mapping[str, str] | None = None) -> requests.Session:
    """A session keeping up to ``pool_size`` connections open (one per concurrent caller, so
    they are reused across calls), which never retries by itself: ``gate.retry`` does."""
    made = requests.Session()
    made.headers.update(headers or {})
    pool = HTTPAdapter(pool_connections=1, pool_maxsize=pool_size, max_retries=0)
    pool.poolmanager.pool_classes_by_scheme = {"http": _Pool, "https": _TLSPool}
    made.mount("http://", pool)
    made.mount("https://", pool)
    return made


MAX_REPLY_BYTES = 32 * 1024 * 1024
"""A reply larger than this is refused: a pipeline's output is never that big."""
_CHUNK = 64 * 1024


def post_json(
    session: requests.Session,
    url: str,
    body: Any,
    timeout_s: float,
    *,
    scrub: Scrubber,
    label: str = "",
) -> Any:
    """POST ``body`` as JSON and return the decoded reply, classifying every failure.

    ``timeout_s`` is a deadline for the whole exchange, connect to last byte: the body is read as
    it arrives, each read waiting only for the time left, so a server trickling a byte at a time
    times out like a silent one. Timeouts raise ``CaseTimeout``; connection errors, 429 and 5xx
    raise ``Transient`` (with the server's requested wait) for the caller to retry; anything else
    ``HttpRefused``. Messages carry the exception type, never its text (requests quotes headers,
    and with them tokens), and the server's own explanation is scrubbed before it is cut.
    """
    deadline = time.monotonic() + timeout_s
    timed_out = CaseTimeout(f"{label}no reply from {url} after {timeout_s:g} s")
    _DEADLINE.at = deadline
    try:
        response = session.post(url, json=body, timeout=timeout_s, stream=True)
    except requests.Timeout:
        raise timed_out from None
    except requests.RequestException as exc:
        if time.monotonic() >= deadline:  # the watchdog cut the connection at the deadline
            raise timed_out from None
        raise Transient(f"{label}cannot reach {url}: {type(exc).__name__}") from None
    finally:
        _DEADLINE.at = None
    with response:
        content = _read_body(response, deadline, timed_out, f"{label}{url}")
    status = response.status_code
    text = content.decode(response.encoding or "utf-8", errors="replace")
    # A labelled caller (a model name) says where; otherwise the URL does.
    source = "" if label else f" from {url}"
    if status == 429 or status >= 500:
        wait = retry_after(response.headers)
        # A 503 that says when to come back is the server shedding load; without, it is down.
        limited = status == 429 or (status == 503 and wait is not None)
        raise Transient(
            f"{label}HTTP {status}{source}{_detail(text, scrub)}", wait, rate_limited=limited
        )
    if status >= 400:
        raise HttpRefused(f"{label}HTTP {status}{source}{_detail(text, scrub)}")
    try:
        return json.loads(content)
    except (ValueError, RecursionError):
        raise HttpRefused(f"{label}the reply is not JSON: {scrub.cut(text, 200)!r}") from None


def _read_body(
    response: requests.Response, deadline: float, timed_out: CaseTimeout, where: str
) -> bytes:
    """The whole body, read before ``deadline`` (monotonic) or ``timed_out`` is raised."""
    raw = response.raw
    chunks: list[bytes] = []
    size = 0
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise timed_out
            _limit_wait(raw, left)
            chunk = raw.read1(_CHUNK, decode_content=True)
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > MAX_REPLY_BYTES:
                raise HttpRefused(f"{where}: the reply is larger than {MAX_REPLY_BYTES} bytes")
            chunks.append(chunk)
    except (requests.Timeout, ReadTimeoutError, TimeoutError):
        raise timed_out from None
    except (ProtocolError, OSError) as exc:
        raise Transient(f"{where}: the reply broke off: {type(exc).__name__}") from None


def _limit_wait(raw: Any, seconds: float) -> None:
    """Let the next read of ``raw`` wait at most ``seconds`` (the socket's own timeout)."""
    sock = getattr(getattr(raw, "connection", None), "sock", None)
    if sock is not None:
        sock.settimeout(seconds)


def _detail(text: str, scrub: Scrubber) -> str:
    """The server's own explanation (an OpenAI-style ``error.message``, else the body), short."""
    try:
        error = json.loads(text).get("error")
    except (ValueError, AttributeError, RecursionError):
        error = None
    message = error.get("message") if isinstance(error, dict) else error
    if not isinstance(message, str) or not message:
        message = text
    # Scrubbed before cut short: a cut could leave the start of a secret.
    message = scrub.cut(" ".join(str(message).split()), 200)
    return f": {message}" if message else ""
