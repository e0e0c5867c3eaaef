"""The gate at scale: 1k → 10k → 100k cases through the replay adapter, timed against parsing.

    python bench/bench_scale.py [--sizes 1000,10000,100000] [--resamples 1000]

For each size, a synthetic golden set (10 tags, answers, required phrases, sources, tokens and
cost) and a replay file are written to a temporary folder, with ~25 thresholded metrics (a
relative rule on every one, so each is compared with the baseline case by case, and a few slice
rules). Then, each in its own process, as a user runs them:

1. ``gate run --update-baseline`` (writes the baseline);
2. ``gate run`` against that baseline (the compare the issue measures).

Each is reported as wall time, as a ratio to the floor (``json.loads`` of every line of the golden
set and the replay file, in this process), and peak RSS (``ru_maxrss`` of the child). The
baseline is also written in the old per-case format (schema 1, indented) to compare sizes, and
both formats are timed loading. ``--profile`` runs step 2 under cProfile and prints the stages.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from gate.load.baseline import read_baseline  # noqa: E402

TAGS = [f"tag{i}" for i in range(10)]
WORDS = [
    "alpha",
    "beta",
    "gamma",
    "delta",
    "epsilon",
    "zeta",
    "eta",
    "theta",
    "iota",
    "kappa",
    "lambda",
    "mu",
    "nu",
    "xi",
    "omicron",
]
RELATIVE = {
    "retrieval.hit_rate@{k}": "max_drop",
    "retrieval.precision@{k}": "max_drop",
    "retrieval.recall@{k}": "max_drop",
    "retrieval.ndcg@{k}": "max_drop",
}
OTHERS = {
    "retrieval.mrr": "max_drop",
    "retrieval.map": "max_drop",
    "generation.must_include": "max_drop",
    "generation.exact_match": "max_drop",
    "generation.token_f1": "max_drop",
    "generation.faithfulness": "max_drop",
    "generation.citation_precision": "max_drop",
    "generation.citation_recall": "max_drop",
    "agent.task_success": "max_drop",
    "ops.latency_p50_ms": "max_increase_pct",
    "ops.latency_p95_ms": "max_increase_pct",
    "ops.error_rate": "max_increase",
    "ops.tokens_per_case": "max_increase_pct",
}


def write_inputs(folder: Path, n: int, resamples: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    golden, replay = [], []
    for i in range(n):
        words = rng.sample(WORDS, 6)
        sources = [f"doc-{rng.randrange(5000)}" for _ in range(rng.randint(1, 3))]
        golden.append(
            {
                "id": f"case-{i:06d}",
                "input": f"question {i}: {' '.join(words[:3])}?",
                "expected": {
                    "answer": " ".join(words),
                    "must_include": words[:2],
                    "sources": sources,
                },
                "tags": rng.sample(TAGS, 2),
            }
        )
        retrieved = rng.sample(sources, rng.randint(0, len(sources))) + [
            f"doc-{rng.randrange(5000)}" for _ in range(8)
        ]
        answer = " ".join(rng.sample(words, 5) + rng.sample(WORDS, 2))
        replay.append(
            {
                "id": f"case-{i:06d}",
                "output": {
                    "answer": answer,
                    "retrieved": retrieved,
                    "citations": retrieved[:1],
                    "usage": {
                        "input_tokens": rng.randint(300, 900),
                        "output_tokens": rng.randint(20, 200),
                        "cost_usd": round(rng.uniform(1e-4, 1e-3), 6),
                    },
                },
                "latency_ms": round(rng.lognormvariate(6.5, 0.4), 3),
                "error": None,
            }
        )
    write_lines(folder / "golden.jsonl", golden)
    write_lines(folder / "replay.jsonl", replay)
    rules = {m.format(k=k): {r: 0.05} for m, r in RELATIVE.items() for k in (1, 5, 10)}
    rules |= {m: {r: 0.05} for m, r in OTHERS.items()}
    slices = {tag: {"generation.must_include": {"max_drop": 0.05}} for tag in TAGS[:3]}
    (folder / "thresholds.yml").write_text(json.dumps({"metrics": rules, "slices": slices}))
    config = {
        "dataset": "golden.jsonl",
        "pipeline": {"adapter": "replay", "path": "replay.jsonl"},
        "runner": {"concurrency": 8},
        "metrics": {"retrieval": {"k": [1, 5, 10]}},
        "comparison": {"resamples": resamples},
        "thresholds": "thresholds.yml",
        "baseline": "baseline.json",
    }
    (folder / "gate.yml").write_text(json.dumps(config))


def write_lines(path: Path, rows: list[dict]) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")


def floor_s(folder: Path) -> float:
    """``json.loads`` of every line of the golden set and the replay file: the parsing floor."""
    begin = time.perf_counter()
    for name in ("golden.jsonl", "replay.jsonl"):
        with (folder / name).open(encoding="utf-8") as handle:
            for line in handle:
                json.loads(line)
    return time.perf_counter() - begin


def gate(folder: Path, *args: str, profile: bool = False) -> tuple[float, float, str]:
    """Run the gate CLI in a child: its wall time, peak RSS in MB, and when its progress lines
    came: its first line, and its first line of runs (seconds after the child started, and
    after its "running" line)."""
    code = (
        "import resource, sys, time\n"
        "from gate.cli import main\n"
        "begin = time.perf_counter()\n"
        "code = main(sys.argv[1:])\n"
        "wall = time.perf_counter() - begin\n"
        "rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
        "print(f'BENCH {wall} {rss}', file=sys.stderr)\n"
    )
    command = [sys.executable, "-c", code, "run", "-c", "gate.yml", "--out", "out", *args]
    if profile:
        command = [sys.executable, "-m", "cProfile", "-s", "cumulative", "-m", "gate", "run", "-q"]
        command += ["-c", "gate.yml", "--out", "out", *args]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if profile:
        done = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True)
        print("\n".join(done.stdout.splitlines()[:60]))
        return 0.0, 0.0, ""
    begin = time.perf_counter()
    child = subprocess.Popen(
        command, cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    assert child.stderr is not None
    lines, running, first, any_line = [], None, None, None
    for line in child.stderr:
        now = time.perf_counter() - begin
        lines.append(line)
        if any_line is None and line.startswith("gate: "):
            any_line = now
        if running is None and line.startswith("gate: running"):
            running = now
        if first is None and "runs (" in line:
            first = now
    if child.wait() not in (0, 1):
        raise SystemExit(f"gate exited {child.returncode}:\n{''.join(lines)[-3000:]}")
    wall, rss = next(line for line in lines if line.startswith("BENCH")).split()[1:]
    progress = ""
    if first is not None and running is not None and any_line is not None:
        progress = (
            f"first line {any_line:.2f} s after start; first runs line {first:.2f} s after "
            f"start, {first - running:.2f} s after the running line"
        )
    return float(wall), float(rss), progress


def old_format(path: Path) -> str:
    """The same baseline as schema 1 wrote it: one object per case, indented."""
    baseline = read_baseline(path)
    assert baseline is not None
    body = baseline.model_dump(mode="json", exclude={"case_scores", "legacy"})
    body["schema_version"] = 1
    body["cases"] = {k: v.model_dump() for k, v in baseline.cases.items()}
    return json.dumps(body, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--profile", action="store_true", help="cProfile the compare run")
    args = parser.parse_args()
    rows = []
    for n in map(int, args.sizes.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            write_inputs(folder, n, args.resamples)
            floor = floor_s(folder)
            update, update_rss, _ = gate(folder, "--update-baseline")
            compare, compare_rss, progress = gate(folder)
            path = folder / "baseline.json"
            new_size = path.stat().st_size
            old = old_format(path)
            begin = time.perf_counter()
            read_baseline(path)
            load_new = time.perf_counter() - begin
            (folder / "old.json").write_text(old)
            begin = time.perf_counter()
            read_baseline(folder / "old.json")
            load_old = time.perf_counter() - begin
            report = json.loads((folder / "out" / "report.json").read_text())
            rows.append((n, floor, compare))
            old_size = len(old.encode())
            print(
                f"{n:>7} cases: floor {floor:.2f} s | --update-baseline {update:.2f} s "
                f"({update / floor:.1f}x), {update_rss:.0f} MB | run {compare:.2f} s "
                f"({compare / floor:.1f}x), {compare_rss:.0f} MB | baseline "
                f"{new_size / 1e6:.2f} MB vs old format {old_size / 1e6:.2f} MB "
                f"({old_size / new_size:.1f}x smaller), loads in {load_new:.2f} s "
                f"(old {load_old:.2f} s) | verdict {report['verdict']}",
                flush=True,
            )
            if progress:
                print(f"         progress (run): {progress}", flush=True)
            if args.profile and n == max(map(int, args.sizes.split(","))):
                gate(folder, profile=True)
    if len(rows) > 1:
        (n0, f0, c0), (n1, f1, c1) = rows[0], rows[-1]
        print(
            f"growth {n0} → {n1} ({n1 / n0:.0f}x cases): run {c1 / c0:.1f}x, floor {f1 / f0:.1f}x"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
