"""The noise floor the nightlies measure, fed to the paired tests (issue 14): consecutive nights on
unchanged code show how much a metric moves with nothing changed; what the case noise does not
explain (run-level drift) is added to the test, and the report and the comment say so."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from builders import FakeAdapter, write_project
from test_main import BASELINE

from gate import history
from gate.decide.family import Hypothesis, Nightly, drift_variance, max_t
from gate.pipeline import RunOptions, run
from gate.render.markdown import render_summary


def night(
    commit: str, values: dict[str, float], *, repeats: int = 1, date: str = "2026-12-01", **kw: Any
) -> dict[str, Any]:
    return {
        "event": kw.get("event", "schedule"),
        "commit": commit,
        "pipeline": "p",
        "dataset": "d",
        "date": date,
        "repeats": repeats,
        "metrics": values,
        "slices": kw.get("slices", {}),
    }


def test_noise_floor__changes_between_nights_on_unchanged_code_only() -> None:
    entries = [
        night("a", {"m": 0.80}, date="2026-11-01"),
        night("a", {"m": 0.70}, date="2026-11-02"),  # pair 1: 0.1
        night("a", {"m": 0.90}, event="push"),  # not a night
        night("b", {"m": 0.50}, date="2026-11-03"),  # new code: no pair with the night before
        night("b", {"m": 0.70}, date="2026-11-04", slices={"t": {"m": 0.6}}),  # pair 2: 0.2
        night("b", {"m": 0.70}, date="2026-11-05", repeats=3),  # other runs per case
    ]

    assert history.noise_floor(entries, nights=14) is None  # the last night has 3 runs: alone
    floor = history.noise_floor(entries[:-1], nights=14)
    assert floor is not None
    assert floor.nights == ("2026-11-01", "2026-11-02", "2026-11-03", "2026-11-04")
    assert floor.runs == 1
    assert floor.changes[(None, "m")] == (pytest.approx((0.1**2 + 0.2**2) / 2), 2)
    assert (("t", "m")) not in floor.changes  # one night of the slice: no change measured
    only_last = history.noise_floor(entries[:-1], nights=2)
    assert only_last is not None and only_last.changes[(None, "m")][1] == 1
    assert history.noise_floor([], nights=14) is None


def test_drift_variance__only_what_case_noise_does_not_explain() -> None:
    # case noise of the PR's change 0.0004 (1 run each side); two nights of 1 run: the same
    assert drift_variance(Nightly(0.0004, 12, 1), 0.0004, (1, 1)) == 0.0
    # 3 times as much: the excess is the drift
    assert drift_variance(Nightly(0.0012, 12, 1), 0.0004, (1, 1)) == pytest.approx(0.0008)
    # less than case noise: nothing added
    assert drift_variance(Nightly(0.0003, 12, 1), 0.0004, (1, 1)) == 0.0
    # too few pairs to tell
    assert drift_variance(Nightly(0.01, 2, 1), 0.0004, (1, 1)) == 0.0
    # nights of 3 runs per case have a third of the case noise of a 1-run comparison
    assert drift_variance(Nightly(0.0004, 12, 3), 0.0004, (1, 1)) == pytest.approx(
        0.0004 - 0.0004 / 3
    )


def test_max_t__a_run_level_shift_the_nights_show_is_not_a_regression() -> None:
    # the whole run 6 points worse: significant against case noise alone (400 cases) ...
    base = np.ones(400)
    cand = base.copy()
    cand[::16] = 0.0  # 25 newly failing, none newly passing
    rows = np.arange(400)
    alone = Hypothesis(rows, base, cand, None, True, 0.0)
    [plain] = max_t([alone], 400, resamples=2000)
    assert plain.significant and plain.drift == 0.0
    # ... but consecutive nights on unchanged code moved ±6 points: that is drift, not the change
    nightly = Nightly(mean_square=0.06**2, pairs=13, runs=1, group="m")
    [drifting] = max_t([Hypothesis(rows, base, cand, None, True, 0.0, nightly=nightly)], 400)
    assert not drifting.significant
    case_noise = 25 / 400**2  # Σ(b − c)² / n²; two 1-run nights have the same
    assert drifting.drift == pytest.approx(np.sqrt(0.06**2 - case_noise))
    # nights that move no more than case noise leave the test as it was
    quiet = Nightly(mean_square=case_noise, pairs=13, runs=1)
    [same] = max_t([Hypothesis(rows, base, cand, None, True, 0.0, nightly=quiet)], 400)
    assert (same.p_value, same.drift) == (plain.p_value, 0.0)


IDS = [f"c{i:02d}" for i in range(40)]
CASES = [{"id": i, "input": "q", "expected": {"must_include": ["ok"]}} for i in IDS]


def test_run__the_report_and_the_comment_say_which_noise_figures_were_used(tmp_path) -> None:
    rules = {"metrics": {"generation.must_include": {"max_drop": 0.0}}}
    config = write_project(
        tmp_path, CASES, rules, baseline=BASELINE, history={"noise": {"nights": 14}}
    )

    def gate(failing: int, entries: list[dict[str, Any]], update: bool = False) -> dict:
        adapter = FakeAdapter(lambda case: {"answer": "no" if case.id < IDS[failing] else "ok"})
        options = RunOptions(
            config=config,
            out_dir=tmp_path / "out",
            update_baseline=update,
            progress=None,
            history=entries,
        )
        return run(options, adapter=adapter).report

    gate(0, [], update=True)
    # nights on unchanged code between 0.75 and 0.95: a ±0.1 noise floor at 40 cases
    values = [0.95, 0.75, 0.95, 0.75, 0.95, 0.85, 0.75, 0.95]
    nights = [
        night("a", {"generation.must_include": v}, date=f"2026-11-{d + 10}")
        for d, v in enumerate(values)
    ]
    report = gate(4, nights)  # 4 of 40 newly failing: p = 1/16 alone, not with that drift
    [check] = report["noise"]["checks"]
    assert report["noise"]["nights"][0] == "2026-11-10" and report["noise"]["runs"] == 1
    assert check["metric"] == "generation.must_include" and check["pairs"] == 7
    assert check["drift_sd"] > 0.1
    assert report["verdict"] == "pass"
    comment = render_summary(report, None)
    assert "**Noise floor** (A/A, 8 nights on unchanged code, 2026-11-10 … 2026-11-17" in comment
    assert r"run-level drift added to generation.must\_include ±0.17 (nights ±0.177)" in comment
    # no nights on record: no noise floor, and the same 4 cases fail the test
    alone = gate(4, [])
    assert alone["noise"] is None
    assert alone["verdict"] == "fail"
