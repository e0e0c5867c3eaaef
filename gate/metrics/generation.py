"""Generation metrics: deterministic checks of the answer text (no network, no model).

Conventions shared by every metric here: a score is NaN where the case lacks the ``expected``
field the metric needs (it is not counted in the metric's n); a failed run (error or timeout)
produced no output, so every metric here is NaN on it (not measured, never a success by
default): its failure counts in ``ops.error_rate``, ``agent.task_success`` and the error budget.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from functools import lru_cache

import numpy as np

from gate.metrics.batch import Batch
from gate.run.records import Output


def normalize(text: str) -> str:
    """Casefold and collapse whitespace: phrase checks ignore case and line breaks."""
    # str.split's whitespace is re's \s; joining the words is several times faster than re.sub.
    return " ".join(text.casefold().split())


def _phrases_present(text: str, phrases: tuple[str, ...]) -> int:
    """How many of ``phrases`` are in the normalised answer ``text``."""
    return sum(_normalized_phrase(p) in text for p in phrases)


_normalized_phrase = lru_cache(maxsize=2**14)(normalize)
"""The golden set's phrases recur across cases (and every repeat): normalised once each."""


def must_include(batch: Batch) -> np.ndarray:
    """Fraction of ``expected.must_include`` phrases found in the answer.

    Case- and whitespace-insensitive substring match (``str.casefold``, see ``normalize``).
    NaN when the case lists no phrase, and for a failed run. promptfoo's ``icontains-all`` is
    the pass/fail version, with JavaScript's ``toLowerCase`` in place of casefolding.
    """
    out = np.full(len(batch.cases), np.nan)
    texts = batch.computed(_normalized_answers)
    for i, (case, text) in enumerate(zip(batch.cases, texts, strict=True)):
        phrases = case.expected.must_include
        if phrases:
            out[i] = _phrases_present(text, phrases) / len(phrases)
    return batch.unless_failed(out)


def must_not_include(batch: Batch) -> np.ndarray:
    """1 when none of ``expected.must_not_include`` is in the answer, else 0.

    Same matching as ``must_include``; NaN when the case lists no phrase, and for a failed run
    (no answer is not evidence of a clean one).
    """
    out = np.full(len(batch.cases), np.nan)
    texts = batch.computed(_normalized_answers)
    for i, (case, text) in enumerate(zip(batch.cases, texts, strict=True)):
        phrases = case.expected.must_not_include
        if phrases:
            out[i] = float(not _phrases_present(text, phrases))
    return batch.unless_failed(out)


def _normalized_answers(batch: Batch) -> list[str]:
    """Each run's answer, ``normalize``d once for the phrase checks and the refusal detector."""
    return [normalize(answer) for answer in batch.answers]


# --- SQuAD: exact match and token F1 ------------------------------------------------------------

_DROP_PUNCTUATION = str.maketrans("", "", string.punctuation)
_PUNCTUATION_BYTES = string.punctuation.encode()
_LOWER_BYTES = bytes.maketrans(string.ascii_uppercase.encode(), string.ascii_lowercase.encode())
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_ARTICLE_WORDS = frozenset(("a", "an", "the"))
_NOT_WORD_OR_SPACE = re.compile(r"[\x00-\x08\x0e-\x1b\x7f]")
"""The ASCII characters left once punctuation is deleted that are neither word characters nor
whitespace: only they can put a word boundary inside a whitespace-separated token."""


def squad_tokens(text: str) -> list[str]:
    """SQuAD v1.1's ``normalize_answer``, split into tokens.

    In SQuAD's order: lowercase, delete ASCII punctuation (``string.punctuation``, deleted, not
    replaced by a space: "state-of-the-art" becomes one token), replace the words a, an, the by
    a space, split on whitespace.
    """
    if not text.isascii():
        return _ARTICLES.sub(" ", text.lower().translate(_DROP_PUNCTUATION)).split()
    # The same steps, faster for ASCII text: one bytes.translate lowercases and deletes, and
    # where every token is whole words (no boundary inside one), an article is a whole token.
    kept = text.encode().translate(_LOWER_BYTES, _PUNCTUATION_BYTES).decode()
    if _NOT_WORD_OR_SPACE.search(kept):
        return _ARTICLES.sub(" ", kept).split()
    words = kept.split()
    return (
        words if _ARTICLE_WORDS.isdisjoint(words) else [w for w in words if w not in _ARTICLE_WORDS]
    )


