"""The report as Markdown: the pull request comment and the job summary.

Pure: a report dict in, Markdown out. The report may come from an untrusted run (a fork's
artifact, read by the privileged commenting workflow), so every string taken from it goes
through `escape`, and every container is type-checked before use: a crafted report can make the
comment wrong, never make it mention people, inject HTML or links, or break its layout.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from gate.render.console import ZWSP, visible
from gate.render.trends import mermaid, sparkline

COMMENT_MAX_CHARS = 65_536
"""GitHub refuses a comment body longer than this."""
SUMMARY_MAX_CHARS = 262_144
"""A step summary may take 1 MiB; at most 4 UTF-8 bytes a character keeps us under it."""
SUMMARY_MAX_BYTES = 1_000_000
"""GitHub takes 1 MiB (1,048,576 bytes) of summary per step: room left for what the action adds."""

_MARKDOWN = re.compile(r"([\\`*_{}\[\]()!|~$])")
_HTML = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
# GitHub links these after rendering, in plain text: @user and @org/team (mentions, which
# notify), #123 (a cross-reference in the other issue's timeline), URLs and www. names.
# A zero-width space right after the trigger keeps the text readable and unlinked.
# GH-123 is a cross-reference too.
_AUTOLINKED = re.compile(r"(?<=[@#])|(?<=:)(?=//)|(?<=www)(?=\.)|(?<=\bGH)(?=-)", re.IGNORECASE)

STATUS = {"pass": "✅ pass", "fail": "❌ fail", "inconclusive": "⚠️ inconclusive", "unchecked": "➖"}
VERDICT = {"pass": "✅", "fail": "❌", "inconclusive": "⚠️"}
NOT_PASSING = ("fail", "inconclusive")
"""Statuses the comment always shows (and first): a check that failed or cannot tell."""
RULES = {
    "min": "≥ {}",
    "max": "≤ {}",
    "max_drop": "drop ≤ {}",
    "max_drop_pct": "drop ≤ {}%",
    "max_increase": "rise ≤ {}",
    "max_increase_pct": "rise ≤ {}%",
}


@dataclass(frozen=True)
class Detail:
    """How much of the report one rendering shows; `render_*` tries these richest first."""

    cases: int | None
    """Failing cases listed (and regressed cases; None: all)."""
    excerpt: int
    """Characters of each input, answer and error."""
    all_slices: bool
    """The table of every slice metric, not only the failing ones."""
    passing: bool
    """The passing metrics' rows."""
    rows: int | None = None
    """Rows of each table, at most (None: all); a line counts the rest (the summary's cap)."""


COMMENT_DETAIL = (
    Detail(cases=20, excerpt=160, all_slices=True, passing=True),
    Detail(cases=10, excerpt=80, all_slices=True, passing=True),
    Detail(cases=3, excerpt=40, all_slices=False, passing=True),
    Detail(cases=0, excerpt=0, all_slices=False, passing=True),
    Detail(cases=0, excerpt=0, all_slices=False, passing=False),
)
SUMMARY_DETAIL = (
    Detail(cases=None, excerpt=300, all_slices=True, passing=True),
    Detail(cases=200, excerpt=200, all_slices=True, passing=True),
    *COMMENT_DETAIL,
)


def escape(value: object, limit: int | None = None) -> str:
    """Untrusted text as inert Markdown on one line, cut to ``limit`` characters.

    Whitespace (newlines too) becomes single spaces, so a table row or list item stays whole;
    Markdown punctuation is backslash-escaped, so no code span, emphasis, link, image or table
    cell can start; ``& < >`` become entities, so no HTML tag (``</details>``, ``<img>``) can
    open or close; mentions, issue references and URLs are broken with a zero-width space;
    control characters (ANSI escapes) and bidi overrides are shown as their ``\\u`` codes.
    """
    return _escaped(_text(value), limit)


