"""The runner: concurrency, repeats, order, retries, records written as cases finish, progress
lines, malformed outputs. The pipeline is a fake adapter; waits between retries go to a fake
``sleep``; parallelism is shown with a barrier and a counter, not with timings."""

from __future__ import annotations

import io
import json
import random
import re
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from builders import FakeAdapter, run_all, runner, utc_now

from gate.load.dataset import Case
from gate.retry import MAX_BACKOFF_S, CaseTimeout, Transient, backoff_s
from gate.run.adapters.base import Reply
from gate.run.cache import OutputCache
from gate.run.records import EMPTY, Record, RecordWriter
from gate.run.runner import CLAIM_AT, MAX_UNCLAIMED, Progress, run_cases, run_one


def cases(n: int) -> list[Case]:
    return [Case(id=f"c{i}", input=f"question {i}") for i in range(n)]


def quiet(n: int) -> Progress:
    return Progress(n, None)


# --- concurrency, repeats, order --------------------------------------------------------------


def test_run_cases__runs_concurrency_cases_at_once() -> None:
    together = threading.Barrier(4, timeout=5)  # passes only when 4 calls wait at the same time

    def answer(case: Case) -> dict[str, Any]:
        together.wait()
        return {"answer": case.id}

    adapter = FakeAdapter(answer)
    records = run_all(adapter, cases(16), concurrency=4)
    assert [r.status for r in records] == ["ok"] * 16
    assert adapter.max_active == 4


def test_run_cases__never_more_than_concurrency_at_once() -> None:
    def answer(case: Case) -> dict[str, Any]:
        time.sleep(0.002)  # room for overlap, if the runner allowed it
        return {}

    adapter = FakeAdapter(answer)
    run_all(adapter, cases(30), concurrency=3)
    assert adapter.max_active <= 3
    assert sorted(adapter.calls) == sorted(c.id for c in cases(30))


def test_run_cases__repeats_every_case_and_keeps_dataset_order() -> None:
    adapter = FakeAdapter()
    records = run_all(adapter, cases(3), repeats=2)
    assert [(r.case_id, r.repeat) for r in records] == [
        ("c0", 0),
        ("c1", 0),
        ("c2", 0),
        ("c0", 1),
        ("c1", 1),
        ("c2", 1),
    ]
    assert len(adapter.calls) == 6


def test_run_cases__records_are_handed_on_as_they_finish_from_the_calling_thread() -> None:
    finished: list[str] = []
    threads: set[str] = set()
    others_recorded = threading.Event()

    def answer(case: Case) -> dict[str, Any]:
        if case.id == "c0":
            others_recorded.wait(5)  # c0 finishes last
        return {"answer": case.id}

    def on_records(records: list[Record]) -> None:
        threads.add(threading.current_thread().name)
        finished.extend(record.case_id for record in records)
        if len(finished) == 2:
            others_recorded.set()

    run_cases(
        cases(3),
        FakeAdapter(answer),
        runner(concurrency=3),
        on_records,
        progress=quiet(3),
        now=utc_now,
    )
    assert finished[-1] == "c0" and sorted(finished) == ["c0", "c1", "c2"]
    assert threads == {threading.current_thread().name}


def test_run_cases__records_jsonl_is_readable_while_the_run_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    seen_mid_run: list[str] = []

    def answer(case: Case) -> dict[str, Any]:
        if case.id == "c4":
            # c3's record is written within a tick of its call's end: wait for it.
            deadline = time.monotonic() + 5
            while len(path.read_text().splitlines()) < 4 and time.monotonic() < deadline:
                time.sleep(0.005)
            seen_mid_run.extend(json.loads(line)["id"] for line in path.read_text().splitlines())
        return {"answer": case.id}

    writer = RecordWriter(path)
    try:
        run_cases(
            cases(5),
            FakeAdapter(answer),
            runner(concurrency=1),
            writer.write,
            quiet(5),
            now=utc_now,
        )
    finally:
        writer.close()
    assert seen_mid_run == ["c0", "c1", "c2", "c3"]
    assert [json.loads(line)["id"] for line in path.read_text().splitlines()] == [
        "c0",
        "c1",
        "c2",
        "c3",
        "c4",
    ]


