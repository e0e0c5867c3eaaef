"""Trends as text: a sparkline for a table cell and a Mermaid ``xychart-beta`` GitHub renders.

Pure. Values come from the history (``report["trends"]``); a report may come from an untrusted
run, so a chart takes numbers only and its title only the characters of a metric name.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

BLOCKS = "▁▂▃▄▅▆▇█"
GAP = "·"
"""A run that did not measure the metric."""
_UNSAFE = re.compile(r"[^\w.@%-]")


def finite(values: Sequence[object]) -> list[float | None]:
    """Numbers as floats, anything else (None, NaN, text) as None."""
    out: list[float | None] = []
    for value in values:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        out.append(float(value) if ok and math.isfinite(value) else None)  # type: ignore[arg-type]
    return out


def sparkline(values: Sequence[object]) -> str:
    """One block a run, scaled between the lowest and highest value shown (flat: mid blocks)."""
    numbers = finite(values)
    known = [v for v in numbers if v is not None]
    if not known:
        return ""
    low, high = min(known), max(known)
    top = len(BLOCKS) - 1
    return "".join(
        GAP
        if v is None
        else BLOCKS[top // 2 if high == low else round((v - low) / (high - low) * top)]
        for v in numbers
    )


def mermaid(title: str, values: Sequence[object]) -> list[str]:
    """A fenced ``xychart-beta`` line chart of the runs' values (unmeasured runs left out)."""
    points = [(i + 1, v) for i, v in enumerate(finite(values)) if v is not None]
    if len(points) < 2:
        return []
    low, high = min(v for _, v in points), max(v for _, v in points)
    pad = (high - low) * 0.1 or abs(high) * 0.1 or 1.0
    return [
        "```mermaid",
        "xychart-beta",
        f'    title "{_UNSAFE.sub("", title)[:80]}"',
        f"    x-axis [{', '.join(str(i) for i, _ in points)}]",
        f'    y-axis "value" {low - pad:.6g} --> {high + pad:.6g}',
        f"    line [{', '.join(f'{v:.6g}' for _, v in points)}]",
        "```",
    ]
