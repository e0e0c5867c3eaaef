"""One gate run, end to end: plan → run the cases (each batch judged, scored and written as it
finishes: ``Recorder``) → decide → render.

Only sequences the stages. What a run reads from outside the code (the environment, the clock,
the commit) arrives as a ``World`` from the CLI or the action; collaborators (the adapter) can be
passed in, so tests run it with fakes.
"""

from __future__ import annotations

import gc
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from gate.decide.baseline import new_baseline, refusal
from gate.decide.review import NO_OUTPUT, coverage
from gate.decide.stages import extra_runs, stage_confidences, wants_second_stage
from gate.decide.verdict import Verdict, decide
from gate.errors import ConfigError
from gate.files import replacing, to_json, unwritable, write_atomic
from gate.history import noise_floor, quarantined
from gate.judge import Judge
from gate.load.bar import BarSource
from gate.load.baseline import legacy_note, write_baseline
from gate.load.blessings import last_blessing, log_path
from gate.metrics.scoring import Scored, Tally
from gate.plan import Plan, prepare
from gate.render.junit import junit_lines
from gate.render.markdown import render_summary
from gate.render.report import build_report
from gate.run.adapters import Adapter, make_adapter
from gate.run.cache import OutputCache
from gate.run.records import Record, RecordWriter
from gate.run.runner import Progress, run_cases
from gate.run.shards import Shard, shard_manifest, write_manifest
from gate.scrub import Scrubber


def _epoch() -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, kw_only=True)
class World:
    """What a run reads from outside the code. The CLI and the action read the real one; the
    default is an empty world (no environment, the clock stopped at the epoch) for tests."""

    env: Mapping[str, str] = field(default_factory=dict)
    now: Callable[[], datetime] = _epoch
    git_sha: str | None = None
    bar: BarSource | None = None
    """Where thresholds and baseline are read (``--bar-from``, a pull request's base commit)."""


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
    history: Sequence[Mapping[str, object]] = ()
    """The default branch's history (gate.history entries): quarantines flaky cases."""


@dataclass(frozen=True)
class Outcome:
    exit_code: int
    report: dict[str, Any]
    report_path: Path
    markdown_path: Path


def say(progress: TextIO | None, line: str) -> None:
    """A progress line, when progress is shown (not ``-q``)."""
    if progress:
        print(line, file=progress, flush=True)


def timestamp(moment: datetime) -> str:
    """UTC, to the second, with a Z: how report.json and the baseline write a time."""
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def run(options: RunOptions, adapter: Adapter | None = None) -> Outcome:
    """Run the gate; exit code 0 when every check passes, 1 when one fails."""
    try:
        return _run(options, adapter)
    finally:
        gc.unfreeze()


