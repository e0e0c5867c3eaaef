"""The action in a team's repository (issue 12), through ``gate action`` with the environment
GitHub gives a Docker action and the fake_github GitHub checked against GitHub's API description:
the fork-safe comment mode, the team's own requirements, files later steps can use, annotations
with file and line, and the JUnit file."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from builders import copy_example
from fake_github import FakeGitHub
from test_action import EVENTS, WORKFLOW_RUN, FakeRun, github_env, load_report, read_outputs

from gate import action, install
from gate.errors import GateError
from gate.load.config import HttpPipeline, load_config
from gate.render import markdown

FORK = "octo-org/octo-repo"
FORK_SHA = "3484a3fb816e0859fd6e1cea078d76385ff50625"
"""The payload's workflow_run: a run on the fork's head commit."""
OURS_SHA = "f95f852bd8fca8fcc58a9a2d6c842781e32a215e"
REPOSITORY = "Codertocat/Hello-World"


@pytest.fixture
def fake() -> Any:
    with FakeGitHub() as server:
        yield server
        server.verify()


# --- mode: comment, the fork-safe half --------------------------------------------------------


def comment_mode_env(
    tmp_path: Path, fake_github: FakeGitHub, run: dict[str, Any] | None = None, **inputs: str
) -> dict[str, str]:
    event: dict[str, Any] = json.loads((EVENTS / WORKFLOW_RUN).read_text(encoding="utf-8"))
    event = copy.deepcopy(event)
    event["workflow_run"]["pull_requests"] = []  # what GitHub sends for a fork's pull request
    event["workflow_run"].update(run or {})
    (tmp_path / "event.json").write_text(json.dumps(event), encoding="utf-8")
    env = github_env(
        tmp_path, fake_github, "push_payload.json", "workflow_run", mode="comment", **inputs
    )
    env["GITHUB_EVENT_PATH"] = str(tmp_path / "event.json")
    return env


def download(env: dict[str, str], report: dict[str, Any], **files: str) -> Path:
    """What actions/download-artifact leaves in the empty workspace: the fork's files."""
    folder = Path(env["GITHUB_WORKSPACE"]) / "gate-report"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.json").write_text(json.dumps(report), encoding="utf-8")
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def test_comment_mode__a_forged_artifact_edits_nothing_but_its_own_pull_request(
    tmp_path: Path, fake_github: FakeGitHub
) -> None:
    # PR #7 (this repository) has the gate's fail comment; the fork's PR #2 ran the gate too.
    fake_github.add_pull(7, OURS_SHA, REPOSITORY)
    fake_github.add_pull(2, FORK_SHA, FORK)
    ours = markdown.render_comment(load_report("fail"), None, markdown.marker("gate.yml"))
    seven = fake_github.add_comment(7, ours, login=fake_github.login)
    # The fork's artifact says "pass", names PR #7 and a config whose marker is PR #7's.
    forged = {**load_report("pass"), "config": "gate.yml", "pull_request": 7}
    env = comment_mode_env(tmp_path, fake_github)
    download(env, forged, **{"pr-number.txt": "7\n", "gate.yml": "comment: {pr: 7}\n"})

    assert action.main(env, FakeRun(forged)) == 0

    assert fake_github.comments[seven["id"]]["body"] == ours  # untouched
    (posted,) = fake_github.comments_on(2)
    assert posted["body"].startswith(markdown.marker("gate.yml"))
    assert "### ✅ gate: pass" in posted["body"]
    assert [seen.path for seen in fake_github.sent("PATCH")] == []
    assert read_outputs(tmp_path / "set_output")["comment-url"] == posted["html_url"]


def test_comment_mode__the_marker_comes_from_the_config_input_not_the_report(
    tmp_path: Path, fake_github: FakeGitHub
) -> None:
    fake_github.add_pull(2, FORK_SHA, FORK)
    env = comment_mode_env(tmp_path, fake_github, config="evals/gate.yml")
    download(env, {**load_report("fail"), "config": "gate.yml"})

    action.main(env, FakeRun(load_report("fail")))

    (posted,) = fake_github.comments_on(2)
    assert posted["body"].startswith(markdown.marker("evals/gate.yml"))


def test_comment_mode__a_pull_request_at_the_same_sha_from_another_repository_is_not_it(
    tmp_path: Path, fake_github: FakeGitHub
) -> None:
    fake_github.add_pull(7, FORK_SHA, REPOSITORY)  # the fork pushed PR #7's commit: same sha
    env = comment_mode_env(tmp_path, fake_github)
    download(env, load_report("pass"))

    assert action.main(env, FakeRun(load_report("pass"))) == 0

    assert fake_github.comments == {}
    (listed,) = fake_github.sent("GET")
    assert listed.path == f"/repos/{REPOSITORY}/commits/{FORK_SHA}/pulls"


