"""The report: ``report.json`` (the machine's view) built from the run's values.

Pure: values in, a JSON-ready dict out. The Markdown views of it (report.md, the step summary,
the PR comment) are rendered by ``gate.render.markdown``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from gate import __version__, metrics
from gate.decide.compare import CheckResult, Paired, status
from gate.load.dataset import Case, fingerprint
from gate.run.records import Record

if TYPE_CHECKING:
    from gate.pipeline import Plan, Scored

SCHEMA_VERSION = 1
EXCERPT = 300
"""Characters of a case's input or answer kept in the report; records.jsonl has all of it."""


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def shown(path: Path) -> str:
    """A path as a reader of the report knows it: relative to the working directory (the
    repository, in a workflow) when it lies below it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def excerpt(value: Any, limit: int = EXCERPT) -> str:
    text = value if isinstance(value, str) else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _metric_entry(
    name: str,
    value: float | None,
    n: int,
    before: float | None,
    checks: list[CheckResult],
    rules: dict[str, float],
) -> dict[str, Any]:
    spec, _ = metrics.parse_metric(name)
    return {
        "value": _round(value),
        "n": n,
        "baseline": _round(before),
        "delta": _round(value - before) if value is not None and before is not None else None,
        "status": status(checks),
        "direction": "higher" if spec.higher_is_better else "lower",
        "rules": rules,
        "reasons": [c.reason for c in checks],
    }


def build_report(
    *,
    plan: Plan,
    scored: Scored,
    checks: list[CheckResult],
    run_info: dict[str, Any],
    baseline_status: str,
    compared: dict[tuple[str | None, str], Paired] | None = None,
    drift: dict[str, Any] | None = None,
    flips: dict[str, list[str]] | None = None,
    flaky: list[str] | None = None,
    warnings: list[str] | None = None,
) -> dict[str, Any]:
    """The report.json document (its shape is described in docs/report.md)."""
    baseline = plan.baseline
    thresholds = plan.thresholds

    def entries(
        values: dict[str, tuple[float | None, int]],
        slice_name: str | None,
        before: dict[str, float | None],
        rules: dict[str, Any],
    ) -> dict[str, Any]:
        out = {}
        for name, (value, n) in values.items():
            mine = [c for c in checks if c.metric == name and c.slice == slice_name]
            if n == 0 and name not in rules:
                continue  # nothing measured it and no rule asks for it: absent, not a made-up 0
            declared = rules[name].declared() if name in rules else {}
            out[name] = _metric_entry(name, value, n, before.get(name), mine, declared)
            comparison = (compared or {}).get((slice_name, name))
            if comparison is not None:
                out[name]["interval"] = comparison.to_json()
        return out

    slices = {
        tag: entries(
            values,
            tag,
            baseline.slices.get(tag, {}) if baseline else {},
            thresholds.slices.get(tag, {}),
        )
        for tag, values in scored.slices.items()
    }
    failing_checks = [c for c in checks if not c.passed]
    verdict = "fail" if failing_checks else "pass"
    by_id = {case.id: case for case in plan.cases}
    failing: dict[str, dict[str, Any]] = {}
    mode_counts: dict[str, int] = {}
    for record in scored.records:
        for mode in record.failure_modes:
            mode_counts[mode] = mode_counts.get(mode, 0) + 1
        failed = record.scores.get("agent.task_success") != 1.0
        if failed and record.case_id not in failing:
            failing[record.case_id] = _case_entry(by_id[record.case_id], record)
    first_record = {r.case_id: r for r in reversed(scored.records)}
    flipped = {
        direction: [_case_entry(by_id[i], first_record[i]) for i in ids]
        for direction, ids in (flips or {}).items()
    }
    return {
        "schema_version": SCHEMA_VERSION,
        "gate_version": __version__,
        "verdict": verdict,
        "summary": summary(verdict, checks, len(plan.cases), baseline_status),
        "config": shown(plan.config.path),
        "dataset": {
            "path": str(plan.config.dataset),
            "cases": len(plan.cases),
            "fingerprint": fingerprint(plan.cases),
        },
        "pipeline": {"adapter": plan.config.pipeline.adapter, "fingerprint": plan.fingerprint},
        "run": run_info,
        "baseline": {
            "path": shown(plan.baseline_path) if plan.baseline_path else None,
            "status": baseline_status,
            "created_at": baseline.created_at if baseline else None,
            "git_sha": baseline.git_sha if baseline else None,
        },
        "metrics": entries(
            scored.overall, None, baseline.metrics if baseline else {}, thresholds.metrics
        ),
        "slices": slices,
        "checks": [c.to_json() for c in sorted(checks, key=lambda c: c.passed)],
        "failure_modes": dict(sorted(mode_counts.items(), key=lambda kv: -kv[1])),
        "cases": {"total": len(plan.cases), "failing": list(failing.values())},
        "flips": flipped,
        "drift": drift,
        "flaky": {
            "rate": _round(len(flaky or []) / len(plan.cases)),
            "cases": flaky or [],
        },
        "comparison": plan.config.comparison.model_dump(),
        "warnings": warnings or [],
    }


def _case_entry(case: Case, record: Record) -> dict[str, Any]:
    return {
        "id": case.id,
        "tags": list(case.tags),
        "failure_modes": list(record.failure_modes),
        "error": record.error,
        "input": excerpt(case.input),
        "answer": excerpt(record.output.answer or ""),
    }


def summary(verdict: str, checks: list[CheckResult], cases: int, baseline_status: str) -> str:
    """One line for logs, the action's ``summary`` output and the comment's headline."""
    failed = [c for c in checks if not c.passed]
    base = "no baseline" if baseline_status == "missing" else f"baseline {baseline_status}"
    if verdict == "pass":
        return f"pass: {len(checks)} checks passed on {cases} cases ({base})"
    shown = "; ".join(
        f"{c.metric}{f' [{c.slice}]' if c.slice else ''} {c.reason}" for c in failed[:3]
    )
    more = f"; +{len(failed) - 3} more" if len(failed) > 3 else ""
    return f"fail: {len(failed)} of {len(checks)} checks failed: {shown}{more}"
