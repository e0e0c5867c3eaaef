"""Files the gate writes: mode 0644, never through a symlink, no stale report, no wasted run."""

import json
import os
import stat
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from builders import copy_example

import gate.pipeline
from gate.cli import main
from gate.files import (
    _may_hold_long_integer,
    from_json,
    open_new,
    to_json,
    unwritable,
    write_atomic,
)


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
        handle.write(b"{}\n")
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
        handle.write(b"new")
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


# --- to_json: the JSON text of every file the gate writes --------------------------------------

DOCUMENT: dict[str, Any] = {
    "schema_version": 1,
    "verdict": "fail",
    "summary": "2 of 3 checks failed – ünïcode, not escaped",
    "metrics": {"ops.cost_usd": 1e-07, "ops.latency_p95_ms": 1234.5, "tiny": 5e-324, "big": 1e22},
    "cases": {"failing": [{"id": "c1", "tags": (), "source": {"line": 7}}], "empty": {}},
    "flags": [True, False, None, -0.0, 2**63, -(2**63)],
}


def test_to_json__the_document_json_wrote_indent_2_floats_in_notation_only():
    written = to_json(DOCUMENT, indent=True).decode()
    before = json.dumps(DOCUMENT, indent=2, ensure_ascii=False, allow_nan=False)
    assert json.loads(written) == json.loads(before)
    assert list(json.loads(written)) == list(DOCUMENT)  # keys in their order
    assert "ünïcode" in written
    # Only float notation differs: orjson writes 1e-7 where Python writes 1e-07.
    assert written.replace("1e-7", "1e-07") == before


@pytest.mark.parametrize("value", [{"n": 1}, {"n": 10**30}], ids=["orjson", "json"])
def test_to_json__a_newline_at_the_end_when_asked(value):
    assert to_json(value, indent=True, newline=True) == to_json(value, indent=True) + b"\n"


def test_to_json__compact_and_sorted():
    assert to_json({"b": [1, 2.5], "a": "é"}) == '{"b":[1,2.5],"a":"é"}'.encode()
    assert to_json({"b": 1, "a": {"d": 1, "c": 2}}, sort_keys=True) == b'{"a":{"c":2,"d":1},"b":1}'


@pytest.mark.parametrize(
    "value",
    [
        float("nan"),
        {"metrics": {"x": float("inf")}},
        [1, (2, -float("inf"))],
        {"x": np.float64("nan")},
    ],
    ids=["nan", "nested-inf", "in-a-tuple", "numpy-nan"],
)
def test_to_json__nan_and_infinity_are_refused_not_written_as_null(value):
    with pytest.raises(ValueError, match="not JSON compliant"):
        to_json(value, indent=True)


def test_to_json__a_value_that_contains_itself_is_refused():
    looped: dict[str, Any] = {"a": [1.5]}
    looped["a"].append(looped)
    with pytest.raises(ValueError, match="Circular reference"):
        to_json(looped, indent=True)


def test_to_json__unchecked_when_the_caller_checked():
    assert to_json([float("nan")], finite=False) == b"[null]"


@pytest.mark.parametrize(
    "value",
    [
        {"count": 10**30, "negative": -(10**40)},  # beyond orjson's 64 bits
        {1: "a", None: "b", 2.5: "c"},  # keys json writes as text, orjson refuses
    ],
    ids=["long-integers", "non-string-keys"],
)
def test_to_json__what_orjson_refuses_is_written_as_json_writes_it(value):
    assert to_json(value) == json.dumps(value, separators=(",", ":")).encode()
    indented = json.dumps(value, indent=2).encode()
    assert to_json(value, indent=True) == indented


def test_to_json__values_json_has_no_type_for_go_to_default_as_json_sends_them():
    odd = {
        "np64": np.float64(0.25),  # a float: a number
        "np32": np.float32(0.5),
        "npint": np.int64(3),
        "day": date(2025, 1, 2),
    }
    before = json.dumps(odd, ensure_ascii=False, default=str)
    assert json.loads(to_json(odd, default=str)) == json.loads(before)
    with pytest.raises(TypeError):
        to_json({"day": date(2025, 1, 2)})
    with pytest.raises(TypeError):
        to_json({"when": {1, 2}})


def test_run__a_non_finite_value_in_the_report_is_exit_3_and_no_report(
    project, monkeypatch, capsys
):
    build = gate.pipeline.build_report

    def with_nan(**kwargs):
        report = build(**kwargs)
        report["flaky"]["rate"] = float("nan")
        return report

    monkeypatch.setattr(gate.pipeline, "build_report", with_nan)
    out = project / "out"
    assert run(project, out) == 3
    assert "ValueError: Out of range float values are not JSON compliant: nan" in (
        capsys.readouterr().err
    )
    assert not (out / "report.json").exists()


# --- from_json: json.loads' reading, by orjson where it reads the same -------------------------


@pytest.mark.parametrize(
    "text",
    [
        '{"id": "c1", "n": 12345678901234567890123, "m": -1234567890123456789}',
        '{"score": NaN, "cost": Infinity}',  # not JSON, but json.loads reads it
        r'{"a": "\ud800"}',
        '{"a": 1, "a": [1.5e-7, 0.1, -0]}',
    ],
)
def test_from_json__reads_what_json_loads_reads(text):
    value = from_json(text)
    assert repr(value) == repr(json.loads(text))


def test_from_json__refuses_what_json_loads_refuses():
    with pytest.raises(json.JSONDecodeError, match="Expecting value: line 1 column 6"):
        from_json('{"a":}')


def test_may_hold_long_integer__never_misses_one_and_looks_past_short_ones():
    assert _may_hold_long_integer('{"a": [1, 2], "b":\n -1234567890123456789}')
    assert _may_hold_long_integer("1234567890123456789")
    assert not _may_hold_long_integer('{"a": [123456789012345678, 0.5]}')
    assert not _may_hold_long_integer('{"id": "sha256:1234567890123456789"}')
