"""The stored baseline: the metrics (and per-case scores) of the run a change is compared with.

Read from the path in gate.yml or ``--baseline``; written only with ``--update-baseline``, in
one atomic step. A missing baseline is not an error: the run applies the absolute bars only.

The file is columnar (schema 2): the case ids once, the case fingerprints as one array aligned
with them, and one array of per-case scores per metric (null where the case does not measure
it; a metric no case measures is left out). A metric whose per-case scores equal another's (the
latency percentiles share the case's latency) names that metric instead of repeating the array.
Keys are sorted and every array is one line, so ``git diff`` of two baselines shows which
metrics moved. Schema 1 (one object per case) still reads, with a note to rewrite it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ConfigDict, Field, ValidationError, model_validator

from gate.errors import BaselineError
from gate.files import to_json, write_atomic
from gate.load import strict_json
from gate.load.validation import Strict, capped, describe

SCHEMA_VERSION = 2
LEGACY_VERSION = 1
REWRITE = "rewrite it with `gate run --update-baseline`"


class CaseEntry(Strict):
    """One case of the baseline, as the comparisons look it up by id."""

    fingerprint: str
    scores: dict[str, float]
    """Per-case scores, the mean over repeats; a metric the case does not measure is absent."""


@dataclass(frozen=True, eq=False)
class CaseScores:
    """Per-case scores as columns: ``columns[name][i]`` is case ``ids[i]``'s score (NaN where
    the case does not measure ``name``), the mean over its repeats."""

    ids: tuple[str, ...] = ()
    fingerprints: tuple[str, ...] = ()
    columns: Mapping[str, np.ndarray] = field(default_factory=dict)

    @cached_property
    def position(self) -> dict[str, int]:
        return {case_id: i for i, case_id in enumerate(self.ids)}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CaseScores):
            return NotImplemented
        return (
            self.ids == other.ids
            and self.fingerprints == other.fingerprints
            and sorted(self.columns) == sorted(other.columns)
            and all(
                np.array_equal(v, other.columns[k], equal_nan=True) for k, v in self.columns.items()
            )
        )

    def entries(self) -> dict[str, CaseEntry]:
        lists = {name: column.tolist() for name, column in self.columns.items()}
        return {
            case_id: CaseEntry.model_construct(
                fingerprint=self.fingerprints[i],
                scores={n: v[i] for n, v in lists.items() if not math.isnan(v[i])},
            )
            for i, case_id in enumerate(self.ids)
        }

    @classmethod
    def from_entries(cls, cases: Mapping[str, CaseEntry]) -> CaseScores:
        names = sorted({name for entry in cases.values() for name in entry.scores})
        return cls(
            ids=tuple(cases),
            fingerprints=tuple(entry.fingerprint for entry in cases.values()),
            columns={
                name: np.array([e.scores.get(name, np.nan) for e in cases.values()], dtype=float)
                for name in names
            },
        )


FIRST_RUN = "#run1"
"""``case_scores`` holds ``<metric>#run1`` too, in a baseline of more than one run per case, for
a metric whose statistic depends on runs per case (a percentile): the first run's per-case
values, which a run of one run per case (a second stage's first) is compared with."""


class _About(Strict):
    """What a baseline says about its run, in every schema: all but the per-case scores."""

    schema_version: int
    gate_version: str
    created_at: str
    git_sha: str | None = None
    dataset_fingerprint: str
    pipeline_fingerprint: str
    prompt: dict[str, str] | None = None
    """The pipeline prompt's version and sha256, so a report can say "rag-v3 → rag-v4"."""
    metrics: dict[str, float | None]
    slices: dict[str, dict[str, float | None]] = Field(default_factory=dict)
    repeats: int = Field(1, ge=1)
    """Runs per case the per-case scores are the mean of (1 in files written before it was
    kept): a run with another number of runs per case is not exchangeable with this one."""


class Baseline(_About):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    case_scores: CaseScores = Field(default_factory=CaseScores)
    legacy: bool = Field(False, exclude=True)
    """Read from a schema-1 file: the run says to rewrite it."""

    @model_validator(mode="before")
    @classmethod
    def _cases_by_id(cls, data: Any) -> Any:
        # The per-case objects of schema 1 (and of callers that build a baseline by hand).
        if isinstance(data, dict) and "cases" in data:
            data = dict(data)
            cases = data.pop("cases")
            data["case_scores"] = CaseScores.from_entries(
                {k: v if isinstance(v, CaseEntry) else CaseEntry(**v) for k, v in cases.items()}
            )
        return data

    @cached_property
    def cases(self) -> dict[str, CaseEntry]:
        """The cases by id (built on first use; the columns are ``case_scores``)."""
        return self.case_scores.entries()


class _Header(_About):
    """The file as schema 2 writes it: the case columns as JSON arrays."""

    case_ids: list[str]
    case_fingerprints: list[str]
    case_scores: dict[str, list[float | None] | str]


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
        hint = "" if "(fix:" in exc.msg else f" (fix: restore it from git, or {REWRITE})"
        raise BaselineError(
            f"{path}:{exc.lineno}: the baseline is not valid JSON: {exc.msg}{hint}"
        ) from None
    version = data.get("schema_version") if isinstance(data, dict) else None
    if version == LEGACY_VERSION:
        return _legacy(path, data)
    if version != SCHEMA_VERSION:
        raise BaselineError(
            f"{path}: baseline schema_version is {version!r}, this gate reads {SCHEMA_VERSION} "
            f"(fix: {REWRITE})"
        )
    try:
        header = _Header.model_validate(data)
    except ValidationError as exc:
        raise BaselineError(capped(describe(exc, _Header, str(path)), "problems")) from None
    _check_values(path, header.metrics, header.slices)
    n = len(header.case_ids)
    problems = []
    if len(set(header.case_ids)) != n:
        problems.append(f"{path}: case_ids: an id appears twice")
    if len(header.case_fingerprints) != n:
        problems.append(f"{path}: case_fingerprints: {len(header.case_fingerprints)} for {n} ids")
    columns: dict[str, np.ndarray] = {}
    for name, values in sorted(header.case_scores.items(), key=lambda kv: isinstance(kv[1], str)):
        if isinstance(values, str):
            continue
        if len(values) != n:
            problems.append(f"{path}: case_scores.{name}: {len(values)} values for {n} ids")
            continue
        column = np.array(values, dtype=float)  # null → NaN: the case does not measure it
        bad = np.flatnonzero(~np.isnan(column) & ~((column >= 0) & np.isfinite(column)))
        if bad.size:
            where = f"case_scores.{name}[{bad[0]}]"
            problems.append(_bad_value(path, where, float(column[bad[0]])))
        column.flags.writeable = False
        columns[name] = column
    for name, same_as in header.case_scores.items():
        if isinstance(same_as, str):
            if same_as not in columns:
                problems.append(
                    f"{path}: case_scores.{name}: {same_as!r} is not a metric with scores here"
                )
            else:
                columns[name] = columns[same_as]
    if problems:
        raise BaselineError(capped(problems, "problems"))
    body = header.model_dump(exclude={"case_ids", "case_fingerprints", "case_scores"})
    return Baseline.model_validate(
        {
            **body,
            "case_scores": CaseScores(
                tuple(header.case_ids), tuple(header.case_fingerprints), columns
            ),
        }
    )


def _legacy(path: str, data: dict[str, Any]) -> Baseline:
    try:
        baseline = Baseline.model_validate({**data, "legacy": True})
    except ValidationError as exc:
        raise BaselineError(capped(describe(exc, Baseline, str(path)), "problems")) from None
    _check_values(path, baseline.metrics, baseline.slices)
    for name, column in baseline.case_scores.columns.items():
        bad = np.flatnonzero(~np.isnan(column) & ~((column >= 0) & np.isfinite(column)))
        if bad.size:
            where = f"cases.{baseline.case_scores.ids[bad[0]]}.scores.{name}"
            raise BaselineError(_bad_value(path, where, float(column[bad[0]])))
    return baseline


def _check_values(
    path: str, metrics: dict[str, float | None], slices: dict[str, dict[str, float | None]]
) -> None:
    """Every stored metric is finite and not negative: no metric the gate computes is either."""
    named = [(f"metrics.{k}", v) for k, v in metrics.items()]
    named += [(f"slices.{t}.{k}", v) for t, values in slices.items() for k, v in values.items()]
    for key, value in named:
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise BaselineError(_bad_value(path, key, value))


def _bad_value(path: str, key: str, value: float) -> str:
    return (
        f"{path}: {key}: {value!r} is not a metric value (finite, not negative) "
        f"(fix: restore the file from git, or {REWRITE})"
    )


def write_baseline(path: Path, baseline: Baseline) -> None:
    """Replace the baseline file atomically: readers never see half of it."""
    write_atomic(path, dumps(baseline))


def dumps(baseline: Baseline) -> str:
    """The file's text: sorted keys, an array per line, the same text for the same baseline."""
    header = baseline.model_dump(mode="json", exclude={"case_scores", "legacy"})
    scores = baseline.case_scores
    columns: dict[str, Any] = {}
    written: list[tuple[str, np.ndarray]] = []
    for name in sorted(scores.columns):
        column = scores.columns[name]
        if np.isnan(column).all():
            continue  # no case measures it: absent, as from a case's scores
        same = next((n for n, c in written if np.array_equal(c, column, equal_nan=True)), None)
        if same is not None:
            columns[name] = same
        else:
            written.append((name, column))
            columns[name] = _Raw(_numbers(column))
    body = {
        **header,
        "schema_version": SCHEMA_VERSION,
        # Strings only: nothing to check for NaN (a walk of 100k items each).
        "case_ids": _Raw(_compact(list(scores.ids), finite=False)),
        "case_fingerprints": _Raw(_compact(list(scores.fingerprints), finite=False)),
        "case_scores": columns,
    }
    return _layout(body, 0) + "\n"


class _Raw(str):
    """JSON text already written."""


def _compact(value: Any, *, finite: bool = True) -> str:
    return to_json(value, sort_keys=True, finite=finite).decode()


def _numbers(column: np.ndarray) -> str:
    # NaN is a case the metric does not measure (null); an infinity is no score, and not JSON.
    if np.isinf(column).any():
        raise ValueError("Out of range float values are not JSON compliant: an infinite score")
    # Integral scores (most are 0 or 1) as integers: a third of the bytes of "1.0,".
    values = np.round(column, 6).tolist()
    return _compact(
        [None if v != v else int(v) if v.is_integer() and abs(v) < 2**53 else v for v in values],
        finite=False,
    )


def _layout(value: Any, depth: int) -> str:
    """Objects opened to two levels (a metric per line), everything below on one line."""
    if isinstance(value, _Raw):
        return str(value)
    if not isinstance(value, dict) or depth >= 2 or not value:
        return _compact(value)
    pad = "  " * (depth + 1)
    items = [f"{pad}{_compact(k)}: {_layout(value[k], depth + 1)}" for k in sorted(value)]
    return "{\n" + ",\n".join(items) + "\n" + "  " * depth + "}"


def legacy_note(path: Path | None, baseline: Baseline | None) -> str | None:
    """What to say about a baseline read from the old format; None for any other."""
    if path is None or baseline is None or not baseline.legacy:
        return None
    return (
        f"{path}: the baseline is in the old per-case format (schema {LEGACY_VERSION}); it still "
        f"reads, but {REWRITE} (smaller, with a readable diff)"
    )
