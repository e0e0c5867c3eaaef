"""The LLM-judge step against a fake Chat Completions server: verdicts and scores, invalid
replies retried then recorded as judge errors, the disk cache, the judge's own cost, and the
judged metrics through a whole run."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import pytest
from builders import FakeAdapter, MakeProject
from fake_openai import KEY, Canned, FakeOpenAI, completion

from gate.errors import ConfigError
from gate.judge import Judge, JudgeStats, cache_key, load_rubric
from gate.load.config import JudgeOptions
from gate.load.dataset import Case
from gate.metrics.batch import Batch
from gate.metrics.scoring import aggregate, score
from gate.pipeline import RunOptions, World, run
from gate.plan import prepare
from gate.run.records import EMPTY, Record, parse_output

CLAIMS = {
    "claims": [
        {"claim": "Keys expire after 90 days.", "supported": True, "reason": "kb-1 says so"},
        {"claim": "Expired keys return 401.", "supported": True, "reason": "kb-2 says so"},
        {"claim": "Keys can be renewed by phone.", "supported": False, "reason": "not in any"},
    ]
}
STATEMENTS = {
    "statements": [
        {"statement": "Keys expire after 90 days.", "relevant": True, "reason": "on point"},
        {"statement": "Our office is in Lyon.", "relevant": False, "reason": "off topic"},
    ]
}
CORRECT = {"verdict": "partially_correct", "reason": "misses the 401"}


def rubric_of(body: dict[str, Any]) -> str:
    """Which rubric a judge request comes from, by its instructions."""
    system = body["messages"][0]["content"]
    if "supported by the context" in system:
        return "faithfulness"
    return "relevance" if "addresses the question" in system else "correctness"


def verdicts(body: dict[str, Any]) -> Canned:
    reply = {"faithfulness": CLAIMS, "relevance": STATEMENTS, "correctness": CORRECT}
    return Canned(body=completion(json.dumps(reply[rubric_of(body)]), usage=(1000, 100)))


@pytest.fixture
def fake_openai(fake_openai: FakeOpenAI) -> FakeOpenAI:
    """Answers every judge request with the verdict of its rubric, unless a test says otherwise."""
    fake_openai.responder = verdicts
    return fake_openai


def options(fake_openai: FakeOpenAI, tmp_path: Path, **more: Any) -> JudgeOptions:
    return JudgeOptions.model_validate(
        {
            "model": "judge-model",
            "base_url": fake_openai.url,
            "cache_dir": str(tmp_path / "cache"),
            "prices": {"judge-model": {"input_per_mtok": 1.0, "output_per_mtok": 10.0}},
            **more,
        }
    )


def pair(
    case_id: str = "c1",
    answer: str | None = "Keys expire after 90 days; renew by phone.",
    *,
    expected: dict[str, Any] | None = None,
    retrieved: list[Any] | None = None,
    metadata: dict[str, Any] | None = None,
    status: str = "ok",
) -> tuple[Case, Record]:
    case = Case.model_validate(
        {
            "id": case_id,
            "input": "When do API keys expire?",
            "expected": {"answer": "After 90 days; then calls return 401."}
            if expected is None
            else expected,
            "metadata": metadata or {},
        }
    )
    output: dict[str, Any] = {
        "answer": answer,
        "retrieved": retrieved or [{"id": "kb-1", "text": "API keys expire after 90 days."}],
        "usage": {"input_tokens": 50, "output_tokens": 10, "cost_usd": 0.5},
    }
    failed = status != "ok"
    record = Record(
        case_id,
        0,
        f"trace-{case_id}",
        "error" if failed else "ok",
        10.0,
        1,
        "2025-01-01T00:00:00Z",
        output=EMPTY if failed else parse_output(output),
        raw_output=None if failed else output,
        error="boom" if failed else None,
    )
    return case, record


def judge_all(
    fake_openai: FakeOpenAI, tmp_path: Path, *pairs: tuple[Case, Record], **more: Any
) -> tuple[list[Record], JudgeStats, list[float]]:
    waits: list[float] = []
    judge = Judge(options(fake_openai, tmp_path, **more), tmp_path, os.environ, sleep=waits.append)
    try:
        records = judge.judge({c.id: c for c, _ in pairs}, [r for _, r in pairs])
    finally:
        judge.close()
    return records, judge.stats, waits


def test_verdicts__scores_and_the_reasons_kept_on_the_record(
    fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    [record], stats, _ = judge_all(fake_openai, tmp_path, pair())

    faithful = record.judgements["generation.faithfulness_judge"]
    assert faithful.score == pytest.approx(2 / 3)
    assert faithful.rubric == "faithfulness-v1"
    assert faithful.model == "judge-model"
    assert faithful.verdict == CLAIMS
    assert faithful.error is None and not faithful.cached
    assert record.judgements["generation.answer_relevance_judge"].score == 0.5
    assert record.judgements["generation.correctness_judge"].score == 0.5
    assert record.judgements["generation.correctness_judge"].verdict == CORRECT
    assert record.to_json()["judge"]["generation.faithfulness_judge"]["verdict"] == CLAIMS
    assert stats.calls == 3 and stats.errors == 0 and stats.cached == 0


def test_request__rubric_inputs_json_mode_and_the_judge_model(
    fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    judge_all(fake_openai, tmp_path, pair(), metrics=["generation.faithfulness_judge"])

    [seen] = fake_openai.requests
    assert seen.body["model"] == "judge-model"
    assert seen.body["temperature"] == 0
    assert seen.body["response_format"] == {"type": "json_object"}
    user = seen.body["messages"][1]["content"]
    assert "When do API keys expire?" in user
    assert "[kb-1] API keys expire after 90 days." in user
    assert "Keys expire after 90 days; renew by phone." in user


def test_contexts__the_cases_reference_contexts_when_nothing_was_retrieved_with_text(
    fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    case, record = pair(retrieved=["kb-1"], metadata={"contexts": ["Keys last 90 days."]})

    judge_all(fake_openai, tmp_path, (case, record), metrics=["generation.faithfulness_judge"])

    assert "[1] Keys last 90 days." in fake_openai.requests[0].body["messages"][1]["content"]


def test_not_measured__without_contexts_or_expected_answer_nothing_is_asked(
    fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    case, record = pair(expected={}, retrieved=["kb-1"])

    [judged], stats, _ = judge_all(fake_openai, tmp_path, (case, record))

    assert set(judged.judgements) == {"generation.answer_relevance_judge"}
    assert [rubric_of(seen.body) for seen in fake_openai.requests] == ["relevance"]
    assert stats.metrics == {
        "generation.answer_relevance_judge": {"judged": 1, "cached": 0, "errors": 0}
    }


def test_no_answer__scores_zero_without_asking_and_faithfulness_is_not_measured(
    fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    [judged], stats, _ = judge_all(fake_openai, tmp_path, pair(answer=None, status="error"))

    assert fake_openai.requests == []
    assert judged.judgements["generation.correctness_judge"].score == 0.0
    assert judged.judgements["generation.answer_relevance_judge"].score == 0.0
    assert "generation.faithfulness_judge" not in judged.judgements
    assert stats.calls == 0 and stats.cost_usd == 0.0


def test_invalid_json__asked_again_with_the_problem_then_scored(
    fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    fake_openai.reply("Sure! The verdict is: correct")
    fake_openai.reply(json.dumps({"verdict": "correct", "reason": "same facts"}))

    [judged], stats, _ = judge_all(
        fake_openai, tmp_path, pair(), metrics=["generation.correctness_judge"]
    )

    assert judged.judgements["generation.correctness_judge"].score == 1.0
    assert stats.calls == 2 and stats.errors == 0
    second = fake_openai.requests[1].body["messages"]
    assert second[-2] == {"role": "assistant", "content": "Sure! The verdict is: correct"}
    assert second[-1]["role"] == "user"
    assert second[-1]["content"].startswith("Your reply was not what the instructions ask for")


def test_invalid_json__after_the_retries_a_judge_error_the_metric_leaves_out(
    fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    good = pair("good")
    bad = pair("bad", answer="Rotate keys yearly.")

    def replies(body: dict[str, Any]) -> Canned:
        if "Rotate keys yearly." in body["messages"][1]["content"]:
            return Canned(body=completion('{"verdict": "correct", "reason": '))
        return Canned(body=completion(json.dumps({"verdict": "correct", "reason": "ok"})))

    fake_openai.responder = replies
    records, stats, _ = judge_all(
        fake_openai, tmp_path, good, bad, metrics=["generation.correctness_judge"], retries=2
    )

    error = records[1].judgements["generation.correctness_judge"]
    assert error.score is None
    assert error.error is not None
    assert error.error.startswith("the judge's reply is not the rubric's JSON: not valid JSON")
    assert stats.errors == 1 and stats.calls == 1 + 3
    assert stats.to_json()["metrics"]["generation.correctness_judge"] == {
        "judged": 1,
        "cached": 0,
        "errors": 1,
    }
    batch = Batch([good[0], bad[0]], records)
    rows = score(batch, ["generation.correctness_judge"])
    assert aggregate("generation.correctness_judge", rows) == (1.0, 1)


def test_reply_of_the_wrong_shape__is_retried_like_invalid_json(
    fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    fake_openai.responder = lambda body: Canned(body=completion('{"verdict": "maybe"}'))

    [judged], stats, _ = judge_all(
        fake_openai, tmp_path, pair(), metrics=["generation.correctness_judge"], retries=1
    )

    error = judged.judgements["generation.correctness_judge"].error
    assert error is not None and error.startswith(
        "the judge's reply is not the rubric's JSON: verdict:"
    )
    assert stats.calls == 2


def test_429__waits_retry_after_then_scores(fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    fake_openai.fail(429, headers={"Retry-After": "2"})

    [judged], stats, waits = judge_all(
        fake_openai, tmp_path, pair(), metrics=["generation.correctness_judge"]
    )

    assert waits == [2.0]
    assert judged.judgements["generation.correctness_judge"].score == 0.5
    assert stats.calls == 2


def test_refused_request__a_judge_error_without_retries(
    fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    fake_openai.fail(404, "The model `judge-model` does not exist")

    [judged], stats, waits = judge_all(
        fake_openai, tmp_path, pair(), metrics=["generation.correctness_judge"]
    )

    verdict = judged.judgements["generation.correctness_judge"]
    assert (
        verdict.error == "LLMError: judge-model: HTTP 404: The model `judge-model` does not exist"
    )
    assert stats.calls == 1 and waits == []


def test_cache__a_rerun_of_unchanged_cases_sends_nothing(
    fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    judge_all(fake_openai, tmp_path, pair())
    sent = len(fake_openai.requests)

    [again], stats, _ = judge_all(fake_openai, tmp_path, pair())

    assert len(fake_openai.requests) == sent == 3
    assert all(v.cached for v in again.judgements.values())
    assert again.judgements["generation.faithfulness_judge"].verdict == CLAIMS
    assert stats.to_json() | {"duration_s": 0} == {
        "model": "judge-model",
        "calls": 0,
        "cached": 3,
        "errors": 0,
        "input_tokens": 0,
        "output_tokens": 0,
        "cost_usd": 0.0,
        "duration_s": 0,
        "metrics": {
            name: {"judged": 1, "cached": 1, "errors": 0}
            for name in [
                "generation.faithfulness_judge",
                "generation.answer_relevance_judge",
                "generation.correctness_judge",
            ]
        },
    }
    files = [p for p in (tmp_path / "cache").rglob("*.json")]
    assert len(files) == 3
    assert not any(KEY in p.read_text() for p in files)


def test_cache__a_changed_answer_or_judge_model_is_asked_again(
    fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    only = {"metrics": ["generation.correctness_judge"]}
    judge_all(fake_openai, tmp_path, pair(), **only)
    judge_all(fake_openai, tmp_path, pair(answer="Keys never expire."), **only)
    judge_all(fake_openai, tmp_path, pair(), **only, model="judge-model-2")

    assert fake_openai.models() == ["judge-model", "judge-model", "judge-model-2"]


def test_cache__errors_are_not_cached_and_a_corrupt_entry_is_asked_again(
    fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    only = {"metrics": ["generation.correctness_judge"], "retries": 0}
    fake_openai.fail(400, "bad request")
    judge_all(fake_openai, tmp_path, pair(), **only)
    judge_all(fake_openai, tmp_path, pair(), **only)
    [entry] = list((tmp_path / "cache").rglob("*.json"))
    entry.write_text("{not json", encoding="utf-8")
    [judged], _, _ = judge_all(fake_openai, tmp_path, pair(), **only)

    assert len(fake_openai.requests) == 3
    assert not judged.judgements["generation.correctness_judge"].cached


def test_cache_key__covers_model_rubric_and_inputs() -> None:
    rubric = load_rubric("generation.correctness_judge").prompt
    values = {"question": "q", "answer": "a", "expected": "- e"}

    key = cache_key("m", rubric, values)

    assert key == cache_key("m", rubric, dict(values))
    assert key != cache_key("m2", rubric, values)
    assert key != cache_key("m", rubric, {**values, "answer": "b"})
    assert len(key) == 64


def test_cost__the_judges_own_and_never_the_pipelines(
    fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    case, record = pair()

    [judged], stats, _ = judge_all(fake_openai, tmp_path, (case, record))

    # 3 calls x (1000 input tokens at $1/M + 100 output tokens at $10/M) = 3 x $0.002
    assert stats.to_json()["cost_usd"] == pytest.approx(0.006)
    assert stats.input_tokens == 3000 and stats.output_tokens == 300
    assert judged.output.usage == record.output.usage
    assert judged.judgements["generation.correctness_judge"].cost_usd == pytest.approx(0.002)


def test_cost__unknown_without_a_price_for_the_judge_model(
    fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    _, stats, _ = judge_all(fake_openai, tmp_path, pair(), prices={})

    assert stats.calls == 3
    assert stats.to_json()["cost_usd"] is None


def test_missing_judge_key__an_input_error_naming_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("JUDGE_KEY", raising=False)
    judge_options = JudgeOptions(model="m", api_key_env="JUDGE_KEY")

    with pytest.raises(ConfigError, match=r"^metrics.judge.api_key_env: .* JUDGE_KEY is not set"):
        Judge(judge_options, tmp_path, os.environ)


def test_judged_metrics__nan_without_verdicts() -> None:
    case, record = pair()
    batch = Batch([case], [record])

    rows = score(batch, ["generation.faithfulness_judge"])

    assert math.isnan(rows["generation.faithfulness_judge"][0])


# --- through a whole run ---


CASES = [
    {"id": f"c{i}", "input": f"question {i}", "expected": {"answer": "After 90 days."}}
    for i in range(3)
]
ANSWER = {
    "answer": "Keys expire after 90 days.",
    "retrieved": [{"id": "kb-1", "text": "API keys expire after 90 days."}],
    "usage": {"input_tokens": 100, "output_tokens": 10, "cost_usd": 0.25},
}
"""What the pipeline answers every case (the judge is what is under test)."""


def gate_run(config: Path) -> dict[str, Any]:
    options = RunOptions(
        config=config,
        out_dir=config.parent / "out",
        progress=None,
        world=World(env={"OPENAI_API_KEY": KEY}),
    )
    return run(options, adapter=FakeAdapter(lambda case: ANSWER)).report


def test_run__judged_metrics_verdicts_cost_and_a_free_rerun(
    fake_openai: FakeOpenAI, make_project: MakeProject, tmp_path: Path
) -> None:
    judge = {
        "model": "judge-model",
        "base_url": fake_openai.url,
        "prices": {"judge-model": {"input_per_mtok": 1.0, "output_per_mtok": 10.0}},
    }
    rules = {"metrics": {"generation.correctness_judge": {"min": 0.4}}}
    config = make_project(CASES, rules, metrics={"judge": judge})

    first = gate_run(config)
    sent = len(fake_openai.requests)
    second = gate_run(config)

    assert sent == 9 and len(fake_openai.requests) == 9
    assert first["metrics"]["generation.faithfulness_judge"]["value"] == pytest.approx(2 / 3)
    assert first["metrics"]["generation.correctness_judge"]["n"] == 3
    assert first["verdict"] == second["verdict"] == "pass"
    assert first["judge"]["calls"] == 9 and first["judge"]["cost_usd"] == pytest.approx(0.018)
    assert second["judge"]["calls"] == 0 and second["judge"]["cached"] == 9
    assert second["judge"]["cost_usd"] == 0.0
    assert (tmp_path / ".gate-cache" / "judge").is_dir()
    lines = (tmp_path / "out" / "records.jsonl").read_text().splitlines()
    record = json.loads(lines[0])
    assert record["judge"]["generation.correctness_judge"]["verdict"] == CORRECT
    assert record["scores"]["generation.correctness_judge"] == 0.5
    written = (tmp_path / "out" / "report.json").read_text() + "\n".join(lines)
    assert KEY not in written


def test_run__without_a_judge_judged_metrics_are_absent_and_nothing_is_sent(
    fake_openai: FakeOpenAI, make_project: MakeProject
) -> None:
    report = gate_run(make_project(CASES, {}))

    assert not [name for name in report["metrics"] if name.endswith("_judge")]
    assert "judge" not in report
    assert fake_openai.requests == []


def test_prepare__a_threshold_on_a_judged_metric_needs_the_judge(
    make_project: MakeProject,
) -> None:
    rules = {"metrics": {"generation.faithfulness_judge": {"min": 0.8}}}

    with pytest.raises(ConfigError, match=r"generation\.faithfulness_judge: a judged metric needs"):
        prepare(make_project(CASES, rules))
