"""report.json built from values: a plan, scored records and a verdict, no pipeline, no disk."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from builders import run

from gate.decide.baseline import new_baseline
from gate.decide.verdict import decide
from gate.load.config import Config, Thresholds
from gate.load.dataset import Case
from gate.metrics.scoring import score_records
from gate.plan import Plan
from gate.render.report import build_report
from gate.run.records import Record

NAMES = ("agent.task_success", "generation.must_include", "retrieval.mrr", "ops.error_rate")
RUN_INFO = {"started_at": "2026-12-04T00:00:00Z", "duration_s": 1.0, "records": 4}


def plan_of(cases: list[Case], thresholds: dict[str, Any], baseline: Any = None) -> Plan:
    config = Config.model_validate(
        {
            "dataset": "golden.jsonl",
            "pipeline": {"adapter": "replay", "path": "replay.jsonl"},
            "path": Path("gate.yml"),
        }
    )
    return Plan(
        config=config,
        cases=cases,
        thresholds=Thresholds.model_validate(thresholds),
        baseline_path=Path("baseline.json") if baseline else None,
        baseline=baseline,
        fingerprint="sha256:pipeline",
        names=NAMES,
    )


def report_of(plan: Plan, records: list[Record]) -> dict[str, Any]:
    scored = score_records(plan.cases, records, list(plan.names))
    return build_report(
        plan=plan,
        scored=scored,
        verdict=decide(plan, scored),
        run_info=RUN_INFO,
        baseline_status="found" if plan.baseline else "missing",
    )


def runs(*outcomes: bool, tag: str = "") -> tuple[list[Case], list[Record]]:
    """One case per outcome: it passes (its required phrase is there) or not."""
    pairs = [
        run(
            {"must_include": ["paris"]},
            {"answer": "Paris" if ok else "Rome"},
            case_id=f"c{i}",
            tags=(tag,) if tag else (),
        )
        for i, ok in enumerate(outcomes)
    ]
    return [c for c, _ in pairs], [r for _, r in pairs]


def test_report__a_passing_run_against_its_thresholds():
    cases, records = runs(True, True, True, False)
    plan = plan_of(cases, {"metrics": {"agent.task_success": {"min": 0.7}}})

    report = report_of(plan, records)

    assert report["verdict"] == "pass"
    assert report["summary"] == "pass: 2 checks passed on 4 cases (no baseline)"
    entry = report["metrics"]["agent.task_success"]
    assert entry["value"] == 0.75
    assert entry["n"] == 4
    assert entry["baseline"] is None
    assert entry["status"] == "pass"
    assert entry["direction"] == "higher"
    assert entry["rules"] == {"min": 0.7}
    assert [case["id"] for case in report["cases"]["failing"]] == ["c3"]
    assert report["failure_modes"] == {"missing_required": 1}
    json.dumps(report, allow_nan=False)  # plain JSON: no NaN or Infinity


def test_report__a_metric_nothing_measured_is_absent_unless_a_rule_asks_for_it():
    cases, records = runs(True, True)
    report = report_of(plan_of(cases, {}), records)
    assert "retrieval.mrr" not in report["metrics"]  # no case has expected.sources

    asked = report_of(plan_of(cases, {"metrics": {"retrieval.mrr": {"min": 0.5}}}), records)
    assert asked["metrics"]["retrieval.mrr"]["value"] is None
    assert asked["verdict"] == "fail"
    assert "not measured" in asked["checks"][0]["reason"]


def test_report__a_failing_check_comes_first_with_its_reason():
    cases, records = runs(True, False, False, False, tag="high-risk")
    plan = plan_of(
        cases,
        {
            "metrics": {"ops.error_rate": {"max": 0.1}},
            "slices": {"high-risk": {"generation.must_include": {"min": 0.9}}},
        },
    )

    report = report_of(plan, records)

    assert report["verdict"] == "fail"
    first = report["checks"][0]
    assert (first["metric"], first["slice"], first["status"]) == (
        "generation.must_include",
        "high-risk",
        "fail",
    )
    assert first["reason"] == "0.25 < min 0.9"
    assert report["slices"]["high-risk"]["generation.must_include"]["value"] == 0.25


def test_report__against_a_baseline_flips_deltas_and_drift():
    cases, before = runs(True, True, True, True)
    plan = plan_of(cases, {"metrics": {"agent.task_success": {"max_drop": 0.5}}})
    baseline = new_baseline(
        plan,
        score_records(cases, before, list(NAMES)),
        created_at="2026-12-01T00:00:00Z",
        git_sha="abc",
    )
    _, after = runs(True, False, True, True)

    report = report_of(plan_of(cases, plan.thresholds.model_dump(), baseline), after)

    entry = report["metrics"]["agent.task_success"]
    assert (entry["value"], entry["baseline"], entry["delta"]) == (0.75, 1.0, -0.25)
    assert entry["interval"]["n"] == 4
    assert entry["interval"]["mcnemar"] == {"worse": 1, "better": 0, "p_worse": 0.5}
    assert [case["id"] for case in report["flips"]["regressed"]] == ["c1"]
    assert report["flips"]["fixed"] == []
    assert report["drift"] == {"added": [], "removed": [], "changed": [], "shared": 4}
    assert report["baseline"] == {
        "path": "baseline.json",
        "status": "found",
        "created_at": "2026-12-01T00:00:00Z",
        "git_sha": "abc",
        "age_days": 3,
        "stale": [],
    }
    assert report["verdict"] == "pass"  # one flip in four is not a significant drop


def test_report__judge_usage_is_kept_apart_from_the_pipelines():
    cases, records = runs(True)
    plan = plan_of(cases, {})
    scored = score_records(cases, records, list(NAMES))
    judge = {"calls": 3, "cost_usd": 0.01}

    report = build_report(
        plan=plan,
        scored=scored,
        verdict=decide(plan, scored),
        run_info=RUN_INFO,
        baseline_status="missing",
        judge=judge,
    )

    assert report["judge"] == judge
    assert report["pipeline"] == {"adapter": "replay", "fingerprint": "sha256:pipeline"}
