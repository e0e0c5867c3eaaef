"""gate.yml and the thresholds file: what the user declared before the change.

Both are validated with pydantic (``extra="forbid"``: a misspelt key is an error, never a silently
ignored setting), and every problem is reported as ``file:line: key: problem (fix)``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol, get_args

from pydantic import AfterValidator, Field, ValidationError, ValidationInfo, field_validator

from gate.errors import ConfigError
from gate.load.validation import Loc, Strict, capped, describe, read_yaml
from gate.scrub import DEFAULT_PATTERNS, ENV_REFERENCE, Scrubber, secret_values


class _Watched(Strict):
    watch: list[str] = Field(
        default_factory=list,
        description="globs of files the pipeline depends on (its code, an index): part of its "
        "fingerprint, so runner.cache reuses no output once one of them changes",
    )


class PythonPipeline(_Watched):
    adapter: Literal["python"]
    target: str = Field(description='"module:function", called with (input, case)')
    isolation: Literal["process", "thread"] = Field(
        "process",
        description="process: warm worker processes, killed on timeout; thread: in the gate",
    )

    @field_validator("target")
    @classmethod
    def _module_colon_function(cls, value: str) -> str:
        if not re.fullmatch(r"[\w.]+:[\w.]+", value):
            raise ValueError(
                f'must be "module:function", e.g. "examples.rag:answer", not {value!r}'
            )
        return value


def _http_address(value: str) -> str:
    if not re.match(r"https?://", value):
        raise ValueError(f"must start with http:// or https://, not {value!r}")
    return value


HttpAddress = Annotated[str, AfterValidator(_http_address)]


class HttpPipeline(_Watched):
    adapter: Literal["http"]
    url: HttpAddress
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="${VAR} is replaced by the environment variable VAR: keep secrets out of files",
    )


class CommandPipeline(_Watched):
    adapter: Literal["command"]
    command: list[str] = Field(min_length=1)
    processes: int = Field(1, ge=1, le=64, description="long-lived processes serving cases")


class ReplayPipeline(_Watched):
    adapter: Literal["replay"]
    path: Path


class Price(Strict):
    """US dollars per million tokens, as providers publish their prices."""

    input_per_mtok: float = Field(ge=0, allow_inf_nan=False)
    output_per_mtok: float = Field(ge=0, allow_inf_nan=False)


class _ChatEndpoint(Strict):
    """An OpenAI-compatible Chat Completions endpoint. The key is read from the environment."""

    base_url: HttpAddress = "https://api.openai.com/v1"
    api_key_env: str | None = Field(
        "OPENAI_API_KEY",
        description="the environment variable holding the key; null sends none (a local server)",
    )
    prices: dict[str, Price] = Field(default_factory=dict, description="by model name")

    @field_validator("api_key_env")
    @classmethod
    def _variable_name(cls, value: str | None) -> str | None:
        # The message must not echo the value: a key pasted here by mistake stays out of logs.
        if value is not None and not re.fullmatch(r"[A-Za-z_]\w*", value):
            raise ValueError(
                "must be the name of an environment variable, e.g. OPENAI_API_KEY, never the key "
                "itself (fix: export the key under that name, keep it out of files)"
            )
        return value


class OpenAIPipeline(_ChatEndpoint, _Watched):
    adapter: Literal["openai"]
    prompt: Path = Field(description="front matter (version, model, sampling), then a template")
    model: str | None = Field(None, description="overrides the prompt's `model:`")
    fallback_models: list[str] = Field(
        default_factory=list, description="tried in order when a model fails (docs/openai.md)"
    )


Pipeline = Annotated[
    PythonPipeline | HttpPipeline | CommandPipeline | ReplayPipeline | OpenAIPipeline,
    Field(discriminator="adapter"),
]


class Runner(Strict):
    concurrency: int = Field(8, ge=1, le=1024)
    timeout_s: float = Field(30.0, gt=0)
    retries: int = Field(2, ge=0, le=10)
    repeats: int = Field(1, ge=1, le=100)
    max_error_rate: float = Field(
        0.05,
        ge=0,
        le=1,
        description="errors + timeouts over all runs; above it the gate fails closed",
    )
    cache: Path | None = Field(
        None, description="a folder: reuse a case's output while case, pipeline, repeat agree"
    )


class RetrievalOptions(Strict):
    k: list[Annotated[int, Field(ge=1)]] = Field(default_factory=lambda: [1, 5, 10], min_length=1)


JudgedMetric = Literal[
    "generation.faithfulness_judge",
    "generation.answer_relevance_judge",
    "generation.correctness_judge",
]


class JudgeOptions(_ChatEndpoint):
    """The LLM judge behind the judged metrics (gate/judge.py): opt-in, its own endpoint."""

    model: str
    metrics: list[JudgedMetric] = Field(
        default_factory=lambda: list(get_args(JudgedMetric)), min_length=1
    )
    cache_dir: Path = Field(
        Path(".gate-cache/judge"), description="verdicts by (model, rubric, inputs)"
    )
    retries: int = Field(
        2, ge=0, le=10, description="re-asks after a reply that is not the rubric's JSON or fails"
    )
    timeout_s: float = Field(60.0, gt=0)
    concurrency: int = Field(4, ge=1, le=64)


class MetricOptions(Strict):
    retrieval: RetrievalOptions = Field(default_factory=RetrievalOptions)
    judge: JudgeOptions | None = None


class Comparison(Strict):
    """How a change against the baseline is judged to be a regression (see gate.decide.stats)."""

    confidence: float = Field(0.95, gt=0.5, lt=1)
    strict: bool = Field(False, description="fail on the point estimate, significant or not")
    resamples: int = Field(2000, ge=100, le=100_000)
    seed: int = 0
    second_stage: bool = Field(
        False,
        description="when a regression cannot be told from noise, run every case twice more "
        "and decide on the 3 runs (docs/verdict.md)",
    )
    baseline_max_age_days: int = Field(30, ge=1, description="past it, the baseline is stale")


class Quarantine(Strict):
    """A case that flipped on unchanged code in at least ``flips`` of the last ``nights`` nightly
    runs is quarantined (see gate.history); it is released after ``nights`` stable nights."""

    flips: int = Field(2, ge=1)
    nights: int = Field(7, ge=1, le=365)

    @field_validator("nights")
    @classmethod
    def _window(cls, nights: int, info: ValidationInfo) -> int:
        if nights < info.data.get("flips", 1):
            raise ValueError("must be at least `flips` (fix: flips: K, nights: M with K <= M)")
        return nights


class Noise(Strict):
    """Measure the noise floor from the last ``nights`` nightly runs on unchanged code and add
    its run-level drift to the paired tests (gate.decide.family)."""

    nights: int = Field(14, ge=2, le=365)


class History(Strict):
    quarantine: Quarantine | None = None
    """Off unless set: ``history: {quarantine: {flips: 2, nights: 7}}``."""
    noise: Noise | None = None
    """Off unless set: ``history: {noise: {nights: 14}}``."""


class Config(Strict):
    dataset: Path
    pipeline: Pipeline
    runner: Runner = Field(default_factory=Runner)
    metrics: MetricOptions = Field(default_factory=MetricOptions)
    thresholds: Path | None = None
    baseline: Path | None = None
    reviews: Path | None = Field(None, description="reviews.jsonl: human reviews of outputs")
    comparison: Comparison = Field(default_factory=Comparison)
    redact: list[str] | None = Field(
        None, description="regexes scrubbed from everything stored or printed (gate.scrub)"
    )
    history: History = Field(default_factory=History)

    path: Path = Field(Path("gate.yml"), exclude=True)
    """Where the config was read from; relative paths inside it are relative to its folder."""

    @property
    def root(self) -> Path:
        return self.path.parent

    def resolve(self, path: Path) -> Path:
        return self.root / path  # pathlib keeps an absolute path as it is

    @field_validator("redact")
    @classmethod
    def _regexes(cls, patterns: list[str] | None) -> list[str] | None:
        for pattern in patterns or ():
            try:
                re.compile(pattern)
                # And as it is used, one branch of the scrubber's alternation (no global flags).
                re.compile(f"(?:{pattern})")
            except re.error as exc:
                raise ValueError(f"{pattern!r} is not a regular expression: {exc}") from None
        return patterns

    def secret_variables(self) -> list[str]:
        """The environment variables this config reads secrets from (API keys, ``${VAR}`` in
        headers): their values are scrubbed from everything the gate writes."""
        names = [self.pipeline.api_key_env] if isinstance(self.pipeline, OpenAIPipeline) else []
        if isinstance(self.pipeline, HttpPipeline):
            names += [n for v in self.pipeline.headers.values() for n in ENV_REFERENCE.findall(v)]
        if self.metrics.judge is not None:
            names.append(self.metrics.judge.api_key_env)
        return [name for name in names if name]

    def scrubber(self, env: Mapping[str, str]) -> Scrubber:
        """The run's one scrubber: the secrets in ``env`` and the ``redact:`` patterns."""
        patterns = DEFAULT_PATTERNS if self.redact is None else tuple(self.redact)
        return Scrubber(tuple(secret_values(env, self.secret_variables())), patterns)


