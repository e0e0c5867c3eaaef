"""Generation metrics on hand-computed cases: SQuAD's EM/F1, faithfulness, citations, abstention."""

from __future__ import annotations

import json
import math
import re
import string
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from builders import aggregate, batch, documented, run, score, scores

from gate.metrics import METRICS, generation

SQUAD_CASES = json.loads((Path(__file__).parent / "data" / "metrics" / "squad.json").read_text())

# --- exact_match, token_f1 (tests/data/metrics/squad.json, each with its arithmetic) ---


@pytest.mark.parametrize("case", SQUAD_CASES, ids=[c["name"] for c in SQUAD_CASES])
def test_exact_match__squad_cases(case: dict[str, Any]) -> None:
    value = score(
        "generation.exact_match", {"answer": case["answers"]}, {"answer": case["prediction"]}
    )

    assert value == case["exact_match"], case["why"]


@pytest.mark.parametrize("case", SQUAD_CASES, ids=[c["name"] for c in SQUAD_CASES])
def test_token_f1__squad_cases(case: dict[str, Any]) -> None:
    value = score(
        "generation.token_f1", {"answer": case["answers"]}, {"answer": case["prediction"]}
    )

    assert value == pytest.approx(case["token_f1"]), case["why"]


def test_token_f1__articles_and_punctuation_ignored() -> None:
    assert score("generation.token_f1", {"answer": "An apple."}, {"answer": "apple"}) == 1.0


def test_squad_tokens__follow_squad_order_of_steps() -> None:
    # Punctuation goes before articles: "the-end" -> "theend", which is no article.
    assert generation.squad_tokens("The-end, a  cat!") == ["theend", "cat"]


@pytest.mark.parametrize("name", ["generation.exact_match", "generation.token_f1"])
def test_exact_match_and_f1__nan_without_expected_answer(name: str) -> None:
    assert math.isnan(score(name, {"must_include": ["x"]}, {"answer": "x"}))


@pytest.mark.parametrize("name", ["generation.exact_match", "generation.token_f1"])
def test_exact_match_and_f1__failed_run_is_not_measured(name: str) -> None:
    assert math.isnan(score(name, {"answer": "Denver"}, status="error"))
    # Not even where an acceptable answer normalises to nothing, as the empty answer would.
    assert math.isnan(score(name, {"answer": ["the", "Denver"]}, status="error"))


def test_exact_match__missing_answer_field_is_the_empty_answer() -> None:
    assert score("generation.exact_match", {"answer": "Denver"}, {"retrieved": []}) == 0.0


# --- faithfulness ---

CONTEXT = [{"id": "doc", "text": "Rotate API keys every 90 days in the security portal."}]


def test_faithfulness__half_the_sentences_supported() -> None:
    # "Rotate your keys every 90 days.": {rotate, key, every, 90, day}, all in the context.
    # "Keys are stored on the moon.": {key, stored, moon}, 1 of 3 in the context < 0.6.
    answer = "Rotate your keys every 90 days. Keys are stored on the moon."

    assert score("generation.faithfulness", None, {"answer": answer, "retrieved": CONTEXT}) == 0.5


def test_faithfulness__supported_at_exactly_the_threshold() -> None:
    # {rotate, api, key, weekly, moon}: 3 of 5 = 0.6 are in the context, which is enough.
    answer = "Rotate API keys weekly, moon"

    assert score("generation.faithfulness", None, {"answer": answer, "retrieved": CONTEXT}) == 1.0


def test_faithfulness__below_the_threshold_unsupported() -> None:
    # {rotate, api, key, weekly, moon, sun}: 3 of 6 = 0.5 < 0.6.
    answer = "Rotate API keys weekly, moon and sun"

    assert score("generation.faithfulness", None, {"answer": answer, "retrieved": CONTEXT}) == 0.0


def test_faithfulness__texts_of_all_retrieved_items_are_joined() -> None:
    retrieved = [
        "ids-only",
        {"id": "a", "text": "Keys rotate"},
        {"id": "b", "text": "every 90 days"},
    ]

    value = score(
        "generation.faithfulness",
        None,
        {"answer": "Keys rotate every 90 days.", "retrieved": retrieved},
    )

    assert value == 1.0


def test_faithfulness__sentences_split_at_line_breaks_and_claimless_ones_skipped() -> None:
    # "It is." has no content word; the two lines are two claims, one supported.
    answer = "It is.\nRotate keys\nFly to Mars"

    assert score("generation.faithfulness", None, {"answer": answer, "retrieved": CONTEXT}) == 0.5