@functools.lru_cache(maxsize=2**14)
def _escaped(value: str, limit: int | None) -> str:
    # Remembered: the job summary renders its tables several times over to find the most rows
    # that fit, and each rendering escapes the same cells again.
    text = " ".join(value.split())
    if limit is not None and len(text) > limit:
        text = text[: max(limit - 1, 0)].rstrip() + "…"
    text = _MARKDOWN.sub(r"\\\1", visible(text)).translate(_HTML)
    return _AUTOLINKED.sub(ZWSP, text)


def marker(config: str) -> str:
    """The hidden line that finds this config's comment again (one comment per config)."""
    digest = hashlib.sha256(config.encode()).hexdigest()[:12]
    return f"<!-- gate:comment config={digest} -->"


def render_comment(report: Mapping[str, Any], run_url: str | None, marker: str) -> str:
    """The PR comment: at most COMMENT_MAX_CHARS, the details cut first when it must shrink."""
    return _fit(report, run_url, marker, COMMENT_DETAIL, COMMENT_MAX_CHARS)


def render_summary(report: Mapping[str, Any], run_url: str | None) -> str:
    """The job summary: every section and every row while it fits GitHub's 1 MiB; past that,
    every section still, each table cut to the most rows that fit (found by bisection on the
    byte size), with a line saying how many rows it left out and where they are."""
    full = SUMMARY_DETAIL[0]
    most = _most_rows(report)

    def cut(rows: int) -> tuple[str, int]:
        text = _render(report, run_url, None, replace(full, rows=rows), shortened=True)
        return text, len(text.encode())

    # Rows per table doubled while the summary fits, then the most that fit found between the
    # last that fit and the first that did not, guessed from their sizes: each rendering costs
    # the rows it shows, never the thousands of failing cases a summary has no room for.
    fitting, low, low_size = None, 0, 0
    high, high_size = most, 0
    rows = _FIRST_ROWS
    while True:
        if rows >= most:
            text = _render(report, run_url, None, full, shortened=False)
            size = len(text.encode())
            if size <= SUMMARY_MAX_BYTES:
                return text
            high, high_size = most, size
            break
        text, size = cut(rows)
        if size > SUMMARY_MAX_BYTES:
            high, high_size = rows, size
            break
        fitting, low, low_size, rows = text, rows, size, 2 * rows
    if fitting is None:
        text, low_size = cut(0)
        fitting = text if low_size <= SUMMARY_MAX_BYTES else None
    guesses = 0
    while fitting is not None and high - low > 1:
        rows = (low + high) // 2
        if guesses < _GUESSES:
            share = (SUMMARY_MAX_BYTES - low_size) / max(high_size - low_size, 1)
            rows = min(max(low + int(share * (high - low)), low + 1), high - 1)
        guesses += 1
        text, size = cut(rows)
        if size <= SUMMARY_MAX_BYTES:
            fitting, low, low_size = text, rows, size
        else:
            high, high_size = rows, size
    return fitting or _fit(report, run_url, None, SUMMARY_DETAIL[1:], SUMMARY_MAX_CHARS)


_FIRST_ROWS = 64
"""Rows per table the job summary tries first when a table is longer."""
_GUESSES = 4
"""Guesses from the sizes before halving: rows are about the same size, so a guess is close."""


def _most_rows(report: Mapping[str, Any]) -> int:
    """The longest table's rows, at most: where the bisection of ``Detail.rows`` starts."""
    flips, cases = _dict(report.get("flips")), _dict(report.get("cases"))
    slices = sum(len(_dict(m)) for m in _dict(report.get("slices")).values())
    lists = [
        flips.get("regressed"),
        flips.get("fixed"),
        cases.get("failing"),
        report.get("warnings"),
    ]
    return max([slices, len(_dict(report.get("metrics"))), *(len(_list(x)) for x in lists)])


