"""``report.html``: the report as one self-contained page for the run's artifact.

Pure: a report dict in, HTML out. Nothing is fetched (no script, no stylesheet, no font, no
image from anywhere: a Content-Security-Policy says so to the browser too); the charts are inline
SVG drawn from numbers; every string from the report (case text, metric and slice names, reasons)
goes through ``html.escape``, since the report may come from an untrusted run.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

from gate.render.trends import finite

CSP = "default-src 'none'; style-src 'unsafe-inline'"
MAX_BARS = 60
"""Slice deltas drawn, worst first."""
MAX_CASES = 200
STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:72rem;color:#1f2328;
padding:0 1rem}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #d0d7de}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #d0d7de;padding:.25rem .5rem;
text-align:left;vertical-align:top}th{background:#f6f8fa}.pass{color:#1a7f37}.fail{color:#cf222e}
.charts{display:flex;flex-wrap:wrap;gap:1rem}figure{margin:0}figcaption{font-size:.85rem}
.warn{background:#fff8c5;border:1px solid #d4a72c;padding:.5rem}td.text{max-width:28rem;
overflow-wrap:anywhere}
"""


def esc(value: object) -> str:
    return html.escape(value if isinstance(value, str) else str(value), quote=True)


def _num(value: object) -> str:
    numbers = finite([value])
    return "—" if numbers[0] is None else f"{numbers[0]:.4g}"


