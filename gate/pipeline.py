"""One gate run, end to end: plan → run the cases → judge → score → decide → render.

Only sequences the stages. What a run reads from outside the code (the environment, the clock,
the commit) arrives as a ``World`` from the CLI or the action; collaborators (the adapter) can be
passed in, so tests run it with fakes.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from gate.decide.baseline import new_baseline
from gate.decide.verdict import decide
from gate.errors import ConfigError
from gate.files import unwritable, write_atomic
from gate.history import quarantined
from gate.judge import Judge
from gate.load.baseline import write_baseline
from gate.load.blessings import last_blessing, log_path
from gate.metrics.scoring import score_records
from gate.plan import prepare
from gate.render.junit import render_junit
from gate.render.markdown import render_summary
from gate.render.report import build_report
from gate.run.adapters import Adapter, make_adapter
from gate.run.records import RecordWriter, write_records
from gate.run.runner import Progress, run_cases


def _epoch() -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, kw_only=True)
class World:
    """What a run reads from outside the code. The CLI and the action read the real one; the
    default is an empty world (no environment, the clock stopped at the epoch) for tests."""

    env: Mapping[str, str] = field(default_factory=dict)
    now: Callable[[], datetime] = _epoch
    git_sha: str | None = None


@dataclass(frozen=True)
class RunOptions:
    config: Path = Path("gate.yml")
    out_dir: Path = Path("gate-report")
    baseline: Path | None = None
    """Overrides the config's ``baseline:``."""
    update_baseline: bool = False
    progress: TextIO | None = sys.stderr
    world: World = field(default_factory=World)
    history: Sequence[Mapping[str, object]] = ()
    """The default branch's history (gate.history entries): quarantines flaky cases."""


@dataclass(frozen=True)
class Outcome:
    exit_code: int
    report: dict[str, Any]
    report_path: Path
    markdown_path: Path


def timestamp(moment: datetime) -> str:
    """UTC, to the second, with a Z: how report.json and the baseline write a time."""
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def run(options: RunOptions, adapter: Adapter | None = None) -> Outcome:
    """Run the gate; exit code 0 when every check passes, 1 when one fails."""
    world = options.world
    plan = prepare(options.config, options.baseline)
    if (rule := plan.config.history.quarantine) is not None:
        found = quarantined(options.history, rule.flips, rule.nights)
        ids = {case.id for case in plan.cases}
        plan = replace(plan, quarantined={i: m for i, m in found.items() if i in ids})
    if options.update_baseline and plan.baseline_path is None:
        raise ConfigError(
            "--update-baseline: no baseline path (fix: set `baseline:` in gate.yml or "
            "pass --baseline FILE)"
        )
    out = options.out_dir
    if problem := unwritable(out):
        raise ConfigError(f"--out {out}: {problem} (fix: pass --out a folder the gate can write)")
    baseline_path = plan.baseline_path if options.update_baseline else None
    if baseline_path is not None and (problem := unwritable(baseline_path, folder=False)):
        raise ConfigError(
            f"--update-baseline: {baseline_path}: {problem} "
            "(fix: set `baseline:` or pass --baseline to a file the gate can write)"
        )
    # This run's report is written only at its end: a run killed before then leaves none, never
    # the previous run's verdict beside this run's records.
    for stale in (out / "report.json", out / "report.md"):
        stale.unlink(missing_ok=True)
    started_at = timestamp(world.now())
    begin = time.monotonic()
    judging = plan.config.metrics.judge
    # Made first, so a missing judge key stops the run before the pipeline spends anything.
    judge = Judge(judging, plan.config.root, world.env) if judging else None
    adapter = adapter or make_adapter(plan.config, world.env)
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
            now=world.now,
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

    scored = score_records(plan.cases, records, list(plan.names))
    write_records(out / "records.jsonl", scored.records)
    verdict = decide(plan, scored)
    baseline_status = "found" if plan.baseline else "missing"
    if options.update_baseline and plan.baseline_path is not None:
        baseline = new_baseline(
            plan, scored, created_at=timestamp(world.now()), git_sha=world.git_sha
        )
        write_baseline(plan.baseline_path, baseline)
        baseline_status = "updated"

    report = build_report(
        plan=plan,
        scored=scored,
        verdict=verdict,
        run_info={
            "started_at": started_at,
            "duration_s": round(duration, 3),
            "records": len(records),
            "errors": sum(r.status == "error" for r in records),
            "timeouts": sum(r.status == "timeout" for r in records),
            "repeats": settings.repeats,
            "concurrency": settings.concurrency,
            "git_sha": world.git_sha,
        },
        baseline_status=baseline_status,
        judge=judge_stats.to_json() if judge_stats is not None else None,
        blessing=last_blessing(log_path(plan.baseline_path)) if plan.baseline_path else None,
    )
    report_path = out / "report.json"
    markdown_path = out / "report.md"
    write_atomic(report_path, json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    write_atomic(markdown_path, render_summary(report, None))
    write_atomic(out / "report.junit.xml", render_junit(report, [case.id for case in plan.cases]))
    return Outcome(0 if verdict.passed else 1, report, report_path, markdown_path)
