"""Is the baseline still the bar? Its age and what changed since it was made.

Pure: a baseline that is older than ``comparison.baseline_max_age_days``, or was built by another
gate version, pipeline or golden set, is stale: the report says so, the verdict does not change.
"""

from __future__ import annotations

from datetime import datetime

from gate.load.baseline import Baseline


def _moment(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def age_days(created_at: str, now: str) -> int | None:
    """Whole days from ``created_at`` to ``now`` (ISO times), None when either is unreadable."""
    start, end = _moment(created_at), _moment(now)
    if start is None or end is None or start.tzinfo is None or end.tzinfo is None:
        return None
    return (end - start).days


def stale_reasons(
    baseline: Baseline,
    *,
    now: str,
    max_age_days: int,
    gate_version: str,
    pipeline_fingerprint: str,
    dataset_fingerprint: str,
) -> list[str]:
    """Why the baseline no longer describes what is measured now; empty when it does."""
    reasons = []
    age = age_days(baseline.created_at, now)
    if age is not None and age > max_age_days:
        reasons.append(f"{age} days old (older than {max_age_days})")
    if baseline.gate_version != gate_version:
        reasons.append(f"built by gate {baseline.gate_version}, this is {gate_version}")
    if baseline.pipeline_fingerprint != pipeline_fingerprint:
        reasons.append("built with another pipeline or metrics config")
    if baseline.dataset_fingerprint != dataset_fingerprint:
        reasons.append("built on another golden set")
    return reasons
