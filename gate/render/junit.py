"""``report.junit.xml``: the report as JUnit XML, for CI systems that show test results
(GitLab's ``reports:junit``, Jenkins, test-reporter actions).

Pure: a finished report.json document in, XML text out. Two suites: ``cases``, one test case per
golden case (a failing case fails with its failure modes and error), and ``checks``, one test
case per threshold rule applied (a failing check fails with its reason). A check whose status is
neither pass nor fail (such as inconclusive) is reported as skipped, with its reason: it did not
fail the gate, and it did not pass either.

The report lists failing cases only, with the total count. Given every case's id (the pipeline
passes the golden set's, so report.json need not store them; or ``cases.ids`` in the report),
each passing case gets its own test case; otherwise the passing cases are one test case that says
how many there were.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from typing import Any

_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
"""Characters XML 1.0 cannot carry, even escaped (control characters, lone surrogates)."""


def _text(value: Any) -> str:
    return _NOT_XML.sub("\ufffd", "" if value is None else str(value))


def _element(parent: ET.Element, tag: str, text: str | None = None, **attrs: Any) -> ET.Element:
    element = ET.SubElement(parent, tag, {key: _text(value) for key, value in attrs.items()})
    if text:
        element.text = _text(text)
    return element


def _case_failure(case: dict[str, Any]) -> tuple[str, str]:
    modes = ", ".join(case.get("failure_modes") or []) or "the case's checks failed"
    message = f"error: {case['error']}" if case.get("error") else f"failure modes: {modes}"
    details = [f"failure modes: {modes}"]
    if case.get("tags"):
        details.append(f"tags: {', '.join(case['tags'])}")
    details += [f"{key}: {case[key]}" for key in ("error", "input", "answer") if case.get(key)]
    return message, "\n".join(details)


def _suite(root: ET.Element, name: str, report: dict[str, Any]) -> ET.Element:
    suite = _element(root, "testsuite", name=name)
    properties = _element(suite, "properties")
    for key in ("verdict", "summary", "gate_version", "config"):
        if report.get(key) is not None:
            _element(properties, "property", name=key, value=report[key])
    return suite


def _cases_suite(root: ET.Element, report: dict[str, Any], ids: Sequence[str] | None) -> None:
    cases = report.get("cases", {})
    failing = {case["id"]: case for case in cases.get("failing", [])}
    total = int(cases.get("total", len(failing)))
    suite = _suite(root, "cases", report)
    _element(suite[0], "property", name="cases", value=total)
    for case_id in ids if ids is not None else list(failing):
        testcase = _element(suite, "testcase", classname="gate.cases", name=case_id)
        if case_id in failing:
            message, details = _case_failure(failing[case_id])
            _element(testcase, "failure", details, message=message, type="case")
    passing = total - len(failing)
    if ids is None and passing > 0:
        # Without their ids the passing cases cannot be named: one test case stands for them.
        _element(suite, "testcase", classname="gate.cases", name=f"{passing} passing cases")


def _check_name(check: dict[str, Any]) -> str:
    where = f" [{check['slice']}]" if check.get("slice") else ""
    return f"{check['metric']}{where} {check['rule']}"


def _checks_suite(root: ET.Element, report: dict[str, Any]) -> None:
    suite = _suite(root, "checks", report)
    for check in report.get("checks", []):
        testcase = _element(
            suite, "testcase", classname=f"gate.checks.{check['kind']}", name=_check_name(check)
        )
        if check["status"] == "pass":
            continue
        details = "\n".join(
            f"{key}: {check.get(key)}" for key in ("value", "limit", "baseline", "kind")
        )
        if check["status"] == "fail":
            _element(testcase, "failure", details, message=check["reason"], type=check["rule"])
        else:
            _element(testcase, "skipped", message=f"{check['status']}: {check['reason']}")


def _count(element: ET.Element, outcome: str) -> int:
    return sum(testcase.find(outcome) is not None for testcase in element.iter("testcase"))


def render_junit(report: dict[str, Any], case_ids: Sequence[str] | None = None) -> str:
    """The JUnit XML document of a finished report (report.json's content); ``case_ids``: every
    golden case's id, in order, so each passing case is a test case of its own."""
    root = ET.Element("testsuites", {"name": "gate"})
    ids = case_ids if case_ids is not None else report.get("cases", {}).get("ids")
    _cases_suite(root, report, ids)
    _checks_suite(root, report)
    for element in (*root.findall("testsuite"), root):
        element.set("tests", str(sum(1 for _ in element.iter("testcase"))))
        element.set("failures", str(_count(element, "failure")))
        element.set("skipped", str(_count(element, "skipped")))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