def test_comment_mode__runs_no_gate_and_needs_no_checkout(
    tmp_path: Path, fake_github: FakeGitHub
) -> None:
    fake_github.add_pull(2, FORK_SHA, FORK)
    env = comment_mode_env(tmp_path, fake_github)
    download(env, load_report("fail"))
    run = FakeRun(load_report("pass"))

    assert action.main(env, run) == 0  # the comment is the job; the verdict failed the gate run

    assert run.seen == []
    assert read_outputs(tmp_path / "set_output")["verdict"] == "fail"


@pytest.mark.parametrize(
    ("run", "report", "message"),
    [
        ({"head_sha": "HEAD; rm -rf /"}, '{"verdict": "pass"}', "not a commit sha"),
        ({"head_repository": None}, '{"verdict": "pass"}', "not owner/name"),
        ({}, "not json", "not a gate report"),
        ({}, '{"metrics": {}}', "not a gate report"),
    ],
)
def test_comment_mode__refuses_what_it_cannot_trust(
    tmp_path: Path, fake_github: FakeGitHub, run: dict[str, Any], report: str, message: str
) -> None:
    env = comment_mode_env(tmp_path, fake_github, run)
    folder = download(env, {})
    (folder / "report.json").write_text(report, encoding="utf-8")

    with pytest.raises(GateError, match=message):
        action.main(env, FakeRun(load_report("pass")))
    assert fake_github.comments == {}


def test_comment_mode__only_on_workflow_run_events(tmp_path: Path, fake_github: FakeGitHub) -> None:
    env = github_env(tmp_path, fake_github, mode="comment")
    download(env, load_report("pass"))

    with pytest.raises(GateError, match="workflow_run"):
        action.main(env, FakeRun(load_report("pass")))
    assert fake_github.requests == []


