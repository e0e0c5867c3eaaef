"""Scoring a run: every record through the registry, aggregated overall, per slice and per case.

Records are scored a chunk at a time as they come (``Tally``), and only what the verdict and the
report read of each is kept (``Run``): its scores as a row of one table, its failure modes, and
its answer as the report quotes it. Its output goes no further than records.jsonl.

The one definition of "passed": a run passed when ``agent.task_success`` is 1; a case passed
when it succeeded in most of its repeats (its mean ``agent.task_success`` ≥ 0.5).
"""

from __future__ import annotations

import math
from collections.abc import ItemsView, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import overload

import numpy as np

from gate.load.dataset import Case
from gate.metrics import Columns, failures, parse_metric
from gate.metrics.batch import Batch
from gate.metrics.statistic import depends_on_runs
from gate.run.records import Record, Status
from gate.scrub import DEFAULT_SCRUBBER, Scrubber

SUCCESS = "agent.task_success"
"""The metric that says whether a run, and a case, passed."""


ANSWER_KEPT = 1000
"""Characters of a run's answer kept after scoring (scrubbed first): more than the report
quotes (gate.render.report.EXCERPT)."""


def run_passed(record: Run) -> bool:
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

    __slots__ = ("_names", "_rounded", "_row", "_table")

    def __init__(self, names: Mapping[str, int], table: np.ndarray, row: int) -> None:
        """``table``'s first ``len(names)`` columns are the named metrics', already rounded."""
        self._names = names
        self._table = table
        self._row = row
        self._rounded = True

    def moved(self, table: np.ndarray, row: int) -> None:
        """Read from now on from ``table`` (its first columns ``names``, not rounded)."""
        self._table, self._row, self._rounded = table, row, False

    def _measured(self) -> dict[str, float]:
        values = self._table[self._row, : len(self._names)]
        listed = (values if self._rounded else np.round(values, 6)).tolist()
        return {name: v for name, v in zip(self._names, listed, strict=True) if v == v}

    def __getitem__(self, name: str) -> float:
        value = float(self._table[self._row, self._names[name]])
        if value != value:
            raise KeyError(name)
        return value if self._rounded else _rounded(value)

    def __iter__(self) -> Iterator[str]:
        return iter(self._measured())

    def __len__(self) -> int:
        return len(self._measured())

    def items(self) -> ItemsView[str, float]:
        return self._measured().items()


def _rounded(value: float) -> float:
    """``np.round(value, 6)`` for one finite value, without numpy's cost per call: the same
    steps (scaled, rounded half to even, scaled back), checked equal on 1.4 million values."""
    scaled = value * 1e6
    return round(scaled) / 1e6 if math.isfinite(scaled) else value


@dataclass(frozen=True, slots=True)
class Run:
    """What is kept of one run once it is scored: what the verdict and the report read."""

    case_id: str
    repeat: int
    status: Status
    error: str | None
    failure_modes: tuple[str, ...]
    scores: RunScores
    answer: str
    """Its answer scrubbed, then cut to ``ANSWER_KEPT`` characters."""


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
    records: list[Run]
    """Every run, in dataset order, repeat after repeat."""
    runs: int = 1
    """Runs per case: the per-case scores are means of this many."""
    first_run: dict[str, np.ndarray] = field(default_factory=dict)
    """With more than one run per case, the first run's per-case values of each metric whose
    statistic depends on runs per case (a percentile), aligned like ``case_scores``."""

    def measured(self, name: str) -> dict[str, float]:
        """Case id → its score on ``name``, for the cases that measure it."""
        column = self.case_scores[name].tolist()
        return {case_id: v for case_id, v in zip(self.case_ids, column, strict=True) if v == v}


def _columns(names: list[str]) -> list[str]:
    """The per-record columns the aggregates of ``names`` read: theirs and their dependencies."""
    needed = dict.fromkeys(names)
    for name in names:
        needed.update(dict.fromkeys(parse_metric(name).spec.depends_on))
    return list(needed)


