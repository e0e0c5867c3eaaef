"""The CLI's exit codes and messages, on the shipped example and on broken input."""

import json
import subprocess
import sys
from pathlib import Path

from gate.cli import main

ROOT = Path(__file__).resolve().parents[1]


def gate(example: Path, *args: str) -> int:
    return main([*args, "-c", str(example / "gate.yml")] if args[0] != "comment" else list(args))


def test_run__the_shipped_example_passes_against_its_baseline(example, capsys):
    out = example / "gate-report"
    assert gate(example, "run", "-q", "--out", str(out)) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["verdict"] == "pass"
    assert report["baseline"]["status"] == "found"
    assert report["metrics"]["retrieval.mrr"]["delta"] == 0
    assert (out / "report.md").read_text().startswith("### ✅ gate: pass")
    records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    assert len(records) == report["dataset"]["cases"]
    assert all(len(r["trace_id"]) == 32 and r["scores"] for r in records)
    assert capsys.readouterr().out.startswith("pass: ")


def test_run__a_worse_retriever_fails_the_gate(example, monkeypatch):
    monkeypatch.setenv("RAG_TOP_K", "1")
    out = example / "gate-report"
    assert gate(example, "run", "-q", "--out", str(out)) == 1
    report = json.loads((out / "report.json").read_text())
    failed = {(c["metric"], c["rule"]) for c in report["checks"] if c["status"] == "fail"}
    assert ("retrieval.hit_rate@5", "min") in failed
    # 8 of 60 cases newly missed, tolerance 0.05: beyond the tolerance, but 60 cases cannot
    # tell it at 95% for the family of 4 regression checks; the `min` bar fails the gate
    [drop] = [
        c
        for c in report["checks"]
        if c["rule"] == "max_drop" and c["metric"] == "retrieval.hit_rate@5"
    ]
    assert drop["status"] == "inconclusive"
    hit = report["metrics"]["retrieval.hit_rate@5"]
    assert hit["value"] < hit["baseline"]
    assert hit["status"] == "fail"


def test_run__baseline_only_written_when_asked_and_never_from_a_failing_run(
    example, monkeypatch, capsys
):
    baseline = example / "thresholds" / "baseline.json"
    before = baseline.read_bytes()
    monkeypatch.setenv("RAG_TOP_K", "1")
    gate(example, "run", "-q", "--out", str(example / "r1"))
    assert baseline.read_bytes() == before
    # Below its `min` bar: this run must not become the bar.
    assert gate(example, "run", "-q", "--out", str(example / "r2"), "--update-baseline") == 1
    assert baseline.read_bytes() == before
    assert "--update-baseline refused" in capsys.readouterr().err
    monkeypatch.delenv("RAG_TOP_K")
    assert gate(example, "run", "-q", "--out", str(example / "r3"), "--update-baseline") == 0
    written = json.loads(baseline.read_text())
    assert written["created_at"] != json.loads(before)["created_at"]
    golden = (example / "datasets/golden.jsonl").read_text().splitlines()
    assert set(written["case_ids"]) == {json.loads(line)["id"] for line in golden if line.strip()}


def test_run__missing_baseline_applies_absolute_bars_only(example):
    (example / "thresholds" / "baseline.json").unlink()
    out = example / "gate-report"
    assert gate(example, "run", "-q", "--out", str(out)) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["baseline"]["status"] == "missing"
    assert {c["kind"] for c in report["checks"]} == {"absolute"}


def test_validate__ok_on_the_example(example, capsys):
    assert gate(example, "validate") == 0
    assert capsys.readouterr().out.startswith("ok: ")


def test_validate__a_typo_in_thresholds_exits_2_without_traceback(example, capsys):
    path = example / "thresholds" / "default.yml"
    path.write_text(path.read_text().replace("retrieval.mrr:", "retrieval.mmr:"))
    assert gate(example, "validate") == 2
    err = capsys.readouterr().err
    assert "unknown metric 'retrieval.mmr'" in err
    assert "Traceback" not in err


def test_validate__a_slice_for_an_unknown_tag_exits_2(example, capsys):
    path = example / "thresholds" / "default.yml"
    path.write_text(path.read_text().replace("high-risk:", "hihg-risk:"))
    assert gate(example, "validate") == 2
    assert "no case is tagged 'hihg-risk'" in capsys.readouterr().err


def test_run__bad_dataset_exits_2(example, capsys):
    (example / "datasets" / "golden.jsonl").write_text('{"id": "a"}\n')
    assert gate(example, "run", "-q") == 2
    assert "golden.jsonl:1: input: Field required" in capsys.readouterr().err


def test_run__bad_target_exits_2(example, capsys):
    path = example / "gate.yml"
    path.write_text(path.read_text().replace("examples.rag:answer", "examples.rag:nope"))
    assert gate(example, "run", "-q") == 2
    assert "has no 'nope'" in capsys.readouterr().err


def test_bad_command_line_exits_2(capsys):
    assert main(["run", "--frobnicate"]) == 2
    assert "unrecognized arguments: --frobnicate" in capsys.readouterr().err
    assert main([]) == 2


def test_a_bug_in_the_gate_exits_3_with_a_traceback(example, monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise ZeroDivisionError("oops")

    monkeypatch.setattr("gate.pipeline.decide", broken)
    assert gate(example, "run", "-q", "--out", str(example / "out")) == 3
    err = capsys.readouterr().err
    assert "Traceback" in err and "bug in the gate" in err


def test_python_dash_m_gate_is_the_same_program():
    done = subprocess.run(
        [sys.executable, "-m", "gate", "--version"], capture_output=True, text=True, cwd=ROOT
    )
    assert done.returncode == 0
    assert done.stdout.startswith("gate ")
