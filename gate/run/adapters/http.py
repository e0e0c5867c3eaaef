"""The ``http`` adapter: the pipeline is a service that answers a JSON POST per case."""

from __future__ import annotations

from collections.abc import Mapping

from gate.errors import ConfigError
from gate.load.config import HttpPipeline
from gate.load.dataset import Case
from gate.run.adapters.base import Reply, request_body
from gate.scrub import DEFAULT_SCRUBBER, ENV_REFERENCE, Scrubber
from gate.transport import post_json, session


class HttpAdapter:
    """POSTs ``{"id", "input"}`` as JSON; the JSON reply is the output.

    One pooled session sized to the concurrency, so connections are reused across cases.
    ``${VAR}`` in a header is read from ``env``.
    """

    def __init__(
        self,
        spec: HttpPipeline,
        concurrency: int,
        env: Mapping[str, str],
        scrub: Scrubber = DEFAULT_SCRUBBER,
    ) -> None:
        self._url = spec.url
        headers, secrets = expand_headers(spec.headers, env)
        self._scrub = scrub.adding(secrets)
        self._session = session(concurrency, headers)

    def call(self, case: Case, timeout_s: float) -> Reply:
        return Reply(
            post_json(self._session, self._url, request_body(case), timeout_s, scrub=self._scrub)
        )

    def close(self) -> None:
        self._session.close()


def expand_headers(
    headers: Mapping[str, str], env: Mapping[str, str]
) -> tuple[dict[str, str], list[str]]:
    """The headers with each ``${VAR}`` replaced by ``env[VAR]``, and the values put in: they are
    secrets, scrubbed from what a server quotes back. An unset variable is an input error."""
    for key, value in headers.items():
        for name in ENV_REFERENCE.findall(value):
            if name not in env:
                raise ConfigError(
                    f"pipeline.headers.{key}: environment variable {name} is not set "
                    "(fix: export it)"
                )
    expanded = {key: ENV_REFERENCE.sub(lambda m: env[m.group(1)], v) for key, v in headers.items()}
    secrets = [env[name] for value in headers.values() for name in ENV_REFERENCE.findall(value)]
    return expanded, secrets
