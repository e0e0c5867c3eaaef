"""Agent metrics on hand-computed cases: tool calls, trajectories, task success."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pytest
from builders import aggregate, documented, run, score, scores

from gate.load.dataset import ToolCall
from gate.metrics import METRICS, agent


def call(name: str, **args: Any) -> dict[str, Any]:
    return {"name": name, "args": args}


# --- tool_precision, tool_recall ---


def test_tool_precision_and_recall__multiset_of_name_and_arguments() -> None:
    # Expected A(x=1), A(x=1), B; actual A(x=1), A(x=2), B, B. In both (multiset): A(x=1) once,
    # B once = 2. Precision 2 / 4 actual, recall 2 / 3 expected.
    expected = {"tool_calls": [call("A", x=1), call("A", x=1), call("B")]}
    output = {"tool_calls": [call("A", x=1), call("A", x=2), call("B"), call("B")]}

    assert score("agent.tool_precision", expected, output) == 0.5
    assert score("agent.tool_recall", expected, output) == pytest.approx(2 / 3)


def test_tool_precision__argument_order_ignored_values_compared_as_json() -> None:
    expected = {"tool_calls": [call("A", x=1, y="z")]}

    assert score("agent.tool_precision", expected, {"tool_calls": [call("A", y="z", x=1)]}) == 1.0
    assert score("agent.tool_precision", expected, {"tool_calls": [call("A", x="1", y="z")]}) == 0.0


@pytest.mark.parametrize(
    ("expected", "actual", "precision", "recall"),
    [
        ([], [], 1.0, 1.0),
        ([], [call("A")], 0.0, 0.0),
        ([call("A")], [], 0.0, 0.0),
    ],
    ids=["none_expected_none_made", "none_expected_some_made", "some_expected_none_made"],
)
def test_tool_precision_and_recall__zero_division(
    expected: list[Any], actual: list[Any], precision: float, recall: float
) -> None:
    assert (
        score("agent.tool_precision", {"tool_calls": expected}, {"tool_calls": actual}) == precision
    )
    assert score("agent.tool_recall", {"tool_calls": expected}, {"tool_calls": actual}) == recall


def test_tool_precision_and_recall__failed_run_is_not_measured() -> None:
    for expected in ({"tool_calls": [call("A")]}, {"tool_calls": []}):
        assert math.isnan(score("agent.tool_precision", expected, status="error"))
        assert math.isnan(score("agent.tool_recall", expected, status="error"))


# --- tool_call_accuracy ---


def test_tool_call_accuracy__partial_credit_for_arguments() -> None:
    # search: names match, keys {q, lang}, q equal -> (1 + 1) / (1 + 2) = 2/3.
    # email: no actual call with that name -> 0. Mean over 2 expected calls: 1/3.
    expected = {"tool_calls": [call("search", q="x", lang="en"), call("email", to="a")]}
    output = {"tool_calls": [call("search", q="x", lang="fr"), call("lookup")]}

    assert score("agent.tool_call_accuracy", expected, output) == pytest.approx(1 / 3)


def test_tool_call_accuracy__extra_calls_not_rewarded() -> None:
    expected = {"tool_calls": [call("A")]}

    value = score(
        "agent.tool_call_accuracy", expected, {"tool_calls": [call("A"), call("A"), call("B")]}
    )

    assert value == 1.0


def test_tool_call_accuracy__an_actual_call_is_used_once() -> None:
    expected = {"tool_calls": [call("A"), call("A")]}

    assert score("agent.tool_call_accuracy", expected, {"tool_calls": [call("A")]}) == 0.5


def test_tool_call_accuracy__order_insensitive() -> None:
    expected = {"tool_calls": [call("A", x=1), call("B", y=2)]}

    value = score(
        "agent.tool_call_accuracy", expected, {"tool_calls": [call("B", y=2), call("A", x=1)]}
    )

    assert value == 1.0


@pytest.mark.parametrize(
    ("actual", "value"), [([], 1.0), ([call("A")], 0.0)], ids=["none_made", "one_made"]
)
def test_tool_call_accuracy__no_call_expected(actual: list[Any], value: float) -> None:
    assert score("agent.tool_call_accuracy", {"tool_calls": []}, {"tool_calls": actual}) == value


def test_tool_call_accuracy__failed_run_is_not_measured() -> None:
    for expected in ({"tool_calls": [call("A")]}, {"tool_calls": []}):
        assert math.isnan(score("agent.tool_call_accuracy", expected, status="timeout"))


# --- trajectory_match ---

A, B, C = call("A", x=1), call("B"), call("C")


@pytest.mark.parametrize(
    ("mode", "actual", "matches"),
    [
        ("strict", [A, B], True),
        ("strict", [B, A], False),
        ("strict", [A, B, C], False),
        ("unordered", [B, A], True),
        ("unordered", [A, B, B], False),
        ("unordered", [A], False),
        ("unordered", [call("A", x=2), B], False),
        ("subset", [A], True),
        ("subset", [], True),
        ("subset", [A, C], False),
        ("subset", [A, A], False),
        ("superset", [A, B, C], True),
        ("superset", [C, B, A], True),
        ("superset", [A], False),
    ],
)
def test_trajectory_match__modes(mode: str, actual: list[Any], matches: bool) -> None:
    expected = {"tool_calls": [A, B], "tool_match": mode}

    assert score("agent.trajectory_match", expected, {"tool_calls": actual}) == float(matches)


def test_trajectory_match__unordered_by_default() -> None:
    assert score("agent.trajectory_match", {"tool_calls": [A, B]}, {"tool_calls": [B, A]}) == 1.0


def test_trajectory_match__failed_run_is_not_measured() -> None:
    # Before: a failed run "called nothing", so `subset` and `tool_calls: []` scored it 1.
    for expected in ({"tool_calls": [A], "tool_match": "subset"}, {"tool_calls": []}):
        assert math.isnan(score("agent.trajectory_match", expected, status="error"))


# --- task_success ---


def test_task_success__every_defined_check_passes() -> None:
    expected = {
        "must_include": ["portal"],
        "sources": ["doc"],
        "tool_calls": [A],
        "answerable": True,
    }
    output = {
        "answer": "Use the portal.",
        "retrieved": ["doc"],
        "citations": ["doc"],
        "tool_calls": [A],
    }

    assert score("agent.task_success", expected, output) == 1.0


@pytest.mark.parametrize(
    ("expected", "output", "why"),
    [
        ({"must_include": ["portal"]}, {"answer": "No."}, "missing_required"),
        ({"must_not_include": ["password"]}, {"answer": "password"}, "forbidden_content"),
        ({"sources": ["doc"]}, {"retrieved": ["other"]}, "retrieval_miss"),
        ({"tool_calls": [A]}, {"tool_calls": [B]}, "wrong_tool"),
        ({"answerable": False}, {"answer": "It is 42."}, "should_have_abstained"),
        ({"answerable": True}, {"answer": "I don't know."}, "false_refusal"),
    ],
)
def test_task_success__one_failed_check_fails_the_case(
    expected: dict[str, Any], output: dict[str, Any], why: str
) -> None:
    assert score("agent.task_success", expected, output) == 0.0, why


def test_task_success__unsupported_claim_and_wrong_citation_do_not_fail_the_case() -> None:
    output = {
        "answer": "Fly to Mars.",
        "retrieved": [{"id": "doc", "text": "Rotate keys."}, "other"],
        "citations": ["doc", "other"],
    }

    assert score("agent.task_success", {"sources": ["doc"]}, output) == 1.0


@pytest.mark.parametrize("status", ["error", "timeout"])
def test_task_success__failed_run_fails_even_without_checks(status: Any) -> None:
    assert score("agent.task_success", None, status=status) == 0.0


def test_task_success__no_check_defined_succeeds() -> None:
    assert score("agent.task_success", None, {"answer": "anything"}) == 1.0


def test_task_success__measured_on_every_run() -> None:
    runs = [
        run(None, {"answer": "x"}),
        run({"must_include": ["y"]}, {"answer": "x"}),
        run(status="error"),
    ]

    np.testing.assert_array_equal(scores("agent.task_success", *runs), [1, 0, 0])
    assert aggregate("agent.task_success", *runs) == (pytest.approx(1 / 3), 3)


# --- every agent metric ---

AGENT = sorted(name for name in METRICS if name.startswith("agent."))
NEEDS_TOOL_CALLS = [name for name in AGENT if name != "agent.task_success"]


@pytest.mark.parametrize("name", NEEDS_TOOL_CALLS)
def test_tool_metrics__nan_without_expected_tool_calls(name: str) -> None:
    assert math.isnan(score(name, {"answer": "x"}, {"tool_calls": [A]}))


@pytest.mark.parametrize("name", AGENT)
def test_agent_metric__empty_batch_has_no_value(name: str) -> None:
    assert aggregate(name) == (None, 0)


@pytest.mark.parametrize("name", AGENT)
def test_docs__define_every_agent_metric(name: str) -> None:
    assert documented(name)


# --- arguments as JSON values (issue 10: 5 and 5.0 were different calls) ---


@pytest.mark.parametrize(
    ("expected_args", "actual_args", "equal"),
    [
        ({"n": 5}, {"n": 5.0}, True),
        ({"n": {"a": [1, 2.0]}}, {"n": {"a": [1.0, 2]}}, True),
        ({"a": 1, "b": 2}, {"b": 2, "a": 1}, True),
        ({"n": 10**20}, {"n": 1e20}, True),
        ({"n": 0.1 + 0.2}, {"n": 0.3}, False),  # values, not a tolerance
        ({"n": True}, {"n": 1}, False),  # a boolean is not a number
        ({"n": False}, {"n": 0.0}, False),
        ({"n": "1"}, {"n": 1}, False),
        ({"n": None}, {"n": 0}, False),
        ({"n": [1, 2]}, {"n": [2, 1]}, False),
    ],
)
def test_tool_arguments__compared_as_json_values(
    expected_args: dict[str, Any], actual_args: dict[str, Any], equal: bool
) -> None:
    expected = {"tool_calls": [{"name": "A", "args": expected_args}]}
    output = {"tool_calls": [{"name": "A", "args": actual_args}]}

    for name in ("agent.tool_recall", "agent.tool_precision", "agent.trajectory_match"):
        assert score(name, expected, output) == float(equal), name
    assert score("agent.tool_call_accuracy", expected, output) == (1.0 if equal else 0.5)


# --- trajectory_match against agentevals' semantics -----------------------------------------
# The oracle restates langchain-ai/agentevals (python/agentevals/trajectory/utils.py,
# `_is_trajectory_superset`; strict.py): superset = every reference call is matched by a distinct
# output call with the same name and equal arguments (first match wins); subset = superset with
# the roles swapped; unordered = both; strict = the same calls in the same order. Their argument
# matcher ("exact") is Python's `==` on the parsed arguments, which equals ours on this alphabet
# (no booleans: Python's `True == 1` is the one place we differ, on purpose).


def _agentevals_superset(outputs: list[dict[str, Any]], reference: list[dict[str, Any]]) -> bool:
    used: set[int] = set()
    for ref in reference:
        found = next(
            (
                j
                for j, out in enumerate(outputs)
                if j not in used and out["name"] == ref["name"] and out["args"] == ref["args"]
            ),
            None,
        )
        if found is None:
            return False
        used.add(found)
    return True


def _agentevals(mode: str, outputs: list[dict[str, Any]], reference: list[dict[str, Any]]) -> bool:
    if mode == "strict":
        return len(outputs) == len(reference) and all(
            o["name"] == r["name"] and o["args"] == r["args"]
            for o, r in zip(outputs, reference, strict=True)
        )
    superset = _agentevals_superset(outputs, reference)
    subset = _agentevals_superset(reference, outputs)
    return {"superset": superset, "subset": subset, "unordered": superset and subset}[mode]


def test_trajectory_match__agrees_with_agentevals_on_every_small_trajectory() -> None:
    alphabet = [call("A", x=5), call("A", x=5.0), call("A", x=2), call("B", y={"k": [1, 2]})]
    trajectories = [list(t) for n in range(4) for t in itertools.product(alphabet, repeat=n)]
    tool = {repr(c): ToolCall.model_validate(c) for c in alphabet}
    checked = 0
    for mode in ("strict", "unordered", "subset", "superset"):
        for reference in trajectories:
            for outputs in trajectories:
                ours = agent.trajectory_matches(
                    mode,  # type: ignore[arg-type]
                    [tool[repr(c)] for c in reference],
                    [tool[repr(c)] for c in outputs],
                )
                assert ours == _agentevals(mode, outputs, reference), (mode, reference, outputs)
                checked += 1
    assert checked == 4 * 85 * 85
