"""The command line: ``gate run | validate | action | comment | init | bless | report``.

Exit codes: 0 the gate passed, 1 it failed, 2 the input is wrong (a message, no traceback),
3 a bug in the gate (a traceback, so it can be reported).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import traceback
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from gate import __version__, action
from gate.bless import Blessing
from gate.errors import GateError
from gate.files import write_atomic
from gate.pipeline import RunOptions, World, run, timestamp
from gate.plan import prepare
from gate.render.console import log_text
from gate.render.html import render_html
from gate.scaffold import init

EXIT_PASS, EXIT_FAIL, EXIT_INPUT, EXIT_BUG = 0, 1, 2, 3


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # argparse exits 2 on bad usage too; say it our way, with the usage line as the fix.
        raise GateError(f"{self.prog}: {message}\n{self.format_usage().strip()}")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="gate", description="Decide whether an LLM feature may ship.")
    parser.add_argument("--version", action="version", version=f"gate {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = commands.add_parser("run", help="run the golden set, check thresholds and baseline")
    run.add_argument("-c", "--config", type=Path, default=Path("gate.yml"))
    run.add_argument("--out", type=Path, default=Path("gate-report"), help="report folder")
    run.add_argument("--baseline", type=Path, help="baseline file (overrides gate.yml)")
    run.add_argument(
        "--update-baseline", action="store_true", help="write this run's metrics as the baseline"
    )
    run.add_argument("-q", "--quiet", action="store_true", help="no progress lines")

    validate = commands.add_parser("validate", help="check config, dataset, thresholds, baseline")
    validate.add_argument("-c", "--config", type=Path, default=Path("gate.yml"))
    validate.add_argument("--baseline", type=Path)

    commands.add_parser("action", help="the GitHub Action's entry point (reads INPUT_* / GITHUB_*)")

    comment = commands.add_parser("comment", help="post or update the PR comment from a report")
    comment.add_argument("--report", type=Path, required=True, help="a finished report.json")
    comment.add_argument(
        "-c", "--config", type=Path, default=Path("gate.yml"), help="names the comment to update"
    )

    bless = commands.add_parser("bless", help="make a finished run the baseline, with a reason")
    bless.add_argument("--reason", default="", help="why its deltas are accepted (required)")
    bless.add_argument("--report", type=Path, default=Path("gate-report"), help="run folder")
    bless.add_argument("-c", "--config", type=Path, default=Path("gate.yml"))
    bless.add_argument("--baseline", type=Path, help="baseline file (overrides gate.yml)")

    report = commands.add_parser("report", help="write report.html from a finished run")
    report.add_argument("--html", action="store_true", required=True, help="write report.html")
    report.add_argument("--report", type=Path, default=Path("gate-report"), help="run folder")

    init = commands.add_parser("init", help="write a starter gate.yml, golden set and workflows")
    init.add_argument("--force", action="store_true", help="overwrite files that differ")
    return parser


def _now() -> datetime:
    return datetime.now(UTC)


def git_sha(env: Mapping[str, str], folder: Path) -> str | None:
    """The commit under test: GitHub's ``GITHUB_SHA``, else ``git rev-parse HEAD`` in ``folder``."""
    if env.get("GITHUB_SHA"):
        return env["GITHUB_SHA"]
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def actor(env: Mapping[str, str], config: Path) -> str:
    """Who is blessing: ``GITHUB_ACTOR`` in a workflow, else git's ``user.name``."""
    if env.get("GITHUB_ACTOR"):
        return env["GITHUB_ACTOR"]
    try:
        done = subprocess.run(
            ["git", "config", "user.name"],
            cwd=config.resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return done.stdout.strip() or "unknown"


def world(config: Path) -> World:
    """The real world: this process's environment, the clock, the commit of the config's folder."""
    env = dict(os.environ)
    return World(env=env, now=_now, git_sha=git_sha(env, config.resolve().parent))


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "run":
        outcome = run(
            RunOptions(
                config=args.config,
                out_dir=args.out,
                baseline=args.baseline,
                update_baseline=args.update_baseline,
                progress=None if args.quiet else sys.stderr,
                world=world(args.config),
            )
        )
        print(log_text(str(outcome.report["summary"])))
        print(f"report: {outcome.report_path} and {outcome.markdown_path}")
        return outcome.exit_code
    if args.command == "validate":
        plan = prepare(args.config, args.baseline)
        rules = len(plan.thresholds.metrics) + sum(map(len, plan.thresholds.slices.values()))
        baseline = "found" if plan.baseline else "none yet"
        print(f"ok: {len(plan.cases)} cases, {rules} threshold rules, baseline {baseline}")
        return EXIT_PASS
    if args.command == "init":
        return init(Path.cwd(), force=args.force, out=sys.stdout)
    if args.command == "bless":
        who = Blessing(
            reason=args.reason, actor=actor(os.environ, args.config), at=timestamp(_now())
        )
        return action.bless_folder(args.report, who, args.config, args.baseline)
    if args.command == "report":
        page = args.report / "report.html"
        write_atomic(page, render_html(action.read_report(args.report / "report.json")))
        print(f"report: {page}")
        return EXIT_PASS
    if args.command == "action":
        workspace = Path(os.environ.get("GITHUB_WORKSPACE") or ".")
        return action.main(os.environ, world=world(workspace / "gate.yml"))
    return action.comment(args.report, os.environ, config=args.config)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
        return _dispatch(args)
    except GateError as exc:
        print(log_text(f"gate: error: {exc}"), file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        print("gate: interrupted", file=sys.stderr)
        return 130
    except Exception:
        traceback.print_exc()
        print(
            "gate: this is a bug in the gate, not in your input (exit 3); please report it "
            "with the traceback above",
            file=sys.stderr,
        )
        return EXIT_BUG
