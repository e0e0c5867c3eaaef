"""One gate run, end to end: plan → run the cases → judge → score → decide → render.

Only sequences the stages. What a run reads from outside the code (the environment, the clock,
the commit) arrives as a ``World`` from the CLI or the action; collaborators (the adapter) can be
passed in, so tests run it with fakes.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from gate.decide.baseline import new_baseline
from gate.decide.verdict import decide
from gate.errors import ConfigError
from gate.files import write_atomic
from gate.judge import Judge
from gate.load.baseline import legacy_note, write_baseline
from gate.load.dataset import fingerprint
from gate.metrics.scoring import score_records
from gate.plan import Plan, prepare
from gate.render.markdown import render_summary
from gate.render.report import build_report
from gate.run.adapters import Adapter, make_adapter
from gate.run.cache import OutputCache
from gate.run.records import Record, RecordWriter, write_records
from gate.run.runner import Progress, run_cases
from gate.run.shards import Shard, shard_manifest, write_manifest


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
    shard: Shard | None = None
    """Run only this slice of the cases, into a partial result for ``gate merge``."""
    progress: TextIO | None = sys.stderr
    world: World = field(default_factory=World)


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
    whole = fingerprint(plan.cases)  # of every case, so that merge can tell the shards' sets apart
    if options.shard is not None:
        if options.update_baseline:
            raise ConfigError(
                "--shard with --update-baseline: a shard sees part of the cases (fix: pass "
                "--update-baseline to `gate merge`)"
            )
        plan = replace(plan, cases=options.shard.select(plan.cases))
    if options.update_baseline and plan.baseline_path is None:
        raise ConfigError(
            "--update-baseline: no baseline path (fix: set `baseline:` in gate.yml or "
            "pass --baseline FILE)"
        )
    note = legacy_note(plan.baseline_path, plan.baseline)
    if note and options.progress and not options.update_baseline:
        print(f"gate: note: {note}", file=options.progress)
    out = options.out_dir
    out.mkdir(parents=True, exist_ok=True)
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
    cache = (
        OutputCache(plan.config.resolve(settings.cache), plan.fingerprint)
        if settings.cache
        else None
    )
    try:
        records = run_cases(
            plan.cases,
            adapter,
            settings,
            writer.write,
            Progress(total, options.progress),
            now=world.now,
            cache=cache,
        )
    finally:
        writer.close()
        adapter.close()
        if cache is not None:
            cache.close()
    duration = time.monotonic() - begin
    judge_stats = None
    if judge is not None:
        if options.progress:
            print(f"gate: judging {len(records)} runs", file=options.progress, flush=True)
        try:
            records, judge_stats = judge.judge(plan.cases, records)
        finally:
            judge.close()

    run_info = {
        "started_at": started_at,
        "duration_s": round(duration, 3),
        "records": len(records),
        "errors": sum(r.status == "error" for r in records),
        "timeouts": sum(r.status == "timeout" for r in records),
        "repeats": settings.repeats,
        "concurrency": settings.concurrency,
    }
    if cache is not None:
        run_info["cached"] = cache.hits
    judged = judge_stats.to_json() if judge_stats is not None else None
    if options.shard is not None:
        write_records(out / "records.jsonl", records)
        manifest = shard_manifest(
            options.shard,
            pipeline_fingerprint=plan.fingerprint,
            dataset_fingerprint=whole,
            git_sha=world.git_sha,
            cases=len(plan.cases),
            run_info=run_info,
            judge=judged,
        )
        path = write_manifest(out, manifest)
        return Outcome(0, manifest, path, out / "records.jsonl")
    return conclude(plan, records, options, run_info, judged)


def conclude(
    plan: Plan,
    records: list[Record],
    options: RunOptions,
    run_info: dict[str, Any],
    judge: dict[str, Any] | None,
) -> Outcome:
    """Score the run's records, decide, write the baseline if asked, and the report: the same
    for one process and for merged shards."""
    world = options.world
    out = options.out_dir
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
        run_info=run_info,
        baseline_status=baseline_status,
        judge=judge,
    )
    report_path = out / "report.json"
    markdown_path = out / "report.md"
    write_atomic(report_path, json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    write_atomic(markdown_path, render_summary(report, None))
    return Outcome(0 if verdict.passed else 1, report, report_path, markdown_path)
