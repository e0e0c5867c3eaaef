"""The http adapter through the runner against a bare 32-thread requests client.

    python bench/bench_http_runner.py [--cases 2000] [--latency-ms 20] [--concurrency 32]
    python bench/bench_runner.py --http ...   (the same)

One loopback server (tests/http_pipeline.py, in its own process so it does not share this
process's interpreter lock) answers every POST after ``--latency-ms``. The same cases go through
(a) the gate's runner and http adapter, records written to a file as ``gate run`` does, and (b) a
bare client: a ``ThreadPoolExecutor`` of C threads posting the same bodies with one pooled
``requests.Session``, keeping the decoded replies. Rounds alternate (a, b, a, b, ...); the
medians are compared. Goal: the gate ≤ 1.15× the bare client.
"""

from __future__ import annotations

import argparse
import io
import multiprocessing
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "tests"))

import requests  # noqa: E402
from http_pipeline import Answer, PipelineServer  # noqa: E402

from gate.load.config import HttpPipeline, Runner  # noqa: E402
from gate.load.dataset import Case  # noqa: E402
from gate.run.adapters.http import HttpAdapter  # noqa: E402
from gate.run.records import Record, RecordWriter  # noqa: E402
from gate.run.runner import Progress, run_cases  # noqa: E402

GOAL = 1.15


def serve(latency_s: float, pipe: Connection) -> None:
    default = Answer(200, {"answer": "ok", "retrieved": ["doc-1", "doc-2"]}, delay_s=latency_s)
    with PipelineServer(default=default) as server:
        pipe.send(server.port)
        pipe.recv()


def gate_run(url: str, cases: list[Case], concurrency: int, folder: Path) -> float:
    adapter = HttpAdapter(HttpPipeline(adapter="http", url=url), concurrency, {})
    writer = RecordWriter(folder / "records.jsonl")
    settings = Runner(concurrency=concurrency, timeout_s=30, retries=0)
    records: list[Record] = []

    def written(batch: list[Record]) -> None:
        writer.write(batch)
        records.extend(batch)

    begin = time.perf_counter()
    run_cases(
        cases,
        adapter,
        settings,
        written,
        Progress(len(cases), io.StringIO()),
        now=lambda: datetime.now(UTC),
    )
    wall = time.perf_counter() - begin
    writer.close()
    adapter.close()
    assert all(r.status == "ok" for r in records), [r.error for r in records][:3]
    return wall


def bare_run(url: str, cases: list[Case], concurrency: int) -> float:
    session = requests.Session()
    pool = requests.adapters.HTTPAdapter(pool_maxsize=concurrency, max_retries=0)
    session.mount("http://", pool)

    def post(case: Case) -> object:
        response = session.post(url, json={"id": case.id, "input": case.input}, timeout=30)
        response.raise_for_status()
        return response.json()

    begin = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as executor:
        replies = list(executor.map(post, cases))
    wall = time.perf_counter() - begin
    session.close()
    assert len(replies) == len(cases)
    return wall


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    cases = [Case(id=f"case-{i:05d}", input=f"question {i}") for i in range(args.cases)]
    mine, theirs = multiprocessing.Pipe()
    server = multiprocessing.Process(target=serve, args=(args.latency_ms / 1000, theirs))
    server.start()
    url = f"http://127.0.0.1:{mine.recv()}/answer"
    gate_walls, bare_walls = [], []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for _ in range(args.rounds):
                gate_walls.append(gate_run(url, cases, args.concurrency, Path(tmp)))
                bare_walls.append(bare_run(url, cases, args.concurrency))
    finally:
        mine.send("stop")
        server.join()
    gate_wall, bare_wall = statistics.median(gate_walls), statistics.median(bare_walls)
    ratio = gate_wall / bare_wall
    ideal = args.cases * args.latency_ms / 1000 / args.concurrency
    print(
        f"http: {args.cases} cases x {args.latency_ms:g} ms, concurrency {args.concurrency} "
        f"(ideal N·L/C {ideal:.3f} s)\n"
        f"  gate runner  {gate_wall:.3f} s  ({', '.join(f'{w:.3f}' for w in gate_walls)})\n"
        f"  bare client  {bare_wall:.3f} s  ({', '.join(f'{w:.3f}' for w in bare_walls)})\n"
        f"  ratio        {ratio:.3f}x  (goal ≤ {GOAL}x: {'met' if ratio <= GOAL else 'MISSED'})"
    )
    return 0 if ratio <= GOAL else 1


if __name__ == "__main__":
    raise SystemExit(main())
