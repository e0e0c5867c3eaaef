"""The command line: ``gate run | validate | merge | action | comment | init | bless | report |
review | evidence | mine``.

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
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from gate import __version__, action, history, launch, mine
from gate.bar_from import from_snapshot, git_bar
from gate.bless import Blessing
from gate.errors import GateError
from gate.files import write_atomic
from gate.load.bar import Bar, BarSource
from gate.load.baseline import legacy_note
from gate.merge import merge
from gate.pipeline import RunOptions, World, run, timestamp
from gate.plan import prepare
from gate.render.console import log_text
from gate.render.html import render_html
from gate.run.shards import Shard
from gate.scaffold import init
from gate.scrub import Scrubber, secret_values

EXIT_PASS, EXIT_FAIL, EXIT_INPUT, EXIT_BUG = 0, 1, 2, 3
BAR_FROM_HELP = "judge against the thresholds and baseline as they are at git REF"


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
    run.add_argument("--bar-from", metavar="REF", help=BAR_FROM_HELP)
    # The bar the action read for its child process (gate.bar_from.snapshot): not for people.
    run.add_argument("--bar-snapshot", type=Path, help=argparse.SUPPRESS)
    # The default branch's history the action read (gate.history entries): not for people.
    run.add_argument("--history", type=Path, help=argparse.SUPPRESS)
    run.add_argument(
        "--fail-on-inconclusive",
        action="store_true",
        help="exit 1 when a regression check cannot tell (default: exit 0 with a warning)",
    )
    run.add_argument(
        "--shard", type=Shard.parse, metavar="K/N", help="run slice K of N, for `gate merge`"
    )

    merge = commands.add_parser("merge", help="combine `gate run --shard` folders into one run")
    merge.add_argument("folders", type=Path, nargs="+", metavar="DIR", help="shard folders")
    merge.add_argument("-c", "--config", type=Path, default=Path("gate.yml"))
    merge.add_argument("--out", type=Path, default=Path("gate-report"), help="report folder")
    merge.add_argument("--baseline", type=Path, help="baseline file (overrides gate.yml)")
    merge.add_argument(
        "--update-baseline", action="store_true", help="write the merged run as the baseline"
    )

    validate = commands.add_parser("validate", help="check config, dataset, thresholds, baseline")
    validate.add_argument("-c", "--config", type=Path, default=Path("gate.yml"))
    validate.add_argument("--baseline", type=Path)
    validate.add_argument("--bar-from", metavar="REF", help=BAR_FROM_HELP)

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
    report.add_argument(
        "-c", "--config", type=Path, help="the run's gate.yml: adds the launch's status bar"
    )

    init = commands.add_parser("init", help="write a starter gate.yml, golden set and workflows")
    init.add_argument("--force", action="store_true", help="overwrite files that differ")

    review = commands.add_parser("review", help="write the queue of outputs that need a review")
    review.add_argument("-c", "--config", type=Path, default=Path("gate.yml"))
    review.add_argument("--report", type=Path, default=Path("gate-report"), help="a run's folder")
    review.add_argument("--reviewer", help="the name in the lines to append (default: git's)")

    mined = commands.add_parser("mine", help="candidate golden cases from failing runs or traces")
    mined.add_argument("file", type=Path, help="records.jsonl, traces JSONL or OTel GenAI spans")
    mined.add_argument("-c", "--config", type=Path, default=Path("gate.yml"))
    mined.add_argument("--out", type=Path, default=Path("candidates.jsonl"))
    mined.add_argument("--cases", type=Path, help="the golden set records.jsonl was run on")

    evidence = commands.add_parser("evidence", help="write the evidence pack of a finished run")
    evidence.add_argument("-c", "--config", type=Path, default=Path("gate.yml"))
    evidence.add_argument("--report", type=Path, default=Path("gate-report"), help="a run's folder")
    return parser


def _now() -> datetime:
    return datetime.now(UTC)


def _git(folder: Path, *args: str) -> str | None:
    """What ``git ARGS`` prints in ``folder``, stripped; None when git fails or prints nothing."""
    try:
        done = subprocess.run(["git", *args], cwd=folder, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def git_sha(env: Mapping[str, str], folder: Path) -> str | None:
    """The commit under test: GitHub's ``GITHUB_SHA``, else ``git rev-parse HEAD`` in ``folder``."""
    return env.get("GITHUB_SHA") or _git(folder, "rev-parse", "HEAD")


def actor(env: Mapping[str, str], config: Path) -> str:
    """Who is blessing: ``GITHUB_ACTOR`` in a workflow, else git's ``user.name``."""
    name = env.get("GITHUB_ACTOR") or _git(config.resolve().parent, "config", "user.name")
    return name or "unknown"


def world(config: Path) -> World:
    """The real world: this process's environment, the clock, the commit of the config's folder."""
    env = dict(os.environ)
    return World(env=env, now=_now, git_sha=git_sha(env, config.resolve().parent))


def bar_source(args: argparse.Namespace) -> BarSource | None:
    """``--bar-from REF``: thresholds and baseline read through git at REF."""
    if getattr(args, "bar_snapshot", None):
        return from_snapshot(args.bar_snapshot)
    if not args.bar_from:
        return None
    if args.baseline:
        raise GateError(
            "--bar-from and --baseline: use one (with --bar-from the baseline is the one at REF)"
        )
    return git_bar(args.bar_from, args.config.resolve().parent)


