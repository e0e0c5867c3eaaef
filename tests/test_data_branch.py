"""The data branch through real git against a local bare remote: the job token reaches git's
fetch and push only through their environment, never their command line, a config file or an
error message."""

from __future__ import annotations

import base64
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from gate.errors import GitHubError
from gate.publish.data_branch import DataBranch

TOKEN = "ghs_dataBranchTokenThatMustNeverShow0123"
BASIC = base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()
REAL_GIT = shutil.which("git")

pytestmark = pytest.mark.skipif(REAL_GIT is None, reason="git absent")


@pytest.fixture
def git_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A ``git`` first on PATH that logs each call's argv (one NUL-separated line) and whether
    the header reached its environment, then runs the real git."""
    shim, log = tmp_path / "shim", tmp_path / "git-argv.log"
    shim.mkdir()
    script = shim / "git"
    script.write_text(
        "#!/bin/sh\n"
        f'printf "%s\\0" "$@" >> "{log}"\n'
        f'case "$GIT_CONFIG_VALUE_0" in *"{BASIC}"*) printf "[header]" >> "{log}";; esac\n'
        f'printf "\\n" >> "{log}"\n'
        f'exec "{REAL_GIT}" "$@"\n',
        encoding="utf-8",
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{shim}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("GIT_CONFIG_COUNT", raising=False)
    return log


def bare(path: Path) -> Path:
    subprocess.run(["git", "init", "-q", "--bare", str(path)], check=True)
    return path


def everything_under(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file())


def test_push__the_token_is_in_no_argv_and_no_config(tmp_path: Path, git_log: Path) -> None:
    remote = bare(tmp_path / "remote.git")
    clone = tmp_path / "clone"
    branch = DataBranch(remote.as_uri(), "gate-history", clone, TOKEN)

    branch.update("h.jsonl", lambda text: text + "one\n", "first")
    branch.update("h.jsonl", lambda text: text + "two\n", "second")

    reader = DataBranch(remote.as_uri(), "gate-history", tmp_path / "reader", TOKEN)
    assert reader.read("h.jsonl") == "one\ntwo\n"
    calls = git_log.read_text(encoding="utf-8").splitlines()
    fetches = [c for c in calls if "\0fetch\0" in c]
    pushes = [c for c in calls if "\0push\0" in c]
    assert fetches and pushes  # the shim saw the calls that carry the token
    for call in calls:
        assert TOKEN not in call and BASIC not in call
    assert all(c.endswith("[header]") for c in fetches + pushes)  # ...in their environment
    assert not [c for c in calls if "\0commit\0" in c and c.endswith("[header]")]  # theirs only
    for folder in (remote, clone, tmp_path / "reader"):
        stored = everything_under(folder)  # configs, refs, objects: nothing keeps it
        assert TOKEN.encode() not in stored and BASIC.encode() not in stored
    assert "extraheader" not in (clone / ".git" / "config").read_text(encoding="utf-8")


def test_push__a_failing_git_never_shows_the_token(tmp_path: Path, git_log: Path) -> None:
    # The remote's path carries the token, as a URL a careless caller built would: git's error
    # quotes it, and the scrubber must take it out.
    missing = tmp_path / f"x-access-token:{TOKEN}@nowhere"
    branch = DataBranch(missing.as_uri(), "gate-history", tmp_path / "clone", TOKEN)

    with pytest.raises(GitHubError) as caught:
        branch.update("h.jsonl", lambda text: text + "one\n", "first")

    assert "git fetch" in str(caught.value)
    assert "***" in str(caught.value)
    assert TOKEN not in str(caught.value) and BASIC not in str(caught.value)


def test_push__never_sends_the_token_over_plain_http(tmp_path: Path, git_log: Path) -> None:
    branch = DataBranch("http://127.0.0.1:9/r.git", "gate-history", tmp_path / "clone", TOKEN)

    assert branch._env(auth=True).get("GIT_CONFIG_COUNT") is None
    assert BASIC in DataBranch("https://h/r.git", "b", tmp_path, TOKEN)._env(auth=True).get(
        "GIT_CONFIG_VALUE_0", ""
    )
