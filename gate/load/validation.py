"""Turning pydantic's and YAML's complaints into messages a person can act on.

Every message names the file, the line when we know it, the key, and how to fix it:
``gate.yml:7: runner.concurrency: Input should be greater than 0 (fix: use a whole number ≥ 1)``.
"""

from __future__ import annotations

import codecs
import difflib
import gc
import io
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from gate.errors import ConfigError
from gate.load import strict_json

M = TypeVar("M", bound=BaseModel)

MAX_LISTED = 20
"""How many problems a message lists before it says how many more there are."""

Loc = tuple[str | int, ...]


class Strict(BaseModel):
    """The base of every model read from a user's file: a misspelt key is an error, never a
    silently ignored setting, and a loaded value cannot be changed afterwards."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def dotted(loc: Sequence[str | int]) -> str:
    """``("expected", "sources", 0)`` → ``expected.sources[0]``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def capped(problems: Sequence[str], what: str) -> str:
    """Join problems into one message, listing at most MAX_LISTED of them."""
    shown = list(problems[:MAX_LISTED])
    more = len(problems) - len(shown)
    if more:
        shown.append(f"... and {more} more {what}")
    return "\n".join(shown)


def _walk(model: type[BaseModel], loc: Loc) -> tuple[Loc, type[BaseModel] | None]:
    """Follow ``loc`` through the model's fields.

    Returns the location as the user wrote it (without the tags pydantic inserts for a tagged
    union, such as ``python`` in ``pipeline.python.target``) and the model reached at its end.
    """
    shown: list[str | int] = []
    current: type[BaseModel] | None = model
    pending: list[type[BaseModel]] = []
    for part in loc:
        if pending:
            chosen = next((m for m in pending if part in _tags(m)), None)
            pending = []
            if chosen is not None:
                current = chosen
                continue
        shown.append(part)
        if current is None or isinstance(part, int):
            continue
        field = current.model_fields.get(str(part))
        members = _models_in(field.annotation) if field is not None else []
        current = members[0] if len(members) == 1 else None
        pending = members if len(members) > 1 else []
    return tuple(shown), current


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in getattr(annotation, "__args__", ()) for m in _models_in(arg)]


def _tags(model: type[BaseModel]) -> set[str]:
    """The values of the model's ``Literal`` fields: the tags that select it in a union."""
    return {
        str(arg)
        for f in model.model_fields.values()
        if get_origin(f.annotation) is Literal
        for arg in get_args(f.annotation)
    }


def _fix(kind: str, loc: Loc, parent: type[BaseModel] | None) -> str:
    if kind == "missing":
        return f"add `{loc[-1]}`"
    if kind == "extra_forbidden":
        known = [f.alias or n for n, f in parent.model_fields.items()] if parent else []
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        if close:
            return f"did you mean `{close[0]}`?"
        return f"remove it; allowed keys: {', '.join(sorted(known))}" if known else "remove it"
    return ""


def describe(
    exc: ValidationError,
    model: type[BaseModel],
    where: str,
    lines: dict[Loc, int] | None = None,
    prefix: Loc = (),
) -> list[str]:
    """One ``file:line: key: problem (fix: ...)`` string per pydantic error."""
    out = []
    for error in exc.errors():
        loc, _ = _walk(model, tuple(error["loc"]))
        _, parent = _walk(model, tuple(error["loc"])[:-1])
        where_loc = prefix + loc
        line = _line_for(where_loc, lines) if lines else None
        place = f"{where}:{line}" if line else where
        fix = _fix(error["type"], loc, parent)
        msg = error["msg"].removeprefix("Value error, ")
        out.append(f"{place}: {dotted(where_loc)}: {msg}" + (f" ({fix})" if fix else ""))
    return out


def _line_for(loc: Loc, lines: dict[Loc, int]) -> int | None:
    # The deepest prefix of the location that has a line: a missing key is reported at its parent.
    for end in range(len(loc), -1, -1):
        line = lines.get(loc[:end])
        if line is not None:
            return line
    return None


MAX_YAML_DEPTH = 64
"""Deeper nesting is no configuration anyone writes; PyYAML slows quadratically and recurses."""
MAX_YAML_VALUES = 100_000
"""Values a document may hold once its aliases are expanded: a billion-laughs bomb stops here."""


