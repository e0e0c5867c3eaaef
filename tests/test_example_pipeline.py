"""The shipped example pipeline (examples/rag.py) and its data: BM25 by hand, abstention,
tool calls, the output shape, and the RAG_TOP_K knob the README uses to show a regression."""

from __future__ import annotations

import json
import math
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from examples import rag

ROOT = Path(__file__).resolve().parents[1]

# Three documents, 2, 3 and 4 tokens long (avgdl = 3): "cherry" occurs only in the second,
# "apple" in two of them.
TINY = ["apple banana", "apple cherry cherry", "banana durian elderberry fig"]


def test_tokenize__lowercases_drops_stopwords_and_folds_plurals() -> None:
    assert rag.tokenize("How do I rotate my API Keys?") == ["rotate", "api", "key"]


def test_tokenize__keeps_double_s_endings() -> None:
    assert rag.tokenize("access business") == ["access", "business"]


def test_bm25__matches_the_formula_computed_by_hand() -> None:
    # cherry: N = 3, n = 1, tf = 2 in a document of length 3 = avgdl, so the length factor is 1.
    idf = math.log(1 + (3 - 1 + 0.5) / (1 + 0.5))
    expected = idf * 2 * (1.5 + 1) / (2 + 1.5 * (1 - 0.75 + 0.75 * 3 / 3))

    scores = rag.Bm25(TINY).scores("cherry")

    assert scores == pytest.approx([0.0, expected, 0.0])


def test_bm25__rare_term_ranks_its_document_first() -> None:
    # "durian" is in one document, "apple" in two: the rare match outweighs the common one
    # even though the durian document is the longest.
    scores = rag.Bm25(TINY).scores("apple durian")

    assert int(np.argmax(scores)) == 2
    assert scores[0] > 0 and scores[1] > 0


def test_bm25__repeated_query_word_counts_once() -> None:
    bm25 = rag.Bm25(TINY)

    assert bm25.scores("cherry cherry cherry") == pytest.approx(bm25.scores("cherry"))


def test_bm25__unknown_words_score_zero() -> None:
    assert rag.Bm25(TINY).scores("zeppelin").tolist() == [0.0, 0.0, 0.0]


def test_answer__returns_the_pipeline_output_shape() -> None:
    output = rag.answer("How often should we rotate our API keys?", None)

    assert set(output) == {
        "answer",
        "retrieved",
        "citations",
        "tool_calls",
        "abstained",
        "usage",
        "model",
        "prompt_version",
    }
    assert output["model"] == "bm25-extractive"
    assert output["prompt_version"] == "extractive-v1"
    assert output["abstained"] is False
    assert output["tool_calls"] == []
    assert all(set(item) == {"id", "text", "score"} for item in output["retrieved"])
    scores = [item["score"] for item in output["retrieved"]]
    assert scores == sorted(scores, reverse=True)
    assert output["retrieved"][0]["id"] == "api-key-rotation"
    assert set(output["citations"]) <= {item["id"] for item in output["retrieved"]}
    assert "90 days" in output["answer"]
    assert set(output["usage"]) == {"input_tokens", "output_tokens", "cost_usd"}
    assert output["usage"]["cost_usd"] > 0


def test_answer__off_topic_question_abstains() -> None:
    output = rag.answer("What's the weather in Paris tomorrow?", None)

    assert output["abstained"] is True
    assert output["answer"] == rag.ABSTAIN_ANSWER
    assert output["citations"] == []


def test_answer__question_of_only_stopwords_abstains() -> None:
    output = rag.answer("What is it?", None)

    assert output["abstained"] is True
    assert output["retrieved"] == []


def test_answer__refund_request_looks_up_then_refunds_the_order() -> None:
    output = rag.answer("Refund $20 on order ord-1001, please.", None)

    assert output["tool_calls"] == [
        {"name": "lookup_order", "args": {"order_id": "ORD-1001"}},
        {"name": "issue_refund", "args": {"order_id": "ORD-1001", "amount": 20.0}},
    ]
    assert "Refunded $20.00" in output["answer"]
    assert output["retrieved"] == []


def test_answer__already_refunded_order_is_only_looked_up() -> None:
    output = rag.answer("Refund order ORD-1003", None)

    assert [call["name"] for call in output["tool_calls"]] == ["lookup_order"]
    assert "already refunded" in output["answer"]


def test_answer__password_reset_reply_does_not_reveal_whether_the_account_exists() -> None:
    known = rag.answer("Reset the password for dana@example.com", None)
    unknown = rag.answer("Reset the password for nobody@example.org", None)

    assert known["tool_calls"] == [
        {"name": "reset_password", "args": {"email": "dana@example.com"}}
    ]
    assert known["answer"].replace("dana@example.com", "X") == unknown["answer"].replace(
        "nobody@example.org", "X"
    )


def test_answer__is_deterministic() -> None:
    question = "How do I verify the signature of a webhook request?"

    assert rag.answer(question, None) == rag.answer(question, None)


def test_answer__rag_top_k_env_keeps_exactly_one_document(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_TOP_K", "1")

    output = rag.answer("How often should we rotate our API keys?", None)

    assert [item["id"] for item in output["retrieved"]] == ["api-key-rotation"]
    assert output["citations"] == ["api-key-rotation"]


def test_answer__rejects_a_malformed_rag_top_k(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_TOP_K", "five")

    with pytest.raises(ValueError, match="RAG_TOP_K"):
        rag.answer("How often should we rotate our API keys?", None)


def test_get_index__concurrent_first_calls_build_one_index(monkeypatch: pytest.MonkeyPatch) -> None:
    loads: list[Path] = []
    fake_index = object()

    def slow_load(path: Path) -> object:
        loads.append(path)
        time.sleep(0.02)  # widens the window in which an unlocked cache would build twice
        return fake_index

    monkeypatch.setattr(rag, "_index", None)
    monkeypatch.setattr(rag.Index, "load", slow_load)
    got: list[object] = []
    threads = [threading.Thread(target=lambda: got.append(rag._get_index())) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert loads == [rag.CORPUS_PATH]
    assert got == [fake_index] * 8


def test_golden_set__ids_are_unique_and_sources_exist_in_the_corpus() -> None:
    corpus_ids = {json.loads(line)["id"] for line in rag.CORPUS_PATH.read_text().splitlines()}
    cases = [json.loads(line) for line in (ROOT / "datasets/golden.jsonl").read_text().splitlines()]

    assert len({case["id"] for case in cases}) == len(cases)
    cited = {source for case in cases for source in case["expected"].get("sources", [])}
    assert cited <= corpus_ids
