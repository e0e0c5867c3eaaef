"""Time the paired statistics, and simulate how often the default verdict is right.

    python -m bench.bench_stats [--cases 10000] [--resamples 5000] [--sims 1000] [--seed 0]

Timings (best of 3): `paired_bootstrap` with the default mean, with the nearest-rank p95 and with
cost per success (two columns), and `mcnemar_exact` on 100,000 discordant pairs.

Operating characteristics: 200 pass/fail cases at pass rate 0.8, `--sims` simulated pairs of runs
per row. The candidate re-draws each case's outcome at random with probability `churn` (a noisy,
non-deterministic pipeline) and, for the drop rows, also fails passing cases so that the pass
rate falls by 5 points. Printed: how often `decide` (tolerance 0) fails the gate, with the
default 95% interval, with a 90% interval, and in strict mode. Then the false alarms on small
golden sets of continuous scores, where nothing changed but noise (per-case changes N(0, 1)).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

from gate.decide.stats import (
    decide,
    mcnemar_exact,
    minimum_detectable_effect,
    paired_bootstrap,
)
from gate.metrics.statistic import percentile_statistic, ratio_statistic

CASES, PASS_RATE, DROP = 200, 0.8, 0.05


def best_of_3(run: Callable[[], object]) -> float:
    timings = []
    for _ in range(3):
        start = time.perf_counter()
        run()
        timings.append(time.perf_counter() - start)
    return min(timings)


def timings(cases: int, resamples: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    latency = rng.lognormal(6, 0.5, cases)
    new_latency = latency * rng.lognormal(0.05, 0.2, cases)
    cost = np.column_stack([rng.uniform(0.001, 0.003, cases), rng.random(cases) < 0.9])
    new_cost = np.column_stack([rng.uniform(0.001, 0.003, cases), rng.random(cases) < 0.9])
    runs = {
        "mean (default)": lambda: paired_bootstrap(latency, new_latency, resamples=resamples),
        "p95 (percentile_statistic(95))": lambda: paired_bootstrap(
            latency, new_latency, statistic=percentile_statistic(95), resamples=resamples
        ),
        "cost per success (ratio_statistic)": lambda: paired_bootstrap(
            cost, new_cost, statistic=ratio_statistic, resamples=resamples
        ),
    }
    print(f"paired_bootstrap, {resamples:,} resamples of {cases:,} cases (best of 3):")
    for name, run in runs.items():
        print(f"  {name:<36} {best_of_3(run):7.3f} s")
    base = np.repeat([True, False], [50_443, 49_557])
    print(
        "mcnemar_exact, 100,000 discordant pairs (best of 3):"
        f" {best_of_3(lambda: mcnemar_exact(base, ~base)):.3f} s"
    )


def simulated_runs(
    churn: float, drop: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    base = rng.random(CASES) < PASS_RATE
    cand = np.where(rng.random(CASES) < churn, rng.random(CASES) < PASS_RATE, base)
    return base, cand & ~(rng.random(CASES) < drop / PASS_RATE)


def operating_characteristics(sims: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    print(
        f"\n{CASES} pass/fail cases at pass rate {PASS_RATE}, tolerance 0, {sims:,} runs per row:"
        "\n  share of runs that fail the gate\n"
        f"  {'churn':>5} {'true drop':>9} {'pairs differ':>12} {'95%':>6} {'90%':>6} {'strict':>6}"
    )
    for churn in (0.0, 0.05, 0.1, 0.2):
        for drop in (0.0, DROP):
            failed = np.zeros(3)
            differ = 0
            for sim in range(sims):
                base, cand = simulated_runs(churn, drop, rng)
                differ += int(np.count_nonzero(base != cand))
                for column, (confidence, strict) in enumerate(
                    [(0.95, False), (0.90, False), (0.95, True)]
                ):
                    result = paired_bootstrap(base, cand, confidence=confidence, seed=sim)
                    failed[column] += decide(
                        result, tolerance=0, higher_is_better=True, strict=strict
                    ).regressed
            shares = " ".join(f"{share:6.3f}" for share in failed / sims)
            print(f"  {churn:5.2f} {drop:9.2f} {differ / sims:12.1f} {shares}")
    print("\nunchanged continuous scores, share of runs that fail the gate:")
    print(f"  {'cases':>5} {'95%':>6} {'90%':>6}")
    for cases in (10, 20, 40, 100):
        failed = np.zeros(2)
        for sim in range(sims):
            base = rng.normal(size=cases)
            cand = base + rng.normal(size=cases)
            for column, confidence in enumerate([0.95, 0.90]):
                result = paired_bootstrap(base, cand, confidence=confidence, seed=sim)
                failed[column] += decide(result, tolerance=0, higher_is_better=True).regressed
        print(f"  {cases:5d} " + " ".join(f"{share:6.3f}" for share in failed / sims))
    print()
    baseline = np.random.default_rng(seed).random(CASES) < PASS_RATE
    for cases in (40, CASES):
        mde = minimum_detectable_effect(baseline, n=cases)
        print(f"minimum_detectable_effect, {cases} cases, independent flips: {mde:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--resamples", type=int, default=5_000)
    parser.add_argument("--sims", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    timings(args.cases, args.resamples, args.seed)
    operating_characteristics(args.sims, args.seed)


if __name__ == "__main__":
    main()
