"""GitHub's REST API: find the gate's own pull request comment and create or update it; open,
comment on and close the nightly issue.

One `requests.Session` carries the token; every call is retried on the failures that pass
(connection errors, 5xx, 429 and secondary rate limits) and anything else becomes a
`GitHubError` whose message says what to change. The token never appears in a message.
"""

from __future__ import annotations

import base64
import contextlib
import random
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import requests

from gate import __version__
from gate.errors import GitHubError
from gate.retry import backoff_s, retry_after
from gate.scrub import Scrubber
from gate.transport import session

DEFAULT_API_URL = "https://api.github.com"
API_VERSION = "2022-11-28"
ACTIONS_BOT = "github-actions[bot]"
"""Who writes a comment made with the workflow's own ``GITHUB_TOKEN``."""

TIMEOUT_S = 30.0
MAX_ATTEMPTS = 5
BACKOFF_S = 2.0
"""The wait after the first failure, at most (jittered); it doubles with each further one."""
MAX_WAIT_S = 60.0
"""The longest the gate waits before a retry; a rate limit that resets later is not waited for."""
SECONDARY_LIMIT_WAIT_S = 60.0
"""GitHub's advice for a secondary rate limit that names no time: wait at least a minute."""

FORK_HINT = (
    "A pull request from a fork gets a read-only token: post the comment from a `workflow_run` "
    "workflow instead (docs/action.md, the fork-safe pattern), or give the job "
    "`permissions: pull-requests: write`."
)


@dataclass(frozen=True)
class PostedComment:
    id: int
    url: str
    created: bool


