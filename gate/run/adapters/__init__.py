"""Adapters: how one case reaches the team's pipeline and its output comes back.

Each adapter turns a case into a ``Reply`` or raises. ``Transient`` (connection error, 429, 5xx)
and ``CaseTimeout`` are retried by the runner with backoff; anything else becomes the case's
recorded error. Setting an adapter up (a bad target, a missing command) is an ``AdapterError``:
the user's input is wrong, and the run stops before the first case.
"""

from __future__ import annotations

import contextlib
import email.utils
import importlib
import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import requests
from pydantic import BaseModel, ConfigDict, ValidationError
from requests.adapters import HTTPAdapter

from gate.errors import AdapterError, DatasetError
from gate.load.config import (
    CommandPipeline,
    Config,
    HttpPipeline,
    PythonPipeline,
    ReplayPipeline,
    expand_env,
)
from gate.load.dataset import Case
from gate.load.validation import capped, describe


@dataclass(frozen=True)
class Reply:
    """What the pipeline returned for one case (before validation)."""

    output: Any
    latency_ms: float | None = None
    """Set by adapters that know the latency better than the runner's clock (replay)."""
    error: str | None = None
    """Set by the replay adapter when the recorded run failed."""
    timed: bool = True
    """False when the call's own duration is not the pipeline's latency (a replay reads a file):
    then ``latency_ms`` is the latency, and None means unknown."""


class Transient(Exception):
    """A failure worth retrying; ``retry_after`` is the server's requested wait in seconds."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class CaseTimeout(Exception):
    """The case ran longer than ``runner.timeout_s``."""


class Adapter(Protocol):
    def call(self, case: Case, timeout_s: float) -> Reply: ...

    def close(self) -> None: ...


def _request_body(case: Case) -> dict[str, Any]:
    # What a pipeline sees of a case: never the expected answer.
    return {"id": case.id, "input": case.input}


class PythonAdapter:
    """Calls ``module:function`` with ``(input, case)`` in this process.

    A Python call cannot be interrupted: on timeout the case is recorded as timed out and the call
    is left to finish in its daemon thread, its result discarded.
    """

    def __init__(self, spec: PythonPipeline, root: Path) -> None:
        module_name, _, attr = spec.target.partition(":")
        folder = str(root.resolve())
        if folder not in sys.path:
            sys.path.insert(0, folder)
        try:
            target: Any = importlib.import_module(module_name)
            for part in attr.split("."):
                target = getattr(target, part)
        except ModuleNotFoundError as exc:
            raise AdapterError(
                f"pipeline.target: cannot import {module_name!r} ({exc}); the folder of gate.yml "
                f"({folder}) is on the import path (fix: check the module name)"
            ) from None
        except AttributeError:
            raise AdapterError(
                f"pipeline.target: {module_name!r} has no {attr!r} (fix: check the function name)"
            ) from None
        except Exception as exc:
            raise AdapterError(
                f"pipeline.target: importing {module_name!r} failed: {type(exc).__name__}: {exc}"
            ) from None
        if not callable(target):
            raise AdapterError(f"pipeline.target: {spec.target} is not a function")
        self._function: Callable[[Any, Case], Any] = target
        self._helpers = _Helpers()

    def call(self, case: Case, timeout_s: float) -> Reply:
        future = self._helpers.submit(lambda: self._function(case.input, case))
        # Not future.result(timeout): a TimeoutError raised by the pipeline would look like ours.
        if not wait([future], timeout_s).done:
            raise CaseTimeout(f"no result after {timeout_s:g} s")
        return Reply(future.result())

    def close(self) -> None:
        self._helpers.close()


class _Helpers:
    """Daemon threads that run Python pipeline calls, reused from case to case.

    Daemon, so a call that never returns cannot keep the gate from exiting; reused, because
    starting a thread per case costs more than the case's own overhead in the runner. A call
    that timed out keeps its thread until it returns; the next call gets another.
    """

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]] | None] = (
            queue.SimpleQueue()
        )
        self._idle = 0
        self._threads = 0
        self._lock = threading.Lock()

    def submit(self, work: Callable[[], Any]) -> Future[Any]:
        future: Future[Any] = Future()
        with self._lock:
            if self._idle:
                self._idle -= 1
            else:
                self._threads += 1
                threading.Thread(target=self._serve, name="gate-python", daemon=True).start()
        self._jobs.put((work, future))
        return future

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            work, future = job
            try:
                future.set_result(work())
            except Exception as exc:  # handed to the caller's thread
                future.set_exception(exc)
            except BaseException as exc:
                # sys.exit() in a pipeline must not end the gate (with exit code 0, "passed").
                future.set_exception(RuntimeError(f"{type(exc).__name__}: {exc}"))
            with self._lock:
                self._idle += 1

    def close(self) -> None:
        with self._lock:
            threads, self._threads, self._idle = self._threads, 0, 0
        for _ in range(threads):
            self._jobs.put(None)


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Parse ``Retry-After``: delta-seconds or an HTTP date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def retry_after(headers: Mapping[str, str]) -> float | None:
    """The wait a server asks for: OpenAI's ``retry-after-ms`` (sub-second), else Retry-After."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    return retry_after_seconds(headers.get("Retry-After"))


