"""A fake GitHub REST API on 127.0.0.1 that holds every request to GitHub's own description.

Each request is checked against ``data/oracles/github/rest-subset.openapi.json`` (GitHub's
OpenAPI document, reduced to the operations a release gate uses): the method and path template must
exist, path and query parameters must be declared and of their schema's type, and a JSON body must
match the request body's schema. The fake's own answers are checked against the response schemas
too, so the client under test sees what GitHub would send. It serves the issue-comment operations
and listing, opening and closing issues; a request for another operation of the description is
recorded as one it cannot answer. Problems are recorded, not raised (a raise inside the server
thread would only reach the client as a 500), and ``FakeGitHub`` fails the test when it closes
with any recorded.

    with FakeGitHub() as github:
        github.add_comment(2, "hello", login="octocat")
        github.fail_next(403)
        ...                           # call the client with api_url=github.url, token=github.token
"""

from __future__ import annotations

import base64
import copy
import json
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from local_server import LocalServer

ORACLES = Path(__file__).parent / "data" / "oracles" / "github"
SPEC: dict[str, Any] = json.loads(
    (ORACLES / "rest-subset.openapi.json").read_text(encoding="utf-8")
)
REST_SPEC = SPEC
PULLS_OF_COMMIT = "repos/list-pull-requests-associated-with-commit"
CONTENTS = "/repos/{owner}/{repo}/contents/{path}"

SERVED = {
    "issues/list-comments",
    "issues/create-comment",
    "issues/update-comment",
    "issues/delete-comment",
    PULLS_OF_COMMIT,
    "repos/get-content",
    "issues/list-for-repo",
    "issues/create",
    "issues/update",
}
"""The operations the fake answers; the description holds more (pulls, contents, check runs...)."""
MAX_PER_PAGE = 100
"""GitHub's limit for ``per_page``; the description states it in prose, not in the schema."""
REQUIRED_HEADERS = {
    "Accept": "application/vnd.github+json",
    "X-GitHub-Api-Version": "2022-11-28",
}
# Keywords that describe without constraining; any other unknown keyword stops the validator,
# so it never passes a value by skipping a rule it does not understand.
ANNOTATIONS = {
    "description",
    "example",
    "examples",
    "title",
    "format",
    "default",
    "deprecated",
    "x-github-breaking-changes",
}


@dataclass(frozen=True)
class Seen:
    """One request as the fake received it."""

    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    headers: dict[str, str]


@dataclass
class Failure:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    message: str = "Server Error"
    raw: bytes | None = None
    """Sent as is instead of the JSON message: an answer GitHub would never give."""
    method: str | None = None
    """Answer only a request with this method (None: any)."""


@dataclass(frozen=True)
class Operation:
    method: str
    template: str
    pattern: re.Pattern[str]
    spec: dict[str, Any]

    @property
    def operation_id(self) -> str:
        return str(self.spec["operationId"])


def _operations(spec: Mapping[str, Any]) -> list[Operation]:
    out = []
    for template, item in spec["paths"].items():
        regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template))
        # `x-multi-segment`: the contents API's {path} spans folders.
        regex = regex.replace("(?P<path>[^/]+)", "(?P<path>.+)")
        for method, spec_ in item.items():
            if method != "parameters":
                out.append(Operation(method.upper(), template, re.compile(f"^{regex}$"), spec_))
    return out


OPERATIONS = _operations(SPEC)


