"""One record per case run: what the pipeline returned, how long it took, what went wrong.

Records are written to ``records.jsonl`` with their scores as cases finish (within a second), in
the order they finish, so a run killed halfway leaves the finished ones readable.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Annotated, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gate.errors import GateError
from gate.files import from_json, open_new, to_json
from gate.load.dataset import ToolCall
from gate.load.strict_json import MAX_DIGITS
from gate.load.validation import dotted
from gate.scrub import DEFAULT_SCRUBBER, Scrubber


class _Open(BaseModel):
    # Pipelines may return more than the gate reads; extra fields are kept in the record.
    model_config = ConfigDict(extra="allow", frozen=True)


class Retrieved(_Open):
    id: str
    text: str | None = None
    score: float | None = None


Count = Annotated[int, Field(ge=0)]
Amount = Annotated[float, Field(ge=0, allow_inf_nan=False)]
"""A cost or a latency: finite and not negative. ``-inf`` dollars would make any regression in
cost look like a saving, and ``Infinity`` is not JSON."""


class Usage(_Open):
    input_tokens: Count | None = None
    output_tokens: Count | None = None
    cost_usd: Amount | None = None


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

MAX_DEPTH = 100
"""Deeper nesting than any real output: refused before it can exhaust the stack downstream."""

MAX_LOG_CHARS = 4000
"""What a record keeps of a pipeline's log lines (command adapter), the latest."""
MAX_ERROR_CHARS = 1000


def check_json(value: Any) -> None:
    """ValueError unless ``value`` can be written as strict JSON: dicts with string keys, lists,
    strings, finite numbers (integers of at most 100 digits), booleans and null, nested at most
    ``MAX_DEPTH`` deep. Checked without recursion, so no value can exhaust the stack; where a
    value sits is spelled out only for the message."""
    stack: list[tuple[Any, int, _Path]] = [(value, 0, None)]
    while stack:
        item, depth, path = stack.pop()
        kind = type(item)
        if kind is str or kind is bool or item is None:
            continue
        if kind is dict:
            for key, child in item.items():
                if type(key) is not str:
                    raise ValueError(
                        f"unserialisable output: {_where(path)}: a {type(key).__name__} key, "
                        "not a string"
                    )
                if depth == MAX_DEPTH:
                    _too_deep((path, key))
                if type(child) is not str:
                    stack.append((child, depth + 1, (path, key)))
        elif kind is list or kind is tuple:
            if item and depth == MAX_DEPTH:
                _too_deep((path, 0))
            stack.extend(
                (child, depth + 1, (path, i))
                for i, child in enumerate(item)
                if type(child) is not str
            )
        elif isinstance(item, str):
            continue
        elif isinstance(item, int):
            if item.bit_length() > MAX_DIGITS * 3.33:
                raise ValueError(
                    f"unserialisable output: {_where(path)}: an integer over 100 digits"
                )
        elif isinstance(item, float | numbers.Real):  # numpy's numbers, written as their value
            if not math.isfinite(float(item)):
                raise ValueError(f"unserialisable output: {_where(path)}: {item} is not JSON")
        elif isinstance(item, dict | list | tuple):  # subclasses: as their base
            stack.append((dict(item) if isinstance(item, dict) else list(item), depth, path))
        else:
            raise ValueError(f"unserialisable output: {_where(path)}: a {type(item).__name__}")


_Path = tuple[Any, str | int] | None
"""Where a value sits in an output: (its parent's path, its key or index); None at the top."""


def _too_deep(path: _Path) -> None:
    raise ValueError(f"unserialisable output: nested deeper than {MAX_DEPTH} at {_where(path)}")


def _where(path: _Path) -> str:
    parts: list[str] = []
    while path is not None:
        path, key = path
        parts.append(f"[{key}]" if isinstance(key, int) else f".{key}")
    return ("output" + "".join(reversed(parts)))[:200]


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


