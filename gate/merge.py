"""``gate merge``: shards run apart (a CI matrix) combined into one run's report and verdict.

The shards must be the slices 1..N of one run: the same config (pipeline fingerprint), the same
dataset, the same commit, each slice once; the merge job's own config must be that config too.
Their records (judged in the shards) are scored and written by the same code as ``gate run``
(``pipeline.Recorder``, ``pipeline.conclude``), which puts them in dataset order, so the report,
the verdict and the exit code are those of an unsharded run of the same outputs.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any

from gate.errors import ConfigError
from gate.files import from_json
from gate.pipeline import Outcome, Recorder, RunOptions, conclude
from gate.plan import prepare
from gate.run.records import Record, read_record
from gate.run.shards import Shard, read_manifest

CHUNK = 4096
"""Records scored at a time: the shards' records are never all held at once."""

AGREE = ("pipeline_fingerprint", "dataset_fingerprint", "git_sha", "gate_version")
"""What every shard must share: the same run of the same code on the same cases."""


def merge(folders: list[Path], options: RunOptions) -> Outcome:
    """Combine shard folders into ``options.out_dir``; exit code as ``gate run`` would give."""
    if not folders:
        raise ConfigError("gate merge: no shard folders (fix: gate merge shard-1 shard-2 ...)")
    plan = prepare(options.config, options.baseline)
    if options.update_baseline and plan.baseline_path is None:
        raise ConfigError(
            "--update-baseline: no baseline path (fix: set `baseline:` in gate.yml or "
            "pass --baseline FILE)"
        )
    shards = [(folder, *read_manifest(folder)) for folder in folders]
    check_shards(shards)
    first = shards[0][2]
    mine = {
        "pipeline_fingerprint": plan.fingerprint,
        "dataset_fingerprint": plan.dataset_fingerprint,
    }
    for key, value in mine.items():
        if first[key] != value:
            raise ConfigError(
                f"{shards[0][0]}: the shards ran with another {key.split('_')[0]} than "
                f"{options.config} describes (fix: merge with the config and dataset of the "
                "commit the shards ran)"
            )
    settings = plan.config.runner
    size = len(plan.cases)
    position = {case.id: i for i, case in enumerate(plan.cases)}
    # Every run of every case once, checked before anything is written.
    seen = bytearray(size * settings.repeats)
    for folder, shard, _ in shards:
        for record in read_shard_records(folder / "records.jsonl", shard):
            index = position.get(record.case_id)
            if index is None or not 0 <= record.repeat < settings.repeats:
                raise ConfigError(
                    f"records of shard for case {record.case_id!r} repeat {record.repeat}: not "
                    "a case and repeat of this run (fix: rerun the shards)"
                )
            slot = record.repeat * size + index
            if seen[slot]:
                raise ConfigError(
                    f"case {record.case_id!r} repeat {record.repeat} is in two shards' records "
                    "(fix: rerun the shards)"
                )
            seen[slot] = 1
    missing = seen.find(0)
    if missing >= 0:
        case = plan.cases[missing % size]
        raise ConfigError(
            f"{seen.count(0)} runs missing from the shards' records, e.g. case {case.id!r} "
            "(fix: rerun the shard that holds it, or all of them)"
        )
    runs = [manifest["run"] for _, _, manifest in shards]
    run_info = {
        "started_at": min(run["started_at"] for run in runs),
        # The shards ran side by side: the run took as long as the slowest.
        "duration_s": max(run["duration_s"] for run in runs),
        "records": len(seen),
        "errors": sum(run["errors"] for run in runs),
        "timeouts": sum(run["timeouts"] for run in runs),
        "repeats": settings.repeats,
        "concurrency": settings.concurrency,
        "shards": len(shards),
    }
    if any("cached" in run for run in runs):
        run_info["cached"] = sum(run.get("cached", 0) for run in runs)
    options.out_dir.mkdir(parents=True, exist_ok=True)
    scrub = plan.config.scrubber(options.world.env)
    # Scored and written as one run's records are (already judged, in the shards).
    recorder = Recorder(plan, options.out_dir / "records.jsonl", scrub)
    try:
        for folder, shard, _ in shards:
            records = read_shard_records(folder / "records.jsonl", shard)
            while chunk := list(islice(records, CHUNK)):
                recorder(chunk)
    finally:
        recorder.close()
    return conclude(plan, recorder, options, run_info, merged_judge(shards), scrub)


def check_shards(shards: list[tuple[Path, Shard, dict[str, Any]]]) -> None:
    """The slices 1..N of one run, each once; an input error naming the odd one otherwise."""
    folder0, shard0, first = shards[0]
    seen: dict[int, Path] = {}
    for folder, shard, manifest in shards:
        if shard.count != shard0.count:
            raise ConfigError(
                f"{folder}: shard {shard}, but {folder0} is shard {shard0} (fix: merge the "
                "shards of one matrix)"
            )
        for key in AGREE:
            if manifest.get(key) != first.get(key):
                raise ConfigError(
                    f"{folder}: {key} {manifest.get(key)!r} differs from {folder0}'s "
                    f"{first.get(key)!r}: the shards are not of the same run (fix: rerun them "
                    "from one commit and config)"
                )
        if shard.index in seen:
            raise ConfigError(
                f"{folder} and {seen[shard.index]} are both shard {shard} (fix: pass each "
                "shard folder once)"
            )
        seen[shard.index] = folder
    absent = sorted(set(range(1, shard0.count + 1)) - set(seen))
    if absent:
        names = ", ".join(f"{k}/{shard0.count}" for k in absent)
        raise ConfigError(f"shard {names} missing (fix: pass all {shard0.count} shard folders)")


def read_shard_records(path: Path, shard: Shard) -> Iterator[Record]:
    """The shard's records, one line at a time; a line that is not one of its records is an
    input error naming the line."""
    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the shard's records: {exc}") from None
    with handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = read_record(from_json(line))
            except (KeyError, TypeError, ValueError) as exc:
                raise ConfigError(
                    f"{path}:{number}: not a record of `gate run --shard`: {exc} "
                    "(fix: rerun the shard)"
                ) from None
            if not shard.holds(record.case_id):
                raise ConfigError(
                    f"{path}:{number}: case {record.case_id!r} is not in shard {shard} "
                    "(fix: rerun the shard)"
                )
            yield record


def merged_judge(shards: list[tuple[Path, Shard, dict[str, Any]]]) -> dict[str, Any] | None:
    """The shards' judge figures added up (counts and costs); None when no shard judged."""
    judged = [manifest["judge"] for _, _, manifest in shards if manifest.get("judge")]
    if not judged:
        return None
    total = dict(judged[0])
    for other in judged[1:]:
        for key, value in other.items():
            if isinstance(value, int | float) and isinstance(total.get(key), int | float):
                total[key] = total[key] + value
    return total
