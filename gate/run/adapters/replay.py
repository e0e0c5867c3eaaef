"""The ``replay`` adapter: outputs recorded earlier, read from a JSONL file."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from gate.errors import DatasetError
from gate.load.config import ReplayPipeline
from gate.load.dataset import Case
from gate.load.validation import Strict, capped, jsonl_row, plain_row
from gate.run.adapters.base import Reply
from gate.run.records import Amount


class _Recorded(Strict):
    id: str
    output: dict[str, Any] | None = None
    # The replay file's own field: a negative or non-finite latency stops the run (exit 2,
    # file:line); the recorded output is checked like any adapter's (a bad usage is that case's
    # error, gate.run.records.parse_output).
    latency_ms: Amount | None = None
    error: str | None = None


class ReplayAdapter:
    """Serves recorded outputs by case id. Several lines for one id are served in turn, one per
    repeat, so a recorded non-deterministic pipeline replays its variation."""

    waits = False
    """Served from memory: called from the run's own thread (gate.run.adapters.base.waits)."""

    def __init__(self, spec: ReplayPipeline, root: Path) -> None:
        self._path = root / spec.path  # an absolute spec.path stays as it is
        # A plain row is kept as its line and read again (in Rust) when served: parsed, a row is
        # several times the size of its line, and the records keep their own copy of each output.
        # The few rows only the careful path reads are kept parsed.
        self._rows: dict[str, list[str | _Recorded]] = {}
        self._served: dict[str, int] = {}
        self._lock = threading.Lock()
        problems: list[str] = []
        # Numbered by the file's own lines (blank ones included), so file:line points at the row.
        # split("\n"), not splitlines(): JSON strings may hold U+2028 and other line separators.
        for number, line in enumerate(self._text().split("\n"), start=1):
            if not line.strip():
                continue
            plain = plain_row(line, _Recorded)
            recorded = plain or jsonl_row(line, _Recorded, f"{self._path}:{number}", problems)
            if recorded is not None:
                self._rows.setdefault(recorded.id, []).append(line if plain else recorded)
        if problems:
            raise DatasetError(capped(problems, "problems"))

    def _text(self) -> str:
        try:
            return self._path.read_text(encoding="utf-8-sig")
        except FileNotFoundError:
            raise DatasetError(
                f"{self._path}: replay file not found (fix: check `pipeline.path`)"
            ) from None
        except UnicodeDecodeError as exc:
            raise DatasetError(
                f"{self._path}: not UTF-8 at byte {exc.start} (fix: save it as UTF-8)"
            ) from None

    def call(self, case: Case, timeout_s: float) -> Reply:
        rows = self._rows.get(case.id)
        if not rows:
            raise LookupError(f"no recorded output for this case in {self._path.name}")
        with self._lock:
            turn = self._served.get(case.id, 0)
            self._served[case.id] = turn + 1
        row = rows[turn % len(rows)]
        if isinstance(row, str):
            row = _Recorded.model_validate_json(row)
        # Read from the file by the strict rules (a plain line is screened for them).
        return Reply(
            row.output, latency_ms=row.latency_ms, error=row.error, timed=False, strict=True
        )

    def close(self) -> None:
        self._rows = {}  # the file's lines let go with the run, before the verdict is made
