"""Agent metrics: the tool calls a pipeline made against the ones the case expects."""

from __future__ import annotations

import json
from collections import Counter
from typing import TYPE_CHECKING, Any

import numpy as np

from gate.dataset import ToolCall

if TYPE_CHECKING:
    from gate.metrics import Batch


def _key(call: ToolCall) -> str:
    # JSON with sorted keys: {"a": 1, "b": 2} and {"b": 2, "a": 1} are the same call.
    return json.dumps([call.name, call.args], sort_keys=True, default=str)


def call_score(expected: ToolCall, actual: ToolCall) -> float:
    """How well one actual call matches one expected call.

    0 when the names differ; otherwise (1 + arguments with equal values) / (1 + all argument
    names of either call): 1 for an exact match, partial credit for the right tool with some
    wrong, missing or extra arguments.
    """
    if expected.name != actual.name:
        return 0.0
    keys = set(expected.args) | set(actual.args)
    same = sum(1 for k in keys if k in expected.args and k in actual.args and
               _equal(expected.args[k], actual.args[k]))
    return (1 + same) / (1 + len(keys))


def _equal(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def _actual(batch: Batch, i: int) -> list[ToolCall]:
    return list(batch.records[i].output.tool_calls or ())


def tool_call_accuracy(batch: Batch) -> np.ndarray:
    """Mean over expected calls of the best still-unused actual call's ``call_score``.

    Greedy in the expected order; an actual call is used at most once, so extra calls are never
    rewarded (nor penalised: see ``trajectory_match``). A case expecting no call scores 1 when
    none was made, else 0. NaN when the case has no ``expected.tool_calls``. Order-insensitive,
    like DeepEval's ToolCorrectnessMetric with input parameters considered.
    """
    out = np.full(len(batch.cases), np.nan)
    for i, case in enumerate(batch.cases):
        expected = case.expected.tool_calls
        if expected is None:
            continue
        actual = _actual(batch, i)
        if not expected:
            out[i] = float(not actual)
            continue
        unused = list(range(len(actual)))
        total = 0.0
        for call in expected:
            scores = [call_score(call, actual[j]) for j in unused]
            if scores and max(scores) > 0:
                best = int(np.argmax(scores))
                total += scores[best]
                unused.pop(best)
        out[i] = total / len(expected)
    return out


def trajectory_matches(mode: str, expected: list[ToolCall], actual: list[ToolCall]) -> bool:
    """Exact call matching (name and arguments) in one of four modes (as agentevals' modes).

    ``strict``: the same calls in the same order; ``unordered``: the same calls in any order;
    ``subset``: every actual call is an expected one (nothing extra); ``superset``: every
    expected call was made (extra calls allowed). Repeated calls count as many times as made.
    """
    want = Counter(_key(c) for c in expected)
    got = Counter(_key(c) for c in actual)
    if mode == "strict":
        return [_key(c) for c in expected] == [_key(c) for c in actual]
    if mode == "unordered":
        return want == got
    if mode == "subset":
        return not (got - want)
    return not (want - got)


def trajectory_match(batch: Batch) -> np.ndarray:
    """1 when the actual tool calls match the expected ones under ``expected.tool_match``."""
    out = np.full(len(batch.cases), np.nan)
    for i, case in enumerate(batch.cases):
        expected = case.expected.tool_calls
        if expected is not None:
            out[i] = float(trajectory_matches(case.expected.tool_match, list(expected),
                                              _actual(batch, i)))
    return out


def task_success(batch: Batch) -> np.ndarray:
    """1 when the run did not fail and every check its case defines passes (see
    ``gate.metrics.failures``): required phrases, forbidden phrases, retrieval hit, tool
    trajectory, abstention. A case defining no check succeeds when the run did not fail.
    Measured on every case; ``ops.cost_per_success_usd`` divides by it."""
    return (~batch.failed & ~batch.check_failed).astype(float)
