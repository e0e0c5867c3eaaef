"""The launch loop around a finished run: the review queue (``gate review``) and the evidence
pack (``gate evidence``). Both read the run from its report folder and the plan from gate.yml,
and write files beside the report; the CLI passes in the clock and the environment.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from gate.decide.review import NO_OUTPUT, Coverage, coverage, last_approved, repeat0_outputs
from gate.errors import ConfigError
from gate.files import write_atomic
from gate.load import strict_json
from gate.load.blessings import blessings, log_path
from gate.plan import Plan, prepare
from gate.render.evidence import build_evidence, render_evidence_markdown, timeline
from gate.render.review import QueueItem, render_queue_html, render_queue_markdown, review_line
from gate.scrub import Scrubber


@dataclass(frozen=True)
class Finished:
    """A finished run, as its report folder holds it, with the plan it ran under."""

    plan: Plan
    report: dict[str, Any]
    records: list[dict[str, Any]]
    coverage: Coverage | None


def read_run(config: Path, report_dir: Path, today: date) -> Finished:
    """The run in ``report_dir`` (report.json, records.jsonl) and its review coverage today."""
    plan = prepare(config)
    report = _read_json(report_dir / "report.json")
    records = _read_records(report_dir / "records.jsonl")
    return Finished(plan, report, records, coverage(plan, repeat0_outputs(records), today))


def _missing_run(path: Path) -> ConfigError:
    return ConfigError(
        f"{path}: not found (fix: run `gate run --out {path.parent}` first, or pass --report "
        "the folder of a finished run)"
    )


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = strict_json.loads(path.read_bytes())
    except FileNotFoundError:
        raise _missing_run(path) from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read the report: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: not a gate report (fix: point --report at a gate-report folder)"
        )
    return data


def _read_records(path: Path) -> list[dict[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise _missing_run(path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the records: {exc}") from None
    out = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = strict_json.loads(line)
        except ValueError as exc:
            raise ConfigError(f"{path}:{number}: invalid JSON: {exc}") from None
        if isinstance(row, dict):
            out.append(row)
    return out


def review_queue(
    config: Path, report_dir: Path, today: date, reviewer: str
) -> tuple[list[QueueItem], Path, Path]:
    """Write ``review.md`` and ``review.html`` into ``report_dir``: every output in a slice that
    needs review and has no current approval. Returns the items and the two paths."""
    run = read_run(config, report_dir, today)
    if run.coverage is None:
        raise ConfigError(
            f"{config}: the thresholds declare no `review:` (fix: add "
            "`review: {tags: [high-risk], max_age_days: 90}` to the thresholds file)"
        )
    outputs = repeat0_outputs(run.records)
    cases = {case.id: case for case in run.plan.cases}
    items = []
    for miss in run.coverage.uncovered():
        case = cases[miss.case_id]
        output = outputs.get(miss.case_id, NO_OUTPUT)
        shown = None if output is NO_OUTPUT else output
        before = last_approved(run.plan, miss.case_id)
        lines = {
            verdict: review_line(
                case.id, miss.fingerprint or "", reviewer, verdict, today.isoformat(), shown
            )
            for verdict in ("approve", "reject")
        }
        items.append(
            QueueItem(
                case_id=case.id,
                tags=case.tags,
                reason=miss.reason,
                input=case.input,
                expected=case.expected.model_dump(mode="json", exclude_none=True),
                output=shown,
                approved=before.output if before is not None else None,
                approve_line=lines["approve"],
                reject_line=lines["reject"],
            )
        )
    summary = [found.line() for found in run.coverage.slices]
    markdown, page = report_dir / "review.md", report_dir / "review.html"
    write_atomic(markdown, render_queue_markdown(items, summary))
    write_atomic(page, render_queue_html(items, summary))
    return items, markdown, page


def run_urls(env: Mapping[str, str]) -> dict[str, str]:
    """The workflow run and the commit, when the pack is made inside GitHub Actions."""
    server, repo = env.get("GITHUB_SERVER_URL"), env.get("GITHUB_REPOSITORY")
    if not server or not repo:
        return {}
    urls = {"repository": f"{server}/{repo}"}
    if env.get("GITHUB_RUN_ID"):
        urls["run"] = f"{server}/{repo}/actions/runs/{env['GITHUB_RUN_ID']}"
    if env.get("GITHUB_SHA"):
        urls["commit"] = f"{server}/{repo}/commit/{env['GITHUB_SHA']}"
    return urls


def launch_timeline(config: Path, report_dir: Path, today: date) -> list[dict[str, str]]:
    """The launch's gates for the run in ``report_dir``, in order (the evidence pack's too)."""
    run = read_run(config, report_dir, today)
    return timeline(run.report, run.plan, run.coverage)


def evidence_pack(
    config: Path,
    report_dir: Path,
    today: date,
    urls: Mapping[str, str],
    secrets: Collection[str] = (),
) -> tuple[Path, Path]:
    """Write ``evidence.json`` and ``evidence.md`` into ``report_dir``, personal data and
    secrets (the patterns, and the values in ``secrets``) scrubbed."""
    run = read_run(config, report_dir, today)
    scrub = Scrubber(tuple(secrets))
    path = run.plan.baseline_path
    audit = blessings(log_path(path)) if path is not None else []
    evidence = scrub.value(
        build_evidence(run.plan, run.report, run.records, run.coverage, urls, audit)
    )
    as_json, markdown = report_dir / "evidence.json", report_dir / "evidence.md"
    write_atomic(as_json, json.dumps(evidence, indent=2, ensure_ascii=False) + "\n")
    write_atomic(markdown, scrub.text(render_evidence_markdown(evidence)))
    return as_json, markdown
