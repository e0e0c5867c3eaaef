"""Prove the default verdict rule: false alarms and power of the real gate on simulated pipelines.

    python -m bench.bench_regression [--decisions 1000] [--n 200] [--seed 0]
        [--scenario NAME|headline|all ...] [--workers 2] [--max-drop 0]

Every decision drives the real gate in-process: `gate.pipeline.run` with the replay adapter, on a
gate.yml, a golden set, a thresholds file and a replay file written to a temporary folder. A
baseline run (`update_baseline`) writes the baseline; a candidate run, on freshly drawn replays,
compares with it through `gate.decide`, exactly as `gate run` would. A decision
*fails* when the candidate's report fails the regression check `agent.task_success: {max_drop: 0}`
(confidence 0.95, not strict: the defaults).

The model of a stochastic pipeline. Case i passes each run with its own probability p_i, drawn
afresh for every decision (a new golden set and pipeline each time, so decisions are independent):
- flaky cases, a share of the set: p_i ~ U(0.3, 0.7);
- broken cases at p_i = `broken_p`, and reliable cases, as many as keep them at `reliable_p` or
  just below; their p is then solved so that the mean of the p_i is exactly 0.80.
Three mixtures: `mixed` (10% flaky, reliable ≈ 0.97, broken 0.05: at N = 200, 20 flaky, about
26 broken, 154 reliable at ≈ 0.967), `noisy` (25% flaky, same otherwise) and `steady` (3% flaky,
reliable ≈ 0.99, broken 0.02: a near-deterministic pipeline). A run draws every outcome
independently from p_i, once per repeat. The outcome reaches the gate through its own metrics:
every golden case has `expected.must_include: ["order shipped"]` and the replayed answer contains
that phrase or not, so `generation.must_include` and `agent.task_success` are the case's
pass/fail. With `runner.repeats: r` the replay file holds r lines per id, served in turn, and the
per-case score is the mean of the r outcomes.

The "5-point drop" candidate lowers the p_i so that their mean falls by exactly 0.05 (0.80 →
0.75): about three quarters of the lost passes come from reliable cases that break (p_i →
`broken_p`: 8 cases at N = 200, 9 in `steady`), the rest from the flaky cases getting worse
(their p_i scaled down, by 0.73 in `mixed`). The "same" candidate is a second, independent run
of the baseline's pipeline.

Why `max_drop: 0`. The default rule fails a metric when the drop exceeds the tolerance AND is
significant: the one-sided 95% bound (the high end of the 90% paired bootstrap interval) lies
below zero. Significance alone needs an estimated drop of about 1.65 standard errors (≈ 0.04
here), so a tolerance well below that changes little, and one near it would let the 5-point drop
through. 0 makes "a significant drop" the whole rule.

Reading the output. One row per scenario: `failure rate` is the share of decisions whose
regression check failed; for a `false alarm` scenario that is the false-alarm rate (goal ≤ 5%),
for a `power` scenario the power (goal ≥ 80%). The 95% Wilson interval bounds the true rate after
this many decisions (±1.4 points at 1,000 decisions and a rate of 5%). `met?` compares the rate
with the goal; `(?)` marks an interval that straddles it. The second table explains the rates:
the mean number of cases that passed in the baseline and fail in the candidate (b) and the
reverse (c) (majority outcome with repeats), the gate's own minimum detectable drop (median of the
report's `minimum_detectable_drop`), the flaky rate the report gives, and what a normal
approximation of the rule predicts from the p_i (`predicted_failure`).

Results (seed 0, 1,000 decisions per row, N = 200; about 50 s per row on 2 cores, 100 s with
3 repeats), one-sided test at 0.95 (the default):
- false alarms: 4.0% (mixed), 4.8% (steady), 5.9% (noisy, Wilson [4.6%, 7.5%]); with 3 repeats
  4.6% (mixed) and 5.0% (noisy). Strict mode fails 47% of unchanged mixed pipelines.
- power against the 5-point drop: 58% (mixed), 86% (steady), 43% (noisy); with 3 repeats 94%
  (mixed) and 82% (noisy).
The two-sided 95% interval the gate used first (2.5% one-sided) gave false alarms of 1.7-3.0%
and power of 45% (mixed), 75% (steady), 30% (noisy), 87% (mixed, 3 repeats): half of the false-
alarm budget was spent on rises that fail no gate. So the ≥ 80% power goal at N = 200 holds
when the pipeline's run-to-run noise is small against the drop (steady) or is averaged out by
repeats: the drop is about 10 cases, and every flaky case adds pairs that differ by chance
(about 22 discordant pairs between two runs of the mixed pipeline, 34 of the noisy one, 8 of
the steady one). The normal approximation (last table) matches the rows within a few points: the
limit is the data, not the test.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from statistics import NormalDist, median
from typing import Literal

import numpy as np
import numpy.typing as npt

from gate.pipeline import RunOptions, run

FloatArray = npt.NDArray[np.float64]

PASS_RATE = 0.80
DROP = 0.05
FLAKY_RANGE = (0.3, 0.7)
BROKEN_SHARE_OF_DROP = 0.75
"""Share of the drop that comes from reliable cases breaking; the rest, from flaky ones."""
PHRASE = "order shipped"
PASS_ANSWER = "Good news: your order shipped this morning."
FAIL_ANSWER = "Sorry, I could not find that order."
METRIC = "agent.task_success"
ALPHA = 0.05
"""Of the Wilson intervals on the rates (two-sided), and of the gate's one-sided paired test."""
Z_WILSON = NormalDist().inv_cdf(1 - ALPHA / 2)
Z_GATE = NormalDist().inv_cdf(1 - ALPHA)
"""The gate's regression test is one-sided at comparison.confidence 0.95."""


