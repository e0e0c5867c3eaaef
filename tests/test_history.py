"""The history of the default branch on a data branch, through ``gate action`` and a local bare
git remote: one entry per run on main (push, schedule), none per pull request or other branch;
the trend in the PR comment and the step summary shows the sequence."""

from __future__ import annotations

import itertools
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from builders import FakeAdapter, write_project
from fake_github import FakeGitHub

from gate import action, history
from gate.errors import ConfigError
from gate.pipeline import Outcome, RunOptions, run
from gate.plan import prepare
from gate.publish.data_branch import DataBranch
from gate.publish.github import GitHub
from gate.render.trends import mermaid, sparkline

EVENTS = Path(__file__).parent / "data" / "oracles" / "github" / "events"
REPOSITORY = "Codertocat/Hello-World"
CASES = [{"id": f"c{i}", "input": "q", "expected": {"must_include": ["yes"]}} for i in range(10)]
RULES = {"metrics": {"generation.must_include": {"min": 0.1}}}


class Sequence:
    """One repository, its bare remote, and runs of the action on it, each with ``good`` cases
    answering right."""

    def __init__(
        self,
        tmp_path: Path,
        fake_github: FakeGitHub,
        rules: dict[str, Any] = RULES,
        **config: Any,
    ) -> None:
        self.tmp, self.github = tmp_path, fake_github
        self.workspace = tmp_path / "workspace"
        write_project(self.workspace, CASES, rules, **config)
        self.remote = tmp_path / "server" / f"{REPOSITORY}.git"
        self.remote.mkdir(parents=True)
        subprocess.run(["git", "init", "-q", "--bare", str(self.remote)], check=True)
        self.runs = 0

    def act(
        self,
        event_name: str,
        event: dict[str, Any] | Path,
        good: int,
        flaky: tuple[str, ...] = (),
        **inputs: str,
    ) -> int:
        """Cases c0..c(good-1) answer right, the rest wrong; a ``flaky`` case alternates."""
        self.runs += 1
        if isinstance(event, dict):
            path = self.tmp / f"event-{self.runs}.json"
            path.write_text(json.dumps(event), encoding="utf-8")
            event = path
        calls = itertools.count()

        def answer(case: Any) -> dict[str, str]:
            right = next(calls) % 2 == 0 if case.id in flaky else int(case.id[1:]) < good
            return {"answer": "yes" if right else "no"}

        adapter = FakeAdapter(answer)

        def gate_run(options: RunOptions) -> Outcome:
            return run(options, adapter)

        env = {
            "INPUT_CONFIG": "gate.yml",
            "INPUT_GITHUB-TOKEN": self.github.token,
            "INPUT_HISTORY": "true",
            "GITHUB_EVENT_NAME": event_name,
            "GITHUB_EVENT_PATH": str(event),
            "GITHUB_REPOSITORY": REPOSITORY,
            "GITHUB_API_URL": self.github.url,
            "GITHUB_SERVER_URL": (self.tmp / "server").as_uri(),
            "GITHUB_WORKSPACE": str(self.workspace),
            "GITHUB_STEP_SUMMARY": str(self.tmp / f"summary-{self.runs}"),
            "GITHUB_SHA": f"{self.runs:040x}",
            "GITHUB_RUN_ID": str(self.runs),
            **{f"INPUT_{name.upper()}": value for name, value in inputs.items()},
        }
        client = lambda token, url: GitHub(token, url, sleep=lambda s: None, clock=time.time)  # noqa: E731
        return action.main(env, gate_run, client)

    def entries(self) -> list[dict[str, Any]]:
        branch = DataBranch(str(self.remote), "gate-history", self.tmp / f"read-{self.runs}")
        return history.parse(branch.read("gate.yml.jsonl"))

    def report(self) -> dict[str, Any]:
        path = self.workspace / "gate-report" / "report.json"
        loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return loaded

    def summary(self) -> str:
        return (self.tmp / f"summary-{self.runs}").read_text(encoding="utf-8")


def push(ref: str = "refs/heads/main") -> dict[str, Any]:
    return {"ref": ref, "repository": {"default_branch": "main", "full_name": REPOSITORY}}


