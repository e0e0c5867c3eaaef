"""A second stage where it pays: re-run every case only when the first cannot tell.

Three runs per case decide far more often than one, but triple the calls on every pull request.
With ``comparison.second_stage``, a first stage of one run (``runner.repeats``) decides at a
fifth of the false-alarm budget; when it fails nothing but some regression check is beyond its
tolerance with a family-wise p-value of at most ``RERUN_BELOW``, every case runs ``EXTRA_RUNS``
more times and the per-case means decide with the other four fifths. A pull request fails
falsely only if a stage does, so both together stay within the budget (union bound).
"""

from __future__ import annotations

from gate.decide.verdict import Verdict

EXTRA_RUNS = 2
FIRST_STAGE_SHARE = 0.2
"""Of the false-alarm budget, what the first stage spends; the second spends the rest."""
RERUN_BELOW = 0.5
"""Re-run when the family-wise p-value of a check beyond its tolerance is at most this: some
evidence of a regression, not enough to fail (about half of unchanged pull requests with a few
checks; the family's max-T exceeds its median under no change half the time)."""


def stage_confidences(confidence: float) -> tuple[float, float]:
    """The confidences of the first and the second stage for a gate at ``confidence``."""
    alpha = 1 - confidence
    return 1 - FIRST_STAGE_SHARE * alpha, 1 - (1 - FIRST_STAGE_SHARE) * alpha


def wants_second_stage(verdict: Verdict) -> bool:
    """Stage 1 failed nothing, and some regression check leans towards a regression."""
    return verdict.passed and any(
        t.worsening > 0 and t.p_value <= RERUN_BELOW for t in verdict.tested.values()
    )
