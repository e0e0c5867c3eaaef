"""Compare metric values with the declared thresholds and with the baseline: the verdict.

Pure: values in, checks out. A check is one rule applied to one metric (overall or in a slice)
and says why it passed or failed, so a reader of the report sees the reasoning.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from gate.config import Rule

EPSILON = 1e-9
"""Slack for float comparisons: 0.1 + 0.2 must not fail a bar of 0.3."""

Kind = Literal["absolute", "regression"]


@dataclass(frozen=True)
class CheckResult:
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
) -> list[CheckResult]:
    """Every bar the rule declares, applied to one metric's value (and its baseline)."""
    out: list[CheckResult] = []

    def add(kind: Kind, name: str, limit: float, passed: bool, reason: str) -> None:
        out.append(
            CheckResult(metric, slice_name, kind, name, limit, value, baseline, passed, reason)
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
