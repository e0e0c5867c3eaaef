"""``report.junit.xml``: the report as JUnit XML, for CI systems that show test results
(GitLab's ``reports:junit``, Jenkins, test-reporter actions).

Pure: a finished report.json document in, XML text out, a line at a time (``junit_lines``: a
document of 100k cases is never built whole). Two suites: ``cases``, one test case per
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
from collections.abc import Iterator, Sequence
from typing import Any
from xml.sax.saxutils import escape

_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
"""Characters XML 1.0 cannot carry, even escaped (control characters, lone surrogates)."""
_IN_ATTRIBUTE = {'"': "&quot;", "\n": "&#10;", "\r": "&#13;", "\t": "&#09;"}
"""Escaped in an attribute value besides ``& < >``, so a parser reads the value back as it was."""


_TEXT_WORK = re.compile("[&<>\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
"""What ``_text`` changes: the escaped characters and those of ``_NOT_XML``."""
_ATTRIBUTE_WORK = re.compile('[&<>"\x00-\x1f\ud800-\udfff\ufffe\uffff]')
"""What ``_attribute`` changes: those of ``_TEXT_WORK`` and ``_IN_ATTRIBUTE``."""


def _xml(value: Any) -> str:
    return _NOT_XML.sub("\ufffd", "" if value is None else str(value))


def _text(value: Any) -> str:
    text = "" if value is None else str(value)
    # Most text (ids, names) has nothing to change: one search, not four passes over it.
    return escape(_xml(text)) if _TEXT_WORK.search(text) else text


def _attribute(value: Any) -> str:
    text = "" if value is None else str(value)
    return escape(_xml(text), _IN_ATTRIBUTE) if _ATTRIBUTE_WORK.search(text) else text


def _tag(name: str, attrs: dict[str, Any], *, close: bool = False) -> str:
    values = "".join(f' {key}="{_attribute(value)}"' for key, value in attrs.items())
    return f"<{name}{values}{' /' if close else ''}>"


def _case_failure(case: dict[str, Any]) -> tuple[str, str]:
    modes = ", ".join(case.get("failure_modes") or []) or "the case's checks failed"
    message = f"error: {case['error']}" if case.get("error") else f"failure modes: {modes}"
    details = [f"failure modes: {modes}"]
    if case.get("tags"):
        details.append(f"tags: {', '.join(case['tags'])}")
    details += [f"{key}: {case[key]}" for key in ("error", "input", "answer") if case.get(key)]
    return message, "\n".join(details)


def _testcase(classname: str, name: str, outcome: str | None = None, **result: Any) -> str:
    """One test case; ``outcome`` (failure, skipped) with its ``message``, ``type`` and text."""
    opening = {"classname": classname, "name": name}
    if outcome is None:
        return f"    {_tag('testcase', opening, close=True)}\n"
    text = result.pop("text", None)
    inner = (
        f"{_tag(outcome, result)}{_text(text)}</{outcome}>"
        if text
        else _tag(outcome, result, close=True)
    )
    return f"    {_tag('testcase', opening)}\n      {inner}\n    </testcase>\n"


def _suite(name: str, report: dict[str, Any], counts: dict[str, int], more: dict[str, Any]) -> str:
    lines = [f"  {_tag('testsuite', {'name': name, **counts})}\n", "    <properties>\n"]
    properties = {key: report.get(key) for key in ("verdict", "summary", "gate_version", "config")}
    properties |= more
    for key, value in properties.items():
        if value is not None:
            lines.append(f"      {_tag('property', {'name': key, 'value': value}, close=True)}\n")
    return "".join([*lines, "    </properties>\n"])


def _cases_suite(
    report: dict[str, Any], ids: Sequence[str] | None
) -> tuple[dict[str, int], Iterator[str]]:
    cases = report.get("cases", {})
    failing = {case["id"]: case for case in cases.get("failing", [])}
    total = int(cases.get("total", len(failing)))
    named = ids if ids is not None else list(failing)
    passing = total - len(failing)
    # Without their ids the passing cases cannot be named: one test case stands for them.
    summed = ids is None and passing > 0
    counts = {
        "tests": len(named) + summed,
        "failures": sum(case_id in failing for case_id in named),
        "skipped": 0,
    }

    def lines() -> Iterator[str]:
        yield _suite("cases", report, counts, {"cases": total})
        for case_id in named:
            if case_id in failing:
                message, details = _case_failure(failing[case_id])
                yield _testcase(
                    "gate.cases", case_id, "failure", message=message, type="case", text=details
                )
            else:
                yield _testcase("gate.cases", case_id)
        if summed:
            yield _testcase("gate.cases", f"{passing} passing cases")
        yield "  </testsuite>\n"

    return counts, lines()


def _check_name(check: dict[str, Any]) -> str:
    where = f" [{check['slice']}]" if check.get("slice") else ""
    return f"{check['metric']}{where} {check['rule']}"


def _checks_suite(report: dict[str, Any]) -> tuple[dict[str, int], Iterator[str]]:
    checks = report.get("checks", [])
    counts = {
        "tests": len(checks),
        "failures": sum(check["status"] == "fail" for check in checks),
        "skipped": sum(check["status"] not in ("pass", "fail") for check in checks),
    }

    def lines() -> Iterator[str]:
        yield _suite("checks", report, counts, {})
        for check in checks:
            classname, name = f"gate.checks.{check['kind']}", _check_name(check)
            if check["status"] == "pass":
                yield _testcase(classname, name)
                continue
            details = "\n".join(
                f"{key}: {check.get(key)}" for key in ("value", "limit", "baseline", "kind")
            )
            if check["status"] == "fail":
                yield _testcase(
                    classname,
                    name,
                    "failure",
                    message=check["reason"],
                    type=check["rule"],
                    text=details,
                )
            else:
                message = f"{check['status']}: {check['reason']}"
                yield _testcase(classname, name, "skipped", message=message)
        yield "  </testsuite>\n"

    return counts, lines()


def junit_lines(report: dict[str, Any], case_ids: Sequence[str] | None = None) -> Iterator[str]:
    """The JUnit XML document of a finished report (report.json's content), a line at a time;
    ``case_ids``: every golden case's id, in order, so each passing case is a test case of its
    own."""
    ids = case_ids if case_ids is not None else report.get("cases", {}).get("ids")
    (case_counts, cases), (check_counts, checks) = _cases_suite(report, ids), _checks_suite(report)
    total = {key: case_counts[key] + check_counts[key] for key in case_counts}
    yield '<?xml version="1.0" encoding="UTF-8"?>\n'
    yield f"{_tag('testsuites', {'name': 'gate', **total})}\n"
    yield from cases
    yield from checks
    yield "</testsuites>\n"


def render_junit(report: dict[str, Any], case_ids: Sequence[str] | None = None) -> str:
    """``junit_lines`` as one text."""
    return "".join(junit_lines(report, case_ids))
