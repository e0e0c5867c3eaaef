"""Time the retrieval measures against pytrec_eval (trec_eval's C code) on the same data.

    python -m bench.bench_retrieval [--queries 100000] [--depth 100] [--seed 0]

Ours: `build_rankings` from Python lists of string ids, then hit_rate@10, precision@10,
recall@10, mrr, map and ndcg@10. pytrec_eval: `RelevanceEvaluator(qrels, measures)` and
`evaluate(run)` for the same six measures. Building pytrec_eval's input dicts from the lists is
timed apart: a user holding a run file would have to build them too, but it is not trec_eval's
work. The script also checks that both give the same scores.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pytrec_eval

from gate.metrics import retrieval

OURS = {
    "success_10": lambda r: retrieval.hit_rate(r, 10),
    "P_10": lambda r: retrieval.precision(r, 10),
    "recall_10": lambda r: retrieval.recall(r, 10),
    "recip_rank": retrieval.mrr,
    "map": retrieval.average_precision,
    "ndcg_cut_10": lambda r: retrieval.ndcg(r, 10),
}


def make_data(
    n_queries: int, depth: int, seed: int
) -> tuple[list[list[str]], list[dict[str, int]]]:
    """Random rankings over a million ids; 5 relevant ids per query, graded 1-3, each
    retrieved (at a random rank) with probability 0.6."""
    rng = np.random.default_rng(seed)
    vocabulary = [f"doc-{i:07d}" for i in range(1_000_000)]
    picks = rng.integers(0, len(vocabulary), size=(n_queries, depth)).tolist()
    relevant_picks = rng.integers(0, len(vocabulary), size=(n_queries, 5)).tolist()
    grades = rng.integers(1, 4, size=(n_queries, 5)).tolist()
    placed = (rng.random((n_queries, 5)) < 0.6).tolist()
    ranks = rng.integers(0, depth, size=(n_queries, 5)).tolist()
    retrieved, relevance = [], []
    for q in range(n_queries):
        ids = [vocabulary[i] for i in picks[q]]
        relevant = [vocabulary[i] for i in relevant_picks[q]]
        for doc, is_placed, rank in zip(relevant, placed[q], ranks[q], strict=True):
            if is_placed:
                ids[rank] = doc
        # pytrec_eval's run is a dict, so give both sides duplicate-free rankings.
        retrieved.append(list(dict.fromkeys(ids)))
        relevance.append(dict(zip(relevant, grades[q], strict=True)))
    return retrieved, relevance


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=100_000)
    parser.add_argument("--depth", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    retrieved, relevance = make_data(args.queries, args.depth, args.seed)
    n_ids = sum(map(len, retrieved))
    print(f"{args.queries:,} queries, {n_ids:,} retrieved ids, {len(OURS)} measures")

    start = time.perf_counter()
    rankings = retrieval.build_rankings(retrieved, relevance)
    built = time.perf_counter()
    ours = {name: measure(rankings) for name, measure in OURS.items()}
    ours_done = time.perf_counter()

    start_dicts = time.perf_counter()
    run = {
        str(q): {doc: float(len(ids) - rank) for rank, doc in enumerate(ids)}
        for q, ids in enumerate(retrieved)
    }
    qrels = {str(q): grades for q, grades in enumerate(relevance)}
    dicts_done = time.perf_counter()
    evaluator = pytrec_eval.RelevanceEvaluator(qrels, set(OURS))
    evaluated = evaluator.evaluate(run)
    pytrec_done = time.perf_counter()

    ours_s = ours_done - start
    pytrec_s = pytrec_done - dicts_done
    print(
        f"ours:        {ours_s:6.2f} s  (build_rankings {built - start:.2f} s, "
        f"measures {ours_done - built:.2f} s)"
    )
    print(f"pytrec_eval: {pytrec_s:6.2f} s  (RelevanceEvaluator + evaluate)")
    print(f"             {dicts_done - start_dicts:6.2f} s  more to build its run and qrels dicts")
    print(f"ratio ours / pytrec_eval: {ours_s / pytrec_s:.2f}")

    worst = 0.0
    for name, scores in ours.items():
        expected = np.array([evaluated[str(q)][name] for q in range(len(retrieved))])
        worst = max(worst, float(np.max(np.abs(scores - expected))))
    print(f"largest difference from pytrec_eval over all measures and queries: {worst:.1e}")


if __name__ == "__main__":
    main()
