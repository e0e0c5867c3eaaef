"""Throughput against a rate-limited endpoint, as a fraction of its limit R.

    python bench/bench_rate_limit.py [--rate 300] [--seconds 10] [--concurrency 32]

A loopback server (tests/rate_limited_server.py, in its own process so that it does not share
the runner's interpreter lock) serves at most R requests a second from a token bucket and answers
429 beyond, with and without Retry-After. A served request takes 50 ms (``--latency-ms``), as a
model call would, so the concurrency the rate allows (R · 50 ms) is what the throttle must find.
R · seconds cases go through the real http adapter and runner (retries 0: a case that fails for
being rate limited shows). The goal is ≥ 85% of R over the whole run, tail included.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "tests"))

from rate_limited_server import RateLimitedServer  # noqa: E402

from gate.load.config import HttpPipeline, Runner  # noqa: E402
from gate.load.dataset import Case  # noqa: E402
from gate.run.adapters.http import HttpAdapter  # noqa: E402
from gate.run.records import Record  # noqa: E402
from gate.run.runner import Progress, run_cases  # noqa: E402
from gate.run.throttle import Throttle  # noqa: E402

GOAL = 0.85


def serve(rate: float, retry_after: bool, latency_s: float, pipe: Connection) -> None:
    """The server's process: send the port, serve until told to stop, send the counts."""
    with RateLimitedServer(rate, retry_after=retry_after, latency_s=latency_s) as server:
        pipe.send(server.port)
        pipe.recv()
        pipe.send((server.served, server.refused))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=300.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--latency-ms", type=float, default=50.0, help="of a served request")
    args = parser.parse_args()
    n = int(args.rate * args.seconds)
    cases = [Case(id=f"case-{i:05d}", input=f"question {i}") for i in range(n)]
    settings = Runner(concurrency=args.concurrency, timeout_s=30, retries=0)
    worst = 1.0
    for retry_after in (False, True):
        throttle = Throttle(args.concurrency)
        mine, theirs = multiprocessing.Pipe()
        process = multiprocessing.Process(
            target=serve, args=(args.rate, retry_after, args.latency_ms / 1000, theirs)
        )
        process.start()
        url = f"http://127.0.0.1:{mine.recv()}/answer"
        adapter = HttpAdapter(HttpPipeline(adapter="http", url=url), args.concurrency, {})
        begin = time.perf_counter()
        records: list[Record] = []
        run_cases(
            cases,
            adapter,
            settings,
            records.extend,
            progress=Progress(n, None),
            now=lambda: datetime.now(UTC),
            throttle=throttle,
        )
        wall = time.perf_counter() - begin
        adapter.close()
        mine.send("stop")
        served, refused = mine.recv()
        process.join()
        failed = sum(r.status != "ok" for r in records)
        fraction = n / wall / args.rate
        worst = min(worst, fraction)
        print(
            f"R={args.rate:g}/s, {n} cases, concurrency {args.concurrency}, "
            f"Retry-After {'yes' if retry_after else 'no '}: {wall:.2f} s, "
            f"{n / wall:.1f} ok/s = {fraction:.1%} of R; {refused} refusals ({served} served), "
            f"{throttle.decreases} decreases, final limit {throttle.limit}, {failed} failed"
        )
    print(f"worst {worst:.1%} of R (goal ≥ {GOAL:.0%})")
    return 0 if worst >= GOAL else 1


if __name__ == "__main__":
    raise SystemExit(main())
