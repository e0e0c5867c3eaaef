"""Ops metrics: nearest-rank latency percentiles, error and timeout rates, cost, tokens."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from builders import aggregate, batch, documented, run, scores

from gate.metrics import METRICS, scoring


def timed(*latencies: float | None) -> list[Any]:
    return [run(latency_ms=ms, case_id=f"c{i}") for i, ms in enumerate(latencies)]


@pytest.mark.parametrize(
    ("name", "value"),
    [("ops.latency_p50_ms", 5.0), ("ops.latency_p95_ms", 10.0), ("ops.latency_p99_ms", 10.0)],
)
def test_latency_percentiles__nearest_rank_of_ten_runs(name: str, value: float) -> None:
    # Nearest rank ceil(q/100 · n): p50 -> rank 5, p95 -> rank ceil(9.5) = 10, p99 -> rank 10.
    runs = timed(7, 3, 10, 1, 9, 2, 8, 4, 6, 5)

    assert aggregate(name, *runs) == (value, 10)


def test_latency_p95__twenty_runs_is_the_nineteenth_value() -> None:
    # ceil(0.95 · 20) = 19: the first percentile that is not the maximum.
    runs = timed(*range(20, 0, -1))

    assert aggregate("ops.latency_p95_ms", *runs) == (19.0, 20)


def test_latency_p50__never_interpolates() -> None:
    # Linear interpolation would say 15; nearest rank reports a latency a run had.
    assert aggregate("ops.latency_p50_ms", *timed(10, 20)) == (10.0, 2)


def test_latency__failed_runs_included_missing_latencies_not_counted() -> None:
    runs = [*timed(100, None), run(status="timeout", latency_ms=30_000, case_id="slow")]

    np.testing.assert_array_equal(scores("ops.latency_p50_ms", *runs), [100, np.nan, 30_000])
    assert aggregate("ops.latency_p99_ms", *runs) == (30_000, 2)


def test_latency__no_latency_at_all_has_no_value() -> None:
    assert aggregate("ops.latency_p95_ms", *timed(None, None)) == (None, 0)


def test_error_and_timeout_rates__timeouts_are_errors_too() -> None:
    runs = [
        run(case_id="ok"),
        run(status="error", case_id="error"),
        run(status="timeout", case_id="timeout"),
        run(case_id="ok2"),
    ]

    assert aggregate("ops.error_rate", *runs) == (0.5, 4)
    assert aggregate("ops.timeout_rate", *runs) == (0.25, 4)


def usage(cost: float | None = None, **tokens: int) -> dict[str, Any]:
    return {"answer": "x", "usage": {"cost_usd": cost, **tokens}}


def test_cost_per_success__total_cost_including_failures_over_successes() -> None:
    # 0.1 + 0.2 + 0.3 = 0.6 spent; the second run fails its check: 2 successes -> 0.3.
    runs = [
        run(None, usage(0.1), case_id="a"),
        run({"must_include": ["y"]}, usage(0.2), case_id="b"),
        run(None, usage(0.3), case_id="c"),
    ]

    value, n = aggregate("ops.cost_per_success_usd", *runs)

    assert value == pytest.approx(0.3)
    assert n == 3


def test_cost_per_success__failed_run_without_usage_counts_as_failure_only() -> None:
    runs = [run(None, usage(0.4), case_id="a"), run(status="error", case_id="b")]

    assert aggregate("ops.cost_per_success_usd", *runs) == (pytest.approx(0.4), 1)


def test_cost_per_success__none_without_a_success() -> None:
    runs = [run({"must_include": ["y"]}, usage(0.2)), run(status="error", case_id="b")]

    assert aggregate("ops.cost_per_success_usd", *runs) == (None, 1)


def test_cost_per_success__none_when_no_run_reports_cost() -> None:
    assert aggregate("ops.cost_per_success_usd", run(None, {"answer": "x"})) == (None, 0)


def test_cost_per_success__per_slice_successes_come_from_the_slice() -> None:
    runs = [
        run(None, usage(0.1), case_id="a", tags=("s",)),
        run({"must_include": ["y"]}, usage(0.2), case_id="b", tags=("s",)),
        run(None, usage(5.0), case_id="c"),
    ]
    rows = scoring.score(batch(*runs), ["ops.cost_per_success_usd"])
    in_slice = np.array([True, True, False])

    value, n = scoring.aggregate("ops.cost_per_success_usd", rows, in_slice)

    assert value == pytest.approx(0.3)
    assert n == 2


def test_tokens_per_case__input_plus_output_missing_side_is_zero() -> None:
    runs = [
        run(None, usage(input_tokens=800, output_tokens=100), case_id="a"),
        run(None, usage(output_tokens=50), case_id="b"),
        run(None, usage(0.1), case_id="c"),
    ]

    np.testing.assert_array_equal(scores("ops.tokens_per_case", *runs), [900, 50, np.nan])
    assert aggregate("ops.tokens_per_case", *runs) == (475.0, 2)


def test_tokens_per_case__failed_run_reports_none() -> None:
    (value,) = scores("ops.tokens_per_case", run(status="error"))

    assert math.isnan(value)


OPS = sorted(name for name in METRICS if name.startswith("ops."))


@pytest.mark.parametrize("name", OPS)
def test_ops_metric__empty_batch_has_no_value(name: str) -> None:
    assert aggregate(name) == (None, 0)


@pytest.mark.parametrize("name", OPS)
def test_docs__define_every_ops_metric(name: str) -> None:
    assert documented(name)
