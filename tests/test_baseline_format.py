import json

import numpy as np
import pytest

from gate.errors import BaselineError
from gate.load.baseline import Baseline, CaseEntry, dumps, read_baseline, write_baseline


def sample(**changes) -> Baseline:
    cases = {
        "a": CaseEntry(
            fingerprint="sha256:a",
            scores={"ops.latency_p50_ms": 812.5, "ops.latency_p95_ms": 812.5, "retrieval.mrr": 0.5},
        ),
        "b": CaseEntry(
            fingerprint="sha256:b",
            scores={"ops.latency_p50_ms": 90.0, "ops.latency_p95_ms": 90.0},
        ),
    }
    body = {
        "schema_version": 2,
        "gate_version": "0.1.0",
        "created_at": "2026-11-24T09:00:00Z",
        "dataset_fingerprint": "sha256:d",
        "pipeline_fingerprint": "sha256:p",
        "metrics": {"retrieval.mrr": 0.5, "ops.latency_p95_ms": 812.5},
        "cases": cases,
    }
    return Baseline.model_validate({**body, **changes})


def test_dumps__columns_sorted_one_line_each_and_shared_scores_named_once():
    text = dumps(sample())
    lines = text.splitlines()
    assert '  "case_ids": ["a","b"],' in lines
    assert '  "case_fingerprints": ["sha256:a","sha256:b"],' in lines
    assert '    "ops.latency_p50_ms": [812.5,90],' in lines
    assert '    "ops.latency_p95_ms": "ops.latency_p50_ms",' in lines
    assert '    "retrieval.mrr": [0.5,null]' in lines
    keys = [line.split('"')[1] for line in lines if line.startswith('  "')]
    assert keys == sorted(keys)
    assert dumps(sample()) == text  # deterministic


def test_dumps__a_tiny_score_differs_from_json_s_text_in_notation_only(tmp_path):
    tiny = sample(metrics={"retrieval.mrr": 1e-06})
    text = dumps(tiny)
    assert '"retrieval.mrr": 1e-6' in text  # json wrote 1e-06
    assert json.loads(text) == json.loads(text.replace("1e-6", "1e-06"))
    write_baseline(tmp_path / "baseline.json", tiny)
    assert read_baseline(tmp_path / "baseline.json") == tiny


def test_dumps__an_infinite_score_is_refused_not_written():
    infinite = sample()
    infinite.case_scores.columns["retrieval.mrr"][0] = np.inf
    with pytest.raises(ValueError, match="not JSON compliant"):
        dumps(infinite)


def test_write_then_read__the_columns_and_the_cases_by_id_round_trip(tmp_path):
    path = tmp_path / "baseline.json"
    write_baseline(path, sample())
    read = read_baseline(path)
    assert read == sample()
    assert read.cases == sample().cases
    assert read.cases["b"].scores == {"ops.latency_p50_ms": 90.0, "ops.latency_p95_ms": 90.0}
    assert not read.legacy


def test_read__the_old_per_case_format_still_reads_and_is_marked_for_rewriting(tmp_path):
    path = tmp_path / "baseline.json"
    old = sample().model_dump(mode="json", exclude={"case_scores", "legacy"})
    old |= {"schema_version": 1, "cases": {k: v.model_dump() for k, v in sample().cases.items()}}
    path.write_text(json.dumps(old, indent=2))
    read = read_baseline(path)
    assert read.legacy
    assert read.cases == sample().cases
    write_baseline(path, read)
    assert json.loads(path.read_text())["schema_version"] == 2
    assert len(path.read_text()) < len(json.dumps(old, indent=2))


def test_read__the_old_format_is_noted_by_validate(tmp_path, capsys):
    from gate.cli import main

    (tmp_path / "golden.jsonl").write_text('{"id": "a", "input": "q"}\n')
    (tmp_path / "gate.yml").write_text(
        "dataset: golden.jsonl\npipeline: {adapter: python, target: m:f}\nbaseline: b.json\n"
    )
    old = {
        "schema_version": 1,
        "gate_version": "0",
        "created_at": "x",
        "dataset_fingerprint": "d",
        "pipeline_fingerprint": "p",
        "metrics": {},
        "cases": {},
    }
    (tmp_path / "b.json").write_text(json.dumps(old))
    assert main(["validate", "-c", str(tmp_path / "gate.yml")]) == 0
    assert "old per-case format" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        (lambda d: d["case_scores"].update({"retrieval.mrr": [-0.5, None]}), "retrieval.mrr[0]"),
        # Infinity and NaN are not JSON: the strict reader refuses them at their line.
        (lambda d: d["case_scores"].update({"retrieval.mrr": [1e999, 1]}), "Infinity is not"),
        (lambda d: d["metrics"].update({"retrieval.mrr": float("nan")}), "NaN is not"),
        (lambda d: d["case_scores"].update({"retrieval.mrr": [1]}), "1 values for 2 ids"),
        (lambda d: d["case_scores"].update({"x.y": "nope"}), "'nope' is not a metric"),
        (lambda d: d.update(case_fingerprints=["f"]), "case_fingerprints: 1 for 2 ids"),
    ],
)
def test_read__bad_stored_values_are_refused_naming_the_file_and_key(tmp_path, edit, key):
    path = tmp_path / "baseline.json"
    data = json.loads(dumps(sample()))
    edit(data)
    path.write_text(json.dumps(data))
    with pytest.raises(BaselineError) as error:
        read_baseline(path)
    assert str(path) in str(error.value) and key in str(error.value)


def test_read__a_negative_score_in_the_old_format_is_refused(tmp_path):
    path = tmp_path / "baseline.json"
    old = sample().model_dump(mode="json", exclude={"case_scores", "legacy"})
    old |= {"schema_version": 1, "cases": {"a": {"fingerprint": "f", "scores": {"m.x": -1}}}}
    path.write_text(json.dumps(old))
    with pytest.raises(BaselineError, match=r"cases\.a\.scores\.m\.x: -1\.0 is not a metric value"):
        read_baseline(path)


def test_columns__are_read_only_arrays_aligned_with_the_ids(tmp_path):
    path = tmp_path / "baseline.json"
    write_baseline(path, sample())
    scores = read_baseline(path).case_scores
    assert scores.ids == ("a", "b")
    np.testing.assert_array_equal(scores.columns["retrieval.mrr"], [0.5, np.nan])
    assert not scores.columns["retrieval.mrr"].flags.writeable