class HttpRefused(Exception):
    """A reply a retry would not fix: a 4xx other than 429, or a body that is not JSON."""


def post_json(
    session: requests.Session,
    url: str,
    body: Any,
    timeout_s: float,
    *,
    label: str = "",
    scrub: Callable[[str], str] = lambda text: text,
) -> Any:
    """POST ``body`` as JSON and return the decoded reply, classifying every failure.

    Timeouts raise ``CaseTimeout``; connection errors, 429 and 5xx raise ``Transient`` (with the
    server's requested wait) for the runner to retry; anything else ``HttpRefused``. Messages
    carry the exception type, never its text (requests quotes headers, and with them tokens),
    and the server's own explanation passes through ``scrub``.
    """
    try:
        response = session.post(url, json=body, timeout=timeout_s)
    except requests.Timeout:
        raise CaseTimeout(f"{label}no reply from {url} after {timeout_s:g} s") from None
    except requests.RequestException as exc:
        raise Transient(f"{label}cannot reach {url}: {type(exc).__name__}") from None
    status = response.status_code
    # A labelled caller (a model name) says where; otherwise the URL does.
    source = "" if label else f" from {url}"
    if status == 429 or status >= 500:
        detail = _detail(response, scrub)
        raise Transient(
            f"{label}HTTP {status}{source}{detail}", retry_after=retry_after(response.headers)
        )
    if status >= 400:
        raise HttpRefused(f"{label}HTTP {status}{source}{_detail(response, scrub)}")
    try:
        return response.json()
    except ValueError:
        text = scrub(response.text[:200])
        raise HttpRefused(f"{label}the reply is not JSON: {text!r}") from None


def _detail(response: requests.Response, scrub: Callable[[str], str]) -> str:
    """The server's own explanation (an OpenAI-style ``error.message``, else the body), short."""
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        error = None
    text = error.get("message") if isinstance(error, dict) else error
    if not isinstance(text, str) or not text:
        text = response.text
    text = scrub(" ".join(str(text).split())[:200])
    return f": {text}" if text else ""


class HttpAdapter:
    """POSTs ``{"id", "input"}`` as JSON; the JSON reply is the output.

    One pooled session sized to the concurrency, so connections are reused across cases.
    """

    def __init__(self, spec: HttpPipeline, concurrency: int) -> None:
        self._url = spec.url
        self._session = requests.Session()
        headers = {
            k: expand_env(v, f"pipeline.headers.{k}", os.environ) for k, v in spec.headers.items()
        }
        self._session.headers.update(headers)
        # Values read from the environment are secrets: a server quoting them back is scrubbed.
        names = {n for value in spec.headers.values() for n in re.findall(r"\$\{(\w+)\}", value)}
        self._secrets = [os.environ[n] for n in names if os.environ.get(n)]
        pool = HTTPAdapter(pool_connections=1, pool_maxsize=concurrency, max_retries=0)
        self._session.mount("http://", pool)
        self._session.mount("https://", pool)

    def call(self, case: Case, timeout_s: float) -> Reply:
        return Reply(
            post_json(self._session, self._url, _request_body(case), timeout_s, scrub=self._scrub)
        )

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def close(self) -> None:
        self._session.close()