class GitHub:
    """A small REST client: base URL, auth and API-version headers, retries with backoff."""

    def __init__(
        self,
        token: str,
        api_url: str = DEFAULT_API_URL,
        *,
        clock: Callable[[], float],
        sleep: Callable[[float], None] = time.sleep,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        """``clock`` is the wall clock (epoch seconds): rate limits name the time they reset."""
        self.api_url = api_url.rstrip("/")
        self._token = token
        self._sleep = sleep
        self._clock = clock
        self._rng = random.Random()
        self._max_attempts = max_attempts
        headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": API_VERSION,
            "User-Agent": f"gate/{__version__}",
        }
        # One request at a time: one connection.
        self.session = session(1, headers)

    def __enter__(self) -> GitHub:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.session.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        json: Any = None,
        missing_ok: bool = False,
    ) -> requests.Response:
        """Send one request (``path`` below the API URL, or a full URL on it), retrying.

        ``missing_ok``: a 404 is returned, not raised (the caller asked whether a thing exists).
        """
        url = path if path.startswith(self.api_url + "/") else self.api_url + path
        where = f"{method} {url.removeprefix(self.api_url).split('?')[0]}"
        for attempt in range(1, self._max_attempts + 1):
            try:
                response = self.session.request(
                    method, url, params=params, json=json, timeout=TIMEOUT_S
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                problem = type(exc).__name__
                wait = self._backoff(attempt)
            else:
                if response.ok or (missing_ok and response.status_code == 404):
                    return response
                problem = f"HTTP {response.status_code}: {_message(response)}"
                wait = self._wait_before_retry(where, response, attempt)
            if attempt == self._max_attempts:
                break
            self._sleep(wait)
        raise GitHubError(
            self._redact(f"{where} failed {self._max_attempts} times; the last: {problem}")
        )

    def paginate(self, path: str, params: Mapping[str, str | int]) -> Iterator[dict[str, Any]]:
        """Every item of a listed resource, page after page, following ``Link: rel="next"``."""
        response = self.request("GET", path, params={**params, "per_page": 100})
        while True:
            items = _answer(response, list)
            if not all(isinstance(item, dict) for item in items):
                raise GitHubError(f"{_where(response)}: GitHub listed something else than objects")
            yield from items
            next_url = response.links.get("next", {}).get("url")
            if not next_url:
                return
            # The session sends the token with every request: follow links to this API only.
            if not next_url.startswith(self.api_url + "/"):
                raise GitHubError(f"GitHub's next page points outside {self.api_url}: refused")
            response = self.request("GET", next_url)

    def _wait_before_retry(self, where: str, response: requests.Response, attempt: int) -> float:
        """Seconds to wait before retrying ``response``; GitHubError when retrying cannot help."""
        status = response.status_code
        headers = response.headers
        out_of_quota = headers.get("x-ratelimit-remaining") == "0"
        if status == 429 or (
            status == 403
            and (
                "retry-after" in headers
                or out_of_quota
                or "secondary rate limit" in _message(response).lower()
            )
        ):
            wait = self._rate_limit_wait(headers, status, attempt)
            if wait > MAX_WAIT_S:
                raise GitHubError(
                    self._redact(
                        f"{where}: GitHub's rate limit asks to wait {wait:.0f} s, longer than the "
                        f"{MAX_WAIT_S:.0f} s the gate waits (HTTP {status}: {_message(response)})"
                    )
                )
            return wait
        if status >= 500:
            return self._backoff(attempt)
        raise GitHubError(self._redact(_refusal(where, response)))

    def _rate_limit_wait(self, headers: Mapping[str, str], status: int, attempt: int) -> float:
        now = self._clock()
        if (after := retry_after(headers, now)) is not None:
            return after
        if headers.get("x-ratelimit-remaining") == "0":
            with contextlib.suppress(ValueError):
                # +1: the reset is a whole second, and the quota returns during it.
                return max(float(headers.get("x-ratelimit-reset", "")) - now, 0.0) + 1.0
        return SECONDARY_LIMIT_WAIT_S if status == 403 else self._backoff(attempt)

    def _backoff(self, attempt: int) -> float:
        return backoff_s(attempt - 1, None, self._rng, first_s=BACKOFF_S, cap_s=MAX_WAIT_S)

    def _redact(self, text: str) -> str:
        return Scrubber((self._token,)).text(text)


def find_comment(
    github: GitHub, repository: str, issue_number: int, marker: str, author: str = ACTIONS_BOT
) -> dict[str, Any] | None:
    """The first comment on the issue that carries ``marker`` and was written by ``author``.

    The author matters: anyone can paste the marker into a comment of their own, and the gate
    must never try to edit (or be fooled by) someone else's comment.
    """
    comments = github.paginate(f"/repos/{repository}/issues/{issue_number}/comments", {})
    for comment in comments:
        login = (comment.get("user") or {}).get("login")
        if login == author and marker in (comment.get("body") or ""):
            return comment
    return None


def upsert_comment(
    github: GitHub,
    repository: str,
    issue_number: int,
    body: str,
    marker: str,
    author: str = ACTIONS_BOT,
) -> PostedComment:
    """Update the gate's comment in place, or create it on the first run."""
    existing = find_comment(github, repository, issue_number, marker, author)
    if existing is not None and not isinstance(existing.get("id"), int):
        raise GitHubError("GitHub listed the gate's comment without its `id`")
    if existing is None:
        return add_comment(github, repository, issue_number, body)
    response = github.request(
        "PATCH", f"/repos/{repository}/issues/comments/{existing['id']}", json={"body": body}
    )
    return _posted(response, created=False)


def add_comment(github: GitHub, repository: str, issue_number: int, body: str) -> PostedComment:
    """A new comment on an issue or pull request."""
    response = github.request(
        "POST", f"/repos/{repository}/issues/{issue_number}/comments", json={"body": body}
    )
    return _posted(response, created=True)


def _posted(response: requests.Response, created: bool) -> PostedComment:
    """The ``id`` and ``html_url`` of what GitHub says it created or updated."""
    posted = _answer(response, dict)
    number, url = posted.get("id"), posted.get("html_url")
    if not (
        isinstance(number, int) and isinstance(url, str) and url.startswith(("https://", "http://"))
    ):
        raise GitHubError(f"{_where(response)}: GitHub's answer has no `id` and `html_url`")
    return PostedComment(id=number, url=url, created=created)


def open_issues(
    github: GitHub, repository: str, label: str, author: str = ACTIONS_BOT
) -> list[dict[str, Any]]:
    """The open issues labelled ``label`` that ``author`` opened, oldest first (never a pull
    request, which the issues API lists too; never someone else's issue given the label)."""
    listed = github.paginate(
        f"/repos/{repository}/issues",
        {"state": "open", "labels": label, "sort": "created", "direction": "asc"},
    )
    return [
        issue
        for issue in listed
        if "pull_request" not in issue
        and (issue.get("user") or {}).get("login") == author
        and isinstance(issue.get("number"), int)
    ]


def open_issue(
    github: GitHub, repository: str, title: str, body: str, labels: list[str]
) -> tuple[int, str]:
    """A new issue: its number and URL."""
    response = github.request(
        "POST",
        f"/repos/{repository}/issues",
        json={"title": title, "body": body, "labels": labels},
    )
    posted = _answer(response, dict)
    number, url = posted.get("number"), posted.get("html_url")
    if not (isinstance(number, int) and isinstance(url, str)):
        raise GitHubError(f"{_where(response)}: GitHub's answer has no issue `number`")
    return number, url


def close_issue(github: GitHub, repository: str, issue_number: int) -> None:
    """Close an issue as completed."""
    github.request(
        "PATCH",
        f"/repos/{repository}/issues/{issue_number}",
        json={"state": "closed", "state_reason": "completed"},
    )


def _answer(response: requests.Response, kind: type[list[Any]] | type[dict[str, Any]]) -> Any:
    """The JSON body of a successful response, if it is a ``kind``; else a GitHubError (a proxy's
    HTML page with status 200, a changed API), never a crash that loses the verdict."""
    try:
        body = response.json()
    except ValueError:
        shown = response.headers.get("Content-Type") or "no content type"
        raise GitHubError(
            f"{_where(response)}: GitHub answered HTTP {response.status_code} with something "
            f"that is not JSON ({shown})"
        ) from None
    if not isinstance(body, kind):
        raise GitHubError(
            f"{_where(response)}: GitHub answered a JSON {type(body).__name__}, not a "
            f"{kind.__name__}"
        )
    return body


def _where(response: requests.Response) -> str:
    # The path only: a query may hold anything, and the host is the configured API.
    path = urlsplit(response.request.url or "").path if response.request else ""
    return f"{response.request.method if response.request else ''} {path}".strip()


def file_at(github: GitHub, repository: str, path: str, ref: str) -> str | None:
    """A file's text at a commit, through the contents API; None when it is not there."""
    response = github.request(
        "GET",
        f"/repos/{repository}/contents/{quote(path)}",
        params={"ref": ref},
        missing_ok=True,
    )
    if response.status_code == 404:
        return None
    body = response.json()
    where = f"GET /repos/{repository}/contents/{path}?ref={ref}"
    if not isinstance(body, dict) or body.get("type") != "file":
        raise GitHubError(f"{where}: not a file (fix: point gate.yml at a file)")
    if body.get("encoding") != "base64":
        # Over 1 MB the API leaves `content` empty (encoding "none").
        raise GitHubError(
            f"{where}: {body.get('size')} bytes is too large for the contents API (fix: fetch "
            "the base commit: `fetch-depth: 0` on actions/checkout)"
        )
    try:
        return base64.b64decode(str(body.get("content", ""))).decode("utf-8")
    except (ValueError, UnicodeDecodeError) as exc:
        raise GitHubError(f"{where}: the content is not UTF-8 text: {exc}") from None


def _message(response: requests.Response) -> str:
    try:
        message = response.json().get("message", "")
    except (ValueError, AttributeError):
        message = response.text
    return str(message)[:200] or response.reason or ""


def _refusal(where: str, response: requests.Response) -> str:
    status = response.status_code
    said = f"{where}: HTTP {status}: {_message(response)}"
    if status == 401:
        return f"{said}. The token was not accepted: check the `github-token` input."
    if status == 403:
        return f"{said}. {FORK_HINT}"
    if status == 404:
        return (
            f"{said}. Check the repository and pull request number, and that the token can see "
            "the repository."
        )
    return said


def pulls_of_commit(github: GitHub, repository: str, sha: str, head_repository: str) -> list[int]:
    """The pull requests on ``repository`` whose head is exactly ``sha`` from ``head_repository``.

    GitHub lists every pull request whose commits include the sha; only those whose head *is*
    the sha, pushed to the named repository, were the run's subject.
    """
    numbers = []
    for pull in github.paginate(f"/repos/{repository}/commits/{sha}/pulls", {}):
        head = pull.get("head") or {}
        if head.get("sha") == sha and (head.get("repo") or {}).get("full_name") == head_repository:
            numbers.append(int(pull["number"]))
    return numbers
