"""The runner's scheduling: attempts handed out as slots free up (never all cases at once), the
first progress line within a second, waits for retries kept by the scheduler, not a worker."""

from __future__ import annotations

import io
import threading
import time
from datetime import UTC, datetime

import pytest
from builders import ran

from gate.load.config import Runner
from gate.load.dataset import Case
from gate.retry import Transient
from gate.run.adapters.base import Reply
from gate.run.records import Record
from gate.run.runner import Progress, run_cases
from gate.run.throttle import Throttle


def utc_now() -> datetime:
    return datetime(2025, 1, 1, tzinfo=UTC)


class Counting:
    def __init__(self) -> None:
        self.calls = 0
        self.lock = threading.Lock()

    def call(self, case: Case, timeout_s: float) -> Reply:
        with self.lock:
            self.calls += 1
        return Reply({"answer": case.id})

    def close(self) -> None:
        pass


def test_run_cases__the_first_record_comes_before_more_than_concurrency_calls_started() -> None:
    adapter = Counting()
    calls_at_first_record: list[int] = []

    class Watched(Progress):
        def advance(self, record: Record) -> None:
            if not calls_at_first_record:
                calls_at_first_record.append(adapter.calls)
            super().advance(record)

    cases = [Case(id=f"c{i}", input="q") for i in range(2000)]
    records = ran(cases, adapter, Runner(concurrency=2), progress=Watched(2000, None), now=utc_now)
    assert len(records) == 2000 and calls_at_first_record[0] <= 2


def test_progress__the_first_line_comes_after_first_s_even_before_a_tenth() -> None:
    now = [0.0]
    stream = io.StringIO()
    progress = Progress(100_000, stream, every_s=5.0, first_s=1.0, clock=lambda: now[0])
    now[0] = 0.5
    progress.tick()
    assert stream.getvalue() == ""
    now[0] = 1.0
    progress.tick()
    assert stream.getvalue().startswith("gate: 0/100000 runs (0%)")
    now[0] = 2.0
    progress.tick()  # then every every_s
    assert stream.getvalue().count("\n") == 1


def test_run_cases__a_case_waiting_to_retry_does_not_hold_a_worker() -> None:
    # One worker: while c0 waits out its backoff, c1 and c2 run.
    order: list[str] = []
    failed_once: set[str] = set()

    class FlakyFirst:
        def call(self, case: Case, timeout_s: float) -> Reply:
            order.append(case.id)
            if case.id == "c0" and case.id not in failed_once:
                failed_once.add(case.id)
                raise Transient("HTTP 502", retry_after=0.2)
            return Reply({"answer": case.id})

        def close(self) -> None:
            pass

    cases = [Case(id=f"c{i}", input="q") for i in range(3)]
    records = ran(
        cases, FlakyFirst(), Runner(concurrency=1), progress=Progress(3, None), now=utc_now
    )
    assert order == ["c0", "c1", "c2", "c0"]
    assert [r.case_id for r in records] == ["c0", "c1", "c2"]
    assert records[0].attempts == 2 and records[0].status == "ok"


def test_run_cases__a_limit_the_throttle_raises_again_is_used() -> None:
    # Lowered to one call in flight, the throttle climbs back to 4 as calls succeed; calls
    # c20..c27 pass only 4 at a time, so the run ends well only if the workers that waited for
    # a slot were told of the higher limit.
    together = threading.Barrier(4, timeout=10)

    class FourAtOnce:
        def call(self, case: Case, timeout_s: float) -> Reply:
            if case.id == "c0":  # the first call lasts until the other workers wait for a slot
                while sum(t.name.startswith("gate_") for t in threading.enumerate()) < 4:
                    time.sleep(0.01)
                time.sleep(0.2)
            if 20 <= int(case.id[1:]) < 28:
                together.wait()
            return Reply({"answer": case.id})

        def close(self) -> None:
            pass

    throttle = Throttle(4)
    throttle.refused(0)
    throttle.refused(1)
    assert throttle.limit == 1
    cases = [Case(id=f"c{i}", input="q") for i in range(30)]
    records = ran(
        cases,
        FourAtOnce(),
        Runner(concurrency=4),
        progress=Progress(30, None),
        now=utc_now,
        throttle=throttle,
    )
    assert [r.status for r in records] == ["ok"] * 30, [r.error for r in records]
    assert throttle.limit == 4


def test_run_cases__what_escapes_an_attempt_stops_the_run_and_is_raised() -> None:
    class Interrupted(Counting):
        def call(self, case: Case, timeout_s: float) -> Reply:
            reply = super().call(case, timeout_s)
            if case.id == "c3":
                raise SystemExit(2)  # not an Exception: no case's result, the run's end
            return reply

    adapter = Interrupted()
    cases = [Case(id=f"c{i}", input="q") for i in range(500)]
    with pytest.raises(SystemExit):
        run_cases(cases, adapter, Runner(concurrency=2), progress=Progress(500, None), now=utc_now)
    assert adapter.calls < 500
    assert not [t for t in threading.enumerate() if t.name.startswith("gate_")]
