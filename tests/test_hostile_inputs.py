"""Hostile and unlucky input files: each is refused with exit 2 and ``file:line``, promptly.

Promptly is measured in bench/ (timings are not asserted here); before the caps, the alias bomb
hung validation and the deep structures ended in a RecursionError (exit 3).
"""

import json
import shutil
from pathlib import Path

import pytest
from builders import copy_example

from gate.cli import main
from gate.pipeline import RunOptions, run
from gate.render.console import log_text, workflow_command
from gate.run.adapters.base import Reply

ROOT = Path(__file__).resolve().parents[1]

ALIAS_BOMB = "x-lol0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"x-lol{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 9)
)
"""Nine values, nine times nested nine times: 387 million once expanded ("billion laughs")."""
DEEP_YAML = "x-deep: " + "[" * 5000 + "]" * 5000 + "\n"
DEEP_JSON = "[" * 100_000 + "]" * 100_000


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return copy_example(tmp_path / "project")


def refused(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """Run the CLI; assert it exits 2 with no traceback and return its message."""
    assert main(list(argv)) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def prepend(path: Path, text: str) -> None:
    path.write_text(text + path.read_text())


def validate(project: Path) -> tuple[str, ...]:
    return ("validate", "-c", str(project / "gate.yml"))


def test_alias_bomb__in_gate_yml(project, capsys):
    prepend(project / "gate.yml", ALIAS_BOMB)
    err = refused(capsys, *validate(project))
    assert "gate.yml:6: invalid YAML: aliases expand this to more than" in err


def test_alias_bomb__in_a_thresholds_file(project, capsys):
    prepend(project / "thresholds" / "default.yml", ALIAS_BOMB)
    err = refused(capsys, *validate(project))
    assert "default.yml:6: invalid YAML: aliases expand" in err


def test_alias_bomb__in_a_prompts_front_matter(tmp_path, capsys):
    folder = tmp_path / "openai"
    shutil.copytree(ROOT / "examples" / "openai", folder)
    prompt = folder / "prompts" / "rag.md"
    prompt.write_text(prompt.read_text().replace("---\n", "---\n" + ALIAS_BOMB, 1))
    err = refused(capsys, "validate", "-c", str(folder / "gate.openai.yml"))
    assert "rag.md:7: invalid YAML in the front matter: aliases expand" in err


def test_anchors_and_aliases__within_the_cap_still_work(project, capsys):
    text = (project / "gate.yml").read_text()
    text = text.replace("retries: 1", "retries: &one 1").replace("repeats: 1", "repeats: *one")
    (project / "gate.yml").write_text(text)
    assert main(list(validate(project))) == 0


def test_deep_yaml_flow__is_refused_at_its_line(project, capsys):
    prepend(project / "gate.yml", "# deep\n" + DEEP_YAML)
    err = refused(capsys, *validate(project))
    assert "gate.yml:2: invalid YAML: nested deeper than 64 levels" in err


def test_deep_json__in_the_golden_set(project, capsys):
    with (project / "datasets" / "golden.jsonl").open("a") as handle:
        handle.write(json.dumps({"id": "deep", "input": "q", "metadata": {"x": 0}})[:-2])
        handle.write(DEEP_JSON + "}}\n")
    err = refused(capsys, *validate(project))
    assert "golden.jsonl:80: invalid JSON: nested deeper than 64 levels" in err


def test_deep_json__in_the_baseline(project, capsys):
    (project / "thresholds" / "baseline.json").write_text(DEEP_JSON)
    err = refused(capsys, *validate(project))
    assert "baseline.json:1: the baseline is not valid JSON: nested deeper than 64" in err


def test_deep_json__in_a_replay_file(project, capsys):
    (project / "replay.jsonl").write_text('{"id": "a", "output": {}}\n' + DEEP_JSON + "\n")
    config = project / "gate.yml"
    config.write_text(
        config.read_text().replace(
            "  adapter: python\n  target: examples.rag:answer\n",
            "  adapter: replay\n  path: replay.jsonl\n",
        )
    )
    out = project / "out"
    err = refused(capsys, "run", "-q", "-c", str(config), "--out", str(out))
    assert "replay.jsonl:2: invalid JSON: nested deeper than 64 levels" in err
    assert not (out / "records.jsonl").exists() or not (out / "records.jsonl").read_text()


@pytest.mark.parametrize(
    ("literal", "problem"),
    [
        ("NaN", "NaN is not a JSON number"),
        ("-Infinity", "-Infinity is not a JSON number"),
        ("1e999", "1e999 is too large for a number"),
        pytest.param("7" * 5000, "an integer of 5000 digits; the limit is 100", id="5000 digits"),
    ],
)
def test_non_json_numbers__in_the_golden_set(project, capsys, literal, problem):
    with (project / "datasets" / "golden.jsonl").open("a") as handle:
        handle.write('{"id": "n", "input": "q", "metadata": {"n": ' + literal + "}}\n")
    err = refused(capsys, *validate(project))
    assert f"golden.jsonl:80: invalid JSON: {problem}" in err


def test_non_json_numbers__inside_strings_are_text(project, capsys):
    with (project / "datasets" / "golden.jsonl").open("a") as handle:
        handle.write('{"id": "n", "input": "NaN [[[[ Infinity", "metadata": {"n": "1e999"}}\n')
    assert main(list(validate(project))) == 0


HOSTILE_TAG = "GH-1 \u202eevil\u202c \x1b[31mred\x1b[0m\n::error::x ##[warning]y"


def assert_inert_log(text: str) -> None:
    """No line of ``text`` is a workflow command, and no control or bidi character is left."""
    for line in text.splitlines():
        assert not line.lstrip().startswith("::"), line
        assert "##[" not in line, line
    assert "\r" not in text
    assert not any(c in text for c in "\x1b\u202e\u202c"), text


def test_hostile_tag__reaches_stdout_and_markdown_inert(project, capsys):
    golden = project / "datasets" / "golden.jsonl"
    first, rest = golden.read_text().split("\n", 1)
    row = json.loads(first)
    row["tags"] = [HOSTILE_TAG]
    golden.write_text(json.dumps(row) + "\n" + rest)
    thresholds = project / "thresholds" / "default.yml"
    thresholds.write_text(
        thresholds.read_text().replace(
            "slices:\n",
            f"slices:\n  {json.dumps(HOSTILE_TAG)}:\n    ops.latency_p95_ms: {{max: 0}}\n",
        )
    )
    out = project / "out"

    assert main(["run", "-q", "-c", str(project / "gate.yml"), "--out", str(out)]) == 1

    stdout = capsys.readouterr().out
    assert "\\u202eevil" in stdout and ":\u200b:error::x" in stdout
    assert_inert_log(stdout)
    markdown = (out / "report.md").read_text()
    assert "GH\u200b-1" in markdown and "\\\\u202eevil" in markdown
    assert_inert_log(markdown)


def test_input_error_quoting_data__is_printed_inert(project, capsys):
    prepend(project / "gate.yml", f"{json.dumps(HOSTILE_TAG)}: 1\n")
    err = refused(capsys, *validate(project))
    assert ":\u200b:error::x" in err
    assert_inert_log(err)


def test_log_text__no_line_of_data_is_a_workflow_command():
    text = log_text("ok\n  ::error::x\r::warning::y\nsee ##[add-mask]z\x1b[2J\u202e")
    assert text == (
        "ok\n  :\u200b:error::x\\u000d::warning::y\nsee #\u200b#[add-mask]z\\u001b[2J\\u202e"
    )
    assert_inert_log(text)


def test_workflow_command__shows_control_characters_in_its_data():
    line = workflow_command("warning", "a\x1b[8mhidden\u202e\n::error::x")
    assert line == "::warning::a\\u001b[8mhidden\\u202e%0A::error::x"


def _deep(levels: int) -> list[object]:
    value: list[object] = []
    for _ in range(levels):
        value = [value]
    return value


class _Unstorable:
    """Answers the first case with an output JSON cannot hold, every other one normally."""

    def __init__(self, bad: object, first_id: str) -> None:
        self.bad, self.first_id = bad, first_id

    def call(self, case, timeout_s):
        if case.id == self.first_id:
            return Reply(self.bad)
        return Reply({"answer": "I don't know."})

    def close(self) -> None:
        pass


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param({"answer": "x", "extra": _deep(5000)}, id="deep list"),
        pytest.param({"answer": "x", "extra": {("a", "b"): 1}}, id="tuple key"),
        pytest.param({"answer": "x", "n": 10**5000}, id="huge int"),
        pytest.param(_deep(5000), id="deep list, not an object"),
    ],
)
def test_unstorable_output__is_that_cases_error_and_the_run_goes_on(project, bad):
    first_id = json.loads((project / "datasets" / "golden.jsonl").read_text().split("\n", 1)[0])[
        "id"
    ]
    out = project / "out"

    outcome = run(
        RunOptions(config=project / "gate.yml", out_dir=out, progress=None),
        adapter=_Unstorable(bad, first_id),
    )

    assert outcome.exit_code in (0, 1)
    records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    first = next(r for r in records if r["id"] == first_id)
    assert first["status"] == "error"
    assert first["output"] is None
    assert first["error"].startswith(("unserialisable output", "malformed output"))
    assert json.loads((out / "report.json").read_text())["run"]["errors"] == 1
