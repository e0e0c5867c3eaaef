"""``gate init``: a working starter set-up, written once, never overwritten without --force."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from gate.cli import main
from gate.scaffold import FILES


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
