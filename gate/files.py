"""Files the gate writes: replaced in one step, so a reader never sees half of one; the JSON in
them written (``to_json``) and read back (``from_json``) by orjson.

Every file is a new regular file, mode 0644 whatever the umask (a later step may run as another
user and must read the report), and never written through a symlink: one planted at
``records.jsonl`` is replaced, its target left alone.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, TextIO

import orjson

MODE = 0o644


@contextmanager
def replacing(path: Path) -> Iterator[TextIO]:
    """A file to write ``path``'s new content into, in pieces; it replaces ``path`` when the
    block ends without error (readers see the old content or the new, never half)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, MODE)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        # A rename replaces a symlink at ``path`` itself, never the file it points to.
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_atomic(path: Path, content: str | bytes) -> None:
    """Write a file so that readers see the old content or the new one, never half of it;
    ``bytes`` are UTF-8 already (``to_json``'s)."""
    with replacing(path) as handle:
        if isinstance(content, bytes):
            handle.buffer.write(content)
        else:
            handle.write(content)


def to_json(
    value: Any,
    *,
    indent: bool = False,
    sort_keys: bool = False,
    default: Callable[[Any], Any] | None = None,
    finite: bool = True,
    newline: bool = False,
) -> bytes:
    """``value`` as the JSON text every file the gate writes holds, in UTF-8 (not \\u-escaped):
    keys in their order (or sorted), objects and arrays opened two spaces a level with
    ``indent``, else compact; ``newline`` ends it with one (a file's, without copying a 22 MB
    report to add it). ``default`` turns a value JSON has no type for into one it has
    (the stdlib's ``default``); without it such a value is a TypeError.

    NaN and the infinities are not JSON: a ValueError unless ``finite`` is false (a caller
    whose values are checked where they are made), when orjson writes them as null.

    orjson writes it (at 100k cases the report in 0.02 s, where ``json.dump`` took 0.7 s); a
    value orjson refuses (an integer beyond 64 bits, a key that is not a string) is written by
    ``json`` with the same options instead, or refused as ``json`` refuses it.
    """
    option = _PASSTHROUGH
    if indent:
        option |= orjson.OPT_INDENT_2
    if sort_keys:
        option |= orjson.OPT_SORT_KEYS
    if newline:
        option |= orjson.OPT_APPEND_NEWLINE

    def convert(item: Any) -> Any:
        # A float's subclass (numpy's float64) is a number to ``json``; orjson asks ``default``.
        if isinstance(item, float):
            return float(item)
        if default is None:
            raise TypeError(f"Object of type {type(item).__name__} is not JSON serializable")
        return default(item)

    try:
        data = orjson.dumps(value, default=convert, option=option)
    except orjson.JSONEncodeError:
        text = json.dumps(
            value,
            ensure_ascii=False,
            allow_nan=False,
            indent=2 if indent else None,
            separators=(",", ": ") if indent else (",", ":"),
            sort_keys=sort_keys,
            default=default,
        )
        return (text + "\n" if newline else text).encode()
    # After orjson, which refuses a value that contains itself: the walk would never end.
    if finite:
        check_finite(value)
    return data


_PASSTHROUGH = orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME
"""Values orjson would write itself but ``json`` leaves to ``default``: left to ``default``."""


def from_json(text: str, fallback: Callable[[str], Any] = json.loads) -> Any:
    """``text`` read as ``fallback`` (``json.loads``) reads it, by orjson where orjson reads the
    same: a document without an integer that may pass 64 bits (orjson reads one as a float).
    What orjson refuses (NaN, a lone surrogate, an error) is left to ``fallback``, to read or
    refuse in its words."""
    if not _may_hold_long_integer(text):
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    return fallback(text)


def _may_hold_long_integer(text: str) -> bool:
    """Whether an integer of 19 digits or more may be in ``text``, without a parse: with digits
    as 0s, ``[`` as ``,`` and whitespace and minus signs gone, such a literal is 19 0s at the
    start, after a ``,`` or after a key's ``":``. Text in a string may look like one too (then
    ``fallback`` reads the document), but no such literal is missed."""
    flat = text.encode("utf-8", "surrogatepass").translate(_FLAT, b" \t\n\r-")
    return flat.startswith(_LONG) or b"," + _LONG in flat or b'":' + _LONG in flat


_FLAT = bytes.maketrans(b"[0123456789", b",0000000000")
_LONG = b"0" * 19


def check_finite(value: Any) -> None:
    """ValueError when a NaN or an infinity is anywhere in ``value`` (dicts, lists, tuples)."""
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is str or kind is int or kind is bool or item is None:
            continue
        if kind is dict:
            stack.extend(item.values())
        elif kind is list or kind is tuple:
            stack.extend(item)
        elif isinstance(item, float) and not math.isfinite(item):
            raise ValueError(f"Out of range float values are not JSON compliant: {item!r}")
        elif isinstance(item, dict | list | tuple):  # subclasses, as the encoders write them
            stack.extend(item.values() if isinstance(item, dict) else item)


def open_new(path: Path) -> IO[bytes]:
    """Open ``path`` as a new, empty regular file for streaming lines into it, as bytes (UTF-8
    already: ``to_json``'s); whatever was there (a file, a symlink) is removed first, never
    followed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    # O_EXCL: a symlink planted between the unlink and the open fails the open, not followed.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, MODE)
    os.fchmod(fd, MODE)
    return os.fdopen(fd, "wb")


def unwritable(path: Path, *, folder: bool = True) -> str | None:
    """Why the gate cannot write the folder ``path`` (or the file, when ``folder`` is false),
    or None when it can: asked before a run, so it is not spent on a report that cannot land."""
    if not folder:
        if path.is_dir():
            return "it is a folder, not a file"
        path = path.parent
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except FileExistsError:
        return f"{path} is not a folder"
    except OSError as exc:
        return f"cannot write in {path} ({exc.strerror})"
    return None
