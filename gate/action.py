"""The GitHub Action: ``gate action`` in the container and ``gate comment`` for forks.

``main`` reads what GitHub gives a Docker action (``INPUT_<NAME>`` with hyphens kept, the
``GITHUB_*`` variables, the event payload), runs the gate and reports back: outputs, the job
summary, annotations and the one PR comment. ``comment`` is the privileged half of the fork-safe
pattern: it posts a report that an unprivileged run uploaded. A comment that cannot be posted is
a warning; only the verdict (and ``fail-on``) decides the exit code.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from gate import history, launch
from gate.bar_from import api_bar, git_bar, git_root, has_commit, snapshot
from gate.bless import Blessing, bless, refusal
from gate.errors import ConfigError, GateError, GitHubError
from gate.files import to_json, write_atomic
from gate.install import install_requirements
from gate.load.bar import DEFAULT_APPROVAL_LABEL, BarSource
from gate.merge import merge
from gate.metrics import parse_metric
from gate.pipeline import Outcome, RunOptions, World, timestamp
from gate.plan import prepare
from gate.publish.data_branch import DataBranch
from gate.publish.github import (
    GitHub,
    PostedComment,
    add_comment,
    close_issue,
    open_issue,
    open_issues,
    pulls_of_commit,
    upsert_comment,
)
from gate.render import markdown
from gate.render.console import log_text, workflow_command
from gate.run.shards import MANIFEST, Shard
from gate.scrub import secret_values

RunFn = Callable[[RunOptions], Outcome]


UNNEEDED_SECRETS = ("ACTIONS_RUNTIME_TOKEN", "ACTIONS_ID_TOKEN_REQUEST_TOKEN")
"""Tokens the runner gives a container that the gate never uses: no process of it keeps them."""
TOKEN_FD = "GATE_TOKEN_FD"
"""Set by ``conceal_token`` for the process it re-executes: the pipe the token waits in."""


def conceal_token(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment for ``gate action``, with the token out of this process's environment block.

    Deleting a variable leaves it readable in ``/proc/<pid>/environ`` (the block a process
    starts with) to every process of the same user, pipelines included. So when the token is in
    that block, this process re-executes itself with the token in a pipe instead, and without
    the tokens it never uses; the new image reads it back into memory (the returned mapping).
    """
    env = {k: v for k, v in environ.items() if k not in UNNEEDED_SECRETS}
    fd = env.pop(TOKEN_FD, None)
    if fd is not None:
        with os.fdopen(int(fd), "rb") as pipe:
            env[TOKEN_INPUT] = pipe.read().decode()
        return env
    token = env.get(TOKEN_INPUT, "")
    try:
        block = Path("/proc/self/environ").read_bytes()
    except OSError:  # not Linux: nothing there to read it from
        return env
    names = (TOKEN_INPUT, *UNNEEDED_SECRETS)
    if not any(f"\0{name}=".encode() in b"\0" + block for name in names) or len(token) > 4096:
        return env
    read, write = os.pipe()
    os.write(write, token.encode())  # far below a pipe's buffer: never blocks
    os.close(write)
    os.set_inheritable(read, True)
    env.pop(TOKEN_INPUT, None)
    env[TOKEN_FD] = str(read)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", "gate", "action"], env)


def run_in_child(options: RunOptions) -> Outcome:
    """Run the gate as ``python -m gate run`` in a child process and read back its report.

    The pipeline under test runs there or below, with the run's environment minus every
    ``INPUT_*`` variable: the GitHub token never enters a process that runs pipeline code, not
    even in ``/proc/<pid>/environ``. The child is its own process group, killed once it has
    exited, so nothing it left behind can print after workflow commands resume. Its stderr is
    passed through; an input error (exit 2) is raised here as GateError with its message.
    """
    argv = [sys.executable, "-m", "gate", "run", "--config", str(options.config)]
    argv += ["--out", str(options.out_dir)]
    if options.baseline is not None:
        argv += ["--baseline", str(options.baseline)]
    if options.update_baseline:
        argv.append("--update-baseline")
    if options.shard is not None:
        argv += ["--shard", str(options.shard)]
    if options.progress is None:
        argv.append("--quiet")
    if options.history:
        past = options.out_dir / ".history.jsonl"
        write_atomic(past, "".join(json.dumps(entry) + "\n" for entry in options.history))
        argv += ["--history", str(past)]
    if options.world.bar is not None:
        bar = options.out_dir / ".bar-snapshot.json"
        write_atomic(bar, snapshot(options.world.bar, options.config, parse_metric))
        argv += ["--bar-snapshot", str(bar)]
    env = {
        k: v
        for k, v in options.world.env.items()
        if not k.startswith("INPUT_") and k not in (TOKEN_FD, *UNNEEDED_SECRETS)
    }
    # The child runs this very gate, wherever it was imported from (an install, a checkout).
    env["PYTHONPATH"] = os.pathsep.join(
        [_GATE_ROOT, *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    )
    child = subprocess.Popen(
        argv, env=env, stderr=subprocess.PIPE, text=True, errors="replace", start_new_session=True
    )
    assert child.stderr is not None
    error: list[str] = []
    with child.stderr:
        for line in child.stderr:
            sys.stderr.write(line)
            if line.startswith("gate: error: "):
                error = [line.removeprefix("gate: error: ")]
            elif error:
                error.append(line)
    code = child.wait()
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, signal.SIGKILL)
    sys.stderr.flush()
    if code == 2:
        raise GateError("".join(error).strip() or "the run stopped on an input error")
    if code not in (0, 1):
        raise RuntimeError(f"`gate run` ended with exit code {code}: see its output above")
    if options.shard is not None:  # a partial result: its manifest, no report
        manifest = options.out_dir / MANIFEST
        shard = json.loads(manifest.read_text(encoding="utf-8"))
        return Outcome(code, shard, manifest, options.out_dir / "records.jsonl")
    report_path = options.out_dir / "report.json"
    report = json.loads(report_path.read_text(encoding="utf-8"))
    return Outcome(code, report, report_path, options.out_dir / "report.md")


