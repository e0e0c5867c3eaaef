"""One false-alarm budget per pull request: every regression check decided jointly.

A thresholds file with 8 gated metrics and 5 slices makes 18 regression checks; tested one by
one at 5% each, an unchanged pipeline fails 4 pull requests in 10 (docs/verdict.md). Here they
are tested together by a paired randomisation (sign-flip) max-T test, so that, when nothing
changed, the whole family fails at most ``1 − confidence`` of pull requests:

- Under no change, the baseline and the candidate run of a case are exchangeable: swapping them
  is as likely as not. One random swap per case (a row of the swap matrix) is drawn and shared by
  every check, so the correlation between metrics and between a slice and the whole is kept.
- Each check's statistic is studentised: the observed worsening over the root mean square of its
  randomisation distribution (for a mean, Σx / √Σx², x the per-case worsening). The p-value of
  a check is the share of swaps whose *largest* studentised statistic over all checks reaches the
  check's own: the max-T step of Westfall & Young, which controls the family-wise error.
- The tolerance is part of the null hypothesis (worsening ≤ tolerance), not an extra condition:
  the baseline is moved by the tolerance before the swaps (shifted by an absolute one, scaled by
  a relative one), so a drop equal to the tolerance fails at most 1 − confidence of the time.
- Means are a sign flip of the per-case differences, computed for all mean checks at once as a
  blocked matrix product; percentiles and ratios (latency p95, cost per success) are evaluated on
  the swapped arrays, so they are judged with their randomisation distribution, not the estimate.

With tolerance 0 and pass/fail scores, one check alone is the exact one-sided McNemar test (up to
Monte Carlo error); ties and identical runs are never significant. Pure numpy, seeded.

The noise floor measured by the nightlies (``Nightly``) adds what a paired test cannot see: the
randomisation covers the noise of each case, not a shift of the whole run (an endpoint slower
or worse on some days, whatever the change). When consecutive nights on unchanged code moved a
check's statistic more than its case noise explains, the excess (the run-level drift) is added
to the check's randomisation distribution (``drift_variance``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from gate.metrics.statistic import FloatArray, Statistic, ratio_statistic

# Swap indicators drawn per block of resamples: about 4 million cases × resamples per block, so
# memory stays flat (≈ 32 MiB of float64) whatever the golden set's size.
_BLOCK_ELEMENTS = 2**22

PRIMARY_SHARE = 0.8
"""The share of the false-alarm budget a declared primary metric's rules get on their own (the
rest is every other check's, jointly). Simulated on the audit's 18 checks at N = 200 and 3 runs
per case, a 5-point drop in the primary metric failed 79% of pull requests instead of 57% with
all 18 tested jointly; a drop in another metric pays the difference (docs/verdict.md)."""


@dataclass(frozen=True)
class Nightly:
    """What the nightlies measured of one check's statistic on unchanged code (an A/A test).

    ``mean_square``: the mean of the squared change between consecutive nights, over ``pairs``
    pairs, each night ``runs`` runs per case. ``group``: checks of one group (a metric, overall
    and in its slices) share their drift draws: a run-level shift moves them together."""

    mean_square: float
    pairs: int
    runs: int
    group: str = ""


MIN_PAIRS = 3
"""Fewer pairs of nights measure no drift."""


def drift_variance(nightly: Nightly, case_variance: float, runs: tuple[int, int]) -> float:
    """The run-level drift's share of the variance of a change between the baseline and the
    candidate (0 when the nights moved no more than case noise explains).

    ``case_variance`` is the case noise of this check's statistic at the pull request (the mean
    square of its randomisation distribution), for (baseline, candidate) ``runs`` per case. The
    same case noise, for two nights of ``nightly.runs`` runs each, is ``case_variance ·
    (2 / nightly.runs) / (1 / runs[0] + 1 / runs[1])``; the nights' mean square beyond that is
    the drift's (an unbiased estimate; its uncertainty is in the draws, see ``max_t``)."""
    if nightly.pairs < MIN_PAIRS or case_variance <= 0 or not math.isfinite(nightly.mean_square):
        return 0.0
    expected = case_variance * (2 / nightly.runs) / (1 / runs[0] + 1 / runs[1])
    return max(0.0, nightly.mean_square - expected)


