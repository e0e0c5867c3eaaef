"""The verdict: every declared rule against this run and the baseline, as one frozen value.

Pure: the plan (what was declared) and the scored run in, the verdict out. Nothing here reads a
file, the environment or the clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import numpy as np

from gate.decide.budget import error_budget
from gate.decide.compare import CheckResult, Paired, Scores, apply_rule, paired
from gate.decide.drift import Drift, drift
from gate.decide.family import PRIMARY_SHARE, Hypothesis, Nightly, Tested, max_t
from gate.load.baseline import FIRST_RUN, Baseline, CaseScores
from gate.load.config import DROP_RULES, INCREASE_RULES, Rule
from gate.metrics import parse_metric
from gate.metrics.scoring import SUCCESS, Run, Scored, case_passed, run_passed
from gate.metrics.statistic import depends_on_runs
from gate.plan import Plan

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
    baseline = plan.baseline
    moved = drift(plan.cases, baseline) if baseline is not None else None
    runs = scored.runs
    first = first_runs(baseline, runs) if baseline is not None else {}
    compared = comparisons(plan, scored, moved, first)
    unlike = {
        key
        for key, found in compared.items()
        if baseline is not None
        and baseline.repeats != runs
        and depends_on_runs(found.statistic)
        and key[1] not in first
    }
    judged = {key: found for key, found in compared.items() if key not in unlike}
    shared = moved.shared if moved is not None else []
    tests = family(plan, judged, shared, confidence, runs)
    checks = check(plan, scored, compared, tests)
    if unlike and baseline is not None:
        checks = [
            _not_comparable(c, baseline.repeats, runs)
            if c.kind == "regression" and (c.slice, c.metric) in unlike
            else c
            for c in checks
        ]
    # The error budget first: whatever the thresholds say, a mostly failing pipeline fails.
    checks = [error_budget(scored.records, plan.config.runner), *checks]
    return Verdict(
        checks=checks,
        compared={key: found.settled() for key, found in compared.items()},
        drift=moved,
        flips=flips(plan, scored, moved),
        flaky=flaky(scored, plan.config.runner.repeats),
        tested=tests,
        warnings=_stage_warnings(plan),
    )


def _stage_warnings(plan: Plan) -> list[str]:
    if not plan.config.comparison.second_stage or plan.baseline is None:
        return []
    if plan.baseline.repeats > plan.config.runner.repeats:
        return []
    return [
        f"comparison.second_stage: the baseline holds {plan.baseline.repeats} run(s) per case, "
        f"no more than runner.repeats ({plan.config.runner.repeats}): a second stage tops a run "
        "up to the baseline's runs per case, so there is none (fix: bless a baseline from a "
        "run with runner.repeats: 3)"
    ]


def first_runs(baseline: Baseline, runs: int) -> dict[str, np.ndarray]:
    """The baseline's first-run columns by metric (``FIRST_RUN``) when this run has one run per
    case and the baseline more: what its percentiles are compared with, like with like."""
    if runs != 1 or baseline.repeats <= 1:
        return {}
    return {
        name.removesuffix(FIRST_RUN): column
        for name, column in baseline.case_scores.columns.items()
        if name.endswith(FIRST_RUN)
    }


def _not_comparable(result: CheckResult, baseline_runs: int, runs: int) -> CheckResult:
    """A percentile rule against a baseline with another number of runs per case: not judged
    (it would compare two different things), so inconclusive, never a silent pass."""
    return replace(
        result,
        passed=True,
        inconclusive=True,
        reason=(
            f"not comparable: the baseline's per-case values are means of {baseline_runs} "
            f"run(s), this run's of {runs}, and a percentile of means depends on that "
            f"(fix: run with runner.repeats: {baseline_runs}, or bless a baseline from a run "
            f"with {runs})"
        ),
    )


def comparisons(
    plan: Plan,
    scored: Scored,
    moved: Drift | None,
    first: Mapping[str, np.ndarray] | None = None,
) -> dict[Key, Paired]:
    """Paired comparisons with the baseline: every overall metric, and every slice rule.

    Column by column: each metric's per-case scores in both runs, on the shared cases (rows of
    ``moved.shared``, quarantined cases left out) that both measured. ``first`` (``first_runs``)
    replaces the baseline's columns of those metrics: one run against one run."""
    if plan.baseline is None or moved is None:
        return {}
    stored = plan.baseline.case_scores
    columns = {**stored.columns, **(first or {})}
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
    # Where the shared cases are each side's own, in order (a baseline of this golden set), the
    # columns are read in place: a copy of each was 1.6 MB a check at 100k cases.
    before_at, now_at = (
        _in_place(before_rows, len(stored.ids)),
        _in_place(now_rows, len(scored.case_ids)),
    )

    def column(
        columns: Mapping[str, np.ndarray], rows: np.ndarray | slice, name: str
    ) -> np.ndarray:
        if name not in columns:
            return unmeasured
        values = columns[name][rows]
        values.flags.writeable = False  # a view of the run's or the baseline's own column
        return values

    every = np.arange(len(shared))
    every.flags.writeable = False  # the rows of every comparison on all shared cases, shared
    scores: dict[Key, Scores] = {}
    for tag, name, inside in wanted:
        metric = parse_metric(name)
        names = (name, *metric.spec.depends_on)
        before = [column(columns, before_at, n) for n in names]
        after = [column(scored.case_scores, now_at, n) for n in names]
        rows = np.flatnonzero(inside & ~np.isnan(before[0]) & ~np.isnan(after[0]))
        if not rows.size:
            continue
        if rows.size == every.size:
            rows = every
        # A column the statistic depends on counts 0 where a case does not measure it.
        base, cand = (
            np.nan_to_num(np.column_stack(values)[rows])
            if len(values) > 1
            else values[0]
            if rows is every
            else values[0][rows]
            for values in (before, after)
        )
        scores[(tag, name)] = Scores(
            rows, base, cand, metric.spec.statistic, metric.higher_is_better
        )
    return paired(scores, plan.config.comparison)