def test_faithfulness__lexical_limit_one_added_negation_passes() -> None:
    # {key, not, rotate}: "not" is not in the context, 2 of 3 ≥ 0.6 still; the limit is lexical.
    answer = "Keys do not rotate."
    context = [{"id": "doc", "text": "Keys rotate."}]

    assert score("generation.faithfulness", None, {"answer": answer, "retrieved": context}) == 1.0
    assert generation.content_words(answer) == {"key", "not", "rotate"}


@pytest.mark.parametrize(
    ("output", "why"),
    [
        ({"answer": "Rotate keys.", "retrieved": ["doc-1", "doc-2"]}, "ids only: nothing to read"),
        ({"answer": "Rotate keys."}, "no retrieved field"),
        ({"answer": "", "retrieved": CONTEXT}, "empty answer: no claim"),
        ({"answer": "It is what it is.", "retrieved": CONTEXT}, "only stopwords: no claim"),
        ({"answer": "Rotate keys.", "retrieved": CONTEXT, "abstained": True}, "abstained"),
        ({"answer": "I don't know.", "retrieved": CONTEXT}, "refusal detected: abstained"),
    ],
)
def test_faithfulness__nan_when_not_measured(output: dict[str, Any], why: str) -> None:
    assert math.isnan(score("generation.faithfulness", None, output)), why


def test_faithfulness__nan_for_a_failed_run() -> None:
    assert math.isnan(score("generation.faithfulness", None, status="timeout"))


def test_faithfulness__nothing_retrieved_supports_nothing() -> None:
    assert (
        score("generation.faithfulness", None, {"answer": "Rotate keys.", "retrieved": []}) == 0.0
    )


# --- citation_precision, citation_recall ---

SOURCES = {"a": 2, "b": 1, "c": 0}


def test_citations__hand_computed() -> None:
    # Distinct cited ids a, c, b, d. Correct: a (relevant, retrieved). c has grade 0, b was not
    # retrieved, d is not a source. Precision 1/4; recall: 1 of the relevant a, b = 1/2.
    output = {"retrieved": ["a", "c", "d"], "citations": ["a", "c", "b", "d", "a"]}

    assert score("generation.citation_precision", {"sources": SOURCES}, output) == 0.25
    assert score("generation.citation_recall", {"sources": SOURCES}, output) == 0.5


def test_citations__without_reported_retrieval_only_relevance_is_checked() -> None:
    output = {"citations": ["a", "b"]}

    assert score("generation.citation_precision", {"sources": SOURCES}, output) == 1.0
    assert score("generation.citation_recall", {"sources": SOURCES}, output) == 1.0


def test_citations__retrieved_items_with_text_count_by_id() -> None:
    output = {"retrieved": [{"id": "a", "text": "..."}], "citations": ["a"]}

    assert score("generation.citation_precision", {"sources": ["a"]}, output) == 1.0


def test_citations__nothing_cited_precision_nan_recall_zero() -> None:
    output = {"retrieved": ["a"], "citations": []}

    assert math.isnan(score("generation.citation_precision", {"sources": SOURCES}, output))
    assert score("generation.citation_recall", {"sources": SOURCES}, output) == 0.0


def test_citations__failed_run_is_not_measured() -> None:
    assert math.isnan(score("generation.citation_precision", {"sources": SOURCES}, status="error"))
    assert math.isnan(score("generation.citation_recall", {"sources": SOURCES}, status="error"))


@pytest.mark.parametrize(
    ("expected", "output", "why"),
    [
        ({"answer": "x"}, {"citations": ["a"]}, "no expected sources"),
        ({"sources": {"a": 0}}, {"citations": ["a"]}, "no source with grade > 0"),
        (
            {"sources": ["a"]},
            {"answer": "x", "retrieved": ["a"]},
            "the output reports no citations",
        ),
    ],
)
@pytest.mark.parametrize("name", ["generation.citation_precision", "generation.citation_recall"])
def test_citations__nan_when_not_measured(
    name: str, expected: dict[str, Any], output: dict[str, Any], why: str
) -> None:
    assert math.isnan(score(name, expected, output)), why


# --- refusal detector, abstention ---


@pytest.mark.parametrize(
    "answer",
    [
        "I don't know.",
        "Sorry, I do not know based on the documentation.",
        "I can’t help with that.",
        "I cannot answer this question.",
        "I'm unable to find that.",
        "I am not able to say.",
        "There is not enough information to answer.",
        "I don't have enough information about refunds.",
        "Insufficient   information\nin the sources.",
    ],
)
def test_is_refusal__documented_patterns(answer: str) -> None:
    assert generation.is_refusal(answer)


