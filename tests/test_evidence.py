"""``gate evidence``: the evidence pack of a finished run, on the shipped example."""

from __future__ import annotations

import json
from pathlib import Path

from gate.cli import main

EMAIL = "jane.doe@example.com"
TOKEN = "tok-3f9a1c0d2b7e"


def test_evidence__on_the_example_holds_every_item_and_no_secret(example, monkeypatch):
    monkeypatch.chdir(example)
    golden = example / "datasets" / "golden.jsonl"
    lines = golden.read_text(encoding="utf-8").splitlines()
    first = json.loads(lines[0])
    # Personal data and a secret where the pack shows them: a tag (its slice), its count.
    first["tags"] = [*first["tags"], f"owner-{EMAIL}", TOKEN]
    golden.write_text("\n".join([json.dumps(first), *lines[1:]]) + "\n", encoding="utf-8")
    assert main(["run", "-q"]) == 0
    monkeypatch.setenv("DEPLOY_TOKEN", TOKEN)
    monkeypatch.setenv("GITHUB_SERVER_URL", "https://github.com")
    monkeypatch.setenv("GITHUB_REPOSITORY", "acme/support-bot")
    monkeypatch.setenv("GITHUB_RUN_ID", "42")
    assert main(["evidence"]) == 0

    report = Path("gate-report")
    pack = json.loads((report / "evidence.json").read_text(encoding="utf-8"))
    markdown = (report / "evidence.md").read_text(encoding="utf-8")
    for text in (json.dumps(pack), markdown):
        assert EMAIL not in text and TOKEN not in text

    assert pack["pipeline"]["adapter"] == "python"
    assert pack["pipeline"]["observed_in_outputs"]["prompt_version"]
    assert pack["dataset"]["fingerprint"].startswith("sha256:")
    assert pack["dataset"]["by_slice"]["high-risk"] == 13
    assert pack["thresholds"]["sha256"].startswith("sha256:")
    assert pack["thresholds"]["declared"]["must_pass"]["tags"] == ["high-risk"]
    assert pack["rubrics"] == {}
    assert set(pack["metrics"]["retrieval.mrr"]) >= {"value", "baseline", "delta"}
    assert all(check["reason"] for check in pack["checks"]) and pack["checks"]
    assert pack["verdict"] == "pass" and pack["baseline"]["status"] == "found"
    assert pack["urls"]["run"] == "https://github.com/acme/support-bot/actions/runs/42"
    steps = [step["step"] for step in pack["timeline"]]
    assert steps == [
        "dataset valid",
        "bars declared",
        "run complete",
        "statistics",
        "reviews",
        "verdict",
    ]
    assert "✅ dataset valid → ✅ bars declared → ✅ run complete" in markdown
    for heading in ("## Pipeline", "## Dataset", "## Bars as declared", "## Metrics", "## Checks"):
        assert heading in markdown
    assert "## Review coverage" in markdown and "## Baseline" in markdown


def test_evidence__without_a_finished_run_is_exit_2(example, monkeypatch, capsys):
    monkeypatch.chdir(example)
    assert main(["evidence", "--report", "nowhere"]) == 2
    assert "run `gate run --out nowhere` first" in capsys.readouterr().err
