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

from gate.errors import GateError
from gate.files import open_new, write_atomic
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
    if (problem := _unstorable(raw)) is not None:
        raise ValueError(f"malformed output: it cannot be stored as JSON ({problem})")
    try:
        return Output.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ValueError(
            f"malformed output: {dotted(first['loc'])}: {first['msg']}{more}"
        ) from None


def _unstorable(raw: Any) -> str | None:
    """Why ``raw`` cannot be written to records.jsonl (a tuple key, an integer past Python's
    digit limit, nesting past its recursion limit), or None."""
    try:
        _dumps(raw)
    except (TypeError, ValueError, RecursionError) as exc:
        return f"{type(exc).__name__}: {str(exc)[:120]}"
    return None


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


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
        return out


class RecordWriter:
    """Appends records to a JSONL file as they finish, flushed line by line."""

    def __init__(self, path: Path) -> None:
        self._file: IO[str] = open_new(path)
        self._lock = threading.Lock()

    def write(self, record: Record) -> None:
        line = _line(record)
        with self._lock:
            self._file.write(line + "\n")
            self._file.flush()

    def close(self) -> None:
        self._file.close()


def write_records(path: Path, records: Iterable[Record]) -> None:
    """Rewrite records.jsonl in one atomic step (with the scores known at the end of the run)."""
    write_atomic(path, "".join(_line(record) + "\n" for record in records))


def _line(record: Record) -> str:
    body = record.to_json()
    if record.status != "ok" and _unstorable(record.raw_output) is not None:
        # Its error says why (parse_output refused it): the rest of the record is kept.
        body["output"] = None
    return _dumps(body)


def read_records(path: Path) -> list[Record]:
    """The records of a finished run, as ``write_records`` wrote them (``gate bless`` re-scores
    them); a line that is not one is an input error naming the line."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise GateError(f"{path}: cannot read the records: {exc}") from None
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            body = json.loads(line)
            ok = body["status"] == "ok"
            records.append(
                Record(
                    case_id=str(body["id"]),
                    repeat=int(body["repeat"]),
                    trace_id=str(body["trace_id"]),
                    status=body["status"],
                    latency_ms=body["latency_ms"],
                    attempts=int(body["attempts"]),
                    started_at=str(body["started_at"]),
                    output=parse_output(body["output"]) if ok else EMPTY,
                    raw_output=body["output"],
                    error=body["error"],
                    judgements={
                        name: Judgement(**verdict)
                        for name, verdict in body.get("judge", {}).items()
                    },
                )
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise GateError(
                f"{path}:{number}: not a gate record ({type(exc).__name__}: {exc}) "
                "(fix: pass the --report folder of a finished `gate run`)"
            ) from None
    return records
