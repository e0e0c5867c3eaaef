"""Paired statistics for release verdicts: is the candidate really worse than the baseline?

Every function takes per-case scores paired by case id (baseline and candidate in the same order,
only the cases measured in both) and returns a frozen dataclass or a number. No I/O; numpy only.

- `paired_bootstrap`: a percentile interval on the change of a statistic, candidate − baseline.
- `mcnemar_exact`: the exact McNemar test on the discordant pairs of a pass/fail metric.
- `minimum_detectable_effect`: the smallest drop a gate of this size catches with a given power.
- `decide`: the regression rule, from an interval and a tolerance.

How the defaults behave (`python -m bench.bench_stats`: 200 pass/fail cases at pass rate 0.8,
1,000 simulated pairs of runs per figure). With tolerance 0, `decide` on the default 95%
interval fails about 2% of unchanged but noisy pipelines. It catches a true 5-point drop in 99%
of runs when the drop is the only change (10 cases newly fail), in 84% when 13 pairs differ in
all, 74% at 16 and 54% at 22: noise costs power, and a noisy pipeline needs more cases or
repeats, not a lower bar. A 90% interval would buy about 8 points of power, but fails 4-6% of
unchanged pipelines of 20 to 100 continuous scores, where the 95% interval fails 2-3%. Below 20
cases the percentile interval covers less than it promises: at 10, even 95% fails 7%.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import numpy.typing as npt

from gate.metrics.statistic import FloatArray, Statistic, mean_statistic

# Values gathered per block of resamples (8 MiB of float64 per array): memory stays flat whatever
# resamples × n is, and blocks of this size gather faster than one huge matrix.
_BLOCK_ELEMENTS = 2**20

# A mean is resampled from the counts of its distinct per-case changes when there are at most one
# for this many cases: a multinomial draw costs about as much per value as gathering 10 cases.
_DISTINCT_PER_CASE = 16

# A binomial tail is summed down to terms this many bits below the running total: far past the
# 53 bits a float keeps, so the result is the exact tail, correctly rounded or nearly so.
_TAIL_BITS = 64


@dataclass(frozen=True)
class Interval:
    """A two-sided bootstrap interval on the change candidate − baseline of a statistic.

    `estimate` is the change on the full sample; `low` and `high` bound it at `confidence`;
    `n` is the number of paired cases and `resamples` the number of bootstrap resamples.
    """

    estimate: float
    low: float
    high: float
    confidence: float
    n: int
    resamples: int


@dataclass(frozen=True)
class McNemar:
    """The exact McNemar test of a pass/fail metric on paired cases.

    `b` cases passed in the baseline and fail in the candidate, `c` failed and now pass, out of
    `n` pairs. `p_value` is two-sided (any change); `p_worse` is one-sided (the candidate fails
    more often).
    """

    b: int
    c: int
    n: int
    p_value: float
    p_worse: float


@dataclass(frozen=True)
class Decision:
    """The verdict on one metric: `regressed` fails the gate; `reason` says why, with numbers."""

    regressed: bool
    significant: bool
    reason: str


def paired_bootstrap(
    baseline: npt.ArrayLike,
    candidate: npt.ArrayLike,
    *,
    statistic: Statistic | None = None,
    resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """A paired percentile-bootstrap interval on statistic(candidate) − statistic(baseline).

    Each resample draws n case indices with replacement and evaluates the statistic of both
    arrays at the same indices, so the interval keeps the pairing (a hard case stays hard in
    both). The interval runs from the (1 − confidence)/2 to the (1 + confidence)/2 quantile of
    the resampled changes; `estimate` is the change on the full sample.

    Scores are 1-D `(n,)`, one per case, or 2-D `(n, c)` for a statistic of several columns,
    such as a ratio of sums (`ratio_statistic`). `statistic` maps the values gathered at the
    resampled indices, `(resamples, n)` or `(resamples, n, c)`, to one value per resample;
    `mean_statistic`, `percentile_statistic(q)` and `ratio_statistic` are ready-made. The
    default, None, is the mean: the change in the mean is the mean of the per-case changes,
    which needs one gather instead of two.

    Why the percentile interval and not BCa: it is simple, needs no jackknife (n more statistic
    evaluations), and does not rely on an acceleration estimate that is unstable for the tied
    0/1 scores of pass/fail metrics. It is reliable from about n = 20 cases; below that it
    covers a little less often than promised (about 93% for a nominal 95% at n = 20, 86% at 10).

    Deterministic for a given seed. Raises ValueError when the arrays differ in shape, are
    empty, hold NaN or infinity (pass only the cases measured in both), or when the statistic is
    not finite on the full sample or on some resample.
    """
    [interval] = paired_bootstraps(
        [(baseline, candidate, statistic)], resamples=resamples, confidence=confidence, seed=seed
    )
    if interval is None:
        raise ValueError(
            "the statistic is not finite on the full sample or on some resample (a ratio whose "
            "denominator sums to 0?): the change has no interval"
        )
    return interval


Pair = tuple[npt.ArrayLike, npt.ArrayLike, Statistic | None]
"""Baseline scores, candidate scores (paired by case) and the statistic: one bootstrap."""


def paired_bootstraps(
    pairs: Sequence[Pair], *, resamples: int = 2000, confidence: float = 0.95, seed: int = 0
) -> list[Interval | None]:
    """`paired_bootstrap` of every pair at once, all on the same n cases (a metric and the
    others measured on the same cases): one set of resampled indices serves them all.

    A mean whose per-case changes take few distinct values (pass/fail scores, or runs that
    mostly agree) is resampled from the counts of those values instead, a multinomial draw of
    n: the same bootstrap distribution as drawing n indices, at a cost that grows with the
    distinct values, not with n. Identical runs change by 0 on every resample. A pair whose
    statistic is not finite on the full sample or on some resample has no interval (None).
    Raises ValueError as `paired_bootstrap` does for input that is not paired scores.
    """
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1; got {resamples}")
    _check_probability("confidence", confidence)
    scores = []
    for baseline, candidate, statistic in pairs:
        base, cand = _paired_scores(baseline, candidate)
        if base.ndim == 2 and statistic is None:
            raise ValueError(
                "2-D scores need a statistic that combines the columns, e.g. ratio_statistic"
            )
        scores.append((base, cand, statistic))
    sizes = {base.shape[0] for base, _, _ in scores}
    if len(sizes) > 1:
        raise ValueError(f"the pairs must all be on the same cases; got sizes {sorted(sizes)}")
    changes: list[FloatArray | None] = [None] * len(scores)
    gathered = []
    for i, (base, cand, statistic) in enumerate(scores):
        if np.array_equal(base, cand):
            changes[i] = np.zeros(resamples)
        elif statistic in (None, mean_statistic) and base.ndim == 1:
            changes[i] = _multinomial_means(cand - base, resamples, seed)
        if changes[i] is None:
            gathered.append(i)
    if gathered:
        n = next(iter(sizes))
        rng = np.random.default_rng(seed)
        block = max(1, _BLOCK_ELEMENTS // n)
        parts: list[list[FloatArray]] = [[] for _ in gathered]
        for start in range(0, resamples, block):
            indices = rng.integers(0, n, size=(min(block, resamples - start), n))
            for part, i in zip(parts, gathered, strict=True):
                base, cand, statistic = scores[i]
                part.append(_changes(statistic, base, cand, indices))
        for part, i in zip(parts, gathered, strict=True):
            changes[i] = np.concatenate(part)
    tail = (1 - confidence) / 2
    out: list[Interval | None] = []
    for (base, cand, statistic), resampled in zip(scores, changes, strict=True):
        assert resampled is not None
        n = base.shape[0]
        estimate = float(_changes(statistic, base, cand, np.arange(n)[np.newaxis])[0])
        if not (math.isfinite(estimate) and np.isfinite(resampled).all()):
            out.append(None)
            continue
        low, high = np.quantile(resampled, [tail, 1 - tail])
        out.append(Interval(estimate, float(low), float(high), confidence, n, resamples))
    return out


def _multinomial_means(changes: FloatArray, resamples: int, seed: int) -> FloatArray | None:
    """The mean of n per-case changes over ``resamples`` bootstrap resamples, drawn as counts of
    their distinct values; None when they are too many for that to be cheaper than indices."""
    values, counts = np.unique(changes, return_counts=True)
    n = changes.size
    if values.size * _DISTINCT_PER_CASE > n:
        return None
    draws = np.random.default_rng(seed).multinomial(n, counts / n, size=resamples)
    means: FloatArray = draws @ values / n
    return means


def mcnemar_exact(baseline_pass: npt.ArrayLike, candidate_pass: npt.ArrayLike) -> McNemar:
    """The exact McNemar test: did the pass/fail outcome change between the paired runs?

    Only discordant pairs carry information: b = passed before and fail now, c = failed before
    and pass now. With no change, b ~ Binomial(b + c, 1/2), so
    two-sided p = min(1, 2 · P(X ≤ min(b, c))) and one-sided p_worse = P(X ≥ b),
    X ~ Binomial(b + c, 1/2); both are 1 when b + c = 0.

    The tails are summed in exact integer arithmetic (no normal approximation, no scipy), fast
    up to hundreds of thousands of pairs. Scores are booleans or 0/1 numbers, one per case;
    raises ValueError for other values, shapes that differ, or no cases.
    """
    base = _pass_fail(baseline_pass, "baseline_pass")
    cand = _pass_fail(candidate_pass, "candidate_pass")
    _check_pairs(base, cand, max_ndim=1)
    b = int(np.count_nonzero(base & ~cand))
    c = int(np.count_nonzero(~base & cand))
    p_value = min(1.0, 2 * _binomial_half_cdf(min(b, c), b + c))
    # By symmetry of Binomial(m, 1/2): P(X ≥ b) = P(X ≤ m − b) = P(X ≤ c).
    p_worse = _binomial_half_cdf(c, b + c)
    return McNemar(b, c, base.size, p_value, p_worse)


def minimum_detectable_effect(
    baseline: npt.ArrayLike,
    *,
    n: int | None = None,
    confidence: float = 0.95,
    power: float = 0.8,
    paired_sd: float | None = None,
) -> float:
    """The smallest true drop in the mean that the paired test catches with the given power.

    MDE = (z_{1−α} + z_power) · sd_diff / √n, with α = (1 − confidence)/2: the one-sided level
    of `decide` on an interval of this `confidence` (a 95% interval fails a drop only if it lies
    wholly below zero, a 2.5% one-sided test). `n` defaults to the number of baseline scores.

    sd_diff is the standard deviation of the per-case changes. Give `paired_sd` when it is known
    (from two earlier runs, say); otherwise it is estimated from the baseline alone assuming the
    two runs disagree independently. That overstates it when, as usual, mostly the same cases
    pass and fail in both runs: for 200 cases at pass rate 0.8 it gives 0.13, while `decide`
    catches a 5-point drop in 84% of runs when 13 pairs differ (`bench/bench_stats.py`). Once a
    candidate run exists, its `std(candidate − baseline, ddof=1)` is the paired_sd to pass.
    Without paired_sd:
    - continuous scores: sd_diff = sd(baseline) · √2 (needs at least 2 scores);
    - 0/1 scores with pass rate p: the variance of the change between independent flips at
      rates q = max(p, 1 − p) and q − δ, q(1 − q) + (q − δ)(1 − q + δ), which is about
      2p(1 − p) for small δ. Solving δ = z · √(var(δ)/n) for δ, with A = n/z² + 1, gives
      δ = ((2q − 1) + √((2q − 1)² + 8q(1 − q)·A)) / (2A). At p = 1 this is z²/(n + z²) rather
      than the 0 of 2p(1 − p): an all-pass baseline can still only see drops of a few cases.
    """
    scores = np.asarray(baseline, dtype=np.float64)
    if scores.ndim != 1 or scores.size == 0 or not np.isfinite(scores).all():
        raise ValueError("baseline must be a non-empty 1-D array of finite scores")
    cases = scores.size if n is None else n
    if cases < 1:
        raise ValueError(f"n must be at least 1; got {cases}")
    _check_probability("confidence", confidence)
    _check_probability("power", power)
    normal = NormalDist()
    z = normal.inv_cdf(1 - (1 - confidence) / 2) + normal.inv_cdf(power)
    if paired_sd is not None:
        if not paired_sd >= 0:
            raise ValueError(f"paired_sd must be a non-negative number; got {paired_sd}")
        return z * paired_sd / math.sqrt(cases)
    if np.isin(scores, (0.0, 1.0)).all():
        q = max(float(scores.mean()), 1 - float(scores.mean()))
        a = cases / z**2 + 1
        return ((2 * q - 1) + math.sqrt((2 * q - 1) ** 2 + 8 * q * (1 - q) * a)) / (2 * a)
    if scores.size < 2:
        raise ValueError("estimating the sd of continuous scores needs 2 or more; pass paired_sd")
    return z * float(scores.std(ddof=1)) * math.sqrt(2) / math.sqrt(cases)


def decide(
    interval: Interval,
    *,
    tolerance: float,
    higher_is_better: bool,
    strict: bool = False,
    one_sided: bool = False,
) -> Decision:
    """The regression rule for one metric, from the interval on candidate − baseline.

    Let the drop be the change in the bad direction (−estimate when higher is better,
    +estimate otherwise) and `tolerance` the drop allowed, absolute and in the metric's units
    (convert a relative bound first: tolerance = max_drop_pct / 100 · baseline value).
    - significant: the whole interval lies in the bad direction, beyond zero (for higher is
      better, high < 0);
    - default: regressed when significant and drop > tolerance;
    - strict: regressed when drop > tolerance, significant or not.
    Only a drop fails a gate, so the test a gate wants is one-sided: with ``one_sided`` the
    reason states the level as (1 + confidence) / 2, the level of the bound that decides (give
    the gate's one-sided level c an interval at 2c − 1).

    The trade-off. The default fails only on drops the data can tell from noise: on an unchanged
    pipeline a 95% interval lies wholly below zero about 2.5% of the time, so false alarms stay
    under 5% from about 20 cases on, where the percentile interval under-covers a little. Its
    price is power: it misses a real drop that is small against the noise of n cases (see
    `minimum_detectable_effect`). Strict mode misses nothing above the tolerance but fails on
    noise: with tolerance 0, about 40% of the runs of a non-deterministic, unchanged pipeline.
    A drop exactly at the tolerance passes in both modes.
    """
    if not tolerance >= 0:
        raise ValueError(f"tolerance must be a non-negative number; got {tolerance}")
    sign = -1.0 if higher_is_better else 1.0
    drop = sign * interval.estimate
    drop_low, drop_high = sorted((sign * interval.low, sign * interval.high))
    significant = drop_low > 0
    beyond = drop > tolerance
    regressed = beyond and (significant or strict)

    word = "drop" if higher_is_better else "increase"
    span = f"{word} {_number(drop)} [{_number(drop_low)}, {_number(drop_high)}]"
    # One bound of a two-sided interval at c is a one-sided test at (1 + c) / 2: a 90% interval
    # lying wholly below zero is a drop significant at 95%, one-sided.
    level = (
        f"at {(1 + interval.confidence) / 2 * 100:g}% one-sided"
        if one_sided
        else f"at {interval.confidence * 100:g}%"
    )
    if not beyond:
        reason = f"{span} within tolerance {_number(tolerance)}"
    elif significant:
        reason = f"{span} > tolerance {_number(tolerance)}, significant {level}"
    elif strict:
        reason = f"{span} > tolerance {_number(tolerance)}, not significant {level} (strict mode)"
    else:
        reason = f"{span} > tolerance {_number(tolerance)}, but not significant {level}"
    return Decision(regressed, significant, reason)


def _changes(
    statistic: Statistic | None, base: FloatArray, cand: FloatArray, indices: npt.NDArray[np.intp]
) -> FloatArray:
    """statistic(candidate) − statistic(baseline) on each row of case indices."""
    if statistic is None:
        return mean_statistic((cand - base)[indices])
    with np.errstate(invalid="ignore"):  # inf − inf: a ratio with no success, rejected later
        return _evaluate(statistic, cand[indices]) - _evaluate(statistic, base[indices])


def _evaluate(statistic: Statistic, values: FloatArray) -> FloatArray:
    result = np.asarray(statistic(values), dtype=np.float64)
    if result.shape != (values.shape[0],):
        raise ValueError(
            f"statistic must return one value per resample, shape ({values.shape[0]},); "
            f"got shape {result.shape}"
        )
    return result


def _paired_scores(
    baseline: npt.ArrayLike, candidate: npt.ArrayLike
) -> tuple[FloatArray, FloatArray]:
    base = np.asarray(baseline, dtype=np.float64)
    cand = np.asarray(candidate, dtype=np.float64)
    _check_pairs(base, cand, max_ndim=2)
    if not (np.isfinite(base).all() and np.isfinite(cand).all()):
        raise ValueError("scores hold NaN or infinity: pass only the cases measured in both runs")
    return base, cand


def _pass_fail(values: npt.ArrayLike, name: str) -> npt.NDArray[np.bool_]:
    array = np.asarray(values)
    if array.dtype != np.bool_ and not np.isin(array, (0, 1)).all():
        raise ValueError(f"{name} must be pass/fail, booleans or 0/1; got other values")
    return array.astype(np.bool_)


def _check_pairs(base: np.ndarray, cand: np.ndarray, *, max_ndim: int) -> None:
    if base.shape != cand.shape:
        raise ValueError(
            f"baseline and candidate must pair case by case; their shapes {base.shape} and "
            f"{cand.shape} differ"
        )
    if not 1 <= base.ndim <= max_ndim:
        raise ValueError(
            f"scores must be {max_ndim}-D at most, one row per case; got {base.ndim}-D"
        )
    if base.shape[0] == 0:
        raise ValueError("no paired cases: nothing to compare")


def _check_probability(name: str, value: float) -> None:
    if not 0 < value < 1:
        raise ValueError(f"{name} must be strictly between 0 and 1; got {value}")


def _number(value: float) -> str:
    """Four significant digits, as `gate.decide.compare.fmt` prints values in the same report."""
    # Adding 0.0 turns -0.0 into 0.0, so an unchanged metric does not print as "-0".
    return f"{value + 0.0:.4g}"


def _binomial_half_cdf(k: int, m: int) -> float:
    """P(X ≤ k) for X ~ Binomial(m, 1/2), from exact integer binomial coefficients."""
    if k >= m:
        return 1.0
    if 2 * k > m:
        # Sum the short side: P(X ≤ k) = 1 − P(X ≤ m − k − 1).
        return 1.0 - _binomial_half_cdf(m - k - 1, m)
    term = math.comb(m, k)
    total = term
    # Below the mode the terms shrink going down, so the i terms left sum to less than term · i.
    while k > 0 and term * k >= total >> _TAIL_BITS:
        term = term * k // (m - k + 1)
        k -= 1
        total += term
    return total / (1 << m)
