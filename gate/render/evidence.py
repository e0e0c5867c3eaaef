"""The evidence pack of a run: ``evidence.json`` and a self-contained ``evidence.md`` that a
release can carry as one attachment (what ran, on what data, against which bars, with which
result, who reviewed it), with the launch timeline as a status bar.

Pure: the plan, the finished report, its records and the review coverage in, values out. The
caller scrubs the result (``gate.scrub``) before it is written.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from gate.decide.review import Coverage
from gate.judge import rubric_versions
from gate.load.config import OpenAIPipeline
from gate.plan import Plan
from gate.render.markdown import escape
from gate.render.report import shown
from gate.run.adapters.openai import pipeline_prompt

MARK = {"pass": "✅", "fail": "❌", "skipped": "➖", "inconclusive": "⚠️"}


def _sha256(path: Path) -> str | None:
    try:
        return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _pipeline(plan: Plan, records: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    spec = plan.config.pipeline
    outputs: list[Mapping[str, Any]] = [
        output for r in records if isinstance(output := r.get("output"), dict)
    ]
    observed = {
        key: dict(Counter(str(o[key]) for o in outputs if o.get(key) is not None))
        for key in ("model", "prompt_version")
    }
    out: dict[str, Any] = {
        "adapter": spec.adapter,
        "fingerprint": plan.fingerprint,
        "observed_in_outputs": observed,
        "prompt": None,
        "model": None,
        "parameters": {},
    }
    if isinstance(spec, OpenAIPipeline):
        prompt, models = pipeline_prompt(spec, plan.config)
        settings = prompt.settings
        out["prompt"] = {"file": shown(prompt.path), **prompt.identity()}
        out["model"] = models[0]
        out["fallback_models"] = models[1:]
        out["parameters"] = settings.model_dump(
            mode="json", include={"temperature", "top_p", "max_tokens", "seed"}, exclude_none=True
        )
    return out


def _dataset(plan: Plan, report: Mapping[str, Any]) -> dict[str, Any]:
    tags = Counter(tag for case in plan.cases for tag in case.tags)
    dataset = report.get("dataset", {})
    return {
        "path": shown(plan.config.resolve(plan.config.dataset)),
        "fingerprint": dataset.get("fingerprint"),
        "cases": len(plan.cases),
        "by_slice": dict(sorted(tags.items())),
    }


def _thresholds(plan: Plan) -> dict[str, Any]:
    config = plan.config
    path = config.resolve(config.thresholds) if config.thresholds else None
    return {
        "path": shown(path) if path else None,
        "sha256": _sha256(path) if path else None,
        "declared": plan.thresholds.model_dump(mode="json", exclude_none=True),
    }


def timeline(
    report: Mapping[str, Any], plan: Plan, coverage: Coverage | None
) -> list[dict[str, str]]:
    """The launch's gates in order, each ``pass``, ``fail``, ``skipped`` or ``inconclusive``,
    with what it rests on."""
    run = report.get("run", {})
    checks = report.get("checks", [])
    expected = len(plan.cases) * plan.config.runner.repeats
    failed_runs = (run.get("errors") or 0) + (run.get("timeouts") or 0)
    regressions = [c for c in checks if c.get("kind") == "regression"]
    declared = bool(plan.thresholds.names() or plan.thresholds.must_pass.tags)
    steps = [
        ("dataset valid", "pass", f"{len(plan.cases)} cases, fingerprint checked"),
        (
            "bars declared",
            "pass" if declared else "fail",
            f"{len(plan.thresholds.names())} metrics with rules" if declared else "no thresholds",
        ),
        (
            "run complete",
            "pass" if run.get("records") == expected and not failed_runs else "fail",
            f"{run.get('records')} of {expected} runs, {failed_runs} errors or timeouts",
        ),
        (
            "statistics",
            _status(regressions) if regressions else "skipped",
            f"{len(regressions)} comparisons with the baseline"
            if regressions
            else "no baseline comparison",
        ),
        (
            "reviews",
            "skipped"
            if coverage is None
            else "pass"
            if all(c.passed for c in coverage.checks())
            else "fail",
            "; ".join(s.line() for s in coverage.slices) if coverage else "no review required",
        ),
        ("verdict", str(report.get("verdict")), str(report.get("summary", ""))),
    ]
    return [{"step": step, "status": status, "detail": detail} for step, status, detail in steps]


def _status(checks: list[Mapping[str, Any]]) -> str:
    statuses = {c.get("status") for c in checks}
    return (
        "fail" if "fail" in statuses else "inconclusive" if "inconclusive" in statuses else "pass"
    )


def build_evidence(
    plan: Plan,
    report: Mapping[str, Any],
    records: Sequence[Mapping[str, Any]],
    coverage: Coverage | None,
    urls: Mapping[str, str],
    audit: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The evidence.json document: every item a reviewer or an auditor asks for. ``audit`` is
    the baseline's regression log (who blessed it, when, why, with which deltas)."""
    judge = plan.config.metrics.judge
    return {
        "verdict": report.get("verdict"),
        "summary": report.get("summary"),
        "timeline": timeline(report, plan, coverage),
        "pipeline": _pipeline(plan, records),
        "dataset": _dataset(plan, report),
        "thresholds": _thresholds(plan),
        "rubrics": rubric_versions(judge) if judge else {},
        "metrics": report.get("metrics", {}),
        "slices": report.get("slices", {}),
        "checks": [
            {k: c.get(k) for k in ("metric", "slice", "rule", "limit", "value", "status", "reason")}
            for c in report.get("checks", [])
        ],
        "review": coverage.to_json() if coverage else None,
        "baseline": report.get("baseline"),
        "baseline_audit": [dict(entry) for entry in audit],
        "run": {**report.get("run", {}), "gate_version": report.get("gate_version")},
        "urls": dict(urls),
    }


