"""The openai adapter against a fake Chat Completions server: request shape, usage and cost,
tool calls, JSON mode, retries through the runner, fallback models, timeouts, and the key."""

from __future__ import annotations

import hashlib
import json
import os
import random
from pathlib import Path
from typing import Any

import pytest
from builders import utc_now, write_project
from fake_openai import KEY, Canned, FakeOpenAI

from gate.errors import ConfigError
from gate.llm import LLMError
from gate.load.config import Config, Runner, load_config
from gate.load.dataset import Case
from gate.plan import pipeline_fingerprint, prepare, prompt_identity
from gate.retry import CaseTimeout, Transient
from gate.run.adapters import Adapter, make_adapter
from gate.run.records import parse_output
from gate.run.runner import run_one

PROMPT = """\
---
version: rag-v3
model: fake-model
temperature: 0
top_p: 1
max_tokens: 200
seed: 42
---
system:
Answer from the context only; cite ids in brackets.

user:
{{ contexts }}

Question: {{ input }}
"""


CASE = Case.model_validate(
    {
        "id": "key-expiry",
        "input": "When do keys expire?",
        "metadata": {"contexts": [{"id": "kb-1", "text": "Keys expire after 90 days."}]},
    }
)


def configure(tmp_path: Path, base_url: str, prompt: str = PROMPT, **pipeline: Any) -> Config:
    (tmp_path / "prompt.md").write_text(prompt, encoding="utf-8")
    spec = {"adapter": "openai", "base_url": base_url, "prompt": "prompt.md", **pipeline}
    return load_config(write_project(tmp_path, [{"id": "a", "input": "q"}], pipeline=spec))


def adapter(tmp_path: Path, base_url: str, prompt: str = PROMPT, **pipeline: Any) -> Adapter:
    return make_adapter(configure(tmp_path, base_url, prompt, **pipeline), os.environ)


def ask(tmp_path: Path, fake_openai: FakeOpenAI, prompt: str = PROMPT, **pipeline: Any) -> Any:
    """One call through a fresh adapter; the raw output."""
    made = adapter(tmp_path, fake_openai.url, prompt, **pipeline)
    try:
        return made.call(CASE, 5.0).output
    finally:
        made.close()


