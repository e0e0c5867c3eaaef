import json

import pytest

from gate.errors import BaselineError
from gate.load.baseline import Baseline, CaseEntry, read_baseline, write_baseline


def sample() -> Baseline:
    return Baseline(
        schema_version=2,
        gate_version="0.1.0",
        created_at="2026-11-24T09:00:00Z",
        git_sha="abc",
        dataset_fingerprint="sha256:d",
        pipeline_fingerprint="sha256:p",
        metrics={"retrieval.mrr": 0.5, "ops.cost_per_success_usd": None},
        slices={"high-risk": {"retrieval.mrr": 1.0}},
        cases={"a": CaseEntry(fingerprint="sha256:a", scores={"retrieval.mrr": 0.5})},
    )


def test_read_baseline__missing_file_means_no_baseline(tmp_path):
    assert read_baseline(tmp_path / "baseline.json") is None


def test_write_then_read__round_trip(tmp_path):
    path = tmp_path / "sub" / "baseline.json"
    write_baseline(path, sample())
    assert read_baseline(path) == sample()
    assert [p.name for p in path.parent.iterdir()] == ["baseline.json"]  # no temp file left


def test_write_baseline__a_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "baseline.json"
    write_baseline(path, sample())
    before = path.read_text()

    def broken(*args):
        raise OSError("disk full")

    monkeypatch.setattr("os.replace", broken)
    with pytest.raises(OSError):
        write_baseline(path, sample().model_copy(update={"git_sha": "new"}))
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["baseline.json"]


def test_read_baseline__invalid_json_names_the_line_and_the_fix(tmp_path):
    path = tmp_path / "baseline.json"
    path.write_text('{\n  "schema_version": 1,\n  oops\n}')
    with pytest.raises(
        BaselineError, match=r"baseline.json:3: the baseline is not valid JSON.*--update-baseline"
    ):
        read_baseline(path)


def test_read_baseline__incompatible_schema_is_a_clear_error(tmp_path):
    path = tmp_path / "baseline.json"
    path.write_text(json.dumps({"schema_version": 99}))
    with pytest.raises(BaselineError, match="schema_version is 99, this gate reads 2"):
        read_baseline(path)