@dataclass(frozen=True)
class Hypothesis:
    """One regression check to decide: "the candidate is worse than the baseline by more than
    the tolerance" on the cases at ``rows`` of the shared case list.

    ``baseline``/``candidate`` are per-case scores, `(n,)` or `(n, c)` for a statistic of several
    columns (a ratio: numerator, denominator); ``statistic`` None is the mean. ``tolerance`` is in
    the metric's units, or a fraction of the baseline's value when ``relative``.
    """

    rows: npt.NDArray[np.intp]
    baseline: FloatArray
    candidate: FloatArray
    statistic: Statistic | None
    higher_is_better: bool
    tolerance: float
    relative: bool = False
    nightly: Nightly | None = None
    """The noise floor the nightlies measured for this check, if any."""
    runs: tuple[int, int] = (1, 1)
    """Runs per case the baseline's and the candidate's scores are the means of."""


@dataclass(frozen=True)
class Tested:
    """The joint decision on one hypothesis.

    ``worsening`` is the observed worsening beyond the tolerance (> 0: the estimate is worse
    than the tolerance allows), ``t`` its studentised value, ``p_value`` the family-wise
    adjusted p-value, ``critical`` the studentised value the family needs at this confidence.
    """

    worsening: float
    t: float
    p_value: float
    critical: float
    n: int
    confidence: float
    """The family's confidence this was decided at."""
    drift: float = 0.0
    """The standard deviation of run-level drift added from the nightlies (0: none)."""

    @property
    def significant(self) -> bool:
        return self.p_value <= 1 - self.confidence

    def cases_to_decide(self) -> int | None:
        """About how many cases (or runs per case, as a multiple) the estimate would need to be
        significant if it held: n · (critical / t)², for a statistic whose t grows as √n; more
        than n at least (with few discordant pairs t can reach the critical value and still not
        be significant: the distribution is discrete). None with run-level drift added: more
        cases do not average a shift of the whole run away."""
        if self.t <= 0 or not math.isfinite(self.critical) or self.drift > 0:
            return None
        return max(self.n + 1, math.ceil(self.n * (self.critical / self.t) ** 2))


