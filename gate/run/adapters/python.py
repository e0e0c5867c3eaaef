"""The ``python`` adapter: the pipeline is a function in this process."""

from __future__ import annotations

import importlib
import queue
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future, wait
from pathlib import Path
from typing import Any

from gate.errors import AdapterError
from gate.load.config import PythonPipeline
from gate.load.dataset import Case
from gate.run.adapters.base import CaseTimeout, Reply


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
