"""The adapters against real pipelines: Python functions, a local HTTP server, a subprocess
speaking JSON lines, and replay files. Cases go through ``run_one`` / ``run_cases``, as in a run,
so what is checked is the record a user reads; waits between retries go to a fake ``sleep``."""

from __future__ import annotations

import json
import os
import socket
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from builders import run_all, runner, utc_now
from http_pipeline import Answer, PipelineServer

from gate.errors import AdapterError, ConfigError, DatasetError
from gate.load.config import CommandPipeline, HttpPipeline, PythonPipeline, ReplayPipeline
from gate.load.dataset import Case
from gate.retry import retry_after_seconds
from gate.run.adapters.command import CommandAdapter
from gate.run.adapters.http import HttpAdapter
from gate.run.adapters.python import PythonAdapter
from gate.run.adapters.replay import ReplayAdapter
from gate.run.records import Record
from gate.run.runner import run_one

PIPELINES = Path(__file__).resolve().parent / "pipelines"
ECHO = [sys.executable, str(PIPELINES / "echo.py")]


def case(case_id: str = "c1", question: Any = "q", **fields: Any) -> Case:
    return Case.model_validate({"id": case_id, "input": question, **fields})


@pytest.fixture(autouse=True)
def _restore_sys_path(monkeypatch: pytest.MonkeyPatch) -> None:
    # The python adapter puts the config's folder on sys.path; keep that inside each test.
    monkeypatch.setattr(sys, "path", list(sys.path))


# --- python -----------------------------------------------------------------------------------

PythonAdapterFactory = Any


@pytest.fixture
def functions() -> Iterator[PythonAdapterFactory]:
    """Adapters on tests/pipelines/pipeline_functions.py; calls still waiting end with the test."""
    made: list[PythonAdapter] = []

    def make(name: str) -> PythonAdapter:
        adapter = PythonAdapter(
            PythonPipeline(
                adapter="python", target=f"pipeline_functions:{name}", isolation="thread"
            ),
            PIPELINES,
        )
        made.append(adapter)
        return adapter

    yield make
    release = sys.modules["pipeline_functions"].RELEASE
    release.set()
    for adapter in made:
        adapter.close()
    release.clear()


def test_python__target_in_the_config_folder_called_with_input_and_case(tmp_path: Path) -> None:
    package = tmp_path / "team_pipeline_a1"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "rag.py").write_text(
        textwrap.dedent(
            """
            def answer(question, case):
                return {"answer": question["text"].upper(), "id": case.id, "tags": list(case.tags)}
            """
        )
    )
    adapter = PythonAdapter(
        PythonPipeline(adapter="python", target="team_pipeline_a1.rag:answer"), tmp_path
    )
    try:
        record = run_one(adapter, case("k1", {"text": "hi"}, tags=["x"]), 0, runner(), now=utc_now)
    finally:
        adapter.close()
        sys.modules.pop("team_pipeline_a1.rag", None)
        sys.modules.pop("team_pipeline_a1", None)
    assert record.status == "ok"
    assert record.raw_output == {"answer": "HI", "id": "k1", "tags": ["x"]}
    assert record.output.answer == "HI"


def test_python__dotted_attribute_target(functions: PythonAdapterFactory) -> None:
    record = run_one(functions("chain.invoke"), case(question="q"), 0, runner(), now=utc_now)
    assert (record.status, record.output.answer) == ("ok", "chain: q")


def test_python__exception_becomes_the_case_error_without_retry(
    functions: PythonAdapterFactory,
    sleeps: list[float],
) -> None:
    record = run_one(
        functions("fail"), case(question="mars"), 0, runner(), sleep=sleeps.append, now=utc_now
    )
    assert record.status == "error"
    assert record.error is not None
    assert record.error.startswith("KeyError:") and "no document for 'mars'" in record.error
    assert (record.attempts, sleeps) == (1, [])


def test_python__pipeline_timeout_error_is_its_error_not_our_timeout(
    functions: PythonAdapterFactory,
) -> None:
    record = run_one(functions("own_timeout"), case(), 0, runner(), now=utc_now)
    assert record.status == "error"
    assert record.error == "TimeoutError: the vector store did not answer"


def test_python__sys_exit_in_the_pipeline_is_a_case_error(
    functions: PythonAdapterFactory,
) -> None:
    record = run_one(functions("exit_zero"), case(), 0, runner(), now=utc_now)
    assert record.status == "error"
    assert record.error is not None and "SystemExit" in record.error