class _LineLoader(yaml.SafeLoader):
    """A safe loader that refuses duplicate keys (the second silently winning hides typos), deep
    nesting and alias expansion beyond the caps above, in time linear in the text."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._sizes: dict[int, int] = {}

    def fetch_flow_collection_start(self, TokenClass: Any) -> None:
        super().fetch_flow_collection_start(TokenClass)
        if self.flow_level > MAX_YAML_DEPTH:
            raise yaml.scanner.ScannerError(None, None, _too_deep(), self.tokens[-1].start_mark)

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise yaml.composer.ComposerError(None, None, _too_deep(), mark)
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if node is not None and self._size(node) > MAX_YAML_VALUES:
            raise yaml.composer.ComposerError(
                None,
                None,
                f"aliases expand this to more than {MAX_YAML_VALUES} values "
                "(fix: write the values out, or reuse fewer anchors)",
                mark,
            )
        return node

    def _size(self, node: yaml.Node) -> int:
        """How many values ``node`` stands for with its aliases expanded (children first, so
        each is counted once and a shared node costs one look-up)."""
        size = self._sizes.get(id(node))
        if size is None:
            children: list[Any] = node.value if isinstance(node.value, list) else []
            # A mapping's children are (key, value) pairs; a sequence's are nodes.
            flat = [n for c in children for n in (c if isinstance(c, tuple) else (c,))]
            size = 1 + sum(self._sizes.get(id(n), 1) for n in flat)
            self._sizes[id(node)] = size
        return size


def _too_deep() -> str:
    return f"nested deeper than {MAX_YAML_DEPTH} levels (fix: flatten the structure)"


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"duplicate key {key!r} (first on line {seen[key]}): keep one",
                key_node.start_mark,
            )
        seen[key] = key_node.start_mark.line + 1
    return loader.construct_mapping(node, deep=deep)


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _index_lines(node: yaml.Node, loc: Loc, out: dict[Loc, int]) -> None:
    out[loc] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = (key_node.value,)
            out[loc + key] = key_node.start_mark.line + 1
            _index_lines(value_node, loc + key, out)
            out[loc + key] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index_lines(item, (*loc, i), out)


def read_yaml(path: Path, what: str) -> tuple[Any, dict[Loc, int]]:
    """Parse a YAML file, returning its data and the line of every key path."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"{path}: {what} not found (fix: create it or point to it)") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text at byte {exc.start} (fix: save it as UTF-8)"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read {what}: {exc.strerror}") from None
    return parse_yaml(text, str(path))


def parse_yaml(text: str, where: str, what: str = "YAML") -> tuple[Any, dict[Loc, int]]:
    """Parse YAML text (safely, refusing duplicate keys): its data and every key path's line."""
    loader = _LineLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}{line}: invalid {what}: {problem}") from None
    finally:
        loader.dispose()
    lines: dict[Loc, int] = {}
    if node is not None:
        _index_lines(node, (), lines)
    return data, lines


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a file is loaded: loading makes objects and frees
    none, so its passes over the growing heap find nothing, and at 100k rows they cost as much as
    the parsing."""
    paused = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()


def jsonl_lines(data: bytes) -> Iterator[tuple[int, int, bytes]]:
    """A JSONL file's lines, after a leading byte order mark: (line number, where the line
    starts in ``data``, its bytes without the ``\n``). Numbered by the file's own lines, blank
    ones included, so file:line points at the row; split at ``\n`` only (JSON strings may hold
    U+2028 and other line separators); one line at a time, never a list of them, so the file is
    held once."""
    lines = io.BytesIO(data)
    start = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    lines.seek(start)
    for number, raw in enumerate(lines, start=1):
        yield number, start, raw.removesuffix(b"\n")
        start += len(raw)


def plain_row(line: str, model: type[M]) -> M | None:
    """One JSONL line as ``model``, parsed and validated in one step in Rust, with no Python
    objects of a parse in between, when the line is plain and valid; None for any other line,
    which the careful path (``jsonl_row``) then reads: the same row, or its problems."""
    if not strict_json.is_plain(line):
        return None
    try:
        return model.model_validate_json(line)
    except ValidationError:
        return None


def jsonl_row(line: str, model: type[M], where: str, problems: list[str]) -> M | None:
    """One JSONL line as ``model``; None, with its problems appended as ``where: ...``, when the
    line is not strict JSON or not a valid row."""
    try:
        row = strict_json.loads(line)
    except json.JSONDecodeError as exc:
        problems.append(f"{where}: invalid JSON: {exc.msg} (column {exc.colno})")
        return None
    try:
        return model.model_validate(row)
    except ValidationError as exc:
        problems += describe(exc, model, where)
        return None