def load_config(path: Path) -> Config:
    """Read and validate gate.yml; relative paths in it stay relative to its folder."""
    data, lines = read_yaml(path, "config")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: must be a mapping with at least `dataset` and `pipeline`")
    try:
        config = Config.model_validate({**data, "path": path})
    except ValidationError as exc:
        problems = describe(exc, Config, str(path), lines)
        raise ConfigError(capped(problems, "problems")) from None
    return config


# --- thresholds -------------------------------------------------------------------------------


class Rule(Strict):
    """The bars one metric must clear. Relative rules compare with the baseline."""

    # Finite bars only: `.inf` in YAML would disable a rule silently, and is not JSON.
    min: float | None = Field(None, allow_inf_nan=False)
    max: float | None = Field(None, allow_inf_nan=False)
    max_drop: float | None = Field(None, ge=0, allow_inf_nan=False)
    max_drop_pct: float | None = Field(None, ge=0, allow_inf_nan=False)
    max_increase: float | None = Field(None, ge=0, allow_inf_nan=False)
    max_increase_pct: float | None = Field(None, ge=0, allow_inf_nan=False)

    def declared(self) -> dict[str, float]:
        return {k: v for k, v in self.model_dump().items() if v is not None}


class MustPass(Strict):
    """Cases that must all pass whatever the statistics say (high-risk paths)."""

    tags: list[str] = Field(default_factory=list)
    cases: list[str] = Field(default_factory=list)