def test_run_cases__a_slow_consumer_holds_back_new_cases_not_memory() -> None:
    """Back-pressure: while ``MAX_UNCLAIMED`` finished records wait to be handed on, no case
    starts, so a consumer slower than the pipeline bounds what waits in memory."""
    adapter = FakeAdapter()
    waiting: list[int] = []

    def slow(records: list[Record]) -> None:
        waiting.append(len(records))
        time.sleep(0.05)

    total = 3 * MAX_UNCLAIMED
    run_cases(cases(total), adapter, runner(concurrency=4), slow, quiet(total), now=utc_now)
    assert sum(waiting) == total
    assert max(waiting) <= MAX_UNCLAIMED + 4  # and the calls in flight when it filled


def test_run_cases__a_failing_on_records_stops_the_run_without_running_the_rest() -> None:
    def answer(case: Case) -> dict[str, Any]:
        time.sleep(0.005)
        return {}

    def disk_full(records: list[Record]) -> None:
        raise OSError(28, "No space left on device")

    adapter = FakeAdapter(answer)
    with pytest.raises(OSError, match="No space left"):
        run_cases(cases(2000), adapter, runner(concurrency=2), disk_full, quiet(2000), now=utc_now)
    # The first batch comes within a tick (about 100 calls): the rest were dropped, not run.
    assert len(adapter.calls) < 1000


def test_run_cases__trace_ids_are_unique_32_hex() -> None:
    records = run_all(FakeAdapter(), cases(50), repeats=2)
    ids = [r.trace_id for r in records]
    assert len(set(ids)) == 100
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)


def test_run_cases__trace_ids_differ_from_run_to_run() -> None:
    """Each run seeds its trace ids afresh: two runs of the same cases share none."""
    first, second = (run_all(FakeAdapter(), cases(50)) for _ in range(2))
    assert not {r.trace_id for r in first} & {r.trace_id for r in second}


# --- an adapter that does not wait --------------------------------------------------------------


class InMemory(FakeAdapter):
    """A pipeline served from memory (as replay is): ``waits = False``. Keeps the threads it
    was called from."""

    waits = False

    def __init__(self, answer: Any = lambda case: {"answer": case.id}) -> None:
        super().__init__(answer)
        self.threads: set[str] = set()

    def call(self, case: Case, timeout_s: float) -> Reply:
        self.threads.add(threading.current_thread().name)
        return super().call(case, timeout_s)


def test_run_cases__an_adapter_that_does_not_wait_is_called_from_the_calling_thread() -> None:
    adapter = InMemory()
    records = run_all(adapter, cases(20), repeats=2, concurrency=8)
    assert [(r.case_id, r.status) for r in records[:2]] == [("c0", "ok"), ("c1", "ok")]
    assert len(records) == 40 and len({r.trace_id for r in records}) == 40
    assert adapter.threads == {threading.current_thread().name}
    assert not [t for t in threading.enumerate() if t.name.startswith("gate_")]


def test_run_cases__an_adapter_that_does_not_wait_has_its_failures_retried() -> None:
    failures = {"c1": [Transient("busy", retry_after=0.01)], "c2": [CaseTimeout("slow")] * 3}

    def answer(case: Case) -> dict[str, Any]:
        if failures.get(case.id):
            raise failures[case.id].pop(0)
        return {"answer": case.id}

    records = run_all(InMemory(answer), cases(3), retries=2, timeout_s=1)
    assert [(r.status, r.attempts) for r in records] == [("ok", 1), ("ok", 2), ("timeout", 3)]
    assert records[2].error == "CaseTimeout: slow"


def test_run_cases__an_adapter_that_does_not_wait_hands_records_on_in_batches() -> None:
    adapter = InMemory()
    calls_at: list[int] = []

    def on_records(records: list[Record]) -> None:
        calls_at.append(len(adapter.calls))

    total = 3 * CLAIM_AT
    run_cases(cases(total), adapter, runner(), on_records, quiet(total), now=utc_now)
    assert calls_at == [CLAIM_AT, 2 * CLAIM_AT, 3 * CLAIM_AT]


