"""The adapter contract: how one case reaches the team's pipeline and its output comes back.

Each adapter turns a case into a ``Reply`` or raises. ``Transient`` (connection error, 429, 5xx)
and ``CaseTimeout`` are retried by the runner with backoff (``gate.retry``); anything else becomes
the case's recorded error. Setting an adapter up (a bad target, a missing command) is an
``AdapterError``: the user's input is wrong, and the run stops before the first case.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from gate.load.dataset import Case
from gate.retry import CaseTimeout, Transient

__all__ = ["Adapter", "CaseTimeout", "Reply", "Transient", "request_body", "waits"]


@dataclass(frozen=True)
class Reply:
    """What the pipeline returned for one case (before validation)."""

    output: Any
    latency_ms: float | None = None
    """Set by adapters that know the latency better than the runner's clock (replay)."""
    error: str | None = None
    """Set by the replay adapter when the recorded run failed."""
    log: str | None = None
    """What the pipeline wrote besides its reply while it ran the case (command adapter)."""
    timed: bool = True
    """False when the call's own duration is not the pipeline's latency (a replay reads a file):
    then ``latency_ms`` is the latency, and None means unknown."""
    strict: bool = False
    """True when ``output`` was read from strict JSON (gate.load.strict_json's rules: finite
    numbers, string keys, bounded nesting), so the runner need not check it can be written."""


class Adapter(Protocol):
    def call(self, case: Case, timeout_s: float) -> Reply: ...

    def close(self) -> None: ...


def waits(adapter: Adapter) -> bool:
    """Whether a call waits on something outside the process (a model, a server, a child). An
    adapter that serves from memory (replay) says ``waits = False``: the runner then calls it
    from the calling thread, between the batches of records it hands on, since worker threads
    would only take turns with it at the interpreter."""
    return bool(getattr(adapter, "waits", True))


def request_body(case: Case) -> dict[str, Any]:
    """What a pipeline sees of a case: never the expected answer."""
    return {"id": case.id, "input": case.input}
