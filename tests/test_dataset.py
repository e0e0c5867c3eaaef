import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from gate.errors import DatasetError
from gate.load.dataset import Case, fingerprint, load_dataset
from gate.metrics import generation


def write(tmp_path: Path, content: bytes | str) -> Path:
    path = tmp_path / "golden.jsonl"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(DatasetError) as caught:
        load_dataset(path)
    return str(caught.value).splitlines()


def test_load__bom_crlf_and_blank_lines_are_valid(tmp_path):
    path = write(
        tmp_path, b'\xef\xbb\xbf{"id": "a", "input": "q"}\r\n\r\n{"id": "b", "input": {"x": 1}}\r\n'
    )
    cases = load_dataset(path)
    assert [c.id for c in cases] == ["a", "b"]
    assert cases[1].input == {"x": 1}


def test_load__sources_list_means_grade_one_and_answer_string_means_one_answer(tmp_path):
    path = write(
        tmp_path, '{"id": "a", "input": "q", "expected": {"sources": ["d1", "d2"], "answer": "x"}}'
    )
    [case] = load_dataset(path)
    assert case.expected.sources == {"d1": 1, "d2": 1}
    assert case.expected.answer == ("x",)


def test_load__every_bad_line_reported_in_one_pass_with_file_line_and_field(tmp_path):
    path = write(
        tmp_path,
        "\n".join(
            [
                '{"id": "a", "input": "q"}',
                '{"id": "a", "input": "q2"}',
                "[1, 2]",
                '{"id": "c", "input": 3}',
                '{"id": "d", "input": "q", "expected": {"sources": {"x": 1.5}}}',
                '{"id": "e", "input": "q", "expected": {"sourcez": ["x"]}}',
                "{not json",
                '{"input": "no id"}',
            ]
        ),
    )
    lines = problems(path)
    assert lines[0] == (
        f"{path}:2: id: 'a' already used on line 1 (fix: ids are unique, they pair a case "
        "with its baseline)"
    )
    assert lines[1] == f"{path}:3: must be a JSON object, one case per line"
    assert lines[2].startswith(f"{path}:4: input: must be a string or a JSON object")
    assert lines[3] == (
        f"{path}:5: expected.sources: must be a list of ids or {{id: grade}} "
        "with integer grades ≥ 0"
    )
    assert (
        lines[4]
        == f"{path}:6: expected.sourcez: Extra inputs are not permitted (did you mean `sources`?)"
    )
    assert lines[5].startswith(f"{path}:7: invalid JSON")
    assert lines[6] == f"{path}:8: id: Field required (add `id`)"


def test_load__undecodable_bytes_name_the_line(tmp_path):
    path = write(tmp_path, b'{"id": "a", "input": "q"}\n{"id": "b", "input": "\xff"}\n')
    assert problems(path) == [f"{path}:2: not valid UTF-8 (fix: save it as UTF-8)"]


def test_load__problem_list_is_capped_and_says_how_many_more(tmp_path):
    path = write(tmp_path, "\n".join("[]" for _ in range(30)))
    lines = problems(path)
    assert len(lines) == 21
    assert lines[-1] == "... and 10 more problems"


def test_load__empty_set_is_an_error(tmp_path):
    assert "the golden set is empty" in problems(write(tmp_path, "\n\n"))[0]


def test_load__missing_file_is_an_error(tmp_path):
    assert "golden set not found" in problems(tmp_path / "nope.jsonl")[0]


def test_fingerprint__changes_with_content_not_with_order():
    a = Case(id="a", input="q")
    b = Case(id="b", input="r")
    changed = Case(id="b", input="r!")
    assert fingerprint([a, b]) == fingerprint([b, a])
    assert fingerprint([a, b]) != fingerprint([a, changed])
    assert b.fingerprint() != changed.fingerprint()


def test_load__an_answer_that_normalises_to_nothing_is_refused_at_its_line(tmp_path):
    path = tmp_path / "golden.jsonl"
    rows = [
        {"id": "ok", "input": "q", "expected": {"answer": ["the", "Paris"]}},
        {"id": "empty", "input": "q", "expected": {"answer": ["The", "a."]}},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with pytest.raises(DatasetError) as raised:
        load_dataset(path, generation.empty_gold_answer)
    message = str(raised.value)
    assert f"{path}:2: expected.answer: every acceptable answer" in message
    assert "answerable: false" in message


def test_load__cases_sharing_their_fields_given_stay_apart(tmp_path):
    path = write(
        tmp_path,
        '{"id": "a", "input": "q", "tags": ["t"]}\n{"id": "b", "input": "q", "tags": ["u"]}\n'
        '{"id": "c", "input": "q", "expected": {"answer": "x"}}\n',
    )
    a, b, c = load_dataset(path)
    assert a.model_fields_set == b.model_fields_set == {"id", "input", "tags"}
    assert c.model_fields_set == {"id", "input", "expected"}
    assert a.expected.model_fields_set == set()
    assert c.expected.model_fields_set == {"answer"}
    changed = a.model_copy(update={"metadata": {"k": 1}})
    assert changed.model_fields_set == {"id", "input", "tags", "metadata"}
    assert b.model_fields_set == {"id", "input", "tags"}
    with pytest.raises(ValidationError):
        b.tags = ("v",)
    assert a.model_dump(exclude_unset=True) == {"id": "a", "input": "q", "tags": ("t",)}
