"""A data branch of the repository, through git: where the action keeps the history.

Like python-coverage-comment-action's data branch: an orphan branch holding only the gate's files,
fetched into a scratch folder, changed, committed and pushed with the job's token. The token goes
in an HTTP header (as actions/checkout passes it) set through ``GIT_CONFIG_COUNT`` /
``GIT_CONFIG_KEY_n`` / ``GIT_CONFIG_VALUE_n`` in the environment of the fetch or push child only:
never on git's command line (``/proc/<pid>/cmdline`` is readable by every process), never in the
remote URL, never in a git config file, and scrubbed from every error message. A branch that does
not exist yet is read as empty; a push that lost a race with another run is fetched again and
redone.
"""

from __future__ import annotations

import base64
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

from gate.errors import GitHubError
from gate.scrub import Scrubber

TIMEOUT_S = 60
PUSH_ATTEMPTS = 3
AUTHOR = ("gate", "gate@users.noreply.github.com")
PROBLEM_CHARS = 300
"""Of git's stderr quoted in an error message."""


class DataBranch:
    """``branch`` of ``remote`` (a URL or a local path), worked on in ``folder``."""

    def __init__(self, remote: str, branch: str, folder: Path, token: str = "") -> None:
        self.remote, self.branch, self.folder = remote, branch, folder
        self._header = ""
        basic = ""
        # Never over plain http, where the header would cross the network in clear text; a local
        # remote (a path, file://) ignores it.
        if token and not remote.startswith("http://"):
            basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
            self._header = f"AUTHORIZATION: basic {basic}"
        self._scrub = Scrubber((token, basic))
        self._fetched = False
        self._exists = False

    def _env(self, auth: bool) -> dict[str, str]:
        env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "", "LC_ALL": "C"}
        if auth and self._header:
            # After any entries the caller's environment already has (git reads 0..COUNT-1).
            count = env.get("GIT_CONFIG_COUNT", "0")
            n = int(count) if count.isdigit() else 0
            env |= {
                "GIT_CONFIG_COUNT": str(n + 1),
                f"GIT_CONFIG_KEY_{n}": "http.extraheader",
                f"GIT_CONFIG_VALUE_{n}": self._header,
            }
        return env

    def _git(self, *args: str, auth: bool = False) -> subprocess.CompletedProcess[str]:
        command = ["git", "-C", str(self.folder), *args]
        try:
            return subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=TIMEOUT_S,
                env=self._env(auth),
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise GitHubError(self._scrub.text(f"git {args[0]}: {exc}")) from None

    def _problem(self, done: subprocess.CompletedProcess[str]) -> str:
        """git's stderr on one line, scrubbed of the token, then cut."""
        return self._scrub.cut(" ".join(done.stderr.split()), PROBLEM_CHARS)

    def _must(self, *args: str, auth: bool = False) -> str:
        done = self._git(*args, auth=auth)
        if done.returncode != 0:
            problem = self._problem(done)
            raise GitHubError(f"git {args[0]} on the {self.branch} branch failed: {problem}")
        return done.stdout

    def fetch(self) -> bool:
        """Fetch the branch; False when the remote has no such branch (no history yet)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        if not (self.folder / ".git").exists():
            self._must("init", "-q")
        done = self._git(
            "fetch", "-q", "--depth=1", "--", self.remote,
            f"+refs/heads/{self.branch}:refs/remotes/data/{self.branch}",
            auth=True,
        )  # fmt: skip
        if done.returncode != 0 and "couldn't find remote ref" not in done.stderr:
            problem = self._problem(done)
            raise GitHubError(f"git fetch of the {self.branch} branch failed: {problem}")
        self._fetched, self._exists = True, done.returncode == 0
        return self._exists

    def read(self, name: str) -> str:
        """The file ``name`` on the branch; empty when the branch or the file does not exist."""
        if not self._fetched:
            self.fetch()
        if not self._exists:
            return ""
        done = self._git("show", f"refs/remotes/data/{self.branch}:{name}")
        return done.stdout if done.returncode == 0 else ""

    def update(self, name: str, change: Callable[[str], str], message: str) -> None:
        """Replace the file ``name`` with ``change(its text)`` in a new commit and push it;
        when another run pushed first, fetch its commit and apply ``change`` again."""
        for attempt in range(PUSH_ATTEMPTS):
            if attempt or not self._fetched:
                self.fetch()
            text = change(self.read(name))
            if self._exists:
                self._must("checkout", "-q", "-B", self.branch, f"refs/remotes/data/{self.branch}")
            else:
                self._must("checkout", "-q", "--orphan", self.branch)
            (self.folder / name).write_text(text, encoding="utf-8")
            self._must("add", "--", name)
            self._must(
                "-c", f"user.name={AUTHOR[0]}", "-c", f"user.email={AUTHOR[1]}",
                "commit", "-q", "--no-verify", "-m", message,
            )  # fmt: skip
            pushed = self._git(
                "push", "-q", "--", self.remote, f"HEAD:refs/heads/{self.branch}", auth=True
            )
            if pushed.returncode == 0:
                self._fetched = False  # the next read or update sees this commit
                return
            problem = self._problem(pushed)
            if "rejected" not in problem and "fetch first" not in problem:
                raise GitHubError(f"git push to the {self.branch} branch failed: {problem}")
        raise GitHubError(
            f"git push to the {self.branch} branch lost {PUSH_ATTEMPTS} races with other runs"
        )
