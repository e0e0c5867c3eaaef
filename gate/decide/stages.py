"""A second stage where it pays: more runs per case only when the first stage cannot tell.

Three runs per case decide far more often than one, but triple the calls on every pull request.
With ``comparison.second_stage`` and a baseline measured with more runs per case than
``runner.repeats`` (a nightly with ``repeats: 3``, blessed), a first stage of ``runner.repeats``
runs decides at a fifth of the false-alarm budget; when it fails nothing but some regression
check leans towards a regression (beyond its tolerance with a family-wise p-value of at most
``RERUN_BELOW``) or cannot be judged yet, every case runs again until it has as many runs as the
baseline's cases, and the per-case means decide with the other four fifths. Stage 2 compares
like with like (means of as many runs on both sides: exchangeable when nothing changed, so the
test is exact); a pull request fails falsely only if a stage does, so both together stay within
the budget (union bound).
"""

from __future__ import annotations

from gate.decide.verdict import Verdict

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


def extra_runs(baseline_runs: int | None, repeats: int) -> int:
    """The runs per case a second stage adds: up to the baseline's (0: no second stage)."""
    return max(0, (baseline_runs or 0) - repeats)


def wants_second_stage(verdict: Verdict) -> bool:
    """Stage 1 failed nothing, and some regression check leans towards a regression or could
    not be judged (a percentile against a baseline of more runs per case)."""
    return verdict.passed and (
        verdict.inconclusive
        or any(t.worsening > 0 and t.p_value <= RERUN_BELOW for t in verdict.tested.values())
    )
