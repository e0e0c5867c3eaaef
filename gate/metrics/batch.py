"""The rows a metric scores: record i is one run of case i, with the arrays metrics share."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, TypeVar

import numpy as np

from gate.load.dataset import Case
from gate.metrics.retrieval import Rankings, build_rankings
from gate.run.records import Record

T = TypeVar("T")


@dataclass(frozen=True)
class Batch:
    """The rows to score: record i is a run of case i. Shared structures are built once."""

    cases: list[Case]
    records: list[Record]
    _computed: dict[Callable[[Batch], Any], Any] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def computed(self, fn: Callable[[Batch], T]) -> T:
        """``fn(self)``, computed once: metrics and failure checks share the per-record arrays
        (read-only, so no reader can change another's)."""
        if fn not in self._computed:
            values = fn(self)
            if isinstance(values, np.ndarray):
                values.flags.writeable = False
            self._computed[fn] = values
        result: T = self._computed[fn]
        return result

    @cached_property
    def retrieved_ids(self) -> list[list[str]]:
        """Each run's retrieved ids, listed once for the rankings and the citations."""
        return [r.output.retrieved_ids() for r in self.records]

    @cached_property
    def rankings(self) -> Rankings:
        return build_rankings(self.retrieved_ids, [c.expected.sources for c in self.cases])

    @cached_property
    def answers(self) -> list[str]:
        return [r.output.answer or "" for r in self.records]

    @cached_property
    def failed(self) -> np.ndarray:
        return np.array([r.status != "ok" for r in self.records], dtype=bool)

    def unless_failed(self, scores: np.ndarray) -> np.ndarray:
        """``scores`` with NaN (not measured) for the runs that failed: a run that produced
        nothing has nothing to judge, and must never score a success by default (an absent
        answer "includes no forbidden phrase"). Its failure counts in ``ops.error_rate``,
        ``agent.task_success`` and the error budget instead."""
        return np.where(self.failed, np.nan, scores)
