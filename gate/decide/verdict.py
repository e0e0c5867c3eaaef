"""The verdict: every declared rule against this run and the baseline, as one frozen value.

Pure: the plan (what was declared) and the scored run in, the verdict out. Nothing here reads a
file, the environment or the clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from gate.decide.budget import error_budget
from gate.decide.compare import CheckResult, Paired, apply_rule, paired
from gate.decide.drift import Drift, drift
from gate.decide.family import PRIMARY_SHARE, Hypothesis, Nightly, Tested, max_t
from gate.load.baseline import FIRST_RUN
from gate.load.config import DROP_RULES, INCREASE_RULES, Rule
from gate.metrics import parse_metric
from gate.metrics.scoring import SUCCESS, Scored, case_passed, run_passed
from gate.metrics.statistic import depends_on_runs
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
    runs = runs_per_case(scored)
    compared = comparisons(plan, scored, moved, runs)
    first = set(plan.baseline.case_scores.columns) if plan.baseline is not None else set()
    unlike = {
        key
        for key, found in compared.items()
        if plan.baseline is not None
        and plan.baseline.repeats != runs
        and depends_on_runs(found.statistic)
        and not (runs == 1 and f"{key[1]}{FIRST_RUN}" in first)
    }
    judged = {key: found for key, found in compared.items() if key not in unlike}
    shared = moved.shared if moved is not None else []
    tests = family(plan, judged, shared, confidence, runs)
    checks = check(plan, scored, compared, tests)
    if unlike and plan.baseline is not None:
        checks = [
            _not_comparable(c, plan.baseline.repeats, runs)
            if c.kind == "regression" and (c.slice, c.metric) in unlike
            else c
            for c in checks
        ]
    # The error budget first: whatever the thresholds say, a mostly failing pipeline fails.
    checks = [error_budget(scored.records, plan.config.runner), *checks]
    return Verdict(
        checks=checks,
        compared=compared,
        drift=moved,
        flips=flips(plan, scored, moved),
        flaky=flaky(scored, plan.config.runner.repeats),
        tested=tests,
        warnings=_stage_warnings(plan, runs),
    )


def _stage_warnings(plan: Plan, runs: int) -> list[str]:
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


def runs_per_case(scored: Scored) -> int:
    """How many runs of each case the per-case scores are the mean of."""
    return max((r.repeat + 1 for r in scored.records), default=1)


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
    plan: Plan, scored: Scored, moved: Drift | None, runs: int = 1
) -> dict[Key, Paired]:
    """Paired comparisons with the baseline: every overall metric, and every slice rule.

    A run of one run per case against a baseline of more compares percentiles with the
    baseline's first runs (``FIRST_RUN`` columns): one run against one run, like with like."""
    if plan.baseline is None or moved is None:
        return {}
    before = {i: entry.scores for i, entry in plan.baseline.cases.items()}
    if runs == 1 and plan.baseline.repeats > 1:
        before = {
            i: scores
            | {k.removesuffix(FIRST_RUN): v for k, v in scores.items() if k.endswith(FIRST_RUN)}
            for i, scores in before.items()
        }
    settings = plan.config.comparison
    shared = [i for i in moved.shared if i not in plan.quarantined]
    wanted: list[tuple[str | None, str, list[str]]] = [
        (None, name, shared) for name in scored.names
    ]
    tags = {case.id: case.tags for case in plan.cases}
    for slice_name, rules in plan.thresholds.slices.items():
        ids = [i for i in shared if slice_name in tags[i]]
        wanted += [(slice_name, name, ids) for name in rules]
    out: dict[Key, Paired] = {}
    for tag, name, ids in wanted:
        spec = parse_metric(name).spec
        found = paired(
            (name, *spec.depends_on),
            spec.statistic,
            before,
            scored.per_case,
            ids,
            settings,
            parse_metric(name).higher_is_better,
        )
        if found is not None:
            out[(tag, name)] = found
    return out


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
    position = {case_id: i for i, case_id in enumerate(shared)}
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
                    rows=np.array([position[i] for i in found.ids], dtype=np.intp),
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
    out = []
    for tag, ids in groups:
        failing: dict[str, list[str]] = {}
        for record in scored.records:
            success = scored.per_case.get(record.case_id, {}).get(SUCCESS)
            if record.case_id not in ids or (success is not None and case_passed(success)):
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
    if plan.baseline is None or moved is None:
        return {"regressed": [], "fixed": []}
    regressed, fixed = [], []
    for case_id in moved.shared:
        before = plan.baseline.cases[case_id].scores.get(SUCCESS)
        now = scored.per_case[case_id].get(SUCCESS)
        if before is None or now is None:
            continue
        if case_passed(before) and not case_passed(now):
            regressed.append((now, case_id))
        elif case_passed(now) and not case_passed(before):
            fixed.append((-now, case_id))
    modes = _modes_by_case(scored.records)
    regressed.sort(key=lambda item: (item[0], -len(modes.get(item[1], ()))))
    return {"regressed": [i for _, i in regressed], "fixed": [i for _, i in sorted(fixed)]}


def _modes_by_case(records: list[Record]) -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    for record in records:
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
