"""The LLM-judge step: after the runner, before the metrics, only when ``metrics.judge`` is set.

For every record and every judged metric, the judge model reads a versioned rubric
(``gate/rubrics/*.md``, prompt files like a pipeline's) and replies with JSON. The verdict and the
score it implies are stored on the record (``Record.judgements``), where the metric registry reads
them: a reader of records.jsonl sees every claim and reason, and no metric ever calls a model.

- A reply that is not the rubric's JSON is asked for again (``retries`` times, telling the model
  what was wrong), then recorded as a judge error: no score, so the metric leaves the case out,
  and the report says how many. 429, 5xx and timeouts are retried within the same budget, with
  the runner's backoff (``gate.retry``, honouring ``Retry-After``).
- Verdicts are cached on disk, one file per sha256 of (judge model, rubric version and text,
  inputs): a re-run of unchanged cases sends nothing. Only verdicts are cached: never an error,
  never the key.
- The judge's tokens and cost are its own (the report's ``judge`` key), never the pipeline's.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from gate.errors import ConfigError
from gate.files import write_atomic
from gate.llm import ChatClient, LLMError, decode_json_object, read_api_key
from gate.load.config import JudgeOptions
from gate.load.dataset import Case
from gate.load.prompts import Prompt, contexts_text, load_prompt, reference_contexts
from gate.load.validation import dotted
from gate.retry import CaseTimeout, Transient, backoff_s
from gate.run.records import Judgement, Record

RUBRICS_DIR = Path(__file__).with_name("rubrics")
RUBRIC_PLACEHOLDERS = frozenset({"question", "answer", "contexts", "expected"})
REASK = (
    "Your reply was not what the instructions ask for ({problem}). Reply with the JSON object only."
)


class _Reply(BaseModel):
    # Lenient on extra keys: a judge that adds a field has still given its verdict.
    model_config = ConfigDict(extra="ignore", frozen=True)

    def score(self) -> float | None:
        raise NotImplementedError


class Claim(_Reply):
    claim: str
    supported: bool
    reason: str = ""


class FaithfulnessReply(_Reply):
    claims: list[Claim]

    def score(self) -> float | None:
        """Supported claims / claims (Ragas faithfulness); None when the answer claims nothing."""
        return _share([c.supported for c in self.claims])


class Statement(_Reply):
    statement: str
    relevant: bool
    reason: str = ""


class RelevanceReply(_Reply):
    statements: list[Statement]

    def score(self) -> float | None:
        """Relevant statements / statements (DeepEval's answer relevancy)."""
        return _share([s.relevant for s in self.statements])


CORRECTNESS = {"correct": 1.0, "partially_correct": 0.5, "incorrect": 0.0}


class CorrectnessReply(_Reply):
    verdict: Literal["correct", "partially_correct", "incorrect"]
    reason: str = ""

    def score(self) -> float | None:
        return CORRECTNESS[self.verdict]


def _share(flags: list[bool]) -> float | None:
    return sum(flags) / len(flags) if flags else None


@dataclass(frozen=True)
class RubricSpec:
    file: str
    reply: type[_Reply]
    needs: tuple[str, ...]
    """Inputs besides the question and answer that a case must have to be judged at all."""
    no_answer: float | None
    """The score of a run without an answer, given without asking the judge; None: not measured
    (an empty answer claims nothing, so it cannot be unfaithful)."""


RUBRICS: dict[str, RubricSpec] = {
    "generation.faithfulness_judge": RubricSpec(
        "faithfulness.md", FaithfulnessReply, ("contexts",), None
    ),
    "generation.answer_relevance_judge": RubricSpec("answer_relevance.md", RelevanceReply, (), 0.0),
    "generation.correctness_judge": RubricSpec(
        "correctness.md", CorrectnessReply, ("expected",), 0.0
    ),
}
"""Every judged metric's rubric, reply shape and inputs."""


@dataclass(frozen=True)
class Rubric:
    spec: RubricSpec
    prompt: Prompt


def load_rubric(name: str) -> Rubric:
    spec = RUBRICS[name]
    return Rubric(spec, load_prompt(RUBRICS_DIR / spec.file, RUBRIC_PLACEHOLDERS))


def rubric_versions(options: JudgeOptions) -> dict[str, str]:
    """The configured metrics' rubric versions, for the pipeline's fingerprint."""
    return {name: load_rubric(name).prompt.version for name in options.metrics}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _contexts(case: Case, record: Record) -> str:
    """What the answer should rest on: the retrieved texts, else the case's reference contexts."""
    retrieved = [
        (item.id, item.text)
        for item in record.output.retrieved or ()
        if not isinstance(item, str) and item.text
    ]
    try:
        return contexts_text(retrieved or reference_contexts(case))
    except ValueError:  # malformed metadata.contexts: nothing to judge against
        return ""


def judge_inputs(spec: RubricSpec, case: Case, record: Record) -> dict[str, str] | None:
    """The rubric's inputs for one record; None when the case lacks what the rubric needs."""
    values = {"question": _text(case.input), "answer": record.output.answer or ""}
    if "contexts" in spec.needs:
        values["contexts"] = _contexts(case, record)
    if "expected" in spec.needs:
        values["expected"] = "\n".join(f"- {a}" for a in case.expected.answer or ())
    if not all(values[need] for need in spec.needs):
        return None
    return values


def cache_key(model: str, prompt: Prompt, values: dict[str, str]) -> str:
    """sha256 of the judge model, the rubric (version and text) and the inputs."""
    body = {"model": model, "rubric": prompt.identity(), "inputs": values}
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class JudgeCache:
    """Verdicts on disk, one small JSON file per key: ``<folder>/<key[:2]>/<key>.json``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        try:
            folder.mkdir(parents=True, exist_ok=True)
            ignore = folder / ".gitignore"
            if not ignore.exists():
                # Like .pytest_cache: model answers stay out of commits unless someone opts in.
                ignore.write_text("# created by gate\n*\n", encoding="utf-8")
        except OSError as exc:
            raise ConfigError(
                f"metrics.judge.cache_dir: cannot create {folder}: {exc.strerror} "
                "(fix: point it to a writable folder)"
            ) from None

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        """The reply stored under ``key``; None when absent or unreadable (then asked again)."""
        try:
            entry = json.loads(self._path(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        reply = entry.get("reply") if isinstance(entry, dict) else None
        return reply if isinstance(reply, dict) else None

    def put(self, key: str, entry: dict[str, Any]) -> None:
        write_atomic(self._path(key), json.dumps(entry, ensure_ascii=False, sort_keys=True) + "\n")


@dataclass(frozen=True)
class _Outcome:
    judgement: Judgement
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0


@dataclass
class JudgeStats:
    """What the judge did and cost in this run: the report's ``judge`` key."""

    model: str
    calls: int = 0
    """Requests sent, retries included."""
    cached: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    priced: bool = True
    """False once a call's cost is unknown (no price for the model): the total is then None."""
    duration_s: float = 0.0
    metrics: dict[str, dict[str, int]] = field(default_factory=dict)

    def add(self, name: str, outcome: _Outcome) -> None:
        judgement = outcome.judgement
        counts = self.metrics.setdefault(name, {"judged": 0, "cached": 0, "errors": 0})
        counts["judged"] += judgement.error is None
        counts["cached"] += judgement.cached
        counts["errors"] += judgement.error is not None
        self.calls += outcome.calls
        self.cached += judgement.cached
        self.errors += judgement.error is not None
        self.input_tokens += outcome.input_tokens
        self.output_tokens += outcome.output_tokens
        if judgement.cost_usd is None and outcome.calls:
            self.priced = False
        self.cost_usd += judgement.cost_usd or 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "calls": self.calls,
            "cached": self.cached,
            "errors": self.errors,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": round(self.cost_usd, 6) if self.priced else None,
            "duration_s": round(self.duration_s, 3),
            "metrics": self.metrics,
        }


