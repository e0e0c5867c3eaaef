"""The family-wise verdict: one false-alarm budget per pull request, and the inconclusive verdict.

Statistical checks use small Monte Carlo counts with generous binomial slack; timings live in
bench/bench_verdict.py.
"""

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from builders import write_project
from scipy.stats import binomtest
from test_main import BASELINE, IDS, answers, check_of, gate, golden

from gate import action, cli
from gate.decide import family
from gate.decide.compare import Scores, paired
from gate.decide.family import Hypothesis, max_t
from gate.load.config import Comparison
from gate.metrics.statistic import Percentile, Statistic, percentile_statistic, ratio_statistic
from gate.pipeline import Outcome


def project(
    folder: Path,
    ids: list[str],
    thresholds: dict[str, Any],
    *,
    tags: dict[str, list[str]] | None = None,
    comparison: dict[str, Any] | None = None,
    repeats: int = 1,
) -> Path:
    """A replayed project whose cases pass when the answer says "ok" (see test_main)."""
    config: dict[str, Any] = {"baseline": BASELINE, "runner": {"repeats": repeats}}
    if comparison:
        config["comparison"] = comparison
    return write_project(folder, golden(ids, tags=tags), thresholds, **config)


def mean_check(base, cand, *, tolerance=0.0, higher_is_better=True, rows=None):
    base, cand = np.asarray(base, float), np.asarray(cand, float)
    rows = np.arange(base.shape[0]) if rows is None else rows
    return Hypothesis(rows, base, cand, None, higher_is_better, tolerance)


# --- exact under no change ----------------------------------------------------------------------


def test_max_t__identical_runs_are_never_significant():
    base = np.r_[np.ones(150), np.zeros(50)]
    checks = [
        mean_check(base, base),
        mean_check(base, base, tolerance=0.05),
        Hypothesis(np.arange(200), base + 100, base + 100, percentile_statistic(95), False, 0.0),
    ]
    for tested in max_t(checks, 200, resamples=500):
        assert tested.worsening <= 0
        assert tested.p_value == 1.0


def test_max_t__ties_only_carry_no_evidence():
    # 5 cases worse and 5 better: the statistic sits at the centre of its distribution
    base = np.r_[np.ones(5), np.zeros(5), np.ones(90)]
    cand = np.r_[np.zeros(5), np.ones(5), np.ones(90)]
    [tested] = max_t([mean_check(base, cand)], 100, resamples=2000)
    assert tested.t == 0
    assert tested.p_value > 0.5


def test_max_t__pass_fail_single_check_is_the_exact_one_sided_mcnemar_test():
    rng = np.random.default_rng(3)
    for worse, better in [(6, 0), (9, 3), (4, 4), (12, 2)]:
        base = np.r_[np.ones(worse), np.zeros(better), rng.integers(0, 2, 100)]
        cand = np.r_[np.zeros(worse), np.ones(better), base[worse + better :]]
        [tested] = max_t([mean_check(base, cand)], base.size, resamples=40_000, seed=1)
        exact = binomtest(worse, worse + better, 0.5, alternative="greater").pvalue
        assert tested.p_value == pytest.approx(exact, abs=0.006)


def test_max_t__same_seed_same_decision():
    rng = np.random.default_rng(0)
    base, cand = rng.random(80), rng.random(80)
    first = max_t([mean_check(base, cand)], 80, seed=7)
    assert max_t([mean_check(base, cand)], 80, seed=7) == first
    assert max_t([mean_check(base, cand)], 80, seed=8) != first


