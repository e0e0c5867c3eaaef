"""Run every case through the adapter, concurrently, with timeouts and retries.

The work is waiting on the pipeline (I/O), so threads are enough: ``concurrency`` workers, each
case timed on a monotonic clock, each failure kept as that case's recorded error. The runner's
thread schedules: it hands the workers one attempt at a time, never more than the throttle
allows in flight (``gate.run.throttle``: fewer when the endpoint says 429 or 503), and keeps the
cases waiting for a retry itself, so no worker sleeps while others could call.
"""

from __future__ import annotations

import heapq
import itertools
import queue
import random
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TextIO

from gate.load.config import Runner
from gate.load.dataset import Case
from gate.retry import CaseTimeout, Transient, backoff_s
from gate.run.adapters.base import Adapter, Reply
from gate.run.cache import OutputCache
from gate.run.records import (
    EMPTY,
    MAX_ERROR_CHARS,
    MAX_LOG_CHARS,
    Record,
    Status,
    check_json,
    parse_output,
)
from gate.run.throttle import Throttle
from gate.scrub import DEFAULT_SCRUBBER, Scrubber

RATE_LIMITED_ATTEMPTS = 20
"""Attempts refused for the load (429, or 503 with Retry-After) a case may make on top of its
retries: the throttle, not the case, answers those, but a run must end even against an endpoint
that refuses everything."""

PROGRESS_TICK_S = 0.5
"""How often the runner wakes to print progress when no attempt has finished."""


@dataclass
class Progress:
    """Progress lines for CI logs (no TTY tricks): every ~10% of the cases or 5 seconds."""

    total: int
    # Looked up when a Progress is made, not when this module is imported: sys.stderr may have
    # been replaced since (pytest's capture, a redirect).
    stream: TextIO | None = field(default_factory=lambda: sys.stderr)
    every_s: float = 5.0
    first_s: float = 1.0
    """The first line comes this soon, so a long run shows at once that it is moving."""
    clock: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        self._start = self.clock()
        self._last_time = self._start
        self._last_step = 0
        self._printed = False
        self.done = 0
        self.failed = 0

    def advance(self, record: Record) -> None:
        self.done += 1
        self.failed += record.status != "ok"
        self.tick()

    def tick(self) -> None:
        """Print a line when one is due (a new tenth done, or time passed since the last)."""
        now = self.clock()
        step = self.done * 10 // max(self.total, 1)
        wait = self.every_s if self._printed else self.first_s
        if step > self._last_step or now - self._last_time >= wait:
            self._last_step, self._last_time = step, now
            self._printed = True
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


@dataclass
class Job:
    """One run of one case, across its attempts."""

    index: int
    """Its place in the run's records (dataset order, repeat after repeat)."""
    case: Case
    base: Record
    attempts: int = 0
    refused: int = 0
    """Attempts the endpoint refused for the load (429, 503)."""
    epoch: int = 0
    """The throttle's epoch when its last attempt was sent."""


@dataclass(frozen=True)
class Failed:
    """An attempt that failed in a way a retry may fix."""

    record: Record
    """The case's record if no attempt is left."""
    error: Transient | CaseTimeout


class Workers:
    """``count`` threads running the jobs handed to them, first handed first run.

    What ``ThreadPoolExecutor`` would do, for less: a hand-off is one queue put, with no future
    per attempt (the scheduling thread hands out thousands of attempts a second).
    """

    def __init__(self, count: int, run: Callable[[Job], None]) -> None:
        self._todo: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._serve, args=(run,), name=f"gate_{i}", daemon=True)
            for i in range(count)
        ]
        for thread in self._threads:
            thread.start()

    def _serve(self, run: Callable[[Job], None]) -> None:
        while (job := self._todo.get()) is not None:
            run(job)

    def submit(self, job: Job) -> None:
        self._todo.put(job)

    def shutdown(self) -> None:
        """Drop the jobs no thread has started, let the started ones end, join the threads."""
        try:
            while True:
                self._todo.get_nowait()
        except queue.Empty:
            pass
        for _ in self._threads:
            self._todo.put(None)
        for thread in self._threads:
            thread.join()


