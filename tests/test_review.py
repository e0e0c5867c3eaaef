"""Review coverage as a gate: reviews.jsonl, the thresholds' ``review:``, ``gate review``."""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from gate.cli import main
from gate.load.bar import BarSource
from gate.load.reviews import output_fingerprint
from gate.pipeline import RunOptions, World
from gate.pipeline import run as gate_run

CASES = [
    {"id": "refund", "input": "Refund 500?", "expected": {"answer": "No"}, "tags": ["high-risk"]},
    {"id": "delete", "input": "Delete my data", "expected": {}, "tags": ["high-risk"]},
    {"id": "plans", "input": "Which plans?", "expected": {}, "tags": ["billing"]},
]
OUTPUTS = {
    "refund": {"answer": "No refund"},
    "delete": {"answer": "Done"},
    "plans": {"answer": "3"},
}
TODAY = datetime.now(UTC).date()


def project(folder: Path, make_project: Any, outputs: dict[str, Any] = OUTPUTS) -> Path:
    replay = "".join(
        json.dumps({"id": i, "output": out, "latency_ms": 10.0}) + "\n"
        for i, out in outputs.items()
    )
    (folder / "outputs.jsonl").write_text(replay, encoding="utf-8")
    config: Path = make_project(
        CASES,
        {"review": {"tags": ["high-risk"], "max_age_days": 90}},
        pipeline={"adapter": "replay", "path": "outputs.jsonl"},
        reviews="reviews.jsonl",
    )
    return config


def approve(
    folder: Path, case_id: str, output: Any, verdict: str = "approve", age: int = 0
) -> None:
    line = {
        "case": case_id,
        "fingerprint": output_fingerprint(output),
        "reviewer": "ana",
        "verdict": verdict,
        "date": (TODAY - timedelta(days=age)).isoformat(),
        "output": output,
    }
    with (folder / "reviews.jsonl").open("a", encoding="utf-8") as file:
        file.write(json.dumps(line) + "\n")


def run(config: Path) -> tuple[int, dict[str, Any]]:
    out = config.parent / "gate-report"
    code = main(["run", "-q", "-c", str(config), "--out", str(out)])
    return code, json.loads((out / "report.json").read_text(encoding="utf-8"))


def test_review__an_unreviewed_high_risk_output_fails(tmp_path, make_project):
    config = project(tmp_path, make_project)
    approve(tmp_path, "refund", OUTPUTS["refund"])
    code, report = run(config)
    assert code == 1
    [check] = [c for c in report["checks"] if c["rule"] == "review"]
    assert check["status"] == "fail" and check["slice"] == "high-risk"
    assert check["reason"].startswith("high-risk: 1 of 2 outputs reviewed; missing: delete")
    assert report["review"]["slices"]["high-risk"]["missing"] == [
        {"id": "delete", "reason": "never reviewed"}
    ]
    markdown = (tmp_path / "gate-report" / "report.md").read_text(encoding="utf-8")
    assert "#### Review coverage" in markdown
    assert "❌ high-risk: 1 of 2 outputs reviewed" in markdown


def test_review__approving_that_exact_output_passes(tmp_path, make_project):
    config = project(tmp_path, make_project)
    approve(tmp_path, "refund", OUTPUTS["refund"])
    approve(tmp_path, "delete", OUTPUTS["delete"])
    code, report = run(config)
    assert code == 0, report["summary"]
    assert report["review"]["slices"]["high-risk"] == {"total": 2, "reviewed": 2, "missing": []}


def test_review__a_changed_output_needs_a_new_review(tmp_path, make_project):
    config = project(tmp_path, make_project, {**OUTPUTS, "delete": {"answer": "Deleted, sorry"}})
    approve(tmp_path, "refund", OUTPUTS["refund"])
    approve(tmp_path, "delete", OUTPUTS["delete"])
    code, report = run(config)
    assert code == 1
    [missing] = report["review"]["slices"]["high-risk"]["missing"]
    assert missing["id"] == "delete" and missing["reason"].startswith("output changed since ana")


@pytest.mark.parametrize(
    ("verdict", "age", "reason"),
    [("reject", 0, "rejected by ana"), ("approve", 91, "approval of")],
)
def test_review__a_reject_or_an_expired_approval_does_not_cover(
    tmp_path, make_project, verdict, age, reason
):
    config = project(tmp_path, make_project)
    approve(tmp_path, "refund", OUTPUTS["refund"])
    approve(tmp_path, "delete", OUTPUTS["delete"], verdict=verdict, age=age)
    code, report = run(config)
    assert code == 1
    [missing] = report["review"]["slices"]["high-risk"]["missing"]
    assert missing["reason"].startswith(reason)