def test_max_t__family_wise_false_alarms_stay_within_the_budget_on_null_data():
    # 8 correlated pass/fail checks (overall and slices) on unchanged, noisy runs: each alone
    # at 5% would fail far more than 5% of pull requests together; max-T keeps the family at 5%.
    rng = np.random.default_rng(11)
    n, trials, alarms, any_single = 120, 150, 0, 0
    slices = [np.arange(n)] + [rng.choice(n, 40, replace=False) for _ in range(7)]
    for trial in range(trials):
        p = rng.beta(4, 1, n)
        base, cand = (rng.random(n) < p).astype(float), (rng.random(n) < p).astype(float)
        checks = [mean_check(base[s], cand[s], rows=s) for s in slices]
        tested = max_t(checks, n, resamples=300, seed=trial)
        alarms += any(t.significant for t in tested)
        any_single += any(
            binomtest(
                int(((base[s] == 1) & (cand[s] == 0)).sum()),
                max(1, int((base[s] != cand[s]).sum())),
                0.5,
                alternative="greater",
            ).pvalue
            <= 0.05
            for s in slices
        )
    # 5% of 150 is 7.5; 16 is far in the tail of Binomial(150, 0.05)
    assert alarms <= 16
    assert any_single > alarms


def test_max_t__a_drop_equal_to_the_tolerance_is_not_significant_but_a_larger_one_is():
    base = np.ones(400)
    cand = np.r_[np.zeros(20), np.ones(380)]  # a drop of exactly 0.05
    [at] = max_t([mean_check(base, cand, tolerance=0.05)], 400, resamples=500)
    assert at.worsening == pytest.approx(0) and not at.significant
    [beyond] = max_t([mean_check(base, cand, tolerance=0.01)], 400, resamples=500)
    assert beyond.significant


def test_max_t__cost_per_success_is_judged_with_its_randomisation():
    rng = np.random.default_rng(2)
    success = (rng.random(300) < 0.8).astype(float)
    cost = rng.lognormal(-7, 0.5, 300)
    base = np.column_stack([cost, success])
    pricier = np.column_stack([cost * 1.5, success])
    same = Hypothesis(np.arange(300), base, base, ratio_statistic, False, 0.0)
    worse = Hypothesis(np.arange(300), base, pricier, ratio_statistic, False, 0.2, relative=True)
    tested_same, tested_worse = max_t([same, worse], 300, resamples=500)
    assert not tested_same.significant
    assert tested_worse.significant


