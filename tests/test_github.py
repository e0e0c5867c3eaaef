"""The REST client against a fake GitHub that checks every request with GitHub's OpenAPI spec."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fake_github import ORACLES, SPEC, FakeGitHub

from gate.errors import GitHubError
from gate.publish.github import MAX_ATTEMPTS, GitHub, find_comment, upsert_comment

REPO = "Codertocat/Hello-World"
MARKER = "<!-- gate:comment config=abc -->"
NOW = 1_800_000_000.0


@pytest.fixture
def client(fake_github: FakeGitHub, sleeps: list[float]) -> Iterator[GitHub]:
    with GitHub(
        fake_github.token, fake_github.url, sleep=sleeps.append, clock=lambda: NOW
    ) as github:
        yield github


def test_upsert_comment__creates_the_first_one(fake_github: FakeGitHub, client: GitHub) -> None:
    posted = upsert_comment(client, REPO, 2, f"{MARKER}\nhello", MARKER)

    assert posted.created
    (comment,) = fake_github.comments_on(2)
    assert comment["body"] == f"{MARKER}\nhello"
    assert comment["user"]["login"] == "github-actions[bot]"
    assert posted.url == comment["html_url"]
    assert [seen.method for seen in fake_github.requests] == ["GET", "POST"]


def test_upsert_comment__finds_its_own_on_page_3_and_leaves_others_alone(
    fake_github: FakeGitHub, client: GitHub
) -> None:
    others = []
    for i in range(230):
        login = ("octocat", "renovate[bot]", "github-actions[bot]")[i % 3]
        # Others quote the marker; the bot's own comments here belong to another config.
        body = f"{MARKER} quoted by {login}" if login != "github-actions[bot]" else f"other {i}"
        others.append(fake_github.add_comment(2, body, login))
    ours = fake_github.add_comment(2, f"{MARKER}\nold", "github-actions[bot]")
    fake_github.add_comment(2, f"{MARKER}\na later copy", "octocat")

    posted = upsert_comment(client, REPO, 2, f"{MARKER}\nnew", MARKER)

    assert not posted.created
    assert posted.id == ours["id"]
    assert fake_github.comments[ours["id"]]["body"] == f"{MARKER}\nnew"
    assert all(fake_github.comments[c["id"]]["body"] == c["body"] for c in others)
    gets = fake_github.sent("GET")
    assert [seen.query.get("page", ["1"]) for seen in gets] == [["1"], ["2"], ["3"]]
    assert all(seen.query["per_page"] == ["100"] for seen in gets)
    (patch,) = fake_github.sent("PATCH")
    assert patch.path == f"/repos/{REPO}/issues/comments/{ours['id']}"
    assert not fake_github.sent("POST")


def test_find_comment__a_marker_in_someone_elses_comment_is_not_ours(
    fake_github: FakeGitHub, client: GitHub
) -> None:
    fake_github.add_comment(2, MARKER, "octocat")
    fake_github.add_comment(2, MARKER, "github-actions")  # a user named like the bot, without [bot]

    assert find_comment(client, REPO, 2, MARKER) is None
    assert find_comment(client, REPO, 2, MARKER, author="octocat") is not None


def test_request__retries_5xx_then_succeeds(
    fake_github: FakeGitHub, client: GitHub, sleeps: list[float]
) -> None:
    fake_github.fail_next(500)
    fake_github.fail_next(502)

    upsert_comment(client, REPO, 2, MARKER, MARKER)

    assert len(sleeps) == 2
    assert all(0 <= wait <= 8 for wait in sleeps)
    assert len(fake_github.comments_on(2)) == 1


def test_request__gives_up_after_max_attempts(
    fake_github: FakeGitHub, client: GitHub, sleeps: list[float]
) -> None:
    fake_github.fail_next(503, times=MAX_ATTEMPTS)

    with pytest.raises(GitHubError, match=rf"failed {MAX_ATTEMPTS} times; the last: HTTP 503"):
        upsert_comment(client, REPO, 2, MARKER, MARKER)
    assert len(sleeps) == MAX_ATTEMPTS - 1


def test_request__429_waits_as_long_as_retry_after_says(
    fake_github: FakeGitHub, client: GitHub, sleeps: list[float]
) -> None:
    fake_github.fail_next(429, headers={"Retry-After": "7"})

    upsert_comment(client, REPO, 2, MARKER, MARKER)

    assert sleeps == [7.0]


def test_request__secondary_rate_limit_waits_for_the_reset(
    fake_github: FakeGitHub, client: GitHub, sleeps: list[float]
) -> None:
    limited = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(NOW) + 5)}
    fake_github.fail_next(403, headers=limited, message="You have exceeded a secondary rate limit.")

    upsert_comment(client, REPO, 2, MARKER, MARKER)

    assert sleeps == [6.0]


def test_request__a_rate_limit_longer_than_the_cap_is_not_waited_for(
    fake_github: FakeGitHub, client: GitHub, sleeps: list[float]
) -> None:
    fake_github.fail_next(429, headers={"Retry-After": "3600"})

    with pytest.raises(GitHubError, match="asks to wait 3600 s"):
        upsert_comment(client, REPO, 2, MARKER, MARKER)
    assert sleeps == []


@pytest.mark.parametrize(
    ("status", "hint"),
    [(403, "read-only token"), (404, "pull request number"), (401, "github-token")],
)
def test_request__refusals_raise_at_once_without_the_token(
    fake_github: FakeGitHub, client: GitHub, sleeps: list[float], status: int, hint: str
) -> None:
    fake_github.fail_next(
        status, message=f"Resource not accessible by integration {fake_github.token}"
    )

    with pytest.raises(GitHubError) as caught:
        upsert_comment(client, REPO, 2, MARKER, MARKER)

    assert f"HTTP {status}" in str(caught.value)
    assert hint in str(caught.value)
    assert fake_github.token not in str(caught.value)
    assert sleeps == []


def test_request__connection_errors_are_retried(sleeps: list[float]) -> None:
    with FakeGitHub() as gone:
        url = gone.url  # closed when the block ends: nothing listens there any more
    client = GitHub("ghs_secret", url, sleep=sleeps.append, clock=lambda: NOW)

    with pytest.raises(GitHubError, match="ConnectionError") as caught:
        find_comment(client, REPO, 2, MARKER)

    assert len(sleeps) == MAX_ATTEMPTS - 1
    assert "ghs_secret" not in str(caught.value)


def test_paginate__never_follows_a_link_to_another_host(
    fake_github: FakeGitHub, client: GitHub
) -> None:
    for i in range(101):
        fake_github.add_comment(2, f"comment {i}", "octocat")
    fake_github.link_base = "https://attacker.example"

    with pytest.raises(GitHubError, match="outside"):
        find_comment(client, REPO, 2, MARKER)
    assert len(fake_github.requests) == 1


def test_spec__the_fakes_description_has_the_issue_comment_operations_unchanged() -> None:
    comments = json.loads((ORACLES / "issue-comments.openapi.json").read_text(encoding="utf-8"))

    for path, operations in comments["paths"].items():
        for method, operation in operations.items():
            assert SPEC["paths"][path][method] == operation, f"{method.upper()} {path}"


MISBEHAVIOURS = {
    "html with 200": (b"<html><body>Sign in to the proxy</body></html>", "text/html", None),
    "invalid json": (b'[{"id": 1, "body": ', "application/json", None),
    "an object, not a list": (b'{"message": "all good"}', "application/json", None),
    "a list of strings": (b'["a", "b"]', "application/json", None),
    "a comment without html_url": (b'{"id": 7}', "application/json", "POST"),
    "a comment that is a list": (b"[]", "application/json", "POST"),
}


@pytest.mark.parametrize(
    ("body", "content_type", "method"), MISBEHAVIOURS.values(), ids=list(MISBEHAVIOURS)
)
def test_upsert_comment__a_misbehaving_api_is_a_github_error(
    fake_github: FakeGitHub, client: GitHub, body: bytes, content_type: str, method: str | None
) -> None:
    fake_github.misbehave_next(
        body, status=201 if method == "POST" else 200, content_type=content_type, method=method
    )

    with pytest.raises(GitHubError, match="GitHub") as caught:
        upsert_comment(client, REPO, 2, "hello", MARKER)
    assert fake_github.token not in str(caught.value)
