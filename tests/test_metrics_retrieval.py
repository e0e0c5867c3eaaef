"""Retrieval measures against hand-computed cases, trec_eval's own test run and pytrec_eval."""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pytrec_eval

from gate.metrics import retrieval
from gate.metrics.retrieval import Rankings, build_rankings

DATA = Path(__file__).parent / "data"
TREC_EVAL = DATA / "oracles" / "trec_eval"

Measure = Callable[[Rankings, int], np.ndarray]
MEASURES: dict[str, Measure] = {
    "hit_rate": retrieval.hit_rate,
    "precision": retrieval.precision,
    "recall": retrieval.recall,
    "mrr": lambda r, k: retrieval.mrr(r),
    "map": lambda r, k: retrieval.average_precision(r),
    "ndcg": retrieval.ndcg,
}
TREC_NAMES = {"success": "hit_rate", "P": "precision", "recall": "recall", "ndcg_cut": "ndcg"}


def ours(r: Rankings, trec_name: str) -> np.ndarray:
    """Our per-case scores for a trec_eval measure name: `P_5`, `recip_rank`, `map`, ..."""
    if trec_name == "recip_rank":
        return retrieval.mrr(r)
    if trec_name == "map":
        return retrieval.average_precision(r)
    match = re.fullmatch(r"(success|P|recall|ndcg_cut)_(\d+)", trec_name)
    assert match, trec_name
    return MEASURES[TREC_NAMES[match.group(1)]](r, int(match.group(2)))


# --- hand-computed cases (tests/data/retrieval_cases.json, each with its arithmetic) ---

HAND_CASES = json.loads((DATA / "retrieval_cases.json").read_text())


@pytest.mark.parametrize(
    ("case", "measure"),
    [(case, measure) for case in HAND_CASES for measure in MEASURES],
    ids=[f"{case['name']}-{measure}" for case in HAND_CASES for measure in MEASURES],
)
def test_measure__hand_computed(case: dict[str, Any], measure: str) -> None:
    r = build_rankings([case["retrieved"]], [case["relevance"]])
    (value,) = MEASURES[measure](r, case["k"])
    expected = case["expected"][measure]
    if expected is None:
        assert np.isnan(value), case["why"]
    else:
        assert value == pytest.approx(expected, rel=1e-12, abs=1e-15), case["why"]


def test_build_rankings__duplicates_dropped_and_ranks_close_up() -> None:
    r = build_rankings([["a", "x", "a", "b", "x", "y"]], [{"x": 1, "y": 2, "z": 3, "b": 0}])
    assert r.n_retrieved.tolist() == [4]
    assert r.gains.tolist() == [[0.0, 1.0, 0.0, 2.0]]
    assert r.n_relevant.tolist() == [3]
    assert r.ideal.tolist() == [[3.0, 2.0, 1.0]]


def test_build_rankings__negative_grade_counts_as_0() -> None:
    # trec_eval reads a negative grade as "unjudged": neither relevant nor a negative gain.
    r = build_rankings([["u", "x"]], [{"u": -1, "x": 2}])
    assert r.gains.tolist() == [[0.0, 2.0]]
    assert r.n_relevant.tolist() == [1]
    assert retrieval.ndcg(r, 2)[0] == pytest.approx((2 / np.log2(3)) / 2)  # DCG@2 / IDCG@2


def test_build_rankings__no_cases() -> None:
    r = build_rankings([], [])
    for measure in MEASURES.values():
        assert measure(r, 3).shape == (0,)


def test_build_rankings__lengths_must_match() -> None:
    with pytest.raises(ValueError, match="2 cases but relevance has 1"):
        build_rankings([["a"], ["b"]], [{"a": 1}])


@pytest.mark.parametrize("measure", ["hit_rate", "precision", "recall", "ndcg"])
def test_cutoff__must_be_positive(measure: str) -> None:
    r = build_rankings([["a"]], [{"a": 1}])
    with pytest.raises(ValueError, match="positive integer, got 0"):
        MEASURES[measure](r, 0)


# --- trec_eval's own test run (data/oracles/trec_eval) ---


@pytest.fixture(scope="module")
def trec_eval_oracle() -> tuple[list[str], Rankings, dict[tuple[str, str], float]]:
    qrels: dict[str, dict[str, int]] = {}
    for line in (TREC_EVAL / "qrels.test").read_text().splitlines():
        qid, _, docno, grade = line.split()
        qrels.setdefault(qid, {})[docno] = int(grade)
    results: dict[str, list[tuple[float, str]]] = {}
    for line in (TREC_EVAL / "results.test").read_text().splitlines():
        qid, _, docno, _, score, _ = line.split()
        results.setdefault(qid, []).append((float(score), docno))
    # trec_eval evaluates the queries with both results and qrels, ranked by score descending,
    # ties broken by docno descending; the RANK column is ignored.
    qids = sorted(qid for qid in results if qid in qrels)
    ranked = [[docno for _, docno in sorted(results[qid], reverse=True)] for qid in qids]
    rankings = build_rankings(ranked, [qrels[qid] for qid in qids])
    printed: dict[tuple[str, str], float] = {}
    for line in (TREC_EVAL / "out.test.aq").read_text().splitlines():
        measure, qid, value = line.split()
        if measure not in ("runid", "relstring"):
            printed[measure, qid] = float(value)
    return qids, rankings, printed


ORACLE_MEASURE = re.compile(r"recip_rank|map|(success|P|recall|ndcg_cut)_\d+")
PRINTED = 5e-5 + 1e-9  # trec_eval prints 4 decimals