def _run(options: RunOptions, adapter: Adapter | None) -> Outcome:
    world = options.world
    say(options.progress, f"gate: reading {options.config}, its golden set and baseline")
    plan = prepare(options.config, options.baseline, world.bar)
    whole = plan.dataset_fingerprint  # of every case, so that merge can tell the shards' sets apart
    if options.shard is not None:
        if options.update_baseline:
            raise ConfigError(
                "--shard with --update-baseline: a shard sees part of the cases (fix: pass "
                "--update-baseline to `gate merge`)"
            )
        plan = replace(plan, cases=options.shard.select(plan.cases))
    if (rule := plan.config.history.quarantine) is not None:
        found = quarantined(options.history, rule.flips, rule.nights)
        ids = {case.id for case in plan.cases}
        plan = replace(plan, quarantined={i: m for i, m in found.items() if i in ids})
    if (measure := plan.config.history.noise) is not None:
        plan = replace(plan, noise=noise_floor(options.history, measure.nights))
    if options.update_baseline and plan.baseline_path is None:
        raise ConfigError(
            "--update-baseline: no baseline path (fix: set `baseline:` in gate.yml or "
            "pass --baseline FILE)"
        )
    note = legacy_note(plan.baseline_path, plan.baseline)
    if note and not options.update_baseline:
        say(options.progress, f"gate: note: {note}")
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
    scrub = plan.config.scrubber(world.env)
    name = plan.config.pipeline.adapter
    settings = plan.config.runner
    if adapter is None:
        say(options.progress, f"gate: {len(plan.cases)} cases; starting the {name} adapter")
        adapter = make_adapter(plan.config, world.env, scrub)
    # What the run reads and keeps to its end (the cases, the baseline, a replay file) is left
    # out of the garbage collector's passes (until ``run`` returns): at 100k cases every pass
    # walked them all again, half the time of scoring.
    gc.freeze()
    total = len(plan.cases) * settings.repeats
    say(
        options.progress,
        f"gate: running {len(plan.cases)} cases x {settings.repeats} through the {name} "
        f"adapter, concurrency {settings.concurrency}",
    )
    recorder = Recorder(plan, out / "records.jsonl", scrub, judge)
    cache = (
        OutputCache(
            plan.config.resolve(settings.cache),
            plan.fingerprint,
            Scrubber(scrub.secrets, patterns=()),
        )
        if settings.cache
        else None
    )
    extra = (
        extra_runs(plan.baseline.repeats, settings.repeats)
        if plan.config.comparison.second_stage and plan.baseline is not None
        else 0
    )
    staged = extra > 0
    first, second = stage_confidences(plan.config.comparison.confidence)
    repeats = settings.repeats
    confidence: float | None = None
    decided: tuple[Scored, Verdict] | None = None
    try:
        run_cases(
            plan.cases,
            adapter,
            settings,
            recorder,
            Progress(total, options.progress),
            now=world.now,
            cache=cache,
            scrub=scrub,
        )
        duration = time.monotonic() - begin
        if options.shard is None and staged:
            decided = _decided(plan, recorder.tally, first)
        if decided is not None and wants_second_stage(decided[1]):
            # Stage 1 could not tell: every case runs again up to the baseline's runs per case,
            # and the per-case means decide, with the rest of the false-alarm budget
            # (docs/verdict.md).
            say(options.progress, "gate: inconclusive: second stage")
            again = time.monotonic()
            offset = settings.repeats
            run_cases(
                plan.cases,
                adapter,
                settings.model_copy(update={"repeats": extra}),
                lambda more: recorder([replace(r, repeat=r.repeat + offset) for r in more]),
                Progress(len(plan.cases) * extra, options.progress),
                now=world.now,
                scrub=scrub,
            )
            duration += time.monotonic() - again
            repeats += extra
            decided, confidence = None, second
    finally:
        recorder.close()
        adapter.close()
        if cache is not None:
            cache.close()
        if judge is not None:
            judge.close()
    # Decided once the adapter has let go of what it held (a replay file's lines: 50 MB at 100k
    # cases), unless a second stage may still need it.
    if options.shard is None and decided is None:
        decided = _decided(plan, recorder.tally, confidence)

    run_info: dict[str, Any] = {
        "started_at": started_at,
        "duration_s": round(duration, 3),
        **recorder.counts(),
        "repeats": repeats,
        "concurrency": settings.concurrency,
        "git_sha": world.git_sha,
    }
    if cache is not None:
        run_info["cached"] = cache.hits
    judged = recorder.judge_stats()
    if options.shard is not None:
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
    return conclude(plan, recorder, options, run_info, judged, scrub, decided)