@pytest.fixture
def repo(tmp_path: Path, fake_github: FakeGitHub) -> Sequence:
    return Sequence(tmp_path, fake_github)


def test_history__no_branch_is_no_history_and_no_error(repo: Sequence) -> None:
    assert repo.act("pull_request", EVENTS / "pull_request_opened.payload.json", 10) == 0

    assert repo.entries() == []
    (comment,) = repo.github.comments_on(2)
    assert "#### Trend" not in comment["body"]
    report = json.loads((repo.workspace / "gate-report" / "report.json").read_text("utf-8"))
    assert report["trends"]["runs"] == 0


def test_history__grows_one_entry_per_main_run_and_none_per_pull_request(repo: Sequence) -> None:
    for good in (10, 9, 8):
        assert repo.act("push", push(), good) == 0
    assert repo.act("push", push("refs/heads/feature"), 2) == 0  # not the default branch
    assert repo.act("schedule", {"schedule": "0 3 * * *"}, 7) == 0
    assert len(repo.entries()) == 4

    assert repo.act("pull_request", EVENTS / "pull_request_opened.payload.json", 5) == 0

    entries = repo.entries()
    assert len(entries) == 4  # the pull request read the history, wrote nothing
    assert [e["event"] for e in entries] == ["push", "push", "push", "schedule"]
    assert [e["metrics"]["generation.must_include"] for e in entries] == [1.0, 0.9, 0.8, 0.7]
    assert entries[1]["commit"] == f"{2:040x}"
    assert entries[3]["failing"] == ["c7", "c8", "c9"]
    assert entries[0]["pipeline"].startswith("sha256:")
    (comment,) = repo.github.comments_on(2)
    assert "#### Trend: the last 4 runs on the default branch" in comment["body"]
    assert "| generation.must\\_include | █▆▃▁ | 0.5 |" in comment["body"]
    summary = repo.summary()
    assert "```mermaid\nxychart-beta" in summary
    assert "    line [1, 0.9, 0.8, 0.7]" in summary
    report_md = (repo.workspace / "gate-report" / "report.md").read_text(encoding="utf-8")
    assert "#### Trend: the last 4 runs" in report_md


def test_history__a_main_run_shows_itself_in_the_trend(repo: Sequence) -> None:
    repo.act("push", push(), 10)
    repo.act("push", push(), 5)

    assert "| generation.must\\_include | █▁ | 0.5 |" in repo.summary()


def test_history__an_unreachable_remote_is_a_warning(
    repo: Sequence, capsys: pytest.CaptureFixture[str]
) -> None:
    subprocess.run(["rm", "-rf", str(repo.remote)], check=True)

    assert repo.act("push", push(), 10) == 0

    assert "::warning title=gate%3A history::history: git fetch" in capsys.readouterr().out


NIGHT = {"schedule": "0 3 * * *"}
PR = EVENTS / "pull_request_opened.payload.json"


def test_history__the_nightly_issue_carries_the_sequence_as_charts(
    tmp_path: Path, fake_github: FakeGitHub
) -> None:
    repo = Sequence(tmp_path, fake_github, {"metrics": {"generation.must_include": {"min": 0.7}}})
    for good in (10, 9, 6):
        repo.act("schedule", NIGHT, good)
    assert repo.report()["verdict"] == "fail"

    # The issue job of the same workflow run: the report downloaded, nothing run again.
    assert repo.act("schedule", NIGHT, 0, MODE="issue", **{"GITHUB-TOKEN": repo.github.token}) == 0

    (issue,) = repo.github.issues.values()
    assert "#### Trend: the last 3 runs on the default branch" in issue["body"]
    assert "| generation.must\\_include | █▆▁ | 0.6 |" in issue["body"]
    assert "```mermaid\nxychart-beta" in issue["body"]
    assert "    line [1, 0.9, 0.6]" in issue["body"]
    assert len(repo.entries()) == 3  # the issue step appends nothing


