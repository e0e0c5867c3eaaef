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

__all__ = ["ADAPTERS", "Adapter", "AdapterFactory", "make_adapter"]

AdapterFactory = Callable[[Any, Config, Mapping[str, str]], Adapter]
"""Makes an adapter from ``config.pipeline``, the config and the environment."""

ADAPTERS: dict[str, AdapterFactory] = {
    "python": lambda spec, config, env: PythonAdapter(spec, config.root),
    "http": lambda spec, config, env: HttpAdapter(spec, config.runner.concurrency, env),
    "command": lambda spec, config, env: CommandAdapter(spec, config.root),
    "replay": lambda spec, config, env: ReplayAdapter(spec, config.root),
    "openai": lambda spec, config, env: OpenAIAdapter(spec, config, env),
}


def make_adapter(config: Config, env: Mapping[str, str]) -> Adapter:
    """The configured pipeline's adapter; ``env`` supplies the secrets the config names."""
    name = config.pipeline.adapter
    if name not in ADAPTERS:
        raise AdapterError(
            f"pipeline.adapter: unknown adapter {name!r} "
            f"(fix: use one of {', '.join(sorted(ADAPTERS))})"
        )
    return ADAPTERS[name](config.pipeline, config, env)
