"""``gate bless``: make a finished run the baseline, on the record.

The baseline is rebuilt from the run's ``records.jsonl`` (re-scored as ``gate run`` scores it),
and one entry is appended to the regression log next to it: who, when, why, the run, and the
deltas accepted against the baseline it replaces. A run that failed closed (an absolute bar or a
must-pass case missed) is never blessed: only regressions against the old baseline can be
accepted this way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gate.decide.baseline import new_baseline
from gate.errors import ConfigError, GateError
from gate.load.baseline import write_baseline
from gate.load.blessings import append_blessing, log_path
from gate.metrics.scoring import score_records
from gate.plan import Plan
from gate.run.records import read_records


@dataclass(frozen=True, kw_only=True)
class Blessing:
    """Who blesses which run, and why; ``actor`` and ``at`` come from the caller's world."""

    reason: str
    actor: str
    at: str
    run_url: str | None = None


def refusal(report: Mapping[str, Any]) -> str | None:
    """Why the run may not become the baseline, or None: a failing check that is not a
    regression (an absolute bar, a must-pass case, the error budget) means it failed closed."""
    checks = report.get("checks")
    closed = [
        c
        for c in (checks if isinstance(checks, list) else [])
        if isinstance(c, dict) and c.get("status") == "fail" and c.get("kind") != "regression"
    ]
    if not closed:
        return None
    shown = "; ".join(
        f"{c.get('metric')}{' [' + str(c['slice']) + ']' if c.get('slice') else ''}: "
        f"{c.get('reason')}"
        for c in closed[:3]
    )
    return (
        f"the run failed closed ({len(closed)} failing bar(s): {shown}); fix the run and bless "
        "a passing one (only regressions against the old baseline can be accepted)"
    )


def bless(plan: Plan, report: Mapping[str, Any], records: Path, who: Blessing) -> dict[str, Any]:
    """Write the baseline from the run and append to the regression log; returns the log entry.

    Raises GateError when there is no reason, no baseline path, or the run was made on another
    golden set or pipeline than the one configured now. The caller checks ``refusal`` first.
    """
    if not who.reason.strip():
        raise GateError(
            'gate bless: a reason is required (fix: gate bless --reason "why these deltas are '
            'accepted")'
        )
    if plan.baseline_path is None:
        raise ConfigError(
            "gate bless: no baseline path (fix: set `baseline:` in gate.yml or pass --baseline)"
        )
    dataset, pipeline = report.get("dataset") or {}, report.get("pipeline") or {}
    if dataset.get("fingerprint") != plan.dataset_fingerprint:
        raise GateError(
            f"{records.parent}: the run used another golden set than {plan.config.dataset} now "
            "holds (fix: run the gate again, then bless that run)"
        )
    if pipeline.get("fingerprint") != plan.fingerprint:
        raise GateError(
            f"{records.parent}: the run used another pipeline or metrics config than "
            f"{plan.config.path} now holds (fix: run the gate again, then bless that run)"
        )
    scored = score_records(plan.cases, read_records(records), list(plan.names))
    run = report.get("run") or {}
    commit = run.get("git_sha") if isinstance(run.get("git_sha"), str) else None
    baseline = new_baseline(plan, scored, created_at=who.at, git_sha=commit)
    before = plan.baseline.metrics if plan.baseline else {}
    deltas = {
        name: {
            "before": before.get(name),
            "after": value,
            "delta": None
            if value is None or before.get(name) is None
            else round(value - before[name], 6),  # type: ignore[operator]
        }
        for name, value in sorted(baseline.metrics.items())
        if before.get(name) != value
    }
    entry = {
        "actor": who.actor,
        "at": who.at,
        "reason": who.reason.strip(),
        "run": {
            "commit": commit,
            "url": who.run_url,
            "started_at": run.get("started_at"),
            "verdict": report.get("verdict"),
        },
        "replaced": {
            "created_at": plan.baseline.created_at,
            "git_sha": plan.baseline.git_sha,
        }
        if plan.baseline
        else None,
        "gate_version": baseline.gate_version,
        "dataset_fingerprint": baseline.dataset_fingerprint,
        "pipeline_fingerprint": baseline.pipeline_fingerprint,
        "deltas": deltas,
    }
    write_baseline(plan.baseline_path, baseline)
    append_blessing(log_path(plan.baseline_path), entry)
    return entry