class Measured(Protocol):
    """What a line writes of how a run scored: the record's own fields, or what it was scored
    into (``gate.metrics.scoring.Run``), handed to the writer without a copy of the record."""

    @property
    def scores(self) -> Mapping[str, float]: ...
    @property
    def failure_modes(self) -> tuple[str, ...]: ...


@dataclass(frozen=True, slots=True)
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
    scores: Mapping[str, float] = field(default_factory=dict)
    failure_modes: tuple[str, ...] = ()
    judgements: dict[str, Judgement] = field(default_factory=dict)
    """Judged metric name → the judge's verdict; empty when no judge is configured."""
    log: str | None = None
    """What the pipeline wrote besides its reply while it ran the case (command adapter)."""
    cached: bool = False
    """The output came from ``runner.cache``: the pipeline was not called."""

    def to_json(self, measured: Measured | None = None) -> dict[str, Any]:
        """The record as its line holds it; its scores and failure modes ``measured``'s when
        given."""
        scored: Measured = self if measured is None else measured
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
            "scores": dict(scored.scores.items()),
            "failure_modes": list(scored.failure_modes),
        }
        if self.judgements:
            out["judge"] = {name: asdict(j) for name, j in self.judgements.items()}
        if self.log:
            out["log"] = self.log
        if self.cached:
            out["cached"] = True
        return out


def stored(record: Record, scrub: Scrubber, measured: Measured | None = None) -> bytes:
    """A record's JSON line as it is written, with its newline: what the pipeline said (its raw
    output, errors and log) and the judge's reasons scrubbed, before anything cuts them (the
    output is not validated again: the line holds the raw output)."""
    line = record.to_json(measured)
    line["output"] = scrub.value(record.raw_output)
    line["error"] = scrub.value(record.error)
    if "log" in line:
        line["log"] = scrub.value(record.log)
    for judged in line.get("judge", {}).values():
        judged["verdict"] = scrub.value(judged["verdict"])
        judged["error"] = scrub.value(judged["error"])
    # finite=False: outputs are checked where they enter (check_json), scores leave NaN out;
    # checking again would cost as much as the encoding. default=str: as ``json`` wrote a value
    # it has no type for (numpy's integers) before.
    return to_json(line, default=str, finite=False, newline=True)


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
        log=row.get("log"),
        cached=row.get("cached") is True,
    )


class RecordWriter:
    """Appends records to a JSONL file as they come, flushed batch by batch."""

    def __init__(self, path: Path, scrub: Scrubber = DEFAULT_SCRUBBER) -> None:
        self._scrub = scrub
        # Bytes: the lines are UTF-8 as encoded, not decoded to be encoded again.
        self._file: IO[bytes] = open_new(path)

    def write(self, records: Iterable[Record], measured: Iterable[Measured] | None = None) -> None:
        """Each record's line; its scores and failure modes ``measured``'s (one per record, in
        order) when given, else its own."""
        scrub = self._scrub
        if measured is None:
            lines = (stored(record, scrub) for record in records)
        else:
            pairs = zip(records, measured, strict=True)
            lines = (stored(record, scrub, scored) for record, scored in pairs)
        self._file.writelines(lines)
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def read_records(path: Path) -> list[Record]:
    """The records of a finished run, as ``RecordWriter`` wrote them (``gate bless`` re-scores
    them); a line that is not one is an input error naming the line."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise GateError(f"{path}: cannot read the records: {exc}") from None
    records = []
    seen: dict[tuple[str, int], int] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = read_record(from_json(line))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise GateError(
                f"{path}:{number}: not a gate record ({type(exc).__name__}: {exc}) "
                "(fix: pass the --report folder of a finished `gate run`)"
            ) from None
        first = seen.setdefault((record.case_id, record.repeat), number)
        if first != number:
            raise GateError(
                f"{path}:{number}: case {record.case_id!r} repeat {record.repeat} again (first "
                f"at line {first}) (fix: pass the --report folder of one finished `gate run`)"
            )
        records.append(record)
    return records
