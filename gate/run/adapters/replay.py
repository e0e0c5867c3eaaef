"""The ``replay`` adapter: outputs recorded earlier, read from a JSONL file."""

from __future__ import annotations

import codecs
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from gate.errors import DatasetError
from gate.load.config import ReplayPipeline
from gate.load.dataset import Case
from gate.load.validation import Strict, capped, jsonl_lines, jsonl_row, plain_row
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
    repeat, so a recorded non-deterministic pipeline replays its variation.

    The file is read and checked whole when the adapter is made (a bad line stops the run
    before any case, exit 2). Then only where each row is in the file is kept, and a row is read
    again from the file when served (``os.pread``, checked again in Rust): kept as lines, a
    100k-row file held 50 MB to the run's end. The file must not change while the run reads it.
    """

    waits = False
    """Served from memory: called from the run's own thread (gate.run.adapters.base.waits)."""

    def __init__(self, spec: ReplayPipeline, root: Path) -> None:
        self._path = root / spec.path  # an absolute spec.path stays as it is
        self._only: dict[str, int] = {}
        """Case id → where its one row is (its index in ``_spans``): most ids have one."""
        self._rows: dict[str, list[int | _Recorded]] = {}
        """Case id → its rows, for ids with several, or with one only the careful path reads
        (kept parsed: a constant or a long number, rare)."""
        self._served: dict[str, int] = {}
        self._lock = threading.Lock()
        data = self._bytes()
        spans: list[int] = []  # start and end in the file of each plain row, in turn
        problems: list[str] = []
        for number, start, raw in jsonl_lines(data):
            line = self._decoded(raw, start, data)
            if line.strip():
                plain = plain_row(line, _Recorded)
                found = plain or jsonl_row(line, _Recorded, f"{self._path}:{number}", problems)
                if found is not None:
                    row: int | _Recorded = found
                    if plain:
                        row = len(spans) // 2
                        spans += (start, start + len(raw))
                    self._add(found.id, row)
        if problems:
            raise DatasetError(capped(problems, "problems"))
        self._spans = np.array(spans, dtype=np.int64).reshape(-1, 2)
        self._file: int | None = os.open(self._path, os.O_RDONLY) if spans else None

    def _add(self, case_id: str, row: int | _Recorded) -> None:
        rows = self._rows.get(case_id)
        if rows is not None:
            rows.append(row)
        elif case_id in self._only:
            self._rows[case_id] = [self._only.pop(case_id), row]
        elif isinstance(row, int):
            self._only[case_id] = row
        else:
            self._rows[case_id] = [row]

    def _bytes(self) -> bytes:
        try:
            return self._path.read_bytes()
        except FileNotFoundError:
            raise DatasetError(
                f"{self._path}: replay file not found (fix: check `pipeline.path`)"
            ) from None
        except OSError as exc:
            raise DatasetError(
                f"{self._path}: cannot read the replay file: {exc.strerror}"
            ) from None

    def _decoded(self, raw: bytes, start: int, data: bytes) -> str:
        """One line's text; ``start``: where it starts in the file's ``data``."""
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            # Counted after a byte order mark, as a UTF-8 decoder of the whole file counts.
            at = (
                start
                + exc.start
                - (len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0)
            )
            raise DatasetError(
                f"{self._path}: not UTF-8 at byte {at} (fix: save it as UTF-8)"
            ) from None

    def call(self, case: Case, timeout_s: float) -> Reply:
        row: int | _Recorded | None = self._only.get(case.id)
        if row is None:
            rows = self._rows.get(case.id)
            if not rows:
                raise LookupError(f"no recorded output for this case in {self._path.name}")
            with self._lock:
                turn = self._served.get(case.id, 0)
                self._served[case.id] = turn + 1
            row = rows[turn % len(rows)]
        if isinstance(row, int):
            row = _Recorded.model_validate_json(self._read(row))
        # Read from the file by the strict rules (a plain line is screened for them).
        return Reply(
            row.output, latency_ms=row.latency_ms, error=row.error, timed=False, strict=True
        )

    def _read(self, row: int) -> bytes:
        start, end = self._spans[row].tolist()
        if self._file is None:
            raise LookupError(f"{self._path.name} is closed")
        return os.pread(self._file, end - start, start)

    def close(self) -> None:
        # What the file's rows were let go with the run, before the verdict is made.
        self._only, self._rows, self._served = {}, {}, {}
        if self._file is not None:
            os.close(self._file)
            self._file = None

    def __del__(self) -> None:
        # An adapter dropped unclosed (a test, a caller's error) does not keep its file open.
        if getattr(self, "_file", None) is not None:
            self.close()
