"""Records: the pipeline output's validation, the JSON of a trace, records.jsonl written line by
line during the run, and atomic rewrites that never leave half a file."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gate.files import write_atomic
from gate.run.records import (
    Judgement,
    Output,
    Record,
    RecordWriter,
    parse_output,
)


def record(case_id: str = "c1", **fields: Any) -> Record:
    base: dict[str, Any] = {
        "case_id": case_id,
        "repeat": 0,
        "trace_id": "0" * 32,
        "status": "ok",
        "latency_ms": 12.34567,
        "attempts": 1,
        "started_at": "2025-01-01T00:00:00.000Z",
    }
    return Record(**{**base, **fields})


def test_parse_output__ids_or_objects_in_retrieved_and_extra_fields_kept() -> None:
    output = parse_output(
        {
            "answer": "a",
            "retrieved": ["d1", {"id": "d2", "text": "body", "score": 0.5}],
            "trace_url": "https://example.test/t/1",
        }
    )
    assert output.retrieved_ids() == ["d1", "d2"]
    assert output.retrieved_texts() == [None, "body"]
    assert output.model_extra == {"trace_url": "https://example.test/t/1"}


def test_parse_output__every_field_optional() -> None:
    assert parse_output({}) == Output()


def test_to_json__the_trace_a_user_reads() -> None:
    trace = record(
        raw_output={"answer": "x", "extra": [1]},
        error=None,
        scores={"retrieval.mrr": 0.5},
        failure_modes=("no_relevant_retrieved",),
    ).to_json()
    assert trace == {
        "id": "c1",
        "repeat": 0,
        "trace_id": "0" * 32,
        "status": "ok",
        "started_at": "2025-01-01T00:00:00.000Z",
        "latency_ms": 12.346,
        "attempts": 1,
        "error": None,
        "output": {"answer": "x", "extra": [1]},
        "scores": {"retrieval.mrr": 0.5},
        "failure_modes": ["no_relevant_retrieved"],
    }


def test_record_writer__each_record_is_on_disk_as_soon_as_written(tmp_path: Path) -> None:
    path = tmp_path / "out" / "records.jsonl"
    writer = RecordWriter(path)
    try:
        writer.write([record("c1")])
        assert [json.loads(line)["id"] for line in path.read_text().splitlines()] == ["c1"]
        writer.write([record("c2", status="error", error="boom", latency_ms=None)])
        lines = [json.loads(line) for line in path.read_text().splitlines()]
    finally:
        writer.close()
    assert [(t["id"], t["status"], t["error"]) for t in lines] == [
        ("c1", "ok", None),
        ("c2", "error", "boom"),
    ]


def test_record_writer__output_that_is_not_json_is_written_as_text(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    writer = RecordWriter(path)
    writer.write([record(raw_output={"when": {1, 2}})])
    writer.close()
    assert json.loads(path.read_text())["output"] == {"when": "{1, 2}"}


def test_record_writer__odd_values_are_written_as_json_wrote_them(tmp_path: Path) -> None:
    # What check_json lets through (numpy's numbers, tuples, integers past 64 bits) and what
    # default=str turns into text: the line means what ``json.dumps`` wrote before orjson.
    odd = {
        "answer": "x",
        "spans": (1, (2, 3)),
        "scores": [np.float64(0.1), np.float32(0.5), np.int64(7), 1e-07],
        "count": 10**30,
    }
    traced = record(raw_output=odd, scores={"retrieval.mrr": 0.333333})
    path = tmp_path / "records.jsonl"
    writer = RecordWriter(path)
    writer.write([traced])
    writer.close()
    before = json.dumps(stored_by_json(traced), ensure_ascii=False, default=str)
    assert json.loads(path.read_text()) == json.loads(before)
    assert json.loads(path.read_text())["output"]["scores"] == [0.1, "0.5", "7", 1e-07]


def stored_by_json(traced: Record) -> dict[str, Any]:
    line = traced.to_json()
    line["output"] = traced.raw_output
    return line


def test_write_atomic__replaces_the_content(tmp_path: Path) -> None:
    path = tmp_path / "baseline.json"
    path.write_text("old")
    write_atomic(path, "new ✓")
    assert path.read_text(encoding="utf-8") == "new ✓"
    assert os.listdir(tmp_path) == ["baseline.json"]


def test_write_atomic__failure_while_writing_keeps_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "baseline.json"
    path.write_text('{"old": true}')
    # A lone surrogate cannot be encoded: the write fails after the temporary file was opened.
    with pytest.raises(UnicodeEncodeError):
        write_atomic(path, '{"new": "\ud800"}')
    assert path.read_text() == '{"old": true}'
    assert os.listdir(tmp_path) == ["baseline.json"]  # no temporary file left behind


def test_write_atomic__failure_to_rename_keeps_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "baseline.json"
    path.write_text("old")

    def refuse(src: Any, dst: Any) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(PermissionError):
        write_atomic(path, "new")
    monkeypatch.undo()
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["baseline.json"]


def test_record_writer__one_line_per_record_a_batch_at_a_time(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    path.write_text("stale\n")
    writer = RecordWriter(path)
    writer.write([record("a"), record("b", scores={"ops.error_rate": 0.0})])
    writer.close()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(t["id"], t["scores"]) for t in lines] == [("a", {}), ("b", {"ops.error_rate": 0.0})]


def test_record_writer__the_line_is_the_scrubbed_record(tmp_path: Path) -> None:
    """The writer scrubs what the pipeline said (output, error, log, the judge's reasons) as
    ``scrubbed`` does, without validating the output a second time."""
    secret = "sk-abcdefghijklmnopqrstuvwx"
    traced = record(
        raw_output={"answer": f"key {secret}", secret: ["mail me: a@b.example"]},
        output=parse_output({"answer": f"key {secret}"}),
        error=f"quoted {secret}",
        log=f"log {secret} – ünïcode",
        judgements={
            "generation.faithfulness_judge": Judgement(
                0.5, "faithfulness-v1", "m", verdict={"why": secret}, error=secret
            )
        },
        scores={"generation.token_f1": 0.25},
    )
    path = tmp_path / "records.jsonl"
    writer = RecordWriter(path)
    writer.write([traced])
    writer.close()
    line = json.loads(path.read_text())
    assert line == {
        **traced.to_json(),
        "output": {"answer": "key ***", "***": ["mail me: ***"]},
        "error": "quoted ***",
        "log": "log *** – ünïcode",
        "judge": {
            "generation.faithfulness_judge": {
                **traced.to_json()["judge"]["generation.faithfulness_judge"],
                "verdict": {"why": "***"},
                "error": "***",
            }
        },
    }
    assert "ünïcode" in path.read_text()  # written as UTF-8, not escaped
    assert secret not in path.read_text() and "a@b.example" not in path.read_text()
    assert line["output"] == {"answer": "key ***", "***": ["mail me: ***"]}
    assert line["judge"]["generation.faithfulness_judge"]["verdict"] == {"why": "***"}
