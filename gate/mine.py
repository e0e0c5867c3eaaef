"""Failures become cases: ``gate mine FILE`` turns failing or flagged runs into candidate
golden-set lines, for a person to finish.

Three kinds of input, told apart line by line (JSONL) or item by item (a JSON document):

- a run's ``records.jsonl`` (``id``, ``repeat``, ``status``, ``failure_modes``): the failing
  runs; records hold no input, so it is taken from the golden set the run used (``--cases``);
- production traces as observability stacks log them: ``trace_id``, ``input`` (or ``query`` /
  ``question``), ``output`` (or ``answer``), ``prompt_version``, ``model``, ``retrieved_chunks``,
  ``tool_calls``, ``latency_ms``, ``status``, ``feedback`` (or ``user_feedback``); failing when the
  status is not a success, flagged when the feedback is negative or ``flagged`` is true;
- OpenTelemetry GenAI spans exported as JSON: OTLP/JSON (``resourceSpans`` → ``scopeSpans`` →
  ``spans``, attributes as ``[{"key", "value": {"stringValue": …}}]``) or one span per item with
  plain ``attributes``; the input is the last user message of ``gen_ai.input.messages`` (or the
  older ``gen_ai.prompt``), the output ``gen_ai.output.messages`` (or ``gen_ai.completion``);
  failing when the span's status is an error or ``error.type`` is set.

Each candidate is a valid golden-set line: an id derived from the trace, tags ``mined`` and the
failure mode, the observation under ``metadata.observed``, ``expected`` empty and
``metadata.unfinished: true`` (``gate validate`` lists them until a person fills ``expected`` and
removes the mark). Candidates whose normalised input is already in the golden set, or already
mined, are dropped; everything is scrubbed of personal data and secrets.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gate.errors import ConfigError
from gate.files import write_atomic
from gate.load import strict_json
from gate.load.config import load_config
from gate.load.dataset import Case, read_dataset
from gate.scrub import Scrubber

OK_STATUSES = {
    "ok",
    "success",
    "succeeded",
    "completed",
    "unset",
    "status_code_ok",
    "status_code_unset",
}
NEGATIVE = {"down", "thumbs_down", "thumbs-down", "negative", "bad", "no", "dislike", "-1"}

_CLEAN = Scrubber(labelled=True)
"""Mined cases are edited by a person: what was removed says what it was."""


@dataclass(frozen=True)
class Observation:
    """One failing or flagged run, whatever it was read from."""

    source: str
    trace_id: str
    input: Any
    modes: tuple[str, ...]
    observed: dict[str, Any]


@dataclass(frozen=True)
class Mined:
    candidates: list[dict[str, Any]]
    read: int
    """Runs read."""
    passing: int
    """Runs that neither failed nor were flagged."""
    known: int
    """Failing runs whose input the golden set already has."""
    repeated: int
    """Failing runs with the same input as an earlier candidate (counted in its occurrences)."""


def normalised(value: Any) -> str:
    """What two inputs are compared on: case, spacing and closing punctuation do not count."""
    if not isinstance(value, str):
        value = json.dumps(value, sort_keys=True, ensure_ascii=False)
    return " ".join(value.casefold().split()).strip(" ?!.")


def _items(path: Path) -> Iterator[tuple[int, Any]]:
    """(line, item) for a JSONL file, or (1, item) for each item of one JSON document."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: not found (fix: pass a records.jsonl or a traces file)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read it: {exc}") from None
    try:
        whole = strict_json.loads(text)
    except ValueError:
        whole = None
    if whole is not None:
        for item in whole if isinstance(whole, list) else [whole]:
            yield 1, item
        return
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield number, strict_json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"{path}:{number}: invalid JSON: {exc.msg} (column {exc.colno}) (fix: one JSON "
                "object per line, or one JSON document)"
            ) from None


def _is_record(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and "failure_modes" in value
        and isinstance(value.get("repeat"), int)
        and "id" in value
    )


def _is_otlp(value: Any) -> bool:
    return isinstance(value, dict) and "resourceSpans" in value


