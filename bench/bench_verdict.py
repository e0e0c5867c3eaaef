"""The whole verdict's false alarms, power and cost: 18 regression checks through the real gate.

    python -m bench.bench_verdict [--decisions 400] [--seed 0] [--workers 2] [--row NAME ...]
    python -m bench.bench_verdict --scale    # the family test alone at 100,000 cases

Where `bench_regression` proves one check, this proves the family: a thresholds file with 8 gated
metrics and 5 slices (18 regression checks: the audit's), decided together at
`comparison.confidence: 0.95` (`gate.decide.family`). Every decision drives the real gate
in-process, as `bench_regression` does: `gate.pipeline.run` with the replay adapter, a baseline
run (`update_baseline`), then an independent candidate run compared with it.

The simulated pipeline, per case (drawn afresh for every decision):
- the answer contains the required phrase with probability p_i: `bench_regression`'s `mixed`
  mixture (10% flaky cases, mean 0.80; 7-11% of cases change outcome between two runs);
- the gold source is retrieved (at rank 1 with probability 0.6, else 2-5) with probability h_i:
  0.97 for 85% of the cases, U(0.3, 0.7) for the rest;
- a forbidden phrase slips in with probability 0.01 (95% of cases) or U(0.2, 0.5);
- latency: lognormal, the case's median e^N(log 800, 0.5), run-to-run log-sd 0.5;
- tokens: the case's size (400-2000) ± 10% per run; cost: tokens × $2 / Mtok.
Each case carries one of 5 tags. The checks: `agent.task_success`, `generation.must_include`,
`generation.must_not_include`, `retrieval.hit_rate@5`, `retrieval.mrr` at `max_drop: 0`;
`ops.latency_p95_ms` and `ops.cost_per_success_usd` at `max_increase_pct: 10`,
`ops.tokens_per_case` at `max_increase_pct: 5`; and in each of the 5 slices `agent.task_success`
and `generation.must_include` at `max_drop: 0`.

The thresholds name `primary: agent.task_success` (80% of the budget for its rule, the other
17 checks jointly with the rest) unless a row says "no primary" or "primary phrase"
(`generation.must_include`, the metric the simulated regression moves directly). "second stage"
rows compare with a baseline of 3 runs per case (a nightly's) and top the run up to 3 runs when
stage 1 cannot tell. "drift" rows shift every case's chance of the phrase by one N(0, 0.03) draw
per run (baseline, candidate, each night); "noise floor" rows turn on `history.noise` with 14
simulated nights of the unchanged pipeline (task success and the phrase, overall and per slice).

"unchanged": the candidate is a second run of the same pipeline. "5-pt drop": the required
phrase's pass rate falls by exactly 0.05 (0.80 → 0.75, `bench_regression`'s drop), nothing else
changes. A decision *fails* when the report's verdict is `fail`; `inconclusive` is counted apart.
`calls` is the candidate run's pipeline calls (the baseline is stored, not re-run).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np
import numpy.typing as npt

from bench.bench_regression import MIXED, FloatArray, case_id, population, table, wilson
from gate.decide.family import Hypothesis, max_t
from gate.metrics.statistic import percentile_statistic, ratio_statistic
from gate.pipeline import RunOptions, run

PHRASE_METRIC = "generation.must_include"
DRIFT = 0.03
NIGHTS = 14
TAGS = ("billing", "shipping", "returns", "account", "security")
PHRASE = "order shipped"
FORBIDDEN = "internal only"
DROP_RULES = (
    "agent.task_success",
    "generation.must_include",
    "generation.must_not_include",
    "retrieval.hit_rate@5",
    "retrieval.mrr",
)
PCT_RULES = {
    "ops.latency_p95_ms": ("max_increase_pct", 10),
    "ops.cost_per_success_usd": ("max_increase_pct", 10),
    "ops.tokens_per_case": ("max_increase_pct", 5),
}
SLICE_RULES = ("agent.task_success", "generation.must_include")


@dataclass(frozen=True)
class Row:
    name: str
    n: int
    drop: bool
    repeats: int = 1
    second_stage: bool = False
    goal: str = ""
    primary: str | None = "agent.task_success"
    """The thresholds' ``primary`` metric (docs/verdict.md), None for none. Task success is
    what most teams would name; the required phrase is what the simulated regression loses
    (task success also needs the source retrieved, which is flaky for 15% of the cases)."""
    drift: float = 0.0
    """Run-level drift: every run (baseline, candidate, each night) shifts every case's chance
    of the required phrase by the same N(0, drift) draw."""
    noise: bool = False
    """``history: {noise: {nights: 14}}``, with 14 simulated nights on unchanged code."""


ROWS = (
    Row("unchanged", 200, False, goal="≤ 5%"),
    Row("unchanged, repeats 3", 200, False, 3, goal="≤ 5%"),
    Row("unchanged, second stage", 200, False, second_stage=True, goal="≤ 5%"),
    Row("unchanged, no primary", 200, False, goal="≤ 5%", primary=None),
    Row("5-pt drop, N=50", 50, True),
    Row("5-pt drop", 200, True, goal="≥ 80%"),
    Row("5-pt drop, N=1000", 1000, True),
    Row("5-pt drop, repeats 3", 200, True, 3, goal="≥ 80%"),
    Row("5-pt drop, second stage", 200, True, second_stage=True, goal="≥ 80%"),
    Row("5-pt drop, no primary", 200, True, primary=None),
    Row("5-pt drop, repeats 3, no primary", 200, True, 3, primary=None),
    Row("unchanged, drift", 200, False, drift=DRIFT),
    Row("unchanged, drift, noise floor", 200, False, goal="≤ 5%", drift=DRIFT, noise=True),
    Row("unchanged, noise floor", 200, False, goal="≤ 5%", noise=True),
    Row("5-pt drop, noise floor", 200, True, noise=True),
    Row("unchanged, primary phrase", 200, False, goal="≤ 5%", primary=PHRASE_METRIC),
    Row("unchanged, repeats 3, primary phrase", 200, False, 3, goal="≤ 5%", primary=PHRASE_METRIC),
    Row("5-pt drop, primary phrase", 200, True, goal="≥ 80%", primary=PHRASE_METRIC),
    Row("5-pt drop, repeats 3, primary phrase", 200, True, 3, goal="≥ 80%", primary=PHRASE_METRIC),
    Row(
        "unchanged, second stage, primary phrase",
        200,
        False,
        second_stage=True,
        goal="≤ 5%",
        primary=PHRASE_METRIC,
    ),
    Row(
        "5-pt drop, second stage, primary phrase",
        200,
        True,
        second_stage=True,
        goal="≥ 80%",
        primary=PHRASE_METRIC,
    ),
)
BASELINE_RUNS_FOR_SECOND_STAGE = 3
"""A second stage tops a run up to the baseline's runs per case: its baseline is a nightly's."""


@dataclass(frozen=True)
class Pipeline:
    """The per-case parameters of one simulated pipeline (baseline or candidate)."""

    answer: FloatArray
    hit: FloatArray
    forbidden: FloatArray
    latency: FloatArray
    tokens: FloatArray


def pipelines(n: int, drop: bool, rng: np.random.Generator) -> tuple[Pipeline, Pipeline]:
    pop = population(n, MIXED, drop, rng)
    flaky_hit = rng.random(n) < 0.15
    hit = np.where(flaky_hit, rng.uniform(0.3, 0.7, n), 0.97)
    leaky = rng.random(n) < 0.05
    forbidden = np.where(leaky, rng.uniform(0.2, 0.5, n), 0.01)
    latency = np.exp(rng.normal(np.log(800), 0.5, n))
    tokens = rng.uniform(400, 2000, n)
    base = Pipeline(pop.baseline, hit, forbidden, latency, tokens)
    return base, replace(base, answer=pop.candidate)


def replay(pipe: Pipeline, runs: int, rng: np.random.Generator) -> str:
    lines = []
    for i in range(pipe.answer.size):
        for _ in range(runs):
            answer = "Good news: your order shipped." if rng.random() < pipe.answer[i] else "Sorry."
            if rng.random() < pipe.forbidden[i]:
                answer += f" ({FORBIDDEN})"
            retrieved = [f"doc-{i}-x{k}" for k in range(5)]
            if rng.random() < pipe.hit[i]:
                rank = 0 if rng.random() < 0.6 else int(rng.integers(1, 5))
                retrieved[rank] = f"doc-{i}"
            tokens = int(pipe.tokens[i] * rng.uniform(0.9, 1.1))
            output = {
                "answer": answer,
                "retrieved": retrieved,
                "usage": {"input_tokens": tokens, "output_tokens": 0, "cost_usd": tokens * 2e-6},
            }
            latency = float(pipe.latency[i] * np.exp(rng.normal(0, 0.5)))
            lines.append(json.dumps({"id": case_id(i), "output": output, "latency_ms": latency}))
    return "\n".join(lines) + "\n"


def workspace(root: Path, row: Row) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="verdict-", dir=root))
    with (folder / "golden.jsonl").open("w", encoding="utf-8") as out:
        for i in range(row.n):
            case = {
                "id": case_id(i),
                "input": f"Where is order {i}?",
                "tags": [TAGS[i % len(TAGS)]],
                "expected": {
                    "must_include": [PHRASE],
                    "must_not_include": [FORBIDDEN],
                    "sources": [f"doc-{i}"],
                },
            }
            out.write(json.dumps(case) + "\n")
    metrics = {name: {"max_drop": 0} for name in DROP_RULES}
    metrics |= {name: {rule: limit} for name, (rule, limit) in PCT_RULES.items()}
    slices = {tag: {name: {"max_drop": 0} for name in SLICE_RULES} for tag in TAGS}
    thresholds = {"metrics": metrics, "slices": slices}
    if row.primary:
        thresholds["primary"] = row.primary
    (folder / "thresholds.yml").write_text(json.dumps(thresholds))
    write_config(folder, row, row.repeats)
    return folder


def write_config(folder: Path, row: Row, repeats: int) -> None:
    config = {
        "dataset": "golden.jsonl",
        "pipeline": {"adapter": "replay", "path": "replay.jsonl"},
        "runner": {"concurrency": 1, "retries": 0, "repeats": repeats},
        "thresholds": "thresholds.yml",
        "baseline": "baseline.json",
        "comparison": {"confidence": 0.95, "resamples": 1000}
        | ({"second_stage": True} if row.second_stage else {}),
    }
    if row.noise:
        config["history"] = {"noise": {"nights": NIGHTS}}
    (folder / "gate.yml").write_text(json.dumps(config))


_folders: dict[str, Path] = {}


def decide_once(root: Path, index: int, seed: int, decision: int) -> tuple[str, int, int]:
    """(verdict, candidate calls, regression checks) of one decision."""
    row = ROWS[index]
    if row.name not in _folders:
        _folders[row.name] = workspace(root, row)
    folder = _folders[row.name]
    rng = np.random.default_rng([seed, index, decision])
    base, cand = pipelines(row.n, row.drop, rng)
    history = nights(base, row, rng) if row.noise else []
    options = RunOptions(
        config=folder / "gate.yml", out_dir=folder / "report", progress=None, history=history
    )
    (folder / "baseline.json").unlink(missing_ok=True)
    baseline_runs = BASELINE_RUNS_FOR_SECOND_STAGE if row.second_stage else row.repeats
    write_config(folder, row, baseline_runs)
    (folder / "replay.jsonl").write_text(replay(drifted(base, row, rng), baseline_runs, rng))
    run(replace(options, update_baseline=True))
    write_config(folder, row, row.repeats)
    # The second stage tops every case up to the baseline's runs: the replay serves them in turn.
    runs = max(row.repeats, baseline_runs)
    (folder / "replay.jsonl").write_text(replay(drifted(cand, row, rng), runs, rng))
    report = run(options).report
    checks = sum(c["kind"] == "regression" for c in report["checks"])
    return str(report["verdict"]), int(report["run"]["records"]), checks


def drifted(pipe: Pipeline, row: Row, rng: np.random.Generator) -> Pipeline:
    """One run of ``pipe`` on a day that shifts every case's chance of the phrase alike."""
    if not row.drift:
        return pipe
    return replace(pipe, answer=np.clip(pipe.answer + rng.normal(0, row.drift), 0, 1))


