"""One gate run, end to end: golden set → pipeline → records → metrics → verdict → report.

``run`` receives its collaborators (the adapter) so tests pass fakes; only this module and the
CLI touch the disk and the clock.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO, get_args

import numpy as np

from gate import __version__, metrics
from gate.decide.compare import CheckResult, Paired, apply_rule, detectability, paired
from gate.errors import ConfigError
from gate.judge import Judge, rubric_versions
from gate.load.baseline import Baseline, CaseEntry, read_baseline, write_baseline
from gate.load.config import (
    Config,
    JudgedMetric,
    OpenAIPipeline,
    Rule,
    Thresholds,
    cutoffs,
    load_config,
    load_thresholds,
)
from gate.load.dataset import Case, fingerprint, load_dataset
from gate.metrics import failures
from gate.render.markdown import render_summary
from gate.render.report import build_report
from gate.run.adapters import Adapter, make_adapter
from gate.run.adapters.openai import pipeline_prompt
from gate.run.records import Record, RecordWriter, write_atomic, write_records
from gate.run.runner import Progress, run_cases


@dataclass(frozen=True)
class RunOptions:
    config: Path = Path("gate.yml")
    out_dir: Path = Path("gate-report")
    baseline: Path | None = None
    """Overrides the config's ``baseline:``."""
    update_baseline: bool = False
    progress: TextIO | None = sys.stderr


@dataclass(frozen=True)
class Plan:
    """Everything a run needs, loaded and validated before the first case runs."""

    config: Config
    cases: list[Case]
    thresholds: Thresholds
    baseline_path: Path | None
    baseline: Baseline | None
    prompt: dict[str, str] | None = None
    """The pipeline prompt's version and sha256, when the pipeline has a prompt file."""
    fingerprint: str = ""
    """Of the pipeline as configured (see ``pipeline_fingerprint``)."""


@dataclass(frozen=True)
class Outcome:
    exit_code: int
    report: dict[str, Any]
    report_path: Path
    markdown_path: Path


def prepare(config_path: Path, baseline_override: Path | None = None) -> Plan:
    """Load and cross-check config, dataset, thresholds and baseline (``gate validate``)."""
    config = load_config(config_path)
    cases = load_dataset(config.resolve(config.dataset))
    thresholds = (
        load_thresholds(config.resolve(config.thresholds)) if config.thresholds else Thresholds()
    )
    tags = {tag for case in cases for tag in case.tags}
    unknown = sorted(set(thresholds.slices) - tags)
    if unknown:
        raise ConfigError(
            f"{config.thresholds}: slices: no case is tagged {', '.join(map(repr, unknown))}; "
            f"tags in the golden set: {', '.join(sorted(tags)) or 'none'} (fix: check the spelling)"
        )
    must = thresholds.must_pass
    missing_tags = sorted(set(must.tags) - tags)
    missing_ids = sorted(set(must.cases) - {case.id for case in cases})
    if missing_tags or missing_ids:
        what = [f"no case is tagged {t!r}" for t in missing_tags]
        what += [f"no case has id {i!r}" for i in missing_ids]
        raise ConfigError(
            f"{config.thresholds}: must_pass: {'; '.join(what)} (fix: check the spelling)"
        )
    baseline_path = baseline_override or (
        config.resolve(config.baseline) if config.baseline else None
    )
    baseline = read_baseline(baseline_path) if baseline_path else None
    prompt = prompt_identity(config)  # a bad prompt file stops the run before the first case
    judged = set(config.metrics.judge.metrics) if config.metrics.judge else set()
    unjudged = sorted(set(get_args(JudgedMetric)) & thresholds.names() - judged)
    if unjudged:
        raise ConfigError(
            f"{config.thresholds}: {', '.join(unjudged)}: a judged metric needs the judge to run "
            "it (fix: add it to `metrics.judge` in gate.yml, see docs/openai.md)"
        )
    return Plan(
        config,
        cases,
        thresholds,
        baseline_path,
        baseline,
        prompt,
        pipeline_fingerprint(config, prompt),
    )


def prompt_identity(config: Config) -> dict[str, str] | None:
    if not isinstance(config.pipeline, OpenAIPipeline):
        return None
    return pipeline_prompt(config.pipeline, config)[0].identity()


def pipeline_fingerprint(config: Config, prompt: dict[str, str] | None) -> str:
    body = config.model_dump(mode="json", include={"pipeline", "metrics"})
    # Files the config points to change what is measured as much as the config does.
    if prompt is not None:
        body["prompt"] = prompt
    if config.metrics.judge is not None:
        body["rubrics"] = rubric_versions(config.metrics.judge)
    return "sha256:" + hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def git_sha(folder: Path) -> str | None:
    if os.environ.get("GITHUB_SHA"):
        return os.environ["GITHUB_SHA"]
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


