"""An OpenAI-compatible Chat Completions client, shared by the ``openai`` adapter and the judge.

The client sends one request and sorts its failure the way the runner retries: 429, 5xx and
connection errors are ``Transient`` (carrying the server's ``Retry-After``), a timeout is
``CaseTimeout``, anything else (another 4xx, a reply that is not a completion) is ``LLMError``.
It never retries by itself: the runner does, with backoff, so there is one retry policy.

Fallback models: in each attempt the models are tried in order, primary first. A model that
fails with an HTTP error (4xx or 5xx, 429 included) or cannot be reached hands the case to the
next one at once. A timeout ends the attempt (the case's time budget is spent). When every model
failed, the attempt raises ``Transient`` if any failure was transient, so the runner backs off
(honouring the shortest Retry-After) and the next attempt starts from the primary again;
otherwise ``LLMError`` listing each model's failure. The model that answered is the output's
``model``, and the failures before it are its ``fallback_errors``.

The API key is read from the environment variable the config names (in the environment its caller
passes), travels only in the Authorization header, and is scrubbed (with the caller's scrubber's
secrets and patterns) from every reply and every message built from one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gate.errors import ConfigError
from gate.load.config import Price
from gate.retry import Transient
from gate.scrub import DEFAULT_SCRUBBER, Scrubber
from gate.transport import HttpRefused, post_json, session

_FENCED = re.compile(r"```(?:json)?\s*(.*?)\s*```", re.DOTALL)


class LLMError(Exception):
    """A failure a retry would not fix: a 4xx other than 429, or a reply that is no completion."""


@dataclass(frozen=True)
class Completion:
    """One chat completion, reduced to what the gate reads."""

    model: str
    """The model asked for, by the name the config and the price table use."""
    content: str | None
    tool_calls: list[dict[str, Any]]
    """``{"name", "args"}`` per call, arguments decoded: the output contract's shape."""
    finish_reason: str | None
    input_tokens: int | None
    output_tokens: int | None
    cost_usd: float | None

    def usage(self) -> dict[str, Any]:
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": self.cost_usd,
        }


def read_api_key(env: Mapping[str, str], variable: str | None, setting: str) -> str | None:
    """The key from ``env[variable]``; unset is an input error naming it.

    ``setting`` is the config key that names the variable, for the message.
    """
    if variable is None:
        return None
    key = env.get(variable, "").strip()
    if not key:
        raise ConfigError(
            f"{setting}: the environment variable {variable} is not set, so there is no API key "
            f"(fix: export {variable}=...; in a workflow, "
            f"`env: {{{variable}: ${{{{ secrets.{variable} }}}}}}`)"
        )
    return key


def cost_usd(
    price: Price | None, input_tokens: int | None, output_tokens: int | None
) -> float | None:
    """The cost at ``price`` (per million tokens); None, not 0, when price or counts are unknown."""
    if price is None or input_tokens is None or output_tokens is None:
        return None
    return (input_tokens * price.input_per_mtok + output_tokens * price.output_per_mtok) / 1e6


def decode_json_object(text: str | None, scrub: Scrubber = DEFAULT_SCRUBBER) -> dict[str, Any]:
    """A model's JSON-object reply (a Markdown code fence around it is tolerated); ValueError
    when it is anything else, quoting it scrubbed. The text is only parsed, never evaluated."""
    if text is None:
        raise ValueError("the reply has no text")
    body = text.strip()
    fenced = _FENCED.fullmatch(body)
    try:
        value = json.loads(fenced.group(1) if fenced else body)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"not valid JSON ({exc.msg}, column {exc.colno}): {scrub.cut(text, 120)!r}"
        ) from None
    if not isinstance(value, dict):
        raise ValueError(f"a JSON {type(value).__name__}, not an object: {scrub.cut(text, 120)!r}")
    return value


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _tool_call(model: str, call: Any, scrub: Scrubber) -> dict[str, Any]:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise LLMError(f"{model}: a tool call without a function name")
    name, raw = function["name"], function.get("arguments") or "{}"
    # A model's malformed arguments are its answer, not the endpoint's failure: a ValueError,
    # which records the case's error instead of trying a fallback model.
    try:
        args = json.loads(raw) if isinstance(raw, str) else raw
    except json.JSONDecodeError:
        raise ValueError(
            f"{model} called {name} with arguments that are not JSON: {scrub.cut(raw, 200)!r}"
        ) from None
    if not isinstance(args, dict):
        raise ValueError(f"{model} called {name} with arguments that are not a JSON object")
    return {"name": name, "args": args}


class ChatClient:
    """POSTs to ``{base_url}/chat/completions`` over one pooled session."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        prices: Mapping[str, Price],
        pool_size: int,
        scrub: Scrubber | None = None,
    ) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self._scrub = (scrub or Scrubber()).adding([api_key] if api_key else [])
        # Replies lose the known secrets only: the patterns (e-mail addresses...) are applied
        # where text is stored, so that metrics still see the answer as the model gave it.
        self._secrets = Scrubber(self._scrub.secrets, patterns=())
        self._prices = prices
        headers = {} if api_key is None else {"Authorization": f"Bearer {api_key}"}
        self._session = session(pool_size, headers)

    def complete(self, model: str, body: Mapping[str, Any], timeout_s: float) -> Completion:
        """One request: ``body`` holds the messages and parameters; ``model`` is added to it."""
        try:
            data = post_json(
                self._session,
                self.url,
                {"model": model, **body},
                timeout_s,
                label=f"{model}: ",
                scrub=self._scrub,
            )
        except HttpRefused as exc:
            raise LLMError(str(exc)) from None
        # A server may echo the request (the Authorization header with it) into its answer.
        return self._completion(model, self._secrets.value(data))

    def _completion(self, model: str, data: Any) -> Completion:
        try:
            choice = data["choices"][0]
            message = choice["message"]
        except (KeyError, IndexError, TypeError):
            raise LLMError(
                f"{model}: the reply is not a chat completion (no choices[0].message)"
            ) from None
        content = message.get("content")
        usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
        input_tokens = _count(usage.get("prompt_tokens"))
        output_tokens = _count(usage.get("completion_tokens"))
        return Completion(
            model=model,
            content=content if isinstance(content, str) else None,
            tool_calls=[
                _tool_call(model, call, self._scrub) for call in message.get("tool_calls") or ()
            ],
            finish_reason=choice.get("finish_reason"),
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost_usd=cost_usd(self._prices.get(model), input_tokens, output_tokens),
        )

    def close(self) -> None:
        self._session.close()


def complete_first(
    client: ChatClient, models: list[str], body: Mapping[str, Any], timeout_s: float
) -> tuple[Completion, list[str]]:
    """The first model's completion that succeeds, and the failures of the ones before it.

    See the module's docstring for the fallback rule.
    """
    failures: list[str] = []
    waits: list[float] = []
    transient = False
    for model in models:
        try:
            return client.complete(model, body, timeout_s), failures
        except Transient as exc:
            transient = True
            failures.append(str(exc))
            if exc.retry_after is not None:
                waits.append(exc.retry_after)
        except LLMError as exc:
            failures.append(str(exc))
    message = "; ".join(failures)
    if transient:
        raise Transient(message, retry_after=min(waits, default=None))
    raise LLMError(message)
