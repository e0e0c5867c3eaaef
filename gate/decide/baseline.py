"""The next baseline: this run's metrics and per-case scores, to compare later changes with."""

from __future__ import annotations

from gate import __version__
from gate.load.baseline import SCHEMA_VERSION, Baseline, CaseEntry
from gate.load.dataset import fingerprint
from gate.metrics.scoring import Scored
from gate.plan import Plan


def new_baseline(plan: Plan, scored: Scored, *, created_at: str, git_sha: str | None) -> Baseline:
    """The baseline of this run; ``created_at`` and ``git_sha`` come from the caller's world."""
    fingerprints = {case.id: case.fingerprint() for case in plan.cases}
    return Baseline(
        schema_version=SCHEMA_VERSION,
        gate_version=__version__,
        created_at=created_at,
        git_sha=git_sha,
        dataset_fingerprint=fingerprint(plan.cases),
        pipeline_fingerprint=plan.fingerprint,
        prompt=plan.prompt,
        metrics={name: value for name, (value, _) in scored.overall.items()},
        slices={
            tag: {name: value for name, (value, _) in values.items()}
            for tag, values in scored.slices.items()
        },
        cases={
            case_id: CaseEntry(fingerprint=fingerprints[case_id], scores=scores)
            for case_id, scores in scored.per_case.items()
        },
    )
