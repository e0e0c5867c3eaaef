"""Prompt files: YAML front matter (the version, the model, sampling parameters), then a template.

    ---
    version: rag-v3
    model: gpt-4.1-mini
    temperature: 0
    ---
    system:
    Answer from the context only.

    user:
    {{ contexts }}

    Question: {{ input }}

Lines ``system:``, ``user:`` and ``assistant:`` start a chat message (the role markers of
Microsoft's Prompty format); a body without them is one user message. The template syntax is
deliberately tiny: ``{{ name }}`` or ``{{ name.key }}``, substituted in one pass, so text from a
case (or a model) that happens to contain ``{{ ... }}`` is never expanded, and nothing is ever
evaluated. The file's version and sha256 go into every trace and the pipeline's fingerprint.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gate.errors import ConfigError
from gate.load.dataset import Case

# The line-indexing YAML loader, reused so a prompt file's problems read file:line exactly
# as gate.yml's do (read_yaml reads a whole file; here YAML is only the front matter).
from gate.load.validation import Strict, capped, describe, parse_yaml

PIPELINE_PLACEHOLDERS = frozenset({"input", "contexts"})
"""What a pipeline prompt can use: the case's input (``input.key`` for an object input) and
its reference contexts."""

_PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}")
_NAME = re.compile(r"[A-Za-z_]\w*(?:\.\w+)*")
_ROLE = re.compile(r"(system|user|assistant):\s*")
_FENCE = "---"


class ToolFunction(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ToolSpec(Strict):
    """A tool the model may call, in the Chat Completions ``tools`` shape."""

    type: Literal["function"] = "function"
    function: ToolFunction


class ResponseFormat(BaseModel):
    # Extra keys pass through to the endpoint: ``json_schema`` carries its own schema object.
    model_config = ConfigDict(extra="allow", frozen=True)
    type: Literal["text", "json_object", "json_schema"]


class PromptSettings(Strict):
    """The front matter. Sampling parameters left out are left to the endpoint's defaults."""

    version: str = Field(min_length=1, description="shown in traces and reports, e.g. rag-v3")
    model: str | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    max_tokens: int | None = Field(None, ge=1)
    seed: int | None = None
    tools: list[ToolSpec] | None = Field(None, min_length=1)
    response_format: ResponseFormat | None = None


@dataclass(frozen=True)
class Message:
    role: str
    template: str


@dataclass(frozen=True)
class Prompt:
    """A loaded, validated prompt file."""

    path: Path
    settings: PromptSettings
    messages: tuple[Message, ...]
    sha256: str
    """Of the file's bytes: any edit shows, even one that forgot to bump ``version``."""
    placeholders: frozenset[str]
    """The names the template uses (their first part: ``input`` for ``{{ input.topic }}``)."""

    @property
    def version(self) -> str:
        return self.settings.version

    @property
    def json_mode(self) -> bool:
        fmt = self.settings.response_format
        return fmt is not None and fmt.type != "text"

    def identity(self) -> dict[str, str]:
        """What traces, reports and fingerprints record of the prompt."""
        return {"version": self.version, "sha256": self.sha256}

    def parameters(self) -> dict[str, Any]:
        """The request's sampling parameters, ``tools`` and ``response_format``, where set."""
        return self.settings.model_dump(
            mode="json", exclude_none=True, exclude={"version", "model"}
        )

    def render(self, values: Mapping[str, Any]) -> list[dict[str, str]]:
        """The chat messages with every placeholder filled in; a missing key raises ValueError."""
        return [
            {"role": m.role, "content": _PLACEHOLDER.sub(lambda p: _fill(p, values), m.template)}
            for m in self.messages
        ]


