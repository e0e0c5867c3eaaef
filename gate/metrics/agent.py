"""Agent metrics: the tool calls a pipeline made against the ones the case expects.

Every metric here is NaN when the case has no ``expected.tool_calls`` (``[]`` is defined: the
agent should call nothing), and for a failed run: it made no call we could see, which is not
evidence that it called nothing (its failure counts in ``ops.error_rate`` and the error budget).

Arguments compare as JSON values: objects regardless of key order, numbers by value (``5`` equals
``5.0``, as in DeepEval and agentevals, which compare parsed values with Python's ``==``), but a
boolean is never a number (``true`` is not ``1``, where Python's ``==`` says it is) and a string
is never a number (``"1"`` is not ``1``).
"""

from __future__ import annotations

import math
from collections import Counter
from fractions import Fraction
from typing import Any

import numpy as np

from gate.load.dataset import ToolCall, ToolMatch
from gate.metrics.batch import Batch


def json_value(value: Any) -> Any:
    """A hashable form of a JSON value in which equal JSON values are equal: object key order
    ignored, numbers by exact value (``Fraction``: 5 == 5.0, and no float rounding), booleans,
    strings and null each their own kind."""
    if isinstance(value, bool) or value is None:
        return ("literal", value)
    if isinstance(value, int | float):
        finite = not isinstance(value, float) or math.isfinite(value)
        return ("number", Fraction(value) if finite else repr(value))
    if isinstance(value, str):
        return ("string", value)
    if isinstance(value, dict):
        return ("object", frozenset((str(k), json_value(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return ("array", tuple(json_value(v) for v in value))
    return ("other", repr(value))


def _key(call: ToolCall) -> Any:
    return (call.name, json_value(call.args))


def call_score(expected: ToolCall, actual: ToolCall) -> float:
    """How well one actual call matches one expected call.

    0 when the names differ; otherwise (1 + arguments with equal values) / (1 + all argument
    names of either call): 1 for an exact match, partial credit for the right tool with some
    wrong, missing or extra arguments.
    """
    if expected.name != actual.name:
        return 0.0
    keys = set(expected.args) | set(actual.args)
    same = sum(
        1
        for k in keys
        if k in expected.args and k in actual.args and _equal(expected.args[k], actual.args[k])
    )
    return (1 + same) / (1 + len(keys))


def _equal(a: Any, b: Any) -> bool:
    return bool(json_value(a) == json_value(b))


def _actual(batch: Batch, i: int) -> list[ToolCall]:
    return list(batch.records[i].output.tool_calls or ())


def tool_call_accuracy(batch: Batch) -> np.ndarray:
    """Mean over expected calls of the best still-unused actual call's ``call_score``.

    Greedy in the expected order; an actual call is used at most once, so extra calls are never
    rewarded (nor penalised: see ``tool_precision`` and ``trajectory_match``). A case expecting
    no call scores 1 when none was made, else 0. A failed run scores 0 (unless no call was
    expected). Closest to DeepEval's ``ToolCorrectnessMetric`` with input parameters, which
    credits the arguments only (equal keys / all keys), so a call without arguments scores 0
    there, and scores no expected call as 0 (docs/metrics.md, "Tool calls and DeepEval").
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
    return batch.unless_failed(out)


def _pair_counts(batch: Batch) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per record: (name, arguments) pairs in both (multiset), expected, actual; and measured."""
    size = len(batch.cases)
    matched, n_expected, n_actual = np.zeros(size), np.zeros(size), np.zeros(size)
    measured = np.zeros(size, dtype=bool)
    for i, case in enumerate(batch.cases):
        expected = case.expected.tool_calls
        if expected is None or batch.failed[i]:
            continue
        want = Counter(_key(c) for c in expected)
        got = Counter(_key(c) for c in _actual(batch, i))
        matched[i], n_expected[i], n_actual[i] = (want & got).total(), want.total(), got.total()
        measured[i] = True
    return matched, n_expected, n_actual, measured


def _share(
    matched: np.ndarray, of: np.ndarray, other: np.ndarray, measured: np.ndarray
) -> np.ndarray:
    """matched / of; when either side is empty, 1 if both are, else 0 (SQuAD v2's rule)."""
    ratio = np.divide(matched, of, out=np.zeros_like(matched), where=of > 0)
    score = np.where((of == 0) | (other == 0), (of == other).astype(float), ratio)
    return np.where(measured, score, np.nan)


def tool_precision(batch: Batch) -> np.ndarray:
    """Actual calls that are expected / actual calls, over exact (name, arguments) pairs.

    Multisets: a call expected once and made twice matches once. Arguments compare as JSON
    values (see the module's docstring). 0/0: no call expected and none made scores 1; calls
    made where none was expected, or none made where some were, score 0. No DeepEval
    equivalent: its ``ToolCorrectnessMetric`` divides by the expected calls only.
    """
    matched, n_expected, n_actual, measured = _pair_counts(batch)
    return _share(matched, n_actual, n_expected, measured)


def tool_recall(batch: Batch) -> np.ndarray:
    """Expected calls that were made / expected calls, over exact (name, arguments) pairs.

    Multisets and 0/0 rules as ``tool_precision``. Not DeepEval's ``ToolCorrectnessMetric``,
    which gives partial credit for arguments and scores no expected call as 0.
    """
    matched, n_expected, n_actual, measured = _pair_counts(batch)
    return _share(matched, n_expected, n_actual, measured)


def trajectory_matches(mode: ToolMatch, expected: list[ToolCall], actual: list[ToolCall]) -> bool:
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
    """1 when the actual tool calls match the expected ones under ``expected.tool_match``
    (default ``unordered``), else 0. agentevals' trajectory match evaluator with exact argument
    matching, same modes, except that ``true`` is not ``1`` here."""
    out = np.full(len(batch.cases), np.nan)
    for i, case in enumerate(batch.cases):
        expected = case.expected.tool_calls
        if expected is not None:
            match = trajectory_matches(case.expected.tool_match, list(expected), _actual(batch, i))
            out[i] = float(match)
    return batch.unless_failed(out)
