"""Compare metric values with the declared thresholds and with the baseline: the checks.

Pure: values in, checks out. A check is one rule applied to one metric (overall or in a slice)
and says why it passed or failed, so a reader of the report sees the reasoning.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from gate.decide import stats
from gate.load.config import Comparison, Rule
from gate.metrics.statistic import Statistic, mean_statistic

EPSILON = 1e-9
"""Slack for float comparisons: 0.1 + 0.2 must not fail a bar of 0.3."""

Kind = Literal["absolute", "regression"]


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

    def to_json(self) -> dict[str, object]:
        return {
            "metric": self.metric,
            "slice": self.slice,
            "kind": self.kind,
            "rule": self.rule,
            "limit": self.limit,
            "value": self.value,
            "baseline": self.baseline,
            "status": "pass" if self.passed else "fail",
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
) -> list[CheckResult]:
    """Every bar the rule declares, applied to one metric's value (and its baseline).

    Relative rules are judged on ``comparison`` (paired by case) when there is one, else on the
    aggregate values (the baseline has no per-case scores for this metric).
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
        if comparison is not None:
            out.append(
                regression_check(
                    metric,
                    name,
                    limit,
                    comparison,
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
    return "pass" if all(c.passed for c in checks) else "fail"


# --- against the baseline, paired by case -----------------------------------------------------


@dataclass(frozen=True)
class Paired:
    """One metric compared case by case on the cases both runs measured."""

    interval: stats.Interval
    baseline_value: float
    """The statistic of the baseline's scores on the paired cases (what a % rule is % of)."""
    aggregate_only: bool
    """Percentiles and ratios: the rule applies to the point estimate, the interval is shown."""
    mcnemar: stats.McNemar | None = None
    """For pass/fail scores: the exact test on the cases that flipped."""
    mde: float | None = None
    """The smallest drop this many cases can detect (80% power), for mean metrics."""

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
        if self.mde is not None:
            out["minimum_detectable_drop"] = _r(self.mde)
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


def paired(
    columns: tuple[str, ...],
    statistic: Statistic | None,
    baseline: dict[str, dict[str, float]],
    current: dict[str, dict[str, float]],
    ids: list[str],
    settings: Comparison,
) -> Paired | None:
    """Compare the per-case scores of ``columns[0]`` (and the columns its statistic reads).

    Only cases measured in both runs are paired; None when there is none, or when the
    statistic has no value on them (a ratio with no success).
    """
    name = columns[0]
    both = [i for i in ids if name in baseline.get(i, {}) and name in current.get(i, {})]
    if not both:
        return None
    base = np.array([[baseline[i].get(c, 0.0) for c in columns] for i in both])
    cand = np.array([[current[i].get(c, 0.0) for c in columns] for i in both])
    if len(columns) == 1:
        base, cand = base[:, 0], cand[:, 0]
    try:
        interval = stats.paired_bootstrap(
            base,
            cand,
            statistic=statistic,
            resamples=settings.resamples,
            confidence=two_sided(settings.confidence),
            seed=settings.seed,
        )
    except ValueError:
        return None
    whole = (statistic or mean_statistic)(base[np.newaxis, ...])
    result = Paired(interval, float(whole[0]), aggregate_only=statistic is not None)
    if statistic is None:
        binary = np.isin(base, (0.0, 1.0)).all() and np.isin(cand, (0.0, 1.0)).all()
        sd = float(np.std(cand - base, ddof=1)) if len(both) > 1 else None
        mde = stats.minimum_detectable_effect(
            base, confidence=two_sided(settings.confidence), paired_sd=sd or None
        )
        mcnemar = stats.mcnemar_exact(base == 1, cand == 1) if binary else None
        result = replace(result, mcnemar=mcnemar, mde=mde)
    return result


def regression_check(
    metric: str,
    rule_name: str,
    limit: float,
    comparison: Paired,
    higher_is_better: bool,
    settings: Comparison,
    slice_name: str | None = None,
    value: float | None = None,
    baseline: float | None = None,
) -> CheckResult:
    """A max_drop / max_increase rule judged on the paired comparison.

    Mean metrics: regressed when the paired change is worse than the tolerance and significant
    at ``settings.confidence`` (``stats.decide``), or on the estimate alone when ``strict``.
    A % rule's tolerance is the % of the baseline's value on the paired cases.
    """
    decision = stats.decide(
        comparison.interval,
        tolerance=tolerance_of(rule_name, limit, comparison),
        higher_is_better=higher_is_better,
        strict=settings.strict or comparison.aggregate_only,
        one_sided=True,
    )
    reason = f"{decision.reason} ({rule_name} {limit:g}{'%' if rule_name.endswith('_pct') else ''}"
    reason += f", n={comparison.interval.n}"
    if comparison.mcnemar is not None:
        m = comparison.mcnemar
        reason += f", {m.b} newly failing, {m.c} newly passing, McNemar p={m.p_worse:.2g}"
    reason += ")"
    if comparison.aggregate_only:
        reason += "; judged on the estimate (an aggregate, not a mean)"
    return CheckResult(
        metric=metric,
        slice=slice_name,
        kind="regression",
        rule=rule_name,
        limit=limit,
        value=value,
        baseline=baseline,
        passed=not decision.regressed,
        reason=reason,
    )


def tolerance_of(rule_name: str, limit: float, comparison: Paired) -> float:
    """A relative rule's tolerance in the metric's units: a % of the paired baseline value."""
    if rule_name.endswith("_pct"):
        return limit / 100 * abs(comparison.baseline_value)
    return limit


def detectability(check: CheckResult, comparison: Paired) -> str | None:
    """A warning when the golden set is too small to see a drop as small as the tolerance."""
    if comparison.mde is None or check.kind != "regression":
        return None
    tolerance = tolerance_of(check.rule, check.limit, comparison)
    if comparison.mde <= tolerance:
        return None
    where = f" [{check.slice}]" if check.slice else ""
    return (
        f"{check.metric}{where}: {comparison.interval.n} paired cases can only detect drops of "
        f"{fmt(comparison.mde)} or more (80% power, "
        f"{(1 + comparison.interval.confidence) / 2:.0%} one-sided); the tolerance asked is "
        f"{fmt(tolerance)}: add cases or repeats, or expect only large regressions to fail the gate"
    )