def test_run_cases__an_adapter_that_does_not_wait_replays_a_cached_run_in_bounded_batches(
    tmp_path: Path,
) -> None:
    total = MAX_UNCLAIMED + 10
    cache = OutputCache(tmp_path, "sha256:pipeline")
    again = InMemory()
    batches: list[list[Record]] = []
    try:
        run_cases(
            cases(total), InMemory(), runner(), progress=quiet(total), now=utc_now, cache=cache
        )
        run_cases(
            cases(total), again, runner(), batches.append, quiet(total), now=utc_now, cache=cache
        )
    finally:
        cache.close()
    assert again.calls == [] and cache.hits == total
    assert sum(map(len, batches)) == total and max(map(len, batches)) <= MAX_UNCLAIMED
    assert all(record.cached for batch in batches for record in batch)


def test_run_cases__an_adapter_that_does_not_wait_stops_at_a_failing_on_records() -> None:
    adapter = InMemory()

    def disk_full(records: list[Record]) -> None:
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        run_cases(cases(5 * CLAIM_AT), adapter, runner(), disk_full, quiet(10), now=utc_now)
    assert len(adapter.calls) == CLAIM_AT


# --- progress ---------------------------------------------------------------------------------

LINE = re.compile(r"gate: (\d+)/50 runs \((\d+)%\) \| \d+\.\d/s \| ETA \d+s \| (\d+) failed")