def test_python__slow_function_times_out_and_is_retried(
    functions: PythonAdapterFactory, sleeps: list[float]
) -> None:
    record = run_one(
        functions("wait_for_release"),
        case(),
        0,
        runner(timeout_s=0.05, retries=2),
        sleep=sleeps.append,
        now=utc_now,
    )
    assert record.status == "timeout"
    assert record.attempts == 3
    assert len(sleeps) == 2
    assert record.error == "CaseTimeout: no result after 0.05 s"


def test_python__a_timed_out_call_does_not_hold_up_the_next(
    functions: PythonAdapterFactory,
) -> None:
    adapter = functions("slow_if_asked")
    assert run_one(
        adapter, case(question="slow"), 0, runner(timeout_s=0.05, retries=0), now=utc_now
    ).status == ("timeout")
    record = run_one(adapter, case(question="next"), 0, runner(timeout_s=2), now=utc_now)
    assert (record.status, record.output.answer) == ("ok", "echo: next")


def test_python__helper_threads_are_reused_and_end_on_close(
    functions: PythonAdapterFactory,
) -> None:
    settle("gate-python")  # helpers of earlier tests' adapters, closed but maybe not yet ended
    adapter = functions("answer")
    for i in range(20):
        assert run_one(adapter, case(f"c{i}"), 0, runner(), now=utc_now).status == "ok"
    assert threads("gate-python") == 1
    adapter.close()
    assert settle("gate-python") == 0


def threads(prefix: str) -> int:
    return sum(t.name.startswith(prefix) for t in threading.enumerate())


def settle(prefix: str) -> int:
    """Wait (briefly) for threads named ``prefix...`` to end; how many are left."""
    deadline = time.monotonic() + 2
    while threads(prefix) and time.monotonic() < deadline:
        time.sleep(0.01)
    return threads(prefix)


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("no_such_module_xyz:answer", "cannot import 'no_such_module_xyz'"),
        ("pipeline_functions:nope", "'pipeline_functions' has no 'nope'"),
        ("pipeline_functions:chain.nope", "has no 'chain.nope'"),
        ("pipeline_functions:NOT_CALLABLE", "pipeline_functions:NOT_CALLABLE is not a function"),
    ],
)
def test_python__bad_target_is_an_adapter_error_at_construction(target: str, message: str) -> None:
    with pytest.raises(AdapterError, match=r"^pipeline\.target: ") as raised:
        PythonAdapter(PythonPipeline(adapter="python", target=target), PIPELINES)
    assert message in str(raised.value)


def test_python__module_failing_on_import_is_an_adapter_error(tmp_path: Path) -> None:
    (tmp_path / "broken_pipeline_b7.py").write_text("import json\nraise RuntimeError('no key')\n")
    with pytest.raises(AdapterError, match="importing 'broken_pipeline_b7' failed: RuntimeError"):
        PythonAdapter(PythonPipeline(adapter="python", target="broken_pipeline_b7:f"), tmp_path)


# --- http -------------------------------------------------------------------------------------


def http(server: PipelineServer, concurrency: int = 4, **headers: str) -> HttpAdapter:
    return HttpAdapter(
        HttpPipeline(adapter="http", url=server.url, headers=headers),
        concurrency=concurrency,
        env=os.environ,
    )


def test_http__posts_id_and_input_only() -> None:
    secret = case(
        "k1",
        {"question": "reset key?", "lang": "en"},
        expected={"answer": "the secret answer", "must_include": ["portal"]},
        metadata={"owner": "team"},
    )
    with PipelineServer([Answer(200, {"answer": "rotate it", "retrieved": ["d1"]})]) as server:
        adapter = http(server)
        record = run_one(adapter, secret, 0, runner(), now=utc_now)
        adapter.close()
    assert record.status == "ok"
    assert record.output.retrieved_ids() == ["d1"]
    (seen,) = server.requests
    assert seen.body == {"id": "k1", "input": {"question": "reset key?", "lang": "en"}}
    assert seen.headers["Content-Type"] == "application/json"


