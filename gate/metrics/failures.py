"""Failure modes: why a case failed, from a fixed taxonomy.

Each check returns, per record, 1.0 (passed), 0.0 (failed) or NaN (the case does not define
it). A failed check names the case's failure mode; a failed run adds ``error`` or ``timeout``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from gate.metrics import agent, generation

if TYPE_CHECKING:
    from gate.metrics import Batch


@dataclass(frozen=True)
class Check:
    passes: Callable[[Batch], np.ndarray]
    meaning: str


def _retrieval_hit(batch: Batch) -> np.ndarray:
    from gate.metrics import retrieval

    return retrieval.hit_rate(batch.rankings, max(batch.rankings.gains.shape[1], 1))


def _complete(batch: Batch) -> np.ndarray:
    score = generation.must_include(batch)
    return np.where(np.isnan(score), np.nan, (score == 1).astype(float))


def _abstained_when_unanswerable(batch: Batch) -> np.ndarray:
    return 1 - generation.false_answer(batch)


def _answered_when_answerable(batch: Batch) -> np.ndarray:
    return 1 - generation.false_refusal(batch)


CHECKS: dict[str, Check] = {
    "retrieval_miss": Check(_retrieval_hit, "no relevant source was retrieved at any rank"),
    "missing_required": Check(_complete, "a must_include phrase is missing from the answer"),
    "forbidden_content": Check(
        generation.must_not_include, "the answer contains a must_not_include phrase"
    ),
    "wrong_tool": Check(agent.trajectory_match, "the tool calls do not match expected.tool_match"),
    "should_have_abstained": Check(
        _abstained_when_unanswerable, "answered a case marked answerable: false"
    ),
    "false_refusal": Check(_answered_when_answerable, "abstained on an answerable case"),
}
"""The checks a case's ``expected`` fields define, by the failure mode a failed check names."""

RUN_FAILURES = {
    "error": "the pipeline raised, returned malformed output or a recorded error",
    "timeout": "the run exceeded runner.timeout_s (after retries)",
}

FAILURE_MODES = {**{name: check.meaning for name, check in CHECKS.items()}, **RUN_FAILURES}
"""Every failure mode with its meaning: the documented taxonomy."""


def check_results(batch: Batch) -> dict[str, np.ndarray]:
    return {name: check.passes(batch) for name, check in CHECKS.items()}


def modes(batch: Batch) -> list[tuple[str, ...]]:
    """The failure modes of every record, in taxonomy order."""
    results = batch.checks
    out = []
    for i, record in enumerate(batch.records):
        found = [name for name, passed in results.items() if passed[i] == 0]
        if record.status != "ok":
            found.append("timeout" if record.status == "timeout" else "error")
        out.append(tuple(found))
    return out
