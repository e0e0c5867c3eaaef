"""Review coverage: which outputs in the slices that need a person's approval have one.

Pure: the plan (policy and reviews), each case's output and today's date in, the coverage out.
A case is covered when the latest review of its current output (repeat 0's, by
``output_fingerprint``) approves it and is not older than ``max_age_days``. A changed output is
a new output: its old approval does not carry over.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from gate.decide.compare import CheckResult
from gate.load.reviews import Review, output_fingerprint
from gate.plan import Plan

REVIEW = "review.coverage"
"""The metric name of a review check in the report."""

NO_OUTPUT = object()
"""A case whose repeat 0 produced no output (an error or a timeout)."""


@dataclass(frozen=True)
class Uncovered:
    case_id: str
    reason: str
    fingerprint: str | None
    """Of the current output; None when the run produced none."""


@dataclass(frozen=True)
class SliceCoverage:
    tag: str
    total: int
    missing: list[Uncovered]

    @property
    def reviewed(self) -> int:
        return self.total - len(self.missing)

    def line(self) -> str:
        return f"{self.tag}: {self.reviewed} of {self.total} outputs reviewed"


@dataclass(frozen=True)
class Coverage:
    slices: list[SliceCoverage]
    max_age_days: int | None

    def uncovered(self) -> list[Uncovered]:
        """Each uncovered case once, in golden-set order within the first slice naming it."""
        seen: dict[str, Uncovered] = {}
        for found in self.slices:
            for miss in found.missing:
                seen.setdefault(miss.case_id, miss)
        return list(seen.values())

    def checks(self) -> list[CheckResult]:
        """One check per slice: every output in it approved."""
        out = []
        for found in self.slices:
            shown = ", ".join(f"{m.case_id} ({m.reason})" for m in found.missing[:5])
            more = f", +{len(found.missing) - 5} more" if len(found.missing) > 5 else ""
            reason = found.line() + (f"; missing: {shown}{more}" if found.missing else "")
            out.append(
                CheckResult(
                    metric=REVIEW,
                    slice=found.tag,
                    kind="absolute",
                    rule="review",
                    limit=1.0,
                    value=found.reviewed / found.total if found.total else None,
                    baseline=None,
                    passed=not found.missing,
                    reason=reason,
                )
            )
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "max_age_days": self.max_age_days,
            "slices": {
                s.tag: {
                    "total": s.total,
                    "reviewed": s.reviewed,
                    "missing": [{"id": m.case_id, "reason": m.reason} for m in s.missing],
                }
                for s in self.slices
            },
        }


def coverage(plan: Plan, outputs: Mapping[str, Any], today: date) -> Coverage | None:
    """The coverage of the thresholds' ``review:`` slices; None when they declare none.

    ``outputs`` maps a case id to its repeat-0 output, or ``NO_OUTPUT``.
    """
    policy = plan.thresholds.review
    if policy is None:
        return None
    by_case: dict[str, list[Review]] = {}
    for review in plan.reviews:
        by_case.setdefault(review.case, []).append(review)
    slices = []
    for tag in policy.tags:
        ids = [case.id for case in plan.cases if tag in case.tags]
        missing = []
        for case_id in ids:
            output = outputs.get(case_id, NO_OUTPUT)
            if output is NO_OUTPUT:
                missing.append(Uncovered(case_id, "no output in this run", None))
                continue
            current = output_fingerprint(output)
            reason = _why_uncovered(by_case.get(case_id, []), current, today, policy.max_age_days)
            if reason is not None:
                missing.append(Uncovered(case_id, reason, current))
        slices.append(SliceCoverage(tag, len(ids), missing))
    return Coverage(slices, policy.max_age_days)


def _why_uncovered(
    reviews: list[Review], current: str, today: date, max_age_days: int | None
) -> str | None:
    same = [r for r in reviews if r.fingerprint == current]
    if not same:
        approved = [r for r in reviews if r.verdict == "approve"]
        if not approved:
            return "never reviewed"
        was = latest(approved)
        return f"output changed since {was.reviewer}'s approval of {was.date}"
    last = latest(same)
    if last.verdict == "reject":
        return f"rejected by {last.reviewer} on {last.date}"
    age = (today - last.date).days
    if max_age_days is not None and age > max_age_days:
        return f"approval of {last.date} expired ({age} days old, max {max_age_days})"
    return None


def latest(reviews: list[Review]) -> Review:
    """The most recent review; on the same date, the one written last in the file."""
    return max(enumerate(reviews), key=lambda item: (item[1].date, item[0]))[1]


def last_approved(plan: Plan, case_id: str) -> Review | None:
    """The most recent approval of any output of ``case_id``, for the queue's diff."""
    approved = [r for r in plan.reviews if r.case == case_id and r.verdict == "approve"]
    return latest(approved) if approved else None


def repeat0_outputs(records: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Case id → the output of its first repeat (``NO_OUTPUT`` when it failed), from records
    as ``records.jsonl`` holds them."""
    out: dict[str, Any] = {}
    for record in records:
        if record.get("repeat", 0) == 0:
            ok = record.get("status") == "ok"
            out[str(record.get("id"))] = record.get("output") if ok else NO_OUTPUT
    return out
