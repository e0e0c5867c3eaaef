"""The nightly issue (``gate action`` with ``mode: issue``) against the fake GitHub: a night that
does not pass opens one issue labelled gate-nightly, with the trend charts, or comments on the
open one; the first passing night closes it. The same step ships in this repository's
nightly.yml and in the one `gate init` writes."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from fake_github import FakeGitHub

from gate import action
from gate.errors import GateError
from gate.pipeline import World
from gate.publish.github import GitHub
from gate.render.markdown import COMMENT_MAX_CHARS
from gate.scaffold import template

ROOT = Path(__file__).resolve().parents[1]
REPOSITORY = "Codertocat/Hello-World"
BOT = "github-actions[bot]"
HOSTILE = "fail: @octo-org/owners see #12 <img src=x> [x](https://evil.example) `tick`"


def report(verdict: str = "fail", metrics: int = 1, runs: int = 5) -> dict[str, Any]:
    names = [f"retrieval.m{i}" for i in range(metrics)]
    return {
        "verdict": verdict,
        "summary": HOSTILE if verdict != "pass" else "pass: 9 of 9 checks passed",
        "gate_version": "0.1.0",
        "metrics": {name: {"value": 0.5, "rules": {"min": 0.1}} for name in names},
        "trends": {
            "runs": runs,
            "commits": [f"{i:07x}" for i in range(runs)],
            "dates": ["2026-12-01"] * runs,
            "metrics": {name: [0.9 - 0.1 * r for r in range(runs)] for name in names},
        },
    }


def night(
    tmp_path: Path, github: FakeGitHub, found: dict[str, Any] | None, **env: str
) -> tuple[int, Path]:
    """Run the issue step on a workspace where the gate job's artifact was downloaded (or not:
    ``found`` None)."""
    workspace = tmp_path / "workspace"
    (workspace / "gate-report").mkdir(parents=True, exist_ok=True)
    if found is not None:
        (workspace / "gate-report" / "report.json").write_text(json.dumps(found), "utf-8")
    output = tmp_path / "output"
    variables = {
        "INPUT_MODE": "issue",
        "INPUT_CONFIG": "gate.yml",
        "INPUT_GITHUB-TOKEN": github.token,
        "GITHUB_EVENT_NAME": "schedule",
        "GITHUB_REPOSITORY": REPOSITORY,
        "GITHUB_API_URL": github.url,
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_RUN_ID": "7",
        "GITHUB_REF_NAME": "trunk",
        "GITHUB_WORKSPACE": str(workspace),
        "GITHUB_OUTPUT": str(output),
        "GATE_JOB_RESULT": "failure" if found is None or found["verdict"] == "fail" else "success",
        **env,
    }
    world = World(env=variables, now=lambda: datetime(2026, 12, 4, 3, 17, tzinfo=UTC))
    client = lambda token, url: GitHub(token, url, sleep=lambda s: None, clock=time.time)  # noqa: E731
    return action.main(variables, github=client, world=world), output


def opened(github: FakeGitHub) -> list[dict[str, Any]]:
    return [
        i for i in github.issues.values() if i["user"]["login"] == BOT and "pull_request" not in i
    ]


@pytest.mark.parametrize("verdict", ["fail", "inconclusive"])
def test_nightly__a_failing_night_opens_an_issue_with_the_trend_charts(
    tmp_path: Path, fake_github: FakeGitHub, verdict: str
) -> None:
    # Neither a pull request nor someone else's issue with the label is the gate's issue.
    fake_github.add_issue("a PR", ["gate-nightly"], BOT, pull_request=True)
    fake_github.add_issue("mine", ["gate-nightly"], "mallory")

    code, output = night(tmp_path, fake_github, report(verdict))

    assert code == 0
    (issue,) = opened(fake_github)
    assert issue["title"] == "Nightly gate failing on trunk"
    assert [label["name"] for label in issue["labels"]] == ["gate-nightly"]
    body = issue["body"]
    assert body.startswith(
        f"The nightly gate failed on **trunk** on 2026-12-04, verdict **{verdict}**"
    )
    assert "[the run](https://github.com/Codertocat/Hello-World/actions/runs/7)" in body
    assert "#### Trend: the last 5 runs on the default branch" in body
    assert "```mermaid\nxychart-beta\n" in body
    assert '    title "retrieval.m0"' in body
    assert "    line [0.9, 0.8, 0.7, 0.6, 0.5]" in body
    # The dataset's and the model's text only through the one escaping path.
    assert "@\u200bocto-org" in body and "#\u200b12" in body
    assert "<img" not in body and "&lt;img src=x&gt;" in body
    assert "](https://evil" not in body and "\\`tick\\`" in body
    assert "first passing night closes this issue" in body
    assert fake_github.comments == {}
    assert "https://github.com/Codertocat/Hello-World/issues/" in output.read_text()


def test_nightly__no_report_is_a_failing_night_without_a_verdict(
    tmp_path: Path, fake_github: FakeGitHub
) -> None:
    assert night(tmp_path, fake_github, None)[0] == 0

    (issue,) = opened(fake_github)
    assert "no verdict: the gate stopped before deciding (exit 2" in issue["body"]
    assert "mermaid" not in issue["body"]


def test_nightly__a_passing_report_from_a_failed_job_is_a_failing_night(
    tmp_path: Path, fake_github: FakeGitHub
) -> None:
    night(tmp_path, fake_github, report("pass"), GATE_JOB_RESULT="failure")

    (issue,) = opened(fake_github)
    assert "verdict **pass**" in issue["body"]


def test_nightly__a_failing_night_comments_on_the_open_issue_and_keeps_its_body(
    tmp_path: Path, fake_github: FakeGitHub
) -> None:
    first = fake_github.add_issue("Nightly gate failing on trunk", ["gate-nightly"], BOT)
    later = fake_github.add_issue("Nightly gate failing on trunk", ["gate-nightly"], BOT)

    night(tmp_path, fake_github, report("fail"))

    assert len(opened(fake_github)) == 2 and first["body"] == ""  # no new issue, no edit
    (comment,) = fake_github.comments_on(first["number"])  # the oldest open one
    assert comment["body"].startswith("Failed again on 2026-12-04, verdict **fail**")
    assert "xychart-beta" in comment["body"]
    assert fake_github.comments_on(later["number"]) == []
    assert not fake_github.sent("PATCH")


def test_nightly__the_first_passing_night_closes_the_issue(
    tmp_path: Path, fake_github: FakeGitHub
) -> None:
    issue = fake_github.add_issue("Nightly gate failing on trunk", ["gate-nightly"], BOT)
    other = fake_github.add_issue("Nightly gate failing on trunk", ["gate-nightly"], "mallory")

    night(tmp_path, fake_github, report("pass"))

    (comment,) = fake_github.comments_on(issue["number"])
    assert comment["body"].startswith("Passed again on 2026-12-04: pass: 9 of 9 checks passed")
    assert "mermaid" not in comment["body"]
    assert (issue["state"], issue["state_reason"]) == ("closed", "completed")
    assert other["state"] == "open" and fake_github.comments_on(other["number"]) == []


def test_nightly__a_passing_night_without_an_issue_posts_nothing(
    tmp_path: Path, fake_github: FakeGitHub
) -> None:
    night(tmp_path, fake_github, report("pass"))

    assert fake_github.issues == {} and fake_github.comments == {}
    assert [seen.method for seen in fake_github.requests] == ["GET"]


def test_nightly__the_body_stays_under_githubs_limit(
    tmp_path: Path, fake_github: FakeGitHub
) -> None:
    night(tmp_path, fake_github, report("fail", metrics=2000, runs=30))

    (issue,) = opened(fake_github)
    assert len(issue["body"]) <= COMMENT_MAX_CHARS
    assert issue["body"].startswith("The nightly gate failed on **trunk**")
    assert "The trend charts are in the run's job summary." in issue["body"]


def test_nightly__full_of_trends_the_charts_stay_six(
    tmp_path: Path, fake_github: FakeGitHub
) -> None:
    night(tmp_path, fake_github, report("fail", metrics=20, runs=30))

    (issue,) = opened(fake_github)
    assert issue["body"].count("```mermaid") == 6


def test_nightly__not_on_a_pull_request(tmp_path: Path, fake_github: FakeGitHub) -> None:
    with pytest.raises(GateError, match="nightly workflow"):
        night(tmp_path, fake_github, report("fail"), GITHUB_EVENT_NAME="pull_request")
    assert fake_github.requests == []


def issue_step(workflow: str) -> dict[str, Any]:
    steps = yaml.safe_load(workflow)["jobs"]["issue"]["steps"]
    (step,) = [s for s in steps if (s.get("with") or {}).get("mode") == "issue"]
    return dict(step)


def test_nightly__the_same_step_in_this_repository_and_in_gate_init() -> None:
    mine = issue_step((ROOT / ".github" / "workflows" / "nightly.yml").read_text())
    theirs = issue_step(template(".github/workflows/gate-nightly.yml"))
    assert mine["env"] == theirs["env"] == {"GATE_JOB_RESULT": "${{ needs.gate.result }}"}
    assert {k: v for k, v in mine["with"].items() if k != "config"} == {
        k: v for k, v in theirs["with"].items() if k != "config"
    }