@pytest.mark.parametrize(
    "answer",
    [
        "",
        "Rotate the key in the security portal.",
        "You don't know your key? Ask the admin.",
        "The API is unable to accept expired keys.",
    ],
)
def test_is_refusal__ordinary_answers(answer: str) -> None:
    assert not generation.is_refusal(answer)


def test_abstained__output_flag_wins_over_the_detector() -> None:
    rows = batch(
        run(output={"answer": "I don't know.", "abstained": False}),
        run(output={"answer": "Rotate it.", "abstained": True}),
        run(output={"answer": "I don't know."}),
        run(output={"answer": "Rotate it."}),
        run(status="error"),
    )

    assert rows.computed(generation.refused).tolist() == [False, True, True, False, False]


ABSTENTION_RUNS = [
    run({"answerable": True}, {"answer": "Rotate it."}),  # answered, right
    run({"answerable": True}, {"answer": "I don't know."}),  # false refusal (detected)
    run({"answerable": False}, {"answer": "", "abstained": True}),  # abstained, right
    run({"answerable": False}, {"answer": "It is 42."}),  # false answer
    run({"answerable": False}, status="error"),  # failed: not measured
    run({}, {"answer": "I don't know."}),  # answerable not set: not measured
]


def test_abstention_accuracy__hand_computed() -> None:
    values = scores("generation.abstention_accuracy", *ABSTENTION_RUNS)

    np.testing.assert_array_equal(values, [1, 0, 1, 0, np.nan, np.nan])
    assert aggregate("generation.abstention_accuracy", *ABSTENTION_RUNS) == (0.5, 4)


def test_false_refusal_rate__over_answerable_cases_only() -> None:
    values = scores("generation.false_refusal_rate", *ABSTENTION_RUNS)

    np.testing.assert_array_equal(values, [0, 1, np.nan, np.nan, np.nan, np.nan])
    assert aggregate("generation.false_refusal_rate", *ABSTENTION_RUNS) == (0.5, 2)


def test_false_answer_rate__over_unanswerable_cases_only() -> None:
    values = scores("generation.false_answer_rate", *ABSTENTION_RUNS)

    np.testing.assert_array_equal(values, [np.nan, np.nan, 0, 1, np.nan, np.nan])
    assert aggregate("generation.false_answer_rate", *ABSTENTION_RUNS) == (0.5, 2)


# --- must_include, must_not_include ---


def test_must_include__fraction_present_ignoring_case_and_whitespace() -> None:
    expected = {"must_include": ["security portal", "Identity  verification", "password"]}

    value = score(
        "generation.must_include",
        expected,
        {"answer": "IDENTITY\nverification, then the Security Portal."},
    )

    assert value == pytest.approx(2 / 3)


def test_must_not_include__one_forbidden_phrase_fails() -> None:
    expected = {"must_not_include": ["password", "ssn"]}

    assert score("generation.must_not_include", expected, {"answer": "Reset your PASSWORD."}) == 0.0
    assert score("generation.must_not_include", expected, {"answer": "Rotate the key."}) == 1.0


def test_must_include_and_not_include__failed_run_is_not_measured() -> None:
    # No answer is not a clean answer: a failed run never passes must_not_include by default.
    assert math.isnan(score("generation.must_include", {"must_include": ["x"]}, status="error"))
    assert math.isnan(
        score("generation.must_not_include", {"must_not_include": ["x"]}, status="timeout")
    )


@pytest.mark.parametrize("name", ["generation.must_include", "generation.must_not_include"])
def test_phrase_checks__nan_without_phrases(name: str) -> None:
    assert math.isnan(score(name, {"answer": "x"}, {"answer": "x"}))


# --- every generation metric ---

GENERATION = sorted(name for name in METRICS if name.startswith("generation."))


@pytest.mark.parametrize("name", GENERATION)
def test_generation_metric__empty_batch_has_no_value(name: str) -> None:
    assert aggregate(name) == (None, 0)


@pytest.mark.parametrize("name", GENERATION)
def test_generation_metric__nan_when_the_case_expects_nothing(name: str) -> None:
    # faithfulness needs no expected field, only retrieved text, which this output lacks.
    assert math.isnan(score(name, None, {"answer": "Rotate the key."}))


@pytest.mark.parametrize("name", GENERATION)
def test_docs__define_every_generation_metric(name: str) -> None:
    assert documented(name)


# --- SQuAD against the official evaluate-v2.0.py -----------------------------------------------
# The oracle restates the published script's definitions (normalize_answer, get_tokens,
# compute_exact, compute_f1, and get_raw_scores' gold-answer filter) independently of the gate.


def _squad_normalize(s: str) -> str:
    s = s.lower()
    s = "".join(ch for ch in s if ch not in set(string.punctuation))
    s = re.sub(re.compile(r"\b(a|an|the)\b", re.UNICODE), " ", s)
    return " ".join(s.split())


