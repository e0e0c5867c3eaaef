"""The review queue: ``review.md`` and a self-contained ``review.html`` (no script, no network,
every piece of data HTML-escaped) listing each output that needs a person, with the exact line
to append to reviews.jsonl to approve or reject it.

Pure: queue items in, text out.
"""

from __future__ import annotations

import difflib
import html
import json
from dataclasses import dataclass
from typing import Any

from gate.render.markdown import escape


@dataclass(frozen=True)
class QueueItem:
    case_id: str
    tags: tuple[str, ...]
    reason: str
    input: Any
    expected: Any
    output: Any
    """The current output (repeat 0); None when the run produced none."""
    approved: Any
    """The last approved output, when its review stored it; None otherwise."""
    approve_line: str
    reject_line: str

    def diff(self) -> list[str]:
        """A line diff of the last approved output against the current one (pretty JSON)."""
        if self.approved is None or self.output is None:
            return []
        return list(
            difflib.unified_diff(
                pretty(self.approved).splitlines(),
                pretty(self.output).splitlines(),
                "last approved",
                "this run",
                lineterm="",
            )
        )


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


def review_line(
    case_id: str, fingerprint: str, reviewer: str, verdict: str, day: str, output: Any
) -> str:
    """One reviews.jsonl line, keys in the order a reader scans them."""
    body = {
        "case": case_id,
        "fingerprint": fingerprint,
        "reviewer": reviewer,
        "verdict": verdict,
        "date": day,
        "note": "",
        "output": output,
    }
    return json.dumps(body, ensure_ascii=False, separators=(", ", ": "))


def _fence(text: str) -> list[str]:
    # A fence longer than any backtick run inside, so untrusted text cannot close it.
    ticks = "`" * max(3, _longest_backticks(text) + 1)
    return [ticks, text, ticks]


def _longest_backticks(text: str) -> int:
    best = run = 0
    for char in text:
        run = run + 1 if char == "`" else 0
        best = max(best, run)
    return best


def render_queue_markdown(items: list[QueueItem], coverage_lines: list[str]) -> str:
    lines = ["# Review queue", ""]
    lines += [f"- {escape(line)}" for line in coverage_lines]
    if not items:
        return "\n".join(
            [*lines, "", "Every output that needs a review has a current approval.", ""]
        )
    lines += [
        "",
        f"{len(items)} outputs need a person. For each, append one of its two lines to the "
        "reviews file (gate.yml `reviews:`) and commit it.",
    ]
    for item in items:
        lines += ["", f"## {escape(item.case_id)}", ""]
        lines += [f"Tags: {escape(', '.join(item.tags))} · why: {escape(item.reason)}", ""]
        for title, value in (("Input", item.input), ("Expected", item.expected)):
            lines += [f"**{title}**", "", *_fence(pretty(value)), ""]
        output = "no output in this run" if item.output is None else pretty(item.output)
        lines += ["**Output**", "", *_fence(output), ""]
        diff = item.diff()
        if diff:
            lines += ["**Changed since the last approved output**", "", *_fence("\n".join(diff))]
            lines.append("")
        if item.output is not None:
            lines += ["Approve:", "", *_fence(item.approve_line), ""]
            lines += ["Reject:", "", *_fence(item.reject_line)]
    return "\n".join([*lines, ""])


_STYLE = """
body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
section{border:1px solid #ccc;border-radius:6px;padding:0 1rem 1rem;margin:1.5rem 0}
pre{background:#f6f8fa;padding:.5rem;overflow-x:auto;white-space:pre-wrap;word-break:break-all}
.add{color:#116329;background:#dafbe1}.del{color:#82071e;background:#ffebe9}
.why{color:#9a6700}
"""


def render_queue_html(items: list[QueueItem], coverage_lines: list[str]) -> str:
    """One page, its style inline: no script, no link or image to load."""
    esc = html.escape
    body = ["<h1>Review queue</h1>", "<ul>"]
    body += [f"<li>{esc(line)}</li>" for line in coverage_lines]
    body.append("</ul>")
    if not items:
        body.append("<p>Every output that needs a review has a current approval.</p>")
    for item in items:
        body += [
            f'<section id="case-{esc(item.case_id)}">',
            f"<h2>{esc(item.case_id)}</h2>",
            f"<p>Tags: {esc(', '.join(item.tags))} · "
            f'<span class="why">{esc(item.reason)}</span></p>',
            "<h3>Input</h3>",
            f"<pre>{esc(pretty(item.input))}</pre>",
            "<h3>Expected</h3>",
            f"<pre>{esc(pretty(item.expected))}</pre>",
            "<h3>Output</h3>",
            f"<pre>{esc('no output in this run' if item.output is None else pretty(item.output))}"
            "</pre>",
        ]
        diff = item.diff()
        if diff:
            body += ["<h3>Changed since the last approved output</h3>", "<pre>"]
            body += [_diff_line(line) for line in diff]
            body.append("</pre>")
        if item.output is not None:
            body += [
                "<h3>Approve</h3>",
                f'<pre class="approve">{esc(item.approve_line)}</pre>',
                "<h3>Reject</h3>",
                f'<pre class="reject">{esc(item.reject_line)}</pre>',
            ]
        body.append("</section>")
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            # No script, style only inline, nothing fetched: the page works from an artifact.
            '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
            "style-src 'unsafe-inline'\">",
            "<title>gate review queue</title>",
            f"<style>{_STYLE}</style></head><body>",
            *body,
            "</body></html>",
            "",
        ]
    )


def _diff_line(line: str) -> str:
    text = html.escape(line)
    if line.startswith("+") and not line.startswith("+++"):
        return f'<span class="add">{text}</span>'
    if line.startswith("-") and not line.startswith("---"):
        return f'<span class="del">{text}</span>'
    return text
