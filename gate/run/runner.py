"""Run every case through the adapter, concurrently, with timeouts and retries.

The work is waiting on the pipeline (I/O), so threads are enough: ``concurrency`` workers, each
case timed on a monotonic clock, each failure kept as that case's recorded error. The workers
share one schedule (``Schedule``): each takes one attempt at a time from it, never more in
flight than the throttle allows (``gate.run.throttle``: fewer when the endpoint says 429 or 503),
and the cases waiting for a retry wait in it, not in a worker, so no worker sleeps while others
could call. Finished records go back to the calling thread in batches (``Schedule.claim``), which
scores and writes them while the workers go on; the runner keeps none. An adapter that does not
wait (replay) has no workers: the calling thread makes its attempts between batches, through the
same schedule.
"""

from __future__ import annotations

import heapq
import itertools
import random
import secrets
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO

from gate.load.config import Runner
from gate.load.dataset import Case
from gate.retry import CaseTimeout, Transient, backoff_s
from gate.run.adapters.base import Adapter, Reply, waits
from gate.run.cache import OutputCache
from gate.run.records import (
    EMPTY,
    MAX_ERROR_CHARS,
    MAX_LOG_CHARS,
    Output,
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
"""How often the calling thread wakes to print progress and hand on the records finished."""
CLAIM_AT = 512
"""Finished records that wake the calling thread before its tick: a fast pipeline's records
are handed on in batches of about this many."""
MAX_UNCLAIMED = 8 * CLAIM_AT
"""Finished records waiting to be handed on beyond which no new case starts (back-pressure)."""


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

    case: Case
    repeat: int
    trace_id: str
    started_at: str
    attempts: int = 0
    refused: int = 0
    """Attempts the endpoint refused for the load (429, 503)."""
    epoch: int = 0
    """The throttle's epoch when its last attempt was sent."""

    def ended(
        self,
        status: Status,
        latency_ms: float | None,
        attempts: int,
        error: str | None,
        log: str | None = None,
        *,
        output: Output = EMPTY,
        raw_output: Any = None,
    ) -> Record:
        """The run's record as an attempt ended it. Made once, at the end: a record made at the
        start and copied with ``dataclasses.replace`` at the end took twice as long."""
        return Record(
            self.case.id,
            self.repeat,
            self.trace_id,
            status,
            latency_ms,
            attempts,
            self.started_at,
            output,
            raw_output,
            error,
            log=log,
        )

    @property
    def base(self) -> Record:
        """The run's record before any attempt (what ``OutputCache.get`` completes)."""
        return self.ended("error", None, 0, None)


@dataclass(frozen=True)
class Failed:
    """An attempt that failed in a way a retry may fix."""

    record: Record
    """The case's record if no attempt is left."""
    error: Transient | CaseTimeout


def trace_ids() -> random.Random:
    """Where a run draws its trace ids (``start``), seeded once from the OS."""
    return random.Random(secrets.randbits(128))


def start(case: Case, repeat: int, now: Callable[[], datetime], ids: random.Random) -> Job:
    """A case's run before its first attempt; ``now`` (the wall clock) stamps its start, ``ids``
    (``trace_ids``) gives its trace id."""
    # 16 random bytes in hex, a W3C trace-context trace id. Trace ids must be unique, not secret:
    # 128 bits drawn from a generator seeded from the OS once per run, not os.urandom per case
    # (a syscall that lets go of the interpreter lock, which the worker then waited to get back:
    # 7% of a replayed run's samples).
    trace_id = f"{ids.getrandbits(128):032x}"
    started_at = now().astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return Job(case, repeat, trace_id, started_at)


def attempt(
    adapter: Adapter, job: Job, settings: Runner, scrub: Scrubber = DEFAULT_SCRUBBER
) -> Record | Failed:
    """One call of the pipeline: the case's record, or a failure a retry may fix. Never raises.

    Errors and logs are scrubbed before they are cut; the output is kept as it came (metrics
    compare it with the expected answer) and scrubbed where it is stored (``records.scrubbed``).
    """
    number = job.attempts + 1
    begin = time.monotonic()
    try:
        reply: Reply = adapter.call(job.case, settings.timeout_s)
    except (Transient, CaseTimeout) as exc:
        latency = round((time.monotonic() - begin) * 1000, 3)
        status: Status = "timeout" if isinstance(exc, CaseTimeout) else "error"
        error = scrub.cut(f"{type(exc).__name__}: {exc}", MAX_ERROR_CHARS)
        return Failed(job.ended(status, latency, number, error), exc)
    except Exception as exc:  # the pipeline's failure is the case's result
        latency = round((time.monotonic() - begin) * 1000, 3)
        error = scrub.cut(f"{type(exc).__name__}: {exc}", MAX_ERROR_CHARS)
        return job.ended("error", latency, number, error)
    measured = (time.monotonic() - begin) * 1000
    recorded = reply.latency_ms is not None or not reply.timed
    took = reply.latency_ms if recorded else measured
    # To the microsecond, as records.jsonl keeps it: merged shards score what one run would.
    latency_ms = None if took is None else round(took, 3)
    log = None if reply.log is None else scrub.text(reply.log)[-MAX_LOG_CHARS:]
    try:
        # An output that cannot be written (a NaN, a tuple key, nesting that would exhaust
        # the stack) is this case's error, never the end of the run.
        if not reply.strict:
            check_json(reply.output)
    except ValueError as exc:
        return job.ended("error", latency_ms, number, str(exc), log)
    raw = reply.output
    if reply.error is not None:
        error = scrub.cut(reply.error, MAX_ERROR_CHARS)
        return job.ended("error", latency_ms, number, error, log, raw_output=raw)
    try:
        output = parse_output(raw)
    except ValueError as exc:
        error = scrub.cut(str(exc), MAX_ERROR_CHARS)
        return job.ended("error", latency_ms, number, error, log, raw_output=raw)
    return job.ended("ok", latency_ms, number, None, log, output=output, raw_output=raw)


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
    job = start(case, repeat, now, trace_ids())
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
    on_records: Callable[[list[Record]], None] = lambda records: None,
    progress: Progress | None = None,
    *,
    now: Callable[[], datetime],
    throttle: Throttle | None = None,
    rng: random.Random | None = None,
    cache: OutputCache | None = None,
    scrub: Scrubber = DEFAULT_SCRUBBER,
) -> None:
    """Run every case ``settings.repeats`` times, handing the records to ``on_records``.

    Records are handed on in the order they finish, in batches, from the calling thread (so
    what it does with them, scoring and writing, never holds a worker): whatever finished since
    the last batch, at least every ``PROGRESS_TICK_S``. The runner keeps none of them: at most
    ``MAX_UNCLAIMED`` wait to be handed on, and no new case starts while that many do, so a
    slow ``on_records`` bounds memory instead of the run's size.

    ``now`` stamps each record's start (see ``run_one``). Attempts are taken one by one, never
    more in flight than the throttle allows, so the first records (and the first progress line)
    come at once however many cases there are. With a ``cache``, a case run found there is not
    sent to the pipeline, and every new success is added to it.

    An adapter that does not wait (``waits``) is called from the calling thread itself, between
    the batches it hands on: a worker thread would only take turns with it at the interpreter.
    """
    total = len(cases) * settings.repeats
    schedule = Schedule(
        cases,
        settings,
        progress or Progress(total),
        now,
        throttle or Throttle(settings.concurrency),
        rng or random.Random(0),
        cache,
        adapter,
        scrub,
        alone=not waits(adapter),
    )
    workers = [
        threading.Thread(target=schedule.serve, name=f"gate_{i}", daemon=True)
        for i in range(0 if schedule.alone else min(settings.concurrency, total))
    ]
    for worker in workers:
        worker.start()
    try:
        while batch := schedule.claim():
            on_records(batch)
    finally:
        # When the run is interrupted (Ctrl-C, a failing on_records), the attempts not started
        # are dropped instead of all being run before the error surfaces.
        schedule.stop()
        for worker in workers:
            worker.join()