def _observations(
    path: Path, number: int, item: Any, cases: Mapping[str, Case]
) -> Iterator[Observation | None]:
    """The observations in one item; None for each run that passed."""
    if not isinstance(item, dict):
        raise ConfigError(f"{path}:{number}: must be a JSON object (a record, trace or span)")
    if _is_otlp(item):
        for resource in item.get("resourceSpans") or []:
            for scope in resource.get("scopeSpans") or []:
                for span in scope.get("spans") or []:
                    yield _from_span(span)
    elif "failure_modes" in item and "repeat" in item:
        yield _from_record(path, number, item, cases)
    elif _attributes(item) and any(k.startswith("gen_ai.") for k in _attributes(item)):
        yield _from_span(item)
    elif "trace_id" in item:
        yield _from_trace(item)
    else:
        raise ConfigError(
            f"{path}:{number}: neither a record (id, repeat, failure_modes), a trace (trace_id) "
            "nor a GenAI span (gen_ai.* attributes) (fix: see docs/launch.md for the shapes)"
        )


def _from_record(
    path: Path, number: int, record: Mapping[str, Any], cases: Mapping[str, Case]
) -> Observation | None:
    modes = tuple(record.get("failure_modes") or ())
    if record.get("status") != "ok":
        modes = (str(record.get("status")), *modes)
    if not modes:
        return None
    case = cases.get(str(record.get("id")))
    if case is None:
        raise ConfigError(
            f"{path}:{number}: id {record.get('id')!r}: not in the cases given (fix: pass "
            "--cases the golden set this run used)"
        )
    observed = {k: record.get(k) for k in ("output", "error", "latency_ms", "status", "scores")}
    return Observation(
        "records", str(record.get("trace_id") or case.id), case.input, modes, observed
    )


def _negative(feedback: Any) -> bool:
    if isinstance(feedback, Mapping):
        return any(_negative(feedback.get(k)) for k in ("rating", "score", "value", "thumbs"))
    if isinstance(feedback, bool):
        return not feedback
    if isinstance(feedback, int | float):
        return feedback <= 0
    return isinstance(feedback, str) and feedback.strip().casefold() in NEGATIVE


def _first(item: Mapping[str, Any], *keys: str) -> Any:
    return next((item[k] for k in keys if item.get(k) is not None), None)


def _from_trace(trace: Mapping[str, Any]) -> Observation | None:
    status = str(trace.get("status") or "ok").casefold()
    feedback = _first(trace, "feedback", "user_feedback")
    modes = []
    if status not in OK_STATUSES:
        modes.append(_slug(status))
    if feedback is not None and _negative(feedback):
        modes.append("negative-feedback")
    if trace.get("flagged") is True:
        modes.append("flagged")
    if not modes:
        return None
    observed = {
        "output": _first(trace, "output", "answer", "response"),
        "model": trace.get("model"),
        "prompt_version": trace.get("prompt_version"),
        "retrieved_chunks": trace.get("retrieved_chunks"),
        "tool_calls": trace.get("tool_calls"),
        "latency_ms": trace.get("latency_ms"),
        "status": trace.get("status"),
        "feedback": feedback,
    }
    question = _first(trace, "input", "query", "question", "prompt")
    return Observation("trace", str(trace["trace_id"]), question, tuple(modes), observed)


def _attributes(span: Mapping[str, Any]) -> dict[str, Any]:
    raw = span.get("attributes")
    if isinstance(raw, Mapping):
        return dict(raw)
    if isinstance(raw, list):  # OTLP/JSON: [{"key": ..., "value": {"stringValue": ...}}]
        return {
            str(a.get("key")): _otlp_value(a.get("value")) for a in raw if isinstance(a, Mapping)
        }
    return {}


def _otlp_value(value: Any) -> Any:
    if not isinstance(value, Mapping):
        return value
    if "arrayValue" in value:
        return [_otlp_value(v) for v in (value["arrayValue"] or {}).get("values", [])]
    for key in ("stringValue", "intValue", "doubleValue", "boolValue"):
        if key in value:
            return value[key]
    return None


