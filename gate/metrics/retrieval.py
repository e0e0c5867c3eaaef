"""Retrieval measures, computed the way trec_eval computes them.

Every measure takes the `Rankings` built once by `build_rankings` and returns one float64 score
per case, NaN where the case is not measured. Averaging is left to the caller: trec_eval's "all"
row is the mean of its per-query values, which is `np.nanmean` of ours whenever every query has
a relevant id (see "Queries without relevant ids" below).

Choices where trec_eval has no answer or where we depart from it, with the evidence
(usnistgov/trec_eval, version 9):

- Duplicate ids. trec_eval refuses a run that retrieves a docno twice for a query
  (`form_res_rels.c`: "duplicate docs", the measure fails and trec_eval exits), and
  pytrec_eval's run is a dict, so it cannot hold one. A pipeline may well return a chunk twice,
  so we keep the first occurrence and drop the later ones; the ranks close up behind it. Our
  scores are then exactly trec_eval's on the de-duplicated run, which is the run a user would
  have to hand trec_eval.
- Queries without relevant ids. trec_eval evaluates every query that has both results and
  qrels (`trec_eval.c`); a query whose qrels are all grade 0 scores 0 in every measure and
  still counts in `num_q`, pulling the mean down, although recall and AP are 0/0 for it. We
  return NaN instead ("not measured"): the gate reports no value rather than a made-up 0.
  Such a query must be dropped from a trec_eval run to compare averages.
- Cases without `expected.sources` (relevance None) are NaN too; trec_eval skips a query
  that has no qrels.
- The empty ranking scores 0 where the case has relevant ids. trec_eval cannot see an empty
  ranking (a query without result lines is skipped, or counts as 0 with `-c`); pytrec_eval
  scores `{qid: {}}` as 0, as we do. A run that failed (error, timeout) returned no ranking
  at all: the registry scores it NaN, as trec_eval skips a query without result lines (the
  failure counts in `ops.error_rate` and the error budget).
- Relevance: grade >= 1 is relevant for the binary measures (trec_eval's default
  `-l 1`); nDCG uses the grade itself as the gain. Grade 0 and ids missing from the
  expected sources are not relevant; negative grades (trec_eval's "unjudged") count as 0.
- Ranking: the order given by the pipeline; trec_eval re-sorts by score (ties by docno
  descending), which callers comparing with trec_eval files must do themselves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Scores = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Rankings:
    """Per-case retrieval data built once and shared by every retrieval measure."""

    gains: npt.NDArray[np.float64]
    """(n_cases, depth): grade of the item at each rank (0: not relevant or unjudged), 0-padded."""
    n_retrieved: npt.NDArray[np.int64]
    """(n_cases,): number of distinct ids retrieved."""
    n_relevant: npt.NDArray[np.int64]
    """(n_cases,): number of ids with grade > 0 in the expected sources, retrieved or not."""
    ideal: npt.NDArray[np.float64]
    """(n_cases, depth_ideal): the expected grades > 0 sorted descending, 0-padded."""
    measured: npt.NDArray[np.bool_]
    """(n_cases,): the case has at least one relevant id."""
    is_relevant: npt.NDArray[np.bool_]
    """(n_cases, depth): `gains > 0`, kept because every binary measure needs it."""

    @property
    def n_cases(self) -> int:
        return int(self.measured.shape[0])


def build_rankings(
    retrieved: Sequence[Sequence[str]], relevance: Sequence[Mapping[str, int] | None]
) -> Rankings:
    """Build the shared per-case arrays from ranked ids and `{id: grade}` judgements.

    `retrieved[i]` is case i's ranked id list (best first, may be empty); a repeated id counts
    once, at its first rank, and the later copies are dropped so the ranks close up.
    `relevance[i]` is case i's `{id: grade}`, or None when the case has no expected sources.
    """
    if len(retrieved) != len(relevance):
        raise ValueError(f"retrieved has {len(retrieved)} cases but relevance has {len(relevance)}")
    n_cases = len(retrieved)
    n_retrieved: list[int] = []
    n_judged: list[int] = []
    grades: list[int] = []
    hit_case: list[int] = []
    hit_rank: list[int] = []
    hit_grade: list[int] = []
    # The one loop over cases. It touches each retrieved id once (building the set) and
    # looks up only the judged ids, so its cost is one hash per retrieved id.
    for case, (ids, judged) in enumerate(zip(retrieved, relevance, strict=True)):
        distinct = set(ids)
        n_retrieved.append(len(distinct))
        if not judged:
            n_judged.append(0)
            continue
        n_judged.append(len(judged))
        grades.extend(judged.values())
        found = distinct.intersection(judged)
        if not found:
            continue
        if len(distinct) < len(ids):
            ids = list(dict.fromkeys(ids))
        for doc in found:
            grade = judged[doc]
            if grade > 0:
                hit_case.append(case)
                hit_rank.append(ids.index(doc))
                hit_grade.append(grade)

    retrieved_counts = np.array(n_retrieved, dtype=np.int64)
    # Width at least 1 so that row-wise reductions (argmax) work when nothing was retrieved.
    gains = np.zeros((n_cases, max(int(retrieved_counts.max(initial=0)), 1)))
    gains[hit_case, hit_rank] = hit_grade

    grade_case = np.repeat(np.arange(n_cases), np.array(n_judged, dtype=np.int64))
    grade_values = np.array(grades, dtype=np.float64)
    positive = grade_values > 0
    grade_case, grade_values = grade_case[positive], grade_values[positive]
    relevant_counts = np.bincount(grade_case, minlength=n_cases).astype(np.int64)
    # grade_case is already non-decreasing: sort by case, then grade descending.
    order = np.lexsort((-grade_values, grade_case))
    grade_case, grade_values = grade_case[order], grade_values[order]
    row_start = np.cumsum(relevant_counts) - relevant_counts
    ideal = np.zeros((n_cases, max(int(relevant_counts.max(initial=0)), 1)))
    ideal[grade_case, np.arange(grade_case.size) - row_start[grade_case]] = grade_values

    return Rankings(
        gains=gains,
        n_retrieved=retrieved_counts,
        n_relevant=relevant_counts,
        ideal=ideal,
        measured=relevant_counts > 0,
        is_relevant=gains > 0,
    )


def hit_rate(r: Rankings, k: int) -> Scores:
    """Whether a relevant id is in the top k.

    hit_rate@k = 1 if any(grade(rank i) > 0 for i <= k) else 0

    Edge cases: the empty ranking and a ranking without relevant ids score 0; a case without
    relevant ids is NaN. trec_eval `success.k` (`success_k` in pytrec_eval); ranx `hit_rate@k`.
    """
    _check_cutoff(k)
    return _measured_only(r, r.is_relevant[:, :k].any(axis=1))


def precision(r: Rankings, k: int) -> Scores:
    """Share of the top k that is relevant, always divided by k.

    precision@k = |relevant in top k| / k

    Edge cases: fewer than k retrieved still divides by k (trec_eval assumes non-relevant
    items fill the rest), so the empty ranking scores 0; a case without relevant ids is NaN.
    trec_eval `P_k`; ranx `precision@k`. Ragas `IDBasedContextPrecision` divides by the
    number retrieved instead, which is P_k only when exactly k items were retrieved.
    """
    _check_cutoff(k)
    found = r.is_relevant[:, :k].sum(axis=1)
    return _measured_only(r, found / np.float64(k))


def recall(r: Rankings, k: int) -> Scores:
    """Share of the case's relevant ids, retrieved or not, found in the top k.

    recall@k = |relevant in top k| / |ids with grade > 0|

    Edge cases: the empty ranking scores 0; a case without relevant ids is NaN (0/0).
    trec_eval `recall_k`; ranx `recall@k`. Ragas `IDBasedContextRecall` is recall@k with k
    at least the number retrieved.
    """
    _check_cutoff(k)
    found = r.is_relevant[:, :k].sum(axis=1)
    return _divide_measured(r, found.astype(np.float64), r.n_relevant.astype(np.float64))


def mrr(r: Rankings) -> Scores:
    """Reciprocal rank of the first relevant id, with no cutoff.

    mrr = 1 / (rank of the first relevant id), or 0 when none is retrieved

    Edge cases: the empty ranking scores 0; a case without relevant ids is NaN.
    trec_eval `recip_rank`; ranx `mrr`.
    """
    first = r.is_relevant.argmax(axis=1)
    found = r.is_relevant[np.arange(r.n_cases), first]
    return _measured_only(r, np.where(found, 1.0 / (first + 1), 0.0))


def average_precision(r: Rankings) -> Scores:
    """Average precision over all relevant ids, retrieved or not, with no cutoff.

    AP = sum(precision@i for each rank i holding a relevant id) / |ids with grade > 0|

    Edge cases: relevant ids never retrieved add 0 to the sum but count in the divisor; the
    empty ranking scores 0; a case without relevant ids is NaN. trec_eval `map` (per query);
    ranx `map`. Ragas / DeepEval context precision divide by the relevant ids retrieved
    instead, and judge relevance with an LLM.
    """
    ranks = np.arange(1, r.is_relevant.shape[1] + 1)
    precision_at = np.cumsum(r.is_relevant, axis=1) / ranks
    summed = np.where(r.is_relevant, precision_at, 0.0).sum(axis=1)
    return _divide_measured(r, summed, r.n_relevant.astype(np.float64))


def ndcg(r: Rankings, k: int) -> Scores:
    """Normalised discounted cumulative gain of the top k, with graded relevance.

    ndcg@k = sum(grade_i / log2(i + 1), i <= k) / the same sum over the ideal ranking

    The gain is the integer grade (linear, not 2^grade - 1); the ideal ranking is the case's
    expected grades sorted descending and cut at k. Edge cases: the empty ranking scores 0; a
    case without relevant ids is NaN. trec_eval `ndcg_cut_k` (older trec_eval releases divided
    by log2(i) from rank 2 on, leaving rank 2 undiscounted); ranx `ndcg@k`.
    """
    _check_cutoff(k)
    discount = 1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64))
    gains, ideal = r.gains[:, :k], r.ideal[:, :k]
    dcg = gains @ discount[: gains.shape[1]]
    ideal_dcg = ideal @ discount[: ideal.shape[1]]
    return _divide_measured(r, dcg, ideal_dcg)


def _check_cutoff(k: int) -> None:
    # trec_eval: "Cutoffs must be positive"; k = 0 would divide by zero in precision@k.
    if k < 1:
        raise ValueError(f"a retrieval cutoff k must be a positive integer, got {k!r}")


def _measured_only(r: Rankings, values: npt.ArrayLike) -> Scores:
    return np.where(r.measured, values, np.nan)


def _divide_measured(
    r: Rankings, numerator: npt.NDArray[np.float64], denominator: npt.NDArray[np.float64]
) -> Scores:
    # A measured case has a relevant id, so its denominator is positive.
    out = np.full(r.n_cases, np.nan)
    np.divide(numerator, denominator, out=out, where=r.measured)
    return out