def nights(pipe: Pipeline, row: Row, rng: np.random.Generator) -> list[dict[str, object]]:
    """NIGHTS history entries of ``pipe`` on unchanged code, one run per case each: the metrics
    the drift moves (task success and the required phrase, overall and per slice)."""
    tags = np.arange(pipe.answer.size) % len(TAGS)
    out: list[dict[str, object]] = []
    for night in range(NIGHTS):
        today = drifted(pipe, row, rng)
        phrase = rng.random(pipe.answer.size) < today.answer
        success = phrase & ~(rng.random(pipe.answer.size) < today.forbidden)
        values = partial(_night_values, success, phrase)

        out.append(
            {
                "event": "schedule",
                "commit": "main",
                "pipeline": "p",
                "dataset": "d",
                "date": f"2026-11-{night + 1:02d}",
                "repeats": 1,
                "metrics": values(np.ones(tags.size, dtype=bool)),
                "slices": {tag: values(tags == k) for k, tag in enumerate(TAGS)},
            }
        )
    return out


def _night_values(
    success: npt.NDArray[np.bool_], phrase: npt.NDArray[np.bool_], mask: npt.NDArray[np.bool_]
) -> dict[str, float]:
    return {
        "agent.task_success": float(success[mask].mean()),
        "generation.must_include": float(phrase[mask].mean()),
    }


