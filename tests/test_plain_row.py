"""The plain-line path (``plain_row``: parsed and validated in one step by pydantic) against the
careful one (``strict_json.loads``, then ``model_validate``): on a corpus of lines probing every
field with JSON of every kind, both loaders give the same cases and rows, of the same types, and
the same messages, with the plain path on and off."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from gate.errors import DatasetError
from gate.load import dataset, strict_json, validation
from gate.load.config import ReplayPipeline
from gate.load.dataset import Case, read_dataset
from gate.run.adapters import replay
from gate.run.adapters.replay import ReplayAdapter

VALUES = [
    "null",
    "true",
    "false",
    "0",
    "1",
    "-1",
    "-0",
    "2",
    "1.0",
    "0.5",
    "-0.0",
    "1e2",
    "1E-5",
    "9007199254740993",
    "123456789012345678901234567890",
    "1" * 101,
    "1e999",
    "NaN",
    "-Infinity",
    '""',
    '"x"',
    '"true"',
    '"1"',
    '"1.5"',
    '"inf"',
    '"strict"',
    '"a secret canary"',
    r'"\ud800"',
    r'"\u0000 \/ \n"',
    '"\u2028 é 😀"',
    '"case-000123 1e-005"',
    "[]",
    '["x"]',
    '["x", ""]',
    "[1]",
    "[null]",
    '[{"name": "t"}]',
    '[{"name": "t", "args": {"a": [1, 2.5]}}]',
    '[{"name": ""}]',
    "{}",
    '{"a": 1}',
    '{"a": 1, "a": 2.0}',
    '{"a": "x"}',
    '{"d1": 2, "d2": 0}',
    '{"d1": -1}',
    '{"d1": true}',
    '{"answer": "x"}',
    "[" * 70 + "]" * 70,
    "[1,]",
    '"\x01"',
    "01",
    ".5",
]
VALUES += [f'{{"a": {v}}}' for v in VALUES if v[0] not in '{"']  # each inside an object too
CASE_FIELDS = ["id", "input", "tags", "metadata", "expected", "extra"]
EXPECTED_FIELDS = [
    "answer",
    "must_include",
    "must_not_include",
    "sources",
    "tool_calls",
    "tool_match",
    "answerable",
    "must_refuse",
    "canary",
    "no_personal_data",
    "sourcez",
]
RECORDED_FIELDS = ["id", "output", "latency_ms", "error", "extra"]


def case_lines() -> list[str]:
    lines = [f'{{"id": "c", "input": "q", "{f}": {v}}}' for f in CASE_FIELDS for v in VALUES]
    lines += [
        f'{{"id": "c", "input": "q", "expected": {{"{f}": {v}}}}}'
        for f in EXPECTED_FIELDS
        for v in VALUES
    ]
    return (
        lines + VALUES + ['{"id": "c", "id": "d", "input": "q"}', '\ufeff{"id": "c", "input": 1}']
    )


def recorded_lines() -> list[str]:
    lines = [
        f'{{"id": "c", "output": {{}}, "{f}": {v}}}'
        for f, v in itertools.product(RECORDED_FIELDS, VALUES)
    ]
    return lines + VALUES + ['{"id": "c", "output": {"a": 1, "a": null}, "id": "d"}']


@pytest.fixture(params=[True, False], ids=["plain path on", "careful path only"])
def plain(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    if not request.param:
        monkeypatch.setattr(validation, "plain_row", lambda line, model: None)
        monkeypatch.setattr(dataset, "plain_row", lambda line, model: None)
    return bool(request.param)


def outcomes(tmp_path: Path, lines: list[str], read: Callable[[Path], Any]) -> list[str]:
    """What ``read`` gives for each line alone in a file, its values' types included (``repr``
    tells 1 from 1.0 and True), or its error."""
    out = []
    for number, line in enumerate(lines):
        path = tmp_path / f"{number}.jsonl"
        path.write_text(line + "\n", encoding="utf-8")
        try:
            out.append(f"ok {read(path)!r}")
        except (DatasetError, LookupError) as exc:  # LookupError: the row is not case "c"'s
            out.append(f"error {exc}")
    return out


def cases(path: Path) -> list[dict[str, Any]]:
    return [c.model_dump() for c in read_dataset(path)[0]]


def served(path: Path) -> tuple[Any, ...]:
    adapter = ReplayAdapter(ReplayPipeline(adapter="replay", path=path), path.parent)
    reply = adapter.call(Case(id="c", input="q"), 1.0)
    return reply.output, reply.latency_ms, reply.error


def careful_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(replay, "plain_row", lambda line, model: None)
    monkeypatch.setattr(dataset, "plain_row", lambda line, model: None)


def test_plain_row__a_usual_line_takes_it() -> None:
    line = '{"id": "case-000123", "input": "q", "expected": {"answer": "a", "sources": ["d-1"]}}'
    assert validation.plain_row(line, Case) == Case.model_validate(json.loads(line))


@pytest.mark.parametrize(
    ("lines", "read"), [(case_lines, cases), (recorded_lines, served)], ids=["golden", "replay"]
)
def test_plain_row__the_file_reads_the_same_either_way(
    lines: Any, read: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = outcomes(tmp_path, lines(), read)
    careful_only(monkeypatch)
    careful = outcomes(tmp_path, lines(), read)
    assert plain == careful
    assert 20 < sum(o.startswith("ok") for o in plain) < len(plain) / 2


@pytest.mark.parametrize("line", case_lines() + recorded_lines())
def test_plain_row__a_plain_line_pydantic_parses_is_what_strict_json_reads(line: str) -> None:
    if not strict_json.is_plain(line):
        return
    try:
        parsed = TypeAdapter(Any).validate_json(line)
    except ValidationError:
        return  # read by the careful path
    assert repr(parsed) == repr(strict_json.loads(line))
