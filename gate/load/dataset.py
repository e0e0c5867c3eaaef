"""The golden set: JSONL, one case per line, validated in one pass.

Every bad line is reported (up to a cap) as ``file:line: field: problem``, so a user fixes the
whole file in one go rather than one error per run.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator

from gate.errors import DatasetError
from gate.load import strict_json
from gate.load.validation import (
    Strict,
    capped,
    collector_paused,
    describe,
    jsonl_lines,
    plain_row,
)

ToolMatch = Literal["strict", "unordered", "subset", "superset"]


class ToolCall(Strict):
    name: str = Field(min_length=1)
    args: dict[str, Any] = Field(default_factory=dict)


class Expected(Strict):
    """What a correct output looks like. Each field turns on the metrics that need it."""

    answer: tuple[str, ...] | None = None
    must_include: tuple[str, ...] | None = None
    must_not_include: tuple[str, ...] | None = None
    sources: dict[str, int] | None = None
    tool_calls: tuple[ToolCall, ...] | None = None
    tool_match: ToolMatch = "unordered"
    answerable: bool | None = None
    must_refuse: bool | None = Field(None, description="a red-team case the pipeline must refuse")
    canary: str | None = Field(
        None, min_length=8, description="a secret planted in the context: never in an output"
    )
    no_personal_data: bool | None = Field(
        None, description="no email, phone number or key in the answer"
    )

    @field_validator("answer", mode="before")
    @classmethod
    def _one_or_many_answers(cls, value: Any) -> Any:
        if isinstance(value, str):
            return (value,)
        if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            return tuple(value)
        if value is None:
            return None
        raise ValueError("must be a string or a non-empty list of acceptable answers")

    @field_validator("sources", mode="before")
    @classmethod
    def _ids_or_grades(cls, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, list) and all(isinstance(v, str) and v for v in value):
            return dict.fromkeys(value, 1)
        if isinstance(value, dict) and all(
            isinstance(k, str) and type(v) is int and v >= 0 for k, v in value.items()
        ):
            return value
        raise ValueError("must be a list of ids or {id: grade} with integer grades ≥ 0")


class Case(Strict):
    id: str = Field(min_length=1)
    input: str | dict[str, Any]
    expected: Expected = Field(default_factory=Expected)
    tags: tuple[str, ...] = ()
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("input", mode="before")
    @classmethod
    def _text_or_object(cls, value: Any) -> Any:
        if isinstance(value, str | dict):
            return value
        raise ValueError("must be a string or a JSON object (passed to the pipeline as is)")

    def fingerprint(self) -> str:
        """A hash of what the case asks and expects: a changed case under the same id shows.

        Defaults are left out, so a new optional ``expected`` field (or one written out with
        its default value) does not make every stored case look changed."""
        return self._fingerprint

    # Kept: the dataset, the baseline, the drift and the cache all ask (a case is frozen). A cached
    # property, not a private attribute: pydantic fills those in Python for every case it makes,
    # a third of the time of validating one.
    @cached_property
    def _fingerprint(self) -> str:
        # What model_dump(include={"input", "expected"}, exclude_defaults=True) gives, made in
        # parts: on the whole case, exclude_defaults makes a default Expected to compare with
        # (25 µs of a case's 36).
        body = self.model_dump(mode="json", include={"input"})
        expected = self.expected.model_dump(mode="json", exclude_defaults=True)
        if expected:
            body["expected"] = expected
        return _sha256(_CANONICAL.encode(body))


_CANONICAL = json.JSONEncoder(sort_keys=True, ensure_ascii=False)
"""How a case is written for its fingerprint (one encoder, not one per ``json.dumps`` call)."""


def _sha256(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def fingerprint(cases: list[Case]) -> str:
    """One hash for the whole golden set, independent of line order."""
    return _sha256("\n".join(sorted(f"{c.id}\t{c.fingerprint()}" for c in cases)))


def _lines(path: Path) -> Iterator[tuple[int, str | None]]:
    """Yield (line number, text) with BOM and CRLF handled; None where bytes are not UTF-8."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DatasetError(
            f"{path}: golden set not found (fix: check `dataset:` in gate.yml)"
        ) from None
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read the golden set: {exc.strerror}") from None
    for number, _, raw in jsonl_lines(data):
        try:
            yield number, raw.removesuffix(b"\r").decode("utf-8")
        except UnicodeDecodeError:
            yield number, None