def test_request__path_auth_model_messages_and_sampling(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    ask(tmp_path, fake_openai)

    [seen] = fake_openai.requests
    assert seen.path == "/v1/chat/completions"
    assert seen.headers["authorization"] == f"Bearer {KEY}"
    assert seen.body == {
        "model": "fake-model",
        "messages": [
            {"role": "system", "content": "Answer from the context only; cite ids in brackets."},
            {
                "role": "user",
                "content": "[kb-1] Keys expire after 90 days.\n\nQuestion: When do keys expire?",
            },
        ],
        "temperature": 0.0,
        "top_p": 1.0,
        "max_tokens": 200,
        "seed": 42,
    }


def test_request__base_url_without_v1_and_trailing_slash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with FakeOpenAI(prefix="/openai") as server:
        made = adapter(tmp_path, server.url + "/")
        made.call(CASE, 5.0)
        made.close()

    assert server.requests[0].path == "/openai/chat/completions"


def test_request__config_model_overrides_the_prompts(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    output = ask(tmp_path, fake_openai, model="gpt-4.1")

    assert fake_openai.models() == ["gpt-4.1"]
    assert output["model"] == "gpt-4.1"


def test_output__answer_usage_cost_and_prompt_identity(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    fake_openai.reply("Keys expire after 90 days [kb-1].", usage=(1000, 500))
    prices = {"fake-model": {"input_per_mtok": 0.4, "output_per_mtok": 1.6}}

    output = ask(tmp_path, fake_openai, prices=prices)

    prompt = (tmp_path / "prompt.md").read_bytes()
    assert output["answer"] == "Keys expire after 90 days [kb-1]."
    assert output["usage"] == {"input_tokens": 1000, "output_tokens": 500, "cost_usd": 0.0012}
    assert output["model"] == "fake-model"
    assert output["prompt_version"] == "rag-v3"
    assert output["prompt_sha256"] == hashlib.sha256(prompt).hexdigest()
    assert parse_output(output).usage is not None


def test_output__no_price_for_the_model_is_an_unknown_cost_not_zero(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    fake_openai.reply("ok", usage=(10, 5))

    output = ask(
        tmp_path, fake_openai, prices={"other": {"input_per_mtok": 1, "output_per_mtok": 1}}
    )

    assert output["usage"] == {"input_tokens": 10, "output_tokens": 5, "cost_usd": None}


TOOLS_PROMPT = """\
---
version: agent-v1
model: fake-model
tools:
  - type: function
    function:
      name: lookup_order
      description: Find an order by id.
      parameters: {type: object, properties: {order_id: {type: string}}, required: [order_id]}
---
{{ input }}
"""


def test_tools__sent_and_the_reply_tool_calls_become_output_tool_calls(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    fake_openai.reply(
        None, tool_calls=[("lookup_order", {"order_id": "A-17"})], finish_reason="tool_calls"
    )

    output = ask(tmp_path, fake_openai, TOOLS_PROMPT)

    assert fake_openai.requests[0].body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "lookup_order",
                "description": "Find an order by id.",
                "parameters": {
                    "type": "object",
                    "properties": {"order_id": {"type": "string"}},
                    "required": ["order_id"],
                },
            },
        }
    ]
    assert output["tool_calls"] == [{"name": "lookup_order", "args": {"order_id": "A-17"}}]
    assert output["answer"] is None
    assert output["finish_reason"] == "tool_calls"
    assert parse_output(output).tool_calls is not None


def test_tools__malformed_arguments_are_the_cases_error(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    fake_openai.reply(None, tool_calls=[("lookup_order", '{"order_id": ')])
    made = adapter(tmp_path, fake_openai.url, TOOLS_PROMPT)

    record = run_one(made, CASE, 0, Runner(retries=2), sleep=lambda s: None, now=utc_now)
    made.close()

    assert record.status == "error" and record.attempts == 1
    assert "called lookup_order with arguments that are not JSON" in (record.error or "")


JSON_PROMPT = """\
---
version: json-v1
model: fake-model
response_format: {type: json_object}
---
Reply in JSON with answer, citations and abstained. {{ input }}
"""


def test_json_mode__the_reply_objects_fields_become_the_output(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    reply = {"answer": "After 90 days.", "citations": ["kb-1"], "abstained": False}
    fake_openai.reply("```json\n" + json.dumps(reply) + "\n```")

    output = ask(tmp_path, fake_openai, JSON_PROMPT)

    assert fake_openai.requests[0].body["response_format"] == {"type": "json_object"}
    assert {k: output[k] for k in reply} == reply
    assert parse_output(output).citations == ["kb-1"]


def test_json_mode__invalid_json_is_the_cases_error(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    fake_openai.reply('{"answer": "After 90 days.",')
    made = adapter(tmp_path, fake_openai.url, JSON_PROMPT)

    record = run_one(made, CASE, 0, Runner(retries=2), sleep=lambda s: None, now=utc_now)
    made.close()

    assert record.status == "error"
    assert "fake-model broke JSON mode: not valid JSON" in (record.error or "")


def test_429__retried_by_the_runner_after_retry_after(
    tmp_path: Path,
    fake_openai: FakeOpenAI,
    sleeps: list[float],
) -> None:
    fake_openai.fail(429, "Rate limit reached", headers={"Retry-After": "2"})
    fake_openai.reply("After 90 days.")
    made = adapter(tmp_path, fake_openai.url)

    record = run_one(made, CASE, 0, Runner(retries=2), sleep=sleeps.append, now=utc_now)
    made.close()

    assert sleeps == [2.0]
    assert record.status == "ok" and record.attempts == 2
    assert record.output.answer == "After 90 days."


def test_429__retry_after_ms_is_read_with_sub_second_precision(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    fake_openai.fail(429, headers={"retry-after-ms": "250", "Retry-After": "1"})
    made = adapter(tmp_path, fake_openai.url)

    with pytest.raises(Transient) as caught:
        made.call(CASE, 5.0)
    made.close()

    assert caught.value.retry_after == 0.25
    assert "fake-model: HTTP 429: fake failure" in str(caught.value)


def test_500_then_success__one_backoff(
    tmp_path: Path, fake_openai: FakeOpenAI, sleeps: list[float]
) -> None:
    fake_openai.fail(500, "The server had an error")
    fake_openai.reply("After 90 days.")
    made = adapter(tmp_path, fake_openai.url)

    record = run_one(
        made, CASE, 0, Runner(retries=1), sleep=sleeps.append, rng=random.Random(0), now=utc_now
    )
    made.close()

    assert record.status == "ok" and record.attempts == 2
    assert len(sleeps) == 1 and 0.25 <= sleeps[0] <= 0.5  # 0.5 s · 2^0, full jitter
    assert len(fake_openai.requests) == 2


def test_fallback__a_refused_primary_hands_over_to_the_next_model(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    fake_openai.fail(404, "The model `fake-model` does not exist")
    fake_openai.reply("After 90 days.", model="backup-model")

    output = ask(tmp_path, fake_openai, fallback_models=["backup-model"])

    assert fake_openai.models() == ["fake-model", "backup-model"]
    assert output["model"] == "backup-model"
    assert output["fallback_errors"] == [
        "fake-model: HTTP 404: The model `fake-model` does not exist"
    ]


def test_fallback__an_overloaded_primary_hands_over_at_once(
    tmp_path: Path,
    fake_openai: FakeOpenAI,
    sleeps: list[float],
) -> None:
    fake_openai.fail(503, "overloaded")
    fake_openai.reply("After 90 days.")
    made = adapter(tmp_path, fake_openai.url, fallback_models=["backup-model"])

    record = run_one(made, CASE, 0, Runner(retries=2), sleep=sleeps.append, now=utc_now)
    made.close()

    assert sleeps == [] and record.attempts == 1
    assert record.output.model == "backup-model"


def test_fallback__all_overloaded_is_transient_with_the_shortest_retry_after(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    fake_openai.fail(429, headers={"Retry-After": "7"})
    fake_openai.fail(503, headers={"Retry-After": "3"})
    made = adapter(tmp_path, fake_openai.url, fallback_models=["backup-model"])

    with pytest.raises(Transient) as caught:
        made.call(CASE, 5.0)
    made.close()

    assert caught.value.retry_after == 3.0
    assert (
        str(caught.value)
        == "fake-model: HTTP 429: fake failure; backup-model: HTTP 503: fake failure"
    )


def test_fallback__all_refused_is_the_cases_error_without_retries(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    fake_openai.fail(400, "context_length_exceeded")
    fake_openai.fail(400, "context_length_exceeded")
    made = adapter(tmp_path, fake_openai.url, fallback_models=["backup-model"])

    record = run_one(made, CASE, 0, Runner(retries=2), sleep=lambda s: None, now=utc_now)
    made.close()

    assert record.status == "error" and record.attempts == 1
    assert record.error == (
        "LLMError: fake-model: HTTP 400: context_length_exceeded; "
        "backup-model: HTTP 400: context_length_exceeded"
    )


def test_timeout__is_a_case_timeout_and_no_fallback_is_tried(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    fake_openai.reply("late", delay_s=0.5)
    made = adapter(tmp_path, fake_openai.url, fallback_models=["backup-model"])

    with pytest.raises(CaseTimeout, match=r"fake-model: no reply from .* after 0.1 s"):
        made.call(CASE, 0.1)
    made.close()

    assert fake_openai.models() == ["fake-model"]


def test_connection_refused__is_transient(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with FakeOpenAI() as gone:
        url = gone.url
    made = adapter(tmp_path, url)

    with pytest.raises(Transient, match="cannot reach"):
        made.call(CASE, 1.0)
    made.close()


def test_not_a_completion__is_an_llm_error(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    fake_openai.responder = lambda body: Canned(body={"choices": []})
    made = adapter(tmp_path, fake_openai.url)

    with pytest.raises(LLMError, match=r"not a chat completion \(no choices\[0\].message\)"):
        made.call(CASE, 5.0)
    made.close()


def test_api_key__missing_variable_is_an_input_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TEAM_LLM_KEY", raising=False)
    config = configure(tmp_path, "http://127.0.0.1:9/v1", api_key_env="TEAM_LLM_KEY")

    with pytest.raises(ConfigError) as caught:
        make_adapter(config, os.environ)

    assert str(caught.value).startswith(
        "pipeline.api_key_env: the environment variable TEAM_LLM_KEY is not set"
    )
    assert "secrets.TEAM_LLM_KEY" in str(caught.value)


def test_api_key__a_key_pasted_into_the_config_is_not_echoed(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        configure(tmp_path, "http://127.0.0.1:9/v1", api_key_env=KEY)

    assert "pipeline.api_key_env: must be the name of an environment variable" in str(caught.value)
    assert KEY not in str(caught.value)


def test_api_key__never_in_an_error_even_when_the_server_quotes_it(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    fake_openai.fail(401, f"Incorrect API key provided: {KEY}. You can find your API key at ...")
    made = adapter(tmp_path, fake_openai.url)

    record = run_one(made, CASE, 0, Runner(retries=0), sleep=lambda s: None, now=utc_now)
    made.close()

    assert "Incorrect API key provided: ***." in (record.error or "")
    assert KEY not in json.dumps(record.to_json())


def test_api_key__null_sends_no_authorization(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with FakeOpenAI(key=None) as local:
        ask(tmp_path, local, api_key_env=None)

    assert "authorization" not in local.requests[0].headers


def test_no_model_anywhere_is_an_input_error(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    with pytest.raises(ConfigError, match=r"prompt.md: no model \(fix: set `model:`"):
        adapter(tmp_path, fake_openai.url, PROMPT.replace("model: fake-model\n", ""))


def test_fingerprint__any_edit_of_the_prompt_file_changes_it(tmp_path: Path) -> None:
    config = configure(tmp_path, "http://127.0.0.1:9/v1")
    before = pipeline_fingerprint(config, prompt_identity(config))

    (tmp_path / "prompt.md").write_text(PROMPT.replace("only;", "only,"), encoding="utf-8")

    assert pipeline_fingerprint(config, prompt_identity(config)) != before


def test_example__the_shipped_config_validates_without_a_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)

    plan = prepare(Path(__file__).resolve().parents[1] / "examples" / "openai" / "gate.openai.yml")

    assert plan.config.metrics.judge is not None
    assert all(case.metadata["contexts"] for case in plan.cases)
