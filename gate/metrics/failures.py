"""Failure modes: why a case failed, from a fixed taxonomy.

Each check returns, per record, 1.0 (passed), 0.0 (failed) or NaN (the case does not define
it). A failed check names the record's failure mode; a failed run adds ``error`` or ``timeout``.

``agent.task_success`` requires every check that ``decides_success`` to pass. Two checks only
label a run (a succeeding one too) and are gated through their metric's threshold instead:
``unsupported_claim`` reads no ``expected`` field and is a lexical heuristic; ``wrong_citation``
compares citations with ``expected.sources``, a relevance judgement that is usually partial (an
unjudged id is not known to be wrong), so citing one is a signal, not a failed task.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# The implementation modules, never the package: its __init__ is the registry, built on this one.
from gate.metrics.agent import trajectory_match
from gate.metrics.batch import Batch
from gate.metrics.generation import (
    citation_precision,
    faithfulness,
    false_answer,
    false_refusal,
    must_include,
    must_not_include,
)
from gate.metrics.retrieval import hit_rate


@dataclass(frozen=True)
class Check:
    """Passes where ``metric`` scores ``passing`` (1: perfect; 0: for a metric that counts a
    failure); NaN where the metric does not measure the record."""

    metric: Callable[[Batch], np.ndarray]
    passing: float
    meaning: str
    decides_success: bool = True

    def passes(self, batch: Batch) -> np.ndarray:
        score = batch.computed(self.metric)
        return np.where(np.isnan(score), np.nan, (score == self.passing).astype(float))


def _retrieval_hit(batch: Batch) -> np.ndarray:
    """``retrieval.hit_rate`` at the full depth retrieved: a relevant id at any rank."""
    depth = max(batch.rankings.gains.shape[1], 1)
    return batch.unless_failed(hit_rate(batch.rankings, depth))


CHECKS: dict[str, Check] = {
    "retrieval_miss": Check(_retrieval_hit, 1, "no relevant source was retrieved at any rank"),
    "unsupported_claim": Check(
        faithfulness,
        1,
        "a sentence of the answer is not supported by the retrieved text (faithfulness < 1)",
        decides_success=False,
    ),
    "missing_required": Check(must_include, 1, "a must_include phrase is missing from the answer"),
    "forbidden_content": Check(
        must_not_include, 1, "the answer contains a must_not_include phrase"
    ),
    "wrong_citation": Check(
        citation_precision,
        1,
        "a cited id is not a relevant expected source, or was not retrieved",
        decides_success=False,
    ),
    "wrong_tool": Check(trajectory_match, 1, "the tool calls do not match expected.tool_match"),
    "should_have_abstained": Check(false_answer, 0, "answered a case marked answerable: false"),
    "false_refusal": Check(false_refusal, 0, "abstained on an answerable case"),
}
"""The checks by the failure mode a failed check names, in the taxonomy's order."""

RUN_FAILURES = {
    "error": "the pipeline raised, returned malformed output or a recorded error",
    "timeout": "the run exceeded runner.timeout_s (after retries)",
}

FAILURE_MODES = {**{name: check.meaning for name, check in CHECKS.items()}, **RUN_FAILURES}
"""Every failure mode with its meaning: the documented taxonomy."""


def check_results(batch: Batch) -> dict[str, np.ndarray]:
    return {name: check.passes(batch) for name, check in CHECKS.items()}


def success_failed(batch: Batch) -> np.ndarray:
    """Per record: a check that decides success failed."""
    results = batch.computed(check_results)
    failed: np.ndarray = np.logical_or.reduce(
        [results[name] == 0 for name, check in CHECKS.items() if check.decides_success]
    )
    return failed


def modes(batch: Batch) -> list[tuple[str, ...]]:
    """The failure modes of every record, in taxonomy order."""
    results = batch.computed(check_results)
    # Each record's failed checks as the bits of a number, with its status: the few distinct
    # combinations are spelled out once each.
    bits = np.zeros(len(batch.records), dtype=np.int64)
    for bit, passed in enumerate(results.values()):
        bits |= (passed == 0).astype(np.int64) << bit
    keys = list(zip(bits.tolist(), [r.status for r in batch.records], strict=True))
    spelled: dict[tuple[int, str], tuple[str, ...]] = {}
    for key in set(keys):
        found = [name for bit, name in enumerate(results) if key[0] >> bit & 1]
        if key[1] != "ok":
            found.append("timeout" if key[1] == "timeout" else "error")
        spelled[key] = tuple(found)
    return [spelled[key] for key in keys]


def task_success(batch: Batch) -> np.ndarray:
    """1 when the run did not fail and every check its case's ``expected`` defines passes.

    The checks are the ``CHECKS`` that decide success: retrieval hit,
    required and forbidden phrases, tool trajectory, abstention (unsupported claims and wrong
    citations label a run without failing it: see ``failures``). A case defining no check
    succeeds when the run did not fail. Measured on every case; ``ops.cost_per_success_usd``
    divides by it. DeepEval's ``TaskCompletionMetric`` asks an LLM instead.
    """
    succeeded: np.ndarray = ~batch.failed & ~batch.computed(success_failed)
    return succeeded.astype(float)
