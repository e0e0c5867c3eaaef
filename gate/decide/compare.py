"""Compare metric values with the declared thresholds and with the baseline: the checks.

Pure: values in, checks out. A check is one rule applied to one metric (overall or in a slice)
and says why it passed or failed, so a reader of the report sees the reasoning.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field, replace
from typing import Literal, TypeVar

import numpy as np
import numpy.typing as npt

from gate.decide import stats
from gate.decide.family import Tested
from gate.load.config import Comparison, Rule
from gate.metrics.statistic import FloatArray, Statistic, mean_statistic

EPSILON = 1e-9
"""Slack for float comparisons: 0.1 + 0.2 must not fail a bar of 0.3."""

Kind = Literal["absolute", "regression"]
K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True, kw_only=True)
class CheckResult:
    """One rule applied to one metric (overall or in a slice), with the reason it passed or not."""

    metric: str
    slice: str | None
    kind: Kind
    rule: str
    limit: float
    value: float | None
    baseline: float | None
    passed: bool
    reason: str
    inconclusive: bool = False
    """The estimate is worse than the tolerance but the data cannot tell: counts as passed."""

    @property
    def status(self) -> str:
        return "inconclusive" if self.inconclusive else "pass" if self.passed else "fail"

    def to_json(self) -> dict[str, object]:
        return {
            "metric": self.metric,
            "slice": self.slice,
            "kind": self.kind,
            "rule": self.rule,
            "limit": self.limit,
            "value": self.value,
            "baseline": self.baseline,
            "status": self.status,
            "reason": self.reason,
        }


def fmt(value: float | None) -> str:
    """Four significant digits: enough to see a change, short enough for a table."""
    return "n/a" if value is None else f"{value:.4g}"


def apply_rule(
    metric: str,
    rule: Rule,
    value: float | None,
    baseline: float | None,
    higher_is_better: bool,
    slice_name: str | None = None,
    comparison: Paired | None = None,
    settings: Comparison | None = None,
    tests: Mapping[str, Tested] | None = None,
) -> list[CheckResult]:
    """Every bar the rule declares, applied to one metric's value (and its baseline).

    Relative rules are judged on ``comparison`` (paired by case) and the family-wise decision
    ``tests`` (by rule name) when there are, else on the aggregate values (the baseline has no
    per-case scores for this metric).
    """
    out: list[CheckResult] = []

    def add(kind: Kind, name: str, limit: float, passed: bool, reason: str) -> None:
        out.append(
            CheckResult(
                metric=metric,
                slice=slice_name,
                kind=kind,
                rule=name,
                limit=limit,
                value=value,
                baseline=baseline,
                passed=passed,
                reason=reason,
            )
        )

    unmeasured = "not measured: no case defines what this metric needs"
    for name, limit in rule.declared().items():
        if name in ("min", "max"):
            if value is None:
                add("absolute", name, limit, False, unmeasured)
            elif name == "min":
                ok = value >= limit - EPSILON
                add(
                    "absolute",
                    name,
                    limit,
                    ok,
                    f"{fmt(value)} {'≥' if ok else '<'} min {fmt(limit)}",
                )
            else:
                ok = value <= limit + EPSILON
                add(
                    "absolute",
                    name,
                    limit,
                    ok,
                    f"{fmt(value)} {'≤' if ok else '>'} max {fmt(limit)}",
                )
            continue
        if baseline is None:
            continue  # no baseline: relative rules cannot apply; the report says so
        if value is None:
            add("regression", name, limit, False, f"{unmeasured} (baseline {fmt(baseline)})")
            continue
        if comparison is not None and tests is not None and name in tests:
            out.append(
                regression_check(
                    metric,
                    name,
                    limit,
                    comparison,
                    tests[name],
                    higher_is_better,
                    settings or Comparison(),
                    slice_name,
                    value,
                    baseline,
                )
            )
            continue
        worse_by = (baseline - value) if higher_is_better else (value - baseline)
        word = "drop" if higher_is_better else "increase"
        if name in ("max_drop", "max_increase"):
            ok = worse_by <= limit + EPSILON
            sign = "≤" if ok else ">"
            add("regression", name, limit, ok, f"{word} {fmt(worse_by)} {sign} {name} {fmt(limit)}")
        else:
            pct = _percent(worse_by, baseline)
            ok = pct <= limit + EPSILON
            shown = "∞" if pct == float("inf") else f"{pct:.1f}"
            sign = "≤" if ok else ">"
            add("regression", name, limit, ok, f"{word} {shown}% {sign} {name} {limit:g}%")
    return out


def _percent(worse_by: float, baseline: float) -> float:
    if worse_by <= 0:
        return 0.0
    if baseline == 0:
        return float("inf")  # any worsening from zero is an unbounded relative change
    return 100 * worse_by / abs(baseline)


def status(checks: list[CheckResult]) -> str:
    if not checks:
        return "unchecked"
    if not all(c.passed for c in checks):
        return "fail"
    return "inconclusive" if any(c.inconclusive for c in checks) else "pass"


# --- against the baseline, paired by case -----------------------------------------------------


@dataclass(frozen=True)
class Scores:
    """One metric's per-case scores in both runs, on the cases both measured: what a paired
    comparison reads."""

    rows: npt.NDArray[np.intp]
    """Where the cases are in the shared case list (the list the family-wise test swaps)."""
    base: FloatArray
    """``(n,)``, or ``(n, c)`` for a statistic of several columns (the metric, then the ones
    its statistic depends on)."""
    cand: FloatArray
    statistic: Statistic | None = None
    """None for a mean."""
    higher_is_better: bool = True


@dataclass(frozen=True)
class Paired:
    """One metric compared case by case on the cases both runs measured."""

    interval: stats.Interval
    baseline_value: float
    """The statistic of the baseline's scores on the paired cases (what a % rule is % of)."""
    aggregate_only: bool
    """Percentiles and ratios: a statistic of the cases, not a mean of per-case changes."""
    mcnemar: stats.McNemar | None = None
    """For pass/fail scores: the exact test on the cases that flipped, in the bad direction."""
    rows: npt.NDArray[np.intp] = field(
        default_factory=lambda: np.zeros(0, dtype=np.intp), compare=False, repr=False
    )
    """Where the paired cases are in the shared case list, in the order of the scores below."""
    statistic: Statistic | None = None
    base: FloatArray = field(default_factory=lambda: np.zeros(0), compare=False, repr=False)
    cand: FloatArray = field(default_factory=lambda: np.zeros(0), compare=False, repr=False)

    @property
    def candidate_value(self) -> float:
        """The statistic of the candidate's scores on the paired cases: what the rule judges."""
        return self.baseline_value + self.interval.estimate

    def settled(self) -> Paired:
        """Without its per-case scores, once the family-wise test has read them: what a verdict
        keeps (at 100k cases, the scores of every comparison were 50 MB to the report's end)."""
        # Copied: an empty slice would keep the whole array alive.
        return replace(
            self, rows=self.rows[:0].copy(), base=self.base[:0].copy(), cand=self.cand[:0].copy()
        )

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "n": self.interval.n,
            "estimate": _r(self.interval.estimate),
            "low": _r(self.interval.low),
            "high": _r(self.interval.high),
            "confidence": self.interval.confidence,
        }
        if self.mcnemar is not None:
            out["mcnemar"] = {
                "worse": self.mcnemar.b,
                "better": self.mcnemar.c,
                "p_worse": _r(self.mcnemar.p_worse),
            }
        return out