def start(case: Case, repeat: int, now: Callable[[], datetime], index: int = 0) -> Job:
    """A case's run before its first attempt; ``now`` (the wall clock) stamps its start."""
    trace_id = uuid.uuid4().hex
    started_at = now().astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return Job(index, case, Record(case.id, repeat, trace_id, "error", None, 0, started_at))


def attempt(
    adapter: Adapter, job: Job, settings: Runner, scrub: Scrubber = DEFAULT_SCRUBBER
) -> Record | Failed:
    """One call of the pipeline: the case's record, or a failure a retry may fix. Never raises.

    Errors and logs are scrubbed before they are cut; the output is kept as it came (metrics
    compare it with the expected answer) and scrubbed where it is stored (``records.scrubbed``).
    """
    base = job.base
    number = job.attempts + 1
    begin = time.monotonic()
    try:
        reply: Reply = adapter.call(job.case, settings.timeout_s)
    except (Transient, CaseTimeout) as exc:
        latency = round((time.monotonic() - begin) * 1000, 3)
        status: Status = "timeout" if isinstance(exc, CaseTimeout) else "error"
        failed = replace(
            base,
            status=status,
            latency_ms=latency,
            attempts=number,
            error=scrub.cut(f"{type(exc).__name__}: {exc}", MAX_ERROR_CHARS),
        )
        return Failed(failed, exc)
    except Exception as exc:  # the pipeline's failure is the case's result
        latency = round((time.monotonic() - begin) * 1000, 3)
        error = scrub.cut(f"{type(exc).__name__}: {exc}", MAX_ERROR_CHARS)
        return replace(base, latency_ms=latency, attempts=number, error=error)
    measured = (time.monotonic() - begin) * 1000
    recorded = reply.latency_ms is not None or not reply.timed
    took = reply.latency_ms if recorded else measured
    done = replace(
        base,
        # To the microsecond, as records.jsonl keeps it: merged shards score what one run would.
        latency_ms=None if took is None else round(took, 3),
        attempts=number,
        log=None if reply.log is None else scrub.text(reply.log)[-MAX_LOG_CHARS:],
    )
    try:
        # An output that cannot be written (a NaN, a tuple key, nesting that would exhaust
        # the stack) is this case's error, never the end of the run.
        check_json(reply.output)
    except ValueError as exc:
        return replace(done, output=EMPTY, error=str(exc))
    done = replace(done, raw_output=reply.output)
    if reply.error is not None:
        return replace(done, error=scrub.cut(reply.error, MAX_ERROR_CHARS))
    try:
        return replace(done, status="ok", output=parse_output(reply.output))
    except ValueError as exc:
        return replace(done, output=EMPTY, error=scrub.cut(str(exc), MAX_ERROR_CHARS))


