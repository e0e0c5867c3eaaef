"""Run every case through the adapter, concurrently, with timeouts and retries.

The work is waiting on the pipeline (I/O), so threads are enough: ``concurrency`` workers, each
case timed on a monotonic clock, each failure kept as that case's recorded error.
"""

from __future__ import annotations

import random
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TextIO

from gate.load.config import Runner
from gate.load.dataset import Case
from gate.retry import CaseTimeout, Transient, backoff_s
from gate.run.adapters.base import Adapter, Reply
from gate.run.records import (
    EMPTY,
    MAX_ERROR_CHARS,
    MAX_LOG_CHARS,
    Record,
    Status,
    check_json,
    parse_output,
)
from gate.scrub import DEFAULT_SCRUBBER, Scrubber


@dataclass
class Progress:
    """Progress lines for CI logs (no TTY tricks): every ~10% of the cases or 5 seconds."""

    total: int
    # Looked up when a Progress is made, not when this module is imported: sys.stderr may have
    # been replaced since (pytest's capture, a redirect).
    stream: TextIO | None = field(default_factory=lambda: sys.stderr)
    every_s: float = 5.0
    clock: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        self._start = self.clock()
        self._last_time = self._start
        self._last_step = 0
        self.done = 0
        self.failed = 0

    def advance(self, record: Record) -> None:
        self.done += 1
        self.failed += record.status != "ok"
        now = self.clock()
        step = self.done * 10 // max(self.total, 1)
        if step > self._last_step or now - self._last_time >= self.every_s:
            self._last_step, self._last_time = step, now
            self._print(now)

    def _print(self, now: float) -> None:
        if self.stream is None:
            return
        elapsed = max(now - self._start, 1e-9)
        rate = self.done / elapsed
        eta = (self.total - self.done) / rate if rate else float("inf")
        print(
            f"gate: {self.done}/{self.total} runs ({100 * self.done // max(self.total, 1)}%) | "
            f"{rate:.1f}/s | ETA {eta:.0f}s | {self.failed} failed",
            file=self.stream,
            flush=True,
        )


def run_one(
    adapter: Adapter,
    case: Case,
    repeat: int,
    settings: Runner,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
    *,
    now: Callable[[], datetime],
    scrub: Scrubber = DEFAULT_SCRUBBER,
) -> Record:
    """Run one case to a Record, retrying transient failures and timeouts; never raises.

    ``now`` is the wall clock (timezone-aware) that stamps the record's start. Errors and logs
    are scrubbed here, before they are cut.
    """
    rng = rng or random.Random()
    trace_id = uuid.uuid4().hex
    started_at = now().astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    base = Record(case.id, repeat, trace_id, "error", None, 0, started_at)
    for attempt in range(settings.retries + 1):
        begin = time.monotonic()
        try:
            reply: Reply = adapter.call(case, settings.timeout_s)
        except (Transient, CaseTimeout) as exc:
            latency = (time.monotonic() - begin) * 1000
            status: Status = "timeout" if isinstance(exc, CaseTimeout) else "error"
            failed = replace(
                base,
                status=status,
                latency_ms=latency,
                attempts=attempt + 1,
                error=scrub.cut(f"{type(exc).__name__}: {exc}", MAX_ERROR_CHARS),
            )
            if attempt == settings.retries:
                return failed
            sleep(backoff_s(attempt, getattr(exc, "retry_after", None), rng))
            continue
        except Exception as exc:  # the pipeline's failure is the case's result
            latency = (time.monotonic() - begin) * 1000
            return replace(
                base,
                latency_ms=latency,
                attempts=attempt + 1,
                error=scrub.cut(f"{type(exc).__name__}: {exc}", MAX_ERROR_CHARS),
            )
        measured = (time.monotonic() - begin) * 1000
        recorded = reply.latency_ms is not None or not reply.timed
        done = replace(
            base,
            latency_ms=reply.latency_ms if recorded else measured,
            attempts=attempt + 1,
            log=None if reply.log is None else scrub.text(reply.log)[-MAX_LOG_CHARS:],
        )
        try:
            # An output that cannot be written (a NaN, a tuple key, nesting that would exhaust
            # the stack) is this case's error, never the end of the run.
            check_json(reply.output)
        except ValueError as exc:
            return replace(done, output=EMPTY, error=str(exc))
        # The output is kept as it came: metrics compare it with the expected answer. It is
        # scrubbed where it is stored (``records.scrubbed``).
        done = replace(done, raw_output=reply.output)
        if reply.error is not None:
            return replace(done, error=scrub.cut(reply.error, MAX_ERROR_CHARS))
        try:
            return replace(done, status="ok", output=parse_output(reply.output))
        except ValueError as exc:
            return replace(done, output=EMPTY, error=scrub.cut(str(exc), MAX_ERROR_CHARS))
    raise AssertionError("unreachable: the last attempt returns")


def run_cases(
    cases: list[Case],
    adapter: Adapter,
    settings: Runner,
    on_record: Callable[[Record], None] = lambda record: None,
    progress: Progress | None = None,
    *,
    now: Callable[[], datetime],
    scrub: Scrubber = DEFAULT_SCRUBBER,
) -> list[Record]:
    """Run every case ``settings.repeats`` times; records come back in dataset order.

    ``now`` stamps each record's start (see ``run_one``).
    """
    jobs = [(case, repeat) for repeat in range(settings.repeats) for case in cases]
    progress = progress or Progress(len(jobs))
    records: dict[tuple[str, int], Record] = {}
    pool = ThreadPoolExecutor(settings.concurrency, thread_name_prefix="gate")
    try:
        # as_completed, not wait(FIRST_COMPLETED) in a loop: that re-arms every pending future on
        # each pass, quadratic in the number of cases.
        futures = [
            pool.submit(run_one, adapter, case, repeat, settings, now=now, scrub=scrub)
            for case, repeat in jobs
        ]
        for future in as_completed(futures):
            record = future.result()
            records[(record.case_id, record.repeat)] = record
            on_record(record)
            progress.advance(record)
    finally:
        # When the run is interrupted (Ctrl-C, a failing on_record), the queued cases are dropped
        # instead of all being run before the error surfaces.
        pool.shutdown(cancel_futures=True)
    return [records[(case.id, repeat)] for repeat in range(settings.repeats) for case in cases]
