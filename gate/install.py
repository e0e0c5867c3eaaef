"""The action's ``requirements`` input: the team's own dependencies, installed before the gate runs.

The container holds the gate's locked dependencies only; a pipeline that imports anything else
(``tiktoken``, the team's own package) needs it installed into the same interpreter first. The
input is a requirements file relative to the workspace, installed with ``--require-hashes`` when
it pins hashes, or a pip spec (``my-package==1.2 tiktoken``). pip runs in the workspace, so the
relative paths of a requirements file mean what they mean on a laptop.
"""

from __future__ import annotations

import importlib
import re
import shlex
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from gate.errors import GateError

TIMEOUT_S = 900.0
"""pip's own network timeouts bound each download; this bounds the whole install."""
PIP_QUIET = ["--disable-pip-version-check", "--no-input", "--root-user-action=ignore"]
"""The container's user is root, on purpose: pip's warning about it is noise in the log."""
_HASH = re.compile(r"(^|\s)--hash[=\s]")
_COMMENT = re.compile(r"(^|\s)#.*")
_LOOKS_LIKE_A_FILE = re.compile(r"[/\\]|\.(txt|in|lock)$")


def pip_command(requirements: str, workspace: Path) -> list[str]:
    """The pip command that installs ``requirements``; an input error when it cannot be one."""
    base = [sys.executable, "-m", "pip", "install", *PIP_QUIET]
    text = requirements.strip()
    path = workspace / text
    if path.is_file():
        return [*base, *(["--require-hashes"] if _pins_hashes(path) else []), "-r", text]
    if _LOOKS_LIKE_A_FILE.search(text) and not (path.exists() or re.search(r"\s|@|://", text)):
        raise GateError(
            f"input `requirements`: no file {text} in the repository (fix: a path relative to the "
            "repository root, checked out before this step, or a pip spec such as `tiktoken==0.7`)"
        )
    try:
        specs = shlex.split(text)
    except ValueError as exc:
        raise GateError(f"input `requirements`: {exc} in {text!r}") from None
    options = [spec for spec in specs if spec.startswith("-")]
    if options:
        raise GateError(
            f"input `requirements`: {options[0]!r} is a pip option; the input takes package specs "
            "only (fix: put options such as --extra-index-url in a requirements file and pass "
            "its path)"
        )
    return [*base, *specs]


def install_requirements(requirements: str, workspace: Path, env: Mapping[str, str]) -> None:
    """Install ``requirements`` (see ``pip_command``) with pip's output in the log; a failed
    install is an input error."""
    if not requirements.strip():
        return
    command = pip_command(requirements, workspace)
    shown = shlex.join(["pip", *command[3:]])
    print(f"gate: installing the pipeline's requirements: {shown}", flush=True)
    try:
        done = subprocess.run(command, cwd=workspace, env=dict(env), timeout=TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise GateError(
            f"input `requirements`: `{shown}` did not finish in {TIMEOUT_S:.0f} s"
        ) from None
    if done.returncode != 0:
        raise GateError(
            f"input `requirements`: `{shown}` failed (exit {done.returncode}); pip's output above "
            "says why (fix: the file or spec, or the hashes when --require-hashes is on)"
        )
    importlib.invalidate_caches()  # the new packages are importable in this process too


def _pins_hashes(path: Path) -> bool:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise GateError(f"input `requirements`: cannot read {path.name}: {exc}") from None
    return any(_HASH.search(_COMMENT.sub("", line)) for line in lines)