def validate(value: Any, schema: Mapping[str, Any], where: str = "$") -> list[str]:
    """Problems of ``value`` against the subset of JSON Schema (OpenAPI 3.0) the spec uses."""
    unknown = (
        set(schema)
        - ANNOTATIONS
        - {
            "type",
            "nullable",
            "properties",
            "required",
            "additionalProperties",
            "items",
            "enum",
            "oneOf",
            "anyOf",
            "allOf",
            "maxItems",
            "maxLength",
        }
    )
    if unknown:
        raise NotImplementedError(f"{where}: schema keywords {sorted(unknown)}")
    if value is None and schema.get("nullable"):
        return []
    if "oneOf" in schema:
        matches = sum(not validate(value, option, where) for option in schema["oneOf"])
        return [] if matches == 1 else [f"{where}: matches {matches} of oneOf, not exactly 1"]
    if "anyOf" in schema and not any(not validate(value, o, where) for o in schema["anyOf"]):
        return [f"{where}: matches none of anyOf"]
    problems = [p for option in schema.get("allOf", []) for p in validate(value, option, where)]
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{where}: {value!r} is not one of {schema['enum']}")
    kind = schema.get("type")
    if kind is not None and not _is_type(value, kind):
        return [*problems, f"{where}: {type(value).__name__} is not {kind}"]
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        problems += [
            f"{where}: missing {key!r}" for key in schema.get("required", []) if key not in value
        ]
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            if key in properties:
                problems += validate(item, properties[key], f"{where}.{key}")
            elif extra is False:
                problems.append(f"{where}: unexpected {key!r}")
            elif isinstance(extra, dict):
                problems += validate(item, extra, f"{where}.{key}")
    if isinstance(value, str) and len(value) > schema.get("maxLength", len(value)):
        problems.append(f"{where}: longer than {schema['maxLength']}")
    if isinstance(value, list) and len(value) > schema.get("maxItems", len(value)):
        problems.append(f"{where}: more than {schema['maxItems']} items")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            problems += validate(item, schema["items"], f"{where}[{i}]")
    return problems


def _is_type(value: Any, kind: str) -> bool:
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    python = {"string": str, "boolean": bool, "object": dict, "array": list, "null": type(None)}
    return isinstance(value, python[kind])


def _parameter_ok(text: str, schema: Mapping[str, Any]) -> bool:
    kind = schema.get("type")
    if kind == "integer":
        return re.fullmatch(r"-?[0-9]+", text) is not None
    if schema.get("format") == "date-time":
        return (
            re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", text)
            is not None
        )
    return kind == "string"


