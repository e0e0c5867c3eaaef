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
from pathlib import Path
from typing import get_args

from gate import metrics
from gate.errors import ConfigError
from gate.judge import rubric_versions
from gate.load.baseline import Baseline, read_baseline
from gate.load.config import (
    Config,
    JudgedMetric,
    OpenAIPipeline,
    Thresholds,
    load_config,
    read_thresholds,
)
from gate.load.dataset import Case, read_dataset
from gate.load.validation import Loc
from gate.run.adapters.openai import pipeline_prompt


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
    quarantined: Mapping[str, str] = field(default_factory=dict)
    """Quarantined case id → its flips over the last nights ("0110", newest last): still run
    and reported, left out of the paired regression tests (see gate.history)."""


def prepare(config_path: Path, baseline_override: Path | None = None) -> Plan:
    """Load and cross-check config, dataset, thresholds and baseline (``gate validate``)."""
    config = load_config(config_path)
    cases, case_lines = read_dataset(config.resolve(config.dataset))
    thresholds, thresholds_lines = (
        read_thresholds(config.resolve(config.thresholds), metrics.parse_metric)
        if config.thresholds
        else (Thresholds(), {})
    )
    tags = {tag for case in cases for tag in case.tags}
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
    baseline_path = baseline_override or (
        config.resolve(config.baseline) if config.baseline else None
    )
    baseline = read_baseline(baseline_path) if baseline_path else None
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
    )


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
    return "sha256:" + hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
