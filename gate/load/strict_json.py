"""JSON as the gate reads a user's file: strict, bounded, and wrong in one way only.

Python's ``json`` accepts ``NaN`` and ``Infinity`` (not JSON), turns ``1e999`` into infinity,
recurses once per nesting level (a deep enough line is a RecursionError, a bug's exit 3) and
refuses a long integer with a ValueError. ``loads`` refuses all of these as a
``json.JSONDecodeError`` at the offending place, so every reader (golden set, replay file,
baseline) reports them as ``file:line`` like any other syntax error.

Read by orjson where it reads as ``json`` does (``from_json``); it refuses what these rules
refuse, and ``json`` parses what it refuses again, for the message.
"""

from __future__ import annotations

import json
import math
import re
from itertools import accumulate
from typing import Any

from gate.files import from_json

MAX_DEPTH = 64
"""Nesting levels of arrays and objects; deeper is no data a pipeline or a person writes."""
MAX_DIGITS = 100
"""Digits of an integer; longer is no count, grade or id."""

_TOKENS = re.compile(r'"(?:[^"\\]+|\\.)*"?|[\[{]|[\]}]|NaN|-?Infinity|[-+0-9.eE]+')
"""Strings (skipped whole), brackets, numbers and the non-JSON constants, in order."""
_STRING = re.compile(r'"(?:[^"\\]+|\\.)*"?')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
_LONG_NUMBER = re.compile(rf"[0-9](?:[eE][-+]?[0-9]{{3}}|[0-9]{{{MAX_DIGITS}}})")
"""What an integer over ``MAX_DIGITS`` digits or an infinite float must contain somewhere (in a
string too, which only costs the careful parse): ``MAX_DIGITS`` digits are far below 1e308, and
an exponent follows a digit, so an id such as ``case-000123`` does not match."""


class _Refused(ValueError):
    def __init__(self, problem: str, literal: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.literal = literal


def loads(text: str | bytes) -> Any:
    """Parse one JSON document strictly; every problem is a ``json.JSONDecodeError``."""
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    # A document with fewer brackets than the cap cannot nest deeper: most lines cost a count.
    if text.count("[") + text.count("{") > MAX_DEPTH and _depth(text) > MAX_DEPTH:
        raise json.JSONDecodeError(_too_deep(), text, _too_deep_at(text))
    if text.startswith("\ufeff"):  # as json.loads says it
        raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
    # orjson refuses NaN, Infinity and 1e999 too; json's parse then says what is wrong, and
    # where, in its words. The baseline at 100k cases in 0.2 s, not 0.44 s.
    return from_json(text, fallback=_strict)


def _strict(text: str) -> Any:
    try:
        if _LONG_NUMBER.search(text) is None:
            # No literal can be out of range: numbers parsed in C, without a call for each.
            return _PLAIN.decode(text)
        return _CAREFUL.decode(text)
    except _Refused as exc:
        raise json.JSONDecodeError(exc.problem, text, _position(text, exc.literal)) from None


def is_plain(text: str) -> bool:
    """Whether ``text`` is out of reach of every rule ``loads`` adds to JSON: no constant, long
    number or deep nesting can be in it (a look, cheaper than a parse). Then a strict parser such
    as pydantic's (in Rust) reads it as ``loads`` does, or refuses it."""
    return (
        text.count("[") + text.count("{") <= MAX_DEPTH
        and "NaN" not in text
        and "Infinity" not in text
        and _LONG_NUMBER.search(text) is None
    )


def _constant(literal: str) -> Any:
    raise _Refused(f"{literal} is not a JSON number (fix: write null, or a finite number)", literal)


def _integer(literal: str) -> int:
    digits = len(literal.lstrip("-"))
    if digits > MAX_DIGITS:
        raise _Refused(
            f"an integer of {digits} digits; the limit is {MAX_DIGITS} (fix: write it as a string)",
            literal,
        )
    return int(literal)


def _float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise _Refused(f"{literal} is too large for a number (fix: write a finite number)", literal)
    return value


_PLAIN = json.JSONDecoder(parse_constant=_constant)
_CAREFUL = json.JSONDecoder(parse_constant=_constant, parse_int=_integer, parse_float=_float)
"""Made once: ``json.loads`` with options makes a decoder per call, a third of a short line's
parse."""


def _depth(text: str) -> int:
    """How deep the document nests (its strings, which may hold brackets, left out)."""
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0)


def _too_deep_at(text: str) -> int:
    depth = 0
    for token in _TOKENS.finditer(text):
        first = token.group()[0]
        if first in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return token.start()
        elif first in "]}":
            depth -= 1
    return 0


def _position(text: str, literal: str) -> int:
    """Where ``literal`` first stands outside a string (0 when it cannot be found)."""
    for token in _TOKENS.finditer(text):
        if token.group() == literal:
            return token.start()
    return 0


def _too_deep() -> str:
    return f"nested deeper than {MAX_DEPTH} levels (fix: flatten the structure)"
