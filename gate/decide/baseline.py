"""The next baseline: this run's metrics and per-case scores, to compare later changes with."""

from __future__ import annotations

from gate import __version__
from gate.load.baseline import SCHEMA_VERSION, Baseline, CaseScores
from gate.load.dataset import fingerprint
from gate.metrics.scoring import Scored
from gate.plan import Plan


def new_baseline(plan: Plan, scored: Scored, *, created_at: str, git_sha: str | None) -> Baseline:
    """The baseline of this run; ``created_at`` and ``git_sha`` come from the caller's world."""
    return Baseline(
        schema_version=SCHEMA_VERSION,
        gate_version=__version__,
        created_at=created_at,
        git_sha=git_sha,
        dataset_fingerprint=fingerprint(plan.cases),
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
            columns=scored.case_scores,
        ),
    )


def _round(value: float | None) -> float | None:
    # Six places, as the per-case scores and the report: more digits are noise in a diff.
    return None if value is None else round(value, 6)