def _squad_tokens(s: str) -> list[str]:
    return _squad_normalize(s).split() if s else []


def _squad_exact(gold: str, pred: str) -> int:
    return int(_squad_normalize(gold) == _squad_normalize(pred))


def _squad_f1(gold: str, pred: str) -> float:
    gold_toks, pred_toks = _squad_tokens(gold), _squad_tokens(pred)
    num_same = sum((Counter(gold_toks) & Counter(pred_toks)).values())
    if not gold_toks or not pred_toks:
        return int(gold_toks == pred_toks)
    if num_same == 0:
        return 0
    precision, recall = num_same / len(pred_toks), num_same / len(gold_toks)
    return 2 * precision * recall / (precision + recall)


def _squad_golds(answers: list[str]) -> list[str]:
    return [a for a in answers if _squad_normalize(a)] or [""]


SQUAD_TEXTS = [
    "Denver Broncos",
    "the Denver Broncos!",
    "  denver\tBRONCOS ",
    "Broncos Denver",
    "Denver",
    "The",
    "a.",
    "",
    "state-of-the-art",
    "state of the art",
    "An apple, an Apple",
    "Théâtre de l'Odéon",
    "théâtre de lodéon",
    "ＴＨＥ end",
    "İstanbul",
    "naïve — café",
    "1,000 km",
    "1000 km",
]


def test_exact_match_and_f1__equal_the_official_squad_v2_script() -> None:
    answer_sets = [[a] for a in SQUAD_TEXTS if _squad_normalize(a)]
    answer_sets += [["the", "Paris"], ["a.", "Denver Broncos", "Broncos"], ["", "state of art"]]
    compared = 0
    for answers in answer_sets:
        golds = _squad_golds(answers)
        for prediction in SQUAD_TEXTS:
            expected, output = {"answer": answers}, {"answer": prediction}
            em = score("generation.exact_match", expected, output)
            f1 = score("generation.token_f1", expected, output)
            assert em == max(_squad_exact(g, prediction) for g in golds), (answers, prediction)
            assert f1 == pytest.approx(max(_squad_f1(g, prediction) for g in golds))
            compared += 1
    assert compared > 250


@pytest.mark.parametrize(
    "text",
    [
        "the\x01cat",  # a control character makes a word boundary inside the token
        "an\x7fthe a\x1cthe",
        "The café, the’s end",  # not ASCII: the same steps on str
        "ÉCOLE the A",
        "the the cat cat the",
    ],
)
def test_squad_tokens__hostile_text_as_the_official_script(text: str) -> None:
    assert generation.squad_tokens(text) == _squad_tokens(text)


@pytest.mark.parametrize(
    ("gold", "pred"),
    [
        ("cat cat dog", "cat dog dog dog"),  # repeated tokens: multiset counts
        ("b c d e f g h i j k l m", "m l k j i h g f e d c b b"),  # many common, one repeated
        ("x y z", "z y x"),
    ],
)
def test_token_f1__repeated_tokens_as_the_official_script(gold: str, pred: str) -> None:
    f1 = score("generation.token_f1", {"answer": gold}, {"answer": pred})
    assert f1 == _squad_f1(gold, pred)


def test_exact_match__an_empty_alternative_never_matches_an_empty_answer() -> None:
    # Before: ["the", "Paris"] matched the empty (or failed) answer, as "the" normalises to "".
    expected = {"answer": ["the", "Paris"]}
    assert score("generation.exact_match", expected, {"answer": ""}) == 0.0
    assert score("generation.exact_match", expected, {"answer": "paris."}) == 1.0


def test_empty_gold_answer__only_when_every_alternative_normalises_to_nothing() -> None:
    assert generation.empty_gold_answer(("the", "Paris")) is None
    assert generation.empty_gold_answer(None) is None
    problem = generation.empty_gold_answer(("The", "a."))
    assert problem is not None
    assert "answerable: false" in problem


@pytest.mark.parametrize(
    ("answer", "phrase"),
    [
        ("Straße", "STRASSE"),
        ("the ﬁle", "FILE"),
        ("security\n  portal", "Security Portal"),
        ("security\u00a0\u2028portal", "Security Portal"),  # Unicode whitespace, as re's \s
    ],
)
def test_must_include__casefolds_and_collapses_whitespace_unlike_promptfoo(
    answer: str, phrase: str
) -> None:
    # promptfoo's icontains (JavaScript toLowerCase, raw whitespace) finds none of these.
    assert phrase.lower() not in answer.lower()
    assert score("generation.must_include", {"must_include": [phrase]}, {"answer": answer}) == 1.0
