"""Scoring a run: every record through the registry, aggregated overall, per slice and per case.

The one definition of "passed": a run passed when ``agent.task_success`` is 1; a case passed
when it succeeded in most of its repeats (its mean ``agent.task_success`` ≥ 0.5).
"""

from __future__ import annotations

from collections.abc import ItemsView, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import overload

import numpy as np

from gate.load.dataset import Case
from gate.metrics import Columns, failures, parse_metric
from gate.metrics.batch import Batch
from gate.metrics.statistic import depends_on_runs
from gate.run.records import Record

SUCCESS = "agent.task_success"
"""The metric that says whether a run, and a case, passed."""


def run_passed(record: Record) -> bool:
    """One run passed: no error and every check its case defines passed."""
    return record.scores.get(SUCCESS) == 1.0


@overload
def case_passed(success: float) -> bool: ...
@overload
def case_passed(success: np.ndarray) -> np.ndarray: ...
def case_passed(success: float | np.ndarray) -> bool | np.ndarray:
    """A case passed when it succeeded in most of its repeats (mean task success ≥ 0.5); for
    an array of cases, whether each did."""
    return success >= 0.5


def score(batch: Batch, names: list[str]) -> dict[str, np.ndarray]:
    """Per-record scores for every metric named (and the ones their aggregates depend on)."""
    rows: dict[str, np.ndarray] = {}
    for name in names:
        metric = parse_metric(name)
        for dependency in metric.spec.depends_on:
            if dependency not in rows:
                rows[dependency] = parse_metric(dependency).scores(batch)
        rows[name] = metric.scores(batch)
    return rows


def aggregate(name: str, rows: Columns, mask: np.ndarray | None = None) -> tuple[float | None, int]:
    """A metric's aggregate value and its n (records measured), over the rows in ``mask``."""
    spec = parse_metric(name).spec
    # Only the columns this aggregate reads are cut to the mask (not every metric's, per slice).
    needed = (name, *spec.depends_on)
    columns = rows if mask is None else {key: rows[key][mask] for key in needed}
    values = columns[name]
    n = int(np.count_nonzero(~np.isnan(values)))
    return (spec.aggregate(values, columns) if n else None), n


class RunScores(Mapping[str, float]):
    """One run's scores (rounded to 6 places), the metrics that measure it only: a row of the
    run's score table (records × metrics), so that 100,000 records keep no dict each."""

    __slots__ = ("_names", "_row", "_table")

    def __init__(self, names: Mapping[str, int], table: np.ndarray, row: int) -> None:
        self._names = names
        self._table = table
        self._row = row

    def _measured(self) -> dict[str, float]:
        values = self._table[self._row].tolist()
        return {name: v for name, v in zip(self._names, values, strict=True) if v == v}

    def __getitem__(self, name: str) -> float:
        value = float(self._table[self._row, self._names[name]])
        if value != value:
            raise KeyError(name)
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self._measured())

    def __len__(self) -> int:
        return len(self._measured())

    def items(self) -> ItemsView[str, float]:
        return self._measured().items()


@dataclass(frozen=True, kw_only=True)
class Scored:
    """Metric values overall, per slice, and per case (the mean over repeats)."""

    names: list[str]
    overall: dict[str, tuple[float | None, int]]
    slices: dict[str, dict[str, tuple[float | None, int]]]
    case_ids: list[str]
    case_scores: dict[str, np.ndarray]
    """``case_scores[name][i]``: case ``case_ids[i]``'s mean over its repeats, rounded to 6
    places; NaN where no run of the case measures ``name``."""
    records: list[Record]
    runs: int = 1
    """Runs per case: the per-case scores are means of this many."""
    first_run: dict[str, np.ndarray] = field(default_factory=dict)
    """With more than one run per case, the first run's per-case values of each metric whose
    statistic depends on runs per case (a percentile), aligned like ``case_scores``."""

    def measured(self, name: str) -> dict[str, float]:
        """Case id → its score on ``name``, for the cases that measure it."""
        column = self.case_scores[name].tolist()
        return {case_id: v for case_id, v in zip(self.case_ids, column, strict=True) if v == v}


def score_records(cases: list[Case], records: list[Record], names: list[str]) -> Scored:
    """Score every record (run i of some case) on ``names``; slices are the cases' tags."""
    by_id = {case.id: case for case in cases}
    batch = Batch([by_id[r.case_id] for r in records], records)
    rows = score(batch, names)
    modes = failures.modes(batch)
    table = np.round(np.column_stack([rows[n] for n in names]), 6) if names else None
    columns = {name: j for j, name in enumerate(names)}
    scored_records = [
        replace(
            record,
            scores={} if table is None else RunScores(columns, table, i),
            failure_modes=modes[i],
        )
        for i, record in enumerate(records)
    ]
    overall = {name: aggregate(name, rows) for name in names}
    tags = sorted({tag for case in cases for tag in case.tags})
    masks = {tag: np.zeros(len(records), dtype=bool) for tag in tags}
    for i, case in enumerate(batch.cases):
        for tag in case.tags:
            masks[tag][i] = True
    slices = {tag: {name: aggregate(name, rows, masks[tag]) for name in names} for tag in tags}
    # Each case's mean over its repeats, for every metric at once: sums and counts per case.
    position = {case.id: i for i, case in enumerate(cases)}
    index = np.array([position[r.case_id] for r in records], dtype=np.intp)
    size = len(cases)
    case_scores = {}
    for name in names:
        values = rows[name]
        measured = ~np.isnan(values)
        counts = np.bincount(index[measured], minlength=size)
        sums = np.bincount(index[measured], weights=values[measured], minlength=size)
        with np.errstate(invalid="ignore", divide="ignore"):
            case_scores[name] = np.round(np.where(counts > 0, sums / counts, np.nan), 6)
    repeat = np.array([r.repeat for r in records], dtype=np.intp)
    runs = int(repeat.max()) + 1 if repeat.size else 1
    first_run = {}
    if runs > 1:
        first = repeat == 0
        for name in names:
            if depends_on_runs(parse_metric(name).spec.statistic):
                column = np.full(size, np.nan)
                column[index[first]] = np.round(rows[name][first], 6)
                first_run[name] = column
    return Scored(
        names=names,
        overall=overall,
        slices=slices,
        case_ids=[case.id for case in cases],
        case_scores=case_scores,
        records=scored_records,
        runs=runs,
        first_run=first_run,
    )