_GATE_ROOT = str(Path(__file__).resolve().parent.parent)

GitHubFactory = Callable[[str, str], GitHub]
"""Makes the API client from the token and the API URL (tests make one that never sleeps)."""


def _github(token: str, api_url: str) -> GitHub:
    return GitHub(token, api_url, clock=time.time)


PR_EVENTS = ("pull_request", "pull_request_target")
TOKEN_INPUT = "INPUT_GITHUB-TOKEN"
MAX_REPORT_BYTES = 64 * 1024 * 1024
"""A report from an untrusted artifact is read whole: refuse an absurd one."""

EXAMPLES = {
    "config": "gate.yml",
    "github-token": "${{ github.token }}",
    "comment": "true",
    "fail-on": "any  # or: regression, never, inconclusive",
    "update-baseline": "false",
    "output-dir": "gate-report",
    "mode": "run  # or: comment (the fork-safe half, in a workflow_run workflow), issue (nightly)",
    "requirements": "requirements.txt  # or a pip spec: my-package==1.2",
    "bar-approval-label": f'"{DEFAULT_APPROVAL_LABEL}"',
    "shard": "${{ matrix.shard }}/4",
    "merge-from": "shards/*",
    "history": "true  # keep a history of the default branch's runs on a data branch",
    "history-branch": "gate-history",
    "bless-reason": "accept the new retriever's recall drop (#123)  # push/dispatch runs only",
    "evidence": "true  # evidence.md + evidence.json in output-dir, for a release",
}
BLESS_EVENTS = ("push", "workflow_dispatch")


