"""Adapters: how one case reaches the team's pipeline and its output comes back.

Each adapter turns a case into a ``Reply`` or raises. ``Transient`` (connection error, 429, 5xx)
and ``CaseTimeout`` are retried by the runner with backoff; anything else becomes the case's
recorded error. Setting an adapter up (a bad target, a missing command) is an ``AdapterError``:
the user's input is wrong, and the run stops before the first case.
"""

from __future__ import annotations

import email.utils
import importlib
import json
import queue
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import jsonlines
import requests
from pydantic import BaseModel, ConfigDict, ValidationError
from requests.adapters import HTTPAdapter

from gate.config import (
    CommandPipeline,
    Config,
    HttpPipeline,
    PythonPipeline,
    ReplayPipeline,
    expand_env,
)
from gate.dataset import Case
from gate.errors import AdapterError, DatasetError
from gate.validation import capped, describe


@dataclass(frozen=True)
class Reply:
    """What the pipeline returned for one case (before validation)."""

    output: Any
    latency_ms: float | None = None
    """Set by adapters that know the latency better than the runner's clock (replay)."""
    error: str | None = None
    """Set by the replay adapter when the recorded run failed."""


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
    is left to finish in a daemon thread, its result discarded.
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

    def call(self, case: Case, timeout_s: float) -> Reply:
        result: list[Any] = []
        failure: list[BaseException] = []

        def work() -> None:
            try:
                result.append(self._function(case.input, case))
            except BaseException as exc:  # handed to the caller's thread
                failure.append(exc)

        worker = threading.Thread(target=work, name=f"case-{case.id}", daemon=True)
        worker.start()
        worker.join(timeout_s)
        if worker.is_alive():
            raise CaseTimeout(f"no result after {timeout_s:g} s")
        if failure:
            raise failure[0]
        return Reply(result[0])

    def close(self) -> None:
        pass


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


class HttpAdapter:
    """POSTs ``{"id", "input"}`` as JSON; the JSON reply is the output.

    One pooled session sized to the concurrency, so connections are reused across cases.
    """

    def __init__(self, spec: HttpPipeline, concurrency: int) -> None:
        self._url = spec.url
        self._session = requests.Session()
        self._session.headers.update(
            {k: expand_env(v, f"pipeline.headers.{k}") for k, v in spec.headers.items()}
        )
        pool = HTTPAdapter(pool_connections=1, pool_maxsize=concurrency, max_retries=0)
        self._session.mount("http://", pool)
        self._session.mount("https://", pool)

    def call(self, case: Case, timeout_s: float) -> Reply:
        try:
            response = self._session.post(self._url, json=_request_body(case), timeout=timeout_s)
        except requests.Timeout:
            raise CaseTimeout(f"no reply from {self._url} after {timeout_s:g} s") from None
        except requests.ConnectionError as exc:
            raise Transient(f"cannot connect to {self._url}: {type(exc).__name__}") from None
        status = response.status_code
        if status == 429 or status >= 500:
            wait = retry_after_seconds(response.headers.get("Retry-After"))
            raise Transient(f"HTTP {status} from {self._url}", retry_after=wait)
        if status >= 400:
            raise RuntimeError(f"HTTP {status} from {self._url}: {response.text[:200]}")
        try:
            return Reply(response.json())
        except ValueError:
            raise ValueError(f"the reply is not JSON: {response.text[:200]!r}") from None

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
        threading.Thread(target=self._pump, args=(self.popen.stdout,), daemon=True).start()
        threading.Thread(target=self._drain, args=(self.popen.stderr,), daemon=True).start()

    def _pump(self, stream: Any) -> None:
        for line in stream:
            self.lines.put(line)
        self.lines.put(None)

    def _drain(self, stream: Any) -> None:
        for line in stream:
            self.stderr.append(line.rstrip("\n"))

    def died(self) -> str:
        code = self.popen.wait(timeout=5)
        tail = " | ".join(list(self.stderr)[-5:])
        return f"the pipeline process exited with code {code}" + (f": {tail}" if tail else "")

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait(timeout=5)
        for stream in (self.popen.stdin, self.popen.stdout, self.popen.stderr):
            if stream is not None:
                stream.close()


class CommandAdapter:
    """Serves cases from ``processes`` long-lived processes, never one process per case.

    A process that times out or dies is replaced: after a timeout its next line could be the
    late answer to the previous case.
    """

    def __init__(self, spec: CommandPipeline, root: Path) -> None:
        self._command = spec.command
        self._root = root
        self._idle: queue.Queue[_Process] = queue.Queue()
        self._all: list[_Process] = []
        self._lock = threading.Lock()
        for _ in range(spec.processes):
            self._idle.put(self._start())

    def _start(self) -> _Process:
        process = _Process(self._command, self._root)
        with self._lock:
            self._all.append(process)
        return process

    def _replace(self, process: _Process) -> _Process:
        process.stop()
        with self._lock:
            self._all.remove(process)
        return self._start()

    def call(self, case: Case, timeout_s: float) -> Reply:
        process = self._idle.get()
        try:
            stdin = process.popen.stdin
            assert stdin is not None
            try:
                stdin.write(json.dumps(_request_body(case), ensure_ascii=False) + "\n")
                stdin.flush()
                line = process.lines.get(timeout=timeout_s)
            except queue.Empty:
                process = self._replace(process)
                raise CaseTimeout(f"no output line after {timeout_s:g} s") from None
            except (BrokenPipeError, OSError):
                line = None
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
        for process in processes:
            if process.popen.stdin is not None and not process.popen.stdin.closed:
                process.popen.stdin.close()
            try:
                process.popen.wait(timeout=2)
            except subprocess.TimeoutExpired:
                pass
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
        problems: list[str] = []
        try:
            with jsonlines.open(self._path) as reader:
                for number, row in enumerate(reader.iter(skip_empty=True), start=1):
                    try:
                        recorded = _Recorded.model_validate(row)
                    except ValidationError as exc:
                        problems += describe(exc, _Recorded, f"{self._path}:{number}")
                        continue
                    self._rows.setdefault(recorded.id, []).append(recorded)
        except FileNotFoundError:
            raise DatasetError(
                f"{self._path}: replay file not found (fix: check `pipeline.path`)"
            ) from None
        except (jsonlines.InvalidLineError, UnicodeDecodeError) as exc:
            raise DatasetError(f"{self._path}: {exc}") from None
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
        return Reply(row.output, latency_ms=row.latency_ms, error=row.error)

    def close(self) -> None:
        pass


AdapterFactory = Callable[[Any, Config], Adapter]

ADAPTERS: dict[str, AdapterFactory] = {
    "python": lambda spec, config: PythonAdapter(spec, config.root),
    "http": lambda spec, config: HttpAdapter(spec, config.runner.concurrency),
    "command": lambda spec, config: CommandAdapter(spec, config.root),
    "replay": lambda spec, config: ReplayAdapter(spec, config.root),
}
"""Every adapter by the name ``pipeline.adapter`` selects it with."""


def make_adapter(config: Config) -> Adapter:
    return ADAPTERS[config.pipeline.adapter](config.pipeline, config)