def _fill(match: re.Match[str], values: Mapping[str, Any]) -> str:
    name = match.group(1).strip()
    first, *keys = name.split(".")
    value = values[first]  # the names were checked against the allowed ones at load
    for depth, key in enumerate(keys, start=1):
        if not isinstance(value, dict) or key not in value:
            where = ".".join([first, *keys[: depth - 1]])
            raise ValueError(f"prompt placeholder {{{{ {name} }}}}: {where} has no key {key!r}")
        value = value[key]
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def load_prompt(path: Path, allowed: frozenset[str] = PIPELINE_PLACEHOLDERS) -> Prompt:
    """Read a prompt file; every problem is a ConfigError naming ``file:line``."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: prompt file not found (fix: check `pipeline.prompt`)") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the prompt file: {exc.strerror}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 at byte {exc.start} (fix: save it as UTF-8)"
        ) from None
    lines = text.replace("\r\n", "\n").split("\n")
    if lines[0].strip() != _FENCE:
        raise ConfigError(
            f"{path}:1: a prompt file starts with YAML front matter between two `---` lines "
            "(fix: add `---`, `version: ...`, `---` above the template)"
        )
    end = next((i for i in range(1, len(lines)) if lines[i].strip() == _FENCE), None)
    if end is None:
        raise ConfigError(f"{path}:1: the front matter is not closed (fix: end it with `---`)")
    settings = _settings(path, "\n".join(lines[:end]))
    messages, placeholders = _template(path, lines, end + 1, allowed)
    return Prompt(
        path, settings, messages, hashlib.sha256(data).hexdigest(), frozenset(placeholders)
    )


def _settings(path: Path, front: str) -> PromptSettings:
    # ``front`` begins with the opening ``---`` (a YAML document marker), so YAML's line numbers
    # are the file's.
    data, lines = parse_yaml(front, str(path), "YAML in the front matter")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:2: the front matter must be a mapping with at least `version`")
    try:
        return PromptSettings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(
            capped(describe(exc, PromptSettings, str(path), lines), "problems")
        ) from None


def _template(
    path: Path, lines: list[str], start: int, allowed: frozenset[str]
) -> tuple[tuple[Message, ...], set[str]]:
    """Split the body into messages at role lines and check every placeholder's name."""
    body = lines[start:]
    first = start + 1  # the file's line number of body[0]
    problems: list[str] = []
    placeholders: set[str] = set()
    known = ", ".join(f"{{{{ {n} }}}}" for n in sorted(allowed))
    for number, line in enumerate(body, start=first):
        for match in _PLACEHOLDER.finditer(line):
            name = match.group(1).strip()
            if _NAME.fullmatch(name) and name.split(".")[0] in allowed:
                placeholders.add(name.split(".")[0])
            else:
                problems.append(
                    f"{path}:{number}: {match.group(0)}: unknown placeholder; this template "
                    f"syntax has only {known} (and `.key` into an object), no filters or logic"
                )
    marks = [(i, m.group(1)) for i, line in enumerate(body) if (m := _ROLE.fullmatch(line))]
    if not marks:
        marks = [(-1, "user")]
    elif "".join(body[: marks[0][0]]).strip():
        problems.append(
            f"{path}:{first}: text before the first role line (fix: put it under `system:` or "
            "`user:`)"
        )
    messages = []
    for n, (i, role) in enumerate(marks):
        stop = marks[n + 1][0] if n + 1 < len(marks) else len(body)
        content = "\n".join(body[i + 1 : stop]).strip()
        if not content and i < 0:
            problems.append(f"{path}:{first}: the template is empty (fix: write it below `---`)")
        elif not content:
            problems.append(f"{path}:{first + i}: `{role}:` has no text (fix: write it or drop it)")
        messages.append(Message(role, content))
    if problems:
        raise ConfigError(capped(problems, "problems"))
    return tuple(messages), placeholders


def reference_contexts(case: Case) -> list[tuple[str | None, str]]:
    """The case's ``metadata.contexts``: a list of texts or of ``{"id", "text"}`` objects."""
    raw = case.metadata.get("contexts")
    if raw is None:
        return []
    out: list[tuple[str | None, str]] = []
    for item in raw if isinstance(raw, list) else [raw]:
        if isinstance(item, str):
            out.append((None, item))
        elif isinstance(item, dict) and isinstance(item.get("text"), str):
            ident = item.get("id")
            out.append((ident if isinstance(ident, str) else None, item["text"]))
        else:
            raise ValueError(
                'metadata.contexts: must be a list of texts or of {"id": ..., "text": ...} objects'
            )
    return out


def contexts_text(contexts: Sequence[tuple[str | None, str]]) -> str:
    """Contexts as the model reads them: ``[id] text`` blocks (``[1]``, ``[2]`` without ids),
    so an answer can cite them by id."""
    return "\n\n".join(
        f"[{ident or number}] {text.strip()}"
        for number, (ident, text) in enumerate(contexts, start=1)
    )