class Tally:
    """Scores a run's records a chunk at a time, in any order, into one table laid out in
    dataset order (row ``repeat × cases + position``), and keeps of each record only its ``Run``;
    ``scored`` aggregates the table."""

    def __init__(
        self, cases: list[Case], names: list[str], scrub: Scrubber = DEFAULT_SCRUBBER
    ) -> None:
        """``scrub`` cleans the answers kept (the run's scrubber: it knows its secrets)."""
        self._cases = cases
        self._names = names
        self._scrub = scrub
        self._position = {case.id: i for i, case in enumerate(cases)}
        self._table_columns = {name: j for j, name in enumerate(names)}
        self._keys = _columns(names)
        """The table's columns: ``names`` first, then what their aggregates also read."""
        self._table = np.empty((0, len(self._keys)), order="F")
        """Every run's scores as measured (not rounded), a contiguous column per key; made for
        whole repeats of the cases as they come (a second stage adds rows)."""
        self._runs: list[Run | None] = []
        """The runs by their row of the table; None where none has come yet."""
        self._fresh: list[tuple[int, Run]] = []
        """The last chunk's runs (and their rows), reading a rounded copy of their scores."""

    def add(self, records: Sequence[Record]) -> list[Run]:
        """Score ``records`` (runs of this tally's cases, each case and repeat once)."""
        if not records:
            return []
        self._settle()
        size = len(self._cases)
        position = [self._position[r.case_id] for r in records]
        batch = Batch([self._cases[i] for i in position], list(records))
        rows = score(batch, self._names)
        modes = failures.modes(batch)
        repeat = np.fromiter((r.repeat for r in records), dtype=np.intp, count=len(records))
        index = repeat * size + np.array(position, dtype=np.intp)
        self._grow(size * (int(repeat.max()) + 1))
        at = index.tolist()
        if len(set(at)) < len(at) or any(self._runs[row] is not None for row in at):
            raise ValueError("a case's run scored twice (each case and repeat is scored once)")
        for j, key in enumerate(self._keys):
            self._table[index, j] = rows[key]
        # Rounded at once for the whole chunk while its lines are written (``Recorder``); by the
        # next chunk its runs read the table (rounded when read) and this copy goes.
        rounded = np.round(self._table[index, : len(self._names)], 6)
        cut = self._scrub.cut
        runs = [
            Run(
                record.case_id,
                record.repeat,
                record.status,
                record.error,
                modes[i],
                RunScores(self._table_columns, rounded, i),
                cut(record.output.answer or "", ANSWER_KEPT),
            )
            for i, record in enumerate(records)
        ]
        self._fresh = list(zip(at, runs, strict=True))
        for row, run in self._fresh:
            self._runs[row] = run
        return runs

    def _grow(self, rows: int) -> None:
        """Room in the table for ``rows`` runs (whole repeats of the cases)."""
        old = self._table
        if rows <= len(old):
            return
        table = np.full((rows, len(self._keys)), np.nan, order="F")
        table[: len(old)] = old
        self._table = table
        self._runs.extend([None] * (rows - len(old)))
        for row, run in enumerate(self._runs):
            if run is not None:
                run.scores.moved(table, row)

    def _settle(self) -> None:
        """The last chunk's runs read the table from now on (their scores rounded when read):
        a rounded copy of every chunk was 20 MB at 100k records."""
        for row, run in self._fresh:
            run.scores.moved(self._table, row)
        self._fresh = []

    def scored(self) -> Scored:
        """Every metric overall, per slice (the cases' tags) and per case, from the runs so far."""
        self._settle()
        cases, names = self._cases, self._names
        size = len(cases)
        keys = self._keys
        table = self._table
        index = np.flatnonzero(np.fromiter((r is not None for r in self._runs), dtype=bool))
        runs = [run for run in self._runs if run is not None]
        # Read in place when every row has its run (a whole run); else the rows that have.
        taken = slice(None) if len(index) == len(table) else index
        rows = {key: table[taken, j] for j, key in enumerate(keys)}
        overall = {name: aggregate(name, rows) for name in names}
        case_of = index % max(size, 1)
        repeat = index // max(size, 1)
        tagged: dict[str, np.ndarray] = {}
        for i, case in enumerate(cases):
            for tag in case.tags:
                if tag not in tagged:
                    tagged[tag] = np.zeros(size, dtype=bool)
                tagged[tag][i] = True
        slices = {
            tag: {name: aggregate(name, rows, tagged[tag][case_of]) for name in names}
            for tag in sorted(tagged)
        }
        # Each case's mean over its repeats, for every metric at once: sums and counts per case.
        case_scores = {}
        for name in names:
            values = rows[name]
            measured = ~np.isnan(values)
            counts = np.bincount(case_of[measured], minlength=size)
            sums = np.bincount(case_of[measured], weights=values[measured], minlength=size)
            with np.errstate(invalid="ignore", divide="ignore"):
                case_scores[name] = np.round(np.where(counts > 0, sums / counts, np.nan), 6)
        runs_per_case = int(repeat.max()) + 1 if repeat.size else 1
        first_run = {}
        if runs_per_case > 1:
            first = repeat == 0
            for name in names:
                if depends_on_runs(parse_metric(name).spec.statistic):
                    column = np.full(size, np.nan)
                    column[case_of[first]] = np.round(rows[name][first], 6)
                    first_run[name] = column
        return Scored(
            names=names,
            overall=overall,
            slices=slices,
            case_ids=[case.id for case in cases],
            case_scores=case_scores,
            records=runs,
            runs=runs_per_case,
            first_run=first_run,
        )


def score_records(
    cases: list[Case],
    records: Sequence[Record],
    names: list[str],
    scrub: Scrubber = DEFAULT_SCRUBBER,
) -> Scored:
    """Score every record (run i of some case) on ``names``; slices are the cases' tags."""
    tally = Tally(cases, names, scrub)
    tally.add(records)
    return tally.scored()