class ReviewPolicy(Strict):
    """Slices whose every output needs a person's approval (gate/decide/review.py)."""

    tags: list[str] = Field(min_length=1)
    max_age_days: int | None = Field(None, ge=1, description="an older approval has expired")


class Thresholds(Strict):
    metrics: dict[str, Rule] = Field(default_factory=dict)
    slices: dict[str, dict[str, Rule]] = Field(default_factory=dict)
    must_pass: MustPass = Field(default_factory=MustPass)
    review: ReviewPolicy | None = None
    primary: str | None = None
    """The metric the change is about (e.g. ``agent.task_success``): its overall regression
    rules are tested on their own with most of the false-alarm budget, every other regression
    check jointly with the rest (``gate.decide.verdict.family``)."""

    def names(self) -> set[str]:
        return set(self.metrics) | {name for rules in self.slices.values() for name in rules}

    def relative_rules(self, metric: str) -> list[str]:
        """The overall regression rules (against the baseline) declared for ``metric``."""
        rule = self.metrics.get(metric)
        declared = rule.declared() if rule is not None else {}
        return [r for r in DROP_RULES + INCREASE_RULES if r in declared]


DROP_RULES = ("max_drop", "max_drop_pct")
INCREASE_RULES = ("max_increase", "max_increase_pct")