_FEW_COMMON = 8
"""Up to this many common tokens, counting each in both lists beats building two Counters."""


def _f1(prediction: list[str], gold: list[str]) -> float:
    if not prediction or not gold:
        return float(prediction == gold)
    distinct = set(prediction)
    common = distinct.intersection(gold)
    if not common:
        return 0.0
    if len(distinct) == len(prediction) and len(set(gold)) == len(gold):
        same = len(common)  # no repeated token: the multiset intersection is the set's
    elif len(common) <= _FEW_COMMON:
        same = sum(min(prediction.count(word), gold.count(word)) for word in common)
    else:
        same = sum((Counter(prediction) & Counter(gold)).values())
    precision, recall = same / len(prediction), same / len(gold)
    return 2 * precision * recall / (precision + recall)


def gold_answers(answers: tuple[str, ...]) -> list[list[str]]:
    """The acceptable answers as ``squad_tokens``, without those that normalise to nothing.

    evaluate-v2.0.py's ``get_raw_scores`` drops such a gold answer (``["the", "Paris"]`` is
    ``["Paris"]``); where every one is dropped it scores the question as a no-answer one, which
    the golden set says with ``answerable: false`` instead, so the loader refuses that case
    (``empty_gold_answer``) and this list is never empty for a loaded case.
    """
    return [tokens for a in answers if (tokens := squad_tokens(a))]


def empty_gold_answer(answers: tuple[str, ...] | None) -> str | None:
    """Why ``expected.answer`` cannot be scored, or None: every acceptable answer normalises to
    nothing, so an empty (or failed) answer would score exact_match 1."""
    if answers is None or gold_answers(answers):
        return None
    return (
        f"every acceptable answer ({', '.join(map(repr, answers))}) is empty once SQuAD "
        "normalises it (case, punctuation and the articles a/an/the are dropped), so an empty "
        "answer would match it (fix: give the answer's words, or for a question without an "
        "answer drop `answer` and set `answerable: false`)"
    )


def exact_match(batch: Batch) -> np.ndarray:
    """1 when the normalised answer equals a normalised acceptable answer, else 0.

    ``max over a in gold_answers(expected.answer) of [squad_tokens(answer) == a]``: the
    ``exact`` of evaluate-v2.0.py (SQuAD v1.1's ``exact_match`` on answerable questions), with
    its rule that an acceptable answer normalising to nothing is ignored. NaN without
    ``expected.answer``, and for a failed run. Ragas' ``ExactMatch`` compares raw strings,
    without normalising.
    """
    return batch.unless_failed(batch.computed(_squad)[0])


def token_f1(batch: Batch) -> np.ndarray:
    """SQuAD's token F1, the best over the acceptable answers.

    For a prediction p and an acceptable answer g, both as ``squad_tokens``: common = the size
    of the multiset intersection, P = common / |p|, R = common / |g|, F1 = 2PR / (P + R), 0 when
    nothing is in common; an empty answer scores 0. The score is the max over
    ``gold_answers(expected.answer)`` (acceptable answers that normalise to nothing are ignored,
    as evaluate-v2.0.py does). NaN without ``expected.answer``, and for a failed run. SQuAD's
    ``f1``; no Ragas or DeepEval equivalent (Ragas' ``NonLLMStringSimilarity`` is
    character-based).
    """
    return batch.unless_failed(batch.computed(_squad)[1])


def _squad(batch: Batch) -> tuple[np.ndarray, np.ndarray]:
    """Per record: exact match and token F1 against its case's ``gold_answers`` (NaN without
    ``expected.answer``), in one pass that keeps no tokens (millions of short-lived lists)."""
    exact: list[float] = [math.nan] * len(batch.cases)
    f1: list[float] = [math.nan] * len(batch.cases)
    for i, (case, answer) in enumerate(zip(batch.cases, batch.answers, strict=True)):
        if case.expected.answer is None:
            continue
        golds = gold_answers(case.expected.answer)
        if golds:
            tokens = squad_tokens(answer)
            exact[i] = float(tokens in golds)
            f1[i] = max(_f1(tokens, gold) for gold in golds)
    return np.array(exact, dtype=np.float64), np.array(f1, dtype=np.float64)


# --- faithfulness --------------------------------------------------------------------------------

SUPPORT_THRESHOLD = 0.6
"""A sentence is supported when at least this fraction of its content words is in the retrieved
text: up to 40% may be missing (room for words the retrieved text phrases differently), while a
sentence half of whose words are new (2 of 4) is unsupported."""