def retry_wait(job: Job, failed: Failed, settings: Runner, rng: random.Random) -> float | None:
    """How long ``job`` waits before its next attempt after ``failed``; None when none is left.

    Updates the job's counts. A refusal for the load does not count against ``retries`` (the
    throttle sends less instead) and waits the server's Retry-After, else one short jittered
    backoff: the throttle, not a growing wait, is what backs off.
    """
    job.attempts += 1
    error = failed.error
    if isinstance(error, Transient) and error.rate_limited:
        job.refused += 1
        if job.refused > RATE_LIMITED_ATTEMPTS:
            return None
        return backoff_s(0, error.retry_after, rng)
    tries = job.attempts - job.refused
    if tries > settings.retries:
        return None
    return backoff_s(tries - 1, getattr(error, "retry_after", None), rng)


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

    ``now`` is the wall clock (timezone-aware) that stamps the record's start.
    """
    rng = rng or random.Random()
    job = start(case, repeat, now)
    while True:
        outcome = attempt(adapter, job, settings, scrub)
        if isinstance(outcome, Record):
            return outcome
        wait = retry_wait(job, outcome, settings, rng)
        if wait is None:
            return outcome.record
        sleep(wait)


def run_cases(
    cases: list[Case],
    adapter: Adapter,
    settings: Runner,
    on_record: Callable[[Record], None] = lambda record: None,
    progress: Progress | None = None,
    *,
    now: Callable[[], datetime],
    throttle: Throttle | None = None,
    rng: random.Random | None = None,
    cache: OutputCache | None = None,
    scrub: Scrubber = DEFAULT_SCRUBBER,
) -> list[Record]:
    """Run every case ``settings.repeats`` times; records come back in dataset order.

    ``now`` stamps each record's start (see ``run_one``). Attempts are handed to the workers
    one by one, never more in flight than the throttle allows, so the first records (and the
    first progress line) come at once however many cases there are. With a ``cache``, a case
    run found there is not sent to the pipeline, and every new success is added to it.
    """
    size = len(cases)
    total = size * settings.repeats
    progress = progress or Progress(total)
    throttle = throttle or Throttle(settings.concurrency)
    rng = rng or random.Random(0)  # only the scheduling thread draws from it
    fresh: Iterator[tuple[int, Case, int]] = (
        (repeat * size + i, case, repeat)
        for repeat in range(settings.repeats)
        for i, case in enumerate(cases)
    )
    waiting: list[tuple[float, int, Job]] = []  # (ready at, tie-break, job): retries due later
    order = itertools.count()
    finished: queue.SimpleQueue[tuple[Job, Record | Failed | BaseException]] = queue.SimpleQueue()
    records: list[Record | None] = [None] * total
    in_flight = 0

    def work(job: Job) -> None:
        try:
            finished.put((job, attempt(adapter, job, settings, scrub)))
        except BaseException as exc:  # handed to the scheduling thread, which raises it
            finished.put((job, exc))

    def next_job(clock: float) -> Job | None:
        if waiting and waiting[0][0] <= clock:
            return heapq.heappop(waiting)[2]
        item = next(fresh, None)
        return None if item is None else start(item[1], item[2], now, item[0])

    done = 0

    def finish(job: Job, record: Record) -> None:
        nonlocal done
        records[job.index] = record
        done += 1
        if cache is not None:
            cache.put(record, job.case)
        on_record(record)
        progress.advance(record)

    pool = Workers(min(settings.concurrency, total), work)
    try:
        while done < total:
            clock = time.monotonic()
            while in_flight < throttle.limit and (job := next_job(clock)) is not None:
                if cache is not None and not job.attempts:
                    hit = cache.get(job.base, job.case)
                    if hit is not None:
                        finish(job, hit)
                        continue
                job.epoch = throttle.epoch
                pool.submit(job)
                in_flight += 1
            timeout = PROGRESS_TICK_S
            if waiting:
                timeout = min(timeout, max(0.0, waiting[0][0] - time.monotonic()))
            try:
                job, outcome = finished.get(timeout=timeout) if in_flight else (None, None)
            except queue.Empty:
                job = None
            if job is None:
                if not in_flight and waiting:
                    time.sleep(max(0.0, min(timeout, waiting[0][0] - time.monotonic())))
                progress.tick()
                continue
            in_flight -= 1
            if isinstance(outcome, BaseException):
                raise outcome
            if isinstance(outcome, Failed):
                if isinstance(outcome.error, Transient) and outcome.error.rate_limited:
                    throttle.refused(job.epoch)
                wait = retry_wait(job, outcome, settings, rng)
                if wait is not None:
                    heapq.heappush(waiting, (time.monotonic() + wait, next(order), job))
                    continue
                outcome = outcome.record
            else:
                throttle.succeeded()
            assert isinstance(outcome, Record)
            finish(job, outcome)
    finally:
        # When the run is interrupted (Ctrl-C, a failing on_record), the queued attempts are
        # dropped instead of all being run before the error surfaces.
        pool.shutdown()
    return [record for record in records if record is not None]