def _problem(exc: ValueError) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        return f"{dotted(first['loc'])}: {first['msg']}"
    return str(exc)


class Judge:
    """Asks the judge model for a verdict on every record and judged metric (see the module)."""

    def __init__(
        self,
        options: JudgeOptions,
        root: Path,
        env: Mapping[str, str],
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """``env`` holds the judge's API key (``options.api_key_env``)."""
        self._options = options
        self._rubrics: dict[str, Rubric] = {name: load_rubric(name) for name in options.metrics}
        api_key = read_api_key(env, options.api_key_env, "metrics.judge.api_key_env")
        self._client = ChatClient(options.base_url, api_key, options.prices, options.concurrency)
        folder = root / options.cache_dir  # an absolute cache_dir stays as it is
        self._cache = JudgeCache(folder)
        self._sleep = sleep
        self._rng = random.Random()
        self.stats = JudgeStats(options.model)
        """What every ``judge`` call so far did and cost."""

    def judge(self, cases: Mapping[str, Case], records: list[Record]) -> list[Record]:
        """The records (runs of ``cases``, by id) with their verdicts; what judging them cost is
        added to ``stats`` (a run is judged a chunk at a time). Never raises for a judge's
        failure: that is the verdict's ``error``."""
        jobs = [(i, name) for i in range(len(records)) for name in self._rubrics]
        begin = time.monotonic()
        with ThreadPoolExecutor(self._options.concurrency, thread_name_prefix="gate-judge") as pool:
            outcomes = list(
                pool.map(
                    lambda job: self._one(cases[records[job[0]].case_id], records[job[0]], job[1]),
                    jobs,
                )
            )
        stats = self.stats
        stats.duration_s += time.monotonic() - begin
        verdicts: list[dict[str, Judgement]] = [{} for _ in records]
        for (i, name), outcome in zip(jobs, outcomes, strict=True):
            if outcome is not None:
                verdicts[i][name] = outcome.judgement
                stats.add(name, outcome)
        return [replace(r, judgements=v) for r, v in zip(records, verdicts, strict=True)]

    def _one(self, case: Case, record: Record, name: str) -> _Outcome | None:
        rubric = self._rubrics[name]
        values = judge_inputs(rubric.spec, case, record)
        if values is None:
            return None
        model, version = self._options.model, rubric.prompt.version
        if not values["answer"]:
            if rubric.spec.no_answer is None:
                return None
            reason = {"reason": "the run gave no answer"}
            return _Outcome(Judgement(rubric.spec.no_answer, version, model, reason, cost_usd=0.0))
        key = cache_key(model, rubric.prompt, values)
        stored = self._cache.get(key)
        if stored is not None:
            try:
                reply = rubric.spec.reply.model_validate(stored)
            except ValidationError:
                pass  # written by an older reply shape: ask again
            else:
                verdict = reply.model_dump(mode="json")
                return _Outcome(
                    Judgement(reply.score(), version, model, verdict, cached=True, cost_usd=0.0)
                )
        return self._ask(rubric, values, key)

    def _ask(self, rubric: Rubric, values: dict[str, str], key: str) -> _Outcome:
        options = self._options
        version = rubric.prompt.version
        first = rubric.prompt.render(values)
        messages = first
        calls = input_tokens = output_tokens = 0
        cost: float | None = 0.0
        error = ""
        for attempt in range(options.retries + 1):
            calls += 1
            try:
                completion = self._client.complete(
                    options.model,
                    {"messages": messages, **rubric.prompt.parameters()},
                    options.timeout_s,
                )
            except (Transient, CaseTimeout) as exc:
                error = f"{type(exc).__name__}: {exc}"
                if attempt < options.retries:
                    self._sleep(backoff_s(attempt, getattr(exc, "retry_after", None), self._rng))
                continue
            except (LLMError, ValueError) as exc:
                error = f"{type(exc).__name__}: {exc}"
                break  # a refused request (4xx) is refused again
            input_tokens += completion.input_tokens or 0
            output_tokens += completion.output_tokens or 0
            cost = (
                None if cost is None or completion.cost_usd is None else cost + completion.cost_usd
            )
            try:
                raw = decode_json_object(completion.content)
                reply = rubric.spec.reply.model_validate(raw)
            except ValueError as exc:  # ValidationError is one
                error = f"the judge's reply is not the rubric's JSON: {_problem(exc)}"
                messages = [
                    *first,
                    {"role": "assistant", "content": completion.content or ""},
                    {"role": "user", "content": REASK.format(problem=_problem(exc))},
                ]
                continue
            self._cache.put(
                key,
                {"model": options.model, "rubric": version, "reply": raw, "cost_usd": cost},
            )
            verdict = reply.model_dump(mode="json")
            judgement = Judgement(reply.score(), version, options.model, verdict, cost_usd=cost)
            return _Outcome(judgement, calls, input_tokens, output_tokens)
        judgement = Judgement(None, version, options.model, error=error, cost_usd=cost)
        return _Outcome(judgement, calls, input_tokens, output_tokens)

    def close(self) -> None:
        self._client.close()
