"""The history of the default branch: one compact entry per run, and the trends read from it.

Pure: entries are built from a report, appended to and parsed from the text of a JSON Lines file
(the action keeps it on a data branch of the repository, see ``gate.publish.data_branch``), and
the trends of the gated metrics are read back for the comment, the summary and report.html.

An entry: ``{"v": 1, "commit", "date", "event", "verdict", "config", "pipeline", "dataset",
"metrics": {name: value}, "slices": {tag: {name: value}}, "cases": total, "failing": [ids],
"flaky": [ids], "cost": {...}}``; failing case ids rather than one flag a case keep it short.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from gate.plan import NoiseFloor

VERSION = 1
KEEP = 1000
"""Entries kept in the file; older ones are dropped as new ones arrive."""
TREND_RUNS = 30
"""Runs on the default branch a trend shows."""


def file_name(config: str) -> str:
    """The history file of one config on the data branch: ``gate.yml`` → ``gate.yml.jsonl``."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in config) + ".jsonl"


def _values(metrics: object) -> dict[str, float | None]:
    if not isinstance(metrics, Mapping):
        return {}
    return {
        str(name): result.get("value")
        for name, result in metrics.items()
        if isinstance(result, Mapping) and _number(result.get("value")) is not None
    }


def entry(
    report: Mapping[str, Any], *, event: str, commit: str | None, date: str
) -> dict[str, Any]:
    """The history entry of one finished run."""
    cases = report.get("cases") or {}
    metrics = report.get("metrics") or {}
    judge = report.get("judge") or {}
    cost_metric = metrics.get("ops.cost_per_success_usd") or {}
    return {
        "v": VERSION,
        "commit": commit,
        "date": date,
        "event": event,
        "verdict": report.get("verdict"),
        "config": report.get("config"),
        "pipeline": (report.get("pipeline") or {}).get("fingerprint"),
        "dataset": (report.get("dataset") or {}).get("fingerprint"),
        "metrics": _values(metrics),
        "slices": {
            str(tag): _values(values) for tag, values in (report.get("slices") or {}).items()
        },
        "cases": cases.get("total"),
        "repeats": (report.get("run") or {}).get("repeats"),
        "failing": [c["id"] for c in cases.get("failing") or [] if isinstance(c, Mapping)],
        "flaky": list((report.get("flaky") or {}).get("cases") or []),
        "cost": {
            "per_success_usd": cost_metric.get("value"),
            "judge_usd": judge.get("cost_usd") if isinstance(judge, Mapping) else None,
        },
    }


def parse(text: str) -> list[dict[str, Any]]:
    """The entries of a history file, oldest first; a line that is not an entry is skipped
    (anyone who can push to the data branch wrote it: it is data, never trusted further)."""
    out = []
    for line in text.splitlines():
        try:
            item = json.loads(line)
        except ValueError:
            continue
        if isinstance(item, dict) and isinstance(item.get("metrics"), dict):
            out.append(item)
    return out


def append(text: str, new: Mapping[str, Any], keep: int = KEEP) -> str:
    """The history file's text with ``new`` appended, the oldest lines dropped past ``keep``."""
    lines = [line for line in text.splitlines() if line.strip()]
    lines.append(json.dumps(new, sort_keys=True, ensure_ascii=False, separators=(",", ":")))
    return "\n".join(lines[-keep:]) + "\n"


def _number(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def gated(report: Mapping[str, Any]) -> list[str]:
    """The overall metrics a threshold rule applies to, in the report's order."""
    metrics = report.get("metrics") or {}
    return [
        str(name)
        for name, result in metrics.items()
        if isinstance(result, Mapping) and result.get("rules")
    ]


def trends(
    entries: Sequence[Mapping[str, Any]], names: Sequence[str], runs: int = TREND_RUNS
) -> dict[str, Any]:
    """The last ``runs`` entries' values of each metric in ``names`` (None where a run did not
    measure it), with each run's short commit and date: the report's ``trends``."""
    last = list(entries)[-runs:]
    return {
        "runs": len(last),
        "commits": [str(e.get("commit") or "")[:7] for e in last],
        "dates": [str(e.get("date") or "")[:10] for e in last],
        "metrics": {
            name: [_number((e.get("metrics") or {}).get(name)) for e in last] for name in names
        },
    }


def _same_code(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return all(a.get(key) == b.get(key) for key in ("commit", "pipeline", "dataset"))


def night_flips(entries: Sequence[Mapping[str, Any]]) -> list[set[str]]:
    """The cases that flipped in each nightly (``schedule``) run, oldest first: those whose
    repeats disagreed, and those whose pass/fail changed since the previous night on the same
    commit, pipeline and golden set (an A/A comparison: nothing changed but chance)."""
    out: list[set[str]] = []
    previous: Mapping[str, Any] | None = None
    for night in (e for e in entries if e.get("event") == "schedule"):
        flipped = {str(i) for i in night.get("flaky") or []}
        if previous is not None and _same_code(previous, night):
            flipped |= {str(i) for i in previous.get("failing") or []} ^ {
                str(i) for i in night.get("failing") or []
            }
        out.append(flipped)
        previous = night
    return out


def quarantined(entries: Sequence[Mapping[str, Any]], flips: int, nights: int) -> dict[str, str]:
    """Cases that flipped in at least ``flips`` of the last ``nights`` nights, each with its
    flips over those nights ("0110", newest last). A case leaves once ``nights`` nights pass
    with fewer flips: after ``nights`` stable nights at the latest."""
    window = night_flips(entries)[-nights:]
    ids = sorted(set().union(*window)) if window else []
    marks = {i: "".join("1" if i in night else "0" for night in window) for i in ids}
    return {i: mark for i, mark in marks.items() if mark.count("1") >= flips}


def noise_floor(entries: Sequence[Mapping[str, Any]], nights: int) -> NoiseFloor | None:
    """The changes of every metric, overall and per slice, between consecutive nightly runs on
    the same commit, pipeline and golden set (with as many runs per case as the last night),
    over the last ``nights`` nights; None when no pair of nights qualifies."""
    window = [e for e in entries if e.get("event") == "schedule"][-nights:]
    if not window:
        return None
    runs = _runs(window[-1])
    squares: dict[tuple[str | None, str], list[float]] = {}
    used: set[int] = set()
    for k in range(1, len(window)):
        before, after = window[k - 1], window[k]
        if not _same_code(before, after) or _runs(before) != runs or _runs(after) != runs:
            continue
        used |= {k - 1, k}
        then = _keyed(before)
        for key, value in _keyed(after).items():
            old = then.get(key)
            if value is not None and old is not None:
                squares.setdefault(key, []).append((value - old) ** 2)
    if not squares:
        return None
    return NoiseFloor(
        nights=tuple(str(window[k].get("date") or "")[:10] for k in sorted(used)),
        runs=runs,
        changes={key: (sum(v) / len(v), len(v)) for key, v in squares.items()},
    )


def _runs(entry: Mapping[str, Any]) -> int:
    runs = entry.get("repeats")
    return runs if isinstance(runs, int) and not isinstance(runs, bool) and runs > 0 else 1


def _keyed(entry: Mapping[str, Any]) -> dict[tuple[str | None, str], float | None]:
    out: dict[tuple[str | None, str], float | None] = {
        (None, str(name)): _number(value) for name, value in (entry.get("metrics") or {}).items()
    }
    for tag, values in (entry.get("slices") or {}).items():
        if isinstance(values, Mapping):
            out |= {(str(tag), str(name)): _number(value) for name, value in values.items()}
    return out
