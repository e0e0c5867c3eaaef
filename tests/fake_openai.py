"""A fake OpenAI-compatible Chat Completions server on 127.0.0.1, scripted per test.

Every request is checked against the shape of the API: ``POST {prefix}/chat/completions`` with
``Authorization: Bearer <key>`` and a JSON body holding ``model``, non-empty ``messages`` of
``{"role", "content"}``, sampling parameters of the right type and range, ``response_format``
(and, for ``json_object``, the word "JSON" somewhere in the messages, as OpenAI requires) and
``tools`` in the function shape. Problems are recorded and answered with 400 (a raise inside the
server thread would reach the client only as a dropped connection); the fake fails the test when
it closes with any recorded.

Replies are queued with ``reply`` and ``fail``; with none queued, ``responder`` answers (by
default a plain completion), so concurrent requests can be answered by what they ask.

    with FakeOpenAI() as fake:
        fake.fail(429, headers={"Retry-After": "2"})
        fake.reply("Rotate the key.", usage=(12, 5))
        ...                        # point the client at fake.url, with OPENAI_API_KEY = fake.key
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from local_server import LocalServer

KEY = "sk-test-fake-0123456789abcdefNEVERLOGGED"
ROLES = {"system", "user", "assistant", "tool"}
BODY_KEYS = {
    "model",
    "messages",
    "temperature",
    "top_p",
    "max_tokens",
    "seed",
    "tools",
    "tool_choice",
    "response_format",
}
TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


@dataclass(frozen=True)
class Seen:
    """One request as the fake received it."""

    path: str
    headers: dict[str, str]
    body: Any


@dataclass(frozen=True)
class Canned:
    """One scripted answer: a status, a JSON (or raw text) body, headers, an optional delay."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


def completion(
    content: str | None = "ok",
    *,
    model: str = "fake-model",
    tool_calls: list[tuple[str, Any]] | None = None,
    usage: tuple[int, int] | None = (10, 5),
    finish_reason: str = "stop",
) -> dict[str, Any]:
    """A chat.completion body. A tool call's arguments are JSON-encoded unless given as a str
    (so a test can send malformed ones)."""
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = [
            {
                "id": f"call_{i}",
                "type": "function",
                "function": {
                    "name": name,
                    "arguments": args if isinstance(args, str) else json.dumps(args),
                },
            }
            for i, (name, args) in enumerate(tool_calls)
        ]
    body: dict[str, Any] = {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
    }
    if usage is not None:
        body["usage"] = {
            "prompt_tokens": usage[0],
            "completion_tokens": usage[1],
            "total_tokens": sum(usage),
        }
    return body


def _number(body: dict[str, Any], key: str, low: float, high: float) -> list[str]:
    value = body.get(key)
    if value is None:
        return []
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        return [f"{key}: {value!r} is not a number in [{low}, {high}]"]
    return []


def check_request(body: Any) -> list[str]:
    """Problems of a Chat Completions request body."""
    if not isinstance(body, dict):
        return ["the body is not a JSON object"]
    problems = [f"unknown key {key!r}" for key in sorted(set(body) - BODY_KEYS)]
    if not isinstance(body.get("model"), str) or not body["model"]:
        problems.append("model: missing or not a string")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        problems.append("messages: missing or empty")
        messages = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            problems.append(f"messages[{i}]: no valid role")
        elif not isinstance(message.get("content"), str):
            problems.append(f"messages[{i}].content: not a string")
    problems += _number(body, "temperature", 0, 2) + _number(body, "top_p", 0, 1)
    for key in ("max_tokens", "seed"):
        value = body.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            problems.append(f"{key}: {value!r} is not an integer")
    fmt = body.get("response_format")
    if fmt is not None:
        kind = fmt.get("type") if isinstance(fmt, dict) else None
        if kind not in {"text", "json_object", "json_schema"}:
            problems.append(f"response_format.type: {kind!r}")
        if kind == "json_schema" and not isinstance(fmt.get("json_schema"), dict):
            problems.append("response_format.json_schema: missing")
        text = " ".join(str(m.get("content")) for m in messages if isinstance(m, dict))
        if kind == "json_object" and "json" not in text.lower():
            problems.append("response_format json_object: the messages must mention JSON")
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list) or not tools:
            problems.append("tools: not a non-empty list")
            tools = []
        for i, tool in enumerate(tools):
            function = tool.get("function") if isinstance(tool, dict) else None
            if tool.get("type") != "function" or not isinstance(function, dict):
                problems.append(f"tools[{i}]: not {{type: function, function: {{...}}}}")
            elif not TOOL_NAME.match(str(function.get("name"))):
                problems.append(f"tools[{i}].function.name: {function.get('name')!r}")
            elif not isinstance(function.get("parameters", {}), dict):
                problems.append(f"tools[{i}].function.parameters: not an object")
    return problems


class FakeOpenAI(LocalServer):
    """The Chat Completions endpoint, scripted; ``requests`` holds every request received."""

    def __init__(self, key: str | None = KEY, prefix: str = "/v1") -> None:
        self.key = key
        self.prefix = prefix
        self.requests: list[Seen] = []
        self.problems: list[str] = []
        self.responder: Callable[[dict[str, Any]], Canned] = lambda body: Canned(
            body=completion(model=body["model"])
        )
        self._queue: list[Canned] = []
        self._lock = threading.Lock()
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        server.daemon_threads = True
        super().__init__(server)
        self.url = f"http://127.0.0.1:{self.port}{prefix}"

    def reply(self, content: str | None = "ok", *, delay_s: float = 0.0, **kwargs: Any) -> None:
        """Queue a completion (see ``completion`` for the keywords)."""
        self._queue.append(Canned(body=completion(content, **kwargs), delay_s=delay_s))

    def fail(
        self, status: int, message: str = "fake failure", headers: dict[str, str] | None = None
    ) -> None:
        """Queue an error reply in OpenAI's ``{"error": {...}}`` shape."""
        body = {"error": {"message": message, "type": "fake_error", "code": None}}
        self._queue.append(Canned(status, body, headers or {}))

    def models(self) -> list[str]:
        """The model of every request so far, in order."""
        return [seen.body["model"] for seen in self.requests]

    def verify(self) -> None:
        if self.problems:
            raise AssertionError("requests the real API would refuse:\n" + "\n".join(self.problems))

    def _answer(self, path: str, headers: dict[str, str], raw: bytes) -> Canned:
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw.decode(errors="replace")
        with self._lock:
            self.requests.append(Seen(path, headers, body))
            problems = []
            if path != f"{self.prefix}/chat/completions":
                problems.append(f"path {path!r}")
            wanted = f"Bearer {self.key}" if self.key else None
            if headers.get("authorization") != wanted:
                problems.append(f"Authorization header: {headers.get('authorization')!r}")
            if not headers.get("content-type", "").startswith("application/json"):
                problems.append("Content-Type is not application/json")
            problems += check_request(body)
            if problems:
                self.problems += problems
                return Canned(400, {"error": {"message": "; ".join(problems)}})
            if self._queue:
                return self._queue.pop(0)
        return self.responder(body)


def _handler(fake: FakeOpenAI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            headers = {k.lower(): v for k, v in self.headers.items()}
            canned = fake._answer(self.path, headers, raw)
            time.sleep(canned.delay_s)
            payload = (
                canned.body if isinstance(canned.body, str) else json.dumps(canned.body)
            ).encode()
            try:
                self.send_response(canned.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for name, value in canned.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up waiting: the timeout the test asked for

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
