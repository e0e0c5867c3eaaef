"""The one retry policy: which failures are retried, how long to wait, what a server asks for.

``Transient`` and ``CaseTimeout`` are the failures a retry may fix; callers (the runner, the
judge, the GitHub client) decide how many attempts they allow. Waits are exponential with jitter,
so concurrent jobs that failed together do not retry together, unless the server said how long to
wait (``Retry-After``).
"""

from __future__ import annotations

import email.utils
import random
from collections.abc import Mapping

MAX_BACKOFF_S = 30.0
"""The longest wait between two attempts, whatever a server's Retry-After asks for."""


class Transient(Exception):
    """A failure worth retrying; ``retry_after`` is the server's requested wait in seconds."""

    def __init__(
        self, message: str, retry_after: float | None = None, *, rate_limited: bool = False
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.rate_limited = rate_limited
        """The server refused the call for the load (429, or 503 with Retry-After): the runner
        sends less, and the attempt does not count against the case's retries."""


class CaseTimeout(Exception):
    """The call ran longer than its time budget (``runner.timeout_s`` for a case)."""


def backoff_s(
    attempt: int,
    retry_after: float | None,
    rng: random.Random,
    *,
    first_s: float = 0.5,
    cap_s: float = MAX_BACKOFF_S,
) -> float:
    """The wait after failed attempt ``attempt`` (0 for the first): the server's Retry-After, or
    ``first_s · 2^attempt`` jittered to between half and all of it; never more than ``cap_s``."""
    if retry_after is not None:
        return min(retry_after, cap_s)
    return min(cap_s, first_s * 2.0**attempt) * rng.uniform(0.5, 1.0)


def retry_after_seconds(value: str | None, now: float | None) -> float | None:
    """Parse ``Retry-After`` (RFC 9110 §10.2.3): delta-seconds, or an HTTP date counted from
    ``now`` (epoch seconds; a date cannot be read without it). Never negative: a date in the
    past is no wait. None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    when = _timestamp(value)
    return None if when is None or now is None else max(0.0, when - now)


def retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """The wait a reply asks for: OpenAI's ``retry-after-ms`` (sub-second), else Retry-After.

    An HTTP date counts from ``now``, else from the reply's own ``Date``: the server's clock, so
    no local clock is read and a skewed one does not matter.
    """
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    if now is None:
        now = _timestamp(headers.get("Date"))
    return retry_after_seconds(headers.get("Retry-After"), now)


def _timestamp(date: str | None) -> float | None:
    """An HTTP date in epoch seconds; None when absent or unreadable."""
    try:
        return email.utils.parsedate_to_datetime(date).timestamp() if date else None
    except (TypeError, ValueError):
        return None