def status_bar(steps: list[Mapping[str, str]]) -> str:
    return " → ".join(f"{MARK.get(s['status'], '⚠️')} {escape(s['step'])}" for s in steps)


def render_evidence_markdown(evidence: Mapping[str, Any]) -> str:
    """evidence.md: the whole pack in one file, every value from the run escaped."""
    e = escape
    pipeline, dataset = evidence["pipeline"], evidence["dataset"]
    lines = [
        f"# Evidence pack: {e(evidence['verdict'])}",
        "",
        status_bar(evidence["timeline"]),
        "",
        e(evidence["summary"], 1000),
        "",
        "## Launch timeline",
        "",
        "| step | status | detail |",
        "| --- | --- | --- |",
        *(
            f"| {e(s['step'])} | {MARK.get(s['status'], '⚠️')} {e(s['status'])} | "
            f"{e(s['detail'], 500)} |"
            for s in evidence["timeline"]
        ),
        "",
        "## Pipeline",
        "",
        f"- adapter: {e(pipeline['adapter'])}; fingerprint {e(pipeline['fingerprint'])}",
    ]
    prompt = pipeline.get("prompt")
    if prompt:
        lines.append(
            f"- prompt: {e(prompt.get('file'))}, version {e(prompt.get('version'))}, "
            f"{e(prompt.get('sha256'))}"
        )
    else:
        lines.append("- prompt: no prompt file (the pipeline owns its prompt)")
    lines.append(f"- model: {e(pipeline.get('model') or 'set by the pipeline')}")
    params = pipeline.get("parameters") or {}
    lines.append(
        "- parameters: "
        + (", ".join(f"{e(k)}={e(v)}" for k, v in params.items()) or "none declared")
    )
    for key, counts in pipeline.get("observed_in_outputs", {}).items():
        if counts:
            seen = ", ".join(f"{e(v)} ({n})" for v, n in counts.items())
            lines.append(f"- {e(key)} seen in outputs: {seen}")
    lines += [
        "",
        "## Dataset",
        "",
        f"- {e(dataset['path'])}: {dataset['cases']} cases, {e(dataset['fingerprint'])}",
        "- by slice: "
        + (", ".join(f"{e(t)} {n}" for t, n in dataset["by_slice"].items()) or "no tags"),
        "",
        "## Bars as declared",
        "",
    ]
    thresholds = evidence["thresholds"]
    lines.append(f"- file: {e(thresholds['path'])} ({e(thresholds['sha256'])})")
    declared = thresholds["declared"]
    for name, rule in declared.get("metrics", {}).items():
        lines.append(f"- {e(name)}: {e(_rule_text(rule))}")
    for tag, rules in declared.get("slices", {}).items():
        for name, rule in rules.items():
            lines.append(f"- [{e(tag)}] {e(name)}: {e(_rule_text(rule))}")
    for key in ("must_pass", "review"):
        if declared.get(key):
            lines.append(f"- {key}: {e(_rule_text(declared[key]))}")
    rubrics = evidence["rubrics"]
    lines.append(
        "- rubrics: "
        + (", ".join(f"{e(k)} {e(v)}" for k, v in rubrics.items()) or "none (no judged metric)")
    )
    lines += ["", "## Metrics", "", "| metric | baseline | current | delta | status |"]
    lines.append("| --- | --- | --- | --- | --- |")
    rows = [(None, n, m) for n, m in evidence["metrics"].items()]
    rows += [(t, n, m) for t, ms in evidence["slices"].items() for n, m in ms.items()]
    for tag, name, metric in rows:
        label = f"[{e(tag)}] {e(name)}" if tag else e(name)
        cells = (_num(metric.get(k)) for k in ("baseline", "value", "delta"))
        lines.append(f"| {label} | {' | '.join(cells)} | {e(metric.get('status'))} |")
    lines += ["", "## Checks", ""]
    lines += [
        f"- {MARK.get(str(c['status']), '⚠️')} {e(c['metric'])}{_in_slice(c['slice'])} "
        f"{e(c['rule'])}: {e(c['reason'], 500)}"
        for c in evidence["checks"]
    ] or ["- no checks declared"]
    lines += ["", "## Review coverage", ""]
    review = evidence["review"]
    if review is None:
        lines.append("- no slice requires review")
    else:
        for tag, found in review["slices"].items():
            lines.append(f"- {e(tag)}: {found['reviewed']} of {found['total']} outputs reviewed")
            lines += [f"  - {e(m['id'])}: {e(m['reason'])}" for m in found["missing"]]
    baseline = evidence["baseline"] or {}
    lines += [
        "",
        "## Baseline",
        "",
        f"- {e(baseline.get('path') or 'none')}: {e(baseline.get('status'))}, created "
        f"{e(baseline.get('created_at') or 'n/a')} at commit {e(baseline.get('git_sha') or 'n/a')}",
        "",
        "## Baseline audit trail",
        "",
    ]
    audit = evidence.get("baseline_audit") or []
    lines += [
        f"- {e(entry.get('at'))}: {e(entry.get('actor'))}: {e(entry.get('reason'))} "
        f"(run {e((entry.get('run') or {}).get('commit') or 'n/a')})"
        for entry in audit
    ] or ["- no blessing logged (the baseline was written by `--update-baseline`)"]
    lines += [
        "",
        "## Run",
        "",
    ]
    run = evidence["run"]
    lines += [f"- {e(k)}: {e(v)}" for k, v in run.items()]
    lines += [f"- {e(k)}: {e(v)}" for k, v in evidence["urls"].items()]
    return "\n".join([*lines, ""])


def _in_slice(tag: Any) -> str:
    return f" [{escape(tag)}]" if tag else ""


def _rule_text(rule: Any) -> str:
    if isinstance(rule, Mapping):
        return ", ".join(f"{k} {_rule_text(v)}" for k, v in rule.items())
    if isinstance(rule, list):
        return "[" + ", ".join(map(str, rule)) + "]"
    return str(rule)


def _num(value: Any) -> str:
    return "n/a" if value is None else f"{value:.4g}" if isinstance(value, float) else escape(value)