def _capped(rows: list[Any], detail: Detail, what: str) -> tuple[list[Any], list[str]]:
    """The rows a table shows under ``detail.rows``, and the line that counts the rest."""
    if detail.rows is None or len(rows) <= detail.rows:
        return rows, []
    more = len(rows) - detail.rows
    return rows[: detail.rows], ["", f"… and {more:,} more {what}: see report.json."]


def _fit(
    report: Mapping[str, Any],
    run_url: str | None,
    marker: str | None,
    details: Sequence[Detail],
    max_chars: int,
) -> str:
    for level, detail in enumerate(details):
        text = _render(report, run_url, marker, detail, shortened=level > 0)
        if len(text) <= max_chars:
            return text
    # Headline, summary and the pointer to the full report: a few hundred characters at most.
    return "\n".join([*_head(report, run_url, marker), _shortened_note(run_url), ""])


def _render(
    report: Mapping[str, Any],
    run_url: str | None,
    marker: str | None,
    detail: Detail,
    shortened: bool,
) -> str:
    lines = _head(report, run_url, marker)
    lines += _context(report)
    lines += _bar(report, detail)
    lines += _metrics(report, detail)
    lines += _trends(report, charts=marker is None)
    lines += _quarantine(report, detail)
    lines += _noise(report)
    lines += _slices(report, detail)
    lines += _failure_modes(report)
    lines += _review(report, detail)
    lines += _warnings(report, detail)
    lines += _flips(report, detail, run_url)
    lines += _failing_cases(report, detail, run_url)
    if shortened:
        lines += ["", _shortened_note(run_url)]
    lines += ["", _footer(report, run_url), ""]
    return "\n".join(lines)


# --- sections -------------------------------------------------------------------------------


def _head(report: Mapping[str, Any], run_url: str | None, marker: str | None) -> list[str]:
    verdict = report.get("verdict")
    icon = VERDICT.get(verdict, "⚠️") if isinstance(verdict, str) else "⚠️"
    lines = [marker] if marker else []
    lines += [f"### {icon} gate: {escape(verdict)}", "", escape(report.get("summary", ""), 1000)]
    return lines


def _context(report: Mapping[str, Any]) -> list[str]:
    dataset, run, baseline = (_dict(report.get(key)) for key in ("dataset", "run", "baseline"))
    facts = []
    if "cases" in dataset:
        cases = _count(_float(dataset["cases"]) or 0, "case")
        facts.append(f"{cases} from {escape(dataset.get('path', '?'))}")
    for key in ("errors", "timeouts", "repeats"):
        count = _float(run.get(key)) or 0
        if count > (1 if key == "repeats" else 0):
            facts.append(_count(count, key.removesuffix("s")))
    status = baseline.get("status")
    if status == "found":
        sha, created = baseline.get("git_sha"), baseline.get("created_at")
        origin = f" of {escape(_text(sha)[:7])}" if sha else ""
        origin += f" ({escape(_text(created)[:10])})" if created else ""
        facts.append(f"compared with the baseline{origin}{_baseline_source(baseline)}")
    elif status == "missing":
        facts.append("no baseline yet: regressions not checked")
    elif status == "updated":
        facts.append("baseline updated by this run")
    prompt = _dict(_dict(report.get("pipeline")).get("prompt"))
    before = _dict(prompt.get("baseline"))
    if prompt.get("version"):
        now = escape(prompt["version"])
        if before.get("version") and before.get("version") != prompt["version"]:
            facts.append(f"prompt {escape(before['version'])} → {now}")
        elif before.get("sha256") and before.get("sha256") != prompt.get("sha256"):
            facts.append(f"prompt {now} edited since the baseline")
        else:
            facts.append(f"prompt {now}")
    drift = _dict(report.get("drift"))
    moved = {kind: len(_list(drift.get(kind))) for kind in ("added", "removed", "changed")}
    if any(moved.values()):
        changes = ", ".join(f"{count} {kind}" for kind, count in moved.items() if count)
        facts.append(f"golden set changed since the baseline: {changes}")
    quarantine = _float(_dict(report.get("quarantine")).get("count"))
    if quarantine:
        facts.append(f"{_count(quarantine, 'quarantined case')} out of the regression tests")
    flaky = _list(_dict(report.get("flaky")).get("cases"))
    if flaky:
        facts.append(f"{_count(len(flaky), 'flaky case')} (answers differ between repeats)")
    stale = [escape(reason, 200) for reason in _list(baseline.get("stale"))]
    warning = ["", f"> **⚠️ stale baseline:** {'; '.join(stale)}."] if stale else []
    return (["", " · ".join(facts)] if facts else []) + warning


