"""The action when GitHub's API misbehaves: a warning, never exit 3, never a lost summary."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_github import FakeGitHub
from test_action import FakeRun, github_env, load_report, read_outputs

from gate import action
from gate.errors import GateError


@pytest.fixture
def fake() -> Iterator[FakeGitHub]:
    with FakeGitHub() as server:
        yield server


@pytest.mark.parametrize(
    ("body", "content_type", "method"),
    [
        (b"<!DOCTYPE html><title>Unicorn!</title>", "text/html", None),
        (b'{"message": "an object"}', "application/json", None),
        (b'{"id": 1001, "body": "no html_url"}', "application/json", "POST"),
        (b'{"id": 1001,', "application/json", "POST"),
    ],
    ids=["html with 200", "object for list", "comment without html_url", "invalid json"],
)
@pytest.mark.parametrize(("verdict", "code"), [("pass", 0), ("fail", 1)])
def test_main__a_misbehaving_github_is_a_warning_and_the_verdict_is_reported(
    tmp_path: Path,
    fake: FakeGitHub,
    capsys: pytest.CaptureFixture[str],
    body: bytes,
    content_type: str,
    method: str | None,
    verdict: str,
    code: int,
) -> None:
    fake.misbehave_next(
        body, status=201 if method else 200, content_type=content_type, method=method
    )

    assert action.main(github_env(tmp_path, fake), FakeRun(load_report(verdict))) == code

    out = capsys.readouterr().out
    assert "::warning title=gate%3A PR comment::the PR comment was not posted" in out
    summary = (tmp_path / "step_summary").read_text(encoding="utf-8")
    assert summary.startswith(f"### {'✅' if code == 0 else '❌'} gate: {verdict}")
    assert "the PR comment was not posted" in summary
    outputs = read_outputs(tmp_path / "set_output")
    assert outputs["verdict"] == verdict
    assert outputs["comment-url"] == ""


def test_main__summary_and_outputs_are_written_before_the_comment_is_tried(
    tmp_path: Path, fake: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("a bug while posting")

    monkeypatch.setattr(action, "post_comment", broken)

    with pytest.raises(RuntimeError):
        action.main(github_env(tmp_path, fake), FakeRun(load_report("fail")))

    assert (tmp_path / "step_summary").read_text(encoding="utf-8").startswith("### ❌ gate: fail")
    assert read_outputs(tmp_path / "set_output")["verdict"] == "fail"


@pytest.mark.parametrize(
    "text", ["[" * 100_000 + "]" * 100_000, '{"verdict": "pass", "n": ' + "9" * 5000 + "}"]
)
def test_comment__a_hostile_report_artifact_is_an_input_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "report.json"
    path.write_text(text)
    with pytest.raises(GateError, match="not a gate report"):
        action.read_report(path)