@dataclass(frozen=True)
class Mixture:
    """A pipeline's cases: a share of flaky ones, the rest reliably right or reliably wrong."""

    name: str
    flaky_share: float
    reliable_p: float
    """Target pass probability of a reliable case (solved exactly to put the mean at PASS_RATE)."""
    broken_p: float


MIXED = Mixture("mixed", 0.10, 0.97, 0.05)
NOISY = Mixture("noisy", 0.25, 0.97, 0.05)
STEADY = Mixture("steady", 0.03, 0.99, 0.02)


@dataclass(frozen=True)
class Scenario:
    name: str
    candidate: Literal["same", "drop"]
    mixture: Mixture = MIXED
    repeats: int = 1
    strict: bool = False
    goal: tuple[Literal["<=", ">="], float] | None = None
    """None: shown for contrast, no goal."""


FALSE_ALARMS: tuple[Literal["<="], float] = ("<=", 0.05)
POWER: tuple[Literal[">="], float] = (">=", 0.80)
SCENARIOS: tuple[Scenario, ...] = (
    Scenario("false alarm", "same", goal=FALSE_ALARMS),
    Scenario("power", "drop", goal=POWER),
    Scenario("false alarm, noisy", "same", NOISY, goal=FALSE_ALARMS),
    Scenario("power, noisy", "drop", NOISY, goal=POWER),
    Scenario("false alarm, steady", "same", STEADY, goal=FALSE_ALARMS),
    Scenario("power, steady", "drop", STEADY, goal=POWER),
    Scenario("false alarm, repeats 3", "same", repeats=3, goal=FALSE_ALARMS),
    Scenario("power, repeats 3", "drop", repeats=3, goal=POWER),
    Scenario("false alarm, noisy, repeats 3", "same", NOISY, repeats=3, goal=FALSE_ALARMS),
    Scenario("power, noisy, repeats 3", "drop", NOISY, repeats=3, goal=POWER),
    Scenario("false alarm, strict", "same", strict=True),
)
HEADLINE = ("false alarm", "power")


# --- the stochastic pipeline ------------------------------------------------------------------


@dataclass(frozen=True)
class Population:
    """The per-case pass probabilities of the baseline pipeline and of the candidate."""

    baseline: FloatArray
    candidate: FloatArray


