"""The one scrubber: secrets and personal data out of every string the gate stores or prints.

Two kinds of text are replaced by ``***``: the secrets the gate knows (API keys read from the
environment, header values expanded from it, the GitHub token, any variable named like a secret)
and whatever the redaction patterns match (``redact:`` in gate.yml; by default common key formats,
bearer tokens, e-mail addresses and phone numbers). Text is scrubbed before it is cut short, so a
secret straddling the cut cannot leave its start behind.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

REDACTED = "***"

_KINDS: dict[str, tuple[tuple[str, str], ...]] = {
    # (pattern, what every text it matches contains): most text (answers, ids, inputs) contains
    # none of the latter, and one search for them all is several times cheaper than trying
    # every pattern at every position.
    "api_key": (
        (r"\bsk-[A-Za-z0-9_-]{16,}", "sk-"),  # OpenAI-style API keys (sk-..., sk-proj-...)
        (r"\bgh[pousr]_[A-Za-z0-9]{20,}", "gh[pousr]_"),  # GitHub tokens
        (r"\bgithub_pat_[A-Za-z0-9_]{20,}", "github_pat_"),  # GitHub fine-grained tokens
        (r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b", "AKIA|ASIA"),  # AWS access key ids
        (r"\bxox[abprs]-[A-Za-z0-9-]{10,}", "xox[abprs]-"),  # Slack tokens
        (r"(?<=[Bb]earer )[A-Za-z0-9._~+/=-]{8,}", "[Bb]earer "),  # Authorization: Bearer ...
    ),
    "email": ((r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}", "@"),),
    "phone": (
        (
            r"(?<![\w+])\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ .-]?\d{2,4}){1,4}(?!\w)",
            r"\+\d",
        ),
        # North American numbers
        (r"(?<![\w-])\(?\d{3}\)?[ .-]\d{3}[ .-]\d{4}(?![\w-])", r"\d{3}\)?[ .-]\d{3}"),
    ),
}

PATTERNS: dict[str, tuple[str, ...]] = {
    kind: tuple(pattern for pattern, _ in group) for kind, group in _KINDS.items()
}
"""The secrets and personal data scrubbed by default, by kind: what is redacted everywhere, what
mined cases are cleaned of, and what the red-team metrics catch are the same table."""

REQUIRED: dict[str, str] = {
    pattern: required for group in _KINDS.values() for pattern, required in group
}
"""For each default pattern, a regex that every text it matches contains."""

DEFAULT_PATTERNS: tuple[str, ...] = tuple(p for group in PATTERNS.values() for p in group)
_KIND = {pattern: kind for kind, group in PATTERNS.items() for pattern in group}
_KIND_REGEX = {kind: re.compile("|".join(group)) for kind, group in PATTERNS.items()}
"""Used when gate.yml has no ``redact:`` list; a ``redact:`` list replaces them."""

_SHORT = 64
_SEEN_MAX = 2**16
"""Texts up to ``_SHORT`` characters are scrubbed once and remembered (at most ``_SEEN_MAX``):
a run's records repeat the same keys and ids hundreds of thousands of times."""

_SECRET_NAME = re.compile(r"(?i)(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIALS?)$")
MIN_SECRET_LENGTH = 8
"""A shorter value ("true", "1") is too likely to be ordinary text to be scrubbed everywhere."""

ENV_REFERENCE = re.compile(r"\$\{(\w+)\}")
"""``${VAR}`` in a config value: read from the environment, so a secret."""


def found(text: str) -> list[str]:
    """The kinds of secret or personal data in ``text`` (``["email", ...]``), each once."""
    return [kind for kind, regex in _KIND_REGEX.items() if regex.search(text)]


def secret_values(env: Mapping[str, str], names: Iterable[str] = ()) -> list[str]:
    """The values of the variables ``names`` and of every variable named like a secret
    (``*_KEY``, ``*_TOKEN``, ``*_SECRET``, ``*PASSWORD``), longest first."""
    wanted = set(names) | {name for name in env if _SECRET_NAME.search(name)}
    values = {env[name].strip() for name in wanted if name in env}
    return sorted((v for v in values if len(v) >= MIN_SECRET_LENGTH), key=len, reverse=True)