def test_review__a_bad_reviews_line_is_exit_2_with_file_line_key(tmp_path, make_project, capsys):
    config = project(tmp_path, make_project)
    approve(tmp_path, "refund", OUTPUTS["refund"])
    bad = {"case": "delete", "fingerprint": "md5:1", "reviewer": "x", "verdict": "ok", "date": "x"}
    with (tmp_path / "reviews.jsonl").open("a", encoding="utf-8") as file:
        file.write(json.dumps(bad) + "\n")
    assert main(["validate", "-c", str(config)]) == 2
    err = capsys.readouterr().err
    assert "reviews.jsonl:2: fingerprint:" in err and "reviews.jsonl:2: verdict:" in err


def test_review__thresholds_asking_for_reviews_need_a_reviews_file(tmp_path, make_project, capsys):
    make_project(CASES, {"review": {"tags": ["high-risk"]}})
    assert main(["validate", "-c", str(tmp_path / "gate.yml")]) == 2
    assert "fix: add `reviews: reviews.jsonl`" in capsys.readouterr().err


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.links: list[str] = []
        self.sections: list[str] = []
        self.pres: list[str] = []
        self._pre = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        found = dict(attrs)
        self.links += [v or "" for k, v in attrs if k in ("src", "href", "action")]
        if tag == "section":
            self.sections.append(found.get("id") or "")
        if tag == "pre":
            self._pre = True
            self.pres.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "pre":
            self._pre = False

    def handle_data(self, data: str) -> None:
        if self._pre:
            self.pres[-1] += data


def test_review__the_queue_lists_exactly_the_uncovered_cases(tmp_path, make_project, capsys):
    hostile = {"answer": "<script>alert(1)</script><img src=x onerror=alert(2)> @team"}
    outputs = {**OUTPUTS, "refund": {"answer": "No refund, sorry"}, "delete": hostile}
    config = project(tmp_path, make_project, outputs)
    approve(tmp_path, "refund", OUTPUTS["refund"])  # approved before the output changed
    run(config)
    report = tmp_path / "gate-report"
    code = main(["review", "-c", str(config), "--report", str(report), "--reviewer", "bo"])
    assert code == 0
    assert "2 outputs need a review" in capsys.readouterr().out

    page = _Page()
    page.feed((report / "review.html").read_text(encoding="utf-8"))
    assert sorted(page.sections) == ["case-delete", "case-refund"]
    assert "script" not in page.tags and "img" not in page.tags and page.links == []
    diff = next(p for p in page.pres if "last approved" in p)
    assert '-  "answer": "No refund"' in diff and '+  "answer": "No refund, sorry"' in diff

    # The lines to append are exact: appending the approvals makes the gate pass.
    approvals = [json.loads(p) for p in page.pres if '"verdict": "approve"' in p]
    assert {a["case"] for a in approvals} == {"refund", "delete"}
    with (tmp_path / "reviews.jsonl").open("a", encoding="utf-8") as file:
        file.writelines(json.dumps(a) + "\n" for a in approvals)
    assert run(config)[0] == 0
    markdown = (report / "review.md").read_text(encoding="utf-8")
    assert "## refund" in markdown and "## delete" in markdown and "## plans" not in markdown


CHROMIUM = shutil.which("chromium")


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")
def test_review__the_html_renders_in_headless_chromium(tmp_path, make_project):
    config = project(tmp_path, make_project)
    run(config)
    report = tmp_path / "gate-report"
    assert main(["review", "-c", str(config), "--report", str(report), "--reviewer", "bo"]) == 0
    # The documented command (docs/review.md): the DOM Chromium built from the page.
    done = subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'chromium'}",
            "--dump-dom",
            (report / "review.html").as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert 'id="case-delete"' in done.stdout and 'id="case-refund"' in done.stdout


@pytest.mark.parametrize("approved", [False, True], ids=["base bar", "approved bar change"])
def test_review__a_pull_request_cannot_approve_its_own_outputs(tmp_path, make_project, approved):
    config = project(tmp_path, make_project)
    approve(tmp_path, "refund", OUTPUTS["refund"])
    at_base = {path.resolve(): path.read_text(encoding="utf-8") for path in tmp_path.iterdir()}
    approve(tmp_path, "delete", OUTPUTS["delete"])  # the pull request's own line

    source = BarSource("base", lambda path: at_base.get(path.resolve()), honour_change=approved)
    outcome = gate_run(
        RunOptions(
            config=config,
            out_dir=tmp_path / "out",
            progress=None,
            world=World(now=lambda: datetime.now(UTC), bar=source),
        )
    )

    [check] = [c for c in outcome.report["checks"] if c["rule"] == "review"]
    if approved:  # the label approves the bar change: the pull request's reviews count
        assert check["status"] == "pass"
    else:
        assert check["status"] == "fail"
        assert "missing: delete" in check["reason"]
