"""Fail closed: a pipeline that is down, mostly failing or measured on nothing never passes.

Through ``gate.pipeline.run`` with a fake adapter that answers, raises or times out per case,
with and without a baseline, and with an empty thresholds file (issue 10).
"""

from __future__ import annotations

import json
import math
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

from gate.decide.budget import error_budget
from gate.errors import BaselineError, DatasetError
from gate.load.config import Runner
from gate.load.dataset import Case
from gate.pipeline import Outcome, RunOptions, run
from gate.run.adapters.base import CaseTimeout, Reply

IDS = [f"c{i:02d}" for i in range(20)]
GOOD = {"answer": "ok, all clear", "usage": {"input_tokens": 10, "output_tokens": 5}}


class Pipeline:
    """Per case id: an output dict, ``"error"`` (raises) or ``"timeout"``; the default answers."""

    def __init__(self, behaviour: dict[str, Any] | None = None) -> None:
        self._behaviour = behaviour or {}
        self._lock = threading.Lock()
        self.calls = 0

    def call(self, case: Case, timeout_s: float) -> Reply:
        with self._lock:
            self.calls += 1
        what = self._behaviour.get(case.id, GOOD)
        if what == "error":
            raise RuntimeError("connection refused")
        if what == "timeout":
            raise CaseTimeout(f"no reply within {timeout_s}s")
        return Reply(what)

    def close(self) -> None:
        pass


def failing(share: float, how: str = "error") -> dict[str, Any]:
    return {i: how for i in IDS[: round(share * len(IDS))]}


