"""Every adapter by the name ``pipeline.adapter`` selects it with (the contract: ``base``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from gate.errors import AdapterError
from gate.load.config import Config
from gate.run.adapters.base import Adapter
from gate.run.adapters.command import CommandAdapter
from gate.run.adapters.http import HttpAdapter
from gate.run.adapters.openai import OpenAIAdapter
from gate.run.adapters.python import PythonAdapter
from gate.run.adapters.replay import ReplayAdapter
from gate.scrub import Scrubber

__all__ = ["ADAPTERS", "Adapter", "AdapterFactory", "make_adapter"]

AdapterFactory = Callable[[Any, Config, Mapping[str, str], Scrubber], Adapter]
"""Makes an adapter from ``config.pipeline``, the config, the environment and the scrubber."""

ADAPTERS: dict[str, AdapterFactory] = {
    "python": lambda spec, config, env, scrub: PythonAdapter(spec, config.root),
    "http": lambda spec, config, env, scrub: HttpAdapter(
        spec, config.runner.concurrency, env, scrub
    ),
    "command": lambda spec, config, env, scrub: CommandAdapter(spec, config.root),
    "replay": lambda spec, config, env, scrub: ReplayAdapter(spec, config.root),
    "openai": lambda spec, config, env, scrub: OpenAIAdapter(spec, config, env, scrub),
}


def make_adapter(config: Config, env: Mapping[str, str], scrub: Scrubber | None = None) -> Adapter:
    """The configured pipeline's adapter; ``env`` supplies the secrets the config names."""
    name = config.pipeline.adapter
    if name not in ADAPTERS:
        raise AdapterError(
            f"pipeline.adapter: unknown adapter {name!r} "
            f"(fix: use one of {', '.join(sorted(ADAPTERS))})"
        )
    return ADAPTERS[name](config.pipeline, config, env, scrub or config.scrubber(env))