def population(n: int, mix: Mixture, drop: bool, rng: np.random.Generator) -> Population:
    """Draw p_i for n cases (mean exactly PASS_RATE) and the candidate's (mean lower by DROP)."""
    flaky = round(mix.flaky_share * n)
    flaky_p = rng.uniform(*FLAKY_RANGE, size=flaky)
    # As many broken cases as keep the reliable ones at mix.reliable_p or just below ...
    rest = n - flaky
    target = PASS_RATE * n - flaky_p.sum()
    broken = math.floor((mix.reliable_p * rest - target) / (mix.reliable_p - mix.broken_p))
    reliable = rest - broken
    # ... then the reliable p that makes the mean exact.
    reliable_p = (target - broken * mix.broken_p) / reliable
    if not (0 <= broken <= rest and FLAKY_RANGE[1] < reliable_p <= 1):
        raise ValueError(f"no {mix.name} mixture with mean {PASS_RATE} at n = {n}")
    p = np.concatenate([np.full(reliable, reliable_p), np.full(broken, mix.broken_p), flaky_p])
    p = p[rng.permutation(n)]  # so ids say nothing about the class
    if not drop:
        return Population(p, p)

    lost = DROP * n  # expected passes the candidate loses
    is_reliable = np.flatnonzero(p == reliable_p)
    is_flaky = np.flatnonzero((p > mix.broken_p) & (p < reliable_p))
    step = reliable_p - mix.broken_p
    mass = p[is_flaky].sum()
    # About BROKEN_SHARE_OF_DROP of the drop from breaking cases, but enough of them that the
    # flaky cases keep at least half their passes, and never more than the whole drop.
    breaking = max(round(BROKEN_SHARE_OF_DROP * lost / step), math.ceil((lost - mass / 2) / step))
    breaking = min(breaking, math.floor(lost / step))
    remainder = lost - breaking * step
    if breaking > is_reliable.size or not 0 <= remainder < mass:
        raise ValueError(f"cannot take a drop of {DROP} from the {mix.name} mixture at n = {n}")
    candidate = p.copy()
    candidate[rng.choice(is_reliable, size=breaking, replace=False)] = mix.broken_p
    candidate[is_flaky] *= 1 - remainder / mass
    return Population(p, candidate)


def predicted_failure(pop: Population, repeats: int) -> float:
    """The normal approximation of the rule: P(the one-sided 95% bound on the change < 0).

    d_i = (candidate's mean of r draws) − (baseline's), μ_i = E[d_i]. Given the p_i, the mean
    change is about N(mean μ_i, Σ var(d_i) / N²), while the bound lies 1.645 standard errors
    from it, estimated from the sample, whose spread also holds that of the μ_i (a few cases
    that broke widen it): fail ⇔ mean d_i < −1.645 · se.
    """
    mu = pop.candidate - pop.baseline
    variance = (pop.baseline * (1 - pop.baseline) + pop.candidate * (1 - pop.candidate)) / repeats
    n = mu.size
    sd_mean = math.sqrt(variance.sum()) / n
    se = math.sqrt(variance.sum() + ((mu - mu.mean()) ** 2).sum()) / n
    if sd_mean == 0:
        return float(mu.mean() < -Z_GATE * se)
    return NormalDist().cdf((-mu.mean() - Z_GATE * se) / sd_mean)


def replay_lines(p: FloatArray, repeats: int, rng: np.random.Generator) -> Iterator[str]:
    """One replay line per case and repeat (all repeats of a case in a row, served in turn)."""
    passes = rng.random((p.size, repeats)) < p[:, np.newaxis]
    for i, row in enumerate(passes):
        for passed in row:
            answer = PASS_ANSWER if passed else FAIL_ANSWER
            yield json.dumps({"id": case_id(i), "output": {"answer": answer}})


def case_id(i: int) -> str:
    return f"case-{i:04d}"


# --- one decision through the real gate -------------------------------------------------------


@dataclass(frozen=True)
class Setup:
    n: int
    seed: int
    max_drop: float
    root: Path
    """A folder for the workers' own subfolders."""


@dataclass(frozen=True)
class Result:
    failed: bool
    predicted: float
    newly_failing: int
    newly_passing: int
    mde: float | None
    flaky_rate: float
    problems: tuple[str, ...] = ()


_folder: dict[tuple[str, int], Path] = {}
"""Per worker process: its folder for each (scenario, N), written once."""


def workspace(setup: Setup, scenario: Scenario) -> Path:
    """A folder with gate.yml, the golden set and the thresholds for this scenario."""
    key = (scenario.name, setup.n)
    if key in _folder:
        return _folder[key]
    folder = Path(tempfile.mkdtemp(prefix="gate-bench-", dir=setup.root))
    with (folder / "golden.jsonl").open("w", encoding="utf-8") as out:
        for i in range(setup.n):
            case = {"id": case_id(i), "input": f"Where is order {i}?"}
            out.write(json.dumps({**case, "expected": {"must_include": [PHRASE]}}) + "\n")
    (folder / "thresholds.yml").write_text(
        f"metrics:\n  {METRIC}: {{max_drop: {setup.max_drop}}}\n", encoding="utf-8"
    )
    strict = "true" if scenario.strict else "false"
    (folder / "gate.yml").write_text(
        "dataset: golden.jsonl\n"
        "pipeline: {adapter: replay, path: replay.jsonl}\n"
        # Replay answers at once (concurrency 8 is no faster), and one thread serves a case's
        # replay lines to its repeats in order. Nothing needs a retry.
        f"runner: {{concurrency: 1, retries: 0, repeats: {scenario.repeats}}}\n"
        "thresholds: thresholds.yml\n"
        "baseline: baseline.json\n"
        f"comparison: {{confidence: 0.95, strict: {strict}}}\n",
        encoding="utf-8",
    )
    _folder[key] = folder
    return folder


