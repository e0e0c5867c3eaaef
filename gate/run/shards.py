"""Shards: one run split into N slices of the cases, run apart (a CI matrix), merged after.

A case's shard is decided by a stable hash of its id alone (sha256, not Python's salted
``hash``): the same on every machine, in every run, for every repeat, and unchanged for the other
cases when one is added or removed. Each shard writes its records and a manifest (``shard.json``)
saying which run it is part of: the config's and the dataset's fingerprints, the commit, K/N.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gate import __version__
from gate.errors import ConfigError
from gate.files import write_atomic
from gate.load.dataset import Case

MANIFEST = "shard.json"
FORMAT = 1


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count``, counted from 1 (as a matrix lists them: 1, 2, ..., N)."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        found = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
        index, count = (int(found[1]), int(found[2])) if found else (0, 0)
        if not 1 <= index <= count:
            raise ConfigError(
                f"--shard: {text!r} is not K/N with 1 ≤ K ≤ N (fix: e.g. --shard 2/4 runs the "
                "second of four slices)"
            )
        return cls(index, count)

    def holds(self, case_id: str) -> bool:
        return bucket(case_id, self.count) == self.index - 1

    def select(self, cases: list[Case]) -> list[Case]:
        """This shard's cases, in dataset order."""
        return [case for case in cases if self.holds(case.id)]

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def bucket(case_id: str, count: int) -> int:
    """The shard (from 0) of a case: its id's sha256, as a number, modulo the shard count."""
    digest = hashlib.sha256(case_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count


def shard_manifest(
    shard: Shard,
    *,
    pipeline_fingerprint: str,
    dataset_fingerprint: str,
    git_sha: str | None,
    cases: int,
    run_info: dict[str, Any],
    judge: dict[str, Any] | None,
) -> dict[str, Any]:
    """What ``gate merge`` checks a shard against the others with, and the shard's run facts."""
    return {
        "format": FORMAT,
        "gate_version": __version__,
        "shard": str(shard),
        "pipeline_fingerprint": pipeline_fingerprint,
        "dataset_fingerprint": dataset_fingerprint,
        "git_sha": git_sha,
        "cases": cases,
        "run": run_info,
        "judge": judge,
        "summary": (
            f"shard {shard}: {cases} cases, {run_info['records']} runs, "
            f"{run_info['errors']} errors; no verdict until `gate merge` combines the shards"
        ),
    }


def write_manifest(folder: Path, manifest: dict[str, Any]) -> Path:
    path = folder / MANIFEST
    write_atomic(path, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return path


def read_manifest(folder: Path) -> tuple[Shard, dict[str, Any]]:
    """A shard folder's manifest; an input error when it is missing or not one."""
    path = folder / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: not found: {folder} is not a shard folder (fix: pass the --out folders "
            "of `gate run --shard K/N`)"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the shard manifest: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ConfigError(
            f"{path}: not a shard manifest of format {FORMAT} (fix: rerun the shard with this "
            "gate version)"
        )
    try:
        shard = Shard.parse(str(data["shard"]))
    except (KeyError, ConfigError):
        raise ConfigError(f"{path}: shard: missing or not K/N") from None
    return shard, data
