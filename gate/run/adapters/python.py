"""The ``python`` adapter: the pipeline is a Python function, ``module:function``.

By default (``isolation: process``) it runs in worker processes, kept warm, one per concurrency
slot, each importing the target once: a call that overruns its time (a C loop holding the GIL, a
deadlock) is killed with its worker, which is replaced, and a pipeline that ends its process
(``os._exit``) fails its case, never the gate. ``isolation: thread`` runs it in the gate's own
process instead: cheaper, but a call cannot be stopped, only abandoned.
"""

from __future__ import annotations

import contextlib
import importlib
import multiprocessing
import os
import pickle
import queue
import signal
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future, wait
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from gate.errors import AdapterError
from gate.load.config import PythonPipeline
from gate.load.dataset import Case
from gate.retry import CaseTimeout, Transient
from gate.run.adapters.base import Reply
from gate.run.records import check_json

START_TIMEOUT_S = 120.0
"""How long a worker may take to import the pipeline before the run stops with an input error."""

# A fork server, started once, with the gate already imported: a worker is a cheap fork of it,
# and never a fork of the gate's own threaded process. Each worker imports the target itself.
_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload([__name__, "numpy"])


def load_target(target: str, root: Path) -> Callable[[Any, Case], Any]:
    """The function ``target`` names, importable from ``root``; AdapterError when it is not."""
    module_name, _, attr = target.partition(":")
    folder = str(root.resolve())
    if folder not in sys.path:
        sys.path.insert(0, folder)
    try:
        found: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            found = getattr(found, part)
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
    if not callable(found):
        raise AdapterError(f"pipeline.target: {target} is not a function")
    return found  # type: ignore[no-any-return]


class PythonAdapter:
    """Calls ``module:function`` with ``(input, case)``, in workers or in-thread (see module)."""

    def __init__(self, spec: PythonPipeline, root: Path) -> None:
        self._calls: _Workers | _InThread = (
            _InThread(load_target(spec.target, root))
            if spec.isolation == "thread"
            else _Workers(spec.target, root)
        )

    def call(self, case: Case, timeout_s: float) -> Reply:
        return Reply(self._calls.call(case, timeout_s))

    def close(self) -> None:
        self._calls.close()


# --- worker processes ---------------------------------------------------------------------------


def _serve(connection: Connection, target: str, root: Path, env: dict[str, str], cwd: str) -> None:
    """A worker's life: import the target, then answer ``(input, case)`` jobs until closed."""
    # Its own process group, so the pipeline's children die with it; and allowed to have
    # children (a pipeline may use multiprocessing) though the gate treats it as a daemon.
    os.setsid()
    multiprocessing.current_process().daemon = False
    # Forked from the fork server, it would see the server's environment and folder, as they
    # were when the server started: it gets the gate's, as a child process would.
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    try:
        function = load_target(target, root)
    except AdapterError as exc:
        connection.send(("refused", str(exc)))
        return
    connection.send(("ready", None))
    while True:
        try:
            question, case = connection.recv()
        except EOFError:
            return
        try:
            result = function(question, case)
            check_json(result)
            connection.send(("ok", result))
        except BaseException as exc:  # the pipeline's failure is its case's result
            connection.send(_portable(exc))


def _portable(exc: BaseException) -> tuple[str, Any]:
    """``exc`` as the gate can receive it: itself when the gate knows its type (builtins, the
    retry policy's) and it survives pickling, else its type's name and its message."""
    if isinstance(exc, Exception) and type(exc).__module__ in ("builtins", Transient.__module__):
        with contextlib.suppress(Exception):
            pickle.loads(pickle.dumps(exc))
            return ("raised", exc)
    return ("named", (type(exc).__name__, str(exc)))


class WorkerLost(RuntimeError):
    """The worker process ended during a call: the pipeline exited, or was killed."""


