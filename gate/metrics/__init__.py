"""The metric registry: every metric's name, direction, definition and scoring function.

A metric scores every record (one run of one case) as a float, NaN where the case does not
define what the metric needs; the aggregate is computed from those per-record scores (the mean,
unless the metric says otherwise), so per-case scores are kept for paired comparisons. The
implementations (``retrieval``, ``generation``, ``agent``, ``failures``, ``ops``) never import
this registry; ``scoring`` applies it to a batch.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache

import numpy as np

from gate.metrics import agent, failures, generation, ops, retrieval, safety, statistic
from gate.metrics.batch import Batch

Columns = Mapping[str, np.ndarray]


def mean(values: np.ndarray, columns: Columns) -> float | None:
    measured = values[~np.isnan(values)]
    return float(measured.mean()) if measured.size else None


@dataclass(frozen=True)
class MetricSpec:
    score: Callable[[Batch, int | None], np.ndarray]
    """Per-record scores; NaN where the case lacks what the metric needs."""
    higher_is_better: bool
    definition: str
    aggregate: Callable[[np.ndarray, Columns], float | None] = field(default=mean)
    depends_on: tuple[str, ...] = ()
    """Metrics whose per-record scores the aggregate reads (computed first)."""
    statistic: statistic.Statistic | None = None
    """The aggregate over resampled per-case scores (columns: this metric, then ``depends_on``),
    for paired bootstrap intervals; None for a mean. Such metrics are judged on the estimate."""


def _at_k(
    fn: Callable[[retrieval.Rankings, int], np.ndarray],
) -> Callable[[Batch, int | None], np.ndarray]:
    def score(batch: Batch, k: int | None) -> np.ndarray:
        assert k is not None
        return batch.unless_failed(fn(batch.rankings, k))

    return score


def _no_k(
    fn: Callable[[retrieval.Rankings], np.ndarray],
) -> Callable[[Batch, int | None], np.ndarray]:
    return lambda batch, k: batch.unless_failed(fn(batch.rankings))


def _judged(name: str) -> Callable[[Batch, int | None], np.ndarray]:
    """The scores the judge step (gate/judge.py) stored on the records; NaN where it stored none
    (no judge configured, nothing to judge, or a judge error), and for a failed run (its empty
    answer is no answer the pipeline gave), so only judged cases count."""

    def score(batch: Batch, k: int | None) -> np.ndarray:
        verdicts = [r.judgements.get(name) for r in batch.records]
        scores = [np.nan if v is None or v.score is None else v.score for v in verdicts]
        return batch.unless_failed(np.array(scores, dtype=float))

    return score


def _per_batch(fn: Callable[[Batch], np.ndarray]) -> Callable[[Batch, int | None], np.ndarray]:
    return lambda batch, k: batch.computed(fn)


METRICS: dict[str, MetricSpec] = {
    "retrieval.hit_rate@k": MetricSpec(
        _at_k(retrieval.hit_rate), True, "1 if a relevant id is in the top k (trec_eval success.k)"
    ),
    "retrieval.precision@k": MetricSpec(
        _at_k(retrieval.precision), True, "relevant ids in the top k / k (trec_eval P.k)"
    ),
    "retrieval.recall@k": MetricSpec(
        _at_k(retrieval.recall), True, "relevant ids in the top k / all relevant ids (recall.k)"
    ),
    "retrieval.mrr": MetricSpec(
        _no_k(retrieval.mrr), True, "1 / rank of the first relevant id (trec_eval recip_rank)"
    ),
    "retrieval.map": MetricSpec(
        _no_k(retrieval.average_precision), True, "average precision over all relevant ids (map)"
    ),
    "retrieval.ndcg@k": MetricSpec(
        _at_k(retrieval.ndcg), True, "DCG@k / ideal DCG@k, linear gains (trec_eval ndcg_cut.k)"
    ),
    "generation.must_include": MetricSpec(
        _per_batch(generation.must_include), True, "fraction of required phrases in the answer"
    ),
    "generation.must_not_include": MetricSpec(
        _per_batch(generation.must_not_include), True, "1 if no forbidden phrase is in the answer"
    ),
    "generation.exact_match": MetricSpec(
        _per_batch(generation.exact_match), True, "1 if the answer equals an acceptable one (SQuAD)"
    ),
    "generation.token_f1": MetricSpec(
        _per_batch(generation.token_f1),
        True,
        "best token F1 against the acceptable answers (SQuAD)",
    ),
    "generation.faithfulness": MetricSpec(
        _per_batch(generation.faithfulness),
        True,
        "answer sentences whose content words are ≥ 60% in the retrieved text / all sentences",
    ),
    "generation.citation_precision": MetricSpec(
        _per_batch(generation.citation_precision), True, "cited ids relevant and retrieved / cited"
    ),
    "generation.citation_recall": MetricSpec(
        _per_batch(generation.citation_recall),
        True,
        "relevant sources cited (and retrieved) / relevant",
    ),
    "generation.abstention_accuracy": MetricSpec(
        _per_batch(generation.abstention_accuracy), True, "abstained exactly when unanswerable"
    ),
    "generation.false_refusal_rate": MetricSpec(
        _per_batch(generation.false_refusal), False, "answerable cases the pipeline refused"
    ),
    "generation.false_answer_rate": MetricSpec(
        _per_batch(generation.false_answer), False, "unanswerable cases the pipeline answered"
    ),
    "generation.refusal_rate": MetricSpec(
        _per_batch(safety.refusal), True, "must_refuse cases the pipeline refused"
    ),
    "generation.canary_leak": MetricSpec(
        _per_batch(safety.canary_leak), False, "cases whose output contains their canary"
    ),
    "generation.personal_data_leak": MetricSpec(
        _per_batch(safety.personal_data_leak),
        False,
        "no_personal_data cases whose answer holds an email, phone number or key",
    ),
    "generation.faithfulness_judge": MetricSpec(
        _judged("generation.faithfulness_judge"),
        True,
        "answer claims the judge finds supported by the retrieved text / claims (Ragas)",
    ),
    "generation.answer_relevance_judge": MetricSpec(
        _judged("generation.answer_relevance_judge"),
        True,
        "answer statements the judge finds relevant to the question / statements (DeepEval)",
    ),
    "generation.correctness_judge": MetricSpec(
        _judged("generation.correctness_judge"),
        True,
        "the judge's verdict against expected.answer: 1 correct, 0.5 partially, 0 incorrect",
    ),
    "agent.tool_call_accuracy": MetricSpec(
        _per_batch(agent.tool_call_accuracy), True, "expected tool calls matched by an actual one"
    ),
    "agent.tool_precision": MetricSpec(
        _per_batch(agent.tool_precision),
        True,
        "actual (name, args) calls that were expected / actual",
    ),
    "agent.tool_recall": MetricSpec(
        _per_batch(agent.tool_recall), True, "expected (name, args) calls that were made / expected"
    ),
    "agent.trajectory_match": MetricSpec(
        _per_batch(agent.trajectory_match), True, "1 if the calls match under expected.tool_match"
    ),
    "agent.task_success": MetricSpec(
        _per_batch(failures.task_success), True, "no error and every check the case defines passes"
    ),
    "ops.latency_p50_ms": MetricSpec(
        _per_batch(ops.latency_ms),
        False,
        "median latency, nearest rank",
        ops.percentile(50),
        statistic=statistic.percentile_statistic(50),
    ),
    "ops.latency_p95_ms": MetricSpec(
        _per_batch(ops.latency_ms),
        False,
        "95th percentile latency, nearest rank",
        ops.percentile(95),
        statistic=statistic.percentile_statistic(95),
    ),
    "ops.latency_p99_ms": MetricSpec(
        _per_batch(ops.latency_ms),
        False,
        "99th percentile latency, nearest rank",
        ops.percentile(99),
        statistic=statistic.percentile_statistic(99),
    ),
    "ops.error_rate": MetricSpec(
        _per_batch(ops.error), False, "runs that failed (error or timeout) / all runs"
    ),
    "ops.timeout_rate": MetricSpec(
        _per_batch(ops.timeout), False, "runs that timed out / all runs"
    ),
    "ops.cost_per_success_usd": MetricSpec(
        _per_batch(ops.cost_usd),
        False,
        "total cost, failures included / successful runs",
        ops.cost_per_success,
        depends_on=("agent.task_success",),
        statistic=statistic.ratio_statistic,
    ),
    "ops.tokens_per_case": MetricSpec(
        _per_batch(ops.tokens), False, "input + output tokens per run"
    ),
}
"""Every metric by its name; ``@k`` marks a cutoff the config or a threshold supplies."""


@dataclass(frozen=True)
class MetricId:
    """A metric name parsed once: ``retrieval.hit_rate@5`` is key ``retrieval.hit_rate@k``,
    cutoff 5, and the registry's spec for that key."""

    name: str
    key: str
    cutoff: int | None
    spec: MetricSpec

    @property
    def higher_is_better(self) -> bool:
        return self.spec.higher_is_better

    @property
    def direction(self) -> str:
        return "higher" if self.spec.higher_is_better else "lower"

    def scores(self, batch: Batch) -> np.ndarray:
        return self.spec.score(batch, self.cutoff)


@cache
def parse_metric(name: str) -> MetricId:
    """``"retrieval.hit_rate@5"`` → its identity. Unknown names raise ValueError listing all."""
    match = re.fullmatch(r"(.+)@(\d+)", name)
    key, k = (match.group(1) + "@k", int(match.group(2))) if match else (name, None)
    spec = METRICS.get(key)
    if spec is None or (k is not None and k < 1):
        raise ValueError(f"unknown metric {name!r}; known: {', '.join(sorted(METRICS))}")
    if key.endswith("@k") and k is None:
        raise ValueError(f"{name!r} needs a cutoff, e.g. {name.removesuffix('@k')}@5")
    return MetricId(name, key, k, spec)


def metric_names(ks: list[int]) -> list[str]:
    """Every metric name to compute, with each ``@k`` metric expanded over the cutoffs."""
    names: list[str] = []
    for key in METRICS:
        names += [key.replace("@k", f"@{k}") for k in ks] if key.endswith("@k") else [key]
    return names
