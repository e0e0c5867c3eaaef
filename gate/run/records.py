"""One record per case run: what the pipeline returned, how long it took, what went wrong.

Records are written to ``records.jsonl`` as cases finish, so a run killed halfway leaves the
finished ones readable; at the end the file is rewritten atomically with each case's scores.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from gate.files import replacing
from gate.load.dataset import ToolCall
from gate.load.validation import dotted


class _Open(BaseModel):
    # Pipelines may return more than the gate reads; extra fields are kept in the record.
    model_config = ConfigDict(extra="allow", frozen=True)


class Retrieved(_Open):
    id: str
    text: str | None = None
    score: float | None = None


class Usage(_Open):
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None


class Output(_Open):
    """A pipeline's output, as the contract describes it. Every field is optional."""

    answer: str | None = None
    retrieved: list[str | Retrieved] | None = None
    citations: list[str] | None = None
    tool_calls: list[ToolCall] | None = None
    abstained: bool | None = None
    usage: Usage | None = None
    model: str | None = None
    prompt_version: str | None = None

    def retrieved_ids(self) -> list[str]:
        return [r if isinstance(r, str) else r.id for r in self.retrieved or ()]

    def retrieved_texts(self) -> list[str | None]:
        return [None if isinstance(r, str) else r.text for r in self.retrieved or ()]


EMPTY = Output()


def parse_output(raw: Any) -> Output:
    """Validate a pipeline's raw output; a malformed one raises ValueError naming the field."""
    if not isinstance(raw, dict):
        raise ValueError(
            f'malformed output: expected a JSON object like {{"answer": ...}}, '
            f"got {type(raw).__name__}"
        )
    try:
        return Output.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ValueError(
            f"malformed output: {dotted(first['loc'])}: {first['msg']}{more}"
        ) from None


Status = Literal["ok", "error", "timeout"]


@dataclass(frozen=True)
class Judgement:
    """The LLM judge's verdict on one record for one judged metric (see gate/judge.py)."""

    score: float | None
    """None when the judge gave no score: a judge error, or nothing in the answer to judge."""
    rubric: str
    """The rubric's version, e.g. ``faithfulness-v1``."""
    model: str
    verdict: Any = None
    """The judge's parsed reply (claims, reasons), so a reader can see why a case scored low."""
    error: str | None = None
    cached: bool = False
    cost_usd: float | None = None
    """What this verdict cost in this run: 0 when it came from the cache, None without a price."""


@dataclass(frozen=True)
class Record:
    """The trace of one run of one case."""

    case_id: str
    repeat: int
    trace_id: str
    status: Status
    latency_ms: float | None
    attempts: int
    started_at: str
    output: Output = EMPTY
    raw_output: Any = None
    error: str | None = None
    scores: dict[str, float] = field(default_factory=dict)
    failure_modes: tuple[str, ...] = ()
    judgements: dict[str, Judgement] = field(default_factory=dict)
    """Judged metric name → the judge's verdict; empty when no judge is configured."""
    cached: bool = False
    """The output came from ``runner.cache``: the pipeline was not called."""

    def to_json(self) -> dict[str, Any]:
        out = {
            "id": self.case_id,
            "repeat": self.repeat,
            "trace_id": self.trace_id,
            "status": self.status,
            "started_at": self.started_at,
            "latency_ms": None if self.latency_ms is None else round(self.latency_ms, 3),
            "attempts": self.attempts,
            "error": self.error,
            "output": self.raw_output,
            "scores": self.scores,
            "failure_modes": list(self.failure_modes),
        }
        if self.judgements:
            out["judge"] = {name: asdict(j) for name, j in self.judgements.items()}
        if self.cached:
            out["cached"] = True
        return out


def read_record(row: dict[str, Any]) -> Record:
    """A record as ``to_json`` wrote it (its scores are not read: they are recomputed).

    Raises KeyError, TypeError or ValueError when ``row`` is not one.
    """
    status = row["status"]
    if status not in ("ok", "error", "timeout"):
        raise ValueError(f"status: {status!r} is not ok, error or timeout")
    return Record(
        case_id=str(row["id"]),
        repeat=int(row["repeat"]),
        trace_id=str(row["trace_id"]),
        status=status,
        latency_ms=None if row["latency_ms"] is None else float(row["latency_ms"]),
        attempts=int(row["attempts"]),
        started_at=str(row["started_at"]),
        output=parse_output(row["output"]) if status == "ok" else EMPTY,
        raw_output=row["output"],
        error=row["error"],
        judgements={name: Judgement(**j) for name, j in (row.get("judge") or {}).items()},
        cached=row.get("cached") is True,
    )


class RecordWriter:
    """Appends records to a JSONL file as they finish, flushed line by line."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] = path.open("w", encoding="utf-8")
        self._lock = threading.Lock()

    def write(self, record: Record) -> None:
        line = json.dumps(record.to_json(), ensure_ascii=False, default=str)
        with self._lock:
            self._file.write(line + "\n")
            self._file.flush()

    def close(self) -> None:
        self._file.close()


def write_records(path: Path, records: Iterable[Record]) -> None:
    """Rewrite records.jsonl in one atomic step (with the scores known at the end of the run),
    a line at a time: the file is never held in memory whole."""
    with replacing(path) as handle:
        for record in records:
            handle.write(json.dumps(record.to_json(), ensure_ascii=False, default=str) + "\n")