def _task(args: tuple[Path, int, int, int]) -> tuple[str, int, int]:
    return decide_once(*args)


def scale(cases: int = 100_000, resamples: int = 1000) -> None:
    """Time `max_t` alone: 25 mean checks, then 22 means + p95 + p99 + cost per success."""
    rng = np.random.default_rng(0)
    rows = np.arange(cases)

    def mean() -> Hypothesis:
        base = (rng.random(cases) < 0.8).astype(float)
        return Hypothesis(rows, base, (rng.random(cases) < 0.8).astype(float), None, True, 0.0)

    latency = rng.lognormal(7, 0.5, (2, cases))
    spend = np.stack([rng.lognormal(-7, 0.5, (2, cases)), rng.random((2, cases)) < 0.8], axis=2)
    mixed = [
        Hypothesis(rows, latency[0], latency[1], percentile_statistic(95), False, 0.1, True),
        Hypothesis(rows, latency[0], latency[1], percentile_statistic(99), False, 0.1, True),
        Hypothesis(rows, spend[0], spend[1], ratio_statistic, False, 0.1, True),
    ]
    for name, family in [
        ("25 means", [mean() for _ in range(25)]),
        ("22 means + p95 + p99 + cost per success", [mean() for _ in range(22)] + mixed),
    ]:
        start = time.perf_counter()
        max_t(family, cases, resamples=resamples)
        took = time.perf_counter() - start
        print(f"max_t, {cases} cases x {resamples} resamples, {name}: {took:.1f} s")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--decisions", type=int, default=400, help="per row")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--row", action="append", choices=[r.name for r in ROWS])
    parser.add_argument("--scale", action="store_true", help="time the family test alone")
    args = parser.parse_args(argv)
    if args.scale:
        scale()
        return 0
    chosen = [i for i, r in enumerate(ROWS) if not args.row or r.name in args.row]
    print(
        f"gate verdict bench: 18 regression checks, {args.decisions} decisions per row, "
        f"confidence 0.95, seed {args.seed}, {args.workers} worker(s)",
        flush=True,
    )
    lines = []
    root = Path(tempfile.mkdtemp(prefix="gate-bench-"))
    try:
        with ProcessPoolExecutor(args.workers) as pool:
            for index in chosen:
                row, start = ROWS[index], time.perf_counter()
                jobs = [(root, index, args.seed, d) for d in range(args.decisions)]
                chunk = max(1, args.decisions // (8 * args.workers))
                results = list(pool.map(_task, jobs, chunksize=chunk))
                failed = sum(v == "fail" for v, _, _ in results)
                unsure = sum(v == "inconclusive" for v, _, _ in results)
                low, high = wilson(failed, len(results))
                lines.append(
                    [
                        row.name,
                        str(row.n),
                        str(row.repeats),
                        "yes" if row.second_stage else "no",
                        str(sorted({c for _, _, c in results})),
                        str(len(results)),
                        f"{failed / len(results):.1%}",
                        f"[{low:.1%}, {high:.1%}]",
                        f"{unsure / len(results):.1%}",
                        f"{np.mean([c for _, c, _ in results]):.0f}",
                        row.goal,
                        f"{time.perf_counter() - start:.0f} s",
                    ]
                )
                print(f"  {' | '.join(lines[-1])}", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    header = [
        "row",
        "N",
        "repeats",
        "2nd stage",
        "checks",
        "decisions",
        "fail",
        "95% Wilson",
        "inconclusive",
        "calls",
        "goal",
        "time",
    ]
    print()
    print(table(lines, header))
    return 0


if __name__ == "__main__":
    sys.exit(main())