@dataclass(frozen=True)
class Scrubber:
    """Replaces known secrets and pattern matches with ``***`` (or, ``labelled``, with
    ``[redacted:<kind>]``: for text a person will edit, such as mined cases)."""

    secrets: tuple[str, ...] = ()
    patterns: tuple[str, ...] = DEFAULT_PATTERNS
    labelled: bool = False
    _regex: re.Pattern[str] | None = field(init=False, repr=False, compare=False)
    _maybe: re.Pattern[str] | None = field(init=False, repr=False, compare=False)
    """Found in every text ``_regex`` matches (None: no such filter for these patterns)."""
    _seen: dict[str, str] = field(default_factory=dict, init=False, repr=False, compare=False)
    """Short texts already scrubbed: the keys, ids, tags and statuses every record repeats."""

    def __post_init__(self) -> None:
        known = [re.escape(s) for s in sorted(set(self.secrets), key=len, reverse=True) if s]
        parts = [f"(?P<secret>{'|'.join(known)})"] if known else []
        parts += [f"(?P<p{i}>{pattern})" for i, pattern in enumerate(self.patterns)]
        # One alternation, one pass: a secret is replaced whole before a pattern sees part of it.
        object.__setattr__(self, "_regex", re.compile("|".join(parts)) if parts else None)
        maybe = None
        if parts and all(pattern in REQUIRED for pattern in self.patterns):
            maybe = re.compile("|".join([*known, *(REQUIRED[p] for p in self.patterns)]))
        object.__setattr__(self, "_maybe", maybe)

    def adding(self, secrets: Iterable[str]) -> Scrubber:
        """This scrubber, knowing more secrets."""
        more = (*self.secrets, *(s for s in secrets if s))
        return Scrubber(more, self.patterns, self.labelled)

    def text(self, text: str) -> str:
        if self._regex is None:
            return text
        if len(text) > _SHORT:
            return self._scrub(text)
        clean = self._seen.get(text)
        if clean is None:
            clean = self._scrub(text)
            # Once full, nothing more is kept (never cleared): the texts seen first, the keys
            # every record has, stay, while one-off answers pass through.
            if len(self._seen) < _SEEN_MAX:
                self._seen[text] = clean
        return clean

    def _scrub(self, text: str) -> str:
        assert self._regex is not None
        if self._maybe is not None and self._maybe.search(text) is None:
            return text
        if not self.labelled:
            return self._regex.sub(REDACTED, text)
        return self._regex.sub(self._label, text)

    def _label(self, match: re.Match[str]) -> str:
        group = match.lastgroup or "secret"
        kind = (
            "secret" if group == "secret" else _KIND.get(self.patterns[int(group[1:])], "pattern")
        )
        return f"[redacted:{kind}]"

    def cut(self, text: str, limit: int) -> str:
        """Scrubbed, then cut to ``limit`` characters (with an ellipsis when cut)."""
        clean = self.text(text)
        return clean if len(clean) <= limit else clean[: limit - 1] + "…"

    def value(self, value: Any) -> Any:
        """A JSON-like value with every string in it (keys included) scrubbed. A dict or list
        with nothing to scrub comes back as it is, not copied (a 100k-case report was copied
        whole); tuples come back as lists."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            # Keys are strings in JSON: scrubbed as text, without a call through here each.
            scrubbed = {
                self.text(k) if type(k) is str else self.value(k): self._item(v)
                for k, v in value.items()
            }
            # Equal only when no text in it changed (what is unchanged below comes back as the
            # same object, so the comparison does not walk it again).
            return value if scrubbed == value else scrubbed
        if isinstance(value, list | tuple):
            items = [self._item(item) for item in value]
            return value if type(value) is list and items == value else items
        return value

    def _item(self, value: Any) -> Any:
        kind = type(value)
        if kind is str:
            return self.text(value)
        if kind is int or kind is float or kind is bool or value is None:
            return value
        return self.value(value)


DEFAULT_SCRUBBER = Scrubber()
"""The default patterns and no known secret: for callers given no scrubber (fail closed)."""