def bar_line(bar: Bar) -> str:
    line = f"bar: thresholds and baseline as at {bar.ref[:12]}"
    if bar.change is None:
        return line + " (the working tree declares the same)"
    rules = len(bar.change.rules)
    return f"{line}; the working tree changes {', '.join(bar.change.files)} ({rules} changes)"


def _reviewer(folder: Path) -> str:
    """Who reviews: ``git config user.name``, else the system's user name."""
    return _git(folder, "config", "user.name") or os.environ.get("USER") or "reviewer"


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "run":
        outcome = run(
            RunOptions(
                config=args.config,
                out_dir=args.out,
                baseline=args.baseline,
                update_baseline=args.update_baseline,
                shard=args.shard,
                history=history.parse(args.history.read_text(encoding="utf-8"))
                if args.history
                else (),
                progress=None if args.quiet else sys.stderr,
                world=replace(world(args.config), bar=bar_source(args)),
            )
        )
        print(log_text(str(outcome.report["summary"])))
        print(f"report: {outcome.report_path} and {outcome.markdown_path}")
        if outcome.report.get("verdict") == "inconclusive":  # a shard has no verdict
            print(
                "gate: warning: inconclusive: a change beyond a tolerance the data cannot tell "
                "(more cases or repeats would decide it); "
                + ("exit 1 (--fail-on-inconclusive)" if args.fail_on_inconclusive else "exit 0"),
                file=sys.stderr,
            )
            return 1 if args.fail_on_inconclusive else outcome.exit_code
        return outcome.exit_code
    if args.command == "merge":
        options = RunOptions(
            config=args.config,
            out_dir=args.out,
            baseline=args.baseline,
            update_baseline=args.update_baseline,
            world=world(args.config),
        )
        outcome = merge(args.folders, options)
        print(log_text(str(outcome.report["summary"])))
        print(f"report: {outcome.report_path} and {outcome.markdown_path}")
        return outcome.exit_code
    if args.command == "validate":
        plan = prepare(args.config, args.baseline, bar_source(args))
        rules = len(plan.thresholds.metrics) + sum(map(len, plan.thresholds.slices.values()))
        baseline = "found" if plan.baseline else "none yet"
        note = legacy_note(plan.baseline_path, plan.baseline)
        if note:
            print(f"gate: note: {note}", file=sys.stderr)
        print(f"ok: {len(plan.cases)} cases, {rules} threshold rules, baseline {baseline}")
        if plan.bar is not None:
            print(bar_line(plan.bar))
        if waiting := mine.unfinished(plan.cases):
            shown = ", ".join(waiting[:20]) + (
                f", +{len(waiting) - 20} more" if len(waiting) > 20 else ""
            )
            print(
                log_text(
                    f"gate: warning: {len(waiting)} unfinished cases (mined, `expected` not "
                    f"filled): {shown} (fix: fill `expected`, then remove metadata.unfinished)"
                ),
                file=sys.stderr,
            )
        return EXIT_PASS
    if args.command == "init":
        return init(Path.cwd(), force=args.force, out=sys.stdout)
    if args.command == "review":
        reviewer = args.reviewer or _reviewer(args.config.resolve().parent)
        items, markdown, page = launch.review_queue(
            args.config, args.report, _now().date(), reviewer
        )
        print(f"{len(items)} outputs need a review: {markdown} and {page}")
        return EXIT_PASS
    if args.command == "mine":
        found = mine.mine_file(args.config, args.file, args.out, args.cases)
        print(
            f"{len(found.candidates)} candidate cases in {args.out} from {found.read} runs "
            f"({found.passing} passing, {found.known} already in the golden set, "
            f"{found.repeated} repeats); fill `expected` in each, then move them in"
        )
        return EXIT_PASS
    if args.command == "evidence":
        env = dict(os.environ)
        # Values of secret-looking variables never reach the pack, whatever their shape.
        as_json, markdown = launch.evidence_pack(
            args.config, args.report, _now().date(), launch.run_urls(env), secret_values(env)
        )
        print(f"evidence: {markdown} and {as_json}")
        return EXIT_PASS
    if args.command == "bless":
        who = Blessing(
            reason=args.reason, actor=actor(os.environ, args.config), at=timestamp(_now())
        )
        return action.bless_folder(args.report, who, args.config, args.baseline)
    if args.command == "report":
        page = args.report / "report.html"
        steps = (
            launch.launch_timeline(args.config, args.report, _now().date()) if args.config else []
        )
        write_atomic(page, render_html(action.read_report(args.report / "report.json"), steps))
        print(f"report: {page}")
        return EXIT_PASS
    if args.command == "action":
        env = action.conceal_token(os.environ)
        workspace = Path(env.get("GITHUB_WORKSPACE") or ".")
        return action.main(env, world=world(workspace / "gate.yml"))
    return action.comment(args.report, os.environ, config=args.config)


def _scrubbed(text: str) -> str:
    """``text`` without the environment's secrets or what the default patterns match: an error
    may quote a dataset line or a server's reply."""
    return Scrubber(tuple(secret_values(os.environ))).text(text)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
        return _dispatch(args)
    except GateError as exc:
        print(log_text(f"gate: error: {_scrubbed(str(exc))}"), file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        print("gate: interrupted", file=sys.stderr)
        return 130
    except Exception:
        print(_scrubbed(traceback.format_exc()), end="", file=sys.stderr)
        print(
            "gate: this is a bug in the gate, not in your input (exit 3); please report it "
            "with the traceback above",
            file=sys.stderr,
        )
        return EXIT_BUG