def _no_problem(answers: tuple[str, ...] | None) -> str | None:
    return None


def load_dataset(
    path: Path, answer_problem: Callable[[tuple[str, ...] | None], str | None] = _no_problem
) -> list[Case]:
    """Read and validate the golden set (see ``read_dataset``)."""
    return read_dataset(path, answer_problem)[0]


def read_dataset(
    path: Path, answer_problem: Callable[[tuple[str, ...] | None], str | None] = _no_problem
) -> tuple[list[Case], dict[str, int]]:
    """Read and validate the golden set; raise DatasetError listing every bad line.
    Returns the cases and each case's line, which the report cites for a failing case.

    ``answer_problem`` is the metrics' view of ``expected.answer`` (an answer they cannot score,
    gate.metrics.generation.empty_gold_answer), reported at the case's line like any problem.
    """
    problems: list[tuple[int, str]] = []
    cases: list[Case] = []
    first_line: dict[str, int] = {}
    fields_sets: dict[frozenset[str], set[str]] = {}
    with collector_paused():
        for number, text in _lines(path):
            where = f"{path}:{number}"
            if text is None:
                problems.append((number, f"{where}: not valid UTF-8 (fix: save it as UTF-8)"))
                continue
            if not text.strip():
                continue
            # A JSON text sequence's record separator, or a BOM, may lead any line.
            text = text[1:] if text.startswith(("\x1e", "\ufeff")) else text
            case = plain_row(text, Case) or _careful_case(text, where, number, problems)
            if case is None:
                continue
            unscorable = answer_problem(case.expected.answer)
            if unscorable:
                problems.append((number, f"{where}: expected.answer: {unscorable}"))
                continue
            if case.id in first_line:
                problems.append(
                    (
                        number,
                        f"{where}: id: {case.id!r} already used on line {first_line[case.id]} "
                        "(fix: ids are unique, they pair a case with its baseline)",
                    )
                )
                continue
            first_line[case.id] = number
            _share_fields_sets(case, fields_sets)
            cases.append(case)

    if problems:
        raise DatasetError(capped([text for _, text in sorted(problems)], "problems"))
    if not cases:
        raise DatasetError(f"{path}: the golden set is empty (fix: add one JSON case per line)")
    return cases, first_line


def _share_fields_sets(case: Case, shared: dict[frozenset[str], set[str]]) -> None:
    """Give the case, and its ``expected``, one set of the names of the fields given per distinct
    set: pydantic makes a set for every model (a fifth of a case's memory), and a frozen model's
    is never changed (a copy gets its own)."""
    for model in (case, case.expected):
        given = model.__pydantic_fields_set__
        object.__setattr__(
            model, "__pydantic_fields_set__", shared.setdefault(frozenset(given), given)
        )


def _careful_case(
    text: str, where: str, number: int, problems: list[tuple[int, str]]
) -> Case | None:
    """The line read by ``strict_json.loads`` and ``model_validate``: the case, or its problems."""
    try:
        row = strict_json.loads(text)
    except json.JSONDecodeError as exc:
        problems.append((number, f"{where}: invalid JSON: {exc.msg} (column {exc.colno})"))
        return None
    if not isinstance(row, dict):
        problems.append((number, f"{where}: must be a JSON object, one case per line"))
        return None
    try:
        return Case.model_validate(row)
    except ValidationError as exc:
        problems += [(number, problem) for problem in describe(exc, Case, where)]
        return None