def _baseline_source(baseline: Mapping[str, Any]) -> str:
    """``, 12 days old, blessed by alice: "why"`` from the report's baseline block."""
    out = ""
    age = _float(baseline.get("age_days"))
    if age is not None:
        out += f", {_count(age, 'day')} old"
    blessing = _dict(baseline.get("blessing"))
    if blessing.get("actor"):
        why = escape(blessing.get("reason"), 120)
        out += f", blessed by {escape(blessing['actor'], 40)}: “{why}”"
    return out


def _bar(report: Mapping[str, Any], detail: Detail) -> list[str]:
    """Which bar judged the run, and what the change would move, side by side."""
    bar = _dict(report.get("bar"))
    if not bar:
        return []
    ref = escape(_text(bar.get("ref", "?"))[:12])
    via = escape(bar.get("via", "git"))
    files = ", ".join(escape(f) for f in _list(bar.get("changed_files")))
    label = bar.get("approval_label")
    lines = ["", "#### Bar", ""]
    if bar.get("first") is True:
        return [*lines, f"{ref} has no gate config: this change declares the first bar."]
    if not files:
        return [*lines, f"Judged by the thresholds and baseline of {ref} (read through {via})."]
    if bar.get("approved") is True:
        lines.append(
            f"✅ This change edits {files}, approved by the label “{escape(label)}”: judged by "
            f"its own thresholds and baseline, not those of {ref}."
        )
    else:
        lines.append(
            f"⚠️ This change edits {files}: **not honoured**, judged by the thresholds and "
            f"baseline of {ref} (read through {via})."
        )
        if isinstance(label, str) and label:
            lines[-1] += f" A maintainer approves it with the label “{escape(label)}”."
    changes = [_dict(c) for c in _list(bar.get("changes"))]
    shown = changes if detail.cases is None else changes[: max(detail.cases, 5)]
    if shown:
        header = ["metric", "slice", "rule", f"at {ref}", "this change"]
        rows = [
            [
                escape(c.get("metric")),
                escape(c.get("slice")) if c.get("slice") else "",
                escape(c.get("rule")),
                _num(c.get("base")),
                _num(c.get("change")),
            ]
            for c in shown
        ]
        lines += ["", *_table(header, rows)]
    if len(shown) < len(changes):
        lines += ["", f"… and {len(changes) - len(shown)} more changes (report.json, `bar`)."]
    if bar.get("baseline_changed") is True and not any(
        c.get("rule") == "baseline" for c in changes
    ):
        lines += ["", "The baseline's per-case scores or fingerprints differ."]
    return lines


def _metrics(report: Mapping[str, Any], detail: Detail) -> list[str]:
    metrics = _dict(report.get("metrics"))
    rows = _failing_first(metrics.items())
    shown = [(n, r) for n, r in rows if detail.passing or r.get("status") in NOT_PASSING]
    if not rows:
        return []
    lines = ["", "#### Metrics", ""]
    hidden = len(rows) - len(shown)
    shown, cut = _capped(shown, detail, "metrics")
    if shown:
        header = ["metric", "baseline", "current", "delta", "rule", "status"]
        lines += _table(header, [_metric_cells(escape(n), r) for n, r in shown])
    lines += cut
    if hidden:
        lines += ["", f"{hidden} passing or unchecked metrics not shown."]
    lines += _interval_note(r for _, r in shown)
    return lines


