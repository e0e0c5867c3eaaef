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
  the swapped arrays, so they are judged with their randomisation distribution, not the estimate
  (a ratio of sums as a matrix product too, a percentile among the values near it: ``_Band``).

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

from gate.metrics.statistic import FloatArray, Percentile, Statistic, ratio_statistic

# Swap indicators drawn per block of resamples: about a million cases × resamples per block, so
# memory stays flat (≈ 8 MiB per float64 array) whatever the golden set's size.
_BLOCK_ELEMENTS = 2**20

_BAND_SDS = 6
"""How many standard deviations of a resample's count below it a percentile's band spans."""

_ONES = np.array([bin(byte).count("1") for byte in range(256)], dtype=np.uint8)
"""The set bits of each byte (``np.bitwise_count`` needs numpy 2)."""

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
    means = [i for i, h in enumerate(hypotheses) if h.statistic is None]
    others = [i for i, h in enumerate(hypotheses) if h.statistic is not None]
    # Mean checks: column k holds check k's per-case worsening (0 on cases outside its slice);
    # their prepared sides are not kept (at 100k cases, 1.6 MB a check).
    worse = np.zeros((cases, len(means)))
    for column, i in enumerate(means):
        worse[hypotheses[i].rows, column] = _prepare(hypotheses[i])[2]
    prepared = {i: _prepare(hypotheses[i]) for i in others}

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

    bands = {
        i: _Band.around(hypotheses[i], *prepared[i][:2], cases)
        for i in others
        if isinstance(hypotheses[i].statistic, Percentile) and prepared[i][0].ndim == 1
    }

    rng = np.random.default_rng(seed)
    block = max(1, _BLOCK_ELEMENTS // max(1, cases))
    randomised = np.empty((resamples, len(hypotheses)))
    for start in range(0, resamples, block):
        rows = min(block, resamples - start)
        packed = rng.integers(0, 256, size=(rows, (cases + 7) // 8), dtype=np.uint8)
        swap = np.unpackbits(packed, axis=1, count=cases)  # one fair coin per case, 0/1
        if means:
            signs = 1.0 - 2.0 * swap
            sizes = np.array([max(1, hypotheses[i].rows.size) for i in means])
            randomised[start : start + rows, means] = (signs @ worse) / sizes
        for i, band in bands.items():
            h, (base, cand, _) = hypotheses[i], prepared[i]
            shifted = band.shifted(packed)
            randomised[start : start + rows, i] = _oriented(
                h,
                band.select(swap, shifted, base, cand, h.rows, candidate=True),
                band.select(swap, shifted, base, cand, h.rows, candidate=False),
            )
        for i in others:
            if i in bands:
                continue
            h, (base, cand, _) = hypotheses[i], prepared[i]
            mine = swap[:, h.rows]
            if h.statistic is ratio_statistic:
                # A ratio of sums is linear in the swaps: each side's sums are a matrix product.
                cand_sums = cand.sum(axis=0) + mine.astype(np.float64) @ (base - cand)
                base_sums = (base + cand).sum(axis=0) - cand_sums
                with np.errstate(divide="ignore", invalid="ignore"):
                    randomised[start : start + rows, i] = _oriented(
                        h, cand_sums[:, 0] / cand_sums[:, 1], base_sums[:, 0] / base_sums[:, 1]
                    )
                continue
            chosen = mine.astype(bool)[..., None] if base.ndim == 2 else mine.astype(bool)
            cand_side = np.where(chosen, base[None], cand[None])
            base_side = np.where(chosen, cand[None], base[None])
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


@dataclass(frozen=True)
class _Band:
    """Where a percentile of one side of the swapped cases lies, so that each resample selects
    among the few values near it instead of partitioning all n (several times faster, exact).

    Under random swaps a side's count of values below the band is the candidate's (or the
    baseline's) count plus (minus) the swapped cases' change: the cases whose baseline value is
    below the band and candidate value is not, minus those the other way round. Its mean is half
    the pooled count, its standard deviation at most √n / 2. The band spans ``_BAND_SDS`` of those
    either side of the rank, so a resample's rank falls outside it about once in 10⁹ draws, and
    then that resample's whole side is partitioned."""

    rank: int
    cases: npt.NDArray[np.intp]
    """The columns of the swap matrix whose baseline or candidate value is in the band."""
    inside: tuple[FloatArray, FloatArray]
    """The baseline's and the candidate's values at ``cases``, +inf where outside the band."""
    below: tuple[int, int]
    """The baseline's and the candidate's counts of values below the band."""
    gains: tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]
    """Packed like the swaps, over all cases: where swapping adds a value below the band to the
    candidate's side (the baseline's is below, the candidate's not), and where it removes one."""

    @classmethod
    def around(cls, h: Hypothesis, base: FloatArray, cand: FloatArray, cases: int) -> _Band:
        assert isinstance(h.statistic, Percentile)
        n = base.size
        rank = h.statistic.rank(n)
        margin = math.ceil(_BAND_SDS * math.sqrt(n) / 2) + 1
        ends = [max(0, 2 * (rank - margin)), min(2 * n - 1, 2 * (rank + margin) + 1)]
        low, high = np.partition(np.concatenate([base, cand]), ends)[ends]
        within = [(side >= low) & (side <= high) for side in (base, cand)]
        where = np.flatnonzero(within[0] | within[1])
        base_in, cand_in = (
            np.where(mask[where], side[where], np.inf)
            for side, mask in zip((base, cand), within, strict=True)
        )
        below_base, below_cand = base < low, cand < low
        gains = []
        for mask in (below_base & ~below_cand, below_cand & ~below_base):
            spread = np.zeros(cases, dtype=bool)
            spread[h.rows] = mask
            gains.append(np.packbits(spread))
        return cls(
            rank=rank,
            cases=h.rows[where],
            inside=(base_in, cand_in),
            below=(int(below_base.sum()), int(below_cand.sum())),
            gains=(gains[0], gains[1]),
        )

    def shifted(self, packed: npt.NDArray[np.uint8]) -> npt.NDArray[np.int64]:
        """Each resample's change in the candidate's count below the band (the baseline's
        changes by as much the other way), counted on the packed swaps."""
        added, removed = (_ONES[packed & mask].sum(axis=1, dtype=np.int64) for mask in self.gains)
        change: npt.NDArray[np.int64] = added - removed
        return change

    def select(
        self,
        swap: npt.NDArray[np.uint8],
        shifted: npt.NDArray[np.int64],
        base: FloatArray,
        cand: FloatArray,
        rows: npt.NDArray[np.intp],
        *,
        candidate: bool,
    ) -> FloatArray:
        """The value at the rank on one side (the candidate's, or the baseline's) of each
        resample."""
        chosen = swap[:, self.cases].astype(bool)
        base_in, cand_in = self.inside
        if candidate:  # a swap brings the baseline's value in
            values = np.where(chosen, base_in, cand_in)
            targets = self.rank - (self.below[1] + shifted)
        else:
            values = np.where(chosen, cand_in, base_in)
            targets = self.rank - (self.below[0] - shifted)
        inside = np.count_nonzero(values < np.inf, axis=1)
        out = np.empty(len(values))
        for row, (target, count) in enumerate(zip(targets.tolist(), inside.tolist(), strict=True)):
            if 0 <= target < count:
                out[row] = np.partition(values[row], target)[target]
            else:
                mine = swap[row, rows].astype(bool)
                side = np.where(mine, base, cand) if candidate else np.where(mine, cand, base)
                out[row] = np.partition(side, self.rank)[self.rank]
        return out


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
