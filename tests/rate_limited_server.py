"""A pipeline on 127.0.0.1 that serves at most ``rate`` requests a second and answers 429 beyond.

A token bucket (``burst`` tokens, refilled at ``rate`` a second), as providers meter requests.
With ``retry_after`` the 429 says how long to wait (whole seconds, as the header allows); a
served request takes ``latency_s``, as a model call does (a refusal is immediate).

    with RateLimitedServer(rate=200) as server:
        ... HttpPipeline(adapter="http", url=server.url) ...
        print(server.served / elapsed / server.rate)
"""

from __future__ import annotations

import time

from http_pipeline import Answer, PipelineServer, Seen


class RateLimitedServer(PipelineServer):
    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        retry_after: bool = False,
        latency_s: float = 0.0,
    ) -> None:
        super().__init__()
        self.latency_s = latency_s
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate / 10)
        self.retry_after = retry_after
        self.served = 0
        self.refused = 0
        self._tokens = self.burst
        self._last = time.monotonic()

    def next_answer(self, seen: Seen) -> Answer:
        with self.lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            self.in_flight += 1
            if self._tokens >= 1:
                self._tokens -= 1
                self.served += 1
                return Answer(200, {"answer": f"ok {seen.body['id']}"}, delay_s=self.latency_s)
            self.refused += 1
            headers = {"Retry-After": "1"} if self.retry_after else {}
            return Answer(429, {"error": "rate limited"}, headers=headers)