class Recorder:
    """Where a run's records go as they come (``gate.run.runner.run_cases``' ``on_records``):
    judged when a judge is configured, scored (``Tally``), written to records.jsonl with their
    scores, and let go. What is kept: each run's ``Run``, and the repeat-0 outputs (scrubbed) of
    the cases the thresholds' ``review:`` covers."""

    def __init__(
        self,
        plan: Plan,
        path: Path,
        scrub: Scrubber,
        judge: Judge | None = None,
    ) -> None:
        self.tally = Tally(plan.cases, list(plan.names), scrub)
        self.outputs: dict[str, Any] = {}
        """Case id → its repeat-0 output as stored, or ``NO_OUTPUT``: what review coverage reads."""
        self._writer = RecordWriter(path, scrub)
        self._scrub = scrub
        self._judge = judge
        self._cases = {case.id: case for case in plan.cases} if judge is not None else {}
        review = plan.thresholds.review
        tags = set(review.tags) if review is not None else set()
        self._reviewed = {case.id for case in plan.cases if tags.intersection(case.tags)}
        self._statuses: dict[str, int] = {"ok": 0, "error": 0, "timeout": 0}

    def __call__(self, records: list[Record]) -> None:
        if self._judge is not None:
            records = self._judge.judge(self._cases, records)
        self._writer.write(records, self.tally.add(records))
        for record in records:
            self._statuses[record.status] += 1
            if record.repeat == 0 and record.case_id in self._reviewed:
                ok = record.status == "ok"
                self.outputs[record.case_id] = (
                    self._scrub.value(record.raw_output) if ok else NO_OUTPUT
                )

    def counts(self) -> dict[str, int]:
        """The report's run counts: records, errors, timeouts."""
        statuses = self._statuses
        return {
            "records": sum(statuses.values()),
            "errors": statuses["error"],
            "timeouts": statuses["timeout"],
        }

    def judge_stats(self) -> dict[str, Any] | None:
        return self._judge.stats.to_json() if self._judge is not None else None

    def close(self) -> None:
        self._writer.close()


def _decided(plan: Plan, tally: Tally, confidence: float | None) -> tuple[Scored, Verdict]:
    scored = tally.scored()
    return scored, decide(plan, scored, confidence)


def conclude(
    plan: Plan,
    recorder: Recorder,
    options: RunOptions,
    run_info: dict[str, Any],
    judge: dict[str, Any] | None,
    scrub: Scrubber,
    decided: tuple[Scored, Verdict] | None = None,
) -> Outcome:
    """From a run's recorded records (in records.jsonl already): the verdict (unless
    ``decided``), the review's coverage, the baseline if asked, and the report. The same for one
    process and for merged shards."""
    world = options.world
    out = options.out_dir
    scored, verdict = decided or _decided(plan, recorder.tally, None)
    reviewed = coverage(plan, recorder.outputs, world.now().date())
    if reviewed is not None:
        verdict = replace(verdict, checks=[*verdict.checks, *reviewed.checks()])
    baseline_status = "found" if plan.baseline else "missing"
    refused = (
        refusal(verdict, str(plan.baseline_path))
        if options.update_baseline and plan.baseline_path is not None
        else None
    )
    if refused:
        print(f"gate: {refused}", file=sys.stderr, flush=True)
    elif options.update_baseline and plan.baseline_path is not None:
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
        review=reviewed.to_json() if reviewed is not None else None,
        blessing=last_blessing(log_path(plan.baseline_path)) if plan.baseline_path else None,
        scrub=scrub,
    )
    # The report-building boundary: whatever data a report quotes, it quotes scrubbed.
    report = scrub.value(report)
    report_path = out / "report.json"
    markdown_path = out / "report.md"
    if refused:
        report["warnings"].append(refused)
    # Infinity and NaN are not JSON: to_json refuses them (orjson alone would write null). A
    # value that reaches here non-finite is a bug upstream (values are validated where they
    # enter), better an exit 3 than a bad file.
    write_atomic(report_path, to_json(report, indent=True, newline=True))
    write_atomic(markdown_path, render_summary(report, None))
    with replacing(out / "report.junit.xml") as handle:
        handle.writelines(junit_lines(report, [case.id for case in plan.cases]))
    return Outcome(0 if verdict.passed else 1, report, report_path, markdown_path)
