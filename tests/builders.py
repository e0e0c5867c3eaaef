"""Batches built from real ``Case`` and ``Record`` objects, for tests of metrics and checks.

A run is a (case, record) pair made from the JSON a user writes (the golden-set line's
``expected``, the pipeline's output), validated by the same models the gate uses. A failed run
has no output, as the runner records it.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np

from gate.load.dataset import Case
from gate.metrics import scoring
from gate.metrics.batch import Batch
from gate.run.records import EMPTY, Record, Status, parse_output

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