def test_http__500_is_retried_then_succeeds(sleeps: list[float]) -> None:
    with PipelineServer([Answer(500, {"error": "overloaded"}), Answer(200)]) as server:
        adapter = http(server)
        record = run_one(adapter, case(), 0, runner(), sleep=sleeps.append, now=utc_now)
        adapter.close()
    assert (record.status, record.attempts, len(server.requests)) == ("ok", 2, 2)
    assert len(sleeps) == 1 and 0.25 <= sleeps[0] <= 0.5  # first backoff: 0.5 s, jittered


def test_http__429_retry_after_is_the_wait_asked_of_the_runner(sleeps: list[float]) -> None:
    script = [Answer(429, {"error": "slow down"}, headers={"Retry-After": "1"}), Answer(200)]
    with PipelineServer(script) as server:
        adapter = http(server)
        record = run_one(adapter, case(), 0, runner(), sleep=sleeps.append, now=utc_now)
        adapter.close()
    assert (record.status, record.attempts) == ("ok", 2)
    assert sleeps == [1.0]


def test_http__retries_exhausted_is_an_error(sleeps: list[float]) -> None:
    with PipelineServer(default=Answer(503, {"error": "down"})) as server:
        adapter = http(server)
        record = run_one(adapter, case(), 0, runner(retries=2), sleep=sleeps.append, now=utc_now)
        adapter.close()
    assert (record.status, record.attempts, len(server.requests)) == ("error", 3, 3)
    assert record.error == f"Transient: HTTP 503 from {server.url}: down"
    assert len(sleeps) == 2


def test_http__404_is_an_error_without_retry() -> None:
    with PipelineServer([Answer(404, {"detail": "no such route"})]) as server:
        adapter = http(server)
        record = run_one(adapter, case(), 0, runner(retries=2), sleep=lambda s: None, now=utc_now)
        adapter.close()
    assert (record.status, record.attempts, len(server.requests)) == ("error", 1, 1)
    assert (
        record.error is not None and "HTTP 404" in record.error and "no such route" in record.error
    )


def test_http__a_secret_header_quoted_back_by_the_server_is_scrubbed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PIPELINE_TOKEN", "s3cret-token")
    rejected = {"error": {"message": "bad credentials: Bearer s3cret-token"}}
    with PipelineServer([Answer(401, rejected)]) as server:
        adapter = http(server, Authorization="Bearer ${PIPELINE_TOKEN}")
        record = run_one(adapter, case(), 0, runner(retries=0), sleep=lambda s: None, now=utc_now)
        adapter.close()
    assert record.error == f"HttpRefused: HTTP 401 from {server.url}: bad credentials: Bearer ***"


def test_http__non_json_reply_is_an_error() -> None:
    with PipelineServer([Answer(200, b"<html>Bad gateway</html>")]) as server:
        adapter = http(server)
        record = run_one(adapter, case(), 0, runner(), now=utc_now)
        adapter.close()
    assert record.status == "error"
    assert record.error is not None and "not JSON" in record.error and "<html>" in record.error


def test_http__read_timeout_is_a_timeout(sleeps: list[float]) -> None:
    with PipelineServer(default=Answer(200, delay_s=10)) as server:
        adapter = http(server)
        record = run_one(
            adapter, case(), 0, runner(timeout_s=0.1, retries=1), sleep=sleeps.append, now=utc_now
        )
        adapter.close()
    assert (record.status, record.attempts, len(sleeps)) == ("timeout", 2, 1)
    assert record.error is not None and record.error.startswith("CaseTimeout: no reply from")


def test_http__dropped_connection_is_transient() -> None:
    with PipelineServer([Answer(drop=True), Answer(200, {"answer": "second try"})]) as server:
        adapter = http(server)
        record = run_one(adapter, case(), 0, runner(), sleep=lambda s: None, now=utc_now)
        adapter.close()
    assert (record.status, record.attempts, record.output.answer) == ("ok", 2, "second try")


def test_http__connection_refused_is_retried_then_an_error(sleeps: list[float]) -> None:
    with socket.socket() as probe:  # a port nobody listens on once this socket is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/answer"
    adapter = HttpAdapter(HttpPipeline(adapter="http", url=url), concurrency=2, env=os.environ)
    record = run_one(adapter, case(), 0, runner(retries=2), sleep=sleeps.append, now=utc_now)
    adapter.close()
    assert (record.status, record.attempts, len(sleeps)) == ("error", 3, 2)
    assert record.error == f"Transient: cannot reach {url}: ConnectionError"