def test_comment_mode__an_oversized_report_is_refused_unread(
    tmp_path: Path, fake_github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(action, "MAX_REPORT_BYTES", 1000)
    env = comment_mode_env(tmp_path, fake_github)
    download(env, {**load_report("pass"), "padding": "x" * 2000})

    with pytest.raises(GateError, match="is not a gate report"):
        action.main(env, FakeRun(load_report("pass")))


# --- requirements: the team's pipeline runs ---------------------------------------------------


def wheel(folder: Path, name: str = "gate_extra_dep") -> Path:
    """A one-module wheel, written by hand: no build backend, no network."""
    files = {
        f"{name}/__init__.py": "GREETING = 'installed by the requirements input'\n",
        f"{name}-1.0.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n",
        f"{name}-1.0.dist-info/WHEEL": "Wheel-Version: 1.0\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }
    record = [
        f"{path},sha256={_digest(text.encode())},{len(text.encode())}"
        for path, text in files.items()
    ]
    files[f"{name}-1.0.dist-info/RECORD"] = "\n".join([*record, f"{name}-1.0.dist-info/RECORD,,"])
    path = folder / f"{name}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for member, text in files.items():
            archive.writestr(member, text)
    return path


def _digest(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


@pytest.fixture
def pip_target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where pip installs in a test: a folder of its own on the import path, never the shared
    site-packages; and no index (no network)."""
    target = tmp_path / "site"
    target.mkdir()
    monkeypatch.setenv("PIP_TARGET", str(target))
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.syspath_prepend(str(target))
    # The gate runs in a child process (and python pipelines in workers): they look there too.
    paths = [str(target), *filter(None, [os.environ.get("PYTHONPATH")])]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(paths))
    for name in [m for m in sys.modules if m.startswith(("gate_extra_dep", "team_pipeline"))]:
        monkeypatch.delitem(sys.modules, name)
    return target


def test_requirements__a_pipeline_with_an_extra_dependency_passes(
    tmp_path: Path, fake_github: FakeGitHub, pip_target: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    built = wheel(tmp_path)
    env = github_env(
        tmp_path, fake_github, "push_payload.json", "push", requirements="requirements.txt"
    )
    env["PYTHONPATH"] = os.environ["PYTHONPATH"]  # the run's child process imports from there
    workspace = copy_example(Path(env["GITHUB_WORKSPACE"]))
    (workspace / "requirements.txt").write_text(
        "# pinned, with hashes: installed with --require-hashes\n"
        f"gate_extra_dep @ {built.as_uri()} \\\n"
        f"    --hash=sha256:{hashlib.sha256(built.read_bytes()).hexdigest()}\n",
        encoding="utf-8",
    )
    (workspace / "team_pipeline_extra.py").write_text(
        "import gate_extra_dep\n"
        "from examples.rag import answer as rag\n\n\n"
        "def answer(question, case):\n"
        "    assert gate_extra_dep.GREETING\n"
        "    return rag(question, case)\n",
        encoding="utf-8",
    )
    config = workspace / "gate.yml"
    config.write_text(
        config.read_text(encoding="utf-8").replace(
            "examples.rag:answer", "team_pipeline_extra:answer"
        ),
        encoding="utf-8",
    )

    assert action.main(env) == 0

    out = capsys.readouterr().out
    assert "pip install --disable-pip-version-check" in out
    assert "--require-hashes -r requirements.txt" in out
    assert (pip_target / "gate_extra_dep" / "__init__.py").is_file()
    assert read_outputs(tmp_path / "set_output")["verdict"] == "pass"


def test_requirements__a_failed_install_is_an_input_error_before_the_run(
    tmp_path: Path, fake_github: FakeGitHub, pip_target: Path
) -> None:
    env = github_env(
        tmp_path, fake_github, "push_payload.json", "push", requirements="gate-no-such-package==1.0"
    )
    run = FakeRun(load_report("pass"))

    with pytest.raises(GateError, match=r"pip install .*gate-no-such-package==1.0` failed"):
        action.main(env, run)
    assert run.seen == []


@pytest.mark.parametrize(
    ("requirements", "files", "expected"),
    [
        ("requirements.txt", {"requirements.txt": "tiktoken==0.7\n"}, ["-r", "requirements.txt"]),
        (
            "ci/requirements.lock",
            {"ci/requirements.lock": "# --hash=sha256:0 is a comment\nx==1 --hash=sha256:ab\n"},
            ["--require-hashes", "-r", "ci/requirements.lock"],
        ),
        (
            "reqs.txt",
            {"reqs.txt": "# a comment: --hash=sha256:00\nx==1\n"},
            ["-r", "reqs.txt"],
        ),
        ("tiktoken==0.7  my-package[extra]>=2", {}, ["tiktoken==0.7", "my-package[extra]>=2"]),
    ],
)
def test_pip_command__a_file_hash_checked_when_it_pins_hashes_or_a_spec(
    tmp_path: Path, requirements: str, files: dict[str, str], expected: list[str]
) -> None:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text, encoding="utf-8")

    command = install.pip_command(requirements, tmp_path)

    assert command[:4] == [sys.executable, "-m", "pip", "install"]
    assert command[4 + len(install.PIP_QUIET) :] == expected


@pytest.mark.parametrize(
    ("requirements", "message"),
    [
        ("requirements/dev.txt", "no file requirements/dev.txt in the repository"),
        ("tiktoken --index-url http://evil", "'--index-url' is a pip option"),
        ("'unclosed", "No closing quotation"),
    ],
)
def test_pip_command__says_what_to_fix(tmp_path: Path, requirements: str, message: str) -> None:
    with pytest.raises(GateError, match=message):
        install.pip_command(requirements, tmp_path)


# --- files later steps can use ----------------------------------------------------------------

RUNNER = (1001, 127)
"""The uid and gid of the runner's user on GitHub's Ubuntu images, who owns the workspace."""


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root")
def test_files__owned_like_the_workspace_when_the_container_runs_as_root(
    tmp_path: Path, fake_github: FakeGitHub
) -> None:
    env = github_env(tmp_path, fake_github, "push_payload.json", "push", update_baseline="true")
    workspace = copy_example(Path(env["GITHUB_WORKSPACE"]))
    env["INPUT_OUTPUT-DIR"] = "out/gate-report"
    os.chown(workspace, *RUNNER)

    assert action.main(env) == 0

    written = [
        workspace / "out",
        workspace / "out" / "gate-report",
        *(workspace / "out" / "gate-report").iterdir(),
        workspace / "thresholds" / "baseline.json",
    ]
    assert {(p.stat().st_uid, p.stat().st_gid) for p in written} == {RUNNER}
    assert {"report.json", "report.md", "records.jsonl"} <= {p.name for p in written}
    untouched = workspace / "thresholds" / "default.yml"
    assert (untouched.stat().st_uid, untouched.stat().st_gid) == (0, 0)
    assert (workspace.parent.stat().st_uid, workspace.parent.stat().st_gid) == (0, 0)


def test_files__left_alone_when_the_owner_is_already_the_workspace_s(
    tmp_path: Path, fake_github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    changed: list[Any] = []
    monkeypatch.setattr(os, "chown", lambda *args, **kwargs: changed.append(args))
    env = github_env(tmp_path, fake_github, "push_payload.json", "push")

    action.main(env, FakeRun(load_report("pass")))

    assert changed == []


# --- annotations on the line to fix -----------------------------------------------------------


def break_a_must_pass_case(workspace: Path) -> None:
    """Line 7 of the golden set, tagged high-risk, now expects what the pipeline never says."""
    golden = workspace / "datasets" / "golden.jsonl"
    lines = golden.read_text(encoding="utf-8").splitlines(keepends=True)
    assert '"sso-locked-out"' in lines[6]
    lines[6] = lines[6].replace('["break-glass account"]', '["a phrase never said"]')
    golden.write_text("".join(lines), encoding="utf-8")


@pytest.mark.parametrize(
    ("fail_on", "code", "level"), [("regression", 1, "error"), ("never", 0, "warning")]
)
def test_annotations__a_must_pass_failure_on_its_lines_and_failing_the_step(
    tmp_path: Path,
    fake_github: FakeGitHub,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    fail_on: str,
    code: int,
    level: str,
) -> None:
    env = github_env(tmp_path, fake_github, "push_payload.json", "push", fail_on=fail_on)
    workspace = copy_example(Path(env["GITHUB_WORKSPACE"]))
    break_a_must_pass_case(workspace)
    monkeypatch.chdir(workspace)  # the container's working directory

    assert action.main(env) == code

    out = [line for line in capsys.readouterr().out.splitlines() if line.startswith("::")]
    annotations = [line for line in out if line.startswith(("::error", "::warning"))]
    # Most important first: the must_pass rule (thresholds line 20, `tags: [high-risk]`), then
    # the failing case on its golden-set line.
    assert annotations[0].startswith(
        f"::{level} file=thresholds/default.yml,line=20,title=gate%3A must_pass [high-risk]::"
    )
    assert annotations[1].startswith(
        f"::{level} file=datasets/golden.jsonl,line=7,title=gate%3A must-pass case sso-locked-out::"
    )
    assert all(",line=" in line for line in annotations)
    report = json.loads((workspace / "gate-report" / "report.json").read_text(encoding="utf-8"))
    failing = [c for c in report["checks"] if c["status"] == "fail"]
    assert [c["rule"] for c in failing if c["kind"] == "regression"] == []  # exit 1: must_pass
    must = next(c for c in failing if c["rule"] == "must_pass")
    assert must["source"] == {"file": "thresholds/default.yml", "line": 20}


def test_annotations__at_most_ten_most_important_first_then_how_many_more(
    tmp_path: Path, fake_github: FakeGitHub, capsys: pytest.CaptureFixture[str]
) -> None:
    report = load_report("fail")
    regression = next(c for c in report["checks"] if c["kind"] == "regression")
    absolute = next(
        c for c in report["checks"] if c["status"] == "fail" and c["kind"] == "absolute"
    )
    must = {
        **absolute,
        "metric": "agent.task_success",
        "slice": "high-risk",
        "rule": "must_pass",
        "reason": "1 of 3 must-pass cases failed",
        "source": {"file": "thresholds/default.yml", "line": 20},
    }
    # Regressions listed first in the report, 90 of them: the must_pass failure still leads.
    report["checks"] = [
        *(
            {**regression, "metric": f"m{i}", "source": {"file": "t.yml", "line": i + 1}}
            for i in range(80)
        ),
        *({**absolute, "metric": f"a{i}"} for i in range(10)),
        must,
    ]
    case = {**report["cases"]["failing"][0], "id": "sso", "tags": ["high-risk"]}
    report["cases"]["failing"] = [{**case, "source": {"file": "golden.jsonl", "line": 7}}]
    env = github_env(tmp_path, fake_github, "push_payload.json", "push")

    assert action.main(env, FakeRun(report)) == 1

    out = capsys.readouterr().out.splitlines()
    shown = [line for line in out if line.startswith(("::error", "::warning", "::notice"))]
    assert len(shown) == 11
    assert shown[0].startswith(
        "::error file=thresholds/default.yml,line=20,title=gate%3A must_pass"
    )
    assert shown[1].startswith("::error file=golden.jsonl,line=7,title=gate%3A must-pass case sso")
    assert all("title=gate%3A a" in line for line in shown[2:10])  # the absolute bars next
    assert shown[10] == (
        "::notice title=gate%3A 82 more::and 82 more failing checks and cases: see the job "
        "summary and report.json"
    )


# --- the step summary under GitHub's 1 MiB ------------------------------------------------------


def headings(text: str) -> list[str]:
    return [
        re.sub(r" ?\(.*", "", line)
        for line in text.splitlines()
        if line.startswith(("####", "<details>"))
    ]


def test_summary__caps_rows_by_bytes_keeps_every_section_and_says_what_it_left_out(
    tmp_path: Path, fake_github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert markdown.SUMMARY_MAX_BYTES < 1024 * 1024  # GitHub's limit for one step's summary
    monkeypatch.setattr(markdown, "SUMMARY_MAX_BYTES", 200_000)  # fewer rows to render
    report = load_report("fail")
    case = report["cases"]["failing"][0]
    many = [
        {**case, "id": f"case-{i:04}", "input": "q " * 400, "answer": "a " * 400}
        for i in range(900)
    ]
    report["cases"] = {"failing": many, "total": 5000}
    report["flips"] = {"regressed": many[:400], "fixed": []}
    full = markdown.render_summary({**report, "cases": {"failing": many[:5], "total": 5}}, None)
    env = github_env(tmp_path, fake_github, "push_payload.json", "push")

    action.main(env, FakeRun(report))

    summary = (tmp_path / "step_summary").read_text(encoding="utf-8")
    assert len(summary.encode()) <= 200_000
    assert headings(summary) == headings(full)
    listed = len(set(re.findall(r"\*\*case-(\d{4})\*\*", summary)))
    assert 0 < listed < 900
    assert f"… and {900 - listed:,} more failing cases: see report.json." in summary
    assert "more regressed cases: see report.json." in summary


# --- report.junit.xml -------------------------------------------------------------------------


def test_junit__written_next_to_the_report_one_case_per_golden_case_naming_the_failing_checks(
    tmp_path: Path, fake_github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    junitparser = pytest.importorskip("junitparser")
    env = github_env(tmp_path, fake_github, "push_payload.json", "push")
    workspace = copy_example(Path(env["GITHUB_WORKSPACE"]))
    break_a_must_pass_case(workspace)
    monkeypatch.chdir(workspace)

    assert action.main(env) == 1

    out = workspace / "gate-report"
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert "ids" not in report["cases"]  # the ids come from the golden set, not the report
    suites = {s.name: s for s in junitparser.JUnitXml.fromfile(str(out / "report.junit.xml"))}
    golden = (workspace / "datasets" / "golden.jsonl").read_text(encoding="utf-8").splitlines()
    assert [case.name for case in suites["cases"]] == [json.loads(line)["id"] for line in golden]
    failing_checks = {
        case.name: result.message
        for case in suites["checks"]
        for result in case.result
        if isinstance(result, junitparser.Failure)
    }
    must = next(c for c in report["checks"] if c["rule"] == "must_pass")
    assert failing_checks[f"{must['metric']} [high-risk] must_pass"] == must["reason"]
    assert len(failing_checks) == sum(c["status"] == "fail" for c in report["checks"])
    failing_cases = [c.name for c in suites["cases"] if not c.is_passed]
    assert "sso-locked-out" in failing_cases


# --- an HTTP pipeline as a service container ------------------------------------------------


def test_services_example__the_url_names_a_service_of_the_job_and_the_config_loads() -> None:
    root = Path(__file__).resolve().parents[1] / "examples" / "services"
    workflow = yaml.safe_load((root / "workflow.yml").read_text(encoding="utf-8"))
    (job,) = workflow["jobs"].values()
    (gate,) = [step for step in job["steps"] if "gate" in step["uses"]]
    config = load_config(root.parent.parent / gate["with"]["config"])
    assert isinstance(config.pipeline, HttpPipeline)
    url = urlsplit(str(config.pipeline.url))
    # Reached by its name on the job's Docker network: a service of this job, no port mapping
    # (that is for the runner's localhost), and no job container that would change the network.
    assert url.hostname in job["services"]
    assert "ports" not in job["services"][url.hostname]
    assert "container" not in job
    assert config.resolve(config.dataset).is_file()
    assert config.thresholds is not None and config.resolve(config.thresholds).is_file()
    if shutil.which("actionlint"):
        done = subprocess.run(["actionlint", str(root / "workflow.yml")], capture_output=True)
        assert done.returncode == 0, done.stdout.decode()
