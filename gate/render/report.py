"""The report: ``report.json`` (the machine's view) built from the run's values.

Pure: values in, a JSON-ready dict out. The Markdown views of it (report.md, the step summary,
the PR comment) are rendered by ``gate.render.markdown``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gate import __version__
from gate.decide.compare import CheckResult, status
from gate.decide.staleness import age_days, stale_reasons
from gate.decide.verdict import Verdict
from gate.load.config import OpenAIPipeline, must_pass_line, rule_line
from gate.load.dataset import Case
from gate.metrics import parse_metric
from gate.metrics.scoring import Run, Scored, run_passed
from gate.plan import Plan
from gate.scrub import DEFAULT_SCRUBBER, Scrubber

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
    return {
        "value": _round(value),
        "n": n,
        "baseline": _round(before),
        "delta": _round(value - before) if value is not None and before is not None else None,
        "status": status(checks),
        "direction": parse_metric(name).direction,
        "rules": rules,
        "reasons": [c.reason for c in checks],
    }


def build_report(
    *,
    plan: Plan,
    scored: Scored,
    verdict: Verdict,
    run_info: dict[str, Any],
    baseline_status: str,
    judge: dict[str, Any] | None = None,
    review: dict[str, Any] | None = None,
    blessing: dict[str, Any] | None = None,
    scrub: Scrubber = DEFAULT_SCRUBBER,
) -> dict[str, Any]:
    """The report.json document (its shape is described in docs/formats.md).

    ``judge`` is the judge's own usage and cost, kept apart from the pipeline's; ``blessing``
    the regression log's last entry; ``scrub`` the run's scrubber, applied to what the pipeline
    said before an excerpt of it is cut.
    """
    baseline = plan.baseline
    thresholds = plan.thresholds
    checks = verdict.checks

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
            comparison = verdict.compared.get((slice_name, name))
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
    by_id = {case.id: case for case in plan.cases}
    failing: dict[str, dict[str, Any]] = {}
    mode_counts: dict[str, int] = {}
    for record in scored.records:
        for mode in record.failure_modes:
            mode_counts[mode] = mode_counts.get(mode, 0) + 1
        if not run_passed(record) and record.case_id not in failing:
            failing[record.case_id] = _case_entry(by_id[record.case_id], record, scrub)
    first_record = {r.case_id: r for r in reversed(scored.records)}
    flipped = {
        direction: [_case_entry(by_id[i], first_record[i], scrub) for i in ids]
        for direction, ids in verdict.flips.items()
    }
    pipeline: dict[str, Any] = {
        "adapter": plan.config.pipeline.adapter,
        "fingerprint": plan.fingerprint,
    }
    if plan.prompt is not None and isinstance(plan.config.pipeline, OpenAIPipeline):
        pipeline["prompt"] = {
            "file": str(plan.config.pipeline.prompt),
            **plan.prompt,
            "baseline": baseline.prompt if baseline else None,
        }
    report: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "gate_version": __version__,
        "verdict": verdict.name,
        "summary": summary(verdict.name, checks, len(plan.cases), baseline_status),
        "config": shown(plan.config.path),
        "dataset": {
            "path": str(plan.config.dataset),
            "cases": len(plan.cases),
            "fingerprint": plan.dataset_fingerprint,
        },
        "pipeline": pipeline,
        "run": run_info,
        "baseline": {
            "path": shown(plan.baseline_path) if plan.baseline_path else None,
            "status": baseline_status,
            "created_at": baseline.created_at if baseline else None,
            "git_sha": baseline.git_sha if baseline else None,
            **_provenance(plan, run_info.get("started_at"), blessing),
        },
        "metrics": entries(
            scored.overall, None, baseline.metrics if baseline else {}, thresholds.metrics
        ),
        "slices": slices,
        "checks": [
            c.to_json() for c in sorted(checks, key=lambda c: (c.passed, not c.inconclusive))
        ],
        "failure_modes": dict(sorted(mode_counts.items(), key=lambda kv: -kv[1])),
        "cases": {"total": len(plan.cases), "failing": list(failing.values())},
        "flips": flipped,
        "drift": verdict.drift.to_json() if verdict.drift else None,
        "flaky": {
            "rate": _round(len(verdict.flaky) / len(plan.cases)),
            "cases": verdict.flaky,
        },
        "comparison": plan.config.comparison.model_dump(),
        "quarantine": {
            "count": len(plan.quarantined),
            "cases": [{"id": i, "flips": m} for i, m in sorted(plan.quarantined.items())],
        },
        "noise": _noise(plan, verdict),
        "warnings": verdict.warnings,
    }
    if judge is not None:
        report["judge"] = judge
    if review is not None:
        report["review"] = review
    cite_sources(report, plan)
    if plan.bar is not None:
        report["bar"] = plan.bar.to_json()
    return report


def _provenance(plan: Plan, now: object, blessing: dict[str, Any] | None) -> dict[str, Any]:
    """The baseline's age, why it is stale (if it is) and who blessed it last."""
    baseline = plan.baseline
    if baseline is None or not isinstance(now, str):
        return {}
    stale = stale_reasons(
        baseline,
        now=now,
        max_age_days=plan.config.comparison.baseline_max_age_days,
        gate_version=__version__,
        pipeline_fingerprint=plan.fingerprint,
        dataset_fingerprint=plan.dataset_fingerprint,
    )
    out: dict[str, Any] = {"age_days": age_days(baseline.created_at, now), "stale": stale}
    if blessing is not None:
        out["blessing"] = {key: blessing.get(key) for key in ("actor", "at", "reason")}
    return out


