"""The verdict: every declared rule against this run and the baseline, as one frozen value.

Pure: the plan (what was declared) and the scored run in, the verdict out. Nothing here reads a
file, the environment or the clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gate.decide.compare import CheckResult, Paired, apply_rule, detectability, paired
from gate.decide.drift import Drift, drift
from gate.load.config import Rule
from gate.metrics import parse_metric
from gate.metrics.scoring import SUCCESS, Scored, case_passed, run_passed
from gate.plan import Plan
from gate.run.records import Record

Key = tuple[str | None, str]
"""(slice or None for overall, metric name)."""


@dataclass(frozen=True, kw_only=True)
class Verdict:
    """What the gate decided, and everything a reader needs to see why."""

    checks: list[CheckResult]
    compared: dict[Key, Paired] = field(default_factory=dict)
    drift: Drift | None = None
    flips: dict[str, list[str]] = field(default_factory=lambda: {"regressed": [], "fixed": []})
    flaky: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def name(self) -> str:
        return "pass" if self.passed else "fail"


def decide(plan: Plan, scored: Scored) -> Verdict:
    """Thresholds, regressions against the baseline, must-pass cases, flips and flaky cases."""
    moved = drift(plan.cases, plan.baseline) if plan.baseline is not None else None
    compared = comparisons(plan, scored, moved)
    checks = check(plan, scored, compared)
    warnings = [
        warning
        for c in checks
        if (found := compared.get((c.slice, c.metric))) and (warning := detectability(c, found))
    ]
    return Verdict(
        checks=checks,
        compared=compared,
        drift=moved,
        flips=flips(plan, scored, moved),
        flaky=flaky(scored, plan.config.runner.repeats),
        warnings=warnings,
    )


def comparisons(plan: Plan, scored: Scored, moved: Drift | None) -> dict[Key, Paired]:
    """Paired comparisons with the baseline: every overall metric, and every slice rule."""
    if plan.baseline is None or moved is None:
        return {}
    before = {i: entry.scores for i, entry in plan.baseline.cases.items()}
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
            (name, *spec.depends_on), spec.statistic, before, scored.per_case, ids, settings
        )
        if found is not None:
            out[(tag, name)] = found
    return out


def check(plan: Plan, scored: Scored, compared: dict[Key, Paired]) -> list[CheckResult]:
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
            )
    return out + must_pass(plan, scored)


def must_pass(plan: Plan, scored: Scored) -> list[CheckResult]:
    """One check per must_pass tag (and one for the listed ids): every run of every case
    passes, whatever the statistics say."""
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
            if record.case_id in ids and not run_passed(record):
                failing.setdefault(record.case_id, []).extend(record.failure_modes)
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