STOPWORDS = frozenset(
    """a an the and or but if then so as of to in on at by for with from into onto about over
    under after before between through during is are was were be been being am do does did has
    have had having it its this that these those there here i you he she we they me him her us
    them my your his our their what which who whom whose when where why how can could will would
    shall should may might must also just than too very s t""".split()  # noqa: SIM905 (reads as text)
)
"""Words that carry no claim. Negations (not, no, never) are kept: they change a claim."""

_WORD = re.compile(r"\w+")
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+|\n+")


def content_words(text: str) -> set[str]:
    """Distinct casefolded words of ``text`` minus ``STOPWORDS``, with a crude plural fold
    ("keys" → "key", but not "access"), applied alike to the answer and the retrieved text."""
    words = (w for w in _WORD.findall(text.casefold()) if w not in STOPWORDS)
    return {w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w for w in words}


def _retrieved_words(output: Output) -> set[str] | None:
    """Content words of the retrieved texts; None when the output has no retrieved text to read.

    ``retrieved`` absent, or items that are ids only: not measurable. ``retrieved: []``: the
    pipeline retrieved nothing, so nothing supports its answer.
    """
    if output.retrieved is None:
        return None
    texts = [t for t in output.retrieved_texts() if t is not None]
    if output.retrieved and not texts:
        return None
    return content_words(" ".join(texts))


def faithfulness(batch: Batch) -> np.ndarray:
    """Fraction of the answer's sentences supported by the retrieved text.

    Sentences: the answer split after ``.``, ``!`` or ``?`` followed by whitespace, and at line
    breaks; a sentence without content words ("It is.") is no claim and is skipped. A sentence
    with content words W is supported when |W ∩ retrieved content words| / |W| ≥
    ``SUPPORT_THRESHOLD`` (0.6). Score = supported sentences / sentences with claims.

    NaN (not measured) when the output has no retrieved text (no ``retrieved``, or ids only),
    when the pipeline abstained (no claim made), and when the answer has no claim (empty, a
    failed run). ``retrieved: []`` with an answer scores 0.

    Limits: lexical. It sees words, not meaning: a paraphrase with other words is unsupported,
    and a sentence that reorders or negates retrieved words wrongly ("keys never expire" against
    "keys expire; never share them") is supported. Use it to catch answers that bring in facts
    absent from the context; the LLM judge (``generation.faithfulness_judge``) checks meaning.
    Ragas ``Faithfulness`` and DeepEval ``FaithfulnessMetric`` compute the same ratio over
    claims an LLM extracts and verifies.
    """
    out = np.full(len(batch.records), np.nan)
    abstained = batch.computed(refused)
    for i, (record, answer) in enumerate(zip(batch.records, batch.answers, strict=True)):
        if abstained[i]:
            continue
        context = _retrieved_words(record.output)
        if context is None:
            continue
        claims = [w for s in _SENTENCE_BREAK.split(answer) if (w := content_words(s))]
        if not claims:
            continue
        out[i] = np.mean([len(w & context) / len(w) >= SUPPORT_THRESHOLD for w in claims])
    return out


# --- citations -----------------------------------------------------------------------------------


def _citation_counts(batch: Batch) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per record: correct citations, distinct citations, relevant sources (NaN: not measured)."""
    correct, cited, relevant = ([math.nan] * len(batch.records) for _ in range(3))
    retrieved = batch.retrieved_ids
    for i, (case, record) in enumerate(zip(batch.cases, batch.records, strict=True)):
        sources = case.expected.sources
        citations = record.output.citations
        if not sources or citations is None or record.status != "ok":
            continue
        wanted = {s for s, grade in sources.items() if grade > 0}
        if not wanted:
            continue
        ids = set(citations)
        good = ids & wanted
        if record.output.retrieved is not None:
            good.intersection_update(retrieved[i])
        correct[i], cited[i], relevant[i] = len(good), len(ids), len(wanted)
    return (
        np.array(correct, dtype=np.float64),
        np.array(cited, dtype=np.float64),
        np.array(relevant, dtype=np.float64),
    )


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, NaN where the denominator is 0 or NaN."""
    out = np.full_like(numerator, np.nan)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def citation_precision(batch: Batch) -> np.ndarray:
    """Correct citations / distinct cited ids.

    A citation is correct when the id is an expected source with grade > 0 and the output
    retrieved it (a citation of something not retrieved is wrong; when the output does not
    report ``retrieved`` at all, only relevance is checked). NaN when the case has no source
    with grade > 0 (as the retrieval metrics), when the output reports no ``citations``, and
    when nothing is cited (0 / 0: ``citation_recall`` is 0 then), and for a failed run.
    Ragas' ``context_precision`` is the retrieval-side analogue; neither Ragas nor DeepEval
    scores citations against references.
    """
    correct, cited, _ = batch.computed(_citation_counts)  # shared with citation_recall
    return _ratio(correct, cited)


