"""Prompt files: front matter validation with file:line, the template syntax, rendering."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from gate.errors import ConfigError
from gate.load.dataset import Case
from gate.load.prompts import contexts_text, load_prompt, reference_contexts

RAG = """\
---
version: rag-v3
model: gpt-4.1-mini
temperature: 0.2
top_p: 0.9
max_tokens: 300
seed: 7
---
system:
Answer from the context only.

user:
{{ contexts }}

Question: {{ input }}
"""


def write(tmp_path: Path, text: str, name: str = "prompt.md") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load_prompt(write(tmp_path, text))
    return str(caught.value)


def test_load__front_matter_messages_and_hash(tmp_path: Path) -> None:
    path = write(tmp_path, RAG)

    prompt = load_prompt(path)

    assert prompt.version == "rag-v3"
    assert prompt.settings.model == "gpt-4.1-mini"
    assert prompt.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert prompt.identity() == {"version": "rag-v3", "sha256": prompt.sha256}
    assert [m.role for m in prompt.messages] == ["system", "user"]
    assert prompt.placeholders == {"contexts", "input"}
    assert prompt.parameters() == {"temperature": 0.2, "top_p": 0.9, "max_tokens": 300, "seed": 7}
    assert not prompt.json_mode


def test_load__any_byte_changes_the_hash_but_not_the_version(tmp_path: Path) -> None:
    before = load_prompt(write(tmp_path, RAG))
    after = load_prompt(write(tmp_path, RAG.replace("only.", "only!")))

    assert before.version == after.version
    assert before.sha256 != after.sha256


def test_load__tools_and_response_format_pass_through(tmp_path: Path) -> None:
    text = """\
---
version: agent-v1
response_format: {type: json_schema, json_schema: {name: out, schema: {type: object}}}
tools:
  - type: function
    function:
      name: lookup_order
      parameters: {type: object, properties: {id: {type: string}}}