class Inputs(BaseModel):
    """The action's inputs, as ``action.yml`` declares them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    config: Path = Path("gate.yml")
    github_token: SecretStr = Field(SecretStr(""), alias="github-token")
    comment: bool = True
    fail_on: Literal["any", "regression", "never", "inconclusive"] = Field("any", alias="fail-on")
    update_baseline: bool = Field(False, alias="update-baseline")
    output_dir: Path = Field(Path("gate-report"), alias="output-dir")
    mode: Literal["run", "comment", "issue"] = "run"
    requirements: str = ""
    bar_approval_label: str = Field(DEFAULT_APPROVAL_LABEL, alias="bar-approval-label")
    shard: str = Field("", description="K/N: run one slice of the cases, for a merge job")
    merge_from: str = Field(
        "", alias="merge-from", description="shard folders (globs), one per line, to merge"
    )

    @field_validator("shard")
    @classmethod
    def _k_of_n(cls, value: str) -> str:
        try:
            return str(Shard.parse(value)) if value.strip() else ""
        except ConfigError:
            raise ValueError(f"must be K/N with 1 ≤ K ≤ N, e.g. 2/4, not {value!r}") from None

    bless_reason: str = Field("", alias="bless-reason")
    evidence: bool = False
    history: bool = False
    history_branch: str = Field("gate-history", alias="history-branch", pattern=r"^[\w.-]+$")

    @field_validator("comment", "update_baseline", "history", "evidence", mode="before")
    @classmethod
    def _yaml_boolean(cls, value: object) -> object:
        # What @actions/core's getBooleanInput accepts; "yes" or "1" is more likely a slip.
        if value in ("true", "True", "TRUE"):
            return True
        if value in ("false", "False", "FALSE"):
            return False
        raise ValueError("must be true or false")


@dataclass(frozen=True)
class Context:
    """What GitHub tells a job about itself: the ``GITHUB_*`` variables and the event."""

    event_name: str
    event: Mapping[str, Any]
    repository: str
    api_url: str
    server_url: str
    run_id: str
    workspace: Path
    output_file: Path | None
    summary_file: Path | None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Context:
        """Read the context; a missing event file (a local run) is an empty event."""
        event_path = env.get("GITHUB_EVENT_PATH")
        try:
            event = json.loads(Path(event_path).read_text(encoding="utf-8")) if event_path else {}
        except (OSError, ValueError) as exc:
            raise GateError(
                f"GITHUB_EVENT_PATH={event_path}: cannot read the event: {exc}"
            ) from None
        output, summary = env.get("GITHUB_OUTPUT"), env.get("GITHUB_STEP_SUMMARY")
        return cls(
            event_name=env.get("GITHUB_EVENT_NAME", ""),
            event=event if isinstance(event, dict) else {},
            repository=env.get("GITHUB_REPOSITORY", ""),
            api_url=env.get("GITHUB_API_URL", "https://api.github.com"),
            server_url=env.get("GITHUB_SERVER_URL", "https://github.com"),
            run_id=env.get("GITHUB_RUN_ID", ""),
            workspace=Path(env.get("GITHUB_WORKSPACE", ".")),
            output_file=Path(output) if output else None,
            summary_file=Path(summary) if summary else None,
        )

    @property
    def run_url(self) -> str | None:
        if not (self.repository and self.run_id):
            return None
        return f"{self.server_url}/{self.repository}/actions/runs/{self.run_id}"

    def pull_request(self) -> int | None:
        """The pull request this run is for, on ``pull_request`` events only."""
        if self.event_name not in PR_EVENTS:
            return None
        number = (self.event.get("pull_request") or {}).get("number")
        return number if isinstance(number, int) and number > 0 else None


def main(
    env: Mapping[str, str],
    run: RunFn = run_in_child,
    github: GitHubFactory = _github,
    world: World | None = None,
) -> int:
    """``gate action``: run the gate as the container's entry point; return the exit code.

    ``run`` defaults to ``run_in_child`` (``gate.pipeline.run`` in a child process without the
    token) and ``github`` makes the API client; tests pass fakes.
    ``world`` is what the run may read (the CLI passes the real one; by default ``env`` alone).
    An input error is raised as GateError (the CLI exits 2) after an ``::error`` annotation.
    """
    try:
        return _action(env, run, github, world or World(env=env))
    except GateError as exc:
        print(workflow_command("error", str(exc), title="gate: input error"), flush=True)
        raise


def _action(env: Mapping[str, str], run: RunFn, github: GitHubFactory, world: World) -> int:
    inputs = read_inputs(env)
    token = inputs.github_token.get_secret_value()
    if token:
        print(workflow_command("add-mask", token), flush=True)
    # The pipeline under test runs in this process or below it: it has no use for the token.
    os.environ.pop(TOKEN_INPUT, None)
    world = replace(world, env={k: v for k, v in world.env.items() if k != TOKEN_INPUT})
    context = Context.from_env(env)
    if inputs.mode == "comment":
        return comment_mode(inputs, context, github)
    if inputs.mode == "issue":
        return issue_mode(inputs, context, github, world)
    world = replace(world, bar=base_bar(inputs, context, token, github))
    install(inputs, context)
    past = read_history(inputs, context, token) if inputs.history else []
    outcome = _run_quietly(inputs, context, run, world, past)
    share_files(outcome, context.workspace)
    report = outcome.report
    if inputs.shard:
        # A slice has no verdict: the merge job reports, comments and decides.
        if context.output_file:
            path = _shown_path(outcome.report_path, context.workspace)
            write_outputs(context.output_file, {"report-path": path, "summary": report["summary"]})
        print(f"gate: {_one_line(report['summary'])}")
        return 0
    run_url = context.run_url

    pull_request = context.pull_request()
    if inputs.history:
        keep_history(inputs, context, outcome, token, world, past)
    annotate(report, inputs.fail_on)
    # The summary and outputs first: whatever befalls the comment, the verdict is reported.
    _report_back(context, outcome, run_url)
    if inputs.bless_reason.strip():
        _bless_after_run(inputs, context, outcome, env, world)
    if inputs.evidence:
        evidence_after_run(inputs, context, outcome, env, world)

    comment_url, problem = "", None
    if not inputs.comment:
        print("gate: no PR comment (`comment: false`)")
    elif pull_request is None:
        print(f"gate: no PR comment on a {context.event_name or 'local'} run")
    elif not token:
        problem = "no `github-token` input: the PR comment was not posted"
    else:
        try:
            marker = markdown.marker(inputs.config.as_posix())
            with github(token, context.api_url) as client:
                posted = post_comment(client, report, run_url, pull_request, marker, context)
            comment_url = posted.url
        except GitHubError as exc:
            problem = f"the PR comment was not posted: {exc}"
    if problem:
        print(workflow_command("warning", problem, title="gate: PR comment"), flush=True)
        if context.summary_file:
            with context.summary_file.open("a", encoding="utf-8") as handle:
                handle.write(f"> **⚠️ gate:** {markdown.escape(problem)}\n\n")
    if context.output_file:
        write_outputs(context.output_file, {"comment-url": comment_url})
    code = exit_code(report, outcome.exit_code, inputs.fail_on)
    summary = log_text(_one_line(report["summary"]))
    print(f"gate: {summary} (fail-on: {inputs.fail_on}, exit {code})")
    return code


def on_default_branch(context: Context) -> bool:
    """A push to the default branch, or a scheduled run (GitHub runs those on it): the runs
    the history keeps. Never a pull request."""
    if context.event_name == "schedule":
        return True
    default = (context.event.get("repository") or {}).get("default_branch")
    return (
        context.event_name == "push"
        and isinstance(default, str)
        and context.event.get("ref") == f"refs/heads/{default}"
    )


def _data_branch(inputs: Inputs, context: Context, token: str, folder: str) -> DataBranch:
    remote = f"{context.server_url}/{context.repository}.git"
    return DataBranch(remote, inputs.history_branch, Path(folder), token)


def _history_warning(exc: GitHubError) -> None:
    print(workflow_command("warning", f"history: {exc}", title="gate: history"), flush=True)


def read_history(inputs: Inputs, context: Context, token: str) -> list[dict[str, Any]]:
    """The history on the data branch; none (and a warning when git failed) when it cannot be
    read. A branch that does not exist yet is an empty history, no warning."""
    try:
        with tempfile.TemporaryDirectory(prefix="gate-history-") as scratch:
            branch = _data_branch(inputs, context, token, scratch)
            return history.parse(branch.read(history.file_name(inputs.config.as_posix())))
    except GitHubError as exc:
        _history_warning(exc)
        return []


def evidence_after_run(
    inputs: Inputs, context: Context, outcome: Outcome, env: Mapping[str, str], world: World
) -> None:
    """The ``evidence`` input: evidence.md and evidence.json next to the report, scrubbed of
    every secret-looking value in the step's environment (the token included)."""
    as_json, pack = launch.evidence_pack(
        context.workspace / inputs.config,
        outcome.report_path.parent,
        world.now().date(),
        launch.run_urls(env),
        secret_values(env),
    )
    share_files(outcome, context.workspace)
    print(f"gate: evidence pack: {_shown_path(pack, context.workspace)} and {as_json.name}")