class KnownMetric(Protocol):
    @property
    def higher_is_better(self) -> bool: ...


def load_thresholds(path: Path, parse_metric: Callable[[str], KnownMetric]) -> Thresholds:
    """Read a thresholds file (see ``read_thresholds``)."""
    return read_thresholds(path, parse_metric)[0]


def read_thresholds(
    path: Path, parse_metric: Callable[[str], KnownMetric]
) -> tuple[Thresholds, dict[Loc, int]]:
    """Read a thresholds file; every metric it names must exist, with rules in its bad direction.
    Returns the thresholds and the line of every key path (``("slices", tag, metric)``), which
    the report cites for a failing rule.

    ``parse_metric`` is the metric registry's (which decides what names exist): it raises
    ValueError, with the known names, for a name that is not a metric.
    """
    data, lines = read_yaml(path, "thresholds file")
    return parse_thresholds(data, lines, str(path), parse_metric), lines


def parse_thresholds(
    data: Any, lines: dict[Loc, int], path: str, parse_metric: Callable[[str], KnownMetric]
) -> Thresholds:
    """Validate parsed thresholds YAML (``path`` names where it came from in messages)."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: must be a mapping of `metrics:`, `slices:` and `must_pass:`")
    try:
        thresholds = Thresholds.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(capped(describe(exc, Thresholds, str(path), lines), "problems")) from None

    problems = []
    for loc, name, rule in _rules(thresholds):
        line = lines.get((*loc, name))
        place = f"{path}:{line}" if line else str(path)
        try:
            spec = parse_metric(name)
        except ValueError as exc:
            problems.append(f"{place}: {'.'.join(map(str, loc))}.{name}: {exc}")
            continue
        declared = rule.declared()
        if not declared:
            problems.append(f"{place}: {name}: no rule (fix: give min, max, max_drop, ...)")
        wrong = INCREASE_RULES if spec.higher_is_better else DROP_RULES
        right = DROP_RULES if spec.higher_is_better else INCREASE_RULES
        for key in wrong:
            if key in declared:
                better = "higher" if spec.higher_is_better else "lower"
                problems.append(
                    f"{place}: {name}.{key}: {better} is better for this metric, so its bad "
                    f"direction is a {'drop' if spec.higher_is_better else 'rise'} "
                    f"(fix: use {' or '.join(right)})"
                )
        if rule.min is not None and rule.max is not None and rule.min > rule.max:
            problems.append(f"{place}: {name}: min {rule.min} > max {rule.max}")
    primary = thresholds.primary
    if primary is not None and not thresholds.relative_rules(primary):
        line = lines.get(("primary",))
        problems.append(
            f"{path}{f':{line}' if line else ''}: primary: {primary!r} has no regression rule "
            f"under `metrics:` (fix: name a metric of `metrics:` with "
            f"{' or '.join(DROP_RULES + INCREASE_RULES)}, or remove `primary`)"
        )
    if problems:
        raise ConfigError(capped(problems, "problems"))
    return thresholds


def rule_line(lines: Mapping[Loc, int], metric: str, slice_name: str | None) -> int | None:
    """The line of a rule in its thresholds file: the metric's key, under its slice if any."""
    return lines.get(("slices", slice_name, metric) if slice_name else ("metrics", metric))


def must_pass_line(lines: Mapping[Loc, int], tag: str | None, tags: Sequence[str]) -> int | None:
    """The line of a must_pass entry: the tag in ``must_pass.tags``, or ``must_pass.cases``."""
    if tag is not None and tag in tags:
        return lines.get(("must_pass", "tags", tags.index(tag)))
    return lines.get(("must_pass", "cases"))


def _rules(thresholds: Thresholds) -> list[tuple[Loc, str, Rule]]:
    out: list[tuple[Loc, str, Rule]] = [(("metrics",), n, r) for n, r in thresholds.metrics.items()]
    for tag, rules in thresholds.slices.items():
        out += [(("slices", tag), n, r) for n, r in rules.items()]
    return out