---
Return JSON for {{ input.question }}
"""
    prompt = load_prompt(write(tmp_path, text))

    assert prompt.json_mode
    assert prompt.parameters() == {
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "out", "schema": {"type": "object"}},
        },
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "lookup_order",
                    "parameters": {"type": "object", "properties": {"id": {"type": "string"}}},
                },
            }
        ],
    }


def test_front_matter__missing_version_is_reported_at_its_mapping(tmp_path: Path) -> None:
    message = error_of(tmp_path, "---\nmodel: m\n---\nHi {{ input }}\n")

    assert "prompt.md:2: version: Field required (add `version`)" in message


def test_front_matter__misspelt_key_names_its_line_and_the_fix(tmp_path: Path) -> None:
    message = error_of(tmp_path, "---\nversion: v1\ntemprature: 0\n---\nHi {{ input }}\n")

    assert "prompt.md:3: temprature: Extra inputs are not permitted" in message
    assert "did you mean `temperature`?" in message


def test_front_matter__value_out_of_range_names_its_line(tmp_path: Path) -> None:
    message = error_of(tmp_path, "---\nversion: v1\n\ntemperature: 5\n---\nHi\n")

    assert "prompt.md:4: temperature: Input should be less than or equal to 2" in message


def test_front_matter__tool_without_a_name(tmp_path: Path) -> None:
    text = "---\nversion: v1\ntools:\n  - type: function\n    function: {description: x}\n---\nHi\n"

    assert "prompt.md:5: tools[0].function.name: Field required" in error_of(tmp_path, text)


def test_front_matter__invalid_yaml_names_its_line(tmp_path: Path) -> None:
    message = error_of(tmp_path, "---\nversion: v1\nmodel: [unclosed\n---\nHi\n")

    assert message.startswith(f"{tmp_path / 'prompt.md'}:3: invalid YAML in the front matter")


def test_front_matter__duplicate_key_is_an_error(tmp_path: Path) -> None:
    message = error_of(tmp_path, "---\nversion: v1\nversion: v2\n---\nHi\n")

    assert "prompt.md:3: invalid YAML in the front matter: duplicate key 'version'" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hi {{ input }}\n", "prompt.md:1: a prompt file starts with YAML front matter"),
        ("---\nversion: v1\nHi\n", "prompt.md:1: the front matter is not closed"),
        ("---\n- a\n---\nHi\n", "prompt.md:2: the front matter must be a mapping"),
        ("---\nversion: v1\n---\n\n", "prompt.md:4: the template is empty"),
    ],
)
def test_file_shape_errors(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in error_of(tmp_path, text)


def test_missing_file_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"prompt file not found \(fix: check `pipeline.prompt`\)"
    ):
        load_prompt(tmp_path / "absent.md")


def test_template__unknown_and_jinja_placeholders_are_errors_with_lines(tmp_path: Path) -> None:
    text = "---\nversion: v1\n---\nuser:\n{{ question }}\n{{ input | upper }} {{ input }}\n"

    message = error_of(tmp_path, text)

    assert "prompt.md:5: {{ question }}: unknown placeholder" in message
    assert "prompt.md:6: {{ input | upper }}: unknown placeholder" in message
    assert "{{ contexts }}, {{ input }}" in message


def test_template__text_before_the_first_role_and_empty_roles(tmp_path: Path) -> None:
    message = error_of(tmp_path, "---\nversion: v1\n---\nstray\nsystem:\nuser:\nHi\n")

    assert "prompt.md:4: text before the first role line" in message
    assert "prompt.md:5: `system:` has no text" in message


def test_render__input_and_contexts_in_one_pass(tmp_path: Path) -> None:
    prompt = load_prompt(write(tmp_path, RAG))
    # A case whose text looks like a placeholder must come out literally, never expanded.
    values = {"input": "What is {{ contexts }}?", "contexts": "[kb-1] Keys expire."}

    messages = prompt.render(values)

    assert messages == [
        {"role": "system", "content": "Answer from the context only."},
        {"role": "user", "content": "[kb-1] Keys expire.\n\nQuestion: What is {{ contexts }}?"},
    ]


def test_render__body_without_roles_is_one_user_message(tmp_path: Path) -> None:
    prompt = load_prompt(write(tmp_path, "---\nversion: v1\n---\nQ: {{ input }}\n"))

    assert prompt.render({"input": "hi"}) == [{"role": "user", "content": "Q: hi"}]


def test_render__object_input_whole_and_by_key(tmp_path: Path) -> None:
    text = "---\nversion: v1\n---\n{{ input.topic }} | {{ input }} | {{ input.extra.n }}\n"
    prompt = load_prompt(write(tmp_path, text))

    content = prompt.render({"input": {"topic": "keys", "extra": {"n": 2}}})[0]["content"]

    assert content == 'keys | {"topic": "keys", "extra": {"n": 2}} | 2'


def test_render__missing_key_is_a_value_error_naming_it(tmp_path: Path) -> None:
    prompt = load_prompt(write(tmp_path, "---\nversion: v1\n---\n{{ input.topic }}\n"))

    with pytest.raises(ValueError, match=r"\{\{ input.topic \}\}: input has no key 'topic'"):
        prompt.render({"input": "a plain string"})


def test_crlf_and_bom_are_read(tmp_path: Path) -> None:
    path = tmp_path / "prompt.md"
    path.write_bytes(b"\xef\xbb\xbf" + RAG.replace("\n", "\r\n").encode())

    prompt = load_prompt(path)

    assert prompt.render({"input": "q", "contexts": "c"})[1]["content"] == "c\n\nQuestion: q"


def case(metadata: dict[str, object]) -> Case:
    return Case.model_validate({"id": "c", "input": "q", "metadata": metadata})


def test_reference_contexts__texts_and_objects() -> None:
    found = reference_contexts(
        case({"contexts": ["Keys expire.", {"id": "kb-2", "text": "Rotate them."}]})
    )

    assert found == [(None, "Keys expire."), ("kb-2", "Rotate them.")]
    assert contexts_text(found) == "[1] Keys expire.\n\n[kb-2] Rotate them."


def test_reference_contexts__absent_and_malformed() -> None:
    assert reference_contexts(case({})) == []
    with pytest.raises(ValueError, match=r"metadata\.contexts: must be a list of texts"):
        reference_contexts(case({"contexts": [{"id": "no-text"}]}))