class _Worker:
    def __init__(self, target: str, root: Path) -> None:
        self.connection, child = _CONTEXT.Pipe()
        self.process = _CONTEXT.Process(
            target=_serve,
            args=(child, target, root, dict(os.environ), os.getcwd()),
            name="gate-python-worker",
            daemon=True,
        )
        self.process.start()
        child.close()
        self._ready = False

    def ready(self) -> None:
        """Wait until the worker has imported the target; AdapterError when it cannot."""
        if self._ready:
            return
        try:
            if not self.connection.poll(START_TIMEOUT_S):
                raise AdapterError(
                    f"pipeline.target: importing it took longer than {START_TIMEOUT_S:g} s"
                )
            kind, detail = self.connection.recv()
        except EOFError:
            raise AdapterError(
                f"pipeline.target: the worker process exited with code {self._exit_code()} "
                "while importing it"
            ) from None
        if kind == "refused":
            raise AdapterError(detail)
        self._ready = True

    def call(self, case: Case, timeout_s: float) -> Any:
        self.connection.send((case.input, case))
        if not self.connection.poll(timeout_s):
            raise CaseTimeout(f"no result after {timeout_s:g} s")
        try:
            kind, value = self.connection.recv()
        except EOFError:
            raise WorkerLost(
                f"the pipeline ended its worker process (exit code {self._exit_code()})"
            ) from None
        if kind == "raised":
            raise value
        if kind == "named":
            name, message = value
            if name in ("SystemExit", "KeyboardInterrupt", "GeneratorExit"):
                # sys.exit() in a pipeline must not end the gate (with exit code 0, "passed").
                raise RuntimeError(f"{name}: {message}")
            # A stand-in of the same name, so the case's error reads as in the pipeline.
            raise type(name, (Exception,), {})(message)
        return value

    def _exit_code(self) -> int | None:
        self.process.join(5)
        return self.process.exitcode

    def kill(self) -> None:
        # The group first: the pipeline's own children, then the worker whatever its group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid or 0, signal.SIGKILL)
        self.process.kill()
        self.process.join(5)
        self.connection.close()


class _Workers:
    """Warm workers, taken one per call; a worker whose call failed to finish is replaced.

    A call with no idle worker starts one, unless as many are starting as there are CPUs: then
    it takes the first worker that is free or ready. So fast pipelines are served by the few
    workers they need instead of waiting for ``concurrency`` imports, and slow ones grow the
    pool to one per concurrent call (the runner makes at most ``concurrency``).
    """

    def __init__(self, target: str, root: Path) -> None:
        self._target, self._root = target, root
        self._idle: queue.SimpleQueue[_Worker] = queue.SimpleQueue()
        self._all: set[_Worker] = set()
        self._lock = threading.Lock()
        self._starting = 0
        self._max_starting = os.cpu_count() or 1
        # One at once, so a wrong target is an input error before the first case.
        first = self._start()
        try:
            first.ready()
        except AdapterError:
            self.close()
            raise
        self._idle.put(first)

    def _start(self) -> _Worker:
        worker = _Worker(self._target, self._root)
        with self._lock:
            self._all.add(worker)
        return worker

    def _discard(self, worker: _Worker) -> None:
        with self._lock:
            self._all.discard(worker)
        worker.kill()

    def _take(self) -> _Worker:
        """An idle worker, or a new one once it has imported the target."""
        while True:
            try:
                return self._idle.get_nowait()
            except queue.Empty:
                pass
            with self._lock:
                start = self._starting < self._max_starting
                self._starting += start
            if not start:
                with contextlib.suppress(queue.Empty):
                    return self._idle.get(timeout=0.01)
                continue
            try:
                worker = self._start()
                try:
                    worker.ready()
                except AdapterError:
                    self._discard(worker)
                    raise
                return worker
            finally:
                with self._lock:
                    self._starting -= 1

    def call(self, case: Case, timeout_s: float) -> Any:
        worker = self._take()
        try:
            result = worker.call(case, timeout_s)
        except (CaseTimeout, WorkerLost, OSError):
            # Stuck, dead or broken: never handed to another case.
            self._discard(worker)
            raise
        except BaseException:
            self._idle.put(worker)
            raise
        self._idle.put(worker)
        return result

    def close(self) -> None:
        with self._lock:
            workers, self._all = list(self._all), set()
        for worker in workers:
            worker.kill()


# --- in-thread ----------------------------------------------------------------------------------


class _InThread:
    """Calls in the gate's process. A Python call cannot be interrupted: on timeout the case is
    recorded as timed out and the call is left to finish in its daemon thread, its result
    discarded."""

    def __init__(self, function: Callable[[Any, Case], Any]) -> None:
        self._function = function
        self._helpers = _Helpers()

    def call(self, case: Case, timeout_s: float) -> Any:
        future = self._helpers.submit(lambda: self._function(case.input, case))
        # Not future.result(timeout): a TimeoutError raised by the pipeline would look like ours.
        if not wait([future], timeout_s).done:
            raise CaseTimeout(f"no result after {timeout_s:g} s")
        return future.result()

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
