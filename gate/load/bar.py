"""The bar a change is judged by: thresholds and baseline as they were declared before it.

A pull request must not set its own bar. The edges (``gate run --bar-from REF``, the action on
``pull_request`` events) hand the plan a ``BarSource``: the text of a file as it is at a git ref,
read through git or GitHub's API. Here that text becomes thresholds and a baseline, and the
working tree's files are compared with them, so a report can show what a change would move.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from gate.errors import ConfigError
from gate.load.baseline import Baseline, parse_baseline
from gate.load.config import Config, KnownMetric, Rule, Thresholds, parse_thresholds
from gate.load.validation import parse_yaml

BarReader = Callable[[Path], str | None]
"""The text of a file (a path as gate.yml resolves it) at the bar's ref; None when absent there."""

DEFAULT_APPROVAL_LABEL = "gate: approve bar change"


@dataclass(frozen=True)
class BarSource:
    """Where the bar is read from, and whether a change to it may be honoured."""

    ref: str
    """The commit (or the name the user gave), as shown in messages and the report."""
    read: BarReader
    via: str = "git"
    """How the files were read: ``git`` or ``GitHub API``."""
    honour_change: bool = False
    """Use the working tree's bar when it differs (the action: an approval label is on the PR)."""
    approval: str | None = None
    """The label that approves a change (the action), None for ``--bar-from``."""


@dataclass(frozen=True)
class RuleChange:
    """One rule (or baseline value) that differs: as the ref declares it, and as the change does.

    ``None`` on one side: the rule is added or removed. ``rule`` is a threshold key (``min``,
    ``max_drop``, ...), ``must_pass`` (``metric`` is then ``tag`` or ``case``), or ``baseline``.
    """

    metric: str
    slice: str | None
    rule: str
    base: float | str | None
    change: float | str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "slice": self.slice,
            "rule": self.rule,
            "base": self.base,
            "change": self.change,
        }


@dataclass(frozen=True)
class BarChange:
    """How the working tree's bar differs from the ref's."""

    files: tuple[str, ...]
    """The files that differ, as gate.yml names them."""
    rules: tuple[RuleChange, ...]
    baseline_changed: bool


@dataclass(frozen=True)
class Bar:
    """The bar a run is judged by: where it came from, and what the change would move."""

    ref: str
    via: str
    used: Literal["ref", "change"]
    """``ref``: the ref's files; ``change``: the working tree's (an approved or a first bar)."""
    approval: str | None
    change: BarChange | None
    first: bool = False
    """The ref has no gate.yml: nothing was declared before the change, so its own bar is used."""

    def to_json(self) -> dict[str, Any]:
        change = self.change
        return {
            "ref": self.ref,
            "via": self.via,
            "used": self.used,
            "approval_label": self.approval,
            "approved": self.used == "change" and not self.first,
            "first": self.first,
            "changed_files": list(change.files) if change else [],
            "changes": [r.to_json() for r in change.rules] if change else [],
            "baseline_changed": change.baseline_changed if change else False,
        }


@dataclass(frozen=True)
class BarFiles:
    """Thresholds and baseline as read from one place (the ref, or the working tree)."""

    thresholds_path: Path | None
    thresholds: Thresholds
    baseline_path: Path | None
    baseline: Baseline | None


def read_at_ref(
    source: BarSource,
    config: Config,
    parse_metric: Callable[[str], KnownMetric],
) -> BarFiles | None:
    """The thresholds and baseline at ``source.ref``; None when gate.yml is not there.

    The paths are those of gate.yml as it is at the ref, so a change cannot escape the bar by
    pointing ``thresholds:`` at a new file. A file gate.yml names but the ref lacks is no bar: no
    rules, or no baseline.
    """
    paths = _paths_at_ref(source, config)
    if paths is None:
        return None
    thresholds_path, baseline_path = paths
    thresholds = Thresholds()
    if thresholds_path is not None:
        text = source.read(thresholds_path)
        if text is not None:
            where = f"{_named(config, thresholds_path)}@{source.ref}"
            data, lines = parse_yaml(text.removeprefix("\ufeff"), where, "thresholds file")
            thresholds = parse_thresholds(data, lines, where, parse_metric)
    baseline = None
    if baseline_path is not None:
        text = source.read(baseline_path)
        if text is not None:
            baseline = parse_baseline(text, f"{_named(config, baseline_path)}@{source.ref}")
    return BarFiles(thresholds_path, thresholds, baseline_path, baseline)