def citation_recall(batch: Batch) -> np.ndarray:
    """Correct citations (as ``citation_precision``) / expected sources with grade > 0.

    NaN when the case has no source with grade > 0, when the run reports no ``citations``, and
    for a failed run; ``citations: []`` scores 0. Ragas' ``context_recall`` is the
    retrieval-side analogue.
    """
    correct, _, relevant = batch.computed(_citation_counts)
    return _ratio(correct, relevant)


# --- abstention ----------------------------------------------------------------------------------

REFUSAL_PATTERNS = (
    r"\bi (?:don't|do not) know\b",
    r"\bi (?:cannot|can't|can not) (?:help|answer|assist)\b",
    r"\bi(?:'m| am) (?:unable|not able) to\b",
    r"\b(?:not enough|insufficient) information\b",
    r"\bi (?:don't|do not) have (?:enough|sufficient|any) information\b",
)
"""The refusal detector's phrases, matched anywhere in the casefolded answer (’ read as ')."""

_REFUSAL = re.compile("|".join(REFUSAL_PATTERNS))


def is_refusal(answer: str) -> bool:
    """Whether the answer text refuses: one of ``REFUSAL_PATTERNS`` occurs in it.

    Used only when the output does not say ``abstained``. An empty answer is not a refusal (an
    agent may answer with tool calls alone). A refusal phrase inside a real answer ("I don't
    know your plan, but on Business...") is read as a refusal: set ``abstained`` in the output
    where that matters.
    """
    return _refuses(normalize(answer))


def _refuses(text: str) -> bool:
    return _REFUSAL.search(text.replace("\u2019", "'")) is not None


def refused(batch: Batch) -> np.ndarray:
    """Per record: the output's ``abstained`` when it says, else ``is_refusal(answer)``."""
    texts = batch.computed(_normalized_answers)
    return np.array(
        [
            _refuses(text) if r.output.abstained is None else r.output.abstained
            for r, text in zip(batch.records, texts, strict=True)
        ],
        dtype=bool,
    )


def _answerable(batch: Batch) -> np.ndarray:
    """1.0 / 0.0 from ``expected.answerable``; NaN where the case does not say or the run failed
    (a failed run neither answered nor abstained: ``ops.error_rate`` counts it)."""
    flags = [c.expected.answerable for c in batch.cases]
    answerable = np.array([np.nan if f is None else float(f) for f in flags])
    answerable[batch.failed] = np.nan
    return answerable


def abstention_accuracy(batch: Batch) -> np.ndarray:
    """1 when the pipeline abstained exactly when ``expected.answerable`` is false, else 0.

    ``abstained`` as ``Batch.abstained`` (the output's flag or the refusal detector). NaN when
    the case does not set ``answerable`` and for failed runs. DeepEval and Ragas have no
    equivalent, and SQuAD v2 is not one: there the empty answer is the no-answer (right on a
    no-answer question), while here the empty answer does not abstain and "I don't know" does
    (docs/metrics.md, "Abstention is not SQuAD v2").
    """
    answerable = batch.computed(_answerable)
    correct = (answerable == 0) == batch.computed(refused)
    return np.where(np.isnan(answerable), np.nan, correct.astype(float))


def false_refusal(batch: Batch) -> np.ndarray:
    """1 when an answerable case was refused, else 0; measured on ``answerable: true`` cases
    whose run did not fail. Its mean is the false refusal rate."""
    return np.where(batch.computed(_answerable) == 1, batch.computed(refused).astype(float), np.nan)


def false_answer(batch: Batch) -> np.ndarray:
    """1 when an unanswerable case was answered, else 0; measured on ``answerable: false`` cases
    whose run did not fail. Its mean is the false answer (hallucination on no-answer) rate."""
    return np.where(
        batch.computed(_answerable) == 0, (~batch.computed(refused)).astype(float), np.nan
    )
