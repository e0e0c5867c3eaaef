"""The plan of a run: config, golden set, thresholds and baseline, loaded and cross-checked.

Everything a run needs is validated here, before the first case runs (``gate validate`` stops
here): metric names against the registry, slices and must-pass cases against the golden set,
judged metrics against the judge, the prompt file.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Literal, get_args

from gate import metrics
from gate.errors import ConfigError
from gate.judge import rubric_versions
from gate.load.bar import Bar, BarChange, BarFiles, BarSource, compare_bars, read_at_ref
from gate.load.baseline import Baseline, read_baseline
from gate.load.config import (
    Config,
    JudgedMetric,
    OpenAIPipeline,
    Thresholds,
    load_config,
    read_thresholds,
)
from gate.load.dataset import Case, fingerprint, read_dataset
from gate.load.reviews import Review, parse_reviews, read_reviews
from gate.load.validation import Loc
from gate.metrics import generation
from gate.run.adapters.openai import pipeline_prompt


@dataclass(frozen=True)
class NoiseFloor:
    """How much each metric moved between consecutive nights on unchanged code (an A/A
    comparison; ``gate.history.noise_floor``): what the paired tests add as run-level drift."""

    nights: tuple[str, ...]
    """The dates of the nights whose changes were used, oldest first."""
    runs: int
    """Runs per case in each of those nights."""
    changes: Mapping[tuple[str | None, str], tuple[float, int]]
    """(slice or None, metric) → (mean squared change between consecutive nights, pairs)."""


@dataclass(frozen=True, kw_only=True)
class Plan:
    """Everything a run needs, loaded and validated before the first case runs."""

    config: Config
    cases: list[Case]
    thresholds: Thresholds
    baseline_path: Path | None
    baseline: Baseline | None
    prompt: dict[str, str] | None = None
    """The pipeline prompt's version and sha256, when the pipeline has a prompt file."""
    fingerprint: str = ""
    """Of the pipeline as configured (see ``pipeline_fingerprint``)."""
    names: tuple[str, ...] = ()
    """Every metric the run computes: the registry, ``@k`` metrics at every cutoff asked for."""
    thresholds_lines: Mapping[Loc, int] = field(default_factory=dict)
    """The line of every key path in the thresholds file (``rule_line`` finds a rule's)."""
    case_lines: Mapping[str, int] = field(default_factory=dict)
    """The golden set's line of each case, by id."""
    bar: Bar | None = None
    """Where thresholds and baseline were read (``--bar-from``, the action on pull requests)."""
    bar_change: BarChange | None = None
    """How the working tree's thresholds and baseline differ from the bar's ref."""
    reviews: tuple[Review, ...] = ()
    """reviews.jsonl, in file order (read from the working tree)."""
    quarantined: Mapping[str, str] = field(default_factory=dict)
    """Quarantined case id → its flips over the last nights ("0110", newest last): still run
    and reported, left out of the paired regression tests (see gate.history)."""
    noise: NoiseFloor | None = None
    """The noise floor the nightlies measured (``history.noise``), fed to the paired tests."""

    @cached_property
    def dataset_fingerprint(self) -> str:
        """Of the cases (``gate.load.dataset.fingerprint``), computed once."""
        return fingerprint(self.cases)


def prepare(
    config_path: Path, baseline_override: Path | None = None, bar_source: BarSource | None = None
) -> Plan:
    """Load and cross-check config, dataset, thresholds and baseline (``gate validate``).

    With ``bar_source``, thresholds and baseline are the ones at its ref (see ``judged_bar``).
    """
    config = load_config(config_path)
    cases, case_lines = read_dataset(config.resolve(config.dataset), generation.empty_gold_answer)
    thresholds, thresholds_lines = (
        read_thresholds(config.resolve(config.thresholds), metrics.parse_metric)
        if config.thresholds
        else (Thresholds(), {})
    )
    baseline_path = baseline_override or (
        config.resolve(config.baseline) if config.baseline else None
    )
    baseline = read_baseline(baseline_path) if baseline_path else None
    bar = None
    if bar_source is not None:
        bar, used = judged_bar(bar_source, config, thresholds, baseline_path, baseline)
        thresholds, baseline_path, baseline = used.thresholds, used.baseline_path, used.baseline
    tags = {tag for case in cases for tag in case.tags}
    # Judged by a ref's bar, only the ref's reviews count, unless the change is approved.
    by_ref = bar is not None and not bar.first and bar_source is not None
    at_ref = bar_source if by_ref and bar_source and not bar_source.honour_change else None
    reviews = _reviews(config, thresholds, tags, at_ref)
    unknown = sorted(set(thresholds.slices) - tags)
    if unknown:
        raise ConfigError(
            f"{config.thresholds}: slices: no case is tagged {', '.join(map(repr, unknown))}; "
            f"tags in the golden set: {', '.join(sorted(tags)) or 'none'} (fix: check the spelling)"
        )
    must = thresholds.must_pass
    missing_tags = sorted(set(must.tags) - tags)
    missing_ids = sorted(set(must.cases) - {case.id for case in cases})
    if missing_tags or missing_ids:
        what = [f"no case is tagged {t!r}" for t in missing_tags]
        what += [f"no case has id {i!r}" for i in missing_ids]
        raise ConfigError(
            f"{config.thresholds}: must_pass: {'; '.join(what)} (fix: check the spelling)"
        )
    prompt = prompt_identity(config)  # a bad prompt file stops the run before the first case
    judged = set(config.metrics.judge.metrics) if config.metrics.judge else set()
    unjudged = sorted(set(get_args(JudgedMetric)) & thresholds.names() - judged)
    if unjudged:
        raise ConfigError(
            f"{config.thresholds}: {', '.join(unjudged)}: a judged metric needs the judge to run "
            "it (fix: add it to `metrics.judge` in gate.yml, see docs/openai.md)"
        )
    return Plan(
        config=config,
        cases=cases,
        thresholds=thresholds,
        baseline_path=baseline_path,
        baseline=baseline,
        prompt=prompt,
        fingerprint=pipeline_fingerprint(config, prompt),
        names=tuple(metrics.metric_names(cutoffs(config, thresholds))),
        thresholds_lines=thresholds_lines,
        case_lines=case_lines,
        bar=bar,
        bar_change=bar.change if bar else None,
        reviews=reviews,
    )


