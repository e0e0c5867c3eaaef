"""Time the runner against its ideal, N·L/C: the issue's speed goal.

    python bench/bench_runner.py [--cases 1000] [--latency-ms 50] [--concurrency 32] [--rounds 3]
    python bench/bench_runner.py --http [...]   # the http adapter against a bare requests client

N cases go through the real python adapter, whose function sleeps L; with C workers the best
possible wall time is N·L/C (1000 · 50 ms / 32 = 1.5625 s). Only ``run_cases`` is timed: loading
the adapter and building the cases is start-up. The goal is at most 1.3× the ideal. Progress lines
go to a throwaway stream, as they would to a CI log, so their cost is counted.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # runnable as a script from anywhere in the checkout

import bench_http_runner  # noqa: E402

from gate.load.config import PythonPipeline, Runner  # noqa: E402
from gate.load.dataset import Case  # noqa: E402
from gate.run.adapters.python import PythonAdapter  # noqa: E402
from gate.run.runner import Progress, run_cases  # noqa: E402

GOAL = 1.3
LATENCY_S = 0.05


def pipeline(question: Any, case: Any) -> dict[str, Any]:
    """The benchmarked pipeline: waits like a model call, returns a small valid output."""
    time.sleep(LATENCY_S)
    return {"answer": f"echo: {question}", "retrieved": ["doc-1", "doc-2"]}


def main() -> int:
    if "--http" in sys.argv:
        return bench_http_runner.main([a for a in sys.argv[1:] if a != "--http"])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3, help="timed runs; the median is quoted")
    args = parser.parse_args()
    latency_s = args.latency_ms / 1000

    # Imported by name, as gate.yml's `target: bench_runner:pipeline` would be: that module, not
    # this __main__, is the one whose latency counts.
    adapter = PythonAdapter(PythonPipeline(adapter="python", target="bench_runner:pipeline"), HERE)
    sys.modules["bench_runner"].LATENCY_S = latency_s
    cases = [Case(id=f"case-{i:05d}", input=f"question {i}") for i in range(args.cases)]
    settings = Runner(concurrency=args.concurrency, timeout_s=30, retries=0, repeats=1)
    ideal = args.cases * latency_s / args.concurrency

    walls = []
    for _ in range(args.rounds):
        begin = time.perf_counter()
        records = run_cases(
            cases,
            adapter,
            settings,
            progress=Progress(len(cases), io.StringIO()),
            now=lambda: datetime.now(UTC),
        )
        walls.append(time.perf_counter() - begin)
        failed = [r for r in records if r.status != "ok"]
        if failed:
            print(f"{len(failed)} cases failed, e.g. {failed[0].error}", file=sys.stderr)
            return 1
    adapter.close()

    wall = statistics.median(walls)
    ratio = wall / ideal
    print(
        f"runner: {args.cases} cases x {args.latency_ms:g} ms, concurrency {args.concurrency}\n"
        f"  ideal N·L/C   {ideal:.4f} s\n"
        f"  wall          {wall:.4f} s  (median of {', '.join(f'{w:.3f}' for w in walls)})\n"
        f"  ratio         {ratio:.3f}x  (goal ≤ {GOAL}x: {'met' if ratio <= GOAL else 'MISSED'})"
    )
    return 0 if ratio <= GOAL else 1


if __name__ == "__main__":
    sys.exit(main())
