"""Time how long hostile input files take to be refused, and what strict JSON costs.

    python bench/bench_hostile_inputs.py

Each hostile file is refused by ``gate validate`` (exit 2, ``file:line``) through the CLI, in a
copy of the shipped example; the goal is well under 5 s each. Then the strict reader
(``gate.load.strict_json.loads``) is timed against ``json.loads`` on a large golden set and a
large baseline, side by side in one run, as a ratio.
"""

from __future__ import annotations

import contextlib
import io
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # runnable as a script from anywhere in the checkout
sys.path.insert(0, str(ROOT / "tests"))  # the tests' copy of the shipped example

from builders import copy_example  # noqa: E402

from gate.cli import main as gate  # noqa: E402
from gate.load import strict_json  # noqa: E402

GOAL_S = 5.0
BOMB = "x-lol0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"x-lol{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 9)
)
DEEP_JSON = "[" * 100_000 + "]" * 100_000


def _prepend(path: Path, text: str) -> None:
    path.write_text(text + path.read_text())


def _append(path: Path, text: str) -> None:
    path.write_text(path.read_text() + text)


HOSTILE: dict[str, Callable[[Path], None]] = {
    "alias bomb in gate.yml": lambda p: _prepend(p / "gate.yml", BOMB),
    "alias bomb in thresholds": lambda p: _prepend(p / "thresholds" / "default.yml", BOMB),
    "5000-deep YAML flow": lambda p: _prepend(
        p / "gate.yml", "x: " + "[" * 5000 + "]" * 5000 + "\n"
    ),
    "100k-deep JSON line": lambda p: _append(p / "datasets" / "golden.jsonl", DEEP_JSON + "\n"),
    "100k-deep baseline": lambda p: (p / "thresholds" / "baseline.json").write_text(DEEP_JSON),
    "5000-digit integer": lambda p: _append(
        p / "datasets" / "golden.jsonl",
        '{"id": "n", "input": "q", "metadata": {"n": ' + "7" * 5000 + "}}\n",
    ),
    "NaN literal": lambda p: _append(
        p / "datasets" / "golden.jsonl", '{"id": "n", "input": "q", "metadata": {"n": NaN}}\n'
    ),
}


def _refusals() -> bool:
    print(f"refused by `gate validate` (goal: exit 2 in under {GOAL_S:g} s)")
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, spoil) in enumerate(HOSTILE.items()):
            project = copy_example(Path(tmp) / str(i))
            spoil(project)
            err = io.StringIO()
            begin = time.perf_counter()
            with contextlib.redirect_stderr(err):
                code = gate(["validate", "-c", str(project / "gate.yml")])
            took = time.perf_counter() - begin
            met = code == 2 and took < GOAL_S and "Traceback" not in err.getvalue()
            ok &= met
            first = err.getvalue().splitlines()[0].split(str(project) + "/")[-1][:70]
            print(f"  {name:26} exit {code}  {took:7.3f} s  {'met' if met else 'MISSED'}  {first}")
    return ok


def _median(fn: Callable[[], object], rounds: int = 5) -> float:
    times = []
    for _ in range(rounds):
        begin = time.perf_counter()
        fn()
        times.append(time.perf_counter() - begin)
    return statistics.median(times)


def _strict_cost() -> None:
    row = json.dumps(
        {
            "id": "case-00001",
            "input": {"question": "How do I rotate keys?", "history": [{"role": "user"}]},
            "expected": {"answer": "Every 90 days.", "sources": {"doc-1": 2, "doc-2": 1}},
            "tags": ["security"],
            "metadata": {"contexts": ["text " * 40], "score": 0.5},
        }
    )
    lines = [row] * 20_000
    baseline = json.dumps(
        {
            "cases": {
                f"case-{i:05d}": {
                    "fingerprint": "sha256:" + "a" * 64,
                    "scores": {f"m{j}": 0.5 for j in range(10)},
                }
                for i in range(10_000)
            }
        },
        indent=2,
    )
    print("strict JSON against json.loads (median of 5, same run)")
    for name, plain, strict in (
        (
            "golden set, 20,000 lines",
            lambda: [json.loads(x) for x in lines],
            lambda: [strict_json.loads(x) for x in lines],
        ),
        (
            "baseline, 10,000 cases",
            lambda: json.loads(baseline),
            lambda: strict_json.loads(baseline),
        ),
    ):
        a, b = _median(plain), _median(strict)
        print(f"  {name:26} json {a:.3f} s  strict {b:.3f} s  ratio {b / a:.2f}x")


def main() -> int:
    ok = _refusals()
    _strict_cost()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
