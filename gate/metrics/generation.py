"""Generation metrics: deterministic checks of the answer text (no network, no model)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from gate.metrics import Batch


def normalize(text: str) -> str:
    """Casefold and collapse whitespace: phrase checks ignore case and line breaks."""
    return re.sub(r"\s+", " ", text.casefold()).strip()


def _phrases_present(answer: str, phrases: tuple[str, ...]) -> np.ndarray:
    text = normalize(answer)
    return np.array([normalize(p) in text for p in phrases], dtype=bool)


def must_include(batch: Batch) -> np.ndarray:
    """Fraction of ``expected.must_include`` phrases found in the answer.

    Case- and whitespace-insensitive substring match. NaN when the case lists no phrase; a run
    that failed has no answer and scores 0. Like promptfoo's ``icontains-all``, but graded.
    """
    out = np.full(len(batch.cases), np.nan)
    for i, (case, answer) in enumerate(zip(batch.cases, batch.answers, strict=True)):
        phrases = case.expected.must_include
        if phrases:
            out[i] = _phrases_present(answer, phrases).mean()
    return out


def must_not_include(batch: Batch) -> np.ndarray:
    """1 when none of ``expected.must_not_include`` is in the answer, else 0.

    Same matching as ``must_include``; NaN when the case lists no phrase. A failed run has no
    answer and so passes this check: it is counted by ``ops.error_rate`` instead.
    """
    out = np.full(len(batch.cases), np.nan)
    for i, (case, answer) in enumerate(zip(batch.cases, batch.answers, strict=True)):
        phrases = case.expected.must_not_include
        if phrases:
            out[i] = float(not _phrases_present(answer, phrases).any())
    return out


def _abstained(batch: Batch) -> np.ndarray:
    return np.array([bool(r.output.abstained) for r in batch.records], dtype=bool)


def _answerable(batch: Batch) -> np.ndarray:
    """1.0 / 0.0 from ``expected.answerable``, NaN where the case does not say."""
    flags = [c.expected.answerable for c in batch.cases]
    return np.array([np.nan if f is None else float(f) for f in flags])


def abstention_accuracy(batch: Batch) -> np.ndarray:
    """1 when the pipeline abstained exactly when ``expected.answerable`` is false.

    NaN when the case does not set ``answerable``. A failed run did not abstain.
    """
    answerable = _answerable(batch)
    correct = (answerable == 0) == _abstained(batch)
    return np.where(np.isnan(answerable), np.nan, correct.astype(float))


def false_refusal(batch: Batch) -> np.ndarray:
    """1 when an answerable case was refused; measured on ``answerable: true`` cases only."""
    answerable = _answerable(batch)
    return np.where(answerable == 1, _abstained(batch).astype(float), np.nan)


def false_answer(batch: Batch) -> np.ndarray:
    """1 when an unanswerable case was answered; measured on ``answerable: false`` cases only.

    A failed run gave no answer, so it is not a false answer.
    """
    answerable = _answerable(batch)
    answered = ~_abstained(batch) & ~batch.failed
    return np.where(answerable == 0, answered.astype(float), np.nan)
