"""The next baseline: this run's metrics and per-case scores, to compare later changes with.

Only a run that cleared its absolute bars may become the bar: a baseline written while the
pipeline was down would make the next broken run look unchanged.
"""

from __future__ import annotations

from gate import __version__
from gate.decide.verdict import Verdict
from gate.load.baseline import FIRST_RUN, SCHEMA_VERSION, Baseline, CaseScores
from gate.metrics.scoring import Scored
from gate.plan import Plan


def refusal(verdict: Verdict, path: str) -> str | None:
    """Why this run must not become the baseline at ``path``, or None when it may: it went over
    the error budget, or failed an absolute bar (min / max, must_pass). Regressions against the
    old baseline do not refuse: accepting them is what updating the baseline is for."""
    failed = [c for c in verdict.checks if c.kind == "absolute" and not c.passed]
    if not failed:
        return None
    shown = "; ".join(
        f"{c.metric}{f' [{c.slice}]' if c.slice else ''} {c.reason}" for c in failed[:3]
    )
    more = f"; +{len(failed) - 3} more" if len(failed) > 3 else ""
    return (
        f"--update-baseline refused: {path} was left as it was, because this run failed "
        f"{len(failed)} absolute check{'s' if len(failed) > 1 else ''}: {shown}{more} (fix: "
        "make the pipeline pass its bars, then update the baseline)"
    )


def new_baseline(plan: Plan, scored: Scored, *, created_at: str, git_sha: str | None) -> Baseline:
    """The baseline of this run; ``created_at`` and ``git_sha`` come from the caller's world."""
    return Baseline(
        schema_version=SCHEMA_VERSION,
        gate_version=__version__,
        created_at=created_at,
        git_sha=git_sha,
        dataset_fingerprint=plan.dataset_fingerprint,
        pipeline_fingerprint=plan.fingerprint,
        prompt=plan.prompt,
        metrics={name: _round(value) for name, (value, _) in scored.overall.items()},
        slices={
            tag: {name: _round(value) for name, (value, _) in values.items()}
            for tag, values in scored.slices.items()
        },
        case_scores=CaseScores(
            ids=tuple(scored.case_ids),
            fingerprints=tuple(case.fingerprint() for case in plan.cases),
            columns=scored.case_scores
            | {f"{name}{FIRST_RUN}": column for name, column in scored.first_run.items()},
        ),
        repeats=scored.runs,
    )


def _round(value: float | None) -> float | None:
    # Six places, as the per-case scores and the report: more digits are noise in a diff.
    return None if value is None else round(value, 6)
