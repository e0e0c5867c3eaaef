"""strict_json.loads reads with orjson where orjson reads as json does: the same values, of the
same types, and the same refusals (in json's words), as with json alone."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from gate import files
from gate.load import strict_json

DOCUMENTS = [
    "1234567890123456789",
    " \n -1234567890123456789",
    "[123456789012345678, 1234567890123456789]",
    "[1,\n  -12345678901234567890]",
    '{"a" : 123456789012345678901234567890}',
    '{"a":18446744073709551616, "b": -9223372036854775809}',
    '["sha256:1234567890123456789", "a,1234567890123456789"]',  # strings that look like one
    "[1.2345678901234567890123, 1e-400, -0, -0.0, 1.7976931348623157e308]",
    r'["\ud800", "\ud83d\ude00", "\u2028 é"]',
    '{"a": 1, "a": 2, "b": {"a": [3]}}',
    "[NaN]",
    '{"a": -Infinity}',
    "[1e999]",
    "[" + "9" * 101 + "]",
    "[1, 2,]",
    '{"a": 1} x',
    "",
    '"\t"',
    "[" * 65 + "]" * 65,
]


def read(text: str, monkeypatch: pytest.MonkeyPatch, *, orjson: bool) -> Any:
    with monkeypatch.context() as patch:
        if not orjson:
            patch.setattr(files, "_may_hold_long_integer", lambda text: True)
        try:
            value = strict_json.loads(text)
        except json.JSONDecodeError as exc:
            return ("refused", exc.msg, exc.pos)
    return ("read", value, _types(value))


def _types(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _types(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_types(v) for v in value]
    return type(value).__name__


@pytest.mark.parametrize("text", DOCUMENTS)
def test_loads__orjson_reads_what_json_reads_and_refuses_what_it_refuses(text, monkeypatch):
    assert read(text, monkeypatch, orjson=True) == read(text, monkeypatch, orjson=False)


def test_loads__integers_of_every_length_and_sign_keep_their_value(monkeypatch):
    rng = random.Random(0)
    for _ in range(500):
        digits = str(rng.randint(1, 9)) + "".join(rng.choices("0123456789", k=rng.randint(0, 30)))
        space = rng.choice(["", " ", "\n  "])
        text = f'{{"n":{space}{rng.choice(["", "-"])}{digits}, "m": [{space}{digits}]}}'
        assert read(text, monkeypatch, orjson=True) == read(text, monkeypatch, orjson=False)
        assert strict_json.loads(text)["m"] == [int(digits)]
