"""Every report.json the gate writes, and every report the tests use, follows
docs/report.schema.json."""

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from gate.cli import main
from gate.render.report import SCHEMA_VERSION

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = json.loads((ROOT / "docs" / "report.schema.json").read_text())
VALIDATOR = Draft202012Validator(SCHEMA)


def problems(report: dict) -> list[str]:
    return [f"{e.json_path}: {e.message}" for e in VALIDATOR.iter_errors(report)]


def test_schema__is_a_valid_draft_2020_12_schema_for_this_schema_version():
    Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["properties"]["schema_version"] == {"const": SCHEMA_VERSION}


@pytest.mark.parametrize("path", sorted((ROOT / "tests" / "data" / "reports").glob("*.json")))
def test_schema__the_test_reports_follow_it(path):
    assert problems(json.loads(path.read_text())) == []


@pytest.mark.parametrize("top_k", [None, "1"], ids=["passing", "failing"])
def test_schema__the_shipped_example_s_reports_follow_it(example, monkeypatch, top_k):
    project = example
    if top_k:
        monkeypatch.setenv("RAG_TOP_K", top_k)
    out = project / "gate-report"
    main(["run", "-q", "-c", str(project / "gate.yml"), "--out", str(out)])
    report = json.loads((out / "report.json").read_text())
    assert report["verdict"] == ("fail" if top_k else "pass")
    assert problems(report) == []


def test_schema__a_report_that_breaks_it_is_caught():
    report = json.loads((ROOT / "tests" / "data" / "reports" / "pass.json").read_text())
    report["verdict"] = "maybe"
    del report["checks"]
    assert sorted(problems(report)) == sorted(
        [
            "$: 'checks' is a required property",
            "$.verdict: 'maybe' is not one of ['pass', 'fail', 'inconclusive']",
        ]
    )
