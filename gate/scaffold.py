"""``gate init``: a working starter set-up written into a repository.

The files are templates shipped as package data (``gate/templates/``); the starter pipeline
replays recorded outputs, so ``gate run`` passes right after ``gate init``. Nothing that exists is
overwritten unless asked: a file that is already identical is skipped, and one that differs stops
the command (exit 2) before anything is written, unless ``--force``.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Literal, TextIO

from gate.errors import GateError

FILES = (
    "gate.yml",
    "thresholds/default.yml",
    "datasets/golden.jsonl",
    "datasets/replay.jsonl",
    "datasets/README.md",
    ".github/workflows/gate.yml",
    ".github/workflows/gate-comment.yml",
    ".github/workflows/gate-nightly.yml",
)
"""What ``gate init`` writes, relative to the repository. Templates are stored under the same
path without the leading dot (a package's data files are not hidden files)."""

NEXT_STEPS = """\
Next:
  1. gate run                  # the starter golden set on recorded outputs: it passes
  2. Point gate.yml's `pipeline:` at your pipeline (its comments show python, http and command)
     and replace datasets/golden.jsonl with your cases (datasets/README.md explains them).
  3. gate run --update-baseline on your default branch, and commit thresholds/baseline.json.
  4. In .github/workflows/gate*.yml, replace OWNER/gate@v1 with the gate's repository, pinned
     by commit sha (see the gate's docs/action.md, "Pinning in production"), and `main` in
     gate.yml's `push:` with your default branch if it is another, then commit them. Pushes to
     it and nightly runs keep a history on the gate-history branch (docs/history.md).
"""

State = Literal["new", "same", "differs"]


@dataclass(frozen=True)
class Planned:
    path: str
    content: str
    state: State


def template(path: str) -> str:
    """The shipped text of one of ``FILES``."""
    return (files("gate") / "templates" / path.removeprefix(".")).read_text(encoding="utf-8")


def plan(root: Path) -> list[Planned]:
    """The files ``gate init`` would write into ``root``, each compared with what is there."""
    planned = []
    for path in FILES:
        content = template(path)
        target = root / path
        if not target.exists():
            state: State = "new"
        elif target.read_bytes() == content.encode("utf-8"):
            state = "same"
        else:
            state = "differs"
        planned.append(Planned(path, content, state))
    return planned


def init(root: Path, *, force: bool, out: TextIO) -> int:
    """Write the starter files into ``root``; returns the exit code (0), or raises
    ``GateError`` (exit 2) when a file differs and ``force`` is not set."""
    planned = plan(root)
    differs = [p.path for p in planned if p.state == "differs"]
    if differs and not force:
        raise GateError(
            "these files exist and differ from the starter files of `gate init`: "
            + ", ".join(differs)
            + ". Nothing was written. Fix: move them aside, or run `gate init --force` to "
            "overwrite them."
        )
    for item in planned:
        if item.state == "same":
            continue
        target = root / item.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(item.content, encoding="utf-8")
        verb = "overwrote" if item.state == "differs" else "wrote"
        print(f"{verb} {item.path}", file=out)
    same = [p.path for p in planned if p.state == "same"]
    if same:
        print(f"skipped (already there, unchanged): {', '.join(same)}", file=out)
    if len(same) == len(planned):
        print("Nothing to do: every starter file is already in place.", file=out)
    else:
        print(f"\n{NEXT_STEPS}", end="", file=out)
    return 0
