"""``gate action`` and ``gate comment`` with exactly the environment GitHub gives a Docker action.

No Docker engine runs here, so the container's contract is tested at its entry point: inputs as
``INPUT_<NAME>`` with hyphens kept, the real webhook payloads from data/oracles/github/events as
``GITHUB_EVENT_PATH``, output and summary files in tmp_path, and the fake_github GitHub as the API.
"""

from __future__ import annotations

import copy
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from fake_github import FakeGitHub

from gate import action
from gate.errors import GateError
from gate.pipeline import Outcome, RunOptions
from gate.publish.github import GitHub

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).parent / "data"
EVENTS = DATA / "oracles" / "github" / "events"
REPORTS = DATA / "reports"
PR_PAYLOADS = [
    "pull_request_opened.payload.json",
    "pull_request_opened.with-organization.payload.json",
    "pull_request_synchronize.payload.json",
]
WORKFLOW_RUN = "workflow_run_completed.with-pull-requests.payload.json"


def load_report(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((REPORTS / f"{name}.json").read_text("utf-8"))
    return loaded


@dataclass
class FakeRun:
    """Stands in for ``gate.pipeline.run``: writes the canned report where the real one would."""

    report: dict[str, Any]
    seen: list[RunOptions] = field(default_factory=list)

    def __call__(self, options: RunOptions) -> Outcome:
        self.seen.append(options)
        options.out_dir.mkdir(parents=True, exist_ok=True)
        report_path = options.out_dir / "report.json"
        report_path.write_text(json.dumps(self.report), encoding="utf-8")
        markdown_path = options.out_dir / "report.md"
        markdown_path.write_text("report", encoding="utf-8")
        code = 0 if self.report["verdict"] == "pass" else 1
        return Outcome(code, self.report, report_path, markdown_path)


def client(sleeps: list[float]) -> action.GitHubFactory:
    return lambda token, url: GitHub(token, url, sleep=sleeps.append, clock=time.time)


def github_env(
    tmp_path: Path,
    fake_github: FakeGitHub,
    event: str = PR_PAYLOADS[0],
    event_name: str = "pull_request",
    **inputs: str,
) -> dict[str, str]:
    """What the runner sets for a Docker action's container (paths made local)."""
    workspace = tmp_path / "workspace"
    workspace.mkdir(exist_ok=True)
    env = {
        "INPUT_CONFIG": "gate.yml",
        "INPUT_GITHUB-TOKEN": fake_github.token,
        "INPUT_COMMENT": "true",
        "INPUT_FAIL-ON": "any",
        "INPUT_UPDATE-BASELINE": "false",
        "INPUT_OUTPUT-DIR": "gate-report",
        "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": event_name,
        "GITHUB_EVENT_PATH": str(EVENTS / event),
        "GITHUB_REPOSITORY": "Codertocat/Hello-World",
        "GITHUB_API_URL": fake_github.url,
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_WORKSPACE": str(workspace),
        "GITHUB_OUTPUT": str(tmp_path / "set_output"),
        "GITHUB_STEP_SUMMARY": str(tmp_path / "step_summary"),
        "GITHUB_SHA": "ec26c3e57ca3a959ca5aad62de7213c562f8c821",
        "GITHUB_RUN_ID": "30433642",
    }
    env.update({f"INPUT_{name.upper().replace('_', '-')}": value for name, value in inputs.items()})
    return env


def read_outputs(path: Path) -> dict[str, str]:
    """Parse ``$GITHUB_OUTPUT`` as the runner does: ``name=value`` or ``name<<DELIMITER``."""
    outputs, lines = {}, iter(path.read_text(encoding="utf-8").splitlines())
    for line in lines:
        name, delimiter = line.split("<<", 1)
        value = []
        for body in lines:
            if body == delimiter:
                break
            value.append(body)
        outputs[name] = "\n".join(value)
    return outputs


@pytest.mark.parametrize("payload", PR_PAYLOADS)
def test_main__pull_request_posts_the_comment_and_writes_outputs(
    tmp_path: Path, fake_github: FakeGitHub, payload: str
) -> None:
    report = load_report("fail")
    report["summary"] = "fail: 3 of 9 checks failed\nsecond line: 100% sure, a::b"
    run = FakeRun(report)
    env = github_env(tmp_path, fake_github, payload)

    code = action.main(env, run)

    assert code == 1
    (options,) = run.seen
    workspace = Path(env["GITHUB_WORKSPACE"])
    assert options.config == workspace / "gate.yml"
    assert options.out_dir == workspace / "gate-report"
    assert not options.update_baseline
    (comment,) = fake_github.comments_on(2)
    assert comment["body"].startswith("<!-- gate:comment config=")
    assert "### ❌ gate: fail" in comment["body"]
    assert "/Codertocat/Hello-World/actions/runs/30433642" in comment["body"]
    assert read_outputs(tmp_path / "set_output") == {
        "verdict": "fail",
        "report-path": "gate-report/report.json",
        "summary": report["summary"],
        "comment-url": comment["html_url"],
    }
    assert "#### Metrics" in (tmp_path / "step_summary").read_text(encoding="utf-8")
    assert not (workspace / "gate-report" / "pr-number.txt").exists()  # the API finds the PR


def test_main__second_run_updates_the_same_comment(tmp_path: Path, fake_github: FakeGitHub) -> None:
    env = github_env(tmp_path, fake_github)

    assert action.main(env, FakeRun(load_report("fail"))) == 1
    assert action.main(env, FakeRun(load_report("pass"))) == 0

    (comment,) = fake_github.comments_on(2)
    assert "### ✅ gate: pass" in comment["body"]
    assert len(fake_github.sent("POST")) == 1
    assert len(fake_github.sent("PATCH")) == 1
    summary = (tmp_path / "step_summary").read_text(encoding="utf-8")
    # Appended to, not overwritten: both runs' reports are there.
    assert summary.count("### ❌ gate: fail") == summary.count("### ✅ gate: pass") == 1


@pytest.mark.parametrize(
    ("payload", "event_name"),
    [("push_payload.json", "push"), ("workflow_dispatch_payload.json", "workflow_dispatch")],
)
def test_main__other_events_do_not_comment(
    tmp_path: Path, fake_github: FakeGitHub, payload: str, event_name: str
) -> None:
    env = github_env(tmp_path, fake_github, payload, event_name)

    assert action.main(env, FakeRun(load_report("pass"))) == 0

    assert fake_github.requests == []
    assert read_outputs(tmp_path / "set_output")["comment-url"] == ""
    assert not (Path(env["GITHUB_WORKSPACE"]) / "gate-report" / "pr-number.txt").exists()


def test_main__comment_false_does_not_comment(tmp_path: Path, fake_github: FakeGitHub) -> None:
    assert (
        action.main(
            github_env(tmp_path, fake_github, comment="false"), FakeRun(load_report("pass"))
        )
        == 0
    )
    assert fake_github.requests == []


@pytest.mark.parametrize(("verdict", "code"), [("fail", 1), ("pass", 0)])
def test_main__a_read_only_token_is_a_warning_and_keeps_the_verdict(
    tmp_path: Path,
    fake_github: FakeGitHub,
    capsys: pytest.CaptureFixture[str],
    verdict: str,
    code: int,
) -> None:
    fake_github.fail_next(403, message="Resource not accessible by integration")

    assert action.main(github_env(tmp_path, fake_github), FakeRun(load_report(verdict))) == code

    out = capsys.readouterr().out
    assert "::warning title=gate%3A PR comment::the PR comment was not posted" in out
    assert "read-only token" in out
    summary = (tmp_path / "step_summary").read_text(encoding="utf-8")
    assert "the PR comment was not posted" in summary
    assert read_outputs(tmp_path / "set_output")["comment-url"] == ""


def test_main__server_errors_are_retried_then_a_warning(
    tmp_path: Path, fake_github: FakeGitHub, sleeps: list[float], capsys: pytest.CaptureFixture[str]
) -> None:
    fake_github.fail_next(500, times=10)

    code = action.main(
        github_env(tmp_path, fake_github), FakeRun(load_report("fail")), client(sleeps)
    )

    assert code == 1
    assert len(sleeps) == 4
    assert "::warning title=gate%3A PR comment::" in capsys.readouterr().out


def regression_only() -> dict[str, Any]:
    report = load_report("fail")
    report["checks"] = [c for c in report["checks"] if c["kind"] == "regression"]
    return report


def absolute_only() -> dict[str, Any]:
    report = load_report("fail")
    report["checks"] = [c for c in report["checks"] if c["kind"] == "absolute"]
    return report


@pytest.mark.parametrize(
    ("fail_on", "report", "code", "errors", "warnings"),
    [
        ("any", absolute_only, 1, 2, 0),
        ("any", regression_only, 1, 1, 0),
        ("regression", absolute_only, 0, 0, 2),
        ("regression", regression_only, 1, 1, 0),
        ("never", regression_only, 0, 0, 1),
        ("never", lambda: load_report("pass"), 0, 0, 0),
    ],
)
def test_main__fail_on_decides_the_exit_code_and_annotations(
    tmp_path: Path,
    fake_github: FakeGitHub,
    capsys: pytest.CaptureFixture[str],
    fail_on: str,
    report: Any,
    code: int,
    errors: int,
    warnings: int,
) -> None:
    env = github_env(tmp_path, fake_github, "push_payload.json", "push", fail_on=fail_on)

    assert action.main(env, FakeRun(report())) == code

    out = capsys.readouterr().out
    assert out.count("::error title=gate%3A ") == errors
    assert out.count("::warning title=gate%3A ") == warnings


def test_main__annotations_are_escaped(
    tmp_path: Path, fake_github: FakeGitHub, capsys: pytest.CaptureFixture[str]
) -> None:
    report = load_report("fail")
    report["checks"] = [
        {**report["checks"][0], "slice": "a,b:c", "reason": "100%\n::add-mask::x\r"}
    ]
    env = github_env(tmp_path, fake_github, "push_payload.json", "push")

    action.main(env, FakeRun(report))

    lines = capsys.readouterr().out.splitlines()
    assert (
        "::error title=gate%3A retrieval.hit_rate@5 [a%2Cb%3Ac]::retrieval.hit_rate@5 [a,b:c]: "
        "100%25%0A::add-mask::x%0D (baseline 0.9)"
    ) in lines
    assert "::add-mask::x" not in lines


def test_main__the_token_never_leaks(
    tmp_path: Path, fake_github: FakeGitHub, sleeps: list[float], capsys: pytest.CaptureFixture[str]
) -> None:
    env = github_env(tmp_path, fake_github)
    fake_github.fail_next(403, message=f"Bad credentials {fake_github.token}")
    action.main(env, FakeRun(load_report("hostile")), client(sleeps))
    fake_github.fail_next(500, times=10)
    action.main(env, FakeRun(load_report("fail")), client(sleeps))

    out, err = capsys.readouterr()
    leaking = [line for line in out.splitlines() if fake_github.token in line]
    assert leaking == [f"::add-mask::{fake_github.token}"] * 2  # masked first, then never shown
    assert fake_github.token not in err
    for written in (tmp_path / "set_output", tmp_path / "step_summary"):
        assert fake_github.token not in written.read_text(encoding="utf-8")
    for path in (tmp_path / "workspace" / "gate-report").iterdir():
        assert fake_github.token not in path.read_text(encoding="utf-8")


def test_main__the_pipeline_under_test_does_not_see_the_token(
    tmp_path: Path, fake_github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INPUT_GITHUB-TOKEN", fake_github.token)
    seen: list[str | None] = []

    def run(options: RunOptions) -> Outcome:
        import os

        seen.append(os.environ.get("INPUT_GITHUB-TOKEN"))
        return FakeRun(load_report("pass"))(options)

    action.main(github_env(tmp_path, fake_github, "push_payload.json", "push"), run)

    assert seen == [None]


def test_main__workflow_commands_are_off_while_the_pipeline_runs(
    tmp_path: Path, fake_github: FakeGitHub, capsys: pytest.CaptureFixture[str]
) -> None:
    def run(options: RunOptions) -> Outcome:
        print("::add-mask::printed by the model")
        return FakeRun(load_report("pass"))(options)

    action.main(github_env(tmp_path, fake_github, "push_payload.json", "push"), run)

    lines = capsys.readouterr().out.splitlines()
    stop = next(i for i, line in enumerate(lines) if line.startswith("::stop-commands::"))
    resume = "::" + lines[stop].removeprefix("::stop-commands::") + "::"
    assert lines[stop + 1 : stop + 3] == ["::add-mask::printed by the model", resume]


def test_main__a_run_input_error_is_annotated_and_raised(
    tmp_path: Path, fake_github: FakeGitHub, capsys: pytest.CaptureFixture[str]
) -> None:
    def run(options: RunOptions) -> Outcome:
        raise GateError("gate.yml:3: pipeline.target: module not found")

    with pytest.raises(GateError, match="module not found"):
        action.main(github_env(tmp_path, fake_github), run)

    out = capsys.readouterr().out
    assert "::error title=gate%3A input error::gate.yml:3: pipeline.target: module not found" in out
    assert fake_github.requests == []


@pytest.mark.parametrize(
    ("name", "value", "fix"),
    [
        ("fail-on", "sometimes", "      fail-on: any  # or: regression, never"),
        ("comment", "yes", "      comment: true"),
        ("update-baseline", "1", "      update-baseline: false"),
    ],
)
def test_main__a_bad_input_names_it_and_shows_the_fix(
    tmp_path: Path,
    fake_github: FakeGitHub,
    capsys: pytest.CaptureFixture[str],
    name: str,
    value: str,
    fix: str,
) -> None:
    env = github_env(tmp_path, fake_github)
    env[f"INPUT_{name.upper()}"] = value
    run = FakeRun(load_report("pass"))

    with pytest.raises(GateError) as caught:
        action.main(env, run)

    message = str(caught.value)
    assert "::error title=gate%3A input error::input `" in capsys.readouterr().out
    assert f"input `{name}`:" in message
    assert repr(value) in message
    assert "    with:\n" + fix in message
    assert run.seen == []


def test_main__empty_inputs_take_the_defaults(tmp_path: Path, fake_github: FakeGitHub) -> None:
    env = github_env(tmp_path, fake_github, "push_payload.json", "push")
    for name in ("CONFIG", "COMMENT", "FAIL-ON", "UPDATE-BASELINE", "OUTPUT-DIR"):
        env[f"INPUT_{name}"] = ""
    run = FakeRun(absolute_only())

    assert action.main(env, run) == 1

    assert run.seen[0].config.name == "gate.yml"
    assert run.seen[0].out_dir.name == "gate-report"


def test_action_yml__declares_what_the_code_reads_and_writes() -> None:
    declared = yaml.safe_load((ROOT / "action.yml").read_text(encoding="utf-8"))
    defaults = action.Inputs()

    assert set(declared["inputs"]) == set(action.EXAMPLES)
    assert set(declared["outputs"]) == {"verdict", "report-path", "summary", "comment-url"}
    assert declared["runs"] == {"using": "docker", "image": "Dockerfile"}
    assert declared["inputs"]["fail-on"]["default"] == defaults.fail_on
    assert declared["inputs"]["output-dir"]["default"] == str(defaults.output_dir)
    assert declared["inputs"]["config"]["default"] == str(defaults.config)
    assert declared["inputs"]["comment"]["default"] == "true"
    assert declared["inputs"]["update-baseline"]["default"] == "false"


# --- gate comment: the privileged half --------------------------------------------------------


def comment_env(tmp_path: Path, fake_github: FakeGitHub, event: dict[str, Any]) -> dict[str, str]:
    event_path = tmp_path / "event.json"
    event_path.write_text(json.dumps(event), encoding="utf-8")
    return {
        "GITHUB_TOKEN": fake_github.token,
        "GITHUB_EVENT_NAME": "workflow_run",
        "GITHUB_EVENT_PATH": str(event_path),
        "GITHUB_REPOSITORY": "Codertocat/Hello-World",
        "GITHUB_API_URL": fake_github.url,
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_RUN_ID": "99",
        "GITHUB_OUTPUT": str(tmp_path / "set_output"),
    }


def artifact(tmp_path: Path, report: str = "fail", pr_number: str | None = None) -> Path:
    folder = tmp_path / "artifact"
    folder.mkdir()
    (folder / "report.json").write_text(json.dumps(load_report(report)), encoding="utf-8")
    if pr_number is not None:
        (folder / "pr-number.txt").write_text(pr_number, encoding="utf-8")
    return folder / "report.json"


def workflow_run_event(pull_requests: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / WORKFLOW_RUN).read_text(encoding="utf-8"))
    if pull_requests is not None:
        event = copy.deepcopy(event)
        event["workflow_run"]["pull_requests"] = pull_requests
    return event


HEAD_SHA = "3484a3fb816e0859fd6e1cea078d76385ff50625"
"""The payload's workflow_run.head_sha, pushed to its head repository octo-org/octo-repo."""


def test_comment__posts_on_the_pull_request_the_api_names(
    tmp_path: Path, fake_github: FakeGitHub
) -> None:
    event = workflow_run_event()
    fake_github.add_pull(2, HEAD_SHA, "octo-org/octo-repo")
    env = comment_env(tmp_path, fake_github, event)

    assert action.comment(artifact(tmp_path, pr_number="999"), env) == 0

    (comment,) = fake_github.comments_on(2)  # the API's answer, never the artifact's file
    assert f"[the run]({event['workflow_run']['html_url']})" in comment["body"]
    assert read_outputs(tmp_path / "set_output") == {
        "verdict": "fail",
        "comment-url": comment["html_url"],
    }
    fake_github.verify()


def test_comment__updates_the_comment_the_action_posted(
    tmp_path: Path, fake_github: FakeGitHub
) -> None:
    action.main(github_env(tmp_path, fake_github), FakeRun(load_report("fail")))
    fake_github.add_pull(2, HEAD_SHA, "octo-org/octo-repo")
    env = comment_env(tmp_path, fake_github, workflow_run_event())

    action.comment(artifact(tmp_path, "pass"), env)

    (comment,) = fake_github.comments_on(2)
    assert "### ✅ gate: pass" in comment["body"]


def test_comment__nothing_to_do_without_a_pull_request(
    tmp_path: Path, fake_github: FakeGitHub
) -> None:
    env = comment_env(tmp_path, fake_github, workflow_run_event(pull_requests=[]))

    assert action.comment(artifact(tmp_path, pr_number="7"), env) == 0
    assert fake_github.sent("POST") == fake_github.sent("PATCH") == []
    assert fake_github.comments == {}


def test_comment__needs_a_token(tmp_path: Path, fake_github: FakeGitHub) -> None:
    env = comment_env(tmp_path, fake_github, workflow_run_event())
    del env["GITHUB_TOKEN"]

    with pytest.raises(GateError, match=re.escape("GITHUB_TOKEN: ${{ github.token }}")):
        action.comment(artifact(tmp_path), env)


@pytest.mark.parametrize("content", ["not json", "[1, 2]", '{"metrics": {}}'])
def test_comment__rejects_what_is_not_a_report(
    tmp_path: Path, fake_github: FakeGitHub, content: str
) -> None:
    path = tmp_path / "report.json"
    path.write_text(content, encoding="utf-8")

    with pytest.raises(GateError, match="not a gate report"):
        action.comment(path, comment_env(tmp_path, fake_github, workflow_run_event()))


def test_comment__a_refusal_is_an_error_here(tmp_path: Path, fake_github: FakeGitHub) -> None:
    """Unlike the action, posting is this command's whole job: a 403 fails the step."""
    fake_github.add_pull(2, HEAD_SHA, "octo-org/octo-repo")
    fake_github.fail_next(403, message="Resource not accessible by integration")

    with pytest.raises(GateError, match="HTTP 403"):
        action.comment(artifact(tmp_path), comment_env(tmp_path, fake_github, workflow_run_event()))


def test_workflow_command__escapes_data_and_properties() -> None:
    line = action.workflow_command("error", "50%\r\ndone", title="a:b,c\n")

    assert line == "::error title=a%3Ab%2Cc%0A::50%25%0D%0Adone"


def test_entry_point__the_real_gate_on_the_shipped_example_comments_on_the_pull_request(
    tmp_path: Path, example: Path, fake_github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The container's contract: `gate action` (the Dockerfile's ENTRYPOINT) with exactly the
    environment GitHub gives a Docker action, running the real gate on this repository."""
    from gate.cli import main as cli

    env = github_env(tmp_path, fake_github)
    assert Path(env["GITHUB_WORKSPACE"]) == example
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(example)

    assert cli(["action"]) == 0

    outputs = read_outputs(tmp_path / "set_output")
    assert outputs["verdict"] == "pass"
    assert outputs["summary"].startswith("pass: ")
    report = json.loads(Path(example / outputs["report-path"]).read_text(encoding="utf-8"))
    assert report["baseline"]["status"] == "found"
    [posted] = fake_github.comments.values()
    assert "gate: pass" in posted["body"]
    assert outputs["comment-url"] == posted["html_url"]
    assert (tmp_path / "step_summary").read_text(encoding="utf-8").startswith("### ✅ gate: pass")
