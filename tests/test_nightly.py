"""The nightly workflow's issue logic (actions/github-script), run by node against a fake GitHub.

The same script ships in this repository's nightly.yml and in the one `gate init` writes.
"""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from gate.scaffold import template

ROOT = Path(__file__).resolve().parents[1]

# What github-script gives a script: an async function body with github, context and core.
# The fake records every call; listForRepo answers with the open issues given in OPEN.
HARNESS = """
const calls = [];
const record = (name) => async (params) => { calls.push([name, params]);
  return name === "create" ? { data: { number: 99 } } : {}; };
const github = {
  paginate: async (list, params) => { calls.push(["list", params]); return list(params); },
  rest: { issues: {
    listForRepo: () => JSON.parse(process.env.OPEN),
    createComment: record("comment"), update: record("update"), create: record("create"),
  } },
};
const context = { repo: { owner: "acme", repo: "bot" } };
const core = { info: () => {} };
const AsyncFunction = (async () => {}).constructor;
await new AsyncFunction("github", "context", "core", process.env.SCRIPT)(github, context, core);
console.log(JSON.stringify(calls.filter(([name]) => name !== "list")));
"""

OPEN_ISSUE = [{"number": 5, "title": "Nightly gate failing on trunk"}]
PULL_REQUEST = [{"number": 6, "pull_request": {}}]


def nightly_script(workflow: str) -> str:
    steps = yaml.safe_load(workflow)["jobs"]["issue"]["steps"]
    (step,) = [s for s in steps if s.get("uses", "").startswith("actions/github-script@")]
    return str(step["with"]["script"])


def test_nightly_script__the_same_in_this_repository_and_in_gate_init():
    mine = nightly_script((ROOT / ".github" / "workflows" / "nightly.yml").read_text())
    assert mine == nightly_script(template(".github/workflows/gate-nightly.yml"))


def night(result: str, verdict: str, open_issues: list[dict[str, object]]) -> list[list[object]]:
    env = {
        **os.environ,
        "SCRIPT": nightly_script((ROOT / ".github" / "workflows" / "nightly.yml").read_text()),
        "OPEN": json.dumps(open_issues),
        "RESULT": result,
        "VERDICT": verdict,
        "SUMMARY": f"{verdict}: 2 of 9 checks failed" if verdict else "",
        "BRANCH": "trunk",
        "RUN_URL": "https://github.example/acme/bot/actions/runs/7",
    }
    done = subprocess.run(
        ["node", "--input-type=module", "-e", HARNESS],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    calls: list[list[object]] = json.loads(done.stdout)
    return calls


needs_node = pytest.mark.skipif(shutil.which("node") is None, reason="node absent")


@needs_node
@pytest.mark.parametrize(
    ("result", "verdict"),
    [
        ("failure", "fail"),
        ("success", "inconclusive"),  # exit 0 under fail-on, still not a pass
        ("failure", ""),  # exit 2 or 3: no outputs at all
    ],
)
def test_nightly__a_failing_night_opens_an_issue(result, verdict):
    (call,) = night(result, verdict, PULL_REQUEST)
    name, params = call
    assert name == "create"
    assert params["labels"] == ["gate-nightly"]
    assert "trunk" in params["title"]
    assert "actions/runs/7" in params["body"]
    assert ("exit 2" in params["body"]) if not verdict else (f"**{verdict}**" in params["body"])


@needs_node
def test_nightly__a_failing_night_comments_on_the_open_issue_and_keeps_its_body():
    (call,) = night("failure", "fail", OPEN_ISSUE)
    name, params = call
    assert name == "comment"
    assert params["issue_number"] == 5
    assert "Failed again" in params["body"]


@needs_node
def test_nightly__the_first_passing_night_closes_the_issue():
    comment, update = night("success", "pass", OPEN_ISSUE)
    assert comment[0] == "comment" and "Passed again" in comment[1]["body"]
    assert update[0] == "update"
    assert (update[1]["issue_number"], update[1]["state"]) == (5, "closed")


@needs_node
def test_nightly__a_passing_night_without_an_issue_does_nothing():
    assert night("success", "pass", []) == []
