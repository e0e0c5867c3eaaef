"""Time the runner against its ideal, N·L/C: the issue's speed goal.

    python bench/bench_runner.py [--cases 1000] [--latency-ms 50] [--concurrency 32] [--rounds 3]
                                 [--adapter python python-thread http]

N cases go through a real adapter whose pipeline waits L: the python adapter (worker processes,
the default, or in-thread) calling a function that sleeps, or the http adapter POSTing to a local
server that sleeps before it answers. With C workers the best possible wall time is N·L/C
(1000 · 50 ms / 32 = 1.5625 s). Only ``run_cases`` is timed: loading the adapter and building the
cases is start-up. The goal is at most 1.3× the ideal. Progress lines go to a throwaway stream, as
they would to a CI log, so their cost is counted.
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import os
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # runnable as a script from anywhere in the checkout

from gate.load.config import HttpPipeline, PythonPipeline, Runner  # noqa: E402
from gate.load.dataset import Case  # noqa: E402
from gate.run.adapters.base import Adapter  # noqa: E402
from gate.run.adapters.http import HttpAdapter  # noqa: E402
from gate.run.adapters.python import PythonAdapter  # noqa: E402
from gate.run.runner import Progress, run_cases  # noqa: E402

GOAL = 1.3
LATENCY = "GATE_BENCH_LATENCY_S"
"""Read by the pipeline wherever it runs (a worker process too), set by ``main``."""


def pipeline(question: Any, case: Any) -> dict[str, Any]:
    """The benchmarked pipeline: waits like a model call, returns a small valid output."""
    time.sleep(float(os.environ.get(LATENCY, "0.05")))
    return {"answer": f"echo: {question}", "retrieved": ["doc-1", "doc-2"]}


class _Service(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the adapter's pooled connections are reused

    def do_POST(self) -> None:
        case = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        body = json.dumps(pipeline(case["input"], case)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # the default 5 refuses connections when 32 arrive at once
    daemon_threads = True


def _serve(port: Connection) -> None:
    server = _Server(("127.0.0.1", 0), _Service)
    port.send(server.server_address[1])
    server.serve_forever()


@contextmanager
def adapter_for(name: str, concurrency: int) -> Iterator[Adapter]:
    if name == "http":
        # The service in a process of its own, as it would be: in this one, it would compete
        # with the runner for the GIL and the ratio would measure the benchmark's own server.
        context = multiprocessing.get_context("spawn")
        mine, theirs = context.Pipe()
        service = context.Process(target=_serve, args=(theirs,), daemon=True)
        service.start()
        url = f"http://127.0.0.1:{mine.recv()}/answer"
        adapter: Adapter = HttpAdapter(HttpPipeline(adapter="http", url=url), concurrency, {})
        try:
            yield adapter
        finally:
            adapter.close()
            service.kill()
            service.join()
        return
    isolation = "thread" if name == "python-thread" else "process"
    # Imported by name, as gate.yml's `target: bench_runner:pipeline` would be.
    spec = PythonPipeline(adapter="python", target="bench_runner:pipeline", isolation=isolation)
    adapter = PythonAdapter(spec, HERE)
    try:
        yield adapter
    finally:
        adapter.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3, help="timed runs; the median is quoted")
    parser.add_argument(
        "--adapter",
        nargs="+",
        choices=["python", "python-thread", "http"],
        default=["python", "python-thread", "http"],
    )
    args = parser.parse_args()
    latency_s = args.latency_ms / 1000
    os.environ[LATENCY] = str(latency_s)
    cases = [Case(id=f"case-{i:05d}", input=f"question {i}") for i in range(args.cases)]
    settings = Runner(concurrency=args.concurrency, timeout_s=30, retries=0, repeats=1)
    ideal = args.cases * latency_s / args.concurrency
    print(
        f"runner: {args.cases} cases x {args.latency_ms:g} ms, concurrency {args.concurrency}; "
        f"ideal N·L/C {ideal:.4f} s"
    )
    met = True
    for name in args.adapter:
        walls = []
        with adapter_for(name, args.concurrency) as adapter:
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
        wall = statistics.median(walls)
        ratio = wall / ideal
        met = met and ratio <= GOAL
        print(
            f"  {name:14s} wall {wall:.4f} s (median of {', '.join(f'{w:.3f}' for w in walls)})"
            f"  ratio {ratio:.3f}x  (goal ≤ {GOAL}x: {'met' if ratio <= GOAL else 'MISSED'})"
        )
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
