"""What tests build: runs and batches for metrics, runner settings, projects, a fake pipeline.

A run is a (case, record) pair made from the JSON a user writes (the golden-set line's
``expected``, the pipeline's output), validated by the same models the gate uses. A failed run
has no output, as the runner records it.

``conftest.py`` binds ``write_project`` to a test's ``tmp_path`` as the ``make_project`` fixture.
"""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from gate.load.config import Runner
from gate.load.dataset import Case
from gate.metrics import scoring
from gate.metrics.batch import Batch
from gate.run.adapters.base import Adapter, Reply
from gate.run.records import EMPTY, Record, Status, parse_output
from gate.run.runner import Progress, run_cases

Run = tuple[Case, Record]

DOCS = Path(__file__).resolve().parents[1] / "docs" / "metrics.md"


def run(
    expected: dict[str, Any] | None = None,
    output: dict[str, Any] | None = None,
    *,
    status: Status = "ok",
    latency_ms: float | None = 100.0,
    case_id: str = "case",
    tags: tuple[str, ...] = (),
) -> Run:
    """One run of one case: ``expected`` as in golden.jsonl, ``output`` as a pipeline returns it."""
    case = Case.model_validate(
        {"id": case_id, "input": "question", "expected": expected or {}, "tags": list(tags)}
    )
    failed = status != "ok"
    record = Record(
        case_id=case_id,
        repeat=0,
        trace_id=f"trace-{case_id}",
        status=status,
        latency_ms=latency_ms,
        attempts=1,
        started_at="2025-01-01T00:00:00Z",
        output=EMPTY if failed else parse_output(output or {}),
        raw_output=None if failed else output,
        error=f"pipeline {status}" if failed else None,
    )
    return case, record


def batch(*runs: Run) -> Batch:
    return Batch([c for c, _ in runs], [r for _, r in runs])


def scores(name: str, *runs: Run) -> np.ndarray:
    """Per-run scores of the metric ``name``, through the registry."""
    return scoring.score(batch(*runs), [name])[name]


def score(
    name: str,
    expected: dict[str, Any] | None = None,
    output: dict[str, Any] | None = None,
    **record: Any,
) -> float:
    """The score of one run (NaN when not measured)."""
    (value,) = scores(name, run(expected, output, **record))
    return float(value)


def aggregate(name: str, *runs: Run) -> tuple[float | None, int]:
    """The metric's aggregate value and n over the runs, as the report computes them."""
    return scoring.aggregate(name, scoring.score(batch(*runs), [name]))


def documented(name: str) -> bool:
    """``docs/metrics.md`` names the metric or failure mode in backticks."""
    return f"`{name}`" in DOCS.read_text(encoding="utf-8")


def runner(**settings: Any) -> Runner:
    """Runner settings: 4 cases at once, 5 s each, 2 retries, unless ``settings`` say otherwise."""
    return Runner.model_validate({"concurrency": 4, "timeout_s": 5, "retries": 2, **settings})


def utc_now() -> datetime:
    """The runner's clock in tests: a fixed moment, so records are reproducible."""
    return datetime(2025, 1, 1, tzinfo=UTC)


def run_all(adapter: Adapter, cases: list[Case], **settings: Any) -> list[Record]:
    """Every case through the runner with ``runner(**settings)``, printing no progress; the
    records in dataset order, repeat after repeat (the runner hands them on as they finish)."""
    return ran(cases, adapter, runner(**settings), progress=Progress(len(cases), None), now=utc_now)


def ran(cases: list[Case], adapter: Adapter, settings: Runner, **options: Any) -> list[Record]:
    """``run_cases``' records, in dataset order, repeat after repeat."""
    records: list[Record] = []
    run_cases(cases, adapter, settings, records.extend, **options)
    return in_dataset_order(records, cases)


def in_dataset_order(records: list[Record], cases: list[Case]) -> list[Record]:
    position = {case.id: i for i, case in enumerate(cases)}
    return sorted(records, key=lambda r: (r.repeat, position[r.case_id]))


MakeProject = Callable[..., Path]
"""The ``make_project`` fixture: ``write_project`` bound to the test's ``tmp_path``."""


def write_project(
    folder: Path,
    cases: Iterable[Mapping[str, Any]],
    thresholds: Mapping[str, Any] | None = None,
    **config: Any,
) -> Path:
    """``golden.jsonl`` with ``cases``, ``thresholds.yml`` when given, and the ``gate.yml`` naming
    them, in ``folder``; returns the path of gate.yml. The pipeline replays a file never read (the
    test passes its own adapter); ``config`` adds or replaces top-level keys of gate.yml."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = "".join(json.dumps(case) + "\n" for case in cases)
    (folder / "golden.jsonl").write_text(lines, encoding="utf-8")
    body: dict[str, Any] = {
        "dataset": "golden.jsonl",
        "pipeline": {"adapter": "replay", "path": "unused.jsonl"},
    }
    if thresholds is not None:
        (folder / "thresholds.yml").write_text(yaml.safe_dump(dict(thresholds)), encoding="utf-8")
        body["thresholds"] = "thresholds.yml"
    body.update(config)
    (folder / "gate.yml").write_text(yaml.safe_dump(body), encoding="utf-8")
    return folder / "gate.yml"


class FakeAdapter:
    """A deterministic pipeline: answers every call with ``answer(case)``, which may wait or
    raise. Keeps the case ids it was called with, and the most calls it was serving at once."""

    def __init__(self, answer: Callable[[Case], Any] = lambda case: {"answer": case.id}) -> None:
        self.answer = answer
        self.calls: list[str] = []
        self.active = 0
        self.max_active = 0
        self._lock = threading.Lock()

    @classmethod
    def queued(cls, outputs: Mapping[str, list[Any]]) -> FakeAdapter:
        """Serves each case id's outputs in turn, one per call (so one per repeat); the last one
        again once the others are used up."""
        queues = {case_id: list(queue) for case_id, queue in outputs.items()}
        lock = threading.Lock()

        def answer(case: Case) -> Any:
            with lock:
                queue = queues[case.id]
                return queue.pop(0) if len(queue) > 1 else queue[0]

        return cls(answer)

    def call(self, case: Case, timeout_s: float) -> Reply:
        with self._lock:
            self.calls.append(case.id)
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            return Reply(self.answer(case))
        finally:
            with self._lock:
                self.active -= 1

    def close(self) -> None:
        pass


def copy_example(folder: Path) -> Path:
    """A copy of the shipped example (config, golden set, thresholds, baseline, pipeline) in
    ``folder``, so a test can break it or write a baseline without touching the repository."""
    root = Path(__file__).resolve().parents[1]
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("gate.yml", "datasets", "thresholds", "examples"):
        source = root / name
        if source.is_dir():
            shutil.copytree(source, folder / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, folder / name)
    return folder
