"""Bars declared before the change: `--bar-from REF`, and the action on pull requests.

Each test builds a real git repository: a replay pipeline, a golden set, thresholds and a
baseline committed as the bar; then the working tree regresses and lowers its own bar.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_github import FakeGitHub
from jsonschema import Draft202012Validator

from gate import action
from gate.cli import main
from gate.errors import GateError
from gate.publish.github import GitHub

ROOT = Path(__file__).resolve().parents[1]
EVENTS = ROOT / "tests" / "data" / "oracles" / "github" / "events"
EVENT = EVENTS / "pull_request_opened.payload.json"
SCHEMA = Draft202012Validator(json.loads((ROOT / "docs" / "report.schema.json").read_text()))
CASES = 20
LABEL = "gate: approve bar change"
EXACT = "generation.exact\\_match"  # as the comment escapes it


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@e", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return done.stdout.strip()


def write_replay(repo: Path, wrong: int) -> None:
    """The pipeline's recorded answers: the first ``wrong`` cases answer wrongly."""
    lines = [
        {"id": f"c{i}", "output": {"answer": "no" if i < wrong else f"answer {i}"}}
        for i in range(CASES)
    ]
    (repo / "replay.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))


def write_thresholds(repo: Path, minimum: float) -> None:
    (repo / "thresholds").mkdir(exist_ok=True)
    (repo / "thresholds" / "default.yml").write_text(
        f"metrics:\n  generation.exact_match: {{min: {minimum}, max_drop: 0.05}}\n"
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository whose last commit declares the bar (min 0.9, baseline 1.0) and passes it."""
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "gate.yml").write_text(
        "dataset: golden.jsonl\n"
        "pipeline: {adapter: replay, path: replay.jsonl}\n"
        "thresholds: thresholds/default.yml\n"
        "baseline: thresholds/baseline.json\n"
    )
    cases = [
        {"id": f"c{i}", "input": f"question {i}", "expected": {"answer": f"answer {i}"}}
        for i in range(CASES)
    ]
    (repo / "golden.jsonl").write_text("".join(json.dumps(c) + "\n" for c in cases))
    write_replay(repo, wrong=0)
    write_thresholds(repo, 0.9)
    git(repo, "init", "-q", "-b", "main")
    assert gate(repo, "run", "-q", "--out", str(tmp_path / "first"), "--update-baseline") == 0
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "the bar")
    return repo


def gate(repo: Path, *args: str) -> int:
    return main([*args, "-c", str(repo / "gate.yml")])


def lower_the_bar_and_regress(repo: Path) -> None:
    """What a pull request must not get away with: 8 of 20 answers wrong, the bar lowered to
    let them through, and the baseline rewritten from the regressed run."""
    write_replay(repo, wrong=8)
    write_thresholds(repo, 0.5)
    (repo / "thresholds" / "baseline.json").unlink()  # regenerated, not compared with the old
    assert gate(repo, "run", "-q", "--out", str(repo.parent / "rebase"), "--update-baseline") == 0


def report_of(folder: Path) -> dict[str, Any]:
    report: dict[str, Any] = json.loads((folder / "report.json").read_text())
    assert not [e.message for e in SCHEMA.iter_errors(report)]
    return report


# --- gate run --bar-from ----------------------------------------------------------------------


def test_bar_from__the_committed_bar_fails_what_the_working_tree_bar_passes(repo, tmp_path):
    lower_the_bar_and_regress(repo)

    assert gate(repo, "run", "-q", "--out", str(tmp_path / "own")) == 0
    assert gate(repo, "run", "-q", "--out", str(tmp_path / "head"), "--bar-from", "HEAD") == 1

    own, head = report_of(tmp_path / "own"), report_of(tmp_path / "head")
    assert "bar" not in own
    failed = {(c["metric"], c["rule"]) for c in head["checks"] if c["status"] == "fail"}
    assert failed == {("generation.exact_match", "min"), ("generation.exact_match", "max_drop")}
    bar = head["bar"]
    assert bar["ref"] == git(repo, "rev-parse", "HEAD")
    assert (bar["via"], bar["used"], bar["approved"], bar["approval_label"]) == (
        "git",
        "ref",
        False,
        None,
    )
    assert bar["changed_files"] == ["thresholds/default.yml", "thresholds/baseline.json"]
    assert bar["baseline_changed"] is True
    assert {
        "metric": "generation.exact_match",
        "slice": None,
        "rule": "min",
        "base": 0.9,
        "change": 0.5,
    } in bar["changes"]
    assert {
        "metric": "generation.exact_match",
        "slice": None,
        "rule": "baseline",
        "base": 1.0,
        "change": 0.6,
    } in bar["changes"]
    assert head["baseline"]["status"] == "found"
    assert head["metrics"]["generation.exact_match"]["baseline"] == 1.0
    markdown = (tmp_path / "head" / "report.md").read_text()
    assert "#### Bar" in markdown
    assert "**not honoured**" in markdown
    assert f"| {EXACT} |  | min | 0.9 | 0.5 |" in markdown
    assert f"| {EXACT} |  | baseline | 1 | 0.6 |" in markdown


def test_bar_from__an_unchanged_bar_says_so_and_judges_the_same(repo, tmp_path, capsys):
    assert gate(repo, "run", "-q", "--out", str(tmp_path / "r"), "--bar-from", "main") == 0
    bar = report_of(tmp_path / "r")["bar"]
    assert (bar["changed_files"], bar["changes"], bar["baseline_changed"]) == ([], [], False)
    assert "Judged by the thresholds and baseline of" in (tmp_path / "r" / "report.md").read_text()

    assert gate(repo, "validate", "--bar-from", "HEAD") == 0
    assert "the working tree declares the same" in capsys.readouterr().out


def test_bar_from__validate_reports_the_change(repo, capsys):
    lower_the_bar_and_regress(repo)
    capsys.readouterr()
    assert gate(repo, "validate", "--bar-from", "HEAD") == 0
    out = capsys.readouterr().out
    assert "the working tree changes thresholds/default.yml, thresholds/baseline.json" in out


def test_bar_from__gate_yml_pointing_elsewhere_does_not_escape_the_bar(repo, tmp_path):
    write_replay(repo, wrong=8)
    (repo / "lenient.yml").write_text("metrics:\n  generation.exact_match: {min: 0.1}\n")
    config = (repo / "gate.yml").read_text().replace("thresholds/default.yml", "lenient.yml")
    (repo / "gate.yml").write_text(config)

    assert gate(repo, "run", "-q", "--out", str(tmp_path / "r"), "--bar-from", "HEAD") == 1
    bar = report_of(tmp_path / "r")["bar"]
    assert bar["changed_files"][:2] == ["gate.yml", "lenient.yml"]


def test_bar_from__an_unknown_ref_is_an_input_error_that_says_how_to_fetch(repo, capsys):
    assert gate(repo, "run", "-q", "--bar-from", "no-such-branch") == 2
    err = capsys.readouterr().err
    assert "--bar-from no-such-branch: no such commit in" in err
    assert "git fetch origin" in err and "fetch-depth: 0" in err
    assert "Traceback" not in err


def test_bar_from__outside_a_repository_is_an_input_error(repo, tmp_path, capsys):
    shutil.rmtree(repo / ".git")
    assert gate(repo, "validate", "--bar-from", "HEAD") == 2
    assert "is not in a git repository" in capsys.readouterr().err


def test_bar_from__with_baseline_is_an_input_error(repo, capsys):
    assert gate(repo, "validate", "--bar-from", "HEAD", "--baseline", "b.json") == 2
    assert "use one" in capsys.readouterr().err


def test_bar_from__a_ref_without_the_gate_is_the_first_bar(repo, tmp_path):
    (repo / "README").write_text("x")
    git(repo, "rm", "-q", "--cached", "-r", ".")
    git(repo, "add", "README")
    git(repo, "commit", "-q", "-m", "no gate here")
    git(repo, "add", "-A")

    assert gate(repo, "run", "-q", "--out", str(tmp_path / "r"), "--bar-from", "HEAD") == 0
    report = report_of(tmp_path / "r")
    assert (report["bar"]["first"], report["bar"]["used"]) == (True, "change")
    assert (
        "has no gate config: this change declares the first bar"
        in (tmp_path / "r" / "report.md").read_text()
    )


# --- the action on pull requests --------------------------------------------------------------


@pytest.fixture
def fake() -> Iterator[FakeGitHub]:
    with FakeGitHub() as server:
        yield server


def pr_env(tmp_path: Path, workspace: Path, fake: FakeGitHub, sha: str, *labels: str) -> dict:
    event = json.loads(EVENT.read_text(encoding="utf-8"))
    event["pull_request"]["base"]["sha"] = sha
    event["pull_request"]["labels"] += [{"id": 7, "name": name} for name in labels]
    event_path = tmp_path / "event.json"
    event_path.write_text(json.dumps(event), encoding="utf-8")
    return {
        "INPUT_CONFIG": "gate.yml",
        "INPUT_GITHUB-TOKEN": fake.token,
        "INPUT_BAR-APPROVAL-LABEL": LABEL,
        "GITHUB_EVENT_NAME": "pull_request",
        "GITHUB_EVENT_PATH": str(event_path),
        "GITHUB_REPOSITORY": "Codertocat/Hello-World",
        "GITHUB_API_URL": fake.url,
        "GITHUB_WORKSPACE": str(workspace),
        "GITHUB_OUTPUT": str(tmp_path / "set_output"),
        "GITHUB_STEP_SUMMARY": str(tmp_path / "step_summary"),
    }


def client(token: str, url: str) -> GitHub:
    return GitHub(token, url, sleep=lambda _: None, clock=time.time)


def test_action__a_pull_request_is_judged_by_its_base_commit_s_bar(repo, tmp_path, fake, capsys):
    sha = git(repo, "rev-parse", "HEAD")
    lower_the_bar_and_regress(repo)

    assert action.main(pr_env(tmp_path, repo, fake, sha), github=client) == 1

    report = report_of(repo / "gate-report")
    assert report["verdict"] == "fail"
    assert (report["bar"]["used"], report["bar"]["via"]) == ("ref", "git")
    assert report["bar"]["approval_label"] == LABEL
    [comment] = fake.comments.values()
    assert "**not honoured**" in comment["body"]
    assert "A maintainer approves it with the label “gate: approve bar change”" in comment["body"]
    assert f"| {EXACT} |  | min | 0.9 | 0.5 |" in comment["body"]
    assert "#### Bar" in (tmp_path / "step_summary").read_text()
    assert not [s for s in fake.requests if "/contents/" in s.path]  # git had the commit
    assert f"the bar is the base commit {sha[:12]}'s, read through git" in capsys.readouterr().out


def test_action__the_approval_label_honours_the_pull_request_s_own_bar(repo, tmp_path, fake):
    sha = git(repo, "rev-parse", "HEAD")
    lower_the_bar_and_regress(repo)

    assert action.main(pr_env(tmp_path, repo, fake, sha, LABEL), github=client) == 0

    bar = report_of(repo / "gate-report")["bar"]
    assert (bar["used"], bar["approved"]) == ("change", True)
    [comment] = fake.comments.values()
    assert "approved by the label “gate: approve bar change”" in comment["body"]
    assert f"| {EXACT} |  | min | 0.9 | 0.5 |" in comment["body"]


def test_action__another_label_does_not_approve(repo, tmp_path, fake):
    sha = git(repo, "rev-parse", "HEAD")
    lower_the_bar_and_regress(repo)
    assert action.main(pr_env(tmp_path, repo, fake, sha, "gate: approve"), github=client) == 1


def test_action__a_shallow_checkout_reads_the_bar_through_the_contents_api(repo, tmp_path, fake):
    sha = git(repo, "rev-parse", "HEAD")
    for path in ("gate.yml", "thresholds/default.yml", "thresholds/baseline.json"):
        fake.files[(sha, path)] = git(repo, "show", f"HEAD:{path}").encode() + b"\n"
    lower_the_bar_and_regress(repo)
    shutil.rmtree(repo / ".git")  # the commit is not in the checkout

    assert action.main(pr_env(tmp_path, repo, fake, sha), github=client) == 1

    report = report_of(repo / "gate-report")
    assert (report["bar"]["via"], report["bar"]["used"]) == ("GitHub API", "ref")
    assert report["metrics"]["generation.exact_match"]["baseline"] == 1.0
    read = sorted(s.path for s in fake.sent("GET") if "/contents/" in s.path)
    assert read == [
        "/repos/Codertocat/Hello-World/contents/gate.yml",
        "/repos/Codertocat/Hello-World/contents/thresholds/baseline.json",
        "/repos/Codertocat/Hello-World/contents/thresholds/default.yml",
    ]
    assert all(s.query == {"ref": [sha]} for s in fake.sent("GET") if "/contents/" in s.path)
    fake.verify()


def test_action__a_shallow_checkout_without_a_token_is_an_input_error(repo, tmp_path, fake):
    sha = git(repo, "rev-parse", "HEAD")
    shutil.rmtree(repo / ".git")
    env = pr_env(tmp_path, repo, fake, sha)
    del env["INPUT_GITHUB-TOKEN"]
    with pytest.raises(GateError, match=r"fetch-depth: 0"):
        action.main(env, github=client)


def test_action__a_pull_request_event_without_a_base_sha_is_an_input_error(repo, tmp_path, fake):
    env = pr_env(tmp_path, repo, fake, "not-a-sha")
    with pytest.raises(GateError, match=r"no pull_request\.base\.sha"):
        action.main(env, github=client)


def test_action__a_push_is_judged_by_the_working_tree(repo, tmp_path, fake):
    lower_the_bar_and_regress(repo)
    env = pr_env(tmp_path, repo, fake, "0" * 40)
    env["GITHUB_EVENT_NAME"] = "push"
    assert action.main(env, github=client) == 0
    assert "bar" not in report_of(repo / "gate-report")


def test_markdown__the_bar_section_escapes_what_a_crafted_report_holds():
    from gate.render.markdown import render_comment

    hostile = "@admins <img src=x> | [x](http://e.vil) `code`"
    report = {
        "verdict": "fail",
        "summary": "fail",
        "bar": {
            "ref": hostile,
            "via": hostile,
            "approved": False,
            "approval_label": hostile,
            "changed_files": [hostile],
            "changes": [
                {"metric": hostile, "slice": hostile, "rule": hostile, "base": hostile, "change": 1}
            ],
        },
    }
    body = render_comment(report, None, "<!-- m -->")
    section = body.split("#### Bar", 1)[1]
    assert "@admins" not in section and "<img" not in section and "](http" not in section
    assert "\\|" in section and "@\u200badmins" in section
