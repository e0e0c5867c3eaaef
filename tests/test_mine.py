"""``gate mine``: failing runs and production traces become candidate golden cases."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gate.cli import main

EMAIL, PHONE, KEY = "jane.doe@example.com", "+1 415-555-0134", "sk-live0123456789abcdefXYZ"


def trace(trace_id: str, question: str, **fields: Any) -> dict[str, Any]:
    return {
        "trace_id": trace_id,
        "input": question,
        "output": {"answer": f"Sure, mail {EMAIL}"},
        "prompt_version": "rag-v3",
        "model": "gpt-4.1-mini",
        "retrieved_chunks": [{"id": "faq-1", "text": f"call {PHONE}"}],
        "tool_calls": [],
        "latency_ms": 812.0,
        "status": "ok",
        **fields,
    }


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def candidates(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_mine__traces_with_duplicates_and_pii_become_unfinished_candidates(
    example, monkeypatch, capsys
):
    monkeypatch.chdir(example)
    traces = write_jsonl(
        example / "traces.jsonl",
        [
            trace("t-1", f"My key {KEY} stopped working, I am {EMAIL}", status="error"),
            # The same question again (other spacing, other case): one candidate, two occurrences.
            trace("t-2", f"my key {KEY}  stopped working, I am {EMAIL}?", feedback="thumbs_down"),
            trace("t-3", "Can I pay by wire transfer?", feedback={"rating": -1}),
            trace("t-4", "Where do I create an API key?", status="error"),  # in the golden set
            trace("t-5", "How do I export invoices?"),  # passed: not a candidate
            trace("t/6 with spaces", f"Call me on {PHONE}", flagged=True),
        ],
    )
    assert main(["mine", str(traces), "--out", "candidates.jsonl"]) == 0
    assert "3 candidate cases" in capsys.readouterr().out
    found = candidates(example / "candidates.jsonl")
    text = (example / "candidates.jsonl").read_text(encoding="utf-8")
    assert EMAIL not in text and PHONE not in text and KEY not in text

    by_id = {c["id"]: c for c in found}
    [hashed] = set(by_id) - {"mined-t-1", "mined-t-3"}  # "t/6 with spaces" is no plain id
    assert len(hashed) == len("mined-") + 16
    assert by_id[hashed]["input"] == "Call me on [redacted:phone]"
    assert by_id[hashed]["tags"] == ["mined", "flagged"]
    first = by_id["mined-t-1"]
    assert first["tags"] == ["mined", "error", "negative-feedback"]
    assert first["input"] == "My key [redacted:api_key] stopped working, I am [redacted:email]"
    assert first["expected"] == {}
    assert first["metadata"]["unfinished"] is True and first["metadata"]["occurrences"] == 2
    observed = first["metadata"]["observed"]
    assert observed["model"] == "gpt-4.1-mini" and observed["prompt_version"] == "rag-v3"
    assert observed["output"] == {"answer": "Sure, mail [redacted:email]"}
    assert by_id["mined-t-3"]["tags"] == ["mined", "negative-feedback"]

    # Moved into the golden set as they are, the candidates are valid and flagged as unfinished.
    golden = example / "datasets" / "golden.jsonl"
    golden.write_text(golden.read_text(encoding="utf-8") + text, encoding="utf-8")
    assert main(["validate"]) == 0
    err = capsys.readouterr().err
    assert "warning: 3 unfinished cases" in err and "mined-t-1" in err and "mined-t-3" in err


def otlp_span(trace_id: str, question: str, status: int) -> dict[str, Any]:
    def attribute(key: str, value: str) -> dict[str, Any]:
        return {"key": key, "value": {"stringValue": value}}

    messages = [
        {"role": "system", "parts": [{"type": "text", "content": "You are support."}]},
        {"role": "user", "parts": [{"type": "text", "content": question}]},
    ]
    output = [{"role": "assistant", "parts": [{"type": "text", "content": "No idea"}]}]
    return {
        "traceId": trace_id,
        "spanId": "00f067aa0ba902b7",
        "name": "chat gpt-4.1-mini",
        "status": {"code": status},
        "attributes": [
            attribute("gen_ai.operation.name", "chat"),
            attribute("gen_ai.request.model", "gpt-4.1-mini"),
            attribute("gen_ai.input.messages", json.dumps(messages)),
            attribute("gen_ai.output.messages", json.dumps(output)),
            attribute("error.type", "timeout") if status == 2 else attribute("x", "y"),
        ],
    }


def test_mine__opentelemetry_genai_spans(example, monkeypatch):
    monkeypatch.chdir(example)
    spans = [otlp_span("4bf92f3577b34da6a3ce929d0e0e4736", "Is SSO on the free plan?", 2)]
    spans.append(otlp_span("5bf92f3577b34da6a3ce929d0e0e4736", "Hello", 1))
    document = {"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}
    (example / "spans.json").write_text(json.dumps(document, indent=2), encoding="utf-8")
    assert main(["mine", "spans.json", "--out", "candidates.jsonl"]) == 0
    [found] = candidates(example / "candidates.jsonl")
    assert found["id"] == "mined-4bf92f3577b34da6a3ce929d0e0e4736"
    assert found["input"] == "Is SSO on the free plan?" and found["tags"] == ["mined", "timeout"]
    assert found["metadata"]["observed"]["output"] == "No idea"


def test_mine__failing_records_of_another_set(example, monkeypatch, tmp_path):
    monkeypatch.chdir(example)
    other = write_jsonl(
        tmp_path / "nightly.jsonl",
        [
            {"id": "n1", "input": "Can I merge two workspaces?", "expected": {}},
            {"id": "n2", "input": "Is there a mobile app?", "expected": {}},
        ],
    )
    records = write_jsonl(
        tmp_path / "records.jsonl",
        [
            {
                "id": "n1",
                "repeat": 0,
                "trace_id": "tr-n1",
                "status": "ok",
                "output": {},
                "scores": {},
                "failure_modes": ["missing_required"],
            },
            {
                "id": "n2",
                "repeat": 0,
                "trace_id": "tr-n2",
                "status": "ok",
                "output": {},
                "scores": {},
                "failure_modes": [],
            },
        ],
    )
    assert main(["mine", str(records), "--cases", str(other)]) == 0
    [found] = candidates(example / "candidates.jsonl")
    assert found["id"] == "mined-tr-n1" and found["tags"] == ["mined", "missing-required"]


def test_mine__records_in_any_order_give_the_same_candidates(example, monkeypatch, tmp_path):
    """records.jsonl is written as cases finish: mined in the cases' order, whatever that was."""
    monkeypatch.chdir(example)
    cases = [{"id": f"n{i}", "input": f"Question {i % 3}?", "expected": {}} for i in range(6)]
    other = write_jsonl(tmp_path / "nightly.jsonl", cases)
    runs = [
        {"id": f"n{i}", "repeat": repeat, "trace_id": f"tr-{i}-{repeat}", "status": "ok"}
        | {"output": {}, "scores": {}, "failure_modes": ["missing_required"]}
        for repeat in range(2)
        for i in range(6)
    ]
    found = []
    for order in (runs, runs[::-1], runs[1::2] + runs[::2]):
        records = write_jsonl(tmp_path / "records.jsonl", order)
        assert main(["mine", str(records), "--cases", str(other)]) == 0
        found.append(candidates(example / "candidates.jsonl"))
    assert found[0] == found[1] == found[2]
    assert [c["metadata"]["trace_id"] for c in found[0]] == ["tr-0-0", "tr-1-0", "tr-2-0"]


def test_mine__a_line_of_unknown_shape_is_exit_2(example, monkeypatch, capsys):
    monkeypatch.chdir(example)
    write_jsonl(example / "odd.jsonl", [{"trace_id": "a", "status": "ok"}, {"hello": 1}])
    assert main(["mine", "odd.jsonl"]) == 2
    assert "odd.jsonl:2: neither a record" in capsys.readouterr().err
