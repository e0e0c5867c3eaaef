"""Failure modes: the fixed taxonomy, which check names which mode, and what decides success."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from builders import batch, documented, run

from gate.metrics import failures, generation

TAXONOMY = [
    "retrieval_miss",
    "unsupported_claim",
    "missing_required",
    "forbidden_content",
    "wrong_citation",
    "wrong_tool",
    "should_have_abstained",
    "false_refusal",
    "error",
    "timeout",
]

CONTEXT = [{"id": "doc", "text": "Rotate API keys every 90 days."}]
LOOKUP = {"name": "lookup", "args": {"user": "u1"}}


def modes(
    expected: dict[str, Any] | None, output: dict[str, Any] | None = None, **kw: Any
) -> tuple[str, ...]:
    (found,) = failures.modes(batch(run(expected, output, **kw)))
    return found


def test_taxonomy__fixed_by_the_issue_in_order() -> None:
    assert list(failures.FAILURE_MODES) == TAXONOMY


@pytest.mark.parametrize("mode", TAXONOMY)
def test_docs__describe_every_failure_mode(mode: str) -> None:
    assert documented(mode)


@pytest.mark.parametrize(
    ("expected", "output", "mode"),
    [
        ({"sources": ["doc"]}, {"retrieved": ["a", "b", "c", "other"]}, "retrieval_miss"),
        (None, {"answer": "Rotate keys. Fly to Mars.", "retrieved": CONTEXT}, "unsupported_claim"),
        ({"must_include": ["90 days", "portal"]}, {"answer": "Every 90 days."}, "missing_required"),
        ({"must_not_include": ["password"]}, {"answer": "Your password."}, "forbidden_content"),
        ({"sources": ["doc"]}, {"retrieved": ["doc"], "citations": ["doc", "x"]}, "wrong_citation"),
        ({"sources": ["doc"]}, {"retrieved": ["x", "doc"], "citations": ["doc"]}, None),
        (
            {"sources": {"doc": 1, "x": 0}},
            {"retrieved": ["doc", "x"], "citations": ["x"]},
            "wrong_citation",
        ),
        ({"tool_calls": [LOOKUP]}, {"tool_calls": [LOOKUP, LOOKUP]}, "wrong_tool"),
        ({"answerable": False}, {"answer": "It is 42."}, "should_have_abstained"),
        ({"answerable": True}, {"answer": "I do not know."}, "false_refusal"),
        ({"answerable": True}, {"answer": "x", "abstained": True}, "false_refusal"),
    ],
)
def test_modes__each_failed_check_names_its_mode(
    expected: dict[str, Any] | None, output: dict[str, Any], mode: str | None
) -> None:
    assert modes(expected, output) == ((mode,) if mode else ())


def test_modes__several_in_taxonomy_order() -> None:
    expected = {"sources": ["doc"], "must_include": ["portal"], "answerable": True}
    output = {"answer": "I don't know.", "retrieved": ["other"], "citations": ["other"]}

    assert modes(expected, output) == (
        "retrieval_miss",
        "missing_required",
        "wrong_citation",
        "false_refusal",
    )


@pytest.mark.parametrize("status", ["error", "timeout"])
def test_modes__failed_run_is_named_by_its_status(status: Any) -> None:
    # A failed run produced nothing to judge: no check is measured on it, only its status.
    expected = {"must_include": ["portal"], "answerable": False}

    assert modes(expected, status=status) == (status,)


def test_modes__nothing_defined_nothing_failed() -> None:
    assert modes(None, {"answer": "anything"}) == ()


def test_checks__nan_where_the_case_does_not_define_them() -> None:
    results = batch(run(None, {"answer": "x"})).computed(failures.check_results)

    assert set(results) == set(failures.CHECKS)
    assert all(np.isnan(values[0]) for values in results.values())


def test_check_failed__labels_alone_do_not_count() -> None:
    rows = batch(
        run(None, {"answer": "Fly to Mars.", "retrieved": CONTEXT}, case_id="unsupported"),
        run({"sources": ["doc"]}, {"retrieved": ["doc"], "citations": ["x"]}, case_id="citation"),
        run({"must_include": ["portal"]}, {"answer": "No."}, case_id="missing"),
    )

    checks = rows.computed(failures.check_results)
    np.testing.assert_array_equal(checks["unsupported_claim"], [0, np.nan, np.nan])
    np.testing.assert_array_equal(checks["wrong_citation"], [np.nan, 0, np.nan])
    assert rows.computed(failures.success_failed).tolist() == [False, False, True]


def test_decides_success__every_check_but_the_two_labels() -> None:
    deciding = {name for name, check in failures.CHECKS.items() if check.decides_success}

    assert deciding == set(failures.CHECKS) - {"unsupported_claim", "wrong_citation"}


def test_computed__metrics_and_checks_share_one_read_only_array() -> None:
    rows = batch(run(None, {"answer": "Rotate keys.", "retrieved": CONTEXT}))

    first = rows.computed(generation.faithfulness)

    assert rows.computed(generation.faithfulness) is first
    assert not first.flags.writeable


def test_modes__each_record_of_a_batch_its_own() -> None:
    runs = [
        run({"must_include": ["portal"]}, {"answer": "x"}),
        run(None, {"answer": "anything"}),
        run({"must_include": ["portal"]}, status="timeout"),
        run({"must_include": ["portal"], "answerable": True}, {"answer": "I don't know."}),
        run({"must_include": ["portal"]}, {"answer": "x"}),
        run(None, status="error"),
    ]
    assert failures.modes(batch(*runs)) == [
        ("missing_required",),
        (),
        ("timeout",),
        ("missing_required", "false_refusal"),
        ("missing_required",),
        ("error",),
    ]