class _Process:
    """One long-lived pipeline process: a JSON case per line in, a JSON output per line out."""

    def __init__(self, command: list[str], cwd: Path) -> None:
        try:
            self.popen = subprocess.Popen(
                command,
                cwd=cwd,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                encoding="utf-8",
                errors="replace",
                bufsize=1,
            )
        except OSError as exc:
            raise AdapterError(
                f"pipeline.command: cannot start {command[0]!r}: {exc.strerror} "
                "(fix: check the program name and that it is installed)"
            ) from None
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stderr: deque[str] = deque(maxlen=20)
        assert self.popen.stdout is not None and self.popen.stderr is not None
        self._readers = [
            threading.Thread(
                target=self._pump, args=(self.popen.stdout,), name="gate-command-out", daemon=True
            ),
            threading.Thread(
                target=self._drain, args=(self.popen.stderr,), name="gate-command-err", daemon=True
            ),
        ]
        for reader in self._readers:
            reader.start()

    # Each reader closes its own stream when it ends: closing it from another thread while the
    # reader is inside readline() makes the reader fail with "I/O operation on closed file".
    def _pump(self, stream: Any) -> None:
        with stream:
            for line in stream:
                self.lines.put(line)
        self.lines.put(None)

    def _drain(self, stream: Any) -> None:
        with stream:
            for line in stream:
                self.stderr.append(line.rstrip("\n"))

    def died(self) -> str:
        try:
            code = self.popen.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return "the pipeline process closed its stdout but kept running"
        # The exit can be seen before the stderr reader has read the last lines: they explain it.
        self._readers[1].join(timeout=1)
        tail = " | ".join(list(self.stderr)[-5:])
        return f"the pipeline process exited with code {code}" + (f": {tail}" if tail else "")

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait(timeout=5)
        # Closing flushes unsent input, which fails if the process had died.
        with contextlib.suppress(OSError):
            assert self.popen.stdin is not None
            self.popen.stdin.close()
        for reader in self._readers:
            reader.join(timeout=1)


class CommandAdapter:
    """Serves cases from ``processes`` long-lived processes, never one process per case.

    A process that times out or dies is replaced: after a timeout its next line could be the
    late answer to the previous case.
    """

    def __init__(self, spec: CommandPipeline, root: Path) -> None:
        self._command = spec.command
        self._root = root
        self._idle: queue.Queue[_Process] = queue.Queue()
        self._all: set[_Process] = set()
        self._lock = threading.Lock()
        for _ in range(spec.processes):
            self._idle.put(self._start())

    def _start(self) -> _Process:
        process = _Process(self._command, self._root)
        with self._lock:
            self._all.add(process)
        return process

    def _replace(self, process: _Process) -> _Process:
        # A process whose restart failed comes back here on the next case: discard, not remove.
        with self._lock:
            self._all.discard(process)
        process.stop()
        return self._start()

    def call(self, case: Case, timeout_s: float) -> Reply:
        process = self._idle.get()
        try:
            stdin = process.popen.stdin
            assert stdin is not None
            try:
                stdin.write(json.dumps(_request_body(case), ensure_ascii=False) + "\n")
                stdin.flush()
            except (OSError, ValueError):  # a broken pipe, or stdin closed by a failed restart
                # The process was gone before this case reached it: not this case's fault.
                reason = process.died()
                process = self._replace(process)
                raise Transient(f"{reason}, before this case was sent") from None
            try:
                line = process.lines.get(timeout=timeout_s)
            except queue.Empty:
                process = self._replace(process)
                raise CaseTimeout(f"no output line after {timeout_s:g} s") from None
            if line is None:
                reason = process.died()
                process = self._replace(process)
                raise RuntimeError(reason)
            try:
                return Reply(json.loads(line))
            except json.JSONDecodeError:
                raise ValueError(f"the output line is not JSON: {line.strip()[:200]!r}") from None
        finally:
            self._idle.put(process)

    def close(self) -> None:
        with self._lock:
            processes = list(self._all)
        # End of input asks every process to exit; one still running after the grace period is
        # killed.
        for process in processes:
            with contextlib.suppress(OSError):
                assert process.popen.stdin is not None
                process.popen.stdin.close()
        deadline = time.monotonic() + 2
        for process in processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
            process.stop()


