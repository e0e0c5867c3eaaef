import numpy as np
import pytest

from gate.decide.compare import apply_rule, status
from gate.load.config import Rule
from gate.metrics.statistic import percentile_statistic


def one(rule: Rule, value, baseline, higher_is_better=True):
    [result] = apply_rule("m", rule, value, baseline, higher_is_better)
    return result


@pytest.mark.parametrize(
    ("rule", "value", "passed", "reason"),
    [
        (Rule(min=0.8), 0.8, True, "0.8 ≥ min 0.8"),
        (Rule(min=0.8), 0.79, False, "0.79 < min 0.8"),
        (Rule(min=0.3), 0.1 + 0.2, True, "0.3 ≥ min 0.3"),  # float noise never fails a bar
        (Rule(max=3500), 3600.0, False, "3600 > max 3500"),
        (Rule(max=3500), 3500.0, True, "3500 ≤ max 3500"),
    ],
)
def test_absolute_rules__hand_computed(rule, value, passed, reason):
    result = one(rule, value, None)
    assert (result.kind, result.passed, result.reason) == ("absolute", passed, reason)


def test_absolute_rule__unmeasured_metric_fails_rather_than_passing_silently():
    result = one(Rule(min=0.5), None, None)
    assert not result.passed
    assert result.reason.startswith("not measured")


@pytest.mark.parametrize(
    ("rule", "value", "baseline", "higher", "passed", "reason"),
    [
        (Rule(max_drop=0.03), 0.80, 0.85, True, False, "drop 0.05 > max_drop 0.03"),
        (Rule(max_drop=0.05), 0.80, 0.85, True, True, "drop 0.05 ≤ max_drop 0.05"),
        (Rule(max_drop=0.0), 0.90, 0.85, True, True, "drop -0.05 ≤ max_drop 0"),
        (Rule(max_drop_pct=5), 0.80, 0.85, True, False, "drop 5.9% > max_drop_pct 5%"),
        (Rule(max_drop_pct=10), 0.80, 0.85, True, True, "drop 5.9% ≤ max_drop_pct 10%"),
        (
            Rule(max_increase_pct=20),
            1300.0,
            1000.0,
            False,
            False,
            "increase 30.0% > max_increase_pct 20%",
        ),
        (
            Rule(max_increase_pct=20),
            900.0,
            1000.0,
            False,
            True,
            "increase 0.0% ≤ max_increase_pct 20%",
        ),
        (Rule(max_increase=100), 1150.0, 1000.0, False, False, "increase 150 > max_increase 100"),
        (Rule(max_increase_pct=20), 0.01, 0.0, False, False, "increase ∞% > max_increase_pct 20%"),
        (Rule(max_drop_pct=20), 0.0, 0.0, True, True, "drop 0.0% ≤ max_drop_pct 20%"),
    ],
)
def test_regression_rules__hand_computed(rule, value, baseline, higher, passed, reason):
    result = one(rule, value, baseline, higher)
    assert (result.kind, result.passed, result.reason) == ("regression", passed, reason)


def test_regression_rules__skipped_without_a_baseline():
    assert apply_rule("m", Rule(max_drop=0.01), 0.5, None, True) == []


def test_regression_rule__metric_no_longer_measured_fails():
    result = one(Rule(max_drop=0.01), None, 0.5)
    assert not result.passed
    assert "baseline 0.5" in result.reason


def test_status__unchecked_pass_fail():
    assert status([]) == "unchecked"
    checks = apply_rule("m", Rule(min=0.5, max=0.9), 0.95, None, True)
    assert [c.passed for c in checks] == [True, False]
    assert status(checks) == "fail"
    assert status(checks[:1]) == "pass"


def test_paired__percentile_metric_is_judged_with_its_randomisation_not_the_estimate():
    from gate.decide.compare import Scores, paired
    from gate.decide.family import Hypothesis, max_t
    from gate.load.config import Comparison

    base = 100.0 + np.arange(50.0)
    scores = Scores(np.arange(50), base, base + 30, percentile_statistic(95), False)
    found = paired({"p95": scores}, Comparison())["p95"]
    assert found.aggregate_only
    assert found.interval.estimate == 30.0

    def judged(rule: Rule, tolerance: float, relative: bool) -> list:
        rows = np.arange(50)
        hypothesis = Hypothesis(
            rows, found.base, found.cand, found.statistic, False, tolerance, relative
        )
        [tested] = max_t([hypothesis], 50)
        name = next(iter(rule.declared()))
        return apply_rule(
            "ops.latency_p95_ms", rule, 177.0, 147.0, False, comparison=found, tests={name: tested}
        )

    # every case 30 ms slower: far beyond a 10 ms tolerance, whatever the swaps
    [result] = judged(Rule(max_increase=10), 10.0, False)
    assert not result.passed and "significant at 95% family-wise" in result.reason
    # baseline p95 on the paired cases is 147: 20% of it is 29.4, a hair under 30: the estimate
    # crosses the tolerance, but nowhere near significantly (the old rule failed it)
    [result] = judged(Rule(max_increase_pct=20), 0.2, True)
    assert result.passed and not result.inconclusive
    assert "but not significant" in result.reason
    assert result.reason.startswith("increase 30 [")
    assert (result.value, result.baseline) == (177.0, 147.0)


def test_paired__comparisons_on_the_same_cases_share_their_resamples():
    from gate.decide.compare import Scores, paired, two_sided
    from gate.decide.stats import paired_bootstrap
    from gate.load.config import Comparison

    rng = np.random.default_rng(3)
    rows = np.arange(60)
    first, second = rng.random((2, 60)), rng.random((2, 60))
    found = paired(
        {"a": Scores(rows, *first), "b": Scores(rows, *second)}, Comparison(resamples=500)
    )
    for key, (base, cand) in (("a", first), ("b", second)):
        alone = paired_bootstrap(base, cand, resamples=500, confidence=two_sided(0.95))
        shared = found[key].interval
        assert (shared.low, shared.high) == pytest.approx((alone.low, alone.high))


def test_paired__a_statistic_with_no_value_leaves_the_comparison_out():
    from gate.decide.compare import Scores, paired
    from gate.load.config import Comparison
    from gate.metrics.statistic import ratio_statistic

    no_success = np.column_stack([np.full(10, 0.002), np.zeros(10)])
    scores = Scores(np.arange(10), no_success, no_success * 2, ratio_statistic, False)
    assert paired({"cost": scores}, Comparison()) == {}
