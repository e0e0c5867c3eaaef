"""How many calls the runner keeps in flight: AIMD, as TCP does with its congestion window.

An endpoint that refuses for the load (429, or 503 with Retry-After) is asked less of: the limit
halves (multiplicative decrease), at most once per round of calls, so the many calls already in
flight when the endpoint started refusing count as one signal, not as many halvings. Every call
that succeeds raises the limit by 1/limit (additive increase: one more call in flight per round
of successes), up to the configured concurrency.
"""

from __future__ import annotations


class Throttle:
    """The limit on calls in flight, between 1 and ``ceiling``."""

    def __init__(self, ceiling: int) -> None:
        self.ceiling = ceiling
        self._limit = float(ceiling)
        self.epoch = 0
        """Bumped at each decrease: a call started in an older epoch was sent before it."""
        self.decreases = 0

    @property
    def limit(self) -> int:
        return max(1, int(self._limit))

    def succeeded(self) -> None:
        self._limit = min(float(self.ceiling), self._limit + 1.0 / max(self._limit, 1.0))

    def refused(self, sent_in: int) -> None:
        """The endpoint refused a call sent in epoch ``sent_in`` for being over its limit."""
        if sent_in == self.epoch:
            self._limit = max(1.0, self._limit / 2)
            self.epoch += 1
            self.decreases += 1