def keep_history(
    inputs: Inputs,
    context: Context,
    outcome: Outcome,
    token: str,
    world: World,
    past: list[dict[str, Any]],
) -> None:
    """Put the trends into the report (report.json is rewritten with them); on the default
    branch, append this run's entry to the data branch. Git failing is a warning, never the
    verdict."""
    report = outcome.report
    name = history.file_name(inputs.config.as_posix())
    run = report.get("run") or {}
    commit = run.get("git_sha") or world.git_sha or world.env.get("GITHUB_SHA")
    new = history.entry(
        report, event=context.event_name, commit=commit, date=str(run.get("started_at") or "")
    )
    record = on_default_branch(context)
    report["trends"] = history.trends(past + ([new] if record else []), history.gated(report))
    write_atomic(outcome.report_path, to_json(report, indent=True, newline=True))
    write_atomic(outcome.markdown_path, markdown.render_summary(report, None))
    if not record:
        return
    try:
        with tempfile.TemporaryDirectory(prefix="gate-history-") as scratch:
            _data_branch(inputs, context, token, scratch).update(
                name,
                lambda text: history.append(text, new),
                f"gate: {context.event_name} run of {str(commit)[:12]}",
            )
        print(f"gate: history: appended this run to {inputs.history_branch}:{name}")
    except GitHubError as exc:
        _history_warning(exc)


def _bless_after_run(
    inputs: Inputs, context: Context, outcome: Outcome, env: Mapping[str, str], world: World
) -> None:
    """The ``bless-reason`` input: this run becomes the baseline (not on pull requests)."""
    if context.event_name not in BLESS_EVENTS:
        print(
            workflow_command(
                "warning",
                f"`bless-reason` is ignored on {context.event_name or 'local'} runs: a baseline "
                "is blessed from a push or workflow_dispatch run",
                title="gate: bless",
            ),
            flush=True,
        )
        return
    who = Blessing(
        reason=inputs.bless_reason,
        actor=env.get("GITHUB_ACTOR") or "unknown",
        at=timestamp(world.now()),
        run_url=context.run_url,
    )
    if bless_folder(outcome.report_path.parent, who, context.workspace / inputs.config):
        print(workflow_command("warning", "the run was not blessed", title="gate: bless"))