def _r(value: float) -> float:
    return round(value, 6)


def two_sided(one_sided: float) -> float:
    """The two-sided interval whose bound is the one-sided bound at ``one_sided``.

    Only a drop fails the gate, so regressions are a one-sided test: ``comparison.confidence``
    0.95 is a false-alarm rate of at most 5% (a two-sided 95% interval would spend half of that
    on rises nobody fails a gate for, and lose power). The report shows the 90% interval.
    """
    return 2 * one_sided - 1


def paired(scores: Mapping[K, Scores], settings: Comparison) -> dict[K, Paired]:
    """Every comparison asked for, case by case; one left out when its statistic has no value
    on its cases (a ratio with no success).

    Comparisons on the same cases share their bootstrap resamples (``stats.paired_bootstraps``).
    The intervals are for the reader; the decision is the family's (``gate.decide.family``),
    on the scores kept here.
    """
    groups: dict[bytes, list[K]] = {}
    for key, found in scores.items():
        groups.setdefault(found.rows.tobytes(), []).append(key)
    intervals: dict[K, stats.Interval] = {}
    for keys in groups.values():
        resampled = stats.paired_bootstraps(
            [(scores[k].base, scores[k].cand, scores[k].statistic) for k in keys],
            resamples=settings.resamples,
            confidence=two_sided(settings.confidence),
            seed=settings.seed,
        )
        intervals |= {k: i for k, i in zip(keys, resampled, strict=True) if i is not None}
    return {key: _paired(scores[key], intervals[key]) for key in scores if key in intervals}


