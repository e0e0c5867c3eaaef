"""The verdict: every declared rule against this run and the baseline, as one frozen value.

Pure: the plan (what was declared) and the scored run in, the verdict out. Nothing here reads a
file, the environment or the clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from gate.decide.budget import error_budget
from gate.decide.compare import CheckResult, Paired, Scores, apply_rule, paired
from gate.decide.drift import Drift, drift
from gate.decide.family import Hypothesis, Tested, max_t
from gate.load.baseline import CaseScores
from gate.load.config import DROP_RULES, INCREASE_RULES, Rule
from gate.metrics import parse_metric
from gate.metrics.scoring import SUCCESS, Scored, case_passed, run_passed
from gate.plan import Plan
from gate.run.records import Record

Key = tuple[str | None, str]
"""(slice or None for overall, metric name)."""
RuleKey = tuple[str | None, str, str]
"""(slice or None, metric name, rule name): one regression check."""


@dataclass(frozen=True, kw_only=True)
class Verdict:
    """What the gate decided, and everything a reader needs to see why."""

    checks: list[CheckResult]
    compared: dict[Key, Paired] = field(default_factory=dict)
    drift: Drift | None = None
    flips: dict[str, list[str]] = field(default_factory=lambda: {"regressed": [], "fixed": []})
    flaky: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    tested: dict[RuleKey, Tested] = field(default_factory=dict)
    """The family-wise decision on every regression check with a paired comparison."""

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def inconclusive(self) -> bool:
        return self.passed and any(c.inconclusive for c in self.checks)

    @property
    def name(self) -> str:
        """fail if a check fails; else inconclusive if one cannot tell; else pass."""
        return "fail" if not self.passed else "inconclusive" if self.inconclusive else "pass"


def decide(plan: Plan, scored: Scored, confidence: float | None = None) -> Verdict:
    """Thresholds, regressions against the baseline, must-pass cases, flips and flaky cases.

    ``confidence`` overrides ``comparison.confidence`` (a stage of a two-stage decision)."""
    moved = drift(plan.cases, plan.baseline) if plan.baseline is not None else None
    compared = comparisons(plan, scored, moved)
    tests = family(plan, compared, moved.shared if moved is not None else [], confidence)
    # The error budget first: whatever the thresholds say, a mostly failing pipeline fails.
    checks = [
        error_budget(scored.records, plan.config.runner),
        *check(plan, scored, compared, tests),
    ]
    return Verdict(
        checks=checks,
        compared=compared,
        drift=moved,
        flips=flips(plan, scored, moved),
        flaky=flaky(scored, plan.config.runner.repeats),
        tested=tests,
    )


def comparisons(plan: Plan, scored: Scored, moved: Drift | None) -> dict[Key, Paired]:
    """Paired comparisons with the baseline: every overall metric, and every slice rule.

    Column by column: each metric's per-case scores in both runs, on the shared cases (rows of
    ``moved.shared``, quarantined cases left out) that both measured."""
    if plan.baseline is None or moved is None:
        return {}
    stored = plan.baseline.case_scores
    shared = moved.shared
    before_rows, now_rows = _aligned(stored, scored, shared)
    compared = np.array([i not in plan.quarantined for i in shared], dtype=bool)
    wanted: list[tuple[str | None, str, np.ndarray]] = [
        (None, name, compared) for name in scored.names
    ]
    tags = {case.id: case.tags for case in plan.cases}
    for slice_name, rules in plan.thresholds.slices.items():
        inside = compared & np.array([slice_name in tags[i] for i in shared], dtype=bool)
        wanted += [(slice_name, name, inside) for name in rules]
    unmeasured = np.full(len(shared), np.nan)

    def column(columns: Mapping[str, np.ndarray], rows: np.ndarray, name: str) -> np.ndarray:
        return columns[name][rows] if name in columns else unmeasured

    scores: dict[Key, Scores] = {}
    for tag, name, inside in wanted:
        metric = parse_metric(name)
        names = (name, *metric.spec.depends_on)
        before = [column(stored.columns, before_rows, n) for n in names]
        after = [column(scored.case_scores, now_rows, n) for n in names]
        rows = np.flatnonzero(inside & ~np.isnan(before[0]) & ~np.isnan(after[0]))
        if not rows.size:
            continue
        # A column the statistic depends on counts 0 where a case does not measure it.
        base, cand = (
            np.nan_to_num(np.column_stack(values)[rows]) if len(values) > 1 else values[0][rows]
            for values in (before, after)
        )
        scores[(tag, name)] = Scores(
            rows, base, cand, metric.spec.statistic, metric.higher_is_better
        )
    return paired(scores, plan.config.comparison)


def family(
    plan: Plan, compared: dict[Key, Paired], shared: list[str], confidence: float | None = None
) -> dict[RuleKey, Tested]:
    """Every relative rule with a paired comparison, decided together: one false-alarm budget
    (``comparison.confidence``) for the whole pull request (``gate.decide.family``)."""
    groups: list[tuple[str | None, dict[str, Rule]]] = [(None, plan.thresholds.metrics)]
    groups += list(plan.thresholds.slices.items())
    keys: list[RuleKey] = []
    hypotheses: list[Hypothesis] = []
    for slice_name, rules in groups:
        for name, rule in rules.items():
            found = compared.get((slice_name, name))
            if found is None:
                continue
            for rule_name, limit in rule.declared().items():
                if rule_name not in DROP_RULES + INCREASE_RULES:
                    continue
                relative = rule_name.endswith("_pct")
                keys.append((slice_name, name, rule_name))
                hypotheses.append(
                    Hypothesis(
                        rows=found.rows,
                        baseline=found.base,
                        candidate=found.cand,
                        statistic=found.statistic,
                        higher_is_better=parse_metric(name).higher_is_better,
                        tolerance=limit / 100 if relative else limit,
                        relative=relative,
                    )
                )
    settings = plan.config.comparison
    tested = max_t(
        hypotheses,
        len(shared),
        resamples=settings.resamples,
        confidence=confidence or settings.confidence,
        seed=settings.seed,
    )
    return dict(zip(keys, tested, strict=True))


def check(
    plan: Plan,
    scored: Scored,
    compared: dict[Key, Paired],
    tests: dict[RuleKey, Tested] | None = None,
) -> list[CheckResult]:
    """Every declared rule against the current values and the baseline's."""
    baseline = plan.baseline
    settings = plan.config.comparison
    groups: list[tuple[str | None, dict[str, Rule]]] = [(None, plan.thresholds.metrics)]
    groups += list(plan.thresholds.slices.items())
    out: list[CheckResult] = []
    for slice_name, rules in groups:
        values = scored.overall if slice_name is None else scored.slices[slice_name]
        stored = (
            {}
            if baseline is None
            else baseline.metrics
            if slice_name is None
            else baseline.slices.get(slice_name, {})
        )
        for name, rule in rules.items():
            out += apply_rule(
                name,
                rule,
                values[name][0],
                stored.get(name),
                parse_metric(name).higher_is_better,
                slice_name,
                compared.get((slice_name, name)),
                settings,
                {r: t for (s, m, r), t in (tests or {}).items() if (s, m) == (slice_name, name)},
            )
    return out + must_pass(plan, scored)


