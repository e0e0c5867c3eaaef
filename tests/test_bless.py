"""``gate bless``: a finished run becomes the baseline, with who, when, why and the accepted
deltas appended to the regression log; never without a reason, never from a run that failed
closed. And the report's view of the baseline: its age, who blessed it, whether it is stale."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from builders import FakeAdapter, MakeProject

from gate import action, cli
from gate.pipeline import Outcome, RunOptions, World, run
from gate.render.markdown import render_summary

CASES = [{"id": f"c{i}", "input": "q", "expected": {"must_include": ["yes"]}} for i in range(8)]
RULES = {"metrics": {"generation.must_include": {"min": 0.5, "max_drop": 0.01}}}


def project(make_project: MakeProject) -> Path:
    return make_project(CASES, RULES, baseline="baseline.json", comparison={"strict": True})


def gate_run(config: Path, good: int, out: str, day: int = 1) -> dict[str, Any]:
    """A run where the first ``good`` cases answer right, on 2026-03-``day``."""
    adapter = FakeAdapter(lambda case: {"answer": "yes" if int(case.id[1:]) < good else "no"})
    moment = datetime(2026, 3, day, tzinfo=UTC)
    world = World(now=lambda: moment, git_sha=f"{day:040x}")
    options = RunOptions(config=config, out_dir=config.parent / out, progress=None, world=world)
    return run(options, adapter).report


def bless(config: Path, out: str, *reason: str) -> int:
    return cli.main(["bless", "-c", str(config), "--report", str(config.parent / out), *reason])


def log(config: Path) -> list[dict[str, Any]]:
    text = (config.parent / "baseline.log.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines()]


def test_bless__refuses_without_a_reason(
    make_project: MakeProject, capsys: pytest.CaptureFixture[str]
) -> None:
    config = project(make_project)
    gate_run(config, 8, "first")

    assert bless(config, "first") == 2
    assert bless(config, "first", "--reason", "   ") == 2

    assert "a reason is required" in capsys.readouterr().err
    assert not (config.parent / "baseline.json").exists()
    assert not (config.parent / "baseline.log.jsonl").exists()


def test_bless__writes_the_baseline_and_logs_who_when_why_and_the_deltas(
    make_project: MakeProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_ACTOR", "octocat")
    config = project(make_project)
    gate_run(config, 8, "first")
    assert bless(config, "first", "--reason", "the first bar") == 0
    regressed = gate_run(config, 6, "second", day=2)
    assert regressed["verdict"] == "fail"  # a regression against the blessed baseline

    assert bless(config, "second", "--reason", "accept the drop: c6, c7 are out of scope") == 0

    first, second = log(config)
    assert (first["actor"], first["reason"], first["replaced"]) == (
        "octocat",
        "the first bar",
        None,
    )
    assert second["reason"] == "accept the drop: c6, c7 are out of scope"
    assert second["run"]["commit"] == f"{2:040x}"
    assert second["replaced"]["git_sha"] == f"{1:040x}"
    assert second["deltas"]["generation.must_include"] == {
        "before": 1.0,
        "after": 0.75,
        "delta": -0.25,
    }
    baseline = json.loads((config.parent / "baseline.json").read_text(encoding="utf-8"))
    assert baseline["metrics"]["generation.must_include"] == 0.75
    assert baseline["git_sha"] == f"{2:040x}"
    again = gate_run(config, 6, "third", day=3)
    assert again["verdict"] == "pass"
    assert again["baseline"]["blessing"]["actor"] == "octocat"
    assert again["baseline"]["stale"] == []


def test_bless__refuses_a_run_that_failed_closed(
    make_project: MakeProject, capsys: pytest.CaptureFixture[str]
) -> None:
    config = project(make_project)
    report = gate_run(config, 2, "bad")  # must_include 0.25: below the absolute bar
    assert report["verdict"] == "fail"

    assert bless(config, "bad", "--reason", "ship it anyway") == 1

    assert "failed closed" in capsys.readouterr().out
    assert not (config.parent / "baseline.json").exists()


def test_bless__refuses_a_run_of_another_golden_set(make_project: MakeProject) -> None:
    config = project(make_project)
    gate_run(config, 8, "first")
    golden = config.parent / "golden.jsonl"
    golden.write_text(golden.read_text(encoding="utf-8").replace('"q"', '"q2"'), "utf-8")

    assert bless(config, "first", "--reason", "ok") == 2


def test_report__shows_the_age_and_warns_when_the_baseline_is_stale(
    make_project: MakeProject,
) -> None:
    config = project(make_project)
    world = World(now=lambda: datetime(2026, 1, 1, tzinfo=UTC), git_sha="a" * 40)
    options = RunOptions(
        config=config,
        out_dir=config.parent / "old",
        update_baseline=True,
        progress=None,
        world=world,
    )
    run(options, FakeAdapter(lambda case: {"answer": "yes"}))

    fresh = gate_run(config, 8, "fresh", day=1)  # 2026-03-01: 59 days later
    assert fresh["baseline"]["age_days"] == 59
    assert fresh["baseline"]["stale"] == ["59 days old (older than 30)"]
    summary = render_summary(fresh, None)
    assert "59 days old" in summary
    assert "> **⚠️ stale baseline:** 59 days old \\(older than 30\\)." in summary

    (config.parent / "gate.yml").write_text(
        config.read_text(encoding="utf-8").replace(
            "strict: true", "strict: true\n  baseline_max_age_days: 90"
        ),
        encoding="utf-8",
    )
    assert gate_run(config, 8, "fresh", day=1)["baseline"]["stale"] == []


@pytest.mark.parametrize(("event", "blessed"), [("push", True), ("pull_request", False)])
def test_action__bless_reason_blesses_a_push_run_never_a_pull_request(
    make_project: MakeProject,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    event: str,
    blessed: bool,
) -> None:
    config = project(make_project)
    # Not about the bar: on a pull request the base commit's bar (tests/test_bar.py) is skipped.
    monkeypatch.setattr(action, "base_bar", lambda *args: None)
    (tmp_path / "event.json").write_text("{}", encoding="utf-8")
    env = {
        "INPUT_BLESS-REASON": "nightly model upgrade, reviewed in #42",
        "INPUT_COMMENT": "false",
        "GITHUB_EVENT_NAME": event,
        "GITHUB_EVENT_PATH": str(tmp_path / "event.json"),
        "GITHUB_WORKSPACE": str(config.parent),
        "GITHUB_ACTOR": "octocat",
        "GITHUB_REPOSITORY": "o/r",
        "GITHUB_RUN_ID": "7",
    }

    def gate_run(options: RunOptions) -> Outcome:
        return run(options, FakeAdapter(lambda case: {"answer": "yes"}))

    assert action.main(env, gate_run) == 0

    assert (config.parent / "baseline.json").exists() == blessed
    if blessed:
        (entry,) = log(config)
        assert entry["actor"] == "octocat"
        assert entry["run"]["url"] == "https://github.com/o/r/actions/runs/7"
    else:
        assert "`bless-reason` is ignored on pull_request runs" in capsys.readouterr().out


def test_action__the_evidence_pack_holds_the_baseline_s_audit_trail_and_no_token(
    make_project: MakeProject, tmp_path: Path
) -> None:
    config = project(make_project)
    (tmp_path / "event.json").write_text("{}", encoding="utf-8")
    token = "ghs_evidenceTokenThatMustNeverBeWritten01"
    env = {
        "INPUT_BLESS-REASON": "first bar, reviewed in #42",
        "INPUT_EVIDENCE": "true",
        "INPUT_COMMENT": "false",
        "INPUT_GITHUB-TOKEN": token,
        "GITHUB_EVENT_NAME": "push",
        "GITHUB_EVENT_PATH": str(tmp_path / "event.json"),
        "GITHUB_WORKSPACE": str(config.parent),
        "GITHUB_ACTOR": "octocat",
        "GITHUB_REPOSITORY": "o/r",
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_RUN_ID": "7",
    }

    def gate_run(options: RunOptions) -> Outcome:
        return run(options, FakeAdapter(lambda case: {"answer": "yes"}))

    assert action.main(env, gate_run) == 0  # blessed, then the pack: one blessing logged
    assert action.main(env, gate_run) == 0  # blessed again: the pack shows both

    out = config.parent / "gate-report"
    pack = json.loads((out / "evidence.json").read_text(encoding="utf-8"))
    assert [entry["reason"] for entry in pack["baseline_audit"]] == [
        "first bar, reviewed in #42"
    ] * 2
    markdown = (out / "evidence.md").read_text(encoding="utf-8")
    assert "## Baseline audit trail" in markdown and "octocat" in markdown
    assert pack["urls"]["run"] == "https://github.com/o/r/actions/runs/7"
    for written in out.iterdir():
        assert token not in written.read_text(encoding="utf-8", errors="replace")


def test_bless__refuses_a_records_file_with_a_run_twice(
    make_project: MakeProject, capsys: pytest.CaptureFixture[str]
) -> None:
    config = project(make_project)
    gate_run(config, 8, "first")
    records = config.parent / "first" / "records.jsonl"
    lines = records.read_text(encoding="utf-8").splitlines()
    records.write_text("\n".join([*lines, lines[2]]) + "\n", encoding="utf-8")

    assert bless(config, "first", "--reason", "twice") == 2

    assert f"records.jsonl:{len(lines) + 1}: case " in (err := capsys.readouterr().err)
    assert "again (first at line 3)" in err
    assert not (config.parent / "baseline.json").exists()
