"""``gate report --html``: one self-contained page, checked structurally with html.parser: no
script, nothing fetched from anywhere, hostile text from the report inert; the charts drawn."""

from __future__ import annotations

import json
import shutil
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from gate import cli
from gate.render.html import render_html

REPORTS = Path(__file__).parent / "data" / "reports"
HOSTILE = "<script>alert(1)</script>"


class Page(HTMLParser):
    """Every tag and attribute, and the text, of a page."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def named(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for name, attrs in self.tags if name == tag]


def hostile_report() -> dict[str, Any]:
    report: dict[str, Any] = json.loads((REPORTS / "hostile.json").read_text(encoding="utf-8"))
    report["trends"] = {
        "runs": 3,
        "commits": ["a", "b", "c"],
        "dates": ["2026-01-01"] * 3,
        "metrics": {f"m{HOSTILE}": [0.5, 0.6, None, 0.4], "empty": [None]},
    }
    report["baseline"]["blessing"] = {"actor": "@octocat", "at": "x", "reason": HOSTILE}
    return report


def test_report_html__is_self_contained_and_inert(tmp_path: Path) -> None:
    folder = tmp_path / "gate-report"
    folder.mkdir()
    (folder / "report.json").write_text(json.dumps(hostile_report()), encoding="utf-8")

    assert cli.main(["report", "--html", "--report", str(folder)]) == 0

    text = (folder / "report.html").read_text(encoding="utf-8")
    page = Page(text)
    names = {tag for tag, _ in page.tags}
    assert not names & {"script", "iframe", "object", "embed", "link", "img", "base", "form"}
    for tag, attrs in page.tags:
        for name, value in attrs.items():
            assert not name.startswith("on"), (tag, name)
            assert not (value or "").lower().startswith(("http", "//", "javascript:", "data:"))
    assert HOSTILE not in text  # only ever as escaped text
    assert any(HOSTILE in chunk for chunk in page.text)
    (csp,) = (a for a in page.named("meta") if a.get("http-equiv") == "Content-Security-Policy")
    assert csp["content"] == "default-src 'none'; style-src 'unsafe-inline'"


def test_report_html__draws_the_trends_the_slice_deltas_and_the_flipped_cases() -> None:
    page = Page(render_html(hostile_report()))

    (line,) = page.named("polyline")  # the metric without a measured run draws no chart
    assert len(str(line["points"]).split()) == 3
    assert len(page.named("circle")) == 3
    bars = [a for a in page.named("rect") if a.get("fill") == "#cf222e"]
    assert len(bars) == 1  # the one slice's worse delta
    text = "".join(page.text)
    assert "Regressed cases (passed in the baseline, fail now) (1)" in text
    assert "ping-@octocat" in text
    assert "blessed by @octocat" in text


def test_report_html__without_a_report_is_an_input_error(tmp_path: Path) -> None:
    assert cli.main(["report", "--html", "--report", str(tmp_path)]) == 2


def test_report_html__of_a_real_run(tmp_path: Path) -> None:
    folder = tmp_path / "gate-report"
    folder.mkdir()
    shutil.copy(REPORTS / "fail.json", folder / "report.json")

    assert cli.main(["report", "--html", "--report", str(folder)]) == 0

    assert Page((folder / "report.html").read_text(encoding="utf-8")).named("table")


def test_report_html__with_the_config_shows_the_launch_status_bar(example: Path) -> None:
    config, out = example / "gate.yml", example / "gate-report"
    assert cli.main(["run", "-q", "-c", str(config), "--out", str(out)]) == 0

    assert cli.main(["report", "--html", "-c", str(config), "--report", str(out)]) == 0

    text = (out / "report.html").read_text(encoding="utf-8")
    assert "Launch:" in text
    for step in ("dataset valid", "bars declared", "run complete", "statistics", "verdict"):
        assert f"{step}: " in text