def compare_bars(config: Config, base: BarFiles, change: BarFiles) -> BarChange | None:
    """What the change moves against the base bar; None when both declare the same bar."""
    rules = _rule_changes(base.thresholds, change.thresholds)
    rules += _baseline_changes(base.baseline, change.baseline)
    files = []
    if base.thresholds_path != change.thresholds_path or base.baseline_path != change.baseline_path:
        files.append(_named(config, config.path))
    if base.thresholds != change.thresholds:
        files.append(_named(config, change.thresholds_path or base.thresholds_path))
    baseline_changed = base.baseline != change.baseline
    if baseline_changed:
        files.append(_named(config, change.baseline_path or base.baseline_path))
    if not files:
        return None
    return BarChange(tuple(dict.fromkeys(files)), tuple(rules), baseline_changed)


def _paths_at_ref(source: BarSource, config: Config) -> tuple[Path | None, Path | None] | None:
    here = (
        config.resolve(config.thresholds) if config.thresholds else None,
        config.resolve(config.baseline) if config.baseline else None,
    )
    text = source.read(config.path)
    if text is None:
        return None
    try:
        data, _ = parse_yaml(text.removeprefix("\ufeff"), f"{config.path}@{source.ref}")
    except ConfigError:
        return here  # gate.yml was broken at the ref: its paths are the working tree's
    if not isinstance(data, dict):
        return here
    return (
        _resolved(config, data.get("thresholds"), here[0]),
        _resolved(config, data.get("baseline"), here[1]),
    )


def _resolved(config: Config, value: object, fallback: Path | None) -> Path | None:
    if value is None:
        return None
    return config.resolve(Path(value)) if isinstance(value, str) and value else fallback


def _named(config: Config, path: Path | None) -> str:
    if path is None:
        return "?"
    try:
        return path.relative_to(config.root).as_posix()
    except ValueError:
        return str(path)


def _rule_changes(base: Thresholds, change: Thresholds) -> list[RuleChange]:
    out = _rules_of(None, base.metrics, change.metrics)
    for tag in dict.fromkeys([*base.slices, *change.slices]):
        out += _rules_of(tag, base.slices.get(tag, {}), change.slices.get(tag, {}))
    for kind, before, after in (
        ("tag", base.must_pass.tags, change.must_pass.tags),
        ("case", base.must_pass.cases, change.must_pass.cases),
    ):
        out += [
            RuleChange(kind, None, "must_pass", name, None) for name in before if name not in after
        ]
        out += [
            RuleChange(kind, None, "must_pass", None, name) for name in after if name not in before
        ]
    return out


def _rules_of(
    tag: str | None, base: Mapping[str, Rule], change: Mapping[str, Rule]
) -> list[RuleChange]:
    out = []
    for metric in dict.fromkeys([*base, *change]):
        before = base[metric].declared() if metric in base else {}
        after = change[metric].declared() if metric in change else {}
        out += [
            RuleChange(metric, tag, key, before.get(key), after.get(key))
            for key in dict.fromkeys([*before, *after])
            if before.get(key) != after.get(key)
        ]
    return out


def _baseline_changes(base: Baseline | None, change: Baseline | None) -> list[RuleChange]:
    def values(baseline: Baseline | None) -> dict[tuple[str | None, str], float | None]:
        if baseline is None:
            return {}
        out: dict[tuple[str | None, str], float | None] = {
            (None, name): value for name, value in baseline.metrics.items()
        }
        for tag, metrics in baseline.slices.items():
            out.update({(tag, name): value for name, value in metrics.items()})
        return out

    before, after = values(base), values(change)
    return [
        RuleChange(metric, tag, "baseline", before.get((tag, metric)), after.get((tag, metric)))
        for tag, metric in dict.fromkeys([*before, *after])
        if before.get((tag, metric)) != after.get((tag, metric))
    ]
