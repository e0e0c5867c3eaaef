"""Statistics of a metric over resampled cases: what paired bootstrap intervals evaluate.

A metric's aggregate is a mean unless it says otherwise (percentiles, ratios); these are the same
aggregates evaluated on many resamples at once: ``values`` is (resamples × n) or, for a statistic
of several columns, (resamples × n × c); the result has one value per resample.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
Statistic = Callable[[FloatArray], FloatArray]


def mean_statistic(values: FloatArray) -> FloatArray:
    """The mean of each resample: `values` (resamples × n) → (resamples,)."""
    means: FloatArray = values.mean(axis=1)
    return means


@dataclass(frozen=True)
class Percentile:
    """The nearest-rank ``q``-th percentile of each resample (numpy's ``inverted_cdf``).

    Nearest rank always returns an observed value, as latency percentiles are usually reported:
    the p95 of 40 latencies is the 38th smallest.
    """

    q: float

    def __post_init__(self) -> None:
        if not 0 <= self.q <= 100:
            raise ValueError(f"percentile must be within [0, 100]; got {self.q}")

    def rank(self, n: int) -> int:
        """The 0-based rank of the percentile among n sorted values: ceil(q/100 · n) − 1."""
        return max(0, math.ceil(self.q / 100 * n) - 1)

    def __call__(self, values: FloatArray) -> FloatArray:
        rank = self.rank(values.shape[1])
        if values.shape[1] < _BRACKETED:
            # One partition finds the value at the rank, about twice as fast as np.percentile.
            chosen: FloatArray = np.partition(values, rank, axis=1)[:, rank]
            return chosen
        return _bracketed(values, rank)


_BRACKETED = 4096
"""From this many values a row, a percentile is looked for between two bounds first."""
_SAMPLED = 1024


def _bracketed(values: FloatArray, rank: int) -> FloatArray:
    """The value at ``rank`` of each sorted row, found among the values between two bounds that
    a sample of the row puts on either side of it (a few percent of the row) when they do, by
    one partition of the whole row when they do not: exact either way, about 6x faster."""
    n = values.shape[1]
    sample = values[:, :: max(1, n // _SAMPLED)]
    share = (rank + 0.5) / n
    margin = 4 * math.sqrt(share * (1 - share) / sample.shape[1]) + 2 / sample.shape[1]
    low, high = np.quantile(sample, [max(0.0, share - margin), min(1.0, share + margin)], axis=1)
    below = np.count_nonzero(values < low[:, None], axis=1)
    inside = (values >= low[:, None]) & (values <= high[:, None])
    out = np.empty(values.shape[0])
    for row, (first, within) in enumerate(zip(below, inside, strict=True)):
        kept = values[row][within]
        if first <= rank < first + kept.size:
            out[row] = np.partition(kept, rank - first)[rank - first]
        else:
            out[row] = np.partition(values[row], rank)[rank]
    return out


def percentile_statistic(q: float) -> Statistic:
    """The nearest-rank `q`-th percentile of each resample: `percentile_statistic(95)` is p95."""
    return Percentile(q)


def ratio_statistic(values: FloatArray) -> FloatArray:
    """sum(column 0) / sum(column 1) of each resample: (resamples × n × 2) → (resamples,).

    For ratio metrics such as cost per success, pass `np.column_stack([cost, success])` for
    both the baseline and the candidate. A resample whose denominator sums to 0 gives inf or
    nan, which `paired_bootstrap` rejects: the ratio has no interval when successes are rare.
    """
    if values.ndim != 3 or values.shape[2] != 2:
        raise ValueError(
            "ratio_statistic needs two columns per case (numerator, denominator): pass "
            "np.column_stack([numerator, denominator]) as baseline and candidate"
        )
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios: FloatArray = values[..., 0].sum(axis=1) / values[..., 1].sum(axis=1)
    return ratios


def depends_on_runs(statistic: Statistic | None) -> bool:
    """A percentile of per-case means shrinks as runs per case are added (their spread does):
    a baseline of 3 runs per case and a run of 1 differ in p95 latency with nothing changed.
    Means, and ratios of sums of means, do not."""
    return statistic is not None and statistic is not ratio_statistic