@dataclass(frozen=True)
class Scored:
    """Metric values overall, per slice, and per case (the mean over repeats)."""

    names: list[str]
    overall: dict[str, tuple[float | None, int]]
    slices: dict[str, dict[str, tuple[float | None, int]]]
    per_case: dict[str, dict[str, float]]
    records: list[Record]


def score_records(plan: Plan, records: list[Record]) -> Scored:
    by_id = {case.id: case for case in plan.cases}
    batch = metrics.Batch([by_id[r.case_id] for r in records], records)
    names = metrics.metric_names(cutoffs(plan.config, plan.thresholds))
    rows = metrics.score(batch, names)
    modes = failures.modes(batch)
    scored_records = [
        replace(
            record,
            scores={n: round(float(rows[n][i]), 6) for n in names if not np.isnan(rows[n][i])},
            failure_modes=modes[i],
        )
        for i, record in enumerate(records)
    ]
    overall = {name: metrics.aggregate(name, rows) for name in names}
    tags = sorted({tag for case in plan.cases for tag in case.tags})
    slices = {}
    for tag in tags:
        mask = np.array([tag in case.tags for case in batch.cases])
        slices[tag] = {name: metrics.aggregate(name, rows, mask) for name in names}
    # Each case's mean over its repeats, for every metric at once: sums and counts per case.
    position = {case.id: i for i, case in enumerate(plan.cases)}
    index = np.array([position[r.case_id] for r in records], dtype=np.intp)
    per_case: dict[str, dict[str, float]] = {case.id: {} for case in plan.cases}
    for name in names:
        values = rows[name]
        measured = ~np.isnan(values)
        size = len(plan.cases)
        counts = np.bincount(index[measured], minlength=size)
        sums = np.bincount(index[measured], weights=values[measured], minlength=size)
        for i in np.flatnonzero(counts):
            per_case[plan.cases[i].id][name] = round(float(sums[i] / counts[i]), 6)
    return Scored(names, overall, slices, per_case, scored_records)


@dataclass(frozen=True)
class Drift:
    """How the golden set moved since the baseline."""

    added: list[str]
    removed: list[str]
    changed: list[str]
    """Same id, different content: left out of the paired comparison."""
    shared: list[str]
    """Unchanged cases in both: the ones comparisons are paired on."""

    def to_json(self) -> dict[str, Any]:
        return {
            "added": self.added,
            "removed": self.removed,
            "changed": self.changed,
            "shared": len(self.shared),
        }


def drift(plan: Plan) -> Drift | None:
    if plan.baseline is None:
        return None
    before = plan.baseline.cases
    now = {case.id: case.fingerprint() for case in plan.cases}
    return Drift(
        added=[i for i in now if i not in before],
        removed=[i for i in before if i not in now],
        changed=[i for i in now if i in before and before[i].fingerprint != now[i]],
        shared=[i for i in now if i in before and before[i].fingerprint == now[i]],
    )


Key = tuple[str | None, str]
"""(slice or None for overall, metric name)."""


def comparisons(plan: Plan, scored: Scored, moved: Drift | None) -> dict[Key, Paired]:
    """Paired comparisons with the baseline: every overall metric, and every slice rule."""
    if plan.baseline is None or moved is None:
        return {}
    before = {i: entry.scores for i, entry in plan.baseline.cases.items()}
    settings = plan.config.comparison
    wanted: list[tuple[str | None, str, list[str]]] = [
        (None, name, moved.shared) for name in scored.names
    ]
    tags = {case.id: case.tags for case in plan.cases}
    for slice_name, rules in plan.thresholds.slices.items():
        ids = [i for i in moved.shared if slice_name in tags[i]]
        wanted += [(slice_name, name, ids) for name in rules]
    out: dict[Key, Paired] = {}
    for tag, name, ids in wanted:
        spec, _ = metrics.parse_metric(name)
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
            spec, _ = metrics.parse_metric(name)
            out += apply_rule(
                name,
                rule,
                values[name][0],
                stored.get(name),
                spec.higher_is_better,
                slice_name,
                compared.get((slice_name, name)),
                settings,
            )
    return out + must_pass(plan, scored)


def _passed(record: Record) -> bool:
    return record.scores.get("agent.task_success") == 1.0


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
            if record.case_id in ids and not _passed(record):
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
        passing = (len(ids) - len(failing)) / len(ids) if ids else None
        out.append(
            CheckResult(
                "agent.task_success",
                tag,
                "absolute",
                "must_pass",
                1.0,
                passing,
                None,
                not failing,
                reason,
            )
        )
    return out