@pytest.mark.parametrize("band_sds", [6, 0])
def test_max_t__percentiles_in_a_band_equal_percentiles_of_every_swapped_side(
    band_sds: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The band (``family._Band``) gives the values a partition of each whole swapped side
    gives; with no margin most resamples fall outside it and take that partition."""
    monkeypatch.setattr(family, "_BAND_SDS", band_sds)
    rng = np.random.default_rng(4)
    rows = np.sort(rng.choice(900, 700, replace=False))
    base = rng.lognormal(6, 0.5, 700).round()  # rounded: ties
    cand = base * 1.1 + rng.integers(-3, 4, 700)

    def checks(p95: Statistic, p50: Statistic) -> list[Hypothesis]:
        return [
            Hypothesis(rows, base, cand, p95, False, 0.05, relative=True),
            Hypothesis(np.arange(900), rng_base, rng_cand, p50, False, 2.0),
        ]

    rng_base, rng_cand = rng.lognormal(6, 0.5, (2, 900))
    banded = max_t(checks(percentile_statistic(95), percentile_statistic(50)), 900, resamples=300)
    whole = max_t(checks(whole_rows(95), whole_rows(50)), 900, resamples=300)
    # The same randomisation values; a mean of them may round apart with memory alignment.
    assert [(t.p_value, t.worsening) for t in banded] == [(t.p_value, t.worsening) for t in whole]
    assert [t.t for t in banded] == pytest.approx([t.t for t in whole], rel=1e-12)


def whole_rows(q: float) -> Statistic:
    """The nearest-rank percentile by a partition of every row (no band)."""

    def statistic(values: np.ndarray) -> np.ndarray:
        rank = Percentile(q).rank(values.shape[1])
        chosen: np.ndarray = np.partition(values, rank, axis=1)[:, rank]
        return chosen

    return statistic


def test_tested__cases_to_decide_scale_with_the_square_of_the_missing_evidence():
    base = np.r_[np.ones(3), np.ones(97)]
    cand = np.r_[np.zeros(3), np.ones(97)]
    [tested] = max_t([mean_check(base, cand)], 100, resamples=2000)
    assert not tested.significant
    assert tested.cases_to_decide() == max(
        101, int(np.ceil(100 * (tested.critical / tested.t) ** 2))
    )
    # 3 of 100 cases newly failing, nothing better: more data would likely tell
    base, cand = np.ones(100), np.r_[np.zeros(2), np.ones(98)]
    [weaker] = max_t([mean_check(base, cand)], 100, resamples=2000)
    assert weaker.cases_to_decide() > 100


# --- McNemar in the metric's direction ----------------------------------------------------------


def test_paired__mcnemar_counts_an_error_rate_going_up_as_newly_failing():
    before, after = np.zeros(40), np.r_[np.ones(10), np.zeros(30)]
    scores = Scores(np.arange(40), before, after, higher_is_better=False)
    found = paired({"ops.error_rate": scores}, Comparison())["ops.error_rate"]
    assert found.mcnemar is not None
    assert (found.mcnemar.b, found.mcnemar.c) == (10, 0)
    assert found.mcnemar.p_worse == pytest.approx(0.5**10)


# --- the verdict, the report and the exit code --------------------------------------------------


def test_run__inconclusive_verdict_exits_0_and_names_the_cases_that_would_decide(tmp_path):
    rules = {"metrics": {"agent.task_success": {"max_drop": 0.0}}}
    config = project(tmp_path, IDS, rules, comparison={"confidence": 0.9})
    gate(config, answers(IDS, set()), update=True)
    # 3 newly failing, none better: exact p = 0.125, between 10% and twice that
    report = gate(config, answers(IDS, set(IDS[:3])))
    check = check_of(report, "max_drop")
    assert check["status"] == "inconclusive"
    assert "cases (" in check["reason"] and "would likely decide it" in check["reason"]
    assert report["verdict"] == "inconclusive"
    assert report["summary"].startswith("inconclusive: 1 of 2 checks cannot tell")
    assert report["metrics"]["agent.task_success"]["status"] == "inconclusive"


def test_run__must_pass_with_repeats_uses_the_majority_of_runs(tmp_path):
    tags = {"c01": ["high-risk"], "c02": ["high-risk"]}
    config = project(
        tmp_path, IDS[:4], {"must_pass": {"tags": ["high-risk"]}}, tags=tags, repeats=3
    )
    runs = answers(IDS[:4], set()) | {"c01": ["ok", "nope", "ok"], "c02": ["nope", "ok", "nope"]}
    check = check_of(gate(config, runs), "must_pass")
    # c01 passed 2 of 3 runs: it passes; c02 passed 1 of 3: it fails
    assert check["status"] == "fail"
    assert check["reason"] == "1 of 2 must-pass cases failed: c02 (missing_required)"


INCONCLUSIVE = {
    "verdict": "inconclusive",
    "summary": "inconclusive: 1 of 2 checks cannot tell",
    "checks": [
        {
            "metric": "agent.task_success",
            "slice": None,
            "kind": "regression",
            "rule": "max_drop",
            "status": "inconclusive",
            "reason": "drop 0.05 > tolerance 0, but not significant",
            "baseline": 0.9,
        }
    ],
}


@pytest.mark.parametrize(
    ("fail_on", "code", "level"),
    [("any", 0, "warning"), ("regression", 0, "warning"), ("inconclusive", 1, "error")],
)
def test_action__fail_on_decides_what_inconclusive_does(capsys, fail_on, code, level):
    assert action.exit_code(INCONCLUSIVE, 0, fail_on) == code
    action.annotate(INCONCLUSIVE, fail_on)
    assert capsys.readouterr().out.startswith(f"::{level} title=gate%3A agent.task_success::")


def test_cli__inconclusive_warns_and_fails_only_when_asked(tmp_path, monkeypatch, capsys):
    outcome = Outcome(0, INCONCLUSIVE, tmp_path / "report.json", tmp_path / "report.md")
    monkeypatch.setattr(cli, "run", lambda options: outcome)
    assert cli.main(["run", "-q"]) == 0
    assert "gate: warning: inconclusive" in capsys.readouterr().err
    assert cli.main(["run", "-q", "--fail-on-inconclusive"]) == 1


def test_run__the_primary_metric_is_tested_with_most_of_the_budget(tmp_path):
    metrics = {"agent.task_success": {"max_drop": 0.0}, "generation.must_include": {"max_drop": 0}}
    config = project(tmp_path, IDS, {"metrics": metrics, "primary": "agent.task_success"})
    gate(config, answers(IDS, set()), update=True)
    report = gate(config, answers(IDS, set(IDS[:2])))
    levels = {
        c["metric"]: c["reason"].split("family-wise")[0].rsplit("at ", 1)[1]
        for c in report["checks"]
        if c["kind"] == "regression"
    }
    assert levels == {"agent.task_success": "96% ", "generation.must_include": "99% "}


def test_run__second_stage_tops_up_to_the_baseline_runs_only_when_the_first_cannot_tell(
    tmp_path,
):
    rules = {"metrics": {"agent.task_success": {"max_drop": 0.0}}}
    staged = {"second_stage": True}
    config = project(tmp_path, IDS, rules, comparison=staged, repeats=3)
    gate(config, {i: ["ok"] * 3 for i in IDS}, update=True)  # a nightly: 3 runs per case
    config = project(tmp_path, IDS, rules, comparison=staged)
    unchanged = gate(config, answers(IDS, set()))
    assert unchanged["run"]["records"] == 40
    # 6 of 40 fail in the first run: beyond the tolerance, not enough at stage 1's 99%;
    # they keep failing in both extra runs, so 3 runs per case decide, as many as the baseline's
    broken = {i: ["nope" if i in IDS[:6] else "ok"] * 3 for i in IDS}
    report = gate(config, broken)
    assert (report["run"]["records"], report["run"]["repeats"]) == (120, 3)
    assert check_of(report, "max_drop")["status"] == "fail"
    assert report["verdict"] == "fail"


def test_run__second_stage_with_a_baseline_of_one_run_warns_and_stays_one_stage(tmp_path):
    rules = {"metrics": {"agent.task_success": {"max_drop": 0.0}}}
    config = project(tmp_path, IDS, rules, comparison={"second_stage": True})
    gate(config, answers(IDS, set()), update=True)
    report = gate(config, {i: ["nope" if i in IDS[:6] else "ok"] * 3 for i in IDS})
    assert report["run"]["records"] == 40
    [warning] = [w for w in report["warnings"] if "second_stage" in w]
    assert "the baseline holds 1 run(s) per case" in warning


def test_run__a_percentile_against_a_baseline_of_other_runs_per_case_is_not_judged(tmp_path):
    rules = {"metrics": {"ops.latency_p95_ms": {"max_increase_pct": 10}}}
    config = project(tmp_path, IDS, rules, repeats=3)
    gate(config, {i: ["ok"] * 3 for i in IDS}, update=True)
    stored = json.loads((tmp_path / BASELINE).read_text())
    assert stored["repeats"] == 3
    # the first run's latencies are kept for a run of one run per case to compare with
    assert "ops.latency_p95_ms#run1" in stored["case_scores"]
    config = project(tmp_path, IDS, rules, repeats=2)
    check = check_of(gate(config, {i: ["ok"] * 2 for i in IDS}), "max_increase_pct")
    assert check["status"] == "inconclusive"
    assert check["reason"].startswith("not comparable: the baseline's per-case values are means")
    assert "runner.repeats: 3" in check["reason"]
    # one run against the baseline's first runs, or as many runs as the baseline: judged
    for repeats in (1, 3):
        config = project(tmp_path, IDS, rules, repeats=repeats)
        check = check_of(gate(config, {i: ["ok"] * repeats for i in IDS}), "max_increase_pct")
        assert "family-wise" in check["reason"] or "within tolerance" in check["reason"]
