"""The verdict against a baseline: paired comparisons, drift, flips, must_pass, repeats.

Runs go through ``gate.pipeline.run`` with a deterministic fake adapter serving queued outputs.
"""

import json
import threading
from collections.abc import Iterable
from pathlib import Path

import yaml

from gate.load.dataset import Case
from gate.pipeline import RunOptions, run
from gate.run.adapters.base import Reply


class FakeAdapter:
    """Serves queued answers per case id, one per call (so one per repeat)."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self._answers = {k: list(v) for k, v in answers.items()}
        self._lock = threading.Lock()

    def call(self, case: Case, timeout_s: float) -> Reply:
        with self._lock:
            queue = self._answers[case.id]
            answer = queue.pop(0) if len(queue) > 1 else queue[0]
        return Reply({"answer": answer})

    def close(self) -> None:
        pass


def project(
    tmp_path: Path,
    ids: Iterable[str],
    thresholds: dict,
    *,
    tags: dict[str, list[str]] | None = None,
    inputs: dict[str, str] | None = None,
    comparison: dict | None = None,
    repeats: int = 1,
) -> Path:
    lines = [
        json.dumps(
            {
                "id": i,
                "input": (inputs or {}).get(i, f"question {i}"),
                "expected": {"must_include": ["ok"]},
                "tags": (tags or {}).get(i, []),
            }
        )
        for i in ids
    ]
    (tmp_path / "golden.jsonl").write_text("\n".join(lines) + "\n")
    (tmp_path / "thresholds.yml").write_text(yaml.safe_dump(thresholds))
    config = {
        "dataset": "golden.jsonl",
        "pipeline": {"adapter": "replay", "path": "unused.jsonl"},
        "runner": {"repeats": repeats},
        "thresholds": "thresholds.yml",
        "baseline": "baseline.json",
    }
    if comparison:
        config["comparison"] = comparison
    (tmp_path / "gate.yml").write_text(yaml.safe_dump(config))
    return tmp_path / "gate.yml"


def gate(config: Path, answers: dict[str, list[str]], update: bool = False) -> dict:
    outcome = run(
        RunOptions(
            config=config, out_dir=config.parent / "out", update_baseline=update, progress=None
        ),
        adapter=FakeAdapter(answers),
    )
    return outcome.report


def answers(ids: list[str], failing: set[str]) -> dict[str, list[str]]:
    return {i: ["nope" if i in failing else "ok"] for i in ids}


IDS = [f"c{i:02d}" for i in range(40)]
DROP_RULE = {"metrics": {"agent.task_success": {"max_drop": 0.0}}}


def check_of(report: dict, rule: str) -> dict:
    [found] = [c for c in report["checks"] if c["rule"] == rule]
    return found


def test_run__a_real_drop_fails_with_its_interval_flips_and_mcnemar(tmp_path):
    config = project(tmp_path, IDS, DROP_RULE)
    gate(config, answers(IDS, set()), update=True)
    broken = set(IDS[:10])
    report = gate(config, answers(IDS, broken))
    check = check_of(report, "max_drop")
    assert check["status"] == "fail"
    assert "significant at 95%" in check["reason"]
    assert "10 newly failing, 0 newly passing" in check["reason"]
    interval = report["metrics"]["agent.task_success"]["interval"]
    assert interval["n"] == 40
    assert interval["estimate"] == -0.25
    assert interval["high"] < 0
    assert interval["mcnemar"]["worse"] == 10
    assert {c["id"] for c in report["flips"]["regressed"]} == broken
    assert report["flips"]["regressed"][0]["failure_modes"] == ["missing_required"]
    assert report["verdict"] == "fail"


def test_run__a_drop_within_noise_passes_by_default_and_fails_when_strict(tmp_path):
    config = project(tmp_path, IDS, DROP_RULE)
    gate(config, answers(IDS, set(IDS[:4])), update=True)
    # three cases fixed, four newly broken: a net drop of one case in 40
    noisy = answers(IDS, {IDS[3], *IDS[4:8]})
    report = gate(config, noisy)
    check = check_of(report, "max_drop")
    assert check["status"] == "pass"
    assert "but not significant" in check["reason"]
    assert len(report["flips"]["fixed"]) == 3
    strict = project(tmp_path, IDS, DROP_RULE, comparison={"strict": True})
    assert check_of(gate(strict, noisy), "max_drop")["status"] == "fail"


def test_run__drift_is_listed_and_changed_cases_are_left_out_of_the_pairing(tmp_path):
    config = project(tmp_path, IDS, DROP_RULE)
    gate(config, answers(IDS, set()), update=True)
    now = [*IDS[1:], "new-case"]
    config = project(tmp_path, now, DROP_RULE, inputs={"c05": "a reworded question"})
    report = gate(config, answers(now, {"c05"}))
    assert report["drift"] == {
        "added": ["new-case"],
        "removed": ["c00"],
        "changed": ["c05"],
        "shared": 38,
    }
    # c05 fails now, but it changed: the paired comparison does not see it
    assert report["metrics"]["agent.task_success"]["interval"]["n"] == 38
    assert check_of(report, "max_drop")["status"] == "pass"


def test_run__must_pass_fails_on_one_case_whatever_the_statistics(tmp_path):
    thresholds = {"must_pass": {"tags": ["high-risk"]}}
    config = project(tmp_path, IDS, thresholds, tags={"c01": ["high-risk"], "c02": ["high-risk"]})
    report = gate(config, answers(IDS, {"c02"}))
    check = check_of(report, "must_pass")
    assert check["status"] == "fail"
    assert check["slice"] == "high-risk"
    assert check["reason"] == "1 of 2 must-pass cases failed: c02 (missing_required)"
    assert report["verdict"] == "fail"


def test_run__repeats_average_per_case_and_report_flaky_cases(tmp_path):
    config = project(tmp_path, IDS[:4], {}, repeats=3)
    flaky = answers(IDS[:4], set()) | {"c01": ["ok", "nope", "ok"]}
    report = gate(config, flaky, update=True)
    assert report["flaky"] == {"rate": 0.25, "cases": ["c01"]}
    assert report["run"]["records"] == 12
    baseline = json.loads((tmp_path / "baseline.json").read_text())
    c01 = baseline["case_ids"].index("c01")
    assert baseline["case_scores"]["agent.task_success"][c01] == round(2 / 3, 6)
    assert baseline["case_scores"]["agent.task_success"][baseline["case_ids"].index("c00")] == 1


def test_run__a_small_golden_set_warns_that_small_drops_are_undetectable(tmp_path):
    ids = IDS[:20]
    config = project(tmp_path, ids, DROP_RULE)
    gate(config, answers(ids, {"c00", "c01", "c02", "c03"}), update=True)
    report = gate(config, answers(ids, {"c00", "c01", "c02", "c03"}))
    [warning] = report["warnings"]
    assert warning.startswith("agent.task_success: 20 paired cases can only detect drops of ")
    assert "the tolerance asked is 0" in warning


def test_run__without_a_baseline_there_is_no_comparison(tmp_path):
    config = project(tmp_path, IDS, DROP_RULE)
    report = gate(config, answers(IDS, {"c00"}))
    assert report["baseline"]["status"] == "missing"
    assert report["drift"] is None
    assert report["flips"] == {"regressed": [], "fixed": []}
    assert "interval" not in report["metrics"]["agent.task_success"]
    assert report["checks"] == []
    assert report["verdict"] == "pass"
