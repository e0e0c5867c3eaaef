"""The run stage against unlucky and hostile pipelines: deadlines that hold, replies paired with
their cases, outputs that cannot be written, and secrets that never reach a file or a stream.

Elapsed times are measured only to bound them: the spec is "within ``timeout_s`` + 1 s".
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from builders import ran
from fake_openai import Canned, FakeOpenAI, completion
from local_server import LocalServer

from gate import action
from gate.llm import ChatClient
from gate.load.config import CommandPipeline, HttpPipeline, PythonPipeline, Runner, load_config
from gate.load.dataset import Case
from gate.pipeline import RunOptions, World, run
from gate.retry import CaseTimeout
from gate.run.adapters.command import CommandAdapter
from gate.run.adapters.http import HttpAdapter
from gate.run.adapters.python import PythonAdapter
from gate.run.records import Record
from gate.run.runner import run_one
from gate.scrub import DEFAULT_PATTERNS, Scrubber, secret_values

PIPELINES = Path(__file__).resolve().parent / "pipelines"
CHATTY = [sys.executable, str(PIPELINES / "chatty.py")]


def utc_now() -> datetime:
    return datetime(2025, 1, 1, tzinfo=UTC)


def case(case_id: str = "c1", question: Any = "q") -> Case:
    return Case.model_validate({"id": case_id, "input": question})


def settings(**values: Any) -> Runner:
    return Runner.model_validate({"retries": 0, "concurrency": 2, **values})


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def gone(pid: int) -> bool:
    deadline = time.monotonic() + 5
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    return not alive(pid)


# --- deadlines: http and openai ---------------------------------------------------------------


class Trickle(LocalServer):
    """Answers every POST with ``head`` at once, then ``trickled`` one byte every 0.2 s: never
    silent long enough for a read timeout, never finished."""

    def __init__(self, head: bytes, trickled: bytes) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                try:
                    self.wfile.write(head)
                    for byte in trickled:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        time.sleep(0.2)
                except OSError:
                    pass  # the client gave up: what the test wants

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        super().__init__(server)
        self.url = f"http://127.0.0.1:{self.port}/v1"


HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"


def trickling_body() -> Trickle:
    return Trickle(HEAD, b" " * 1000)


def trickling_head() -> Trickle:
    return Trickle(b"", b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 10_000)


def test_http__a_trickling_server_times_out_at_the_deadline() -> None:
    with trickling_body() as server:
        adapter = HttpAdapter(HttpPipeline(adapter="http", url=server.url), 1, {})
        begin = time.monotonic()
        record = run_one(adapter, case(), 0, settings(timeout_s=1), now=utc_now)
        elapsed = time.monotonic() - begin
        adapter.close()
    assert record.status == "timeout", record.error
    assert elapsed < 1 + 1


def test_openai__a_trickling_server_times_out_at_the_deadline() -> None:
    with trickling_body() as server:
        client = ChatClient(server.url, "sk-never-shown-0123456789abcdef", {}, 1)
        begin = time.monotonic()
        with pytest.raises(CaseTimeout):
            client.complete("m", {"messages": [{"role": "user", "content": "q"}]}, 1.0)
        elapsed = time.monotonic() - begin
        client.close()
    assert elapsed < 1 + 1


# --- python pipelines in worker processes -----------------------------------------------------


@pytest.fixture
def hostile() -> Iterator[Any]:
    made: list[PythonAdapter] = []

    def make(name: str) -> PythonAdapter:
        spec = PythonPipeline(adapter="python", target=f"hostile:{name}")
        made.append(PythonAdapter(spec, PIPELINES))
        return made[-1]

    yield make
    for adapter in made:
        adapter.close()


def test_python__a_gil_holding_loop_is_killed_at_the_deadline(hostile: Any) -> None:
    adapter = hostile("gil_loop")
    before = run_one(adapter, case("a", "before"), 0, settings(), now=utc_now)
    begin = time.monotonic()
    spun = run_one(adapter, case("b", "spin"), 0, settings(timeout_s=1), now=utc_now)
    elapsed = time.monotonic() - begin
    after = run_one(adapter, case("c", "after"), 0, settings(), now=utc_now)
    assert (spun.status, spun.error) == ("timeout", "CaseTimeout: no result after 1 s")
    assert elapsed < 1 + 1
    assert after.output.answer == "echo: after"
    assert not alive(before.raw_output["pid"])  # the spinning worker was killed, then replaced
    assert after.raw_output["pid"] != before.raw_output["pid"]


def test_python__os_exit_is_the_case_error_not_the_gate_exit(hostile: Any) -> None:
    adapter = hostile("exit_process")
    records = ran(
        [case("a", "before"), case("b", "exit"), case("c", "after")],
        adapter,
        settings(concurrency=1),
        now=utc_now,
    )
    assert [r.status for r in records] == ["ok", "error", "ok"]
    assert records[1].error == ("WorkerLost: the pipeline ended its worker process (exit code 0)")
    assert records[2].output.answer == "echo: after"


def test_python__the_pipeline_s_children_die_with_its_worker(hostile: Any, tmp_path: Path) -> None:
    adapter = hostile("grandchild")
    pid_file = tmp_path / "pid"
    record = run_one(adapter, case("a", str(pid_file)), 0, settings(timeout_s=1), now=utc_now)
    assert record.status == "timeout"
    assert gone(int(pid_file.read_text()))


PROBLEMS = {
    "deep": "nested deeper than 100",
    "tuple-key": "a tuple key, not a string",
    "huge-int": "an integer over 100 digits",
    "nan": "nan is not JSON",
    "object": "output.answer: a object",
}


@pytest.mark.parametrize("isolation", ["process", "thread"])
def test_unserialisable_output__is_that_case_s_error(isolation: str) -> None:
    spec = PythonPipeline(adapter="python", target="hostile:unserialisable", isolation=isolation)
    adapter = PythonAdapter(spec, PIPELINES)
    cases = [case(question, question) for question in PROBLEMS] + [case("fine", "q")]
    try:
        records = ran(cases, adapter, settings(), now=utc_now)
    finally:
        adapter.close()
    assert [r.status for r in records] == ["error"] * len(PROBLEMS) + ["ok"]
    for record, problem in zip(records, PROBLEMS.values(), strict=False):
        assert record.error is not None and problem in record.error, record.error


def test_unserialisable_output__the_run_still_writes_its_report(tmp_path: Path) -> None:
    (tmp_path / "golden.jsonl").write_text(
        "".join(json.dumps({"id": q, "input": q}) + "\n" for q in ("deep", "nan", "fine")),
        encoding="utf-8",
    )
    pipeline = {"adapter": "python", "target": "hostile:unserialisable", "isolation": "thread"}
    config = {"dataset": "golden.jsonl", "pipeline": pipeline, "runner": {"retries": 0}}
    (tmp_path / "gate.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    sys.path.insert(0, str(PIPELINES))
    outcome = run(RunOptions(tmp_path / "gate.yml", tmp_path / "out", progress=None))
    assert outcome.report["run"]["errors"] == 2
    lines = (tmp_path / "out" / "records.jsonl").read_text(encoding="utf-8").splitlines()
    statuses = {json.loads(line)["id"]: json.loads(line)["status"] for line in lines}
    assert statuses == {"deep": "error", "nan": "error", "fine": "ok"}


# --- the command protocol ---------------------------------------------------------------------


@pytest.fixture
def chatty() -> Iterator[CommandAdapter]:
    adapter = CommandAdapter(CommandPipeline(adapter="command", command=CHATTY), PIPELINES)
    yield adapter
    adapter.close()


def test_command__banner_and_log_lines_are_the_case_s_log_not_its_output(
    chatty: CommandAdapter,
) -> None:
    cases = [case(f"c{i}", f"question {i}") for i in range(5)]
    records = ran(cases, chatty, settings(concurrency=1), now=utc_now)
    assert [r.output.answer for r in records] == [f"echo: question {i}" for i in range(5)]
    assert records[0].log == (
        "chatty 1.0 — loading model...\n"
        '{"level": "info", "msg": "model loaded"}\n'
        '{"level": "debug", "msg": "got c0"}'
    )
    assert records[1].log == '{"level": "debug", "msg": "got c1"}'
    assert "id" not in records[0].raw_output


def test_command__a_reply_for_another_case_is_an_error_and_the_process_is_replaced(
    chatty: CommandAdapter,
) -> None:
    records = ran(
        [case("a", "before"), case("b", "other-id"), case("c", "after")],
        chatty,
        settings(concurrency=1),
        now=utc_now,
    )
    assert [r.status for r in records] == ["ok", "error", "ok"]
    assert records[1].error is not None
    assert "answered case 'someone-else' while case 'b' was waiting" in records[1].error
    assert records[2].output.answer == "echo: after"


def test_command__a_grandchild_dies_with_the_command(
    chatty: CommandAdapter, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pid"
    question = {"grandchild": str(pid_file)}
    begin = time.monotonic()
    record = run_one(chatty, case("g", question), 0, settings(timeout_s=1), now=utc_now)
    elapsed = time.monotonic() - begin
    assert record.status == "timeout"
    assert elapsed < 1 + 1
    assert gone(int(pid_file.read_text()))
    after = run_one(chatty, case("h", "after"), 0, settings(), now=utc_now)
    assert after.output.answer == "echo: after"


# --- the scrubber -----------------------------------------------------------------------------


def test_scrub__a_secret_straddling_the_cut_leaves_nothing() -> None:
    secret = "opaque-credential-7781-abcdef"
    scrub = Scrubber((secret,), patterns=())
    text = "x" * 190 + secret
    cut = scrub.cut(text, 200)
    assert secret[:5] not in cut and cut.endswith("***")


@pytest.mark.parametrize(
    "leak",
    [
        "sk-proj-abcdefghijklmnop0123456789",
        "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
        "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
        "AKIAIOSFODNN7EXAMPLE",
        "jane.doe@example.com",
        "+44 20 7946 0958",
        "(555) 123-4567",
    ],
)
def test_scrub__default_patterns(leak: str) -> None:
    assert leak not in Scrubber().text(f"before {leak} after")


def test_scrub__the_quick_filter_never_changes_what_is_scrubbed() -> None:
    """The default patterns are tried only on text holding what each requires (scrub.REQUIRED);
    a scrubber with a pattern of its own has no such filter: both scrub every text alike."""
    rng = random.Random(0)
    pieces = ["sk-", "ghp_", "github_pat_", "AKIA", "ASIA", "xoxb-", "Bearer ", "bearer ", "@"]
    pieces += ["+", "(", ")", " ", ".", "-", "_", "a", "Z", "x", "0", "5", "12", "555", "1234"]
    texts = ["".join(rng.choices(pieces, k=rng.randint(1, 30))) for _ in range(20_000)]
    filtered, unfiltered = Scrubber(), Scrubber(patterns=(*DEFAULT_PATTERNS, "(?!)"))
    changed = [t for t in texts if filtered.text(t) != t]
    assert len(changed) > 1000  # the corpus does hold what the patterns match
    assert [filtered.text(t) for t in texts] == [unfiltered.text(t) for t in texts]


def test_scrub__a_value_is_copied_only_where_something_is_scrubbed() -> None:
    scrub = Scrubber(("s3cr3t-token",))
    clean = {"answer": "fine", "ids": ["a", "b"], "usage": {"tokens": 3, "cost": 0.5}, "n": None}
    assert scrub.value(clean) is clean

    leaky = {"keep": {"x": [1, 2]}, "leak": ["ok", "the s3cr3t-token here"], "pair": ("a", "b")}
    before = json.dumps(leaky)
    out = scrub.value(leaky)
    assert out == {
        "keep": {"x": [1, 2]},
        "leak": ["ok", "the *** here"],
        "pair": ["a", "b"],
    }
    assert out["keep"] is leaky["keep"]  # nothing in it changed
    assert json.dumps(leaky) == before  # the value given is never changed
    assert scrub.value({"s3cr3t-token": 1}) == {"***": 1}  # keys too


@pytest.mark.parametrize("kept", ["2025-01-01T12:30:25.123Z", "case-00042", "latency 1234.5 ms"])
def test_scrub__ordinary_text_is_kept(kept: str) -> None:
    assert Scrubber().text(kept) == kept


def test_scrub__secret_values_are_the_named_and_the_secret_looking_variables() -> None:
    env = {"MY_API_KEY": "k" * 20, "ACCESS": "a" * 20, "GITHUB_TOKEN": "t" * 20, "FLAG_TOKEN": "1"}
    assert sorted(secret_values(env, ["ACCESS"])) == ["a" * 20, "k" * 20, "t" * 20]


def test_scrub__redact_in_gate_yml_replaces_the_defaults(tmp_path: Path) -> None:
    (tmp_path / "gate.yml").write_text(
        "dataset: g.jsonl\npipeline: {adapter: replay, path: r.jsonl}\nredact: ['ACME-\\d+']\n"
    )
    scrub = load_config(tmp_path / "gate.yml").scrubber({})
    assert scrub.text("ticket ACME-1234 from jane@example.com") == (
        "ticket *** from jane@example.com"
    )


def test_scrub__a_bad_redact_pattern_is_an_input_error(tmp_path: Path) -> None:
    from gate.errors import ConfigError

    (tmp_path / "gate.yml").write_text(
        "dataset: g.jsonl\npipeline: {adapter: replay, path: r.jsonl}\nredact: ['(unclosed']\n"
    )
    with pytest.raises(ConfigError, match=r"gate.yml:3: redact: '\(unclosed' is not a regular"):
        load_config(tmp_path / "gate.yml")


def every_file(folder: Path) -> str:
    return "".join(p.read_text(encoding="utf-8") for p in sorted(folder.rglob("*")) if p.is_file())


def test_openai__a_server_echoing_the_key_puts_it_in_no_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = "opaque-credential-5521-zyxw"  # matches no pattern: only knowing it scrubs it
    (tmp_path / "prompt.md").write_text(
        "---\nversion: v1\nmodel: fake-model\n---\nuser:\n{{ input }}\n", encoding="utf-8"
    )
    (tmp_path / "golden.jsonl").write_text('{"id": "a", "input": "q"}\n', encoding="utf-8")
    with FakeOpenAI(key=key) as fake:
        fake.responder = lambda body: Canned(
            body=completion(f"you sent Authorization: Bearer {key}; mail jane@example.com")
        )
        fake.fail(401, message=f"{'x' * 180}key {key} is not valid")
        pipeline = {"adapter": "openai", "base_url": fake.url, "prompt": "prompt.md"}
        pipeline["api_key_env"] = "MODEL_ACCESS"
        body = {"dataset": "golden.jsonl", "pipeline": pipeline, "runner": {"repeats": 2}}
        (tmp_path / "gate.yml").write_text(yaml.safe_dump(body), encoding="utf-8")
        world = World(env={"MODEL_ACCESS": key})
        run(RunOptions(tmp_path / "gate.yml", tmp_path / "out", world=world, progress=sys.stderr))
    written = every_file(tmp_path / "out")
    out, err = capsys.readouterr()
    assert "you sent Authorization" in written  # the echo itself was recorded...
    for secret in (key, key[:10], "jane@example.com"):
        assert secret not in written + out + err  # ...without what it echoed


def test_http__a_header_secret_echoed_in_a_failure_is_scrubbed_before_the_cut(
    tmp_path: Path,
) -> None:
    secret = "hdr-credential-0044-qrst"

    class Echo(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            body = ("y" * 190 + str(self.headers.get("X-Api"))).encode()
            self.send_response(500)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    with LocalServer(ThreadingHTTPServer(("127.0.0.1", 0), Echo)) as server:
        spec = HttpPipeline(
            adapter="http", url=f"http://127.0.0.1:{server.port}", headers={"X-Api": "${HDR}"}
        )
        adapter = HttpAdapter(spec, 1, {"HDR": secret})
        record: Record = run_one(adapter, case(), 0, settings(), now=utc_now)
        adapter.close()
    assert record.error is not None and "HTTP 500" in record.error
    assert secret[:6] not in record.error


# --- the GitHub token and the pipeline --------------------------------------------------------


def probe_workspace(tmp_path: Path, token: str) -> tuple[Path, dict[str, str]]:
    """A workspace whose python pipeline looks for ``token`` in its own os.environ and in
    /proc/<pid>/environ of itself and every ancestor; and the environment of a Docker action."""
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    (workspace / "golden.jsonl").write_text(
        json.dumps({"id": "probe", "input": token}) + "\n", encoding="utf-8"
    )
    pipeline = {"adapter": "python", "target": "hostile:environ_probe"}
    (workspace / "gate.yml").write_text(
        yaml.safe_dump({"dataset": "golden.jsonl", "pipeline": pipeline, "redact": []}),
        encoding="utf-8",
    )
    (workspace / "hostile.py").write_text((PIPELINES / "hostile.py").read_text())
    env = {
        **os.environ,
        "INPUT_CONFIG": "gate.yml",
        "INPUT_GITHUB-TOKEN": token,
        "INPUT_COMMENT": "false",
        "INPUT_OUTPUT-DIR": "gate-report",
        "ACTIONS_RUNTIME_TOKEN": token,
        "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": "push",
        "GITHUB_WORKSPACE": str(workspace),
    }
    return workspace, env


def probed(workspace: Path) -> dict[str, Any]:
    [line] = (workspace / "gate-report" / "records.jsonl").read_text().splitlines()
    record: dict[str, Any] = json.loads(line)
    assert record["status"] == "ok", record["error"]
    return record


TOKEN = "ghs_" + "T0kenValue" * 4


def test_action__the_pipeline_finds_the_token_in_no_environment(tmp_path: Path) -> None:
    workspace, env = probe_workspace(tmp_path, TOKEN)
    action.main(env, world=World(env=env))
    assert probed(workspace)["output"]["answer"] == "clean"


def test_action__the_container_s_entry_point_leaves_the_token_in_no_process(
    tmp_path: Path,
) -> None:
    """As in the container: the token in the initial environment block of `gate action`."""
    workspace, env = probe_workspace(tmp_path, TOKEN)
    done = subprocess.run(
        [sys.executable, "-m", "gate", "action"],
        env=env,
        cwd=workspace,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert probed(workspace)["output"]["answer"] == "clean"
    assert TOKEN not in done.stdout.replace(f"::add-mask::{TOKEN}", "") + done.stderr


def test_http__a_server_trickling_its_headers_times_out_at_the_deadline() -> None:
    with trickling_head() as server:
        adapter = HttpAdapter(HttpPipeline(adapter="http", url=server.url), 1, {})
        begin = time.monotonic()
        record = run_one(adapter, case(), 0, settings(timeout_s=1), now=utc_now)
        elapsed = time.monotonic() - begin
        adapter.close()
    assert (record.status, record.error) == (
        "timeout",
        f"CaseTimeout: no reply from {server.url} after 1 s",
    )
    assert elapsed < 1 + 1
