"""Files the gate writes: replaced in one step, so a reader never sees half of one.

Every file is a new regular file, mode 0644 whatever the umask (a later step may run as another
user and must read the report), and never written through a symlink: one planted at
``records.jsonl`` is replaced, its target left alone.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TextIO

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


def write_atomic(path: Path, text: str) -> None:
    """Write a file so that readers see the old content or the new one, never half of it."""
    with replacing(path) as handle:
        handle.write(text)


def open_new(path: Path) -> IO[str]:
    """Open ``path`` as a new, empty regular file for streaming lines into it; whatever was
    there (a file, a symlink) is removed first, never followed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    # O_EXCL: a symlink planted between the unlink and the open fails the open, not followed.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, MODE)
    os.fchmod(fd, MODE)
    return os.fdopen(fd, "w", encoding="utf-8")


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
