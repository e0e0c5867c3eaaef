"""The output cache (``runner.cache: DIR``, opt-in): a case's output, reused while nothing it
depends on changed.

An output is reused when the case (its id, input and expectations), the pipeline's fingerprint
(the config, the prompt file, the files ``pipeline.watch`` names: see ``gate.plan``) and the
repeat index are all unchanged. One JSONL file per pipeline fingerprint: a changed pipeline
starts an empty file (nothing of the old one can be reused), a changed case adds a line. Only
runs that succeeded are kept, so a failure is always retried. The folder is what a workflow
persists with ``actions/cache``, keyed on the fingerprint.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any

from gate.load.dataset import Case
from gate.run.records import Record, parse_output
from gate.scrub import Scrubber


@dataclass(frozen=True)
class Cached:
    output: Any
    latency_ms: float | None


SECRETS_ONLY = Scrubber(patterns=())
"""No secret known yet, no pattern: the caller passes the run's known secrets."""


class OutputCache:
    """Outputs by (case, repeat), for one pipeline fingerprint. Used from one thread."""

    def __init__(
        self, folder: Path, pipeline_fingerprint: str, scrub: Scrubber = SECRETS_ONLY
    ) -> None:
        """``scrub`` cleans what is stored: the secrets the gate knows. Not the personal-data
        patterns: a cached output must replay as the pipeline gave it (an e-mail address in a
        tool call is part of the answer), so keep the cache folder out of artifacts."""
        self._scrub = scrub
        digest = pipeline_fingerprint.removeprefix("sha256:")[:32]
        self.path = folder / f"outputs-{digest}.jsonl"
        self._entries: dict[str, Cached] = {}
        self._file: IO[str] | None = None
        self.hits = 0
        if self.path.exists():
            self._load()

    def _load(self) -> None:
        # A torn last line (a run killed mid-write) or a foreign line is skipped: a miss, never
        # a wrong output.
        with self.path.open(encoding="utf-8") as handle:
            for line in handle:
                try:
                    row = json.loads(line)
                    self._entries[row["key"]] = Cached(row["output"], row["latency_ms"])
                except (ValueError, KeyError, TypeError):
                    continue

    @staticmethod
    def key(case: Case, repeat: int) -> str:
        body = json.dumps([case.id, case.fingerprint(), repeat], ensure_ascii=False)
        return hashlib.sha256(body.encode()).hexdigest()

    def get(self, base: Record, case: Case) -> Record | None:
        """The run's record from the cache (status ok, attempts 0), or None on a miss."""
        found = self._entries.get(self.key(case, base.repeat))
        if found is None:
            return None
        try:
            output = parse_output(found.output)
        except ValueError:
            return None
        self.hits += 1
        return replace(
            base,
            status="ok",
            latency_ms=found.latency_ms,
            output=output,
            raw_output=found.output,
            cached=True,
        )

    def put(self, record: Record, case: Case) -> None:
        if record.status != "ok" or record.cached:
            return
        key = self.key(case, record.repeat)
        self._entries[key] = Cached(record.raw_output, record.latency_ms)
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a", encoding="utf-8")
        output = self._scrub.value(record.raw_output)
        row = {"key": key, "output": output, "latency_ms": record.latency_ms}
        self._file.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
