"""The stored baseline: the metrics (and per-case scores) of the run a change is compared with.

Read from the path in gate.yml or ``--baseline``; written only with ``--update-baseline``, in
one atomic step. A missing baseline is not an error: the run applies the absolute bars only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, ValidationError

from gate.errors import BaselineError
from gate.files import write_atomic
from gate.load import strict_json
from gate.load.validation import Strict, capped, describe

SCHEMA_VERSION = 1

Value = Annotated[float, Field(ge=0, allow_inf_nan=False)]
"""Every metric is a finite number ≥ 0 (rates, scores, latencies, costs, tokens): a hand-edited
``-Infinity`` cost or a negative latency would let any real regression pass."""


class CaseEntry(Strict):
    fingerprint: str
    scores: dict[str, Value]
    """Per-case scores, the mean over repeats; a metric the case does not measure is absent."""


class Baseline(Strict):
    schema_version: int
    gate_version: str
    created_at: str
    git_sha: str | None = None
    dataset_fingerprint: str
    pipeline_fingerprint: str
    prompt: dict[str, str] | None = None
    """The pipeline prompt's version and sha256, so a report can say "rag-v3 → rag-v4"."""
    metrics: dict[str, Value | None]
    slices: dict[str, dict[str, Value | None]] = Field(default_factory=dict)
    cases: dict[str, CaseEntry] = Field(default_factory=dict)


def read_baseline(path: Path) -> Baseline | None:
    """The baseline at ``path``, or None when there is none yet."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise BaselineError(f"{path}: cannot read the baseline: {exc}") from None
    return parse_baseline(text, str(path))


def parse_baseline(text: str, path: str) -> Baseline:
    """A baseline from its JSON text (``path`` names where it came from in messages)."""
    try:
        data: Any = strict_json.loads(text)
    except json.JSONDecodeError as exc:
        # The strict reader's own messages already say how to fix the value they refuse.
        fix = "restore it from git, or rewrite it with `gate run --update-baseline`"
        hint = "" if "(fix:" in exc.msg else f" (fix: {fix})"
        raise BaselineError(
            f"{path}:{exc.lineno}: the baseline is not valid JSON: {exc.msg}{hint}"
        ) from None
    version = data.get("schema_version") if isinstance(data, dict) else None
    if version != SCHEMA_VERSION:
        raise BaselineError(
            f"{path}: baseline schema_version is {version!r}, this gate reads {SCHEMA_VERSION} "
            "(fix: rewrite it with `gate run --update-baseline`)"
        )
    try:
        return Baseline.model_validate(data)
    except ValidationError as exc:
        raise BaselineError(capped(describe(exc, Baseline, str(path)), "problems")) from None


def write_baseline(path: Path, baseline: Baseline) -> None:
    """Replace the baseline file atomically: readers never see half of it."""
    body = baseline.model_dump(mode="json", exclude_none=False)
    write_atomic(path, json.dumps(body, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
