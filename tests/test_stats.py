import math

import numpy as np
import pytest
from scipy.stats import binom, binomtest

from gate.decide.stats import (
    Interval,
    decide,
    mcnemar_exact,
    minimum_detectable_effect,
    paired_bootstrap,
    paired_bootstraps,
)
from gate.metrics.statistic import mean_statistic, percentile_statistic, ratio_statistic

Z_975_PLUS_Z_80 = 1.959963984540054 + 0.8416212335729143


def discordant(b: int, c: int, concordant: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Pass/fail runs with b losses (pass → fail), c wins (fail → pass), the rest unchanged."""
    base = np.array([True] * b + [False] * c + [True, False] * (concordant // 2))
    cand = np.array([False] * b + [True] * c + [True, False] * (concordant // 2))
    return base, cand


# McNemar


def test_mcnemar__five_losses_no_wins_gives_two_sided_p_0_0625():
    result = mcnemar_exact(*discordant(5, 0))
    assert (result.b, result.c, result.n) == (5, 0, 15)
    assert result.p_value == 0.0625  # 2 · (1/2)^5
    assert result.p_worse == 0.03125  # P(X ≥ 5), X ~ Bin(5, 1/2)


def test_mcnemar__equal_losses_and_wins_gives_p_one():
    result = mcnemar_exact(*discordant(3, 3))
    assert result.p_value == 1.0
    assert result.p_worse == 42 / 64  # P(X ≥ 3), X ~ Bin(6, 1/2): (20 + 15 + 6 + 1) / 64


def test_mcnemar__no_discordant_pairs_gives_p_one():
    result = mcnemar_exact(*discordant(0, 0))
    assert (result.b, result.c, result.p_value, result.p_worse) == (0, 0, 1.0, 1.0)


def test_mcnemar__matches_scipy_binomtest_on_random_inputs():
    rng = np.random.default_rng(3)
    for _ in range(40):
        n = int(rng.integers(1, 400))
        base = rng.random(n) < rng.random()
        cand = np.where(rng.random(n) < rng.random(), base, rng.random(n) < rng.random())
        result = mcnemar_exact(base, cand)
        if result.b + result.c == 0:
            continue
        m = result.b + result.c
        two_sided = binomtest(result.b, m, 0.5).pvalue
        worse = binomtest(result.b, m, 0.5, alternative="greater").pvalue
        assert result.p_value == pytest.approx(two_sided, rel=1e-10)
        assert result.p_worse == pytest.approx(worse, rel=1e-10)


def test_mcnemar__large_sample_tail_matches_scipy():
    # 30,000 discordant pairs, 2.8 standard deviations from even: p near 0.005.
    base, cand = discordant(15_243, 14_757, concordant=0)
    result = mcnemar_exact(base, cand)
    assert result.p_value == pytest.approx(2 * binom.cdf(14_757, 30_000, 0.5), rel=1e-9)
    assert result.p_worse == pytest.approx(binom.sf(15_242, 30_000, 0.5), rel=1e-9)


def test_mcnemar__zero_one_numbers_count_as_pass_fail():
    base, cand = discordant(4, 1)
    assert mcnemar_exact(base.astype(float), cand.astype(int)) == mcnemar_exact(base, cand)


@pytest.mark.parametrize(
    ("base", "cand"),
    [
        ([1, 0.5], [1, 1]),
        ([1, math.nan], [1, 1]),
        ([True, False], [True]),
        ([], []),
    ],
    ids=["non-binary", "nan", "mismatched-lengths", "empty"],
)
def test_mcnemar__rejects_bad_input(base, cand):
    with pytest.raises(ValueError):
        mcnemar_exact(np.array(base), np.array(cand))


# paired_bootstrap


def reference_interval(changes: list[float], confidence: float) -> tuple[float, float]:
    tail = (1 - confidence) / 2
    low, high = np.quantile(changes, [tail, 1 - tail])
    return float(low), float(high)


def test_paired_bootstrap__mean_matches_plain_loop_reference():
    rng = np.random.default_rng(0)
    base = rng.random(25)
    cand = base + rng.normal(-0.05, 0.1, 25)
    indices = np.random.default_rng(7).integers(0, 25, size=(300, 25))
    changes = [sum(cand[i] - base[i] for i in row) / 25 for row in indices]

    result = paired_bootstrap(base, cand, resamples=300, confidence=0.9, seed=7)

    assert result.estimate == pytest.approx(cand.mean() - base.mean())
    assert (result.low, result.high) == pytest.approx(reference_interval(changes, 0.9))
    assert (result.confidence, result.n, result.resamples) == (0.9, 25, 300)


def test_paired_bootstrap__p95_matches_plain_loop_nearest_rank_reference():
    rng = np.random.default_rng(1)
    base = rng.lognormal(6, 0.5, 40)
    cand = base * rng.lognormal(0.1, 0.2, 40)

    def p95(values: list[float]) -> float:
        return sorted(values)[math.ceil(0.95 * len(values)) - 1]

    indices = np.random.default_rng(0).integers(0, 40, size=(200, 40))
    changes = [p95([cand[i] for i in row]) - p95([base[i] for i in row]) for row in indices]

    result = paired_bootstrap(base, cand, statistic=percentile_statistic(95), resamples=200)

    assert result.estimate == pytest.approx(p95(list(cand)) - p95(list(base)))
    assert (result.low, result.high) == pytest.approx(reference_interval(changes, 0.95))


def test_paired_bootstrap__cost_per_success_matches_plain_loop_reference():
    rng = np.random.default_rng(2)
    base = np.column_stack([rng.uniform(0.001, 0.003, 30), rng.random(30) < 0.9])
    cand = np.column_stack([rng.uniform(0.001, 0.004, 30), rng.random(30) < 0.9])

    def cost_per_success(rows: np.ndarray) -> float:
        return rows[:, 0].sum() / rows[:, 1].sum()

    indices = np.random.default_rng(0).integers(0, 30, size=(250, 30))
    changes = [cost_per_success(cand[row]) - cost_per_success(base[row]) for row in indices]

    result = paired_bootstrap(base, cand, statistic=ratio_statistic, resamples=250)

    assert result.estimate == pytest.approx(cost_per_success(cand) - cost_per_success(base))
    assert (result.low, result.high) == pytest.approx(reference_interval(changes, 0.95))


def test_paired_bootstrap__resamples_in_several_blocks_follow_one_index_stream():
    # 1,100 resamples of 1,000 cases exceed one block: the blocks must add up to exactly the
    # resamples of a single index matrix drawn from the seed.
    rng = np.random.default_rng(4)
    base, cand = rng.random(1000), rng.random(1000)
    indices = np.random.default_rng(5).integers(0, 1000, size=(1100, 1000))
    changes = (cand - base)[indices].mean(axis=1)

    result = paired_bootstrap(base, cand, resamples=1100, seed=5)

    assert (result.low, result.high) == pytest.approx(reference_interval(list(changes), 0.95))


def test_paired_bootstrap__95_percent_interval_covers_true_difference_about_95_percent():
    rng = np.random.default_rng(6)
    true_change = -0.1
    covered = 0
    for seed in range(200):
        base = rng.normal(0.7, 0.2, 50)
        cand = base + rng.normal(true_change, 0.15, 50)
        result = paired_bootstrap(base, cand, seed=seed)
        covered += result.low <= true_change <= result.high
    assert 0.90 <= covered / 200 <= 0.99


def test_paired_bootstrap__same_seed_same_interval_other_seed_other_interval():
    rng = np.random.default_rng(8)
    base, cand = rng.random(60), rng.random(60)
    first = paired_bootstrap(base, cand, seed=11)
    assert paired_bootstrap(base, cand, seed=11) == first
    assert paired_bootstrap(base, cand, seed=12) != first


def test_paired_bootstrap__explicit_mean_statistic_equals_default_fast_path():
    rng = np.random.default_rng(9)
    base, cand = rng.random(80), rng.random(80)
    default = paired_bootstrap(base, cand)
    explicit = paired_bootstrap(base, cand, statistic=mean_statistic)
    assert (explicit.estimate, explicit.low, explicit.high) == pytest.approx(
        (default.estimate, default.low, default.high)
    )


def test_paired_bootstrap__few_distinct_changes_resample_as_a_multinomial_of_them():
    """Pass/fail scores change by -1, 0 or +1: drawn as counts of those three values, the
    interval is the one drawing case indices gives, up to Monte Carlo noise."""
    rng = np.random.default_rng(13)
    base = (rng.random(400) < 0.8).astype(float)
    cand = np.where(rng.random(400) < 0.1, 1 - base, base)
    result = paired_bootstrap(base, cand, resamples=20_000, confidence=0.9)
    indices = np.random.default_rng(14).integers(0, 400, size=(20_000, 400))
    low, high = reference_interval(list((cand - base)[indices].mean(axis=1)), 0.9)
    assert (result.low, result.high) == pytest.approx((low, high), abs=0.003)
    assert result.estimate == pytest.approx(cand.mean() - base.mean())


def test_paired_bootstraps__share_one_draw_and_leave_out_a_statistic_without_a_value():
    rng = np.random.default_rng(15)
    base, cand = rng.random(50), rng.random(50)
    no_success = np.column_stack([np.full(50, 0.002), np.zeros(50)])
    mean, ratio = paired_bootstraps(
        [(base, cand, None), (no_success, no_success * 2, ratio_statistic)], resamples=300
    )
    assert mean == paired_bootstrap(base, cand, resamples=300)
    assert ratio is None


def test_paired_bootstrap__identical_runs_give_a_zero_interval():
    scores = np.random.default_rng(10).random(30)
    result = paired_bootstrap(scores, scores.copy())
    assert (result.estimate, result.low, result.high) == (0.0, 0.0, 0.0)


def test_percentile_statistic__is_nearest_rank():
    latencies = np.arange(1.0, 41.0)[np.newaxis]
    assert percentile_statistic(95)(latencies).tolist() == [38.0]  # ceil(0.95 · 40) = 38th
    assert percentile_statistic(50)(latencies).tolist() == [20.0]


@pytest.mark.parametrize("q", [0, 1, 50, 95, 99, 100])
def test_percentile_statistic__long_rows_give_exactly_the_nearest_rank(q: float) -> None:
    """Rows long enough to be searched between bounds first: the same value as one partition,
    for shuffled, sorted and tied rows."""
    rng = np.random.default_rng(12)
    base = rng.lognormal(6.5, 0.4, 20_000)
    swaps = rng.random((8, 20_000)) < 0.5
    shuffled = np.where(swaps, base, base * 1.2)
    for values in (
        shuffled,
        np.sort(shuffled, axis=1),
        np.round(shuffled / 200),
        np.ones((2, 20_000)),
    ):
        rank = max(0, math.ceil(q / 100 * values.shape[1]) - 1)
        expected = np.partition(values, rank, axis=1)[:, rank]
        np.testing.assert_array_equal(percentile_statistic(q)(values), expected)


def test_percentile_statistic__rejects_percentile_outside_0_to_100():
    with pytest.raises(ValueError):
        percentile_statistic(101)


def test_paired_bootstrap__ratio_with_no_successes_raises():
    base = np.column_stack([np.full(10, 0.002), np.zeros(10)])
    cand = np.column_stack([np.full(10, 0.002), np.ones(10)])
    with pytest.raises(ValueError, match="not finite"):
        paired_bootstrap(base, cand, statistic=ratio_statistic)


@pytest.mark.parametrize(
    ("base", "cand", "options"),
    [
        ([0.1, math.nan, 0.3], [0.1, 0.2, 0.3], {}),
        ([0.1, 0.2, 0.3], [0.1, math.inf, 0.3], {}),
        ([0.1, 0.2, 0.3], [0.1, 0.2], {}),
        ([], [], {}),
        ([[[0.1]]], [[[0.2]]], {"statistic": mean_statistic}),
        ([[0.1, 1.0]], [[0.2, 1.0]], {}),
        ([[0.1, 1.0]], [[0.2, 1.0]], {"statistic": mean_statistic}),
        ([[0.1], [0.2]], [[0.2], [0.3]], {"statistic": ratio_statistic}),
        ([0.1, 0.2], [0.2, 0.3], {"resamples": 0}),
        ([0.1, 0.2], [0.2, 0.3], {"confidence": 1.0}),
    ],
    ids=[
        "nan",
        "infinity",
        "mismatched-lengths",
        "empty",
        "3-d",
        "2-d-without-statistic",
        "statistic-returns-a-row-per-column",
        "ratio-of-one-column",
        "no-resamples",
        "confidence-of-one",
    ],
)
def test_paired_bootstrap__rejects_bad_input(base, cand, options):
    with pytest.raises(ValueError):
        paired_bootstrap(np.array(base), np.array(cand), **options)


# minimum_detectable_effect


def test_minimum_detectable_effect__known_paired_sd():
    mde = minimum_detectable_effect(np.ones(3), n=100, paired_sd=0.3)
    assert mde == pytest.approx(Z_975_PLUS_Z_80 * 0.3 / 10)


def test_minimum_detectable_effect__continuous_scores_use_sd_times_root_two():
    # sd(1..5) = √2.5, so sd_diff = √5 and MDE = z · √5 / √5 = z.
    mde = minimum_detectable_effect(np.array([1.0, 2.0, 3.0, 4.0, 5.0]))
    assert mde == pytest.approx(Z_975_PLUS_Z_80)


def test_minimum_detectable_effect__all_pass_baseline_is_not_zero():
    # q = 1: δ = z² / (n + z²), about 6.6 of 40 cases.
    mde = minimum_detectable_effect(np.ones(40))
    assert mde == pytest.approx(Z_975_PLUS_Z_80**2 / (40 + Z_975_PLUS_Z_80**2))


def test_minimum_detectable_effect__half_pass_rate_hand_computed():
    # q = 1/2: δ = 1 / √(2A), A = n / z² + 1; close to z · √(2 · 0.25) / √n.
    mde = minimum_detectable_effect(np.array([0, 1] * 50))
    assert mde == pytest.approx(1 / math.sqrt(2 * (100 / Z_975_PLUS_Z_80**2 + 1)))
    assert mde == pytest.approx(Z_975_PLUS_Z_80 * math.sqrt(0.5) / 10, rel=0.05)


def test_minimum_detectable_effect__binary_solves_its_own_equation():
    mde = minimum_detectable_effect(np.array([1] * 170 + [0] * 30), n=200)
    variance = 0.85 * 0.15 + (0.85 - mde) * (0.15 + mde)
    assert mde == pytest.approx(Z_975_PLUS_Z_80 * math.sqrt(variance / 200))


def test_minimum_detectable_effect__more_cases_detect_smaller_drops():
    baseline = np.array([1] * 35 + [0] * 5)
    assert minimum_detectable_effect(baseline, n=400) < minimum_detectable_effect(baseline)


@pytest.mark.parametrize(
    ("baseline", "options"),
    [
        ([], {}),
        ([0.5], {}),
        ([1, 0], {"n": 0}),
        ([1, 0], {"confidence": 0.0}),
        ([1, 0], {"power": 1.0}),
        ([1, 0], {"paired_sd": -0.1}),
    ],
    ids=["empty", "one-continuous-score", "no-cases", "confidence", "power", "negative-sd"],
)
def test_minimum_detectable_effect__rejects_bad_input(baseline, options):
    with pytest.raises(ValueError):
        minimum_detectable_effect(np.array(baseline, dtype=float), **options)


# decide


def interval(estimate: float, low: float, high: float) -> Interval:
    return Interval(estimate, low, high, confidence=0.95, n=200, resamples=2000)


@pytest.mark.parametrize(
    ("given", "strict", "regressed", "significant", "reason"),
    [
        (
            interval(-0.041, -0.070, -0.012),
            False,
            True,
            True,
            "drop 0.041 [0.012, 0.07] > tolerance 0.03, significant at 95%",
        ),
        (
            interval(-0.041, -0.090, 0.010),
            False,
            False,
            False,
            "drop 0.041 [-0.01, 0.09] > tolerance 0.03, but not significant at 95%",
        ),
        (
            interval(-0.041, -0.090, 0.010),
            True,
            True,
            False,
            "drop 0.041 [-0.01, 0.09] > tolerance 0.03, not significant at 95% (strict mode)",
        ),
        (
            interval(-0.010, -0.018, -0.002),
            False,
            False,
            True,
            "drop 0.01 [0.002, 0.018] within tolerance 0.03",
        ),
        (
            interval(-0.030, -0.050, -0.010),
            True,
            False,
            True,
            "drop 0.03 [0.01, 0.05] within tolerance 0.03",
        ),
        (
            interval(0.020, 0.010, 0.030),
            True,
            False,
            False,
            "drop -0.02 [-0.03, -0.01] within tolerance 0.03",
        ),
    ],
    ids=[
        "significant-drop-beyond-tolerance",
        "drop-beyond-tolerance-not-significant",
        "strict-counts-a-drop-that-is-not-significant",
        "significant-drop-within-tolerance",
        "drop-exactly-at-tolerance-passes",
        "improvement",
    ],
)
def test_decide__higher_is_better(given, strict, regressed, significant, reason):
    decision = decide(given, tolerance=0.03, higher_is_better=True, strict=strict)
    assert (decision.regressed, decision.significant, decision.reason) == (
        regressed,
        significant,
        reason,
    )


def test_decide__lower_is_better_fails_on_a_significant_increase():
    decision = decide(interval(120.0, 40.0, 200.0), tolerance=100, higher_is_better=False)
    assert (decision.regressed, decision.significant) == (True, True)
    assert decision.reason == "increase 120 [40, 200] > tolerance 100, significant at 95%"


def test_decide__lower_is_better_passes_a_decrease():
    decision = decide(interval(-120.0, -200.0, -40.0), tolerance=0, higher_is_better=False)
    assert (decision.regressed, decision.significant) == (False, False)


def test_decide__unchanged_metric_prints_zero_not_minus_zero():
    decision = decide(interval(0.0, 0.0, 0.0), tolerance=0, higher_is_better=True)
    assert decision.reason == "drop 0 [0, 0] within tolerance 0"


def test_decide__rejects_negative_tolerance():
    with pytest.raises(ValueError):
        decide(interval(0.0, 0.0, 0.0), tolerance=-0.01, higher_is_better=True)


# The defaults at the size the gate is built for: 200 pass/fail cases, tolerance 0.


def test_defaults__few_false_alarms_when_only_noise_changed():
    rng = np.random.default_rng(12)
    alarms = 0
    for seed in range(200):
        base = rng.random(200) < 0.8
        cand = np.where(rng.random(200) < 0.9, base, rng.random(200) < 0.8)  # ~6 pairs flip
        result = paired_bootstrap(base, cand, seed=seed)
        alarms += decide(result, tolerance=0, higher_is_better=True).regressed
    assert alarms / 200 <= 0.05


def test_defaults__catch_a_five_point_drop_in_a_pass_rate():
    rng = np.random.default_rng(13)
    caught = 0
    for seed in range(100):
        base = np.arange(200) < 160
        cand = base.copy()
        cand[rng.choice(160, size=10, replace=False)] = False  # 10 of 200 cases newly fail
        result = paired_bootstrap(base, cand, seed=seed)
        caught += decide(result, tolerance=0, higher_is_better=True).regressed
    assert caught / 100 >= 0.8


# family.max_t: the family-wise sign-flip test


def test_max_t__matches_a_plain_loop_reference_on_two_correlated_checks():
    from gate.decide.family import Hypothesis, max_t

    rng = np.random.default_rng(5)
    n, resamples = 30, 400
    base, cand = rng.random(n), rng.random(n) - 0.1
    half = np.arange(0, n, 2)
    checks = [
        Hypothesis(np.arange(n), base, cand, None, True, 0.02),
        Hypothesis(half, base[half], cand[half], None, True, 0.0),
    ]
    got = max_t(checks, n, resamples=resamples, seed=9)

    # the reference: the same swap stream, one resample and one check at a time
    stream = np.random.default_rng(9)
    packed = stream.integers(0, 256, size=(resamples, (n + 7) // 8), dtype=np.uint8)
    swaps = np.unpackbits(packed, axis=1, count=n).astype(int)
    worse = [base - 0.02 - cand, base[half] - cand[half]]
    rows = [np.arange(n), half]
    observed = [x.sum() / np.sqrt((x**2).sum()) for x in worse]
    largest = []
    for swap in swaps:
        stats_ = []
        for x, r in zip(worse, rows, strict=True):
            signs = 1 - 2 * swap[r]
            stats_.append((signs * x).sum() / np.sqrt((x**2).sum()))
        largest.append(max(stats_))
    for tested, t in zip(got, observed, strict=True):
        assert tested.t == pytest.approx(t)
        expected = (1 + sum(m >= t - 1e-9 for m in largest)) / (resamples + 1)
        assert tested.p_value == pytest.approx(expected)


def test_max_t__relative_tolerance_scales_the_baseline():
    from gate.decide.family import Hypothesis, max_t

    base = np.full(100, 0.8)
    cand = np.full(100, 0.76)  # a 5% drop
    within = Hypothesis(np.arange(100), base, cand, None, True, 0.10, relative=True)
    beyond = Hypothesis(np.arange(100), base, cand, None, True, 0.02, relative=True)
    tested_within, tested_beyond = max_t([within, beyond], 100, resamples=200)
    assert tested_within.worsening == pytest.approx(0.72 - 0.76)
    assert tested_beyond.worsening == pytest.approx(0.784 - 0.76)