def decide_once(setup: Setup, scenario_index: int, decision: int) -> Result:
    """One decision: a baseline run, then an independent candidate run compared with it."""
    scenario = SCENARIOS[scenario_index]
    rng = np.random.default_rng([setup.seed, scenario_index, decision])
    pop = population(setup.n, scenario.mixture, scenario.candidate == "drop", rng)
    folder = workspace(setup, scenario)
    options = RunOptions(config=folder / "gate.yml", out_dir=folder / "report", progress=None)

    (folder / "baseline.json").unlink(missing_ok=True)
    write_replay(folder, pop.baseline, scenario.repeats, rng)
    first = run(replace(options, update_baseline=True))
    write_replay(folder, pop.candidate, scenario.repeats, rng)
    outcome = run(options)

    report = outcome.report
    checks = [c for c in report["checks"] if c["metric"] == METRIC and c["kind"] == "regression"]
    failed = any(c["status"] == "fail" for c in checks)
    interval = report["metrics"][METRIC].get("interval", {})
    mcnemar = interval.get("mcnemar")
    flips = report["flips"]
    problems = []
    if first.report["baseline"]["status"] != "updated":
        problems.append(f"baseline not written: {first.report['baseline']['status']}")
    if len(checks) != 1:
        problems.append(f"not one regression check: {len(checks)} on {METRIC}")
    if outcome.exit_code != int(failed):
        problems.append(f"exit code disagrees: {outcome.exit_code}, check failed={failed}")
    if report["baseline"]["status"] != "found" or report["drift"]["shared"] != setup.n:
        problems.append(f"baseline or drift: {report['baseline']['status']}, {report['drift']}")
    twin = report["metrics"]["generation.must_include"].get("interval")
    if twin != interval:
        problems.append(f"must_include interval differs: {twin} vs {interval}")
    if scenario.repeats == 1 and mcnemar is not None:
        flipped = (len(flips["regressed"]), len(flips["fixed"]))
        if flipped != (mcnemar["worse"], mcnemar["better"]):
            problems.append(f"flips differ from McNemar: {flipped} vs {mcnemar}")
    # With repeats the scores are means, not 0/1: no McNemar; count the majority flips instead.
    return Result(
        failed=failed,
        predicted=predicted_failure(pop, scenario.repeats),
        newly_failing=mcnemar["worse"] if mcnemar else len(flips["regressed"]),
        newly_passing=mcnemar["better"] if mcnemar else len(flips["fixed"]),
        mde=interval.get("minimum_detectable_drop"),
        flaky_rate=report["flaky"]["rate"],
        problems=tuple(problems),
    )


def write_replay(folder: Path, p: FloatArray, repeats: int, rng: np.random.Generator) -> None:
    text = "\n".join(replay_lines(p, repeats, rng)) + "\n"
    (folder / "replay.jsonl").write_text(text, encoding="utf-8")


def _task(args: tuple[Setup, int, int]) -> Result:
    return decide_once(*args)


# --- the figures ------------------------------------------------------------------------------


def wilson(successes: int, trials: int) -> tuple[float, float]:
    """The 95% Wilson score interval of a proportion."""
    if trials == 0:
        return 0.0, 1.0
    rate = successes / trials
    z2 = Z_WILSON**2
    centre = (rate + z2 / (2 * trials)) / (1 + z2 / trials)
    spread = math.sqrt(rate * (1 - rate) / trials + z2 / (4 * trials**2))
    half = Z_WILSON * spread / (1 + z2 / trials)
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass
class Row:
    scenario: Scenario
    n: int
    results: list[Result] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failures(self) -> int:
        return sum(r.failed for r in self.results)

    def verdict(self) -> tuple[str, str]:
        """(goal, met?) as printed."""
        if self.scenario.goal is None:
            return "(contrast)", "-"
        op, bound = self.scenario.goal
        rate = self.failures / len(self.results)
        low, high = wilson(self.failures, len(self.results))
        met = rate <= bound if op == "<=" else rate >= bound
        straddles = low <= bound <= high
        word = "≤" if op == "<=" else "≥"
        return f"{word} {bound:.0%}", ("yes" if met else "NO") + (" (?)" if straddles else "")