def _report_back(context: Context, outcome: Outcome, run_url: str | None) -> None:
    """The job summary and the step outputs (but the comment's URL, not known yet)."""
    report = outcome.report
    if context.summary_file:
        with context.summary_file.open("a", encoding="utf-8") as handle:
            handle.write(markdown.render_summary(report, run_url) + "\n")
    if context.output_file:
        write_outputs(
            context.output_file,
            {
                "verdict": str(report["verdict"]),
                "report-path": _shown_path(outcome.report_path, context.workspace),
                "summary": str(report["summary"]),
            },
        )


def base_bar(
    inputs: Inputs, context: Context, token: str, github: GitHubFactory
) -> BarSource | None:
    """On pull requests, the bar of the base commit, so a pull request cannot set its own.

    Read through git when the checkout has the commit, else through the contents API. A change
    to the bar is honoured only when the pull request carries the approval label: adding a label
    takes triage rights, which the author of a pull request from a fork does not have.
    """
    if context.event_name not in PR_EVENTS:
        return None
    pull = context.event.get("pull_request")
    pull = pull if isinstance(pull, dict) else {}
    base = pull.get("base")
    sha = base.get("sha") if isinstance(base, dict) else None
    if not (isinstance(sha, str) and re.fullmatch(r"[0-9a-f]{40}", sha)):
        raise GateError(
            f"the {context.event_name} event has no pull_request.base.sha: the base commit's "
            "thresholds and baseline cannot be read (is GITHUB_EVENT_PATH the event's payload?)"
        )
    labels = pull.get("labels")
    names = {lab.get("name") for lab in labels if isinstance(lab, dict)} if labels else set()
    label = inputs.bar_approval_label
    honour = label in names
    root = git_root(context.workspace)
    if root is not None and has_commit(root, sha):
        bar = git_bar(sha, context.workspace, honour_change=honour, approval=label)
    elif token:
        repository = _repository(context.repository)
        bar = api_bar(
            sha,
            context.workspace,
            repository,
            lambda: github(token, context.api_url),
            honour_change=honour,
            approval=label,
        )
    else:
        raise GateError(
            f"the base commit {sha[:12]} is not in the checkout and there is no `github-token` "
            "to read its thresholds and baseline through the API (fix: `fetch-depth: 0` on "
            "actions/checkout, or pass `github-token: ${{ github.token }}`)"
        )
    approved = " (a change to it is approved by its label)" if bar.honour_change else ""
    print(f"gate: the bar is the base commit {sha[:12]}'s, read through {bar.via}{approved}")
    return bar


def comment(
    report_path: Path,
    env: Mapping[str, str],
    github: GitHubFactory = _github,
    config: Path = Path("gate.yml"),
) -> int:
    """``gate comment``: post or update the PR comment from a report an earlier run uploaded.

    The same as the action's ``mode: comment``, for a workflow that installs the gate itself.
    """
    token = env.get("GITHUB_TOKEN", "")
    if not token:
        raise GateError(
            "gate comment: GITHUB_TOKEN is not set. Fix the step:\n"
            "  env:\n    GITHUB_TOKEN: ${{ github.token }}"
        )
    print(workflow_command("add-mask", token), flush=True)
    return _comment_on_run(report_path, config, token, Context.from_env(env), github)


def comment_mode(inputs: Inputs, context: Context, github: GitHubFactory) -> int:
    """``mode: comment``: the privileged half of the fork-safe pattern, in a ``workflow_run`` job.

    Nothing from the finished run is trusted: its report is data (validated, size-capped, escaped
    when rendered), the pull request is asked of the API from the run's head sha and head
    repository, and the comment's marker comes from this step's own ``config`` input.
    """
    token = inputs.github_token.get_secret_value()
    if not token:
        raise GateError(
            "`mode: comment` needs a token that can write to pull requests. Fix the step:\n"
            "    with:\n      github-token: ${{ github.token }}\n"
            "  and the job:\n    permissions:\n      pull-requests: write"
        )
    report_path = context.workspace / inputs.output_dir / "report.json"
    return _comment_on_run(report_path, inputs.config, token, context, github)


NIGHTLY_LABEL = "gate-nightly"
JOB_RESULT = "GATE_JOB_RESULT"
"""The nightly gate job's result (``${{ needs.gate.result }}``), in the issue step's ``env``:
a job that failed after writing a passing report (a bug in the gate) is not a passing night."""