def test_progress__a_line_every_tenth_without_a_tty() -> None:
    stream = io.StringIO()  # not a TTY, as in CI

    def answer(case: Case) -> dict[str, Any]:
        if case.id == "c7":
            raise RuntimeError("boom")
        return {}

    run_cases(
        cases(50),
        FakeAdapter(answer),
        runner(concurrency=4),
        progress=Progress(50, stream, every_s=3600),
        now=utc_now,
    )
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue() and "\x1b" not in stream.getvalue()
    matches = [LINE.fullmatch(line) for line in lines]
    assert all(matches), lines
    assert [int(m[1]) for m in matches if m] == [5, 10, 15, 20, 25, 30, 35, 40, 45, 50]
    assert [int(m[2]) for m in matches if m] == [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
    last = matches[-1]
    assert last is not None and last[3] == "1"


def test_progress__a_line_after_every_s_even_without_a_new_tenth() -> None:
    now = [0.0]
    stream = io.StringIO()
    progress = Progress(1000, stream, every_s=5.0, first_s=5.0, clock=lambda: now[0])
    ok = Record("c", 0, "t", "ok", 1.0, 1, "2025-01-01T00:00:00.000Z")
    for t in (1.0, 2.0, 7.0):
        now[0] = t
        progress.advance(ok)
    assert stream.getvalue() == "gate: 3/1000 runs (0%) | 0.4/s | ETA 2326s | 0 failed\n"


def test_progress__default_stream_is_stderr_at_creation(capsys: pytest.CaptureFixture[str]) -> None:
    progress = Progress(1)
    progress.advance(Record("c", 0, "t", "error", 1.0, 1, "2025-01-01T00:00:00.000Z"))
    assert "gate: 1/1 runs (100%)" in capsys.readouterr().err


# --- one case: retries, timeouts, errors, malformed outputs -------------------------------------


class Flaky:
    """Raises the scripted failures first, then answers."""

    def __init__(self, *failures: Exception) -> None:
        self.failures = list(failures)

    def __call__(self, case: Case) -> dict[str, Any]:
        if self.failures:
            raise self.failures.pop(0)
        return {"answer": "finally"}


def test_run_one__transient_failures_are_retried_with_backoff(sleeps: list[float]) -> None:
    adapter = FakeAdapter(Flaky(Transient("HTTP 502"), Transient("HTTP 503")))
    record = run_one(adapter, cases(1)[0], 0, runner(retries=2), sleep=sleeps.append, now=utc_now)
    assert (record.status, record.attempts, record.output.answer) == ("ok", 3, "finally")
    assert record.error is None
    assert len(sleeps) == 2 and 0.25 <= sleeps[0] <= 0.5 and 0.5 <= sleeps[1] <= 1.0


def test_run_one__retry_after_is_honoured_up_to_the_cap(sleeps: list[float]) -> None:
    adapter = FakeAdapter(Flaky(Transient("429", retry_after=2), Transient("429", retry_after=900)))
    run_one(adapter, cases(1)[0], 0, runner(retries=2), sleep=sleeps.append, now=utc_now)
    assert sleeps == [2, MAX_BACKOFF_S]


def test_run_one__timeouts_are_retried_then_recorded_as_timeout(sleeps: list[float]) -> None:
    adapter = FakeAdapter(Flaky(*[CaseTimeout("no result after 5 s")] * 3))
    record = run_one(adapter, cases(1)[0], 0, runner(retries=2), sleep=sleeps.append, now=utc_now)
    assert (record.status, record.attempts, len(sleeps)) == ("timeout", 3, 2)
    assert record.error == "CaseTimeout: no result after 5 s"
    assert record.output == EMPTY


def test_run_one__other_exceptions_are_the_case_error_at_once(sleeps: list[float]) -> None:
    adapter = FakeAdapter(Flaky(PermissionError("model access denied")))
    record = run_one(adapter, cases(1)[0], 0, runner(retries=2), sleep=sleeps.append, now=utc_now)
    assert (record.status, record.attempts, sleeps) == ("error", 1, [])
    assert record.error == "PermissionError: model access denied"


def test_run_one__latency_from_the_pipeline_call_and_a_utc_start() -> None:
    def answer(case: Case) -> dict[str, Any]:
        time.sleep(0.02)
        return {}

    record = run_one(FakeAdapter(answer), cases(1)[0], 0, runner(), now=utc_now)
    assert record.latency_ms is not None and record.latency_ms >= 20
    assert record.started_at.endswith("Z")
    datetime.fromisoformat(record.started_at.replace("Z", "+00:00"))


NOT_AN_OBJECT = 'malformed output: expected a JSON object like {"answer": ...}, got '


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (["an", "answer"], NOT_AN_OBJECT + "list"),
        ("just text", NOT_AN_OBJECT + "str"),
        (None, NOT_AN_OBJECT + "NoneType"),
        ({"retrieved": "doc-1"}, "malformed output: retrieved: "),
        ({"usage": {"input_tokens": "many"}}, "malformed output: usage.input_tokens: "),
        ({"tool_calls": [{"args": {}}]}, "malformed output: tool_calls[0].name: Field required"),
        ({"answer": 3, "abstained": "maybe"}, " (and 1 more)"),
    ],
)
def test_run_one__malformed_output_is_the_case_error_naming_the_field(raw: Any, error: str) -> None:
    record = run_one(FakeAdapter(lambda case: raw), cases(1)[0], 0, runner(), now=utc_now)
    assert record.status == "error"
    assert record.error is not None and error in record.error
    assert (record.attempts, record.output, record.raw_output) == (1, EMPTY, raw)


def test_run_one__a_replayed_error_is_kept_as_recorded() -> None:
    class Recorded(FakeAdapter):
        def call(self, case: Case, timeout_s: float) -> Reply:
            return Reply(None, latency_ms=1234.5, error="upstream 502")

    record = run_one(Recorded(), cases(1)[0], 0, runner(), now=utc_now)
    assert (record.status, record.error, record.latency_ms) == ("error", "upstream 502", 1234.5)


@pytest.mark.parametrize(
    ("attempt", "low", "high"), [(0, 0.25, 0.5), (1, 0.5, 1.0), (3, 2.0, 4.0), (9, 15.0, 30.0)]
)
def test_backoff_s__full_jitter_exponential_capped(attempt: int, low: float, high: float) -> None:
    rng = random.Random(7)
    waits = [backoff_s(attempt, None, rng) for _ in range(200)]
    assert all(low <= w <= high for w in waits)
    assert len(set(waits)) > 100  # jittered, so retries of many cases do not arrive together