def judged_bar(
    source: BarSource,
    config: Config,
    thresholds: Thresholds,
    baseline_path: Path | None,
    baseline: Baseline | None,
) -> tuple[Bar, BarFiles]:
    """The bar to judge by: the ref's, or the working tree's when it differs and may be honoured."""
    here = BarFiles(
        config.resolve(config.thresholds) if config.thresholds else None,
        thresholds,
        baseline_path,
        baseline,
    )
    there = read_at_ref(source, config, metrics.parse_metric)
    if there is None:
        return Bar(source.ref, source.via, "change", source.approval, None, first=True), here
    change = compare_bars(config, there, here)
    used: Literal["ref", "change"] = "change" if change and source.honour_change else "ref"
    bar = Bar(source.ref, source.via, used, source.approval, change)
    return bar, here if used == "change" else there


def _reviews(
    config: Config, thresholds: Thresholds, tags: set[str], at_ref: BarSource | None
) -> tuple[Review, ...]:
    """The reviews that count. Judged by a ref's bar, they are the ref's too: a pull request
    cannot approve its own outputs by adding lines, unless its bar change is approved."""
    policy = thresholds.review
    if policy is not None:
        missing = sorted(set(policy.tags) - tags)
        if missing:
            raise ConfigError(
                f"{config.thresholds}: review.tags: no case is tagged "
                f"{', '.join(map(repr, missing))} (fix: check the spelling)"
            )
        if config.reviews is None:
            raise ConfigError(
                f"{config.path}: reviews: the thresholds ask for reviews of "
                f"{', '.join(policy.tags)} but gate.yml names no reviews file "
                "(fix: add `reviews: reviews.jsonl`)"
            )
    if config.reviews is None:
        return ()
    path = config.resolve(config.reviews)
    if at_ref is None:
        return tuple(read_reviews(path))
    text = at_ref.read(path)
    where = f"{config.reviews}@{at_ref.ref[:12]}"
    return tuple(parse_reviews(text.encode("utf-8"), where)) if text is not None else ()


def cutoffs(config: Config, thresholds: Thresholds) -> list[int]:
    """The retrieval cutoffs to compute: the config's, plus any a threshold names."""
    ks = set(config.metrics.retrieval.k)
    ks.update(
        k for name in thresholds.names() if (k := metrics.parse_metric(name).cutoff) is not None
    )
    return sorted(ks)


def prompt_identity(config: Config) -> dict[str, str] | None:
    if not isinstance(config.pipeline, OpenAIPipeline):
        return None
    return pipeline_prompt(config.pipeline, config)[0].identity()


def pipeline_fingerprint(config: Config, prompt: dict[str, str] | None) -> str:
    body = config.model_dump(mode="json", include={"pipeline", "metrics"})
    # Files the config points to change what is measured as much as the config does.
    if prompt is not None:
        body["prompt"] = prompt
    if config.metrics.judge is not None:
        body["rubrics"] = rubric_versions(config.metrics.judge)
    if config.pipeline.watch:
        body["watch"] = watched(config)
    return "sha256:" + hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def watched(config: Config) -> dict[str, str]:
    """The sha256 of every file ``pipeline.watch`` names, by its path relative to the config."""
    digests = {}
    for i, pattern in enumerate(config.pipeline.watch):
        files = [path for path in sorted(config.root.glob(pattern)) if path.is_file()]
        if not files:
            raise ConfigError(
                f"{config.path}: pipeline.watch[{i}]: {pattern!r} matches no file under "
                f"{config.root} (fix: check the glob, relative to the config's folder)"
            )
        for path in files:
            key = path.relative_to(config.root).as_posix()
            digests[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digests