def issue_mode(inputs: Inputs, context: Context, github: GitHubFactory, world: World) -> int:
    """``mode: issue``: the nightly workflow's issue job, after the gate job on the default branch.

    A night that did not pass (a fail or inconclusive verdict, or none: no report in
    ``output-dir``) opens one issue labelled gate-nightly, with the gated metrics' trend charts,
    or comments on the open one; the first passing night comments on it and closes it. The
    report (the gate job's artifact) is read as data and escaped when rendered.
    """
    token = inputs.github_token.get_secret_value()
    if not token:
        raise GateError(
            "`mode: issue` needs a token that can write issues. Fix the step:\n"
            "    with:\n      github-token: ${{ github.token }}\n"
            "  and the job:\n    permissions:\n      issues: write"
        )
    if context.event_name in PR_EVENTS:
        raise GateError(
            f"the issue mode is for the nightly workflow (schedule, workflow_dispatch), not "
            f"{context.event_name} runs: fix the workflow's trigger"
        )
    report: dict[str, Any] | None
    try:
        report = read_report(context.workspace / inputs.output_dir / "report.json")
    except GateError as exc:
        print(log_text(f"gate: no verdict this night: {exc}"))
        report = None
    passed = (
        report is not None
        and report["verdict"] == "pass"
        and world.env.get(JOB_RESULT, "success") == "success"
    )
    night = world.now().date().isoformat()
    branch = _one_line(world.env.get("GITHUB_REF_NAME") or "the default branch")[:100]
    repository = _repository(context.repository)

    def body(kind: Literal["opened", "again", "passed"]) -> str:
        return markdown.render_night(report, context.run_url, night=night, branch=branch, kind=kind)

    url = ""
    with github(token, context.api_url) as client:
        issues = open_issues(client, repository, NIGHTLY_LABEL)
        if passed:
            for issue in issues:
                url = add_comment(client, repository, issue["number"], body("passed")).url
                close_issue(client, repository, issue["number"])
                print(f"gate: closed the nightly issue #{issue['number']}")
        elif issues:
            # One comment a failing night; the issue's first post stays as it was written.
            number = issues[0]["number"]
            url = add_comment(client, repository, number, body("again")).url
            print(f"gate: commented on the nightly issue #{number}")
        else:
            title = f"Nightly gate failing on {branch}"
            number, url = open_issue(client, repository, title, body("opened"), [NIGHTLY_LABEL])
            print(f"gate: opened the nightly issue #{number}")
    if context.output_file:
        verdict = str(report["verdict"]) if report else ""
        write_outputs(context.output_file, {"verdict": verdict, "comment-url": url})
    return 0


def _comment_on_run(
    report_path: Path, config: Path, token: str, context: Context, github: GitHubFactory
) -> int:
    run = context.event.get("workflow_run")
    if context.event_name != "workflow_run" or not isinstance(run, dict):
        raise GateError(
            f"the comment mode runs on `workflow_run` events, not {context.event_name or 'none'}:"
            " fix the workflow's trigger (`on: workflow_run: workflows: [gate]`)"
        )
    report = read_report(report_path)
    sha, head_repository = run.get("head_sha"), (run.get("head_repository") or {}).get("full_name")
    if not (isinstance(sha, str) and re.fullmatch(r"[0-9a-f]{40}", sha)):
        raise GateError(f"workflow_run.head_sha is {sha!r}, not a commit sha")
    head_repository = _repository(str(head_repository))
    run_url = run.get("html_url")
    if not (isinstance(run_url, str) and run_url.startswith(context.server_url + "/")):
        run_url = context.run_url
    marker = markdown.marker(config.as_posix())
    repository = _repository(context.repository)
    with github(token, context.api_url) as client:
        numbers = pulls_of_commit(client, repository, sha, head_repository)
        if not numbers:
            print(f"gate: no pull request has {head_repository}@{sha[:12]} as its head: no comment")
        posted = [
            post_comment(client, report, run_url, number, marker, context) for number in numbers
        ]
    if context.output_file:
        urls = [p.url for p in posted]
        write_outputs(
            context.output_file,
            {"verdict": str(report["verdict"]), "comment-url": urls[0] if urls else ""},
        )
    return 0


def post_comment(
    client: GitHub,
    report: Mapping[str, Any],
    run_url: str | None,
    pull_request: int,
    marker: str,
    context: Context,
) -> PostedComment:
    """Create or update the comment that carries ``marker`` on the pull request."""
    body = markdown.render_comment(report, run_url, marker)
    posted = upsert_comment(client, _repository(context.repository), pull_request, body, marker)
    done = "created" if posted.created else "updated"
    print(log_text(f"gate: PR #{pull_request} comment {done}: {posted.url}"))
    return posted


