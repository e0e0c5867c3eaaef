"""Concurrency that follows the endpoint: a 429 halves the calls in flight (once per round), a
success adds one per round, and no case fails for being rate limited. The endpoint is a real
loopback server with a token bucket; nothing here asserts a timing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from builders import ran
from rate_limited_server import RateLimitedServer

from gate.load.config import HttpPipeline, Runner
from gate.load.dataset import Case
from gate.retry import Transient
from gate.run.adapters.base import Reply
from gate.run.adapters.http import HttpAdapter
from gate.run.runner import RATE_LIMITED_ATTEMPTS, Progress
from gate.run.throttle import Throttle


def utc_now() -> datetime:
    return datetime(2025, 1, 1, tzinfo=UTC)


def test_throttle__halves_once_per_round_and_climbs_back_one_per_round() -> None:
    throttle = Throttle(16)
    sent = throttle.epoch
    for _ in range(10):  # ten calls of the same round refused: one signal
        throttle.refused(sent)
    assert (throttle.limit, throttle.decreases) == (8, 1)
    throttle.refused(throttle.epoch)
    assert throttle.limit == 4
    for _ in range(4):
        throttle.succeeded()
    assert throttle.limit == 4  # 4 + 4 · (≈1/4.x) < 5: one round raises it by about one
    throttle.succeeded()
    assert throttle.limit == 5
    for _ in range(1000):
        throttle.succeeded()
    assert throttle.limit == 16
    for _ in range(10):
        throttle.refused(throttle.epoch)
    assert throttle.limit == 1


@pytest.mark.parametrize("retry_after", [False, True])
def test_run_cases__a_rate_limited_endpoint_lowers_concurrency_and_no_case_fails(
    retry_after: bool,
) -> None:
    cases = [Case(id=f"c{i}", input=f"q{i}") for i in range(150)]
    settings = Runner(concurrency=16, timeout_s=5, retries=0)
    throttle = Throttle(settings.concurrency)
    # 150 a second, bursts of 5: 16 workers outrun it even on a loaded machine (at 300 a second
    # with bursts of 30, a slow client was never refused and the test failed).
    with RateLimitedServer(rate=150, burst=5, retry_after=retry_after) as server:
        adapter = HttpAdapter(HttpPipeline(adapter="http", url=server.url), 16, {})
        try:
            records = ran(
                cases,
                adapter,
                settings,
                progress=Progress(150, None),
                now=utc_now,
                throttle=throttle,
            )
        finally:
            adapter.close()
    assert [r.status for r in records] == ["ok"] * 150
    assert [r.output.answer for r in records] == [f"ok c{i}" for i in range(150)]
    assert server.served == 150 and server.refused > 0
    assert throttle.decreases > 0
    assert sum(r.attempts for r in records) == 150 + server.refused


class AlwaysRefused:
    def __init__(self) -> None:
        self.calls = 0

    def call(self, case: Case, timeout_s: float) -> Reply:
        self.calls += 1
        raise Transient("HTTP 429", retry_after=0.0, rate_limited=True)

    def close(self) -> None:
        pass


def test_run_cases__an_endpoint_that_always_refuses_still_ends_the_run() -> None:
    adapter = AlwaysRefused()
    settings = Runner(concurrency=2, timeout_s=5, retries=1)
    (record,) = ran(
        [Case(id="c", input="q")], adapter, settings, progress=Progress(1, None), now=utc_now
    )
    assert record.status == "error" and record.error == "Transient: HTTP 429"
    assert adapter.calls == RATE_LIMITED_ATTEMPTS + 1


def test_run_cases__refusals_do_not_use_up_the_retries() -> None:
    class RefusedTwiceThenBroken(AlwaysRefused):
        def call(self, case: Case, timeout_s: float) -> Reply:
            self.calls += 1
            if self.calls <= 2:
                raise Transient("HTTP 429", retry_after=0.0, rate_limited=True)
            if self.calls == 3:
                raise Transient("HTTP 502")
            return Reply({"answer": "at last"})

    adapter = RefusedTwiceThenBroken()
    settings = Runner(concurrency=1, timeout_s=5, retries=1)
    (record,) = ran(
        [Case(id="c", input="q")], adapter, settings, progress=Progress(1, None), now=utc_now
    )
    assert (record.status, record.attempts, record.output.answer) == ("ok", 4, "at last")