MAX_CHARTS = 6
"""Mermaid charts in the job summary, one per gated metric, at most."""


def _trends(report: Mapping[str, Any], charts: bool) -> list[str]:
    """The gated metrics over the last runs on the default branch (the history's), next to this
    run's value and delta; the job summary adds a Mermaid chart of each."""
    trends = _dict(report.get("trends"))
    series = {str(k): _list(v) for k, v in _dict(trends.get("metrics")).items()}
    series = {name: values for name, values in series.items() if sparkline(values)}
    if not series:
        return []
    metrics = _dict(report.get("metrics"))
    runs = _num(_float(trends.get("runs")) or 0)
    rows = [
        [
            escape(name, 80),
            sparkline(values),
            _current(_dict(metrics.get(name))),
            _delta(_dict(metrics.get(name))),
        ]
        for name, values in series.items()
    ]
    lines = ["", f"#### Trend: the last {runs} runs on the default branch", ""]
    lines += _table(["metric", "trend (oldest → newest)", "now", "Δ"], rows)
    if charts:
        for name, values in list(series.items())[:MAX_CHARTS]:
            lines += ["", *mermaid(name, values)]
    return lines


NO_VERDICT = (
    "no verdict: the gate stopped before deciding (exit 2: the config, dataset, thresholds or "
    "baseline is wrong; exit 3: a bug in the gate). The run's log says why."
)


def render_night(
    report: Mapping[str, Any] | None,
    run_url: str | None,
    *,
    night: str,
    branch: str,
    kind: Literal["opened", "again", "passed"],
) -> str:
    """The nightly issue's body (``kind`` "opened") or a comment on it ("again", "passed"): the
    night's verdict and summary (``report`` None: the gate stopped before one), the run, and on
    a failing night the trends with the Mermaid charts the job summary draws. At most
    COMMENT_MAX_CHARS, GitHub's limit for an issue body too: the trends go first."""
    verdict = _dict(report)
    summary = escape(verdict.get("summary", ""), 1000)
    what = f"verdict **{escape(verdict.get('verdict'))}**: {summary}" if report else NO_VERDICT
    on = escape(night)
    lead = {
        "opened": f"The nightly gate failed on **{escape(branch, 100)}** on {on}, {what}",
        "again": f"Failed again on {on}, {what}",
        "passed": f"Passed again on {on}: {summary}",
    }[kind]
    tail = {
        "opened": [
            "",
            "Each further failing night adds a comment here; the first passing night closes "
            "this issue.",
        ]
    }.get(kind, [])
    where = _where_full(run_url)
    head = [lead, "", f"{where[0].upper()}{where[1:]}."]
    trends = _trends(verdict, charts=True) if kind != "passed" else []
    text = "\n".join([*head, *trends, *tail, ""])
    if len(text) <= COMMENT_MAX_CHARS:
        return text
    return "\n".join([*head, "", "The trend charts are in the run's job summary.", *tail, ""])


def _quarantine(report: Mapping[str, Any], detail: Detail) -> list[str]:
    """The quarantined cases: run and reported, but out of the paired regression tests."""
    cases = [_dict(c) for c in _list(_dict(report.get("quarantine")).get("cases"))]
    if not cases:
        return []
    shown, more = _capped(cases, detail, "quarantined cases")
    rows = [[escape(c.get("id"), 80), _flip_marks(c.get("flips"))] for c in shown]
    lines = ["", f"#### Quarantined: {_count(len(cases), 'flaky case')}", ""]
    lines += [
        "Flipped on unchanged code in recent nightly runs: still run and reported, left out of "
        "the regression tests against the baseline.",
        "",
    ]
    return lines + _table(["case", "flips by night (✗ flipped, oldest → newest)"], rows) + more