def test_http__header_variables_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATE_TEST_TOKEN", "s3cret")
    with PipelineServer() as server:
        adapter = http(server, Authorization="Bearer ${GATE_TEST_TOKEN}", **{"X-Team": "search"})
        run_one(adapter, case(), 0, runner(), now=utc_now)
        adapter.close()
    (seen,) = server.requests
    assert seen.headers["Authorization"] == "Bearer s3cret"
    assert seen.headers["X-Team"] == "search"


def test_http__unset_header_variable_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GATE_TEST_UNSET", raising=False)
    spec = HttpPipeline(
        adapter="http", url="http://127.0.0.1:9/", headers={"Authorization": "${GATE_TEST_UNSET}"}
    )
    with pytest.raises(ConfigError, match=r"pipeline.headers.Authorization: .*GATE_TEST_UNSET"):
        HttpAdapter(spec, concurrency=1, env=os.environ)


def test_http__pool_reuses_connections_across_cases() -> None:
    cases = [case(f"c{i}") for i in range(50)]
    with PipelineServer(default=Answer(200, {"answer": "ok"}, delay_s=0.002)) as server:
        adapter = http(server, concurrency=4)
        records = run_all(adapter, cases, concurrency=4)
        adapter.close()
    assert all(r.status == "ok" for r in records)
    assert len(server.requests) == 50
    assert server.max_in_flight <= 4
    assert server.connections <= 8  # one per worker, some slack; never one per case


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 3 ", 3.0),
        ("Wed, 21 Oct 2015 07:28:30 GMT", 30.0),  # 30 s after `now`
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),  # in the past: no wait
        ("soon", None),
        ("-5", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_seconds(value: str | None, expected: float | None) -> None:
    now = 1445412480.0  # Wed, 21 Oct 2015 07:28:00 GMT
    assert retry_after_seconds(value, now=now) == expected


# --- command ----------------------------------------------------------------------------------


@pytest.fixture
def command() -> Iterator[Any]:
    made: list[CommandAdapter] = []

    def make(processes: int = 1, program: list[str] = ECHO) -> CommandAdapter:
        adapter = CommandAdapter(
            CommandPipeline(adapter="command", command=program, processes=processes), PIPELINES
        )
        made.append(adapter)
        return adapter

    yield make
    for adapter in made:
        adapter.close()


def pid_of(record: Record) -> int:
    assert record.status == "ok", record.error
    return int(record.raw_output["pid"])


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_command__one_process_serves_every_case(command: Any) -> None:
    cases = [case(f"c{i}", f"question {i}", expected={"answer": "hidden"}) for i in range(30)]
    records = run_all(command(processes=1), cases, concurrency=4)
    assert [r.output.answer for r in records] == [f"echo: question {i}" for i in range(30)]
    assert all(r.raw_output["keys"] == ["id", "input"] for r in records)
    pids = {pid_of(r) for r in records}
    assert len(pids) == 1 and pids != {os.getpid()}


def test_command__processes_share_the_cases(command: Any) -> None:
    records = run_all(command(processes=3), [case(f"c{i}") for i in range(30)], concurrency=6)
    assert 1 <= len({pid_of(r) for r in records}) <= 3


def test_command__malformed_line_fails_that_case_only(command: Any) -> None:
    adapter = command()
    first = run_one(adapter, case("a", "before"), 0, runner(), now=utc_now)
    bad = run_one(adapter, case("b", "malformed"), 0, runner(), now=utc_now)
    after = run_one(adapter, case("c", "after"), 0, runner(), now=utc_now)
    assert bad.status == "error"
    assert bad.error == "malformed output: answer: Input should be a valid string"
    assert bad.log == "this is not JSON"  # a line that is not a reply is the case's log
    assert bad.attempts == 1
    assert pid_of(after) == pid_of(first)  # the same process carries on
    assert after.output.answer == "echo: after"


def test_command__hang_times_out_and_the_process_is_replaced(command: Any) -> None:
    adapter = command()
    first = run_one(adapter, case("a", "before"), 0, runner(), now=utc_now)
    hung = run_one(adapter, case("b", "hang"), 0, runner(timeout_s=0.2, retries=0), now=utc_now)
    after = run_one(adapter, case("c", "after"), 0, runner(), now=utc_now)
    assert (hung.status, hung.error) == ("timeout", "CaseTimeout: no output line after 0.2 s")
    assert after.output.answer == "echo: after"
    assert pid_of(after) != pid_of(first)
    assert not alive(pid_of(first))  # killed and reaped, not left behind


def test_command__crash_reports_exit_code_and_stderr_then_replaced(command: Any) -> None:
    adapter = command()
    first = run_one(adapter, case("a", "before"), 0, runner(), now=utc_now)
    crashed = run_one(adapter, case("b", "crash"), 0, runner(), sleep=lambda s: None, now=utc_now)
    after = run_one(adapter, case("c", "after"), 0, runner(), now=utc_now)
    assert crashed.status == "error"
    assert crashed.attempts == 1  # the case crashed it: running it again would crash it again
    assert crashed.error == (
        "RuntimeError: the pipeline process exited with code 3: "
        "echo.py: fatal: the model file is corrupt"
    )
    assert after.output.answer == "echo: after"
    assert pid_of(after) != pid_of(first)


def test_command__process_gone_before_the_case_is_retried_on_a_new_one(
    command: Any, sleeps: list[float]
) -> None:
    adapter = command()
    last = run_one(adapter, case("a", "answer-then-exit"), 0, runner(), now=utc_now)
    gone = pid_of(last)
    deadline = time.monotonic() + 5
    while not _exited(gone) and time.monotonic() < deadline:
        time.sleep(0.01)
    record = run_one(
        adapter, case("b", "next"), 0, runner(retries=1), sleep=sleeps.append, now=utc_now
    )
    assert (record.status, record.attempts, len(sleeps)) == ("ok", 2, 1)
    assert pid_of(record) != gone


def _exited(pid: int) -> bool:
    """The process has exited (a zombie until its parent reaps it), so its pipes are closed."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def test_command__missing_program_is_an_adapter_error(command: Any) -> None:
    with pytest.raises(AdapterError, match="cannot start 'no-such-pipeline-xyz'"):
        command(program=["no-such-pipeline-xyz", "--serve"])


def test_command__close_leaves_no_process_or_reader_behind(command: Any) -> None:
    assert settle("gate-command") == 0
    adapter = command(processes=3)
    records = run_all(adapter, [case(f"c{i}") for i in range(12)], concurrency=3)
    hung = run_one(adapter, case("h", "hang"), 0, runner(timeout_s=0.1, retries=0), now=utc_now)
    assert hung.status == "timeout"
    pids = {pid_of(r) for r in records}
    adapter.close()
    assert not any(alive(pid) for pid in pids)
    assert threads("gate-command") == 0  # the readers of every process, replaced ones included


# --- replay -----------------------------------------------------------------------------------


def replay(tmp_path: Path, *rows: Any) -> ReplayAdapter:
    lines = [row if isinstance(row, str) else json.dumps(row) for row in rows]
    (tmp_path / "outputs.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return ReplayAdapter(ReplayPipeline(adapter="replay", path=Path("outputs.jsonl")), tmp_path)


def test_replay__serves_by_id_with_the_recorded_latency(tmp_path: Path) -> None:
    adapter = replay(
        tmp_path,
        {"id": "a", "output": {"answer": "A"}, "latency_ms": 812.5, "error": None},
        {"id": "b", "output": {"answer": "B"}, "latency_ms": 20.0},
    )
    records = run_all(adapter, [case("b"), case("a")])
    assert [(r.case_id, r.output.answer, r.latency_ms) for r in records] == [
        ("b", "B", 20.0),
        ("a", "A", 812.5),
    ]


def test_replay__no_recorded_latency_is_unknown_not_the_time_to_read_a_file(
    tmp_path: Path,
) -> None:
    adapter = replay(tmp_path, {"id": "a", "output": {"answer": "A"}})
    [record] = run_all(adapter, [case("a")])
    assert (record.status, record.latency_ms) == ("ok", None)


def test_replay__missing_id_is_an_error(tmp_path: Path) -> None:
    adapter = replay(tmp_path, {"id": "a", "output": {"answer": "A"}})
    record = run_one(adapter, case("zzz"), 0, runner(), now=utc_now)
    assert record.status == "error"
    assert record.error == "LookupError: no recorded output for this case in outputs.jsonl"


def test_replay__recorded_error_is_the_case_error(tmp_path: Path) -> None:
    adapter = replay(tmp_path, {"id": "a", "output": None, "latency_ms": 30000, "error": "timeout"})
    record = run_one(adapter, case("a"), 0, runner(), now=utc_now)
    assert (record.status, record.error, record.latency_ms, record.attempts) == (
        "error",
        "timeout",
        30000,
        1,
    )


def test_replay__several_lines_for_an_id_are_served_in_turn(tmp_path: Path) -> None:
    adapter = replay(
        tmp_path,
        {"id": "a", "output": {"answer": "first"}},
        {"id": "b", "output": {"answer": "only"}},
        {"id": "a", "output": {"answer": "second"}},
    )
    records = run_all(adapter, [case("a"), case("b")], repeats=3, concurrency=1)
    assert [(r.case_id, r.repeat, r.output.answer) for r in records] == [
        ("a", 0, "first"),
        ("b", 0, "only"),
        ("a", 1, "second"),
        ("b", 1, "only"),
        ("a", 2, "first"),
        ("b", 2, "only"),
    ]


def test_replay__bad_rows_are_reported_with_file_and_line(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as raised:
        replay(
            tmp_path,
            {"id": "a", "output": {"answer": "A"}},
            "",
            {"id": "b", "outptu": {"answer": "B"}},
            "{not json",
            {"id": "c", "latency_ms": "fast"},
        )
    path = tmp_path / "outputs.jsonl"
    lines = str(raised.value).splitlines()
    assert lines[0].startswith(f"{path}:3: outptu: ")
    assert lines[1].startswith(f"{path}:4: invalid JSON: ")
    assert lines[2].startswith(f"{path}:5: latency_ms: ")
    assert len(lines) == 3


def test_replay__bom_and_crlf_are_read(tmp_path: Path) -> None:
    (tmp_path / "outputs.jsonl").write_bytes(
        b'\xef\xbb\xbf{"id": "a", "output": {"answer": "A"}}\r\n{"id": "b", "output": {}}\r\n'
    )
    adapter = ReplayAdapter(ReplayPipeline(adapter="replay", path=Path("outputs.jsonl")), tmp_path)
    assert run_one(adapter, case("a"), 0, runner(), now=utc_now).output.answer == "A"


def test_replay__rows_are_read_again_from_where_they_are_in_the_file(tmp_path: Path) -> None:
    # Multi-byte text before a row, a byte order mark, CRLF, a blank line and a row only the
    # careful path reads (a long integer, kept parsed), served in turn with a plain one.
    long = "1" * 40
    (tmp_path / "outputs.jsonl").write_bytes(
        b"\xef\xbb\xbf"
        + '{"id": "é", "output": {"answer": "café ✓"}}\r\n\r\n'.encode()
        + b'{"id": "b", "output": {"answer": "B1"}, "latency_ms": 5}\n'
        + ('{"id": "b", "output": {"answer": "B2", "n": ' + long + "}}\n").encode()
        + '{"id": "c", "output": {"answer": "ü"}}'.encode()
    )
    adapter = ReplayAdapter(ReplayPipeline(adapter="replay", path=Path("outputs.jsonl")), tmp_path)
    try:
        served = [adapter.call(case(i), 1.0) for i in ("é", "b", "b", "b", "c")]
    finally:
        adapter.close()
    assert [r.output for r in served] == [
        {"answer": "café ✓"},
        {"answer": "B1"},
        {"answer": "B2", "n": int(long)},
        {"answer": "B1"},
        {"answer": "ü"},
    ]
    assert served[1].latency_ms == 5
    with pytest.raises(LookupError):
        adapter.call(case("c"), 1.0)  # closed: the rows went with the run


def test_replay__not_utf8_names_the_byte(tmp_path: Path) -> None:
    (tmp_path / "outputs.jsonl").write_bytes(b'\xef\xbb\xbf{"id":"a"}\n{"id":"\xff"}\n')
    with pytest.raises(DatasetError, match=r"not UTF-8 at byte 18 \(fix: save it as UTF-8\)"):
        ReplayAdapter(ReplayPipeline(adapter="replay", path=Path("outputs.jsonl")), tmp_path)


def test_replay__missing_file_is_a_dataset_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"replay file not found \(fix: check `pipeline.path`\)"):
        ReplayAdapter(ReplayPipeline(adapter="replay", path=Path("nope.jsonl")), tmp_path)