def project(
    tmp_path: Path,
    thresholds: dict[str, Any] | None = None,
    runner: dict[str, Any] | None = None,
) -> Path:
    rows = [
        {"id": i, "input": f"q {i}", "expected": {"must_not_include": ["password"]}} for i in IDS
    ]
    (tmp_path / "golden.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    # An empty thresholds file: nothing declared, the error budget still applies.
    (tmp_path / "thresholds.yml").write_text(
        "" if thresholds is None else yaml.safe_dump(thresholds)
    )
    config = {
        "dataset": "golden.jsonl",
        "pipeline": {"adapter": "replay", "path": "unused.jsonl"},
        "runner": {"retries": 0, **(runner or {})},
        "thresholds": "thresholds.yml",
        "baseline": "baseline.json",
    }
    (tmp_path / "gate.yml").write_text(yaml.safe_dump(config))
    return tmp_path / "gate.yml"


def gate(config: Path, pipeline: Pipeline, *, update: bool = False, out: str = "out") -> Outcome:
    return run(
        RunOptions(
            config=config, out_dir=config.parent / out, update_baseline=update, progress=None
        ),
        adapter=pipeline,
    )


def strict_json(path: Path) -> Any:
    """json.loads that refuses NaN and Infinity, as every other JSON parser does."""

    def refuse(constant: str) -> Any:
        raise ValueError(f"{path}: {constant} is not JSON")

    return json.loads(path.read_text(), parse_constant=refuse)


def budget_check(outcome: Outcome) -> dict[str, Any]:
    [found] = [c for c in outcome.report["checks"] if c["rule"] == "max_error_rate"]
    return found


# --- the pipeline is down, or mostly failing -------------------------------------------------


@pytest.mark.parametrize(
    ("behaviour", "failed"),
    [
        (failing(1.0), 20),
        (failing(0.6), 12),
        (failing(1.0, "timeout"), 20),
    ],
    ids=["all-errors", "60%-errors", "100%-timeouts"],
)
@pytest.mark.parametrize("with_baseline", [False, True], ids=["no-baseline", "baseline"])
def test_run__a_failing_pipeline_fails_whatever_the_thresholds(
    tmp_path: Path, behaviour: dict[str, Any], failed: int, with_baseline: bool
) -> None:
    config = project(tmp_path)
    if with_baseline:
        assert gate(config, Pipeline(), update=True, out="before").exit_code == 0
    outcome = gate(config, Pipeline(behaviour))

    assert outcome.exit_code == 1
    assert outcome.report["verdict"] == "fail"
    assert outcome.report["baseline"]["status"] == ("found" if with_baseline else "missing")
    check = budget_check(outcome)
    assert check["status"] == "fail"
    assert check["reason"].startswith(
        f"error budget: {failed} of 20 runs failed ({failed / 20:.1%}) > max_error_rate 5%"
    )
    assert "error budget" in outcome.report["summary"]
    strict_json(outcome.report_path)


def test_run__the_error_budget_check_reads_as_the_issue_asks(tmp_path: Path) -> None:
    # The issue's form, "error budget: 12 of 79 runs failed (15.2%) > max_error_rate 5%".
    config = project(tmp_path)
    outcome = gate(config, Pipeline(failing(0.6)))
    assert budget_check(outcome)["reason"] == (
        "error budget: 12 of 20 runs failed (60.0%) > max_error_rate 5%"
    )
    assert budget_check(outcome)["metric"] == "ops.error_rate"
    assert budget_check(outcome)["value"] == 0.6


def test_run__within_the_budget_passes_and_says_so(tmp_path: Path) -> None:
    outcome = gate(project(tmp_path), Pipeline(failing(0.05)))
    assert outcome.exit_code == 0
    assert budget_check(outcome)["reason"] == (
        "error budget: 1 of 20 runs failed (5.0%) ≤ max_error_rate 5%"
    )


def test_run__max_error_rate_is_set_in_gate_yml(tmp_path: Path) -> None:
    config = project(tmp_path, runner={"max_error_rate": 0.5})
    assert gate(config, Pipeline(failing(0.5))).exit_code == 0
    assert gate(config, Pipeline(failing(0.55))).exit_code == 1


def test_run__nothing_measured_fails_even_with_a_budget_of_one(tmp_path: Path) -> None:
    config = project(tmp_path, runner={"max_error_rate": 1})
    outcome = gate(config, Pipeline(failing(1.0)))
    assert outcome.exit_code == 1
    assert budget_check(outcome)["reason"].endswith(": nothing was measured")


def test_error_budget__zero_runs_fail() -> None:
    check = error_budget([], Runner())
    assert not check.passed
    assert check.value is None
    assert check.reason == "error budget: no case was run: nothing was measured"


# --- a failed run is not measured, never a success -------------------------------------------


def test_run__must_not_include_is_not_measured_on_a_failed_run(tmp_path: Path) -> None:
    config = project(tmp_path, runner={"max_error_rate": 1})
    outcome = gate(config, Pipeline({"c00": "error", "c01": {"answer": "the password is x"}}))
    metric = outcome.report["metrics"]["generation.must_not_include"]
    # 19 runs answered, 1 of them with the forbidden word; the failed run counts nowhere.
    assert metric["n"] == 19
    assert metric["value"] == pytest.approx(18 / 19)
    lines = (tmp_path / "out" / "records.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    failed = next(r for r in records if r["id"] == "c00")
    assert "generation.must_not_include" not in failed["scores"]
    assert failed["scores"]["agent.task_success"] == 0.0
    assert failed["failure_modes"] == ["error"]


# --- --update-baseline refuses a run that failed its bars ------------------------------------


@pytest.mark.parametrize(
    ("thresholds", "behaviour", "why"),
    [
        (None, failing(1.0), "error budget: 20 of 20 runs failed"),
        (None, failing(0.6, "timeout"), "error budget: 12 of 20 runs failed"),
        (
            {"metrics": {"generation.must_not_include": {"min": 1.0}}},
            {"c03": {"answer": "your password"}},
            "generation.must_not_include 0.95 < min 1",
        ),
        ({"must_pass": {"cases": ["c04"]}}, {"c04": {"answer": "password"}}, "must-pass"),
    ],
    ids=["down", "timeouts", "min", "must_pass"],
)
def test_update_baseline__refused_from_a_failing_run_and_the_file_untouched(
    tmp_path: Path, capsys: Any, thresholds: Any, behaviour: dict[str, Any], why: str
) -> None:
    config = project(tmp_path, thresholds)
    assert gate(config, Pipeline(), update=True, out="good").exit_code == 0
    baseline = tmp_path / "baseline.json"
    before = baseline.read_bytes()
    capsys.readouterr()

    outcome = gate(config, Pipeline(behaviour), update=True)

    assert outcome.exit_code == 1
    assert baseline.read_bytes() == before
    said = capsys.readouterr().err
    assert "--update-baseline refused" in said
    assert why in said
    assert any("--update-baseline refused" in w for w in outcome.report["warnings"])
    # The next run, still broken, is judged against the good baseline: it fails.
    assert gate(config, Pipeline(behaviour), out="next").exit_code == 1


def test_update_baseline__no_baseline_file_is_created_from_a_failing_run(tmp_path: Path) -> None:
    config = project(tmp_path)
    assert gate(config, Pipeline(failing(1.0)), update=True).exit_code == 1
    assert not (tmp_path / "baseline.json").exists()


def test_update_baseline__a_regression_alone_does_not_refuse(tmp_path: Path) -> None:
    # Accepting a change against the old baseline is what updating it is for.
    config = project(tmp_path, {"metrics": {"generation.must_not_include": {"max_drop": 0}}})
    assert gate(config, Pipeline(), update=True, out="good").exit_code == 0
    worse = {i: {"answer": "password"} for i in IDS[:5]}
    assert gate(config, Pipeline(worse), update=True).exit_code == 1
    written = json.loads((tmp_path / "baseline.json").read_text())
    assert written["metrics"]["generation.must_not_include"] == 0.75


# --- non-finite and negative numbers are refused where they enter ----------------------------


@pytest.mark.parametrize(
    ("usage", "problem"),
    [
        # Not JSON at all: refused before the output is read (NaN and infinities cannot be stored).
        (
            {"cost_usd": float("-inf")},
            "unserialisable output: output.usage.cost_usd: -inf is not JSON",
        ),
        (
            {"cost_usd": float("nan")},
            "unserialisable output: output.usage.cost_usd: nan is not JSON",
        ),
        (
            {"cost_usd": -0.5},
            "malformed output: usage.cost_usd: Input should be greater than or equal to 0",
        ),
        (
            {"input_tokens": -3},
            "malformed output: usage.input_tokens: Input should be greater than or equal to 0",
        ),
    ],
)
def test_run__bad_usage_is_that_case_s_error(
    tmp_path: Path, usage: dict[str, Any], problem: str
) -> None:
    config = project(tmp_path, runner={"max_error_rate": 1})
    outcome = gate(config, Pipeline({"c00": {"answer": "ok", "usage": usage}}))
    [failing_case] = outcome.report["cases"]["failing"]
    assert failing_case["id"] == "c00"
    assert failing_case["error"] == problem
    cost = outcome.report["metrics"].get("ops.cost_per_success_usd", {}).get("value")
    assert cost is None or math.isfinite(cost)
    strict_json(outcome.report_path)


@pytest.mark.parametrize("latency", ["-1", "Infinity", "NaN"])
def test_replay__a_bad_latency_stops_the_run_at_its_line(tmp_path: Path, latency: str) -> None:
    config = project(tmp_path)
    settings = yaml.safe_load(config.read_text())
    settings["pipeline"]["path"] = "replay.jsonl"
    config.write_text(yaml.safe_dump(settings))
    lines = [json.dumps({"id": i, "output": GOOD, "latency_ms": 10}) for i in IDS]
    lines[2] = f'{{"id": "{IDS[2]}", "output": {{}}, "latency_ms": {latency}}}'
    (tmp_path / "replay.jsonl").write_text("\n".join(lines) + "\n")
    # A negative latency is a bad value; NaN and Infinity are not even JSON (the strict reader).
    problem = "latency_ms: " if latency == "-1" else f"invalid JSON: {latency} is not a JSON number"
    with pytest.raises(DatasetError, match=rf"replay\.jsonl:3: {problem}"):
        run(RunOptions(config=config, out_dir=tmp_path / "out", progress=None))


@pytest.mark.parametrize("value", ["-Infinity", "NaN", "-0.5"])
def test_baseline__a_non_finite_or_negative_value_is_refused_with_file_and_key(
    tmp_path: Path, value: str
) -> None:
    config = project(tmp_path)
    assert gate(config, Pipeline(), update=True).exit_code == 0
    path = tmp_path / "baseline.json"
    data = json.loads(path.read_text())
    data["metrics"]["ops.tokens_per_case"] = "MARK"
    path.write_text(json.dumps(data).replace('"MARK"', value))
    with pytest.raises(BaselineError) as raised:
        gate(config, Pipeline())
    # A negative value is refused by key; NaN and Infinity are not even JSON (the strict reader).
    where = f"{path}: metrics.ops.tokens_per_case: " if value == "-0.5" else f"{path}:1: "
    assert str(raised.value).startswith(where)


def test_report__a_change_from_zero_is_infinite_in_words_only(tmp_path: Path) -> None:
    # tokens 0 → 15 under max_increase_pct: "∞%" may be said, never written as a number.
    zero = {"answer": "ok", "usage": {"input_tokens": 0, "output_tokens": 0}}
    config = project(
        tmp_path,
        {"metrics": {"ops.tokens_per_case": {"max_increase_pct": 10}}},
        {"max_error_rate": 0.05},
    )
    assert gate(config, Pipeline(dict.fromkeys(IDS, zero)), update=True).exit_code == 0
    # Without per-case scores the rule is judged on the aggregates: 0 → 15 is +∞%.
    path = tmp_path / "baseline.json"
    data = json.loads(path.read_text())
    data["case_scores"].pop("ops.tokens_per_case")
    path.write_text(json.dumps(data))
    outcome = gate(config, Pipeline())
    assert outcome.exit_code == 1
    report = strict_json(outcome.report_path)
    [check] = [c for c in report["checks"] if c["rule"] == "max_increase_pct"]
    assert check["reason"] == "increase ∞% > max_increase_pct 10%"
    assert (check["value"], check["baseline"], check["limit"]) == (15, 0, 10)