class _Recorded(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str
    output: dict[str, Any] | None = None
    latency_ms: float | None = None
    error: str | None = None


class ReplayAdapter:
    """Serves recorded outputs by case id. Several lines for one id are served in turn, one per
    repeat, so a recorded non-deterministic pipeline replays its variation."""

    def __init__(self, spec: ReplayPipeline, root: Path) -> None:
        self._path = spec.path if spec.path.is_absolute() else root / spec.path
        self._rows: dict[str, list[_Recorded]] = {}
        self._served: dict[str, int] = {}
        self._lock = threading.Lock()
        try:
            text = self._path.read_text(encoding="utf-8-sig")
        except FileNotFoundError:
            raise DatasetError(
                f"{self._path}: replay file not found (fix: check `pipeline.path`)"
            ) from None
        except UnicodeDecodeError as exc:
            raise DatasetError(
                f"{self._path}: not UTF-8 at byte {exc.start} (fix: save it as UTF-8)"
            ) from None
        problems: list[str] = []
        # Numbered by the file's own lines (blank ones included), so file:line points at the row.
        # split("\n"), not splitlines(): JSON strings may hold U+2028 and other line separators.
        for number, line in enumerate(text.split("\n"), start=1):
            if not line.strip():
                continue
            where = f"{self._path}:{number}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                problems.append(f"{where}: invalid JSON: {exc.msg} (column {exc.colno})")
                continue
            try:
                recorded = _Recorded.model_validate(row)
            except ValidationError as exc:
                problems += describe(exc, _Recorded, where)
                continue
            self._rows.setdefault(recorded.id, []).append(recorded)
        if problems:
            raise DatasetError(capped(problems, "problems"))

    def call(self, case: Case, timeout_s: float) -> Reply:
        rows = self._rows.get(case.id)
        if not rows:
            raise LookupError(f"no recorded output for this case in {self._path.name}")
        with self._lock:
            turn = self._served.get(case.id, 0)
            self._served[case.id] = turn + 1
        row = rows[turn % len(rows)]
        return Reply(row.output, latency_ms=row.latency_ms, error=row.error, timed=False)

    def close(self) -> None:
        pass


AdapterFactory = Callable[[Any, Config], Adapter]


def _openai(spec: Any, config: Config) -> Adapter:
    from gate.llm import OpenAIAdapter  # gate.llm builds on this module: imported when used

    return OpenAIAdapter(spec, config)


ADAPTERS: dict[str, AdapterFactory] = {
    "python": lambda spec, config: PythonAdapter(spec, config.root),
    "http": lambda spec, config: HttpAdapter(spec, config.runner.concurrency),
    "command": lambda spec, config: CommandAdapter(spec, config.root),
    "replay": lambda spec, config: ReplayAdapter(spec, config.root),
    "openai": _openai,
}
"""Every adapter by the name ``pipeline.adapter`` selects it with."""


def make_adapter(config: Config, env: Mapping[str, str]) -> Adapter:
    return ADAPTERS[config.pipeline.adapter](config.pipeline, config)