def _dict(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def line_chart(title: str, values: Sequence[object], width: int = 320, height: int = 90) -> str:
    """An SVG line of the runs' values, oldest left, its lowest and highest value labelled."""
    numbers = finite(values)
    points = [(i, v) for i, v in enumerate(numbers) if v is not None]
    if not points:
        return ""
    low, high = min(v for _, v in points), max(v for _, v in points)
    span = (high - low) or 1.0
    step = (width - 60) / max(len(numbers) - 1, 1)

    def xy(i: int, v: float) -> str:
        return f"{50 + i * step:.1f},{10 + (height - 20) * (1 - (v - low) / span):.1f}"

    path = " ".join(xy(i, v) for i, v in points)
    dots = "".join(
        f'<circle cx="{xy(i, v).split(",")[0]}" cy="{xy(i, v).split(",")[1]}" r="2.5"/>'
        for i, v in points
    )
    return (
        f'<figure><svg width="{width}" height="{height}" '
        f'role="img" aria-label="{esc(title)}"><title>{esc(title)}</title>'
        f'<rect width="{width}" height="{height}" fill="#f6f8fa"/>'
        f'<text x="4" y="14" font-size="10">{_num(high)}</text>'
        f'<text x="4" y="{height - 4}" font-size="10">{_num(low)}</text>'
        f'<polyline fill="none" stroke="#0969da" stroke-width="2" points="{path}"/>'
        f'<g fill="#0969da">{dots}</g></svg>'
        f"<figcaption>{esc(title)} · {len(points)} runs</figcaption></figure>"
    )


def delta_bars(rows: Sequence[tuple[str, float, float | None, bool]], width: int = 720) -> str:
    """Horizontal bars of deltas around a centre line, each as a share of its baseline (metrics
    in ms and in rates side by side); red when worse, green when better."""
    if not rows:
        return ""

    def share(delta: float, before: float | None) -> float:
        return delta / abs(before) if before else delta

    biggest = max(abs(share(d, b)) for _, d, b, _ in rows) or 1.0
    height = 22 * len(rows) + 10
    middle, half = width * 0.55, width * 0.25
    bars = []
    for i, (label, delta, before, worse) in enumerate(rows):
        size = abs(share(delta, before)) / biggest * half
        x = middle - size if delta < 0 else middle
        y = 5 + i * 22
        colour = "#cf222e" if worse else "#1a7f37"
        relative = f" ({delta / abs(before):+.1%})" if before else ""
        bars.append(
            f'<text x="4" y="{y + 14}" font-size="11">{esc(label)}</text>'
            f'<rect x="{x:.1f}" y="{y + 3}" width="{max(size, 1):.1f}" height="14" '
            f'fill="{colour}"/><text x="{width - 4}" y="{y + 14}" font-size="11" '
            f'text-anchor="end">{delta:+.4g}{relative}</text>'
        )
    return (
        f'<svg width="{width}" height="{height}" role="img" aria-label="deltas against the '
        f'baseline"><title>deltas against the baseline</title><line x1="{middle}" y1="0" '
        f'x2="{middle}" y2="{height}" stroke="#8c959f"/>{"".join(bars)}</svg>'
    )


def _slice_deltas(report: Mapping[str, Any]) -> list[tuple[str, float, float | None, bool]]:
    rows = []
    for tag, metrics in _dict(report.get("slices")).items():
        for name, result in _dict(metrics).items():
            entry = _dict(result)
            delta, before = finite([entry.get("delta"), entry.get("baseline")])
            if delta is None or delta == 0:
                continue
            worse = (delta < 0) == (entry.get("direction") == "higher")
            rows.append((f"[{tag}] {name}", delta, before, worse))
    rows.sort(key=lambda row: (not row[3], -abs(row[1] / row[2] if row[2] else row[1])))
    return rows[:MAX_BARS]


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _cell(value: object, css: str = "") -> str:
    attribute = f' class="{css}"' if css else ""
    return f"<td{attribute}>{esc(value)}</td>"


def _cases(title: str, cases: list[Any]) -> str:
    rows = [
        [
            _cell(c.get("id")),
            _cell(", ".join(map(str, _list(c.get("tags"))))),
            _cell(", ".join(map(str, _list(c.get("failure_modes"))))),
            _cell(c.get("input", ""), "text"),
            _cell(c.get("answer", ""), "text"),
        ]
        for c in (_dict(item) for item in cases[:MAX_CASES])
    ]
    if not rows:
        return ""
    more = (
        f"<p>… and {len(cases) - MAX_CASES} more in report.json</p>"
        if len(cases) > MAX_CASES
        else ""
    )
    header = ["case", "tags", "failure modes", "input", "answer"]
    return f"<h2>{esc(title)} ({len(cases)})</h2>{_table(header, rows)}{more}"


def _css(status: object) -> str:
    return "fail" if status == "fail" else "pass" if status == "pass" else ""


def render_html(report: Mapping[str, Any], timeline: Sequence[Mapping[str, str]] = ()) -> str:
    """The whole page; ``timeline`` is the launch's gates in order (``gate.launch``), shown as
    a status bar under the verdict."""
    verdict = str(report.get("verdict", "?"))
    baseline = _dict(report.get("baseline"))
    parts = [
        f"<h1>gate: <span class='{_css(verdict)}'>{esc(verdict)}</span></h1>",
        f"<p>{esc(report.get('summary', ''))}</p>",
    ]
    if timeline:
        steps = [
            f"<span class='{_css(str(step.get('status')))}' title='{esc(step.get('detail', ''))}'>"
            f"{esc(step.get('step', ''))}: {esc(step.get('status', ''))}</span>"
            for step in timeline
        ]
        parts.append(f"<p class='timeline'>Launch: {' → '.join(steps)}</p>")
    source = [f"baseline {esc(baseline.get('status', '?'))}"]
    if baseline.get("git_sha"):
        source.append(f"of {esc(str(baseline['git_sha'])[:12])}")
    if baseline.get("created_at"):
        source.append(f"made {esc(baseline['created_at'])}")
    if isinstance(baseline.get("age_days"), int):
        source.append(f"({baseline['age_days']} days old)")
    blessing = _dict(baseline.get("blessing"))
    if blessing.get("actor"):
        source.append(f"blessed by {esc(blessing['actor'])}: “{esc(blessing.get('reason', ''))}”")
    parts.append(f"<p>{' '.join(source)}</p>")
    stale = [esc(reason) for reason in _list(baseline.get("stale"))]
    if stale:
        parts.append(f"<p class='warn'>Stale baseline: {'; '.join(stale)}.</p>")
    trends = _dict(report.get("trends"))
    charts = [
        line_chart(str(name), _list(values))
        for name, values in _dict(trends.get("metrics")).items()
    ]
    if any(charts):
        parts.append(
            f"<h2>Trends: the last {esc(trends.get('runs', '?'))} runs on the default branch</h2>"
        )
        parts.append(f"<div class='charts'>{''.join(charts)}</div>")
    bars = delta_bars(_slice_deltas(report))
    if bars:
        parts.append("<h2>Per-slice deltas against the baseline</h2>" + bars)
    flips = _dict(report.get("flips"))
    parts.append(
        _cases("Regressed cases (passed in the baseline, fail now)", _list(flips.get("regressed")))
    )
    parts.append(_cases("Fixed cases", _list(flips.get("fixed"))))
    parts.append(_cases("Failing cases", _list(_dict(report.get("cases")).get("failing"))))
    metrics = _dict(report.get("metrics"))
    if metrics:
        rows = [
            [
                _cell(name),
                _cell(_num(_dict(r).get("value"))),
                _cell(_num(_dict(r).get("baseline"))),
                _cell(_num(_dict(r).get("delta"))),
                _cell(
                    _dict(r).get("status", ""), "fail" if _dict(r).get("status") == "fail" else ""
                ),
            ]
            for name, r in metrics.items()
        ]
        parts.append(
            "<h2>Metrics</h2>" + _table(["metric", "value", "baseline", "Δ", "status"], rows)
        )
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<meta http-equiv='Content-Security-Policy' content=\"{CSP}\">"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>gate report: {esc(verdict)}</title><style>{STYLE}</style></head><body>"
        + "\n".join(part for part in parts if part)
        + f"\n<footer><p>gate {esc(report.get('gate_version', ''))}</p></footer></body></html>\n"
    )