def bless_folder(
    report_dir: Path, who: Blessing, config: Path, baseline: Path | None = None
) -> int:
    """``gate bless``: the run in ``report_dir`` becomes the baseline; 1 (and why) when the run
    failed closed, a GateError when there is no reason or the folder holds no finished run."""
    if not who.reason.strip():
        raise GateError('gate bless: a reason is required (fix: gate bless --reason "why")')
    report = read_report(report_dir / "report.json")
    if problem := refusal(report):
        print(log_text(f"gate bless: refused: {problem}"))
        return 1
    plan = prepare(config, baseline)
    entry = bless(plan, report, report_dir / "records.jsonl", who)
    changed = ", ".join(
        f"{name} {_signed(d['delta'])}" for name, d in entry["deltas"].items() if d["delta"]
    )
    print(
        log_text(
            f"gate bless: wrote {plan.baseline_path} as {who.actor} "
            f"({changed or 'no metric changed'})"
        )
    )
    return 0


def _signed(value: float) -> str:
    return f"{value:+.4g}"


def read_inputs(env: Mapping[str, str]) -> Inputs:
    """The inputs from ``INPUT_<NAME>``; an empty value means the default."""
    raw = {
        name: env[f"INPUT_{name.upper()}"] for name in EXAMPLES if env.get(f"INPUT_{name.upper()}")
    }
    try:
        return Inputs.model_validate(raw)
    except ValidationError as exc:
        names = [str(error["loc"][0]) for error in exc.errors()]
        problems = [
            f"input `{name}`: {error['msg'].removeprefix('Value error, ')}, not {error['input']!r}"
            for name, error in zip(names, exc.errors(), strict=True)
        ]
        uses = _uses(env)
        fix = "\n".join(f"      {name}: {EXAMPLES[name]}" for name in dict.fromkeys(names))
        raise GateError(
            "\n".join(problems) + f"\nFix the step in your workflow:\n  - uses: {uses}\n"
            f"    with:\n{fix}"
        ) from None


def read_report(path: Path) -> dict[str, Any]:
    """A finished report.json; not one (missing, huge, not JSON, no verdict) is an input error."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise GateError(f"{path}: cannot read the report ({exc.strerror})") from None
    if size > MAX_REPORT_BYTES:
        raise GateError(f"{path}: {size} bytes is not a gate report (the limit is 64 MiB)")
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        # ValueError: also an integer past Python's digit limit; RecursionError: deep nesting.
        raise GateError(f"{path}: not a gate report: {exc}") from None
    if not isinstance(report, dict) or not isinstance(report.get("verdict"), str):
        raise GateError(f"{path}: not a gate report: no `verdict` (fix: pass gate's report.json)")
    return report


def exit_code(report: Mapping[str, Any], verdict_code: int, fail_on: str) -> int:
    """The step's exit code: the verdict's, narrowed by ``fail-on``."""
    if fail_on == "never":
        return 0
    if fail_on == "regression":
        return int(any(_fails_step(check, fail_on) for check in _failing_checks(report)))
    if fail_on == "inconclusive":
        return max(verdict_code, int(report.get("verdict") == "inconclusive"))
    return verdict_code


MAX_ANNOTATIONS = 10
"""GitHub shows 10 error and 10 warning annotations a step; past them, a notice counts the rest."""


def annotate(report: Mapping[str, Any], fail_on: str) -> None:
    """Annotations for what failed, most important first, at most MAX_ANNOTATIONS of them and
    then one line saying how many more: must-pass checks and their cases (on the golden set's
    line), absolute bars, regressions, each on its rule's line in the thresholds file."""
    lines = annotation_lines(report, fail_on)
    for line in lines[:MAX_ANNOTATIONS]:
        print(line, flush=True)
    if len(lines) > MAX_ANNOTATIONS:
        more = len(lines) - MAX_ANNOTATIONS
        print(
            workflow_command(
                "notice",
                f"and {more} more failing checks and cases: see the job summary and report.json",
                title=f"gate: {more} more",
            ),
            flush=True,
        )


def annotation_lines(report: Mapping[str, Any], fail_on: str) -> list[str]:
    """Every annotation the report calls for, most important first."""
    failing_cases = report.get("cases", {}).get("failing", [])
    ranked: list[tuple[int, str]] = []
    for check in _failing_checks(report):
        where = f"{check.get('metric')}" + (f" [{check['slice']}]" if check.get("slice") else "")
        level = "error" if _fails_step(check, fail_on) else "warning"
        message = f"{where}: {check.get('reason', 'failed')}"
        if check.get("baseline") is not None:
            message += f" (baseline {check['baseline']})"
        must = check.get("rule") == "must_pass"
        rank = 0 if must else 1 if check.get("kind") == "absolute" else 2
        title = f"gate: must_pass [{check.get('slice') or 'cases'}]" if must else f"gate: {where}"
        ranked.append((rank, _annotation(level, message, title, check.get("source"))))
        if must and check.get("slice"):
            ranked += [
                (
                    rank,
                    _annotation(
                        level,
                        _case_message(case),
                        f"gate: must-pass case {case['id']}",
                        case.get("source"),
                    ),
                )
                for case in failing_cases
                if isinstance(case, dict) and check["slice"] in (case.get("tags") or [])
            ]
    return [line for _, line in sorted(ranked, key=lambda item: item[0])]


