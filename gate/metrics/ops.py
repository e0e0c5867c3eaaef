"""Ops metrics: latency, failures, cost and tokens, over every run (repeats included)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from gate.metrics.batch import Batch


def latency_ms(batch: Batch) -> np.ndarray:
    """Wall-clock latency of each run on a monotonic clock, failed runs included (a timeout
    counts the time it waited); NaN where a replay file records none."""
    # None becomes NaN in a float array.
    return np.array([r.latency_ms for r in batch.records], dtype=np.float64)


def percentile(q: float) -> Callable[[np.ndarray, Mapping[str, np.ndarray]], float | None]:
    """Nearest-rank percentile (numpy's ``inverted_cdf``): the value of an actual run.

    The value at rank ceil(q / 100 · n) of the n measured latencies sorted ascending. This is
    the SLO convention: "p95 = 812 ms" means 95% of runs took at most 812 ms, and no
    interpolated latency that no run had is reported (numpy's default ``linear`` would). With
    few runs the high percentiles are the maximum (n < 20 for p95): the report gives n.
    None when no run has a latency.
    """

    def aggregate(values: np.ndarray, columns: Mapping[str, np.ndarray]) -> float | None:
        measured = values[~np.isnan(values)]
        if not measured.size:
            return None
        return float(np.percentile(measured, q, method="inverted_cdf"))

    return aggregate


def error(batch: Batch) -> np.ndarray:
    """1 for a run that failed (error, timeout, malformed output), else 0: timeouts are
    errors too, ``timeout_rate`` ≤ ``error_rate``. Measured on every run."""
    return batch.failed.astype(float)


def timeout(batch: Batch) -> np.ndarray:
    """1 for a run that timed out (after its retries), else 0. Measured on every run."""
    return np.array([r.status == "timeout" for r in batch.records], dtype=float)


def cost_usd(batch: Batch) -> np.ndarray:
    """The run's ``usage.cost_usd``; NaN when the pipeline does not report cost."""
    costs = [r.output.usage.cost_usd if r.output.usage else None for r in batch.records]
    return np.array(costs, dtype=np.float64)


def cost_per_success(values: np.ndarray, columns: Mapping[str, np.ndarray]) -> float | None:
    """Total cost of all runs (failures included) / runs that succeeded; None with no success.

    Σ cost_usd over the runs that report one / Σ ``agent.task_success`` over all runs in the
    same rows (the overall rows or a slice). Failures cost money too, so a cheaper pipeline
    that fails more does not look cheaper; a failed run that reports no cost (an exception has
    no ``usage``) adds nothing. n is the runs that report a cost; None also when none does.
    """
    successes = np.nansum(columns["agent.task_success"])
    return float(np.nansum(values) / successes) if successes else None


def tokens(batch: Batch) -> np.ndarray:
    """``usage.input_tokens + usage.output_tokens`` (a missing one counts 0); NaN when the
    output reports neither. The aggregate is the mean over the runs that report tokens."""
    usages = [r.output.usage for r in batch.records]
    counts = [
        None
        if u is None or (u.input_tokens is None and u.output_tokens is None)
        else (u.input_tokens or 0) + (u.output_tokens or 0)
        for u in usages
    ]
    return np.array(counts, dtype=np.float64)
