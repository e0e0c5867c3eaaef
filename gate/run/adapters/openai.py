"""The ``openai`` adapter: the pipeline is a prompt file sent to an OpenAI-compatible model.

The prompt is rendered for each case and sent to the model, then to the fallback models in turn
(``gate.llm.complete_first``); the runner retries a transient failure of them all.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gate.errors import ConfigError
from gate.llm import ChatClient, complete_first, decode_json_object, read_api_key
from gate.load.config import Config, OpenAIPipeline
from gate.load.dataset import Case
from gate.load.prompts import (
    PIPELINE_PLACEHOLDERS,
    Prompt,
    contexts_text,
    load_prompt,
    reference_contexts,
)
from gate.run.adapters.base import Reply
from gate.scrub import DEFAULT_SCRUBBER, Scrubber


def pipeline_prompt(spec: OpenAIPipeline, config: Config) -> tuple[Prompt, list[str]]:
    """The pipeline's prompt and the models to try, primary first; ConfigError when either is
    wrong, so ``gate validate`` finds it before a case runs."""
    prompt = load_prompt(config.resolve(spec.prompt), PIPELINE_PLACEHOLDERS)
    model = spec.model or prompt.settings.model
    if model is None:
        raise ConfigError(
            f"{prompt.path}: no model (fix: set `model:` in the prompt's front matter or "
            "`pipeline.model` in gate.yml)"
        )
    return prompt, [model, *spec.fallback_models]


class OpenAIAdapter:
    """Renders the prompt for a case and asks the model (then the fallbacks) for a completion.

    The output: ``answer`` (the message text, or in JSON mode the fields of the JSON object the
    model returned), ``tool_calls``, ``usage`` with cost, ``model``, ``prompt_version`` and
    ``prompt_sha256``, ``finish_reason``.
    """

    def __init__(
        self,
        spec: OpenAIPipeline,
        config: Config,
        env: Mapping[str, str],
        scrub: Scrubber = DEFAULT_SCRUBBER,
    ) -> None:
        self._prompt, self._models = pipeline_prompt(spec, config)
        api_key = read_api_key(env, spec.api_key_env, "pipeline.api_key_env")
        self._client = ChatClient(
            spec.base_url, api_key, spec.prices, config.runner.concurrency, scrub
        )
        self._scrub = scrub

    def call(self, case: Case, timeout_s: float) -> Reply:
        values: dict[str, Any] = {"input": case.input}
        if "contexts" in self._prompt.placeholders:
            values["contexts"] = contexts_text(reference_contexts(case))
        body = {"messages": self._prompt.render(values), **self._prompt.parameters()}
        completion, failures = complete_first(self._client, self._models, body, timeout_s)
        output: dict[str, Any] = {}
        # A reply that only calls tools has no text to decode, in JSON mode or not.
        if self._prompt.json_mode and not (completion.content is None and completion.tool_calls):
            try:
                output.update(decode_json_object(completion.content, self._scrub))
            except ValueError as exc:
                raise ValueError(f"{completion.model} broke JSON mode: {exc}") from None
        else:
            output["answer"] = completion.content
        if completion.tool_calls:
            output["tool_calls"] = completion.tool_calls
        output.update(
            usage=completion.usage(),
            model=completion.model,
            prompt_version=self._prompt.version,
            prompt_sha256=self._prompt.sha256,
            finish_reason=completion.finish_reason,
        )
        if failures:
            output["fallback_errors"] = failures
        return Reply(output)

    def close(self) -> None:
        self._client.close()