def _messages(value: Any) -> list[Any]:
    """``gen_ai.*.messages`` may be recorded as a JSON string on spans."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return [{"role": "user", "content": value}]
    return value if isinstance(value, list) else []


def _text(message: Any) -> str:
    if not isinstance(message, Mapping):
        return str(message)
    if "parts" in message:
        return "\n".join(
            str(p.get("content"))
            for p in message["parts"] or []
            if isinstance(p, Mapping) and p.get("type", "text") == "text"
        )
    return str(message.get("content") or "")


def _from_span(span: Mapping[str, Any]) -> Observation | None:
    attributes = _attributes(span)
    status = span.get("status") or {}
    code = str(
        status.get("code", status.get("status_code", "")) if isinstance(status, Mapping) else status
    )
    modes = []
    if code.upper() in {"2", "ERROR", "STATUS_CODE_ERROR"} or attributes.get("error.type"):
        modes.append(_slug(str(attributes.get("error.type") or "error")))
    reasons = attributes.get("gen_ai.response.finish_reasons") or []
    if "content_filter" in reasons:
        modes.append("content-filter")
    if not modes:
        return None
    inputs = _messages(attributes.get("gen_ai.input.messages") or attributes.get("gen_ai.prompt"))
    users = [m for m in inputs if not isinstance(m, Mapping) or m.get("role", "user") == "user"]
    outputs = _messages(
        attributes.get("gen_ai.output.messages") or attributes.get("gen_ai.completion")
    )
    context = span.get("context")
    context = context if isinstance(context, Mapping) else {}
    trace_id = span.get("traceId") or context.get("trace_id") or span.get("spanId") or ""
    observed = {
        "output": "\n".join(_text(m) for m in outputs) or None,
        "model": attributes.get("gen_ai.response.model") or attributes.get("gen_ai.request.model"),
        "operation": attributes.get("gen_ai.operation.name"),
        "finish_reasons": reasons or None,
        "status": code or None,
    }
    question = _text(users[-1]) if users else None
    return Observation("otel", str(trace_id), question, tuple(modes), observed)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.casefold()).strip("-") or "failed"


def case_id(trace_id: str) -> str:
    """``mined-`` and the trace id when it is a plain id, else a hash of it (an id never
    carries what the scrubber would remove)."""
    safe = re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", trace_id) and _CLEAN.text(trace_id) == trace_id
    return f"mined-{trace_id if safe else hashlib.sha256(trace_id.encode()).hexdigest()[:16]}"


def mine(path: Path, golden: list[Case], cases: Mapping[str, Case]) -> Mined:
    """The candidates in ``path``, deduplicated against ``golden`` and each other."""
    known = {normalised(case.input) for case in golden}
    taken_ids = {case.id for case in golden}
    by_input: dict[str, dict[str, Any]] = {}
    read = passing = in_golden = repeated = 0
    items = list(_items(path))
    if items and all(_is_record(item) for _, item in items):
        # records.jsonl is written as cases finish: read in the cases' order, the same run
        # gives the same candidates (the first run of an input is the one kept).
        order = {case_id: i for i, case_id in enumerate(cases)}
        items.sort(key=lambda pair: (order.get(str(pair[1]["id"]), len(order)), pair[1]["repeat"]))
    for number, item in items:
        for found in _observations(path, number, item, cases):
            read += 1
            if found is None:
                passing += 1
                continue
            if found.input is None or normalised(found.input) in known:
                in_golden += found.input is not None
                passing += found.input is None
                continue
            text = _CLEAN.value(found.input)
            key = normalised(text)
            if key in by_input:
                repeated += 1
                seen = by_input[key]
                seen["metadata"]["occurrences"] += 1
                tags = seen["tags"]
                tags += [f"{m}" for m in map(_slug, found.modes) if m not in tags]
                continue
            ident = case_id(found.trace_id)
            while ident in taken_ids:
                ident += "-x"
            taken_ids.add(ident)
            line = {
                "id": ident,
                "input": text,
                "expected": {},
                "tags": ["mined", *dict.fromkeys(map(_slug, found.modes))],
                "metadata": {
                    "unfinished": True,
                    "source": found.source,
                    "trace_id": _CLEAN.text(found.trace_id),
                    "occurrences": 1,
                    "observed": _CLEAN.value(
                        {k: v for k, v in found.observed.items() if v is not None}
                    ),
                },
            }
            Case.model_validate(line)  # a candidate is a valid golden-set line, always
            by_input[key] = line
    return Mined(list(by_input.values()), read, passing, in_golden, repeated)


def mine_file(config: Path, path: Path, out: Path, cases_path: Path | None) -> Mined:
    """``gate mine``: candidates from ``path`` against the config's golden set, into ``out``.
    ``cases_path`` is the golden set the records were run on (default: the config's)."""
    loaded = load_config(config)
    golden, _ = read_dataset(loaded.resolve(loaded.dataset))
    cases = read_dataset(cases_path)[0] if cases_path else golden
    mined = mine(path, golden, {case.id: case for case in cases})
    lines = "".join(json.dumps(c, ensure_ascii=False) + "\n" for c in mined.candidates)
    write_atomic(out, lines)
    return mined


def unfinished(cases: list[Case]) -> list[str]:
    """Ids of cases still marked ``metadata.unfinished`` (mined, ``expected`` not filled)."""
    return [case.id for case in cases if case.metadata.get("unfinished")]