class FakeGitHub(LocalServer):
    """The issue-comment endpoints of one repository, in memory, spec-checked."""

    def __init__(
        self,
        token: str = "ghs_fakeTokenThatMustNeverBeLogged0123",
        login: str = "github-actions[bot]",
    ) -> None:
        self.token = token
        self.login = login
        """Who the token belongs to: the author of the comments it creates."""
        self.comments: dict[int, dict[str, Any]] = {}
        self.issues: dict[int, dict[str, Any]] = {}
        """Issues and pull requests by number, as the issues API lists them."""
        self.pulls: list[tuple[str, dict[str, Any]]] = []
        """(repository, pull request) pairs; a pull request has a real ``_links`` key."""
        self.requests: list[Seen] = []
        self.violations: list[str] = []
        self.files: dict[tuple[str, str], bytes] = {}
        """(ref, path) → a file the contents API serves; any other path is 404."""
        self.link_base: str | None = None
        """Where ``Link`` headers point; defaults to the fake itself."""
        self._failures: list[Failure] = []
        self._lock = threading.Lock()
        self._next_id = 1000
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        server.daemon_threads = True
        super().__init__(server)
        self.url = f"http://127.0.0.1:{self.port}"

    def verify(self) -> None:
        assert not self.violations, "requests off GitHub's spec:\n" + "\n".join(self.violations)

    def fail_next(
        self,
        status: int,
        times: int = 1,
        headers: Mapping[str, str] | None = None,
        message: str = "Server Error",
    ) -> None:
        """Answer the next ``times`` requests with ``status`` (after checking them)."""
        self._failures += [Failure(status, dict(headers or {}), message) for _ in range(times)]

    def misbehave_next(
        self,
        raw: bytes,
        status: int = 200,
        content_type: str = "application/json",
        method: str | None = None,
    ) -> None:
        """Answer the next request (of ``method``) with ``raw`` as the body: a proxy's HTML
        page, an object where a list belongs, a comment without its fields."""
        headers = {"Content-Type": content_type}
        self._failures.append(Failure(status, headers, raw=raw, method=method))

    def add_comment(
        self, issue: int, body: str, login: str, repository: str = "Codertocat/Hello-World"
    ) -> dict[str, Any]:
        """Put a comment on an issue as if ``login`` had written it."""
        with self._lock:
            return self._create(repository, issue, body, login)

    def add_pull(
        self,
        number: int,
        head_sha: str,
        head_repository: str,
        repository: str = "Codertocat/Hello-World",
    ) -> dict[str, Any]:
        """Open a pull request on ``repository`` from ``head_repository`` at ``head_sha``."""
        pull: dict[str, Any] = copy.deepcopy(
            REST_SPEC["paths"]["/repos/{owner}/{repo}/commits/{commit_sha}/pulls"]["get"][
                "responses"
            ]["200"]["content"]["application/json"]["examples"]["default"]["value"][0]
        )
        pull.update(
            number=number,
            url=f"https://api.github.com/repos/{repository}/pulls/{number}",
            html_url=f"https://github.com/{repository}/pull/{number}",
            # GitHub's own example lacks the team's required "type": no teams here.
            requested_teams=[],
        )
        pull["head"]["sha"] = head_sha
        pull["head"]["repo"]["full_name"] = head_repository
        pull["base"]["repo"]["full_name"] = repository
        self.pulls.append((repository, pull))
        return pull

    def add_issue(
        self,
        title: str,
        labels: list[str],
        login: str,
        pull_request: bool = False,
        repository: str = "Codertocat/Hello-World",
    ) -> dict[str, Any]:
        """Open an issue (or a pull request, which the issues API lists too) as ``login``."""
        with self._lock:
            return self._open(repository, title, "", labels, login, pull_request)

    def comments_on(self, issue: int) -> list[dict[str, Any]]:
        return [c for c in self.comments.values() if c["_issue"] == issue]

    def sent(self, method: str) -> list[Seen]:
        return [seen for seen in self.requests if seen.method == method]

    # --- the server side ------------------------------------------------------------------

    def _create(self, repository: str, issue: int, body: str, login: str) -> dict[str, Any]:
        self._next_id += 1
        number = self._next_id
        comment: dict[str, Any] = copy.deepcopy(
            SPEC["paths"]["/repos/{owner}/{repo}/issues/{issue_number}/comments"]["post"][
                "responses"
            ]["201"]["content"]["application/json"]["examples"]["default"]["value"]
        )
        api = f"https://api.github.com/repos/{repository}"
        comment.update(
            id=number,
            node_id=f"IC_{number}",
            url=f"{api}/issues/comments/{number}",
            html_url=f"https://github.com/{repository}/pull/{issue}#issuecomment-{number}",
            issue_url=f"{api}/issues/{issue}",
            body=body,
            _issue=issue,
            _repository=repository,
        )
        comment["user"].update(login=login, type="Bot" if login.endswith("[bot]") else "User")
        self.comments[number] = comment
        return comment

    def _open(
        self,
        repository: str,
        title: str,
        body: str,
        labels: list[str],
        login: str,
        pull_request: bool = False,
    ) -> dict[str, Any]:
        number = max([self._next_id, *self.issues]) + 1
        issue: dict[str, Any] = copy.deepcopy(
            SPEC["paths"]["/repos/{owner}/{repo}/issues"]["post"]["responses"]["201"]["content"][
                "application/json"
            ]["examples"]["default"]["value"]
        )
        api = f"https://api.github.com/repos/{repository}"
        issue.update(
            id=number,
            number=number,
            url=f"{api}/issues/{number}",
            html_url=f"https://github.com/{repository}/issues/{number}",
            title=title,
            body=body,
            state="open",
            labels=[dict(issue["labels"][0], name=name) for name in labels],
            _repository=repository,
        )
        issue["user"].update(login=login, type="Bot" if login.endswith("[bot]") else "User")
        if pull_request:
            issue["pull_request"] = {
                "url": f"{api}/pulls/{number}",
                "html_url": f"https://github.com/{repository}/pull/{number}",
                "diff_url": None,
                "patch_url": None,
            }
        else:
            issue.pop("pull_request", None)
        self.issues[number] = issue
        return issue

    def handle(self, method: str, target: str, headers: dict[str, str], raw: bytes) -> _Answer:
        parts = urlsplit(target)
        query = parse_qs(parts.query, keep_blank_values=True)
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode(errors="replace")
        with self._lock:
            self.requests.append(Seen(method, parts.path, query, body, headers))
            operation, params = self._check(method, parts.path, query, headers, body)
            if operation is None:
                return _Answer(404, {"message": "Not Found"})
            failure = next((f for f in self._failures if f.method in (None, method)), None)
            if failure is not None:
                self._failures.remove(failure)
                return _Answer(
                    failure.status, {"message": failure.message}, failure.headers, failure.raw
                )
            answer = self._serve(operation, params, query, body)
            self._check_answer(operation, answer)
            return answer

    def _check(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        headers: dict[str, str],
        body: Any,
    ) -> tuple[Operation | None, dict[str, str]]:
        where = f"{method} {path}"
        found = [(op, m) for op in OPERATIONS if (m := op.pattern.match(path))]
        operation = next(((op, m) for op, m in found if op.method == method), None)
        if operation is None:
            self.violations.append(f"{where}: no such operation in the spec")
            return None, {}
        op, match = operation
        params = match.groupdict()
        declared = {p["name"]: p for p in op.spec.get("parameters", [])}
        for name, value in params.items():
            if not _parameter_ok(value, declared[name]["schema"]):
                self.violations.append(f"{where}: path parameter {name}={value!r} is not valid")
        for name, values in query.items():
            parameter = declared.get(name)
            if parameter is None or parameter["in"] != "query":
                self.violations.append(f"{where}: undeclared query parameter {name!r}")
            elif len(values) != 1 or not _parameter_ok(values[0], parameter["schema"]):
                self.violations.append(f"{where}: query parameter {name}={values!r} is not valid")
        per_page = query.get("per_page", ["30"])[0]
        if per_page.isdigit() and not 1 <= int(per_page) <= MAX_PER_PAGE:
            self.violations.append(f"{where}: per_page={per_page} (GitHub allows 1 to 100)")
        for name, expected in {**REQUIRED_HEADERS, "Authorization": f"Bearer {self.token}"}.items():
            if headers.get(name.lower()) != expected:
                self.violations.append(f"{where}: header {name} is not {expected!r}")
        if not headers.get("user-agent"):
            self.violations.append(f"{where}: no User-Agent (GitHub refuses such requests)")
        request_body = op.spec.get("requestBody")
        if request_body is None:
            if body is not None:
                self.violations.append(f"{where}: a body, but the operation takes none")
        elif body is None and request_body.get("required"):
            self.violations.append(f"{where}: no body, but the operation requires one")
        elif body is not None:
            if not headers.get("content-type", "").startswith("application/json"):
                self.violations.append(f"{where}: body is not sent as application/json")
            schema = request_body["content"]["application/json"]["schema"]
            self.violations += [f"{where}: body {p}" for p in validate(body, schema)]
        return op, params

    def _serve(
        self, op: Operation, params: dict[str, str], query: dict[str, list[str]], body: Any
    ) -> _Answer:
        if op.operation_id not in SERVED:
            self.violations.append(f"fake: {op.operation_id} is in the description but not served")
            return _Answer(501, {"message": "Not Implemented"})
        repository = f"{params['owner']}/{params['repo']}"
        if op.operation_id == PULLS_OF_COMMIT:
            # GitHub lists the pull requests of this repository whose commits include the sha.
            sha = params["commit_sha"]
            listed = [p for r, p in self.pulls if r == repository and p["head"]["sha"] == sha]
            return _Answer(200, listed)
        if op.operation_id == "repos/get-content":
            return self._content(repository, params["path"], query.get("ref", ["main"])[0])
        if op.operation_id == "issues/list-comments":
            issue = int(params["issue_number"])
            listed = [
                c
                for c in self.comments.values()
                if c["_issue"] == issue and c["_repository"] == repository
            ]
            return self._page(listed, query, f"/repos/{repository}/issues/{issue}/comments")
        if op.operation_id == "issues/list-for-repo":
            state = query.get("state", ["open"])[0]
            wanted = {n for n in query.get("labels", [""])[0].split(",") if n}
            listed = [
                i
                for i in self.issues.values()
                if i["_repository"] == repository
                and state in ("all", i["state"])
                and wanted <= {label["name"] for label in i["labels"]}
            ]
            if query.get("direction", ["desc"])[0] == "desc":
                listed.reverse()
            return self._page(listed, query, f"/repos/{repository}/issues")
        if op.operation_id == "issues/create":
            issue = self._open(
                repository, str(body["title"]), body.get("body", ""), body["labels"], self.login
            )
            return _Answer(201, _public(issue), {"Location": issue["url"]})
        if op.operation_id == "issues/update":
            found = self.issues.get(int(params["issue_number"]))
            if found is None or found["_repository"] != repository:
                return _Answer(404, {"message": "Not Found"})
            found.update({k: v for k, v in body.items() if k in ("state", "state_reason")})
            return _Answer(200, _public(found))
        if op.operation_id == "issues/create-comment":
            comment = self._create(
                repository, int(params["issue_number"]), body["body"], self.login
            )
            return _Answer(201, _public(comment), {"Location": comment["url"]})
        existing = self.comments.get(int(params["comment_id"]))
        if existing is None or existing["_repository"] != repository:
            return _Answer(404, {"message": "Not Found"})
        if op.operation_id == "issues/update-comment":
            existing.update(body=body["body"], updated_at="2026-11-24T09:00:00Z")
            return _Answer(200, _public(existing))
        del self.comments[existing["id"]]
        return _Answer(204, None)

    def _page(
        self, listed: list[dict[str, Any]], query: dict[str, list[str]], path: str
    ) -> _Answer:
        """One page of ``listed``, with GitHub's ``Link`` header to the others."""
        per_page = int(query.get("per_page", ["30"])[0])
        page = int(query.get("page", ["1"])[0])
        last = max((len(listed) + per_page - 1) // per_page, 1)
        chunk = listed[(page - 1) * per_page : page * per_page]
        base = (self.link_base or self.url) + path
        kept = "".join(
            f"{name}={values[0]}&"
            for name, values in sorted(query.items())
            if name not in ("per_page", "page")
        )
        links = [
            f'<{base}?{kept}per_page={per_page}&page={n}>; rel="{rel}"'
            for rel, n in (("prev", page - 1), ("next", page + 1), ("last", last), ("first", 1))
            if 1 <= n <= last and (rel in ("prev", "next") or page != n)
        ]
        headers = {"Link": ", ".join(links)} if links else {}
        return _Answer(200, [_public(c) for c in chunk], headers)

    def _content(self, repository: str, path: str, ref: str) -> _Answer:
        data = self.files.get((ref, path))
        if data is None:
            return _Answer(404, {"message": "Not Found"})
        encoded = base64.b64encode(data).decode()
        api = f"https://api.github.com/repos/{repository}"
        return _Answer(
            200,
            {
                "type": "file",
                "encoding": "base64",
                "size": len(data),
                "name": path.rsplit("/", 1)[-1],
                "path": path,
                # GitHub wraps the base64 text at 60 characters.
                "content": "\n".join(encoded[i : i + 60] for i in range(0, len(encoded), 60)),
                "sha": "3d21ec53a331a6f037a91c368710b99387d012c1",
                "url": f"{api}/contents/{path}?ref={ref}",
                "git_url": f"{api}/git/blobs/3d21ec53a331a6f037a91c368710b99387d012c1",
                "html_url": f"https://github.com/{repository}/blob/{ref}/{path}",
                "download_url": None,
                "_links": {"git": None, "html": None, "self": f"{api}/contents/{path}"},
            },
        )

    def _check_answer(self, op: Operation, answer: _Answer) -> None:
        if answer.status >= 300:
            return  # the reduced spec lists only some of the errors GitHub sends
        response = op.spec["responses"].get(str(answer.status))
        if response is None:
            self.violations.append(f"fake: {op.operation_id} cannot answer {answer.status}")
            return
        schema = response.get("content", {}).get("application/json", {}).get("schema")
        if schema is not None:
            self.violations += [f"fake answer {p}" for p in validate(answer.body, schema)]


@dataclass(frozen=True)
class _Answer:
    status: int
    body: Any
    headers: Mapping[str, str] = field(default_factory=dict)
    raw: bytes | None = None


def _public(comment: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in comment.items() if not key.startswith("_")}


def _handler(fake: FakeGitHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _any(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            headers = {key.lower(): value for key, value in self.headers.items()}
            answer = fake.handle(self.command, self.path, headers, raw)
            payload = b"" if answer.body is None else json.dumps(answer.body).encode()
            payload = payload if answer.raw is None else answer.raw
            self.send_response(answer.status)
            for key, value in answer.headers.items():
                self.send_header(key, value)
            if payload and "Content-Type" not in answer.headers:
                self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _any

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: pytest shows the recorded requests when a test fails."""

    return Handler
