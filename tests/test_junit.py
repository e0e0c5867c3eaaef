"""report.junit.xml: the report as JUnit XML, read back the way CI systems read it."""

import copy
import json
import random
from pathlib import Path
from xml.sax.saxutils import escape

import pytest
from junitparser import Failure, JUnitXml, Skipped

from gate.cli import main
from gate.render import junit
from gate.render.junit import render_junit

REPORTS = Path(__file__).parent / "data" / "reports"


def load(name: str) -> dict:
    return json.loads((REPORTS / name).read_text())


def suites(report: dict) -> dict:
    return {suite.name: suite for suite in JUnitXml.fromstring(render_junit(report))}


def failed(suite) -> dict[str, str]:
    return {
        case.name: result.message
        for case in suite
        for result in case.result
        if isinstance(result, Failure)
    }


def test_render_junit__the_checks_suite_names_each_failing_check_with_its_reason():
    report = load("fail.json")
    checks = suites(report)["checks"]
    assert checks.tests == len(report["checks"])
    assert failed(checks) == {
        "retrieval.hit_rate@5 min": "0.62 < min 0.80",
        "generation.faithfulness max_drop": "drop 0.06 > max_drop 0.03",
        "generation.abstention_accuracy [high-risk] min": "0.75 < min 1.00",
    }


def test_render_junit__failing_cases_fail_and_the_passing_ones_are_counted_without_ids():
    report = load("fail.json")
    cases = suites(report)["cases"]
    failing = failed(cases)
    assert set(failing) == {case["id"] for case in report["cases"]["failing"]}
    assert failing["sso-setup"].startswith("error: TimeoutError")
    assert failing["api-key-reset"] == "failure modes: retrieval_miss, missing_required"
    passing = [case.name for case in cases if case.is_passed]
    assert passing == [f"{report['cases']['total'] - len(failing)} passing cases"]


def test_render_junit__one_test_case_per_golden_case_when_the_report_lists_their_ids():
    report = load("fail.json")
    failing = [case["id"] for case in report["cases"]["failing"]]
    report["cases"]["ids"] = ["ok-1", *failing, "ok-2"]
    report["cases"]["total"] = len(report["cases"]["ids"])
    cases = suites(report)["cases"]
    assert [case.name for case in cases] == report["cases"]["ids"]
    assert set(failed(cases)) == set(failing)


def test_render_junit__a_check_neither_passed_nor_failed_is_skipped():
    report = load("pass.json")
    report["checks"][0]["status"] = "inconclusive"
    checks = suites(report)["checks"]
    (skipped,) = [
        result for case in checks for result in case.result if isinstance(result, Skipped)
    ]
    assert skipped.message.startswith("inconclusive: ")
    assert checks.failures == 0


@pytest.mark.parametrize("bad", ["\x00", "\x1b[31m", "\ud800", "\ufffe"])
def test_render_junit__characters_xml_cannot_carry_are_replaced(bad):
    report = copy.deepcopy(load("hostile.json"))
    report["cases"]["failing"][0]["id"] = f"case{bad}id"
    report["cases"]["failing"][0]["error"] = f"boom{bad}"
    cases = suites(report)["cases"]
    name = next(iter(cases)).name
    assert name.startswith("case\ufffd") and name.endswith("id")


def test_render_junit__a_real_run_that_fails_names_its_failing_checks(example, monkeypatch):
    project = example
    monkeypatch.setenv("RAG_TOP_K", "1")
    out = project / "gate-report"
    assert main(["run", "-q", "-c", str(project / "gate.yml"), "--out", str(out)]) == 1
    report = json.loads((out / "report.json").read_text())
    checks = suites(report)["checks"]
    assert "retrieval.hit_rate@5 min" in set(failed(checks))
    assert checks.failures == sum(c["status"] == "fail" for c in report["checks"])


def test_escaping__the_quick_look_changes_nothing_the_full_escape_would_not() -> None:
    # Text with nothing to escape is written as it is: checked against the full escape on
    # random text drawn from the characters each step treats specially, and ordinary ones.
    alphabet = ["&", "<", ">", '"', "'", "\t", "\n", "\r", "\x00", "\x1f", "\x7f", "\ud800"]
    alphabet += ["\ufffe", "\uffff", "\ufffd", "é", "✓", "\U0001f600", "a", " ", "-", "_"]
    rng = random.Random(0)
    for _ in range(20_000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 6)))
        assert junit._text(text) == escape(junit._xml(text))
        assert junit._attribute(text) == escape(junit._xml(text), junit._IN_ATTRIBUTE)
