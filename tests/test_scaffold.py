"""``gate init``: a working starter set-up, written once, never overwritten without --force."""

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from gate.cli import main
from gate.scaffold import FILES, template


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def contents(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_init__in_an_empty_repository_then_run_passes(repo, capsys):
    assert main(["init"]) == 0
    printed = capsys.readouterr().out
    assert all(f"wrote {path}" in printed for path in FILES)
    assert "Next:" in printed and "OWNER/gate@v1" in printed
    assert sorted(contents(repo)) == sorted(FILES)

    assert main(["run", "-q"]) == 0
    report = json.loads((repo / "gate-report" / "report.json").read_text())
    assert report["verdict"] == "pass"
    assert report["dataset"]["cases"] == 5
    assert report["cases"]["failing"] == []


def test_init__a_second_time_changes_nothing(repo, capsys):
    main(["init"])
    before = contents(repo)
    capsys.readouterr()
    assert main(["init"]) == 0
    assert contents(repo) == before
    printed = capsys.readouterr().out
    assert "wrote" not in printed
    assert "Nothing to do" in printed


def test_init__a_modified_file_is_not_overwritten_without_force(repo, capsys):
    main(["init"])
    mine = repo / "thresholds" / "default.yml"
    mine.write_text("metrics: {}\n")
    (repo / "datasets" / "README.md").unlink()
    capsys.readouterr()

    assert main(["init"]) == 2
    error = capsys.readouterr().err
    assert "thresholds/default.yml" in error and "--force" in error
    assert "Traceback" not in error
    assert mine.read_text() == "metrics: {}\n"
    assert not (repo / "datasets" / "README.md").exists()  # nothing written at all

    assert main(["init", "--force"]) == 0
    printed = capsys.readouterr().out
    assert "overwrote thresholds/default.yml" in printed
    assert "wrote datasets/README.md" in printed
    assert mine.read_text() != "metrics: {}\n"


@pytest.mark.skipif(shutil.which("check-jsonschema") is None, reason="check-jsonschema absent")
def test_init__the_workflows_pass_the_github_workflow_schema(repo):
    main(["init"])
    workflows = sorted(str(p) for p in (repo / ".github" / "workflows").glob("*.yml"))
    assert len(workflows) == 3
    done = subprocess.run(
        ["check-jsonschema", "--builtin-schema", "vendor.github-workflows", *workflows],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = {
    "gate init: gate.yml": template(".github/workflows/gate.yml"),
    "gate init: gate-nightly.yml": template(".github/workflows/gate-nightly.yml"),
    "gate.yml": (ROOT / ".github" / "workflows" / "gate.yml").read_text(encoding="utf-8"),
    "nightly.yml": (ROOT / ".github" / "workflows" / "nightly.yml").read_text(encoding="utf-8"),
}


def gate_steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        step
        for step in job.get("steps", [])
        if re.fullmatch(r"\./|OWNER/gate@v1", step.get("uses", ""))
        and (step.get("with") or {}).get("mode", "run") == "run"
    ]


@pytest.mark.parametrize("name", sorted(WORKFLOWS))
def test_workflows__history_on_and_written_by_default_branch_jobs_only(name: str) -> None:
    workflow = yaml.safe_load(WORKFLOWS[name])
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as true
    runs = {name: job for name, job in workflow["jobs"].items() if gate_steps(job)}
    assert runs
    for job_name, job in runs.items():
        (step,) = gate_steps(job)
        assert step["with"]["history"] is True, job_name
        on_pull_requests = "pull_request" in triggers and job.get("if") != (
            "github.event_name == 'push'"
        )
        writes = {scope for scope, access in job["permissions"].items() if access == "write"}
        if on_pull_requests:
            assert writes <= {"pull-requests"}, job_name  # never contents: write on a PR
            assert job.get("if") == "github.event_name == 'pull_request'", job_name
        else:
            assert "contents" in writes, job_name  # the push and the nightly append
    if "pull_request" in triggers:
        assert {"push", "pull_request"} <= set(triggers)
    else:
        assert "schedule" in triggers
    assert not any(
        access == "write" for access in (workflow.get("permissions") or {}).values()
    )  # nothing broader at the top


@pytest.mark.parametrize("name", ["gate init: gate.yml", "gate.yml"])
def test_workflows__the_output_cache_is_kept_around_the_gate(name: str) -> None:
    workflow = yaml.safe_load(WORKFLOWS[name])
    for job in workflow["jobs"].values():
        uses = [step.get("uses", "").split("@")[0] for step in job["steps"]]
        cache = [i for i, use in enumerate(uses) if use.startswith("actions/cache/")]
        (gate,) = [i for i, use in enumerate(uses) if use in ("./", "OWNER/gate")]
        assert [uses[i] for i in cache] == ["actions/cache/restore", "actions/cache/save"]
        assert cache[0] < gate < cache[1]
        restore, save = (job["steps"][i] for i in cache)
        assert restore["with"]["key"] == save["with"]["key"]
        assert "hashFiles('gate.yml')" in save["with"]["key"]
        assert "hashFiles('.gate-cache/**')" in save["if"]  # no warning when runner.cache is off
