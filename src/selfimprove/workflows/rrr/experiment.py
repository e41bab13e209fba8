"""The whole RRR measurement in one command: failures -> eval before -> RRR training -> eval after.

`run_experiment(config)` writes under `output_dir`: `failures/` (see `failures`), `eval_before.json`,
`train/` (the RRR run: adapter, health.jsonl, log_history.json), `eval_after.json`; and the
result table at `results` + ".json" / ".md" (the four numbers, settings, stage wall times and
training health). A stage whose output already exists is reused, so an interrupted experiment
resumes where it stopped (delete a stage's output to redo it), but only with the same config:
`output_dir/run.json` records it, and another config is a ConfigError naming the differences
unless `overwrite` deletes the experiment's outputs first; `output_dir/.lock` keeps a second
process out. Before and after are evaluated on
the same examples with the same sampling seed. Nothing is claimed beyond what is measured.

The failure set and the evaluation must come from different sources (`train_data`, `eval_data`,
both required): the same source, or one whose every problem is in the evaluation, is a
ConfigError; failure problems that an evaluation problem duplicates are dropped (`experiment_examples`).
RRR training uses the evaluation's budgets: the reflection gets `eval.reflection_max_tokens` tokens
(`trainer.max_completion_length`, which may be omitted but not set to anything else) and the retry
`eval.max_tokens`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field, ValidationInfo, field_validator, model_validator

from selfimprove.agent.reflect_retry import REFLECTION_PROMPT, RETRY_PROMPT
from selfimprove.config import StrictModel
from selfimprove.errors import ConfigError
from selfimprove.eval.reflection import (
    ReflectionSettings,
    evaluate_reflection,
    four_number_changes,
    four_number_table,
)
from selfimprove.models.adapters import LazyGenerator, load_generator_with_adapter
from selfimprove.train.config import LogprobPass, ModelSettings
from selfimprove.train.rollouts import RolloutGeneration
from selfimprove.workflows.rrr.failures import FailureSettings, collect_failures


class ExperimentConfig(StrictModel):
    """Everything one before/after RRR experiment needs (`train_limit`: use the first N failures in training)."""

    renamed: ClassVar[dict[str, str]] = {"max_train_samples": "train_limit"}

    task: str = "countdown"
    task_options: dict[str, Any] = Field(default_factory=dict)
    train_data: str = Field(min_length=1)
    eval_data: str = Field(min_length=1)
    model: ModelSettings = Field(default_factory=ModelSettings)
    failures: FailureSettings = Field(default_factory=FailureSettings)
    eval: ReflectionSettings = Field(default_factory=ReflectionSettings)
    reflection_prompt: str = REFLECTION_PROMPT
    retry_prompt: str = RETRY_PROMPT
    train_limit: int | None = Field(None, ge=1)
    output_dir: str
    results: str
    seed: int = 0
    trainer: dict[str, Any] = Field(default_factory=dict)
    rollout_generation: RolloutGeneration = "auto"  # RRR training's generation path (train.rollouts)
    logprob_pass: LogprobPass = "auto"  # RRR training's log-prob passes (train.shared_prompt)
    overwrite: bool = False

    @field_validator("eval_data")
    @classmethod
    def _distinct_sources(cls, eval_data: str, info: ValidationInfo) -> str:
        train_data = info.data.get("train_data")
        if train_data is not None and same_source(train_data, eval_data):
            raise ValueError(f"the failure set (train_data) and the evaluation (eval_data) are the same source "
                             f"{eval_data!r}: RRR would be trained on the problems it is evaluated on; "
                             "use disjoint sources (e.g. generate:...,seed=1 and generate:...,seed=2)")
        return eval_data

    @model_validator(mode="after")
    def _one_reflection_budget(self) -> ExperimentConfig:
        budget = self.trainer.get("max_completion_length")
        if budget is not None and str(budget) != str(self.eval.reflection_max_tokens):
            raise ValueError(f"trainer.max_completion_length ({budget}) is the reflection's budget in training and "
                             f"must equal eval.reflection_max_tokens ({self.eval.reflection_max_tokens}); "
                             "omit it to use the eval's")
        return self


def same_source(a: str, b: str) -> bool:
    """Whether two data sources name the same thing (generator options in any order, paths resolved).

    >>> same_source("generate:n=2,seed=1", "generate: seed=1, n=2"), same_source("generate:seed=1", "generate:seed=2")
    (True, False)
    """
    return _source_key(a) == _source_key(b)


def _source_key(source: str) -> tuple:
    source = source.strip()
    if source.startswith("generate"):
        options = source.partition(":")[2]
        return ("generate", tuple(sorted(part.strip() for part in options.split(",") if part.strip())))
    return ("path", str(Path(source).expanduser().resolve()))


def _stage(path: Path, timings: dict[str, float], name: str, run) -> dict[str, Any]:
    """Run a stage unless its JSON output exists; record its wall time (kept from the run that made it)."""
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    start = time.perf_counter()
    result = run()
    timings[name] = round(time.perf_counter() - start, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1), encoding="utf-8")
    return result


def _previous_timings(out: Path, results: Path) -> dict[str, float]:
    """Stage wall times recorded by earlier runs of this experiment (so a resumed run still reports them)."""
    for path in (out / "stage_seconds.json", results.with_suffix(".json")):
        if path.is_file():
            return dict(json.loads(path.read_text(encoding="utf-8")).get("stage_seconds", {}))
    return {}


def experiment_examples(config: ExperimentConfig) -> tuple[Any, list[Any], list[Any]]:
    """(task, training problems, evaluation problems). Training problems whose content fingerprint an
    evaluation problem has are dropped: failures (what RRR trains on) never come from the eval set;
    ConfigError when none is left (the two sources load the same problems)."""
    from selfimprove.tasks import get_task
    from selfimprove.tasks.fingerprint import example_fingerprint, fingerprints

    task = get_task(config.task, **config.task_options)
    evaluation = task.load(config.eval_data)
    held = fingerprints(task, evaluation)
    loaded = task.load(config.train_data)
    train = [e for e in loaded if example_fingerprint(task, e) not in held]
    if loaded and not train:
        raise ConfigError(f"every problem of train_data {config.train_data!r} is also in eval_data "
                          f"{config.eval_data!r}: RRR would be trained on the problems it is evaluated on")
    return task, train, evaluation


OWNED = ("failures", "eval_before.json", "train", "eval_after.json", "stage_seconds.json")


def run_experiment(config: ExperimentConfig) -> dict[str, Any]:
    """Run (or resume) the experiment and write the result table; returns the result dict."""
    from selfimprove.run_dir import run_in

    settings = config.model_dump(exclude={"output_dir", "results", "overwrite"})
    with run_in(config.output_dir, "rrr experiment", settings, config.overwrite, OWNED):
        return _run_experiment(config)


def _run_experiment(config: ExperimentConfig) -> dict[str, Any]:
    task, train_examples, eval_examples = experiment_examples(config)
    out = Path(config.output_dir)
    timings = _previous_timings(out, Path(config.results))
    settings = config.eval.model_copy(update={"reflection_prompt": config.reflection_prompt,
                                              "retry_prompt": config.retry_prompt})

    def failures():
        generator = LazyGenerator(config.model.spec, config.model.adapter)
        return collect_failures(task, train_examples, generator, config.failures, out / "failures")

    def evaluate(adapter: str | None):
        return lambda: evaluate_reflection(task, eval_examples, load_generator_with_adapter(config.model.spec, adapter),
                                             settings)

    failure_summary = _stage(out / "failures" / "stage.json", timings, "failures", failures)
    before = _stage(out / "eval_before.json", timings, "eval_before", evaluate(config.model.adapter))
    train_summary = _stage(out / "train" / "stage.json", timings, "train", lambda: _train(config, out))
    after = _stage(out / "eval_after.json", timings, "eval_after", evaluate(train_summary["adapter"]))
    (out / "stage_seconds.json").write_text(json.dumps({"stage_seconds": timings}), encoding="utf-8")
    return write_results(config, failure_summary, before, after, train_summary, timings)


def _train(config: ExperimentConfig, out: Path) -> dict[str, Any]:
    from selfimprove.workflows.rrr.train import RRRConfig, train_rrr

    trainer = {**config.trainer, "max_completion_length": config.eval.reflection_max_tokens}
    rrr = RRRConfig(task=config.task, task_options=config.task_options, failures=str(out / "failures" / "failures.jsonl"),
                    limit=config.train_limit, reflection_prompt=config.reflection_prompt,
                    retry_prompt=config.retry_prompt, retry_max_tokens=config.eval.max_tokens, model=config.model,
                    output_dir=str(out / "train"), seed=config.seed, trainer=trainer,
                    rollout_generation=config.rollout_generation, logprob_pass=config.logprob_pass)
    return train_rrr(rrr)


def training_health(train_dir: Path) -> list[dict[str, Any]]:
    path = train_dir / "health.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()] \
        if path.is_file() else []


def write_results(config: ExperimentConfig, failures: dict, before: dict, after: dict, train: dict,
                  timings: dict[str, float]) -> dict[str, Any]:
    """Write `<results>.json` and `<results>.md`."""
    strip = ("records",)
    result = {"task": config.task, "model": config.model.spec, "start_adapter": config.model.adapter,
              "train_data": config.train_data,
              "eval_data": config.eval_data, "vanilla": {k: v for k, v in before.items() if k not in strip},
              "rrr_trained": {k: v for k, v in after.items() if k not in strip}, "failures": failures,
              "training": {k: train.get(k) for k in ("global_step", "train_runtime_s", "rows", "adapter")},
              "training_health": training_health(Path(config.output_dir) / "train"),
              "stage_seconds": timings, "eval_settings": config.eval.model_dump(exclude={"reflection_prompt", "retry_prompt"}),
              "reflection_prompt": config.reflection_prompt, "retry_prompt": config.retry_prompt,
              "trainer": config.trainer, "intervals": four_number_changes(before, after)}
    target = Path(config.results)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.with_suffix(".json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    start = f" + {config.model.adapter}" if config.model.adapter else ""
    title = f"Reflect-Retry-Reward on {config.task}, {config.model.spec}{start}"
    target.with_suffix(".md").write_text(four_number_table(before, after, title) + "\n\n" + notes(result) + "\n",
                                         encoding="utf-8")
    return result


def notes(result: dict[str, Any]) -> str:
    """What the table cannot show: answers found at all, the training signal, data, wall times."""
    health = result["training_health"]
    zero = [h["frac_reward_zero_std"] for h in health if h.get("frac_reward_zero_std") is not None]
    reward = [h["reward"] for h in health if h.get("reward") is not None]
    lines = [f"- eval data: `{result['eval_data']}`; failures from `{result['train_data']}`",
             f"- failure sampling: {result['failures'].get('attempts')} attempts, attempt accuracy "
             f"{result['failures'].get('attempt_accuracy', 0):.3f}, {result['failures'].get('failures_kept')} failures kept"]
    for name in ("vanilla", "rrr_trained"):
        part = result[name]
        lines.append(f"- {name}: an answer could be extracted in {part.get('first_try_answer_found')} of first tries "
                     f"and {part.get('retry_answer_found')} of retries; fixed by reflection: {part.get('fixed_by_reflection')}")
    if reward:
        lines.append(f"- training: {len(health)} GRPO steps, mean reward {sum(reward) / len(reward):.3f}, "
                     f"share of zero-variance groups {sum(zero) / max(len(zero), 1):.2f} (1.0 = no learning signal)")
    lines.append(f"- wall seconds per stage: {result['stage_seconds']}")
    return "\n".join(lines)
