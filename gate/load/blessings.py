"""The regression log: one JSON line per blessed baseline, kept next to the baseline file.

Who blessed it, when, why, from which run, and the deltas it accepted against the baseline it
replaced. Appended by ``gate bless``; its last entry is shown beside the baseline in the report.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gate.errors import BaselineError
from gate.files import write_atomic

MAX_LOG_BYTES = 16 * 1024 * 1024
"""The log is read whole when appended to: a log past this size is not ours."""


def log_path(baseline: Path) -> Path:
    """``thresholds/baseline.json`` → ``thresholds/baseline.log.jsonl``."""
    return baseline.with_name(f"{baseline.stem}.log.jsonl")


def _read(path: Path) -> str:
    try:
        if path.stat().st_size > MAX_LOG_BYTES:
            raise BaselineError(f"{path}: larger than 16 MiB, not a regression log")
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""
    except (OSError, UnicodeDecodeError) as exc:
        raise BaselineError(f"{path}: cannot read the regression log: {exc}") from None


def blessings(path: Path) -> list[dict[str, Any]]:
    """Every entry of the regression log, oldest first (a line that is not an object is left
    out: the log is data a person may have edited)."""
    out = []
    for line in _read(path).splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            out.append(entry)
    return out


def last_blessing(path: Path) -> dict[str, Any] | None:
    """The log's last entry, or None without a log (a line that is not an object: None too,
    the report then shows no blessing rather than a made-up one)."""
    lines = _read(path).strip().splitlines()
    if not lines:
        return None
    try:
        entry = json.loads(lines[-1])
    except ValueError:
        return None
    return entry if isinstance(entry, dict) else None


def append_blessing(path: Path, entry: dict[str, Any]) -> None:
    """Append one entry, in one atomic step (the old lines kept byte for byte)."""
    text = _read(path)
    if text and not text.endswith("\n"):
        text += "\n"
    write_atomic(path, text + json.dumps(entry, sort_keys=True, ensure_ascii=False) + "\n")
