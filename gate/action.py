"""The GitHub Action: ``gate action`` in the container and ``gate comment`` for forks.

``main`` reads what GitHub gives a Docker action (``INPUT_<NAME>`` with hyphens kept, the
``GITHUB_*`` variables, the event payload), runs the gate and reports back: outputs, the job
summary, annotations and the one PR comment. ``comment`` is the privileged half of the fork-safe
pattern: it posts a report that an unprivileged run uploaded. A comment that cannot be posted is
a warning; only the verdict (and ``fail-on``) decides the exit code.
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from gate.errors import ConfigError, GateError, GitHubError
from gate.merge import merge
from gate.pipeline import Outcome, RunOptions, World, run
from gate.publish.github import GitHub, PostedComment, upsert_comment
from gate.render import markdown
from gate.run.shards import Shard

RunFn = Callable[[RunOptions], Outcome]

GitHubFactory = Callable[[str, str], GitHub]
"""Makes the API client from the token and the API URL (tests make one that never sleeps)."""


def _github(token: str, api_url: str) -> GitHub:
    return GitHub(token, api_url, clock=time.time)


PR_EVENTS = ("pull_request", "pull_request_target")
PR_NUMBER_FILE = "pr-number.txt"
"""Written next to report.json on pull requests, for the privileged commenting workflow."""
TOKEN_INPUT = "INPUT_GITHUB-TOKEN"
MAX_REPORT_BYTES = 64 * 1024 * 1024
"""A report from an untrusted artifact is read whole: refuse an absurd one."""

EXAMPLES = {
    "config": "gate.yml",
    "github-token": "${{ github.token }}",
    "comment": "true",
    "fail-on": "any  # or: regression, never",
    "update-baseline": "false",
    "output-dir": "gate-report",
    "shard": "${{ matrix.shard }}/4",
    "merge-from": "shards/*",
}


class Inputs(BaseModel):
    """The action's inputs, as ``action.yml`` declares them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    config: Path = Path("gate.yml")
    github_token: SecretStr = Field(SecretStr(""), alias="github-token")
    comment: bool = True
    fail_on: Literal["any", "regression", "never"] = Field("any", alias="fail-on")
    update_baseline: bool = Field(False, alias="update-baseline")
    output_dir: Path = Field(Path("gate-report"), alias="output-dir")
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

    @field_validator("comment", "update_baseline", mode="before")
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
    run: RunFn = run,
    github: GitHubFactory = _github,
    world: World | None = None,
) -> int:
    """``gate action``: run the gate as the container's entry point; return the exit code.

    ``run`` defaults to ``gate.pipeline.run`` and ``github`` makes the API client; tests pass fakes.
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
    outcome = _run_quietly(inputs, context, run, world)
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
    if pull_request is not None:
        (outcome.report_path.parent / PR_NUMBER_FILE).write_text(f"{pull_request}\n")
    annotate(report, inputs.fail_on)

    comment_url, problem = "", None
    if not inputs.comment:
        print("gate: no PR comment (`comment: false`)")
    elif pull_request is None:
        print(f"gate: no PR comment on a {context.event_name or 'local'} run")
    elif not token:
        problem = "no `github-token` input: the PR comment was not posted"
    else:
        try:
            posted = post_comment(report, run_url, pull_request, token, context, github)
            comment_url = posted.url
        except GitHubError as exc:
            problem = f"the PR comment was not posted: {exc}"
    if problem:
        print(workflow_command("warning", problem, title="gate: PR comment"), flush=True)

    if context.summary_file:
        text = markdown.render_summary(report, run_url)
        if problem:
            text += f"\n> **⚠️ gate:** {markdown.escape(problem)}\n"
        with context.summary_file.open("a", encoding="utf-8") as handle:
            handle.write(text + "\n")
    if context.output_file:
        write_outputs(
            context.output_file,
            {
                "verdict": str(report["verdict"]),
                "report-path": _shown_path(outcome.report_path, context.workspace),
                "summary": str(report["summary"]),
                "comment-url": comment_url,
            },
        )
    code = exit_code(report, outcome.exit_code, inputs.fail_on)
    print(f"gate: {_one_line(report['summary'])} (fail-on: {inputs.fail_on}, exit {code})")
    return code


def comment(report_path: Path, env: Mapping[str, str], github: GitHubFactory = _github) -> int:
    """``gate comment``: post or update the PR comment from a report an earlier run uploaded.

    Meant for a ``workflow_run`` workflow: the report, and the pull request number next to it,
    come from a run of untrusted code, so both are validated before use.
    """
    report = read_report(report_path)
    context = Context.from_env(env)
    pull_request = pull_request_of_run(context.event, report_path.parent / PR_NUMBER_FILE)
    if pull_request is None:
        print("gate: the run was not for a pull request: nothing to comment on")
        return 0
    token = env.get("GITHUB_TOKEN", "")
    if not token:
        raise GateError(
            "gate comment: GITHUB_TOKEN is not set. Fix the step:\n"
            "  env:\n    GITHUB_TOKEN: ${{ github.token }}"
        )
    print(workflow_command("add-mask", token), flush=True)
    run = context.event.get("workflow_run") or {}
    run_url = run.get("html_url") if isinstance(run, dict) else None
    if not (isinstance(run_url, str) and run_url.startswith(context.server_url + "/")):
        run_url = context.run_url
    posted = post_comment(report, run_url, pull_request, token, context, github)
    if context.output_file:
        write_outputs(context.output_file, {"comment-url": posted.url})
    return 0


def post_comment(
    report: Mapping[str, Any],
    run_url: str | None,
    pull_request: int,
    token: str,
    context: Context,
    github: GitHubFactory,
) -> PostedComment:
    """Create or update this config's comment on the pull request."""
    marker = markdown.marker(str(report.get("config", "")))
    body = markdown.render_comment(report, run_url, marker)
    with github(token, context.api_url) as client:
        posted = upsert_comment(client, _repository(context.repository), pull_request, body, marker)
    done = "created" if posted.created else "updated"
    print(f"gate: PR #{pull_request} comment {done}: {posted.url}")
    return posted


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
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GateError(f"{path}: not a gate report: {exc}") from None
    if not isinstance(report, dict) or not isinstance(report.get("verdict"), str):
        raise GateError(f"{path}: not a gate report: no `verdict` (fix: pass gate's report.json)")
    return report