def _paired(scores: Scores, interval: stats.Interval) -> Paired:
    base, cand, statistic = scores.base, scores.cand, scores.statistic
    whole = (statistic or mean_statistic)(base[np.newaxis, ...])
    mcnemar = None
    if statistic is None and _binary(base) and _binary(cand):
        # A case "passes" when its value is the good one: 1 when higher is better, else 0, so
        # for ops.error_rate a case newly failing is one whose value went up.
        good = 1.0 if scores.higher_is_better else 0.0
        mcnemar = stats.mcnemar_exact(base == good, cand == good)
    return Paired(
        interval,
        float(whole[0]),
        aggregate_only=statistic is not None,
        mcnemar=mcnemar,
        rows=scores.rows,
        statistic=statistic,
        base=base,
        cand=cand,
    )


def _binary(values: FloatArray) -> bool:
    return bool(np.all((values == 0.0) | (values == 1.0)))


def regression_check(
    metric: str,
    rule_name: str,
    limit: float,
    comparison: Paired,
    tested: Tested,
    higher_is_better: bool,
    settings: Comparison,
    slice_name: str | None = None,
    value: float | None = None,
    baseline: float | None = None,
) -> CheckResult:
    """A max_drop / max_increase rule judged by the family-wise test (``gate.decide.family``).

    - fail: worse than the tolerance, significantly at ``settings.confidence`` family-wise (or,
      in ``strict`` mode, worse than the tolerance at all);
    - inconclusive: the estimate is worse than the tolerance, not significantly, but close: it
      would be at twice the false-alarm budget (p ≤ 2(1 − confidence)); the reason says about
      how many cases would decide it;
    - pass: the estimate is within the tolerance.
    A % rule's tolerance is the % of the baseline's value on the paired cases. Percentiles and
    ratios show the statistic on the paired cases (per-case means over repeats): what is judged.
    """
    interval = comparison.interval
    tolerance = tolerance_of(rule_name, limit, comparison)
    sign = -1.0 if higher_is_better else 1.0
    worse = sign * interval.estimate
    low, high = sorted((sign * interval.low, sign * interval.high))
    word = "drop" if higher_is_better else "increase"
    span = f"{word} {fmt(worse + 0.0)} [{fmt(low + 0.0)}, {fmt(high + 0.0)}]"
    beyond = tested.worsening > EPSILON * max(1.0, abs(comparison.baseline_value))
    confidence = tested.confidence
    significant = beyond and tested.p_value <= 1 - confidence
    level = f"at {confidence * 100:g}% family-wise, p={tested.p_value:.2g}"
    # Close to the line: it would fail at twice the false-alarm budget. Further away, a change
    # beyond the tolerance is what noise gives any of many checks on most unchanged PRs.
    inconclusive = beyond and not significant and tested.p_value <= 2 * (1 - confidence)
    if not beyond:
        reason = f"{span} within tolerance {fmt(tolerance)}"
    elif significant:
        reason = f"{span} > tolerance {fmt(tolerance)}, significant {level}"
    elif settings.strict:
        inconclusive = False
        reason = f"{span} > tolerance {fmt(tolerance)}, not significant {level} (strict mode)"
    else:
        reason = f"{span} > tolerance {fmt(tolerance)}, but not significant {level}"
    if inconclusive:
        needed = tested.cases_to_decide()
        if needed is not None:
            reason += (
                f": about {needed} cases ({needed / tested.n:.1f}x the runs: more cases or "
                "repeats) would likely decide it"
            )
    reason += f" ({rule_name} {limit:g}{'%' if rule_name.endswith('_pct') else ''}"
    reason += f", n={interval.n}"
    if comparison.mcnemar is not None:
        m = comparison.mcnemar
        reason += f", {m.b} newly failing, {m.c} newly passing, McNemar p={m.p_worse:.2g}"
    reason += ")"
    if comparison.aggregate_only:
        value, baseline = comparison.candidate_value, comparison.baseline_value
    return CheckResult(
        metric=metric,
        slice=slice_name,
        kind="regression",
        rule=rule_name,
        limit=limit,
        value=value,
        baseline=baseline,
        passed=not (significant or (beyond and settings.strict)),
        reason=reason,
        inconclusive=inconclusive,
    )


def tolerance_of(rule_name: str, limit: float, comparison: Paired) -> float:
    """A relative rule's tolerance in the metric's units: a % of the paired baseline value."""
    if rule_name.endswith("_pct"):
        return limit / 100 * abs(comparison.baseline_value)
    return limit
