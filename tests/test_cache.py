"""The output cache: a second run of unchanged inputs calls the pipeline zero times; a changed
case, a changed watched file or another repeat is a miss; the report counts what was reused."""

import json
from pathlib import Path
from typing import Any

import pytest

from gate.errors import ConfigError
from gate.load.dataset import Case
from gate.pipeline import RunOptions, run
from gate.run.adapters.base import Reply
from gate.run.cache import OutputCache
from gate.run.records import Record


class Counting:
    """A pipeline that answers with the case's input and counts its calls by case id."""

    def __init__(self, fail: set[str] = frozenset()) -> None:
        self.calls: list[str] = []
        self.fail = fail

    def call(self, case: Case, timeout_s: float) -> Reply:
        self.calls.append(case.id)
        if case.id in self.fail:
            raise RuntimeError("down")
        return Reply({"answer": f"answer to {case.input}"})

    def close(self) -> None:
        pass


def project(folder: Path, n: int = 5, repeats: int = 1, watch: str = "") -> Path:
    (folder / "retriever.py").write_text("K = 3\n")
    rows = [{"id": f"c{i}", "input": f"q{i}"} for i in range(n)]
    (folder / "golden.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "gate.yml").write_text(
        "dataset: golden.jsonl\n"
        f"pipeline: {{adapter: python, target: 'm:f'{watch}}}\n"
        f"runner: {{cache: .gate-cache, repeats: {repeats}}}\n"
    )
    return folder / "gate.yml"


def gate(config: Path, adapter: Counting) -> dict[str, Any]:
    options = RunOptions(config=config, out_dir=config.parent / "out", progress=None)
    return run(options, adapter).report


def test_cache__a_second_run_of_unchanged_inputs_calls_the_pipeline_zero_times(tmp_path):
    config = project(tmp_path)
    first, second = Counting(), Counting()
    assert gate(config, first)["run"]["cached"] == 0
    report = gate(config, second)
    assert (len(first.calls), second.calls) == (5, [])
    assert report["run"]["cached"] == 5
    records = [json.loads(x) for x in (tmp_path / "out/records.jsonl").read_text().splitlines()]
    assert all(r["cached"] and r["output"]["answer"].startswith("answer to") for r in records)


def test_cache__editing_one_case_reruns_that_case_only(tmp_path):
    config = project(tmp_path)
    gate(config, Counting())
    golden = tmp_path / "golden.jsonl"
    golden.write_text(golden.read_text().replace('"q3"', '"q3, reworded"'))
    again = Counting()
    report = gate(config, again)
    assert again.calls == ["c3"]
    assert report["run"]["cached"] == 4


def test_cache__a_changed_watched_file_reruns_everything(tmp_path):
    config = project(tmp_path, watch=", watch: ['*.py']")
    gate(config, Counting())
    (tmp_path / "retriever.py").write_text("K = 5\n")
    again = Counting()
    assert gate(config, again)["run"]["cached"] == 0
    assert len(again.calls) == 5


def test_cache__each_repeat_has_its_own_output(tmp_path):
    config = project(tmp_path, n=2, repeats=3)
    first, second = Counting(), Counting()
    gate(config, first)
    gate(config, second)
    assert (len(first.calls), len(second.calls)) == (6, 0)


def test_cache__failures_are_not_kept(tmp_path):
    config = project(tmp_path, n=3)
    gate(config, Counting(fail={"c1"}))
    again = Counting()
    assert gate(config, again)["run"]["cached"] == 2
    assert again.calls == ["c1"]


def test_cache__a_watch_glob_that_matches_nothing_is_an_input_error(tmp_path):
    config = project(tmp_path, watch=", watch: ['src/**/*.py']")
    with pytest.raises(ConfigError, match=r"pipeline.watch\[0\]: 'src/\*\*/\*.py' matches no file"):
        gate(config, Counting())


def test_cache__a_torn_line_is_a_miss_not_an_error(tmp_path):
    cache = OutputCache(tmp_path, "sha256:abc")
    case = Case(id="c", input="q")
    base = Record("c", 0, "t", "error", None, 0, "2025-01-01T00:00:00.000Z")
    cache.put(Record("c", 0, "t", "ok", 5.0, 1, "x", raw_output={"answer": "a"}), case)
    cache.close()
    with cache.path.open("a") as handle:
        handle.write('{"key": "torn')
    reopened = OutputCache(tmp_path, "sha256:abc")
    hit = reopened.get(base, case)
    assert hit is not None and (hit.status, hit.output.answer, hit.cached) == ("ok", "a", True)
    assert reopened.get(base, Case(id="c", input="other")) is None
