"""reviews.jsonl: the human reviews of pipeline outputs, kept in the repository.

One review per line::

    {"case": "refund-over-limit", "fingerprint": "sha256:…", "reviewer": "ana",
     "verdict": "approve", "date": "2025-03-01", "note": "checked with legal",
     "output": {"answer": "…"}}

``fingerprint`` is ``output_fingerprint`` of the output reviewed; ``output`` (optional) is that
output itself, so the review queue can show what changed since it was approved.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from gate.errors import ConfigError
from gate.load.validation import Strict, capped, jsonl_row


def output_fingerprint(output: Any) -> str:
    """``sha256:`` of the canonical JSON of an output (sorted keys, no spaces, UTF-8): the same
    output gets the same fingerprint whatever order its keys were written in."""
    text = json.dumps(output, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


class Review(Strict):
    case: str = Field(min_length=1, description="the golden-set case id")
    fingerprint: str = Field(description="output_fingerprint of the output reviewed")
    reviewer: str = Field(min_length=1)
    verdict: Literal["approve", "reject"]
    date: date
    note: str = ""
    output: Any = Field(None, description="the output reviewed, for the queue's diff")

    @field_validator("fingerprint")
    @classmethod
    def _sha256(cls, value: str) -> str:
        digest = value.removeprefix("sha256:")
        if not value.startswith("sha256:") or len(digest) != 64 or not _hex(digest):
            raise ValueError(
                'must be "sha256:" and 64 hex digits (fix: copy the line `gate review` writes)'
            )
        return value


def _hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)


def read_reviews(path: Path) -> list[Review]:
    """Every review in ``path``, in file order; a missing file is no review yet. Raises
    ConfigError listing every bad line as ``file:line: key: problem (fix)``."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the reviews: {exc.strerror}") from None
    return parse_reviews(data, str(path))


def parse_reviews(data: bytes, path: str) -> list[Review]:
    """The reviews in ``data``, the text of a reviews file (``path`` names it in messages)."""
    problems: list[str] = []
    reviews: list[Review] = []
    for number, raw in enumerate(data.removeprefix(b"\xef\xbb\xbf").split(b"\n"), start=1):
        where = f"{path}:{number}"
        try:
            text = raw.removesuffix(b"\r").decode("utf-8")
        except UnicodeDecodeError:
            problems.append(f"{where}: not valid UTF-8 (fix: save it as UTF-8)")
            continue
        if not text.strip():
            continue
        review = jsonl_row(text, Review, where, problems)
        if review is None:
            continue
        if review.output is not None and output_fingerprint(review.output) != review.fingerprint:
            problems.append(
                f"{where}: fingerprint: does not match the `output` stored beside it "
                "(fix: copy the line `gate review` writes, unchanged)"
            )
            continue
        reviews.append(review)
    if problems:
        raise ConfigError(capped(problems, "problems"))
    return reviews
