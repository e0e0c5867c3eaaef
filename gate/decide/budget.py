"""The error budget: a run whose pipeline mostly failed is not evidence that it works.

Whatever the thresholds declare, and with or without a baseline, the gate fails when more runs
failed (errors and timeouts) than ``runner.max_error_rate`` allows, and when nothing was
measured at all. Pure: the records in, one check out.
"""

from __future__ import annotations

from gate.decide.compare import EPSILON, CheckResult
from gate.load.config import Runner
from gate.metrics.scoring import Run

ERROR_RATE = "ops.error_rate"
RULE = "max_error_rate"


def error_budget(records: list[Run], runner: Runner) -> CheckResult:
    """Failed runs / all runs against ``runner.max_error_rate``; zero runs, or zero runs that
    succeeded, fail whatever the budget (``max_error_rate: 1`` still needs one measured run)."""
    limit = runner.max_error_rate
    total = len(records)
    failed = sum(r.status != "ok" for r in records)
    rate = failed / total if total else None
    if rate is None:
        passed, reason = False, "error budget: no case was run: nothing was measured"
    else:
        within = rate <= limit + EPSILON
        passed = within and failed < total
        reason = (
            f"error budget: {failed} of {total} runs failed ({rate:.1%}) "
            f"{'≤' if within else '>'} {RULE} {limit * 100:g}%"
        )
        if failed == total:
            reason += ": nothing was measured"
    return CheckResult(
        metric=ERROR_RATE,
        slice=None,
        kind="absolute",
        rule=RULE,
        limit=limit,
        value=rate,
        baseline=None,
        passed=passed,
        reason=reason,
    )