def _noise(report: Mapping[str, Any]) -> list[str]:
    """Which noise figures the regression tests used, and from which nights."""
    noise = _dict(report.get("noise"))
    nights = [escape(n, 10) for n in _list(noise.get("nights"))]
    if not nights:
        return []
    checks = [_dict(c) for c in _list(noise.get("checks"))]
    drifting = [c for c in checks if (_float(c.get("drift_sd")) or 0) > 0]
    named = ", ".join(
        f"{_where(c)} ±{_num(c.get('drift_sd'))} (nights ±{_num(c.get('nightly_sd'))})"
        for c in drifting[:10]
    )
    more = f", +{len(drifting) - 10} more" if len(drifting) > 10 else ""
    said = (
        f"run-level drift added to {named}{more}"
        if drifting
        else "no metric moved beyond its case noise: nothing added"
    )
    span = nights[0] if len(nights) == 1 else f"{nights[0]} … {nights[-1]}"
    runs = _count(int(_float(noise.get("runs")) or 1), "run")
    return [
        "",
        f"**Noise floor** (A/A, {_count(len(nights), 'night')} on unchanged code, {span}, "
        f"{runs} per case): {said}.",
    ]


def _where(check: Mapping[str, Any]) -> str:
    metric = escape(check.get("metric"), 80)
    tag = check.get("slice")
    return f"{metric} in {escape(tag, 80)}" if tag else metric


def _flip_marks(flips: object) -> str:
    return "".join("✗" if mark == "1" else "·" for mark in _text(flips)[:365])


def _slices(report: Mapping[str, Any], detail: Detail) -> list[str]:
    rows = [
        (tag, name, result)
        for tag, metrics in _dict(report.get("slices")).items()
        for name, result in _failing_first(_dict(metrics).items())
    ]
    failing = [row for row in rows if row[2].get("status") in NOT_PASSING]
    header = ["slice", "metric", "baseline", "current", "delta", "rule", "status"]
    lines = []
    if failing:
        lines += ["", "#### Failing slices", ""]
        shown, cut = _capped(failing, detail, "failing slice metrics")
        lines += _table(header, [[escape(t), *_metric_cells(escape(n), r)] for t, n, r in shown])
        lines += cut
    if rows and detail.all_slices:
        tags = _count(len({tag for tag, _, _ in rows}), "slice")
        lines += ["", _summary_tag(f"All slices ({_count(len(rows), 'metric')} in {tags})"), ""]
        shown, cut = _capped(rows, detail, "slice metrics")
        lines += _table(header, [[escape(t), *_metric_cells(escape(n), r)] for t, n, r in shown])
        lines += [*cut, *_interval_note(r for _, _, r in shown), "", "</details>"]
    return lines


def _failure_modes(report: Mapping[str, Any]) -> list[str]:
    counts = ((mode, _float(n)) for mode, n in _dict(report.get("failure_modes")).items())
    modes = sorted(((m, n) for m, n in counts if n is not None), key=lambda mode: -mode[1])
    if not modes:
        return []
    return ["", "**Failure modes:** " + " · ".join(f"{escape(m)} {_num(n)}" for m, n in modes)]


def _review(report: Mapping[str, Any], detail: Detail) -> list[str]:
    """Coverage per slice that needs review ("high-risk: 11 of 13 outputs reviewed") and the
    outputs still waiting for a person (``gate review`` writes their queue)."""
    slices = _dict(_dict(report.get("review")).get("slices"))
    if not slices:
        return []
    lines = ["", "#### Review coverage", ""]
    for tag, found in slices.items():
        found = _dict(found)
        missing = _list(found.get("missing"))
        icon = VERDICT["pass"] if not missing else VERDICT["fail"]
        lines.append(
            f"- {icon} {escape(tag)}: {_num(found.get('reviewed'))} of "
            f"{_num(found.get('total'))} outputs reviewed"
        )
        shown = missing if detail.cases is None else missing[: detail.cases]
        lines += [
            f"  - {escape(_dict(m).get('id'), 100)}: {escape(_dict(m).get('reason'), 200)}"
            for m in shown
        ]
        if len(shown) < len(missing):
            lines.append(f"  - … and {len(missing) - len(shown)} more: see report.json")
    lines += ["", "Run `gate review` for the queue, with the line that approves each output."]
    return lines