def max_t(
    hypotheses: list[Hypothesis],
    cases: int,
    *,
    resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> list[Tested]:
    """Decide every hypothesis jointly on ``cases`` paired cases; results in the same order.

    Deterministic for a seed: the swap matrix depends only on (seed, cases, resamples), so the
    same data gives the same verdict whatever else the thresholds ask.
    """
    if not hypotheses:
        return []
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1; got {resamples}")
    prepared = [_prepare(h) for h in hypotheses]
    means = [i for i, h in enumerate(hypotheses) if h.statistic is None]
    others = [i for i, h in enumerate(hypotheses) if h.statistic is not None]
    # Mean checks: column k holds check k's per-case worsening (0 on cases outside its slice).
    worse = np.zeros((cases, len(means)))
    for column, i in enumerate(means):
        worse[hypotheses[i].rows, column] = prepared[i][2]

    observed = np.zeros(len(hypotheses))
    scale = np.zeros(len(hypotheses))
    for column, i in enumerate(means):
        x = worse[:, column]
        observed[i] = x.sum() / max(1, hypotheses[i].rows.size)
        scale[i] = math.sqrt(float(x @ x)) / max(1, hypotheses[i].rows.size)
    for i in others:
        h, (base, cand, _) = hypotheses[i], prepared[i]
        observed[i] = _oriented(
            h, _evaluate(h.statistic, cand[None]), _evaluate(h.statistic, base[None])
        )[0]

    rng = np.random.default_rng(seed)
    block = max(1, _BLOCK_ELEMENTS // max(1, cases))
    randomised = np.empty((resamples, len(hypotheses)))
    for start in range(0, resamples, block):
        rows = min(block, resamples - start)
        swap = _swaps(rng, rows, cases)
        if means:
            signs = 1.0 - 2.0 * swap
            sizes = np.array([max(1, hypotheses[i].rows.size) for i in means])
            randomised[start : start + rows, means] = (signs @ worse) / sizes
        for i in others:
            h, (base, cand, _) = hypotheses[i], prepared[i]
            if h.statistic is ratio_statistic:
                # A ratio of sums is linear in the swaps: each side's sums are a matrix product.
                cand_sums = cand.sum(axis=0) + swap[:, h.rows] @ (base - cand)
                base_sums = (base + cand).sum(axis=0) - cand_sums
                with np.errstate(divide="ignore", invalid="ignore"):
                    randomised[start : start + rows, i] = _oriented(
                        h, cand_sums[:, 0] / cand_sums[:, 1], base_sums[:, 0] / base_sums[:, 1]
                    )
                continue
            mine = swap[:, h.rows].astype(bool)
            if base.ndim == 2:
                mine = mine[..., None]
            cand_side = np.where(mine, base[None], cand[None])
            base_side = np.where(mine, cand[None], base[None])
            randomised[start : start + rows, i] = _oriented(
                h, _evaluate(h.statistic, cand_side), _evaluate(h.statistic, base_side)
            )
    for i in others:
        finite = randomised[:, i][np.isfinite(randomised[:, i])]
        scale[i] = math.sqrt(float(np.mean(finite**2))) if finite.size else 0.0
    # Run-level drift: one draw per resample for a metric's checks (overall and in slices),
    # Student's t on the pairs of nights rather than normal, as the drift's size is estimated
    # from those few pairs (the predictive distribution of a new change).
    drift = np.zeros(len(hypotheses))
    draws: dict[tuple[str, int], FloatArray] = {}
    drift_rng = np.random.default_rng([seed, 1])  # the swaps stay those of a run without
    for i, h in enumerate(hypotheses):
        if h.nightly is None:
            continue
        added = drift_variance(h.nightly, float(scale[i]) ** 2, h.runs)
        if added <= 0:
            continue
        drift[i] = math.sqrt(added)
        key = (h.nightly.group, h.nightly.pairs)
        if key not in draws:
            draws[key] = drift_rng.standard_t(h.nightly.pairs, resamples)
        randomised[:, i] += drift[i] * draws[key]
        scale[i] = math.sqrt(float(scale[i]) ** 2 + added)

    with np.errstate(divide="ignore", invalid="ignore"):
        # No spread (identical runs) or no value: no evidence, never significant.
        t = np.where((scale > 0) & np.isfinite(observed), observed / scale, 0.0)
        t_random = np.where(scale > 0, randomised / scale, 0.0)
    t_random = np.where(np.isfinite(t_random), t_random, -np.inf)
    largest = t_random.max(axis=1)
    critical = float(np.quantile(largest, confidence))
    # Tolerate rounding: a statistic equal to the observed one up to float noise counts as
    # reaching it (ties are what make the test exact, and never significant, on identical runs).
    reach = largest[None, :] >= t[:, None] - 1e-9 * np.maximum(1.0, np.abs(t[:, None]))
    p_values = (1 + reach.sum(axis=1)) / (resamples + 1)
    return [
        Tested(
            worsening=float(observed[i]),
            t=float(t[i]),
            p_value=float(p_values[i]),
            critical=critical,
            n=int(h.rows.size),
            confidence=confidence,
            drift=float(drift[i]),
        )
        for i, h in enumerate(hypotheses)
    ]


def _prepare(h: Hypothesis) -> tuple[FloatArray, FloatArray, FloatArray]:
    """The baseline moved by the tolerance, the candidate, and (for means) x = the per-case
    worsening beyond the tolerance."""
    base = np.array(h.baseline, dtype=np.float64)
    cand = np.asarray(h.candidate, dtype=np.float64)
    if base.shape != cand.shape or base.shape[0] != h.rows.size:
        raise ValueError("baseline, candidate and rows must pair case by case")
    if not (np.isfinite(base).all() and np.isfinite(cand).all()):
        raise ValueError("scores hold NaN or infinity: pass only the cases measured in both runs")
    if not h.tolerance >= 0:
        raise ValueError(f"tolerance must be a non-negative number; got {h.tolerance}")
    sign = 1.0 if h.higher_is_better else -1.0  # the direction the baseline moves to allow
    # Only the first column moves: for a ratio, the numerator (cost) of sum(cost)/sum(success).
    first = base[..., 0] if base.ndim == 2 else base
    if h.relative:
        first *= 1 - sign * h.tolerance
    else:
        weight = base[..., 1] if base.ndim == 2 else 1.0
        first -= sign * h.tolerance * weight
    x = sign * (first - (cand[..., 0] if cand.ndim == 2 else cand))
    return base, cand, x


def _oriented(h: Hypothesis, cand: FloatArray, base: FloatArray) -> FloatArray:
    """statistic(candidate) − statistic(baseline), positive when the candidate is worse."""
    return (base - cand) if h.higher_is_better else (cand - base)


def _evaluate(statistic: Statistic | None, values: FloatArray) -> FloatArray:
    if statistic is None:
        raise ValueError("a mean check goes through the matrix product, not _evaluate")
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(statistic(values), dtype=np.float64)


def _swaps(rng: np.random.Generator, rows: int, cases: int) -> FloatArray:
    """A (rows × cases) matrix of 0/1 swap indicators, one fair coin per entry (8 per byte)."""
    packed = rng.integers(0, 256, size=(rows, (cases + 7) // 8), dtype=np.uint8)
    return np.unpackbits(packed, axis=1, count=cases).astype(np.float64)