def family(
    plan: Plan,
    compared: dict[Key, Paired],
    shared: list[str],
    confidence: float | None = None,
    runs: int = 1,
) -> dict[RuleKey, Tested]:
    """Every relative rule with a paired comparison, decided together: one false-alarm budget
    (``comparison.confidence``) for the whole pull request (``gate.decide.family``).

    With a ``primary`` metric in the thresholds, its overall rules are tested on their own with
    ``PRIMARY_SHARE`` of the budget and every other check jointly with the rest: a pull request
    fails falsely only if one of the two does (the shares add up), and the metric the change is
    about keeps most of its power instead of paying for every slice and guardrail.

    With the nightlies' noise floor (``plan.noise``), each check carries what they measured of
    its metric, and ``runs`` (this run's runs per case) with the baseline's."""
    noise = plan.noise
    base_runs = plan.baseline.repeats if plan.baseline is not None else 1
    groups: list[tuple[str | None, dict[str, Rule]]] = [(None, plan.thresholds.metrics)]
    groups += list(plan.thresholds.slices.items())
    primary = plan.thresholds.primary
    split: dict[bool, list[tuple[RuleKey, Hypothesis]]] = {True: [], False: []}
    for slice_name, rules in groups:
        for name, rule in rules.items():
            found = compared.get((slice_name, name))
            if found is None:
                continue
            for rule_name, limit in rule.declared().items():
                if rule_name not in DROP_RULES + INCREASE_RULES:
                    continue
                relative = rule_name.endswith("_pct")
                measured = noise.changes.get((slice_name, name)) if noise is not None else None
                nightly = (
                    Nightly(measured[0], measured[1], noise.runs, group=name)
                    if measured is not None and noise is not None
                    else None
                )
                hypothesis = Hypothesis(
                    rows=found.rows,
                    baseline=found.base,
                    candidate=found.cand,
                    statistic=found.statistic,
                    higher_is_better=parse_metric(name).higher_is_better,
                    tolerance=limit / 100 if relative else limit,
                    relative=relative,
                    nightly=nightly,
                    runs=(base_runs, runs),
                )
                is_primary = slice_name is None and name == primary
                split[is_primary].append(((slice_name, name, rule_name), hypothesis))
    settings = plan.config.comparison
    alpha = 1 - (confidence or settings.confidence)
    share = PRIMARY_SHARE if split[True] else 0.0
    out: dict[RuleKey, Tested] = {}
    for part, budget in ((split[True], share * alpha), (split[False], (1 - share) * alpha)):
        tested = max_t(
            [h for _, h in part],
            len(shared),
            resamples=settings.resamples,
            confidence=1 - budget,
            seed=settings.seed,
        )
        out |= dict(zip([key for key, _ in part], tested, strict=True))
    return out


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


def _in_place(rows: np.ndarray, size: int) -> np.ndarray | slice:
    """``rows``, or every row as a slice (read as a view, not copied) where they are 0 … size−1."""
    return slice(None) if rows.size == size and np.array_equal(rows, np.arange(size)) else rows


def _aligned(
    stored: CaseScores, scored: Scored, shared: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Where each shared case is in the baseline's columns and in this run's."""
    now = {case_id: i for i, case_id in enumerate(scored.case_ids)}
    before_rows = np.array([stored.position[i] for i in shared], dtype=np.intp)
    return before_rows, np.array([now[i] for i in shared], dtype=np.intp)


def _modes_by_case(records: list[Run], ids: set[str]) -> dict[str, tuple[str, ...]]:
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