def pull_request_of_run(event: Mapping[str, Any], number_file: Path) -> int | None:
    """The pull request a finished run was for.

    ``workflow_run.pull_requests`` comes from GitHub and is trusted, but it is empty for a pull
    request from a fork; then the number the run wrote next to its report is used, after checking
    it is nothing but a positive integer.
    """
    run = event.get("workflow_run")
    pulls = run.get("pull_requests") if isinstance(run, dict) else None
    if isinstance(pulls, list) and pulls and isinstance(pulls[0], dict):
        number = pulls[0].get("number")
        if isinstance(number, int) and number > 0:
            return number
    if not number_file.is_file():
        return None
    with number_file.open("rb") as handle:
        text = handle.read(32).decode("ascii", errors="replace").strip()
    if not re.fullmatch(r"[1-9][0-9]{0,9}", text):
        raise GateError(f"{number_file}: not a pull request number: {text[:20]!r}")
    return int(text)


def exit_code(report: Mapping[str, Any], verdict_code: int, fail_on: str) -> int:
    """The step's exit code: the verdict's, narrowed by ``fail-on``."""
    if fail_on == "never":
        return 0
    if fail_on == "regression":
        return int(any(_fails_step(check, fail_on) for check in _failing_checks(report)))
    return verdict_code


def annotate(report: Mapping[str, Any], fail_on: str) -> None:
    """An annotation per failing check: an error if it fails the step, else a warning."""
    for check in _failing_checks(report):
        where = f"{check.get('metric')}" + (f" [{check['slice']}]" if check.get("slice") else "")
        level = "error" if _fails_step(check, fail_on) else "warning"
        message = f"{where}: {check.get('reason', 'failed')}"
        if check.get("baseline") is not None:
            message += f" (baseline {check['baseline']})"
        print(workflow_command(level, message, title=f"gate: {where}"), flush=True)


def write_outputs(path: Path, outputs: Mapping[str, str]) -> None:
    """Append step outputs, each as ``name<<DELIMITER`` so a value may span lines."""
    with path.open("a", encoding="utf-8") as handle:
        for name, value in outputs.items():
            delimiter = f"ghadelimiter_{uuid.uuid4()}"
            handle.write(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")


def workflow_command(command: str, message: str = "", **properties: str) -> str:
    """A ``::command key=value::message`` line, escaped so no text can end it early."""
    listed = ",".join(f"{key}={_escape_property(value)}" for key, value in properties.items())
    return f"::{command}{' ' + listed if listed else ''}::{_escape_data(message)}"


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def _run_quietly(inputs: Inputs, context: Context, run: RunFn, world: World) -> Outcome:
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
    return [c for c in checks if isinstance(c, dict) and c.get("status") == "fail"]


def _fails_step(check: Mapping[str, Any], fail_on: str) -> bool:
    return fail_on == "any" or (fail_on == "regression" and check.get("kind") == "regression")


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