def cite_sources(report: dict[str, Any], plan: Plan) -> None:
    """Where each check's rule and each failing case is written, as ``"source": {"file",
    "line"}`` (paths as the reader knows them), for annotations on the line to fix."""
    config = plan.config
    if config.thresholds:
        rules = shown(config.resolve(config.thresholds))
        tags = plan.thresholds.must_pass.tags
        for check in report["checks"]:
            line = (
                must_pass_line(plan.thresholds_lines, check["slice"], tags)
                if check["rule"] == "must_pass"
                else rule_line(plan.thresholds_lines, check["metric"], check["slice"])
            )
            if line is not None:
                check["source"] = {"file": rules, "line": line}
    dataset = shown(config.resolve(config.dataset))
    for case in report["cases"]["failing"]:
        if case["id"] in plan.case_lines:
            case["source"] = {"file": dataset, "line": plan.case_lines[case["id"]]}


def _case_entry(case: Case, run: Run, scrub: Scrubber) -> dict[str, Any]:
    return {
        "id": case.id,
        "tags": list(case.tags),
        "failure_modes": list(run.failure_modes),
        "error": None if run.error is None else scrub.text(run.error),
        "input": excerpt(case.input),
        "answer": excerpt(run.answer),  # scrubbed when it was kept
    }


def summary(verdict: str, checks: list[CheckResult], cases: int, baseline_status: str) -> str:
    """One line for logs, the action's ``summary`` output and the comment's headline."""
    base = "no baseline" if baseline_status == "missing" else f"baseline {baseline_status}"
    if verdict == "pass":
        return f"pass: {len(checks)} checks passed on {cases} cases ({base})"
    if verdict == "inconclusive":
        unsure = [c for c in checks if c.inconclusive]
        return f"inconclusive: {len(unsure)} of {len(checks)} checks cannot tell: {_listed(unsure)}"
    failed = [c for c in checks if not c.passed]
    return f"fail: {len(failed)} of {len(checks)} checks failed: {_listed(failed)}"


def _listed(checks: list[CheckResult]) -> str:
    shown = "; ".join(
        f"{c.metric}{f' [{c.slice}]' if c.slice else ''} {c.reason}" for c in checks[:3]
    )
    return shown + (f"; +{len(checks) - 3} more" if len(checks) > 3 else "")


def _noise(plan: Plan, verdict: Verdict) -> dict[str, Any] | None:
    """The noise floor the nightlies measured and what the paired tests took from it: per
    regression check, the standard deviation of the change between consecutive nights and the
    run-level drift added (0: none beyond case noise)."""
    if plan.noise is None:
        return None
    checks = []
    for (slice_name, metric, rule), tested in verdict.tested.items():
        measured = plan.noise.changes.get((slice_name, metric))
        if measured is None:
            continue
        checks.append(
            {
                "metric": metric,
                "slice": slice_name,
                "rule": rule,
                "nightly_sd": _round(measured[0] ** 0.5),
                "pairs": measured[1],
                "drift_sd": _round(tested.drift),
            }
        )
    return {"nights": list(plan.noise.nights), "runs": plan.noise.runs, "checks": checks}
