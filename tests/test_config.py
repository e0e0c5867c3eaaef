from pathlib import Path

import pytest

from gate.errors import ConfigError
from gate.load.config import load_config, load_thresholds
from gate.metrics import parse_metric


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def error(fn, path: Path, *args) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        fn(path, *args)
    return str(caught.value).splitlines()


def test_load_config__defaults_and_relative_paths(tmp_path):
    path = write(
        tmp_path, "gate.yml", "dataset: d.jsonl\npipeline: {adapter: replay, path: r.jsonl}\n"
    )
    config = load_config(path)
    assert config.runner.concurrency == 8
    assert config.metrics.retrieval.k == [1, 5, 10]
    assert config.resolve(config.dataset) == tmp_path / "d.jsonl"


def test_load_config__typos_name_line_key_and_fix(tmp_path):
    path = write(
        tmp_path,
        "gate.yml",
        "dataset: d.jsonl\npipeline:\n  adapter: python\n  targt: m:f\nrunner:\n  concurency: 3\n",
    )
    assert error(load_config, path) == [
        f"{path}:2: pipeline.target: Field required (add `target`)",
        f"{path}:4: pipeline.targt: Extra inputs are not permitted (did you mean `target`?)",
        f"{path}:6: runner.concurency: Extra inputs are not permitted "
        "(did you mean `concurrency`?)",
    ]


def test_load_config__unknown_adapter_lists_the_known_ones(tmp_path):
    path = write(tmp_path, "gate.yml", "dataset: d.jsonl\npipeline: {adapter: grpc}\n")
    [line] = error(load_config, path)
    assert line.startswith(f"{path}:2: pipeline: ")
    assert "'python', 'http', 'command', 'replay'" in line


def test_load_config__bad_values_and_duplicate_keys(tmp_path):
    path = write(
        tmp_path,
        "gate.yml",
        "dataset: d.jsonl\npipeline: {adapter: python, target: nocolon}\nrunner: {timeout_s: 0}\n",
    )
    lines = error(load_config, path)
    assert lines[0].startswith(f'{path}:2: pipeline.target: must be "module:function"')
    assert lines[1] == f"{path}:3: runner.timeout_s: Input should be greater than 0"
    dup = write(tmp_path, "dup.yml", "dataset: a\ndataset: b\n")
    assert error(load_config, dup) == [
        f"{dup}:2: invalid YAML: duplicate key 'dataset' (first on line 1): keep one"
    ]


def test_load_config__missing_file_and_invalid_yaml(tmp_path):
    assert "config not found" in error(load_config, tmp_path / "gate.yml")[0]
    bad = write(tmp_path, "bad.yml", "dataset: [\n")
    assert error(load_config, bad)[0].startswith(f"{bad}:2: invalid YAML")


def test_load_thresholds__unknown_metric_is_an_error_listing_known_names(tmp_path):
    path = write(
        tmp_path,
        "t.yml",
        "metrics:\n  retrieval.hit_rate@5: {min: 0.8}\n  retrieval.mrrr: {min: 0.5}\n",
    )
    [line] = error(load_thresholds, path, parse_metric)
    assert line.startswith(
        f"{path}:3: metrics.retrieval.mrrr: unknown metric 'retrieval.mrrr'; known: "
    )
    assert "retrieval.mrr," in line


def test_load_thresholds__rule_in_the_good_direction_is_an_error(tmp_path):
    path = write(tmp_path, "t.yml", "metrics:\n  ops.latency_p95_ms: {max_drop: 100}\n")
    [line] = error(load_thresholds, path, parse_metric)
    assert "lower is better" in line
    assert "use max_increase or max_increase_pct" in line


def test_load_thresholds__primary_needs_a_regression_rule_of_its_own(tmp_path):
    text = "metrics:\n  agent.task_success: {min: 0.6}\nprimary: agent.task_success\n"
    path = write(tmp_path, "t.yml", text)
    [line] = error(load_thresholds, path, parse_metric)
    assert line.startswith(f"{path}:3: primary: 'agent.task_success' has no regression rule")
    assert "(fix: name a metric of `metrics:` with max_drop or" in line
    path.write_text(text.replace("{min: 0.6}", "{min: 0.6, max_drop: 0.02}"))
    assert load_thresholds(path, parse_metric).primary == "agent.task_success"


def test_load_thresholds__cutoff_required_and_rule_required(tmp_path):
    path = write(
        tmp_path, "t.yml", "metrics:\n  retrieval.hit_rate@k: {min: 0.5}\n  retrieval.mrr: {}\n"
    )
    lines = error(load_thresholds, path, parse_metric)
    assert "needs a cutoff, e.g. retrieval.hit_rate@5" in lines[0]
    assert "retrieval.mrr: no rule" in lines[1]


def test_load_thresholds__slices_and_empty_file(tmp_path):
    path = write(
        tmp_path, "t.yml", "slices:\n  high-risk:\n    generation.must_include: {min: 1.0}\n"
    )
    assert (
        load_thresholds(path, parse_metric).slices["high-risk"]["generation.must_include"].min
        == 1.0
    )
    assert load_thresholds(write(tmp_path, "e.yml", ""), parse_metric).metrics == {}


def test_load_config__max_error_rate_defaults_to_5_percent_and_stays_within_0_1(tmp_path):
    head = "dataset: d.jsonl\npipeline: {adapter: replay, path: r.jsonl}\n"
    assert load_config(write(tmp_path, "gate.yml", head)).runner.max_error_rate == 0.05
    [problem] = error(
        load_config, write(tmp_path, "bad.yml", head + "runner:\n  max_error_rate: 5\n")
    )
    assert "bad.yml:4: runner.max_error_rate: Input should be less than or equal to 1" in problem


def test_load_thresholds__a_bar_must_be_finite(tmp_path):
    path = write(tmp_path, "t.yml", "metrics:\n  ops.latency_p95_ms: {max: .inf}\n")
    [problem] = error(load_thresholds, path, parse_metric)
    assert "t.yml:2: metrics.ops.latency_p95_ms.max: Input should be a finite number" in problem
