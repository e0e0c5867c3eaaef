"""The runner's scheduling: attempts handed out as slots free up (never all cases at once), the
first progress line within a second, waits for retries kept by the scheduler, not a worker."""

from __future__ import annotations

import io
import threading
from datetime import UTC, datetime

from gate.load.config import Runner
from gate.load.dataset import Case
from gate.retry import Transient
from gate.run.adapters.base import Reply
from gate.run.records import Record
from gate.run.runner import Progress, run_cases


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

    def on_record(record: Record) -> None:
        if not calls_at_first_record:
            calls_at_first_record.append(adapter.calls)

    cases = [Case(id=f"c{i}", input="q") for i in range(2000)]
    records = run_cases(
        cases, adapter, Runner(concurrency=2), on_record, Progress(2000, None), now=utc_now
    )
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
    records = run_cases(
        cases, FlakyFirst(), Runner(concurrency=1), progress=Progress(3, None), now=utc_now
    )
    assert order == ["c0", "c1", "c2", "c0"]
    assert [r.case_id for r in records] == ["c0", "c1", "c2"]
    assert records[0].attempts == 2 and records[0].status == "ok"