def _annotation(level: str, message: str, title: str, source: object) -> str:
    where = {}
    if isinstance(source, dict) and isinstance(source.get("file"), str):
        where = {"file": source["file"], "line": str(int(source.get("line") or 1))}
    return workflow_command(level, message, **where, title=title)


def _case_message(case: Mapping[str, Any]) -> str:
    modes = ", ".join(case.get("failure_modes") or []) or "failed"
    error = f"; error: {case['error']}" if case.get("error") else ""
    return f"must-pass case {case.get('id')} failed: {modes}{error}"


def write_outputs(path: Path, outputs: Mapping[str, str]) -> None:
    """Append step outputs, each as ``name<<DELIMITER`` so a value may span lines."""
    with path.open("a", encoding="utf-8") as handle:
        for name, value in outputs.items():
            delimiter = f"ghadelimiter_{uuid.uuid4()}"
            handle.write(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")


def install(inputs: Inputs, context: Context) -> None:
    """The ``requirements`` input, with workflow commands off while pip writes to the log."""
    if not inputs.requirements.strip():
        return
    resume = uuid.uuid4().hex
    print(f"::stop-commands::{resume}", flush=True)
    try:
        install_requirements(inputs.requirements, context.workspace, os.environ)
    finally:
        print(f"::{resume}::", flush=True)


def share_files(outcome: Outcome, workspace: Path) -> None:
    """Give what the gate wrote to the owner of the workspace, the runner's user outside the
    container, so later steps can upload, read and commit it: the output folder, what is in it,
    and an updated baseline. Only as root (the container's user) and when the owners differ."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return
    owner = workspace.stat()
    if (owner.st_uid, owner.st_gid) == (os.geteuid(), os.getegid()):
        return
    top = workspace.resolve()
    out = outcome.report_path.parent.resolve()
    paths = [*out.rglob("*"), *(p for p in (out, *out.parents) if top in p.parents)]
    baseline = outcome.report.get("baseline") or {}
    if baseline.get("status") == "updated" and isinstance(baseline.get("path"), str):
        paths.append(Path(baseline["path"]).resolve())
    for path in paths:
        if top in path.parents:  # never anything outside the workspace (nor the workspace)
            os.chown(path, owner.st_uid, owner.st_gid, follow_symlinks=False)


def _run_quietly(
    inputs: Inputs, context: Context, run: RunFn, world: World, past: list[dict[str, Any]]
) -> Outcome:
    """Run the gate with workflow commands off: a model's output in the log cannot issue one."""
    resume = uuid.uuid4().hex
    print(f"::stop-commands::{resume}", flush=True)
    try:
        options = RunOptions(
            config=context.workspace / inputs.config,
            out_dir=context.workspace / inputs.output_dir,
            update_baseline=inputs.update_baseline,
            shard=Shard.parse(inputs.shard) if inputs.shard else None,
            world=world,
            history=past,
        )
        if inputs.merge_from:
            return merge(shard_folders(inputs.merge_from, context.workspace), options)
        return run(options)
    finally:
        print(f"::{resume}::", flush=True)


def shard_folders(text: str, workspace: Path) -> list[Path]:
    """The ``merge-from`` input's folders: one path or glob a line, relative to the workspace."""
    folders: list[Path] = []
    for line in text.splitlines():
        pattern = line.strip()
        if pattern:
            found = sorted(workspace.glob(pattern)) or [workspace / pattern]
            folders += [path for path in found if path not in folders]
    return folders


def _failing_checks(report: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    checks = report.get("checks")
    if not isinstance(checks, list):
        return []
    return [
        c for c in checks if isinstance(c, dict) and c.get("status") in ("fail", "inconclusive")
    ]


def _fails_step(check: Mapping[str, Any], fail_on: str) -> bool:
    if check.get("status") == "inconclusive":
        return fail_on == "inconclusive"
    return fail_on in ("any", "inconclusive") or (
        fail_on == "regression"
        and (check.get("kind") == "regression" or check.get("rule") == "must_pass")
    )


def _repository(name: str) -> str:
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", name):
        raise GateError(f"GITHUB_REPOSITORY is {name!r}, not owner/name: is this a GitHub run?")
    return name


def _shown_path(path: Path, workspace: Path) -> str:
    # Later steps run outside the container, where the workspace has another absolute path.
    try:
        return str(path.resolve().relative_to(workspace.resolve()))
    except ValueError:
        return str(path)


def _uses(env: Mapping[str, str]) -> str:
    repository, ref = env.get("GITHUB_ACTION_REPOSITORY"), env.get("GITHUB_ACTION_REF")
    return f"{repository}@{ref}" if repository and ref else "./"


def _one_line(text: object) -> str:
    return " ".join(str(text).split())
