"""How the golden set moved since the baseline: which cases the comparison can pair."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gate.load.baseline import Baseline
from gate.load.dataset import Case


@dataclass(frozen=True, kw_only=True)
class Drift:
    """How the golden set moved since the baseline."""

    added: list[str]
    removed: list[str]
    changed: list[str]
    """Same id, different content: left out of the paired comparison."""
    shared: list[str]
    """Unchanged cases in both: the ones comparisons are paired on."""

    def to_json(self) -> dict[str, Any]:
        return {
            "added": self.added,
            "removed": self.removed,
            "changed": self.changed,
            "shared": len(self.shared),
        }


def drift(cases: list[Case], baseline: Baseline) -> Drift:
    stored = baseline.case_scores
    before = dict(zip(stored.ids, stored.fingerprints, strict=True))
    now = {case.id: case.fingerprint() for case in cases}
    return Drift(
        added=[i for i in now if i not in before],
        removed=[i for i in before if i not in now],
        changed=[i for i in now if i in before and before[i] != now[i]],
        shared=[i for i in now if i in before and before[i] == now[i]],
    )
