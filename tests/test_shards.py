"""Sharding: `gate run --shard K/N` runs a stable slice; `gate merge` gives the unsharded run's
report, verdict and exit code, and refuses shards that are not the slices of one run."""

import json
import shutil
from pathlib import Path

import pytest
from builders import copy_example

from gate import action
from gate.cli import main
from gate.errors import GateError
from gate.load.dataset import Case
from gate.run.shards import Shard, bucket

N = 4


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped example with its outputs recorded once, replayed (so runs are equal)."""
    project = copy_example(tmp_path_factory.mktemp("example"))
    # records.jsonl is scrubbed (the example's tool calls carry e-mail addresses): recorded
    # outputs replay faithfully only when nothing is redacted.
    gate_yml = project / "gate.yml"
    gate_yml.write_text(gate_yml.read_text() + "redact: []\n")
    config = str(project / "gate.yml")
    assert main(["run", "-q", "-c", config, "--out", str(project / "recorded")]) == 0
    rows = [
        json.loads(line) for line in (project / "recorded/records.jsonl").read_text().splitlines()
    ]
    with (project / "replay.jsonl").open("w") as replay:
        for row in rows:
            replay.write(
                json.dumps(
                    {"id": row["id"], "output": row["output"], "latency_ms": row["latency_ms"]}
                )
                + "\n"
            )
    text = (project / "gate.yml").read_text()
    text = text.replace(
        "adapter: python\n  target: examples.rag:answer", "adapter: replay\n  path: replay.jsonl"
    )
    assert "adapter: replay" in text
    (project / "gate.yml").write_text(text)
    return project


def gate(project: Path, *args: str) -> int:
    return main([*args, "-c", str(project / "gate.yml")])


def shards(project: Path, count: int = N, sha: str = "abc") -> list[Path]:
    folders = []
    for k in range(1, count + 1):
        out = project / f"shard-{k}"
        shutil.rmtree(out, ignore_errors=True)
        assert gate(project, "run", "-q", "--shard", f"{k}/{count}", "--out", str(out)) == 0
        folders.append(out)
    return folders


@pytest.fixture(autouse=True)
def commit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_SHA", "abc")


def test_merge__four_shards_give_the_unsharded_metrics_checks_and_verdict(replayed: Path) -> None:
    assert gate(replayed, "run", "-q", "--out", str(replayed / "whole")) == 0
    folders = shards(replayed)
    manifests = [json.loads((f / "shard.json").read_text()) for f in folders]
    assert [m["shard"] for m in manifests] == ["1/4", "2/4", "3/4", "4/4"]
    assert sum(m["cases"] for m in manifests) == 79
    assert not any((f / "report.json").exists() for f in folders)  # no verdict in a shard

    out = replayed / "merged"
    assert gate(replayed, "merge", *map(str, reversed(folders)), "--out", str(out)) == 0
    whole = json.loads((replayed / "whole/report.json").read_text())
    merged = json.loads((out / "report.json").read_text())
    assert merged["verdict"] == whole["verdict"]
    assert merged["checks"] == whole["checks"]
    assert merged["metrics"].keys() == whole["metrics"].keys()
    for name, entry in whole["metrics"].items():
        for key in ("value", "baseline", "delta"):
            assert merged["metrics"][name][key] == pytest.approx(entry[key], abs=1e-9)
        assert merged["metrics"][name]["status"] == entry["status"]
        assert merged["metrics"][name].get("interval") == entry.get("interval")
    assert merged["slices"] == whole["slices"]
    assert merged["run"]["shards"] == N and merged["run"]["records"] == 79
    lines = lambda path: sorted(  # noqa: E731  (written as the runs finish: in any order)
        (
            {k: v for k, v in json.loads(line).items() if k not in ("trace_id", "started_at")}
            for line in path.read_text().splitlines()
        ),
        key=lambda line: (line["id"], line["repeat"]),
    )
    assert lines(out / "records.jsonl") == lines(replayed / "whole/records.jsonl")


def test_shard__a_case_stays_in_its_shard_whatever_else_changes() -> None:
    ids = [f"case-{i}" for i in range(1000)]
    buckets = [bucket(i, N) for i in ids]
    assert buckets == [bucket(i, N) for i in ids]  # stable (no salted hash)
    assert sorted(set(buckets)) == [0, 1, 2, 3]
    assert min(buckets.count(b) for b in range(N)) > 200  # roughly even
    cases = [Case(id=i, input="q") for i in ids]
    chosen = [Shard(k, N).select(cases) for k in range(1, N + 1)]
    assert sorted(c.id for part in chosen for c in part) == sorted(ids)


@pytest.mark.parametrize("text", ["0/4", "5/4", "2", "a/b", "2/0"])
def test_shard__not_k_of_n_is_an_input_error(replayed: Path, text: str, capsys) -> None:
    assert gate(replayed, "run", "-q", "--shard", text) == 2
    assert "--shard" in capsys.readouterr().err


def test_merge__a_missing_or_doubled_shard_is_refused(replayed: Path, capsys) -> None:
    folders = shards(replayed)
    assert gate(replayed, "merge", *map(str, folders[:3]), "--out", str(replayed / "m")) == 2
    assert "shard 4/4 missing" in capsys.readouterr().err
    doubled = [*map(str, folders), str(folders[1])]
    assert gate(replayed, "merge", *doubled, "--out", str(replayed / "m")) == 2
    assert "are both shard 2/4" in capsys.readouterr().err


def test_merge__shards_of_another_commit_or_shard_count_are_refused(
    replayed: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    folders = shards(replayed)
    monkeypatch.setenv("GITHUB_SHA", "def")
    other = replayed / "other-commit"
    shutil.rmtree(other, ignore_errors=True)
    assert gate(replayed, "run", "-q", "--shard", "2/4", "--out", str(other)) == 0
    mixed = [str(folders[0]), str(other), *map(str, folders[2:])]
    assert gate(replayed, "merge", *mixed, "--out", str(replayed / "m")) == 2
    assert "git_sha 'def' differs" in capsys.readouterr().err
    two = replayed / "two"
    assert gate(replayed, "run", "-q", "--shard", "1/2", "--out", str(two)) == 0
    assert gate(replayed, "merge", str(two), *map(str, folders[1:]), "--out", "m") == 2
    assert "shard 2/4, but" in capsys.readouterr().err


def test_merge__shards_of_another_config_are_refused(replayed: Path, tmp_path: Path, capsys):
    folders = shards(replayed)
    changed = tmp_path / "changed"
    shutil.copytree(replayed, changed, ignore=shutil.ignore_patterns("shard-*", "whole", "m*"))
    config = changed / "gate.yml"
    config.write_text(config.read_text().replace("k: [1, 5, 10]", "k: [1, 5, 20]"))
    assert main(["merge", *map(str, folders), "-c", str(config), "--out", str(tmp_path / "m")]) == 2
    assert "ran with another pipeline" in capsys.readouterr().err


def test_merge__a_folder_that_is_not_a_shard_is_an_input_error(replayed: Path, tmp_path, capsys):
    assert gate(replayed, "merge", str(tmp_path), "--out", str(tmp_path / "m")) == 2
    assert "shard.json: not found" in capsys.readouterr().err


def test_run__shard_with_update_baseline_is_refused(replayed: Path, capsys) -> None:
    assert gate(replayed, "run", "-q", "--shard", "1/2", "--update-baseline") == 2
    assert "gate merge" in capsys.readouterr().err


def test_action__shard_jobs_then_a_merge_job(replayed: Path, tmp_path: Path) -> None:
    base = {
        "INPUT_CONFIG": "gate.yml",
        "INPUT_COMMENT": "false",
        "GITHUB_WORKSPACE": str(replayed),
        "GITHUB_SHA": "abc",
    }
    for k in (1, 2):
        outputs = tmp_path / f"out-{k}"
        env = {
            **base,
            "INPUT_SHARD": f"{k}/2",
            "INPUT_OUTPUT-DIR": f"matrix/shard-{k}",
            "GITHUB_OUTPUT": str(outputs),
        }
        assert action.main(env) == 0
        assert f"shard {k}/2: " in outputs.read_text()
    env = {**base, "INPUT_MERGE-FROM": "matrix/*\n", "INPUT_OUTPUT-DIR": "merged"}
    assert action.main(env) == 0
    report = json.loads((replayed / "merged/report.json").read_text())
    assert (report["verdict"], report["run"]["shards"]) == ("pass", 2)


def test_action__a_shard_input_not_k_of_n_names_the_input(replayed: Path) -> None:
    env = {"INPUT_SHARD": "3/2", "GITHUB_WORKSPACE": str(replayed)}
    with pytest.raises(GateError, match="shard"):
        action.main(env)