def _warnings(report: Mapping[str, Any], detail: Detail) -> list[str]:
    warnings = _list(report.get("warnings"))
    if not warnings or not detail.excerpt:
        return []
    shown = warnings if detail.cases is None else warnings[: max(detail.cases // 2, 1)]
    shown, cut = _capped(shown, detail, "warnings")
    lines = ["", _summary_tag(f"⚠️ Warnings ({len(warnings)})"), ""]
    lines += [f"- {escape(warning, 2 * detail.excerpt)}" for warning in shown]
    if cut:
        lines += cut
    elif len(shown) < len(warnings):
        lines.append(f"- … and {len(warnings) - len(shown)} more")
    return [*lines, "", "</details>"]


def _flips(report: Mapping[str, Any], detail: Detail, run_url: str | None) -> list[str]:
    flips = _dict(report.get("flips"))
    regressed, fixed = _list(flips.get("regressed")), _list(flips.get("fixed"))
    if not regressed and not fixed:
        return []
    lines = [
        "",
        "#### Flipped cases",
        "",
        f"{len(regressed)} passed on the baseline and fail now; {len(fixed)} failed and pass now."
        + _chance(report),
    ]
    if detail.excerpt:
        lines += _cases_table(regressed, detail, "regressed cases", run_url)
        if fixed:
            lines += ["", _summary_tag(f"Fixed cases ({len(fixed)})")]
            lines += [*_cases_table(fixed, detail, "fixed cases", run_url), "", "</details>"]
    return lines


def _chance(report: Mapping[str, Any]) -> str:
    """Whether that many flips are likely by chance alone: some cases of a non-deterministic
    pipeline flip on every run, and a reader should not chase them."""
    success = _dict(_dict(report.get("metrics")).get("agent.task_success"))
    p = _float(_dict(_dict(success.get("interval")).get("mcnemar")).get("p_worse"))
    if p is None:
        return ""
    verdict = "unlikely by chance alone" if p < 0.05 else "as many as chance alone often gives"
    return f" That is {verdict} (one-sided McNemar p = {p:.2g})."


def _failing_cases(report: Mapping[str, Any], detail: Detail, run_url: str | None) -> list[str]:
    cases = _dict(report.get("cases"))
    failing = _list(cases.get("failing"))
    if not failing or not detail.excerpt:
        return []
    total = f" of {_num(cases['total'])}" if _float(cases.get("total")) is not None else ""
    lines = ["", _summary_tag(f"Failing cases ({len(failing)}{total})")]
    lines += _cases_table(failing, detail, "failing cases", run_url)
    return [*lines, "", "</details>"]


def _cases_table(cases: list[Any], detail: Detail, what: str, run_url: str | None) -> list[str]:
    shown = cases if detail.cases is None else cases[: detail.cases]
    shown, cut = _capped(shown, detail, what)
    rows = []
    for case in map(_dict, shown):
        said = case.get("answer", "")
        if case.get("error"):
            said = f"error: {_text(case['error'])}"
        rows.append(
            [
                f"**{escape(case.get('id', '?'), 80)}**",
                ", ".join(escape(tag, 40) for tag in _list(case.get("tags"))),
                ", ".join(escape(mode, 40) for mode in _list(case.get("failure_modes"))),
                escape(_text(case.get("input", "")), detail.excerpt),
                escape(said, detail.excerpt),
            ]
        )
    lines = [""]
    lines += _table(["case", "tags", "failure modes", "input", "answer"], rows) if rows else []
    if cut:
        lines += cut
    elif len(shown) < len(cases):
        lines += ["", f"Showing {len(shown)} of {len(cases)} {what}: {_where_full(run_url)}."]
    return lines


def _shortened_note(run_url: str | None) -> str:
    return f"✂️ Shortened to fit GitHub's limits: {_where_full(run_url)}."


def _footer(report: Mapping[str, Any], run_url: str | None) -> str:
    version = escape(report.get("gate_version", "?"), 20)
    return f"<sub>gate {version} · {_where_full(run_url)}</sub>"


def _where_full(run_url: str | None) -> str:
    run = _link("the run", run_url) if run_url else "the run"
    return f"the full report is in the job summary and the report artifact of {run}"


# --- cells ----------------------------------------------------------------------------------


def _metric_cells(name: str, result: Mapping[str, Any]) -> list[str]:
    return [
        name,
        _num(result.get("baseline")),
        _current(result),
        _delta(result),
        ", ".join(_rule(rule, limit) for rule, limit in _dict(result.get("rules")).items()),
        _status(result.get("status")),
    ]


def _status(status: object) -> str:
    return STATUS.get(status, escape(status)) if isinstance(status, str) else "?"


def _current(result: Mapping[str, Any]) -> str:
    value = result.get("value")
    return "n/a" if value is None else _num(value)


def _delta(result: Mapping[str, Any]) -> str:
    delta, baseline = _float(result.get("delta")), _float(result.get("baseline"))
    if delta is None:
        return "—"
    if delta == 0:
        return "= 0"
    arrow = "▲" if delta > 0 else "▼"
    sign = "+" if delta > 0 else "-"
    text = f"{arrow} {sign}{_num(abs(delta))}"
    if baseline:
        text += f" ({sign}{abs(delta / baseline) * 100:.1f}%)".replace(".0%", "%")
    direction = result.get("direction")
    if direction in ("higher", "lower"):
        better = (delta > 0) == (direction == "higher")
        text += " better" if better else " worse"
    interval = _dict(result.get("interval"))
    low, high = _float(interval.get("low")), _float(interval.get("high"))
    if low is not None and high is not None:
        text += f" [{_num(low)}, {_num(high)}]"
    return text


def _rule(rule: str, limit: object) -> str:
    form = RULES.get(rule)
    return form.format(_num(limit)) if form else f"{escape(rule)} {_num(limit)}"


def _interval_note(results: Any) -> list[str]:
    confidences = {_float(_dict(r.get("interval")).get("confidence")) for r in results}
    confidences.discard(None)
    if len(confidences) != 1:
        return []
    (confidence,) = confidences
    percent = _num((confidence or 0) * 100)
    return ["", f"In brackets: the {percent}% confidence interval of the change."]


def _num(value: object) -> str:
    """A number as a reviewer reads it: 0.62, 812.5, 3,500; anything else escaped."""
    if value is None:
        return "—"
    number = _float(value)
    if number is None:
        return escape(value, 40)
    if not math.isfinite(number):
        return str(number)
    if abs(number) >= 1000:
        return f"{number:,.0f}"
    return f"{number:.4g}" if abs(number) >= 1 else f"{number:.3g}"


def _count(number: float, noun: str) -> str:
    return f"{_num(number)} {noun}{'' if number == 1 else 's'}"


def _float(value: object) -> float | None:
    """The value if it is a number (a bool is not), else None."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _summary_tag(title: str) -> str:
    # A blank line must follow <summary> for GitHub to render the Markdown inside <details>.
    return f"<details><summary>{title}</summary>"


def _link(text: str, url: str) -> str:
    safe = url.replace(" ", "%20").replace("(", "%28").replace(")", "%29")
    return f"[{text}]({safe})"


def _failing_first(items: Any) -> list[tuple[str, Mapping[str, Any]]]:
    rows = [(str(name), _dict(result)) for name, result in items]
    return sorted(rows, key=lambda row: row[1].get("status") not in NOT_PASSING)


def _dict(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _text(value: object) -> str:
    """A string as is; anything else (an input may be an object) as compact JSON."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
