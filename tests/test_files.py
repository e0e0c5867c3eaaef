"""Files the gate writes: mode 0644, never through a symlink, no stale report, no wasted run."""

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from builders import copy_example

import gate.pipeline
from gate.cli import main
from gate.files import open_new, unwritable, write_atomic


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return copy_example(tmp_path / "project")


@pytest.fixture
def strict_umask() -> Iterator[None]:
    before = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(before)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def run(project: Path, out: Path, *args: str) -> int:
    return main(["run", "-q", "-c", str(project / "gate.yml"), "--out", str(out), *args])


def test_write_atomic__0644_whatever_the_umask(tmp_path, strict_umask):
    write_atomic(tmp_path / "a.json", "{}\n")
    with open_new(tmp_path / "b.jsonl") as handle:
        handle.write("{}\n")
    assert mode(tmp_path / "a.json") == 0o644
    assert mode(tmp_path / "b.jsonl") == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.jsonl"]


def test_run__reports_records_and_baseline_are_0644(project, strict_umask):
    out = project / "out"
    assert run(project, out, "--update-baseline") == 0
    for name in ("report.json", "report.md", "records.jsonl"):
        assert mode(out / name) == 0o644, name
    assert mode(project / "thresholds" / "baseline.json") == 0o644


@pytest.mark.parametrize("name", ["records.jsonl", "report.json", "report.md"])
def test_run__a_symlink_in_the_report_folder_is_replaced_not_followed(project, tmp_path, name):
    target = tmp_path / "precious.txt"
    target.write_text("do not touch\n")
    out = project / "out"
    out.mkdir()
    (out / name).symlink_to(target)

    assert run(project, out) == 0

    assert target.read_text() == "do not touch\n"
    assert not (out / name).is_symlink()
    assert (out / name).stat().st_size > 0


def test_open_new__replaces_a_symlink_rather_than_following_it(tmp_path):
    target = tmp_path / "target"
    target.write_text("keep")
    (tmp_path / "link").symlink_to(target)
    with open_new(tmp_path / "link") as handle:
        handle.write("new")
    assert target.read_text() == "keep"
    assert (tmp_path / "link").read_text() == "new"


def test_run__a_killed_run_leaves_no_stale_report(project, monkeypatch):
    out = project / "out"
    assert run(project, out) == 0
    assert json.loads((out / "report.json").read_text())["verdict"] == "pass"

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(gate.pipeline, "decide", killed)
    assert run(project, out) == 130

    assert not (out / "report.json").exists()
    assert not (out / "report.md").exists()
    assert (out / "records.jsonl").read_text()  # this run's records, as the cases finished


@pytest.fixture
def no_case_runs(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a case ran")

    monkeypatch.setattr(gate.pipeline, "run_cases", refuse)


def test_run__out_that_is_a_file_is_exit_2_before_any_case(project, capsys, no_case_runs):
    out = project / "out"
    out.write_text("a file\n")
    assert run(project, out) == 2
    err = capsys.readouterr().err
    assert f"--out {out}: {out} is not a folder (fix: pass --out a folder" in err
    assert out.read_text() == "a file\n"


def test_run__out_below_a_file_is_exit_2_before_any_case(project, capsys, no_case_runs):
    (project / "file").write_text("")
    assert run(project, project / "file" / "out") == 2
    assert "Not a directory" in capsys.readouterr().err


@pytest.mark.skipif(not Path("/proc/self").exists(), reason="needs /proc: unwritable even by root")
def test_run__a_baseline_path_that_cannot_be_written_is_exit_2_before_any_case(
    project, capsys, no_case_runs
):
    baseline = Path("/proc/gate-baseline.json")
    assert run(project, project / "out", "--update-baseline", "--baseline", str(baseline)) == 2
    assert f"--update-baseline: {baseline}: cannot write in /proc" in capsys.readouterr().err


def test_unwritable__a_folder_where_a_file_goes(tmp_path):
    assert unwritable(tmp_path, folder=False) == "it is a folder, not a file"
    assert unwritable(tmp_path / "new" / "baseline.json", folder=False) is None


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_unwritable__a_read_only_folder(tmp_path):
    tmp_path.chmod(0o555)
    try:
        assert "Permission denied" in (unwritable(tmp_path / "out") or "")
    finally:
        tmp_path.chmod(0o755)
