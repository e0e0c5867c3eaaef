"""The ``command`` adapter: long-lived processes speaking JSON lines on stdin and stdout.

The protocol pairs answers with cases: each request ``{"id", "input"}`` is one line on stdin; the
reply is the line on stdout that is a JSON object whose ``"id"`` is the case's (the other fields
are the output). Every other line (a banner, a ``{"level": "info"}`` log line) is the case's log,
kept in its record; a reply for another case is this case's error, and the process is replaced.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from gate.errors import AdapterError
from gate.load.config import CommandPipeline
from gate.load.dataset import Case
from gate.run.adapters.base import CaseTimeout, Reply, Transient, request_body

MAX_LOG_LINES = 200
"""Log lines kept per case, the latest."""


def _reply(line: str) -> dict[str, Any] | None:
    """The line as a reply (a JSON object with an ``"id"``); None when it is a log line."""
    try:
        value = json.loads(line)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) and "id" in value else None


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
                # Its own process group, so a timeout or the end of the run kills its children too.
                start_new_session=True,
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
        # The whole group: a grandchild left alive would keep stdout open, and the reader with it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=5)
        # Closing flushes unsent input, which fails if the process had died.
        with contextlib.suppress(OSError):
            assert self.popen.stdin is not None
            self.popen.stdin.close()
        for reader in self._readers:
            reader.join(timeout=1)


class CommandAdapter:
    """Serves cases from ``processes`` long-lived processes, never one process per case.

    A process that times out, dies or answers another case is replaced, with its children.
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
            deadline = time.monotonic() + timeout_s
            stdin = process.popen.stdin
            assert stdin is not None
            try:
                stdin.write(json.dumps(request_body(case), ensure_ascii=False) + "\n")
                stdin.flush()
            except (OSError, ValueError):  # a broken pipe, or stdin closed by a failed restart
                # The process was gone before this case reached it: not this case's fault.
                reason = process.died()
                process = self._replace(process)
                raise Transient(f"{reason}, before this case was sent") from None
            log: deque[str] = deque(maxlen=MAX_LOG_LINES)
            while True:
                try:
                    line = process.lines.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    process = self._replace(process)
                    raise CaseTimeout(f"no output line after {timeout_s:g} s") from None
                if line is None:
                    reason = process.died()
                    process = self._replace(process)
                    raise RuntimeError(reason)
                reply = _reply(line)
                if reply is None:
                    log.append(line.rstrip("\n"))
                    continue
                answered = reply.pop("id")
                if answered != case.id:
                    process = self._replace(process)
                    raise ValueError(
                        f"the pipeline answered case {answered!r} while case {case.id!r} was "
                        "waiting (fix: every reply carries the id of the request it answers)"
                    )
                return Reply(reply, log="\n".join(log) or None)
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