def test_quarantine__a_case_flaky_on_k_of_m_nights_is_left_out_then_released(
    tmp_path: Path, fake_github: FakeGitHub
) -> None:
    repo = Sequence(
        tmp_path,
        fake_github,
        {"metrics": {"generation.must_include": {"max_drop": 0.0}}},
        baseline="baseline.json",
        runner={"repeats": 2},
        comparison={"strict": True},
        history={"quarantine": {"flips": 2, "nights": 3}},
    )
    assert repo.act("push", push(), 10, **{"UPDATE-BASELINE": "true"}) == 0
    repo.act("schedule", NIGHT, 10, flaky=("c0",))
    assert repo.report()["quarantine"]["count"] == 0  # one flaky night is not evidence yet
    repo.act("schedule", NIGHT, 10, flaky=("c0",))

    # A regression PR (c8, c9 now fail) still fails, with the quarantined c0 out of the pairs.
    assert repo.act("pull_request", PR, 8, flaky=("c0",)) == 1
    report = repo.report()
    assert report["quarantine"] == {"count": 1, "cases": [{"id": "c0", "flips": "11"}]}
    assert report["metrics"]["generation.must_include"]["interval"]["n"] == 9
    assert report["verdict"] == "fail"
    body = repo.github.comments_on(2)[-1]["body"]
    assert "#### Quarantined: 1 flaky case" in body
    assert "| c0 | ✗✗ |" in body
    assert "1 quarantined case out of the regression tests" in body

    repo.act("schedule", NIGHT, 10)  # a run sees the nights before it: "11"
    repo.act("schedule", NIGHT, 10)
    assert repo.report()["quarantine"]["cases"] == [{"id": "c0", "flips": "110"}]
    # Now "100": one flip in the last 3 nights, released.
    assert repo.act("pull_request", PR, 10) == 0
    assert repo.report()["quarantine"] == {"count": 0, "cases": []}
    assert "Quarantined" not in repo.github.comments_on(2)[-1]["body"]


def test_append__keeps_the_newest_entries() -> None:
    text = ""
    for i in range(5):
        text = history.append(text, {"metrics": {"m": i}}, keep=3)

    assert [e["metrics"]["m"] for e in history.parse(text + "not json\n[]\n")] == [2, 3, 4]


def test_sparkline__scales_between_the_lowest_and_highest_run() -> None:
    assert sparkline([0.0, 0.5, 1.0, None, float("nan")]) == "▁▅█··"
    assert sparkline([0.3, 0.3]) == "▄▄"
    assert sparkline([None, "x"]) == ""


def test_mermaid__takes_numbers_only_and_a_safe_title() -> None:
    chart = mermaid('m"]\nline [9', [0.5, "x", 0.7])

    assert chart[2] == '    title "mline9"'
    assert chart[3:6] == [
        "    x-axis [1, 3]",
        '    y-axis "value" 0.48 --> 0.72',
        "    line [0.5, 0.7]",
    ]


def test_quarantine__more_flips_than_nights_is_a_config_error(tmp_path: Path) -> None:
    config = write_project(
        tmp_path, CASES, RULES, history={"quarantine": {"flips": 3, "nights": 2}}
    )

    with pytest.raises(ConfigError, match=r"history.quarantine.nights: .*at least `flips`"):
        prepare(config)


def test_quarantined__counts_flips_on_unchanged_code_only() -> None:
    def night(commit: str, failing: list[str], flaky: list[str] = []) -> dict[str, Any]:  # noqa: B006
        return {
            "event": "schedule",
            "commit": commit,
            "metrics": {},
            "failing": failing,
            "flaky": flaky,
        }

    entries = [
        night("a", ["c1"]),
        night("a", ["c2"]),  # c1 and c2 flipped on commit a
        {"event": "push", "commit": "b", "metrics": {}, "failing": []},  # not a night
        night("b", ["c3"]),  # new code: c3 failing is no flip
        night("b", ["c3"], flaky=["c4"]),
    ]

    assert history.night_flips(entries) == [set(), {"c1", "c2"}, set(), {"c4"}]
    assert history.quarantined(entries, flips=1, nights=2) == {"c4": "01"}
    assert history.quarantined(entries, flips=1, nights=4) == {
        "c1": "0100",
        "c2": "0100",
        "c4": "0001",
    }
