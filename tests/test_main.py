"""The verdict against a baseline: paired comparisons, drift, flips, must_pass, repeats.

Runs go through ``gate.pipeline.run`` with a deterministic fake adapter serving queued outputs.
"""

import json
from pathlib import Path
from typing import Any

from builders import FakeAdapter

from gate.pipeline import RunOptions, run

BASELINE = "baseline.json"


def golden(
    ids: list[str],
    *,
    tags: dict[str, list[str]] | None = None,
    inputs: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Cases that pass when the answer says "ok"."""
    return [
        {
            "id": i,
            "input": (inputs or {}).get(i, f"question {i}"),
            "expected": {"must_include": ["ok"]},
            "tags": (tags or {}).get(i, []),
        }
        for i in ids
    ]


def gate(config: Path, answers: dict[str, list[str]], update: bool = False) -> dict:
    outcome = run(
        RunOptions(
            config=config, out_dir=config.parent / "out", update_baseline=update, progress=None
        ),
        adapter=FakeAdapter.queued(
            {case_id: [{"answer": a} for a in queue] for case_id, queue in answers.items()}
        ),
    )
    return outcome.report


def answers(ids: list[str], failing: set[str]) -> dict[str, list[str]]:
    return {i: ["nope" if i in failing else "ok"] for i in ids}


IDS = [f"c{i:02d}" for i in range(40)]
DROP_RULE = {"metrics": {"agent.task_success": {"max_drop": 0.0}}}


def check_of(report: dict, rule: str) -> dict:
    [found] = [c for c in report["checks"] if c["rule"] == rule]
    return found


def test_run__a_real_drop_fails_with_its_interval_flips_and_mcnemar(make_project):
    config = make_project(golden(IDS), DROP_RULE, baseline=BASELINE)
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


def test_run__a_drop_within_noise_passes_by_default_and_fails_when_strict(make_project):
    config = make_project(golden(IDS), DROP_RULE, baseline=BASELINE)
    gate(config, answers(IDS, set(IDS[:4])), update=True)
    # three cases fixed, four newly broken: a net drop of one case in 40
    noisy = answers(IDS, {IDS[3], *IDS[4:8]})
    report = gate(config, noisy)
    check = check_of(report, "max_drop")
    assert check["status"] == "pass"
    assert "but not significant" in check["reason"]
    assert len(report["flips"]["fixed"]) == 3
    strict = make_project(golden(IDS), DROP_RULE, baseline=BASELINE, comparison={"strict": True})
    assert check_of(gate(strict, noisy), "max_drop")["status"] == "fail"


def test_run__drift_is_listed_and_changed_cases_are_left_out_of_the_pairing(make_project):
    config = make_project(golden(IDS), DROP_RULE, baseline=BASELINE)
    gate(config, answers(IDS, set()), update=True)
    now = [*IDS[1:], "new-case"]
    config = make_project(
        golden(now, inputs={"c05": "a reworded question"}), DROP_RULE, baseline=BASELINE
    )
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


def test_run__must_pass_fails_on_one_case_whatever_the_statistics(make_project):
    thresholds = {"must_pass": {"tags": ["high-risk"]}}
    config = make_project(
        golden(IDS, tags={"c01": ["high-risk"], "c02": ["high-risk"]}),
        thresholds,
        baseline=BASELINE,
    )
    report = gate(config, answers(IDS, {"c02"}))
    check = check_of(report, "must_pass")
    assert check["status"] == "fail"
    assert check["slice"] == "high-risk"
    assert check["reason"] == "1 of 2 must-pass cases failed: c02 (missing_required)"
    assert report["verdict"] == "fail"


def test_run__repeats_average_per_case_and_report_flaky_cases(make_project):
    config = make_project(golden(IDS[:4]), {}, baseline=BASELINE, runner={"repeats": 3})
    flaky = answers(IDS[:4], set()) | {"c01": ["ok", "nope", "ok"]}
    report = gate(config, flaky, update=True)
    assert report["flaky"] == {"rate": 0.25, "cases": ["c01"]}
    assert report["run"]["records"] == 12
    baseline = json.loads((config.parent / BASELINE).read_text())
    c01 = baseline["case_ids"].index("c01")
    assert baseline["case_scores"]["agent.task_success"][c01] == round(2 / 3, 6)
    assert baseline["case_scores"]["agent.task_success"][baseline["case_ids"].index("c00")] == 1


def test_run__an_unchanged_small_golden_set_passes_without_a_detectability_warning(make_project):
    ids = IDS[:20]
    config = make_project(golden(ids), DROP_RULE, baseline=BASELINE)
    gate(config, answers(ids, {"c00", "c01", "c02", "c03"}), update=True)
    report = gate(config, answers(ids, {"c00", "c01", "c02", "c03"}))
    # max_drop 0 and 20 cases: nothing to warn about when nothing moved (the old MDE warning
    # fired on every such run); a drop the data cannot tell is an inconclusive check instead
    assert report["warnings"] == []
    assert report["verdict"] == "pass"


def test_run__without_a_baseline_there_is_no_comparison(make_project):
    config = make_project(golden(IDS), DROP_RULE, baseline=BASELINE)
    report = gate(config, answers(IDS, {"c00"}))
    assert report["baseline"]["status"] == "missing"
    assert report["drift"] is None
    assert report["flips"] == {"regressed": [], "fixed": []}
    assert "interval" not in report["metrics"]["agent.task_success"]
    assert [c["rule"] for c in report["checks"]] == ["max_error_rate"]
    assert report["verdict"] == "pass"
