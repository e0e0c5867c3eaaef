"""The PR comment's Markdown: golden files, escaping of untrusted text, the size limit.

The expected Markdown lives in tests/data/comment/ and is compared exactly. After a deliberate
change to the rendering, regenerate it and review the diff:

    GATE_UPDATE_GOLDEN=1 pytest tests/test_comment.py
"""

from __future__ import annotations

import copy
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from gate.render.markdown import (
    COMMENT_MAX_CHARS,
    ZWSP,
    escape,
    marker,
    render_comment,
    render_summary,
)

DATA = Path(__file__).parent / "data"
RUN_URL = "https://github.com/octo-org/octo-repo/actions/runs/30433642"


def report(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((DATA / "reports" / f"{name}.json").read_text("utf-8"))
    return loaded


def oversized() -> dict[str, Any]:
    """The failing report with 5,000 failing cases, long hostile answers, and 5,000 flips."""
    big = report("fail")
    case = big["cases"]["failing"][0]
    big["cases"]["failing"] = [
        {**case, "id": f"case-{i}", "answer": f"@team <b>{i}</b> | " * 200} for i in range(5000)
    ]
    big["flips"]["regressed"] = big["cases"]["failing"]
    return big


def assert_golden(name: str, text: str) -> None:
    path = DATA / "comment" / name
    if os.environ.get("GATE_UPDATE_GOLDEN"):
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8"), f"{path} differs (see the module docstring)"


@pytest.mark.parametrize("name", ["pass", "fail", "hostile"])
def test_render_comment__golden(name: str) -> None:
    data = report(name)
    assert_golden(f"{name}.md", render_comment(data, RUN_URL, marker(data["config"])))


def test_render_comment__golden_oversized() -> None:
    text = render_comment(oversized(), RUN_URL, marker("gate.yml"))

    assert len(text) <= COMMENT_MAX_CHARS
    assert "Showing 20 of 5000 failing cases" in text
    assert (
        f"the full report is in the job summary and the report artifact of [the run]({RUN_URL})"
        in text
    )
    assert_golden("oversized.md", text)


def test_render_summary__golden() -> None:
    assert_golden("fail.summary.md", render_summary(report("fail"), RUN_URL))


def test_render_summary__lists_every_case_when_it_fits() -> None:
    data = report("fail")
    data["cases"]["failing"] *= 50

    text = render_summary(data, RUN_URL)

    assert text.count("**api-key-reset**") == 50 + 1  # the failing list and the flips table
    assert "Showing" not in text


def test_render_summary__renders_the_rows_that_fit_not_every_failing_case(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """50,000 failing cases: the summary lists the first ones that fit in 1 MiB, says how many
    more there are, and escapes about the rows it shows rather than all 250,000 cells."""
    from gate.render import markdown

    data = report("fail")
    case = data["cases"]["failing"][0]
    data["cases"] = {
        "failing": [{**case, "id": f"case-{i}", "answer": "a " * 100} for i in range(50_000)],
        "total": 50_000,
    }
    escaped = 0

    def counting(value: object, limit: int | None = None) -> str:
        nonlocal escaped
        escaped += 1
        return escape(value, limit)

    monkeypatch.setattr(markdown, "escape", counting)
    text = render_summary(data, RUN_URL)

    listed = len(re.findall(r"\*\*case-\d+\*\*", text))
    assert len(text.encode()) <= markdown.SUMMARY_MAX_BYTES
    assert 1000 < listed < 50_000
    assert f"… and {50_000 - listed:,} more failing cases: see report.json." in text
    assert escaped < 10 * 5 * listed  # rendering all of them once is 250,000


def test_render_comment__cuts_details_before_the_verdict() -> None:
    """So many metrics and slices that only the failing rows fit: still under the limit."""
    data = report("fail")
    row = data["metrics"]["generation.must_include"]
    data["metrics"].update({f"generation.metric_{i:04}": row for i in range(3000)})
    data["slices"] = {f"tag-{i}": {"generation.must_include": row} for i in range(1000)}

    text = render_comment(data, RUN_URL, marker("gate.yml"))

    assert len(text) <= COMMENT_MAX_CHARS
    assert text.startswith(marker("gate.yml") + "\n### ❌ gate: fail")
    assert "| retrieval.hit\\_rate@" in text  # the failing rows stay
    assert "3006 passing or unchecked metrics not shown." in text
    assert "✂️ Shortened to fit GitHub's limits" in text


def test_render_comment__a_report_too_big_for_any_table_keeps_its_headline() -> None:
    data = report("fail")
    failing = {**data["metrics"]["retrieval.hit_rate@5"], "rules": {"min": 0.8}}
    data["metrics"] = {f"m{i:05}": failing for i in range(5000)}

    text = render_comment(data, RUN_URL, marker("gate.yml"))

    assert len(text) <= 2000
    assert "### ❌ gate: fail" in text
    assert "✂️ Shortened" in text


@pytest.mark.parametrize(
    ("untrusted", "rendered"),
    [
        ("hi @octocat", f"hi @{ZWSP}octocat"),
        ("@github/security-team", f"@{ZWSP}github/security-team"),
        ("see #12 and org/repo#3", f"see #{ZWSP}12 and org/repo#{ZWSP}3"),
        ("<script>alert(1)</script>", "&lt;script&gt;alert\\(1\\)&lt;/script&gt;"),
        ("</details>", "&lt;/details&gt;"),
        ("&#64;octocat", f"&amp;#{ZWSP}64;octocat"),
        ("[click](https://evil.example)", f"\\[click\\]\\(https:{ZWSP}//evil.example\\)"),
        ("![pixel](x.png)", "\\!\\[pixel\\]\\(x.png\\)"),
        ("www.evil.example", f"www{ZWSP}.evil.example"),
        ("a | b", "a \\| b"),
        ("`code` ```block```", "\\`code\\` \\`\\`\\`block\\`\\`\\`"),
        ("line\nbreak\r\n\n# heading\t- item", "line break #" + ZWSP + " heading - item"),
        ("**bold** _it_ ~~s~~ $x$", "\\*\\*bold\\*\\* \\_it\\_ \\~\\~s\\~\\~ \\$x\\$"),
        ("C:\\path\\", "C:\\\\path\\\\"),
        ({"question": "a|b"}, '\\{"question": "a\\|b"\\}'),
    ],
)
def test_escape__makes_untrusted_text_inert(untrusted: object, rendered: str) -> None:
    assert escape(untrusted) == rendered


def test_escape__cuts_before_escaping_so_no_escape_is_split() -> None:
    assert escape("<<<<<<<<<<", limit=4) == "&lt;&lt;&lt;…"
    assert escape("short", limit=10) == "short"


def test_render_comment__hostile_report_stays_inert() -> None:
    text = render_comment(report("hostile"), RUN_URL, marker("gate.yml"))

    assert re.search(r"(?<![\w`])@[A-Za-z0-9]", text) is None, "a live mention"
    assert (
        re.search(r"<(?!/?(details|summary|sub)>|details><summary>|!-- gate:comment)", text) is None
    )
    assert text.count("<details>") == text.count("</details>")
    assert "](http" not in text.replace(f"]({RUN_URL})", "")
    for table in re.findall(r"(?:^\|.*\|$\n?)+", text, flags=re.MULTILINE):
        widths = {len(re.findall(r"(?<!\\)\|", row)) for row in table.splitlines()}
        assert len(widths) == 1, f"a table row with extra cells:\n{table}"


def test_render_comment__tolerates_a_malformed_report() -> None:
    """A report from a fork's artifact can be anything: wrong types must not crash the render."""
    data: dict[str, Any] = {
        "verdict": ["fail"],
        "summary": {"not": "a string"},
        "metrics": {"m": {"value": "1", "rules": ["min"], "delta": True, "interval": 3}},
        "slices": {"s": "not a dict"},
        "failure_modes": {"x": "many"},
        "cases": {"failing": [None, 3, {"tags": "a", "id": None}], "total": "lots"},
        "flips": {"regressed": "all", "fixed": [[]]},
        "baseline": {"status": "found", "git_sha": 7},
        "run": {"repeats": "3"},
        "dataset": {"cases": "x"},
    }

    text = render_comment(data, RUN_URL, marker("gate.yml"))

    assert '### ⚠️ gate: \\["fail"\\]' in text


def test_marker__one_per_config() -> None:
    assert marker("gate.yml") == marker("gate.yml")
    assert marker("gate.yml") != marker("gate.nightly.yml")
    assert re.fullmatch(r"<!-- gate:comment config=[0-9a-f]{12} -->", marker("gate.yml"))


def test_render_comment__does_not_change_the_report() -> None:
    data = report("fail")
    before = copy.deepcopy(data)

    render_comment(data, RUN_URL, marker("gate.yml"))

    assert data == before


@pytest.mark.parametrize(
    ("now", "before", "shown"),
    [
        (
            {"version": "rag-v4", "sha256": "b"},
            {"version": "rag-v3", "sha256": "a"},
            "prompt rag-v3 → rag-v4",
        ),
        (
            {"version": "rag-v3", "sha256": "b"},
            {"version": "rag-v3", "sha256": "a"},
            "prompt rag-v3 edited since the baseline",
        ),
        ({"version": "rag-v3", "sha256": "a"}, None, "prompt rag-v3"),
    ],
)
def test_render_summary__says_which_prompt_changed(now, before, shown) -> None:
    changed = {
        **report("pass"),
        "pipeline": {"adapter": "openai", "prompt": {**now, "baseline": before}},
    }
    assert f" · {shown}" in render_summary(changed, None) or f"{shown} · " in render_summary(
        changed, None
    )


@pytest.mark.parametrize(
    ("p", "said"),
    [(0.003, "unlikely by chance alone"), (0.4, "as many as chance alone often gives")],
)
def test_render_summary__says_whether_the_flips_are_more_than_chance(p: float, said: str) -> None:
    flipped = copy.deepcopy(report("fail"))
    case = {"id": "c1", "tags": [], "failure_modes": ["error"], "input": "q", "answer": ""}
    flipped["flips"] = {"regressed": [case], "fixed": []}
    success = flipped["metrics"].setdefault("agent.task_success", {"value": 0.5, "n": 2})
    success["interval"] = {"n": 2, "mcnemar": {"worse": 1, "better": 0, "p_worse": p}}
    text = render_summary(flipped, None)
    assert f"1 passed on the baseline and fail now; 0 failed and pass now. That is {said}" in text


@pytest.mark.parametrize(
    ("untrusted", "rendered"),
    [
        ("GH-12 and gh-3", f"GH{ZWSP}-12 and gh{ZWSP}-3"),
        ("\x1b[31mred\x1b[0m", "\\\\u001b\\[31mred\\\\u001b\\[0m"),
        ("abc\u202edef\u2066x\u2069", "abc\\\\u202edef\\\\u2066x\\\\u2069"),
        ("bell\x07 nul\x00", "bell\\\\u0007 nul\\\\u0000"),
    ],
)
def test_escape__neutralises_references_and_invisible_characters(
    untrusted: str, rendered: str
) -> None:
    assert escape(untrusted) == rendered
