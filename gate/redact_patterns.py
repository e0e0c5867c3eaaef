"""The personal data and secrets the launch tools scrub (mined cases, evidence packs) and the
red-team metrics look for: one table, so what is redacted and what is caught are the same.

At merge this table belongs in the one scrubber, ``gate/scrub.py``; nothing else keeps a copy.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

PATTERNS: dict[str, re.Pattern[str]] = {
    # Provider keys and tokens first: a key can contain what looks like a phone number.
    "api_key": re.compile(
        r"\b(?:sk|pk|rk)-[A-Za-z0-9_-]{16,}"
        r"|\bgh[pousr]_[A-Za-z0-9]{20,}"
        r"|\bAKIA[0-9A-Z]{16}\b"
        r"|\bxox[abpr]-[A-Za-z0-9-]{10,}"
        r"|\bBearer\s+[A-Za-z0-9._~+/-]{16,}=*"
    ),
    "email": re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b"),
    # Numbers written as phone numbers: groups of digits joined by spaces, dots or dashes, an
    # optional +country code. Plain runs of digits (order ids) and ISO dates do not match.
    "phone": re.compile(
        r"(?<![\w.-])(?:\+\d{1,3}[ .-]?)?(?:\(?\d{2,4}\)?[ .-]){1,3}\d{3,4}(?![\w-])"
    ),
}


def found(text: str) -> list[str]:
    """The kinds of personal data or secret in ``text`` (``["email", ...]``), each once."""
    return [kind for kind, pattern in PATTERNS.items() if pattern.search(text)]


def scrub(text: str) -> str:
    """``text`` with every match replaced by ``[redacted:<kind>]``."""
    for kind, pattern in PATTERNS.items():
        text = pattern.sub(f"[redacted:{kind}]", text)
    return text


def scrub_value(value: Any) -> Any:
    """Every string inside a JSON value scrubbed (keys too), the structure kept."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, Mapping):
        return {scrub(str(k)): scrub_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub_value(v) for v in value]
    return value