def flips(plan: Plan, scored: Scored, moved: Drift | None) -> dict[str, list[str]]:
    """Shared cases that passed in the baseline and fail now (regressed), and the reverse.

    A case passes when it succeeded in most of its repeats (``agent.task_success`` ≥ 0.5).
    Regressed cases come worst first: lowest success now, then most failure modes.
    """
    if plan.baseline is None or moved is None:
        return {"regressed": [], "fixed": []}
    success = "agent.task_success"
    regressed, fixed = [], []
    for case_id in moved.shared:
        before = plan.baseline.cases[case_id].scores.get(success)
        now = scored.per_case[case_id].get(success)
        if before is None or now is None:
            continue
        if before >= 0.5 > now:
            regressed.append((now, case_id))
        elif now >= 0.5 > before:
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
        outcomes.setdefault(record.case_id, set()).add(_passed(record))
    return [case_id for case_id, seen in outcomes.items() if len(seen) > 1]


def new_baseline(plan: Plan, scored: Scored) -> Baseline:
    fingerprints = {case.id: case.fingerprint() for case in plan.cases}
    return Baseline(
        schema_version=1,
        gate_version=__version__,
        created_at=datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        git_sha=git_sha(plan.config.root),
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


def run(options: RunOptions, adapter: Adapter | None = None) -> Outcome:
    """Run the gate; exit code 0 when every check passes, 1 when one fails."""
    plan = prepare(options.config, options.baseline)
    if options.update_baseline and plan.baseline_path is None:
        raise ConfigError(
            "--update-baseline: no baseline path (fix: set `baseline:` in gate.yml or "
            "pass --baseline FILE)"
        )
    out = options.out_dir
    out.mkdir(parents=True, exist_ok=True)
    started_at = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    begin = time.monotonic()
    judging = plan.config.metrics.judge
    # Made first, so a missing judge key stops the run before the pipeline spends anything.
    judge = Judge(judging, plan.config.root, os.environ) if judging else None
    adapter = adapter or make_adapter(plan.config, os.environ)
    settings = plan.config.runner
    total = len(plan.cases) * settings.repeats
    if options.progress:
        print(
            f"gate: running {len(plan.cases)} cases x {settings.repeats} through the "
            f"{plan.config.pipeline.adapter} adapter, concurrency {settings.concurrency}",
            file=options.progress,
            flush=True,
        )
    writer = RecordWriter(out / "records.jsonl")
    try:
        records = run_cases(
            plan.cases,
            adapter,
            settings,
            writer.write,
            Progress(total, options.progress),
            now=lambda: datetime.now(UTC),
        )
    finally:
        writer.close()
        adapter.close()
    duration = time.monotonic() - begin
    judge_stats = None
    if judge is not None:
        if options.progress:
            print(f"gate: judging {len(records)} runs", file=options.progress, flush=True)
        try:
            records, judge_stats = judge.judge(plan.cases, records)
        finally:
            judge.close()

    scored = score_records(plan, records)
    write_records(out / "records.jsonl", scored.records)
    moved = drift(plan)
    compared = comparisons(plan, scored, moved)
    checks = check(plan, scored, compared)
    warnings = [
        warning
        for c in checks
        if (found := compared.get((c.slice, c.metric))) and (warning := detectability(c, found))
    ]
    baseline_status = "found" if plan.baseline else "missing"
    if options.update_baseline and plan.baseline_path is not None:
        write_baseline(plan.baseline_path, new_baseline(plan, scored))
        baseline_status = "updated"

    report = build_report(
        plan=plan,
        scored=scored,
        checks=checks,
        run_info={
            "started_at": started_at,
            "duration_s": round(duration, 3),
            "records": len(records),
            "errors": sum(r.status == "error" for r in records),
            "timeouts": sum(r.status == "timeout" for r in records),
            "repeats": settings.repeats,
            "concurrency": settings.concurrency,
        },
        baseline_status=baseline_status,
        compared=compared,
        drift=moved.to_json() if moved else None,
        flips=flips(plan, scored, moved),
        flaky=flaky(scored, settings.repeats),
        warnings=warnings,
    )
    if judge_stats is not None:
        report["judge"] = judge_stats.to_json()  # its cost apart from the pipeline's
    if plan.prompt is not None and isinstance(pipeline := plan.config.pipeline, OpenAIPipeline):
        before = plan.baseline.prompt if plan.baseline else None
        report["pipeline"]["prompt"] = {
            "file": str(pipeline.prompt),
            **plan.prompt,
            "baseline": before,
        }
    report_path = out / "report.json"
    markdown_path = out / "report.md"
    write_atomic(report_path, json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    write_atomic(markdown_path, render_summary(report, None))
    return Outcome(0 if report["verdict"] == "pass" else 1, report, report_path, markdown_path)