def must_pass(plan: Plan, scored: Scored) -> list[CheckResult]:
    """One check per must_pass tag (and one for the listed ids): every case passes, whatever
    the statistics say. With repeats a case passes by the majority of its runs (``case_passed``):
    demanding every run of every repeat would fail near-certain cases by chance alone."""
    must = plan.thresholds.must_pass
    groups: list[tuple[str | None, set[str]]] = [
        (tag, {c.id for c in plan.cases if tag in c.tags}) for tag in must.tags
    ]
    if must.cases:
        groups.append((None, set(must.cases)))
    if not groups:
        return []
    success = scored.measured(SUCCESS)
    out = []
    for tag, ids in groups:
        failing: dict[str, list[str]] = {}
        for record in scored.records:
            mean = success.get(record.case_id)
            if record.case_id not in ids or (mean is not None and case_passed(mean)):
                continue
            modes = failing.setdefault(record.case_id, [])
            if not run_passed(record):
                modes.extend(record.failure_modes)
        shown = ", ".join(
            f"{i} ({', '.join(dict.fromkeys(modes))})" for i, modes in list(failing.items())[:5]
        )
        more = f", +{len(failing) - 5} more" if len(failing) > 5 else ""
        reason = (
            f"all {len(ids)} must-pass cases passed"
            if not failing
            else f"{len(failing)} of {len(ids)} must-pass cases failed: {shown}{more}"
        )
        out.append(
            CheckResult(
                metric=SUCCESS,
                slice=tag,
                kind="absolute",
                rule="must_pass",
                limit=1.0,
                value=(len(ids) - len(failing)) / len(ids) if ids else None,
                baseline=None,
                passed=not failing,
                reason=reason,
            )
        )
    return out


def flips(plan: Plan, scored: Scored, moved: Drift | None) -> dict[str, list[str]]:
    """Shared cases that passed in the baseline and fail now (regressed), and the reverse.

    Regressed cases come worst first: lowest success now, then most failure modes.
    """
    stored = plan.baseline.case_scores if plan.baseline is not None else None
    if stored is None or moved is None or SUCCESS not in stored.columns:
        return {"regressed": [], "fixed": []}
    before_rows, now_rows = _aligned(stored, scored, moved.shared)
    before = stored.columns[SUCCESS][before_rows]
    now = scored.case_scores[SUCCESS][now_rows]
    both = ~np.isnan(before) & ~np.isnan(now)
    passed_before, passed_now = case_passed(before), case_passed(now)
    worse = np.flatnonzero(both & passed_before & ~passed_now)
    better = np.flatnonzero(both & passed_now & ~passed_before)
    ids = moved.shared
    regressed = [(float(now[i]), ids[i]) for i in worse]
    modes = _modes_by_case(scored.records, {case_id for _, case_id in regressed})
    regressed.sort(key=lambda item: (item[0], -len(modes.get(item[1], ()))))
    fixed = sorted((-float(now[i]), ids[i]) for i in better)
    return {"regressed": [i for _, i in regressed], "fixed": [i for _, i in fixed]}


def _aligned(
    stored: CaseScores, scored: Scored, shared: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Where each shared case is in the baseline's columns and in this run's."""
    now = {case_id: i for i, case_id in enumerate(scored.case_ids)}
    before_rows = np.array([stored.position[i] for i in shared], dtype=np.intp)
    return before_rows, np.array([now[i] for i in shared], dtype=np.intp)


def _modes_by_case(records: list[Record], ids: set[str]) -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    for record in records:
        if record.case_id in ids:
            out[record.case_id] = tuple(
                dict.fromkeys(out.get(record.case_id, ()) + record.failure_modes)
            )
    return out


def flaky(scored: Scored, repeats: int) -> list[str]:
    """Cases whose outcome differed across repeats."""
    if repeats < 2:
        return []
    outcomes: dict[str, set[bool]] = {}
    for record in scored.records:
        outcomes.setdefault(record.case_id, set()).add(run_passed(record))
    return [case_id for case_id, seen in outcomes.items() if len(seen) > 1]