def table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> str:
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows, strict=True)]
    lines = [header, ["-" * w for w in widths], *rows]
    return "\n".join(
        "  ".join(str(x).ljust(w) for x, w in zip(line, widths, strict=True)) for line in lines
    )


def print_tables(rows: list[Row]) -> None:
    main = []
    detail = []
    for row in rows:
        s, k, total = row.scenario, row.failures, len(row.results)
        low, high = wilson(k, total)
        goal, met = row.verdict()
        main.append(
            [
                s.name,
                str(row.n),
                str(s.repeats),
                str(total),
                f"{k / total:.1%}",
                f"[{low:.1%}, {high:.1%}]",
                goal,
                met,
            ]
        )
        mdes = [r.mde for r in row.results if r.mde is not None]
        detail.append(
            [
                s.name,
                f"{s.mixture.name} ({s.mixture.flaky_share:.0%})",
                f"{np.mean([r.newly_failing for r in row.results]):.1f}",
                f"{np.mean([r.newly_passing for r in row.results]):.1f}",
                f"{median(mdes):.3f}" if mdes else "n/a",
                f"{np.mean([r.flaky_rate for r in row.results]):.1%}",
                f"{np.mean([r.predicted for r in row.results]):.1%}",
                f"{row.seconds:.0f} s",
            ]
        )
    print(
        table(
            main,
            ["scenario", "N", "repeats", "decisions", "failure rate", "95% Wilson", "goal", "met?"],
        )
    )
    print()
    print(
        table(
            detail,
            [
                "scenario",
                "pipeline (flaky)",
                "newly failing b",
                "newly passing c",
                "gate MDE",
                "flaky reported",
                "normal approx.",
                "time",
            ],
        )
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--decisions", type=int, default=1000, help="per scenario")
    parser.add_argument("--n", type=int, default=200, help="cases in the golden set")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--scenario",
        action="append",
        choices=[s.name for s in SCENARIOS] + ["headline", "all"],
        help="repeatable; default all. `headline`: the false-alarm and power scenarios",
    )
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--max-drop", type=float, default=0.0, help=f"tolerance on {METRIC}")
    args = parser.parse_args(argv)
    wanted = set(args.scenario or ["all"])
    if "all" in wanted:
        wanted |= {s.name for s in SCENARIOS}
    if "headline" in wanted:
        wanted |= set(HEADLINE)
    chosen = [i for i, s in enumerate(SCENARIOS) if s.name in wanted]

    print(
        f"gate regression bench: N={args.n}, {args.decisions} decisions per scenario, "
        f"pass rate {PASS_RATE:.2f} (drop: −{DROP:.2f}), {METRIC} max_drop {args.max_drop:g}, "
        f"confidence 0.95, seed {args.seed}, {args.workers} worker(s)",
        flush=True,
    )
    rows: list[Row] = []
    root = Path(tempfile.mkdtemp(prefix="gate-bench-"))
    begin = time.perf_counter()
    try:
        with ProcessPoolExecutor(args.workers) as pool:
            for index in chosen:
                setup = Setup(args.n, args.seed, args.max_drop, root)
                row = Row(SCENARIOS[index], args.n)
                start = time.perf_counter()
                jobs = [(setup, index, d) for d in range(args.decisions)]
                chunk = max(1, args.decisions // (8 * args.workers))
                row.results = list(pool.map(_task, jobs, chunksize=chunk))
                row.seconds = time.perf_counter() - start
                rows.append(row)
                rate = row.failures / len(row.results)
                print(
                    f"  {row.scenario.name}: {row.failures}/{len(row.results)} failed "
                    f"({rate:.1%}) in {row.seconds:.0f} s",
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print()
    print_tables(rows)
    print(f"\ntotal {time.perf_counter() - begin:.0f} s")
    problems: dict[str, int] = {}
    for row in rows:
        for result in row.results:
            for problem in result.problems:
                key = f"{row.scenario.name}: {problem.split(':')[0]}"
                problems[key] = problems.get(key, 0) + 1
    if problems:
        print("\nconsistency problems (decisions affected):")
        for key, count in problems.items():
            print(f"  {count:5d}  {key}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