def test_trec_eval__per_query_and_all(
    trec_eval_oracle: tuple[list[str], Rankings, dict[tuple[str, str], float]],
) -> None:
    qids, rankings, printed = trec_eval_oracle
    names = sorted({m for m, _ in printed if ORACLE_MEASURE.fullmatch(m)})
    assert len(names) == 2 + 3 + 3 * 9  # recip_rank, map, success_1,5,10, P/recall/ndcg_cut x 9
    # Every query in the run has relevant docs, so trec_eval's num_q is our measured count and
    # its "all" row (the mean over num_q queries) is our nanmean.
    assert printed["num_q", "all"] == rankings.measured.sum() == len(qids) == 3
    wrong = []
    for name in names:
        scores = ours(rankings, name)
        for qid, value in [*zip(qids, scores, strict=True), ("all", np.nanmean(scores))]:
            if abs(value - printed[name, qid]) > PRINTED:
                wrong.append(f"{name} {qid}: ours {value:.6f}, trec_eval {printed[name, qid]}")
    assert not wrong, "\n".join(wrong)


def test_trec_eval__counts(
    trec_eval_oracle: tuple[list[str], Rankings, dict[tuple[str, str], float]],
) -> None:
    qids, rankings, printed = trec_eval_oracle
    relevant_retrieved = rankings.is_relevant.sum(axis=1)
    for i, qid in enumerate(qids):
        assert rankings.n_retrieved[i] == printed["num_ret", qid]
        assert rankings.n_relevant[i] == printed["num_rel", qid]
        assert relevant_retrieved[i] == printed["num_rel_ret", qid]
    assert relevant_retrieved.sum() == printed["num_rel_ret", "all"]


# --- pytrec_eval (trec_eval's C code) on random graded judgements ---

CUTOFFS = (1, 3, 5, 10, 50)  # 50 is deeper than any ranking below
PYTREC_MEASURES = {"recip_rank", "map"} | {
    f"{name}.{','.join(map(str, CUTOFFS))}" for name in ("P", "recall", "ndcg_cut", "success")
}
PYTREC_NAMES = ["recip_rank", "map"] + [
    f"{name}_{k}" for name in ("P", "recall", "ndcg_cut", "success") for k in CUTOFFS
]


def _random_judgements(seed: int = 20240501, n_cases: int = 400) -> tuple[list[list[str]], list]:
    """Duplicate-free rankings of depth 0-40 and graded judgements, some with nothing relevant."""
    rng = random.Random(seed)
    retrieved: list[list[str]] = []
    relevance: list[dict[str, int]] = []
    for case in range(n_cases):
        pool = [f"q{case}-d{i}" for i in range(45)]
        depth = 0 if case % 9 == 0 else rng.randint(1, 40)
        retrieved.append(rng.sample(pool, depth))
        judged = rng.sample(pool, rng.randint(1, 12))
        top_grade = 0 if case % 7 == 0 else 3  # every 7th case: judged, nothing relevant
        relevance.append({doc: rng.randint(0, top_grade) for doc in judged})
    return retrieved, relevance


def _pytrec_eval(retrieved: list[list[str]], relevance: list[dict[str, int]]) -> dict:
    # Distinct descending scores give pytrec_eval exactly our order (no ties to break).
    run = {
        str(case): {doc: float(len(ids) - rank) for rank, doc in enumerate(ids)}
        for case, ids in enumerate(retrieved)
    }
    qrels = {str(case): grades for case, grades in enumerate(relevance)}
    evaluated = pytrec_eval.RelevanceEvaluator(qrels, PYTREC_MEASURES).evaluate(run)
    return {
        name: np.array([evaluated[str(c)][name] for c in range(len(run))]) for name in PYTREC_NAMES
    }


@pytest.fixture(scope="module")
def random_judgements() -> tuple[list[list[str]], list[dict[str, int]], dict]:
    retrieved, relevance = _random_judgements()
    return retrieved, relevance, _pytrec_eval(retrieved, relevance)


@pytest.mark.parametrize("name", PYTREC_NAMES)
def test_pytrec_eval__random_graded(name: str, random_judgements: tuple) -> None:
    retrieved, relevance, expected = random_judgements
    r = build_rankings(retrieved, relevance)
    assert 0.5 < r.measured.mean() < 1  # both kinds of case are present
    np.testing.assert_allclose(ours(r, name)[r.measured], expected[name][r.measured], atol=1e-9)


@pytest.mark.parametrize("name", PYTREC_NAMES)
def test_pytrec_eval__duplicates_score_as_the_deduplicated_run(
    name: str, random_judgements: tuple
) -> None:
    retrieved, relevance, expected = random_judgements
    rng = random.Random(3)
    with_copies = []
    for ids in retrieved:
        ids = list(ids)
        for _ in range(len(ids) // 4):
            ids.insert(rng.randint(ids.index(doc := rng.choice(ids)) + 1, len(ids)), doc)
        with_copies.append(ids)
    assert sum(map(len, with_copies)) > sum(map(len, retrieved))
    r = build_rankings(with_copies, relevance)
    np.testing.assert_allclose(ours(r, name)[r.measured], expected[name][r.measured], atol=1e-9)


@pytest.mark.parametrize("name", PYTREC_NAMES)
def test_no_relevant_ids__nan_where_trec_eval_says_0(name: str, random_judgements: tuple) -> None:
    retrieved, relevance, expected = random_judgements
    r = build_rankings(retrieved, relevance)
    unmeasured = ~r.measured
    assert all(max(relevance[i].values()) == 0 for i in np.flatnonzero(unmeasured))
    assert np.isnan(ours(r, name)[unmeasured]).all()
    assert (expected[name][unmeasured] == 0).all()
