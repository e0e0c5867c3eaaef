"""The bar's files at a git ref: the edges' half of ``gate run --bar-from REF``.

The CLI and the action build a ``BarSource`` here and hand it to the run; the plan reads
thresholds and baseline through it. Through git when the commit is in the checkout, else (a
shallow checkout in the action) through GitHub's contents API.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from gate.errors import GateError
from gate.load.bar import BarSource, read_at_ref
from gate.load.config import KnownMetric, load_config
from gate.publish.github import GitHub, file_at

GIT_TIMEOUT_S = 30.0
FETCH_FIX = (
    "fix: fetch it (`git fetch origin <sha>`, or `fetch-depth: 0` on actions/checkout), "
    "or name a branch, tag or commit that exists here"
)


def git_root(folder: Path) -> Path | None:
    """The top of the git work tree that holds ``folder``; None outside one, or without git."""
    if shutil.which("git") is None:
        return None
    done = _git(folder, "rev-parse", "--show-toplevel")
    return Path(done.stdout.decode().strip()) if done.returncode == 0 else None


def has_commit(root: Path, ref: str) -> str | None:
    """The full sha of ``ref`` when the commit is in the repository at ``root``, else None."""
    done = _git(root, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}")
    return done.stdout.decode().strip() if done.returncode == 0 else None


def git_bar(
    ref: str, folder: Path, *, honour_change: bool = False, approval: str | None = None
) -> BarSource:
    """The bar at ``ref`` of the repository that holds ``folder``, read through git.

    An unknown ref is an input error (exit 2) that says how to fetch it.
    """
    root = git_root(folder)
    if root is None:
        raise GateError(
            f"--bar-from {ref}: {folder} is not in a git repository (fix: run from a clone, "
            "or leave out --bar-from)"
        )
    sha = has_commit(root, ref)
    if sha is None:
        raise GateError(f"--bar-from {ref}: no such commit in {root} ({FETCH_FIX})")

    def read(path: Path) -> str | None:
        spec = f"{sha}:{_relative(path, root, ref)}"
        if _git(root, "cat-file", "-e", spec).returncode != 0:
            return None
        done = _git(root, "cat-file", "blob", spec)
        if done.returncode != 0:
            problem = done.stderr.decode(errors="replace").strip()
            raise GateError(f"--bar-from {ref}: cannot read {spec}: {problem}")
        return _text(done.stdout, f"{path.name}@{sha[:12]}")

    return BarSource(sha, read, "git", honour_change, approval)


def api_bar(
    sha: str,
    workspace: Path,
    repository: str,
    connect: Callable[[], GitHub],
    *,
    honour_change: bool = False,
    approval: str | None = None,
) -> BarSource:
    """The bar at commit ``sha`` read through GitHub's contents API (a shallow checkout).

    ``connect`` opens the API client (a file or two is read, each with its own client).
    """

    def read(path: Path) -> str | None:
        with connect() as client:
            return file_at(client, repository, _relative(path, workspace, sha), sha)

    return BarSource(sha, read, "GitHub API", honour_change, approval)


def _relative(path: Path, root: Path, ref: str) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        raise GateError(
            f"--bar-from {ref}: {path} is outside the repository {root}: a bar at a commit can "
            "only be read from files in the repository (fix: keep thresholds and baseline in it)"
        ) from None


def _text(data: bytes, where: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise GateError(f"{where}: not UTF-8 text at byte {exc.start}") from None


def _git(folder: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    # A git that cannot run must stop the gate: a file it failed to read is not an absent one.
    try:
        # safe.directory: in the action the checkout belongs to the runner's user, not to the
        # container's root, and git refuses to read a repository someone else owns.
        return subprocess.run(
            ["git", "-c", "safe.directory=*", "-C", str(folder), *args],
            capture_output=True,
            timeout=GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise GateError(f"git {' '.join(args[:2])} in {folder} failed: {exc}") from None


def snapshot(source: BarSource, config: Path, parse_metric: Callable[[str], KnownMetric]) -> str:
    """The files ``source`` serves for ``config``, as JSON: how the action hands the bar it read
    (through git or the API, with its token) to the child process that runs the gate."""
    files: dict[str, str | None] = {}

    def read(path: Path) -> str | None:
        files[str(path)] = text = source.read(path)
        return text

    settings = load_config(config)
    read_at_ref(replace(source, read=read), settings, parse_metric)
    if settings.reviews is not None:  # the ref's reviews count, not the change's (gate.plan)
        read(settings.resolve(settings.reviews))
    body = {
        "ref": source.ref,
        "via": source.via,
        "honour_change": source.honour_change,
        "approval": source.approval,
        "files": files,
    }
    return json.dumps(body, ensure_ascii=False)


def from_snapshot(path: Path) -> BarSource:
    """The bar a parent process read (``snapshot``): only the files it read are served."""
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
        files: dict[str, str | None] = body["files"]
        ref, via = str(body["ref"]), str(body["via"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise GateError(f"--bar-snapshot {path}: unreadable ({exc})") from None

    def read(wanted: Path) -> str | None:
        if str(wanted) not in files:
            raise GateError(f"--bar-snapshot {path}: {wanted} was not read by the parent")
        return files[str(wanted)]

    return BarSource(ref, read, via, bool(body.get("honour_change")), body.get("approval"))