class Schedule:
    """What ``run_cases`` shares between its workers, under one lock: the runs not started, the
    ones waiting to retry, the throttle, the finished records not yet claimed.

    Each worker takes the next attempt itself when the one it made is settled, so a finished
    call hands its slot on with no thread in between (a hand-off through a scheduling thread
    cost two thread switches per call). The calling thread prints progress and claims the
    finished records; ``alone``, there are no workers and it makes the attempts itself.
    """

    def __init__(
        self,
        cases: list[Case],
        settings: Runner,
        progress: Progress,
        now: Callable[[], datetime],
        throttle: Throttle,
        rng: random.Random,
        cache: OutputCache | None,
        adapter: Adapter,
        scrub: Scrubber,
        *,
        alone: bool,
    ) -> None:
        self.total = len(cases) * settings.repeats
        self._fresh: Iterator[tuple[Case, int]] = (
            (case, repeat) for repeat in range(settings.repeats) for case in cases
        )
        self._waiting: list[tuple[float, int, Job]] = []  # (ready at, tie-break, job): retries
        self._order = itertools.count()
        self._finished: list[Record] = []
        """Records not yet handed on (``claim``)."""
        self._settings = settings
        self._progress = progress
        self._now = now
        self._throttle = throttle
        self._rng = rng  # drawn from under the lock only
        self._ids = trace_ids()
        self._cache = cache
        self._adapter = adapter
        self._scrub = scrub
        self.alone = alone
        """No worker threads: the calling thread makes the attempts in ``claim``."""
        self._lock = threading.Condition()
        self._in_flight = 0
        self._done = 0
        self._stopped = False
        self._failure: BaseException | None = None

    def serve(self) -> None:
        """A worker: take an attempt, make it, settle it, until there is none left."""
        try:
            with self._lock:
                job = self._take()
            while job is not None:
                outcome = attempt(self._adapter, job, self._settings, self._scrub)
                with self._lock:
                    if self._stopped:
                        return
                    self._settle(job, outcome)
                    job = self._take()
        except BaseException as exc:  # the calling thread raises it
            with self._lock:
                if self._failure is None:
                    self._failure = exc
                self._stopped = True
                self._lock.notify_all()

    def claim(self) -> list[Record]:
        """The records finished since the last claim, waiting up to ``PROGRESS_TICK_S`` for
        some (printing progress); empty when every run has been handed on. Raises what stopped
        a worker. ``alone``, it makes attempts instead of waiting (``_make``)."""
        with self._lock:
            while True:
                if self._failure is not None:
                    raise self._failure
                if len(self._finished) >= CLAIM_AT or (self._finished and self._done == self.total):
                    break
                if self._done == self.total:
                    return []
                if self.alone:
                    self._make(time.monotonic() + PROGRESS_TICK_S)
                else:
                    self._lock.wait(PROGRESS_TICK_S)
                self._progress.tick()
                if self._finished:
                    break
            batch, self._finished = self._finished, []
            if len(batch) >= MAX_UNCLAIMED:
                self._lock.notify_all()  # workers held back by back-pressure may go on
            return batch

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            self._lock.notify_all()

    def _make(self, until: float) -> None:
        """Make attempts in this thread until a batch is finished or ``until`` (a monotonic
        time) has passed: the calling thread's work when it is ``alone``, in place of waiting
        for workers. Raises what escapes an attempt. Called with the lock held."""
        while len(self._finished) < CLAIM_AT and time.monotonic() < until:
            job = self._take(until)
            if job is None:
                return
            self._settle(job, attempt(self._adapter, job, self._settings, self._scrub))

    def _take(self, until: float | None = None) -> Job | None:
        """The next attempt to make, waiting for a free slot or a retry to come due; None when
        there is nothing left to make, or, given ``until`` (the calling thread ``alone``),
        nothing before then. Called with the lock held."""
        while not self._stopped and self._done < self.total:
            # No free slot: wait to be told (the throttle allows more, or the end). A worker
            # that settles its call takes the next attempt itself, so a slot it frees is used.
            due = None
            if self._in_flight < self._throttle.limit and len(self._finished) < MAX_UNCLAIMED:
                clock = time.monotonic()
                job = self._next_job(clock)
                if job is not None:
                    if self._cache is not None and not job.attempts:
                        hit = self._cache.get(job.base, job.case)
                        if hit is not None:
                            self._finish(job, hit)
                            continue
                    job.epoch = self._throttle.epoch
                    self._in_flight += 1
                    return job
                # Nothing to send yet: wait for the next retry to come due (or a new one).
                due = self._waiting[0][0] - clock if self._waiting else None
            if until is not None:
                # Alone, only a retry coming due can change anything while this thread waits:
                # the finished records wait for it to hand them on.
                left = until - time.monotonic()
                if due is None or left <= 0:
                    return None
                due = min(due, left)
            self._lock.wait(due)
        return None

    def _next_job(self, clock: float) -> Job | None:
        if self._waiting and self._waiting[0][0] <= clock:
            return heapq.heappop(self._waiting)[2]
        item = next(self._fresh, None)
        return None if item is None else start(item[0], item[1], self._now, self._ids)

    def _settle(self, job: Job, outcome: Record | Failed) -> None:
        """Account for one attempt: the throttle, a retry to wait for, or the record."""
        self._in_flight -= 1
        limit = self._throttle.limit
        if isinstance(outcome, Failed):
            if isinstance(outcome.error, Transient) and outcome.error.rate_limited:
                self._throttle.refused(job.epoch)
            wait = retry_wait(job, outcome, self._settings, self._rng)
            if wait is not None:
                heapq.heappush(self._waiting, (time.monotonic() + wait, next(self._order), job))
                # A worker waiting for a later retry, or for nothing, may take this one.
                self._lock.notify_all()
                return
            outcome = outcome.record
        else:
            self._throttle.succeeded()
        if self._throttle.limit > limit:
            self._lock.notify_all()  # a slot more, for a waiting worker
        self._finish(job, outcome)

    def _finish(self, job: Job, record: Record) -> None:
        self._finished.append(record)
        self._done += 1
        if self._done == self.total or len(self._finished) == CLAIM_AT:
            # The end (for the waiting workers and the calling thread), or a batch to hand on.
            self._lock.notify_all()
        if self._cache is not None:
            self._cache.put(record, job.case)
        self._progress.advance(record)
