"""GRPO with TRL's GRPOTrainer: a task, its data, the rewards library, LoRA, from one YAML config.

`train_grpo(config)` loads the task's examples (`task.load(data)`), turns them into TRL rows
(`task.to_row`: a conversational `prompt` plus the columns the rewards read), builds the reward
functions and weights with `selfimprove.rewards.build_reward_funcs`, loads the model with the
shared training plumbing (`selfimprove.train.trainer_loop.prepare_model`: LoRA by default), and runs
`GRPOTrainer` with the `trainer:` block passed to `GRPOConfig` on top of `GRPO_DEFAULTS`.

Single-turn tasks (Countdown, function calling) generate as TRL does, from TRL's own prompt ids, through
`rollout_generation` (default auto: the project's cached decoder on CPU via `train.rollouts.single_turn_rollout`,
TRL's own generation elsewhere; no extra reward columns either way). With an `agent:`
block (`AgentSettings`, the block eval and distill use; in a GRPO config `format` defaults to
xml and `max_turns` to 3) the episode is multi-turn: the agent loop is TRL's `rollout_func` (see
`selfimprove.train.rollouts`), the prompt is the agent format's, and tool results are masked
out of the loss with `env_mask`. The trainer samples, so the agent block's sampling keys
(temperature, top_p, seed, attempts, max_tokens) are refused with the trainer key to use. A
caller may also pass its own `rollout_func` and extra reward functions (Reflect-Retry-Reward does).

Health signals: TRL already logs per step `reward`, `reward_std`, `rewards/<name>/mean|std`,
`frac_reward_zero_std` (share of zero-variance groups), `completions/mean_length` (trained
tokens only when a mask is used), `completions/clipped_ratio`, `entropy`, `clip_ratio/*`,
`step_time`, and `kl` when beta > 0 (the default here is 0.001 so KL is visible). `HealthCallback`
writes those, plus the rollout metrics, to `output_dir/health.jsonl`, one line per step, with
null for a signal that was not computed (e.g. `kl` when beta = 0). This module imports
transformers at import time: import it only where training happens. Not guaranteed: that the
rewards are meaningful for the task; the config picks them.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError
from transformers import TrainerCallback

from selfimprove.agent.settings import AgentSettings
from selfimprove.config import StrictModel
from selfimprove.errors import ConfigError, UserError
from selfimprove.train.config import LogprobPass, ModelSettings
from selfimprove.train.rollouts import RolloutGeneration

GRPO_DEFAULTS: dict[str, Any] = {
    "learning_rate": 1e-5,
    "beta": 0.001,
    "temperature": 0.9,
    "num_generations": 8,
    "per_device_train_batch_size": 8,
    "gradient_accumulation_steps": 1,
    "max_completion_length": 256,
    "loss_type": "dapo",
    "num_train_epochs": 1,
}
HEALTH_KEYS = ("reward", "reward_std", "frac_reward_zero_std", "completions/mean_length",
               "completions/clipped_ratio", "kl", "entropy", "clip_ratio/region_mean", "step_time", "loss",
               "grad_norm", "learning_rate")


GRPO_AGENT_DEFAULTS: dict[str, Any] = {"format": "xml", "max_turns": 3}
# AgentSettings keys the trainer decides in GRPO -> what to set instead
SAMPLED_BY_TRAINER = {"temperature": "trainer.temperature", "top_p": "trainer.top_p", "seed": "the top-level seed",
                      "attempts": "trainer.num_generations",
                      "max_tokens": "trainer.max_completion_length (tokens per turn)"}


def episode_settings(agent: Any) -> Any:
    """A GRPO `agent:` block: the episode knobs of `AgentSettings` with GRPO's defaults; sampling keys refused."""
    given = agent.model_fields_set if isinstance(agent, AgentSettings) else agent
    if not isinstance(given, dict | set):
        return agent
    for key, instead in SAMPLED_BY_TRAINER.items():
        if key in given:
            raise PydanticCustomError("sampled_by_trainer", "'{key}': GRPO samples with the trainer; set {instead}",
                                      {"key": key, "instead": instead})
    return {**GRPO_AGENT_DEFAULTS, **agent} if isinstance(agent, dict) else agent


class GRPORunConfig(StrictModel):
    """One GRPO run. `data` is the task's source (a file, or e.g. "generate:n=64,seed=0" for Countdown)."""

    task: str
    task_options: dict[str, Any] = Field(default_factory=dict)
    data: str | list[str] | None = None
    limit: int | None = Field(None, ge=1)
    skip_eval_per_level: int | None = Field(None, ge=1)
    skip_eval_limit: int | None = Field(None, ge=1)
    model: ModelSettings = Field(default_factory=ModelSettings)
    rewards: list[Any] = Field(default_factory=list)
    agent: AgentSettings | None = None
    rollout_generation: RolloutGeneration = "auto"  # see train.rollouts (single-turn too: single_turn_rollout_func)
    logprob_pass: LogprobPass = "auto"  # see train.shared_prompt
    output_dir: str
    seed: int = 0
    merge: bool = False
    trainer: dict[str, Any] = Field(default_factory=dict)

    _episode_knobs_only = field_validator("agent", mode="before")(episode_settings)


def load_examples(config: GRPORunConfig) -> tuple[Any, list]:
    """(task, examples) for the run: the source less the examples an eval with `skip_eval_per_level` /
    `skip_eval_limit` uses, the first `limit` of the rest."""
    from selfimprove.tasks import get_task
    from selfimprove.tasks.selection import held_out_examples

    task = get_task(config.task, **config.task_options)
    loaded = held_out_examples(task.load(config.data), config.skip_eval_per_level, config.skip_eval_limit)
    examples = loaded[: config.limit]
    if not examples:
        raise UserError(f"task '{config.task}' loaded no examples from {config.data!r}")
    return task, examples


def build_rows(task: Any, examples: list, agent: AgentSettings | None) -> list[dict[str, Any]]:
    """TRL rows: `task.to_row`, with the agent format's prompt when the run is multi-turn."""
    rows = [task.to_row(example) for example in examples]
    if agent is not None:
        from selfimprove.agent.formats import get_format

        fmt = get_format(agent.format)
        for row, example in zip(rows, examples, strict=True):
            row["prompt"] = fmt.conversation(example.question, [])
    return rows


def agent_rollout_func(settings: AgentSettings, examples: list, generation: str = "auto"):
    """The agent loop as a TRL rollout_func over the run's searcher."""
    from selfimprove.agent.formats import get_format
    from selfimprove.agent.search_env import SearchEnvironment, SearchTool
    from selfimprove.agent.searchers import searcher_for_run
    from selfimprove.train.rollouts import make_rollout_func

    searcher = searcher_for_run(settings.searcher, examples, settings.corpus, settings.index_dir)
    tool, fmt = SearchTool(searcher, settings.search_k, settings.max_observation_chars), get_format(settings.format)
    return make_rollout_func(lambda prompt, tokenizer: SearchEnvironment(
        fmt, prompt, tool, settings.max_turns, settings.max_query_chars, settings.on_parse_error), generation)


def grpo_arguments(config: Any, defaults: dict[str, Any] | None = None):
    """A `GRPOConfig` from our defaults + the user's `trainer:` block (unknown fields are errors)."""
    from trl import GRPOConfig

    from selfimprove.train.config import common_trainer_defaults, trainer_arguments
    from selfimprove.train.model_loading import use_bf16

    if config.trainer.get("bf16") and not use_bf16():
        raise ConfigError("trainer.bf16: bf16 needs a GPU that supports it; leave it unset on CPU")
    merged = {**common_trainer_defaults(config.trainer), **GRPO_DEFAULTS, **(defaults or {}), "bf16": use_bf16()}
    arguments = trainer_arguments(GRPOConfig, merged, config.trainer)
    if float(arguments.get("temperature", 1.0)) <= 0:
        raise ConfigError("trainer.temperature must be > 0: GRPO needs different samples in a group")
    return GRPOConfig(output_dir=config.output_dir, seed=config.seed, **arguments)


class HealthCallback(TrainerCallback):
    """Writes the GRPO health signals of every logged step to `health.jsonl` (null = not computed)."""

    def __init__(self, path: str | Path, extra_prefixes: tuple[str, ...] = ("rewards/", "rollout/", "rrr/")):
        self.path = Path(path)
        self.extra_prefixes = extra_prefixes
        self.started = time.perf_counter()

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or "reward" not in logs or not state.is_world_process_zero:
            return
        row = {"step": state.global_step, "elapsed_s": round(time.perf_counter() - self.started, 2)}
        row.update({key: logs.get(key) for key in HEALTH_KEYS})
        row.update({k: v for k, v in logs.items() if k.startswith(self.extra_prefixes)})
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(row) + "\n")


def build_trainer(config: GRPORunConfig, rows: list[dict[str, Any]], reward_funcs: list, reward_weights: list[float],
                  rollout_func: Any = None, arg_defaults: dict[str, Any] | None = None):
    """The GRPOTrainer (model + LoRA from the shared plumbing) with the health callback attached."""
    from datasets import Dataset

    from selfimprove.train.rollouts import single_turn_rollout_func
    from selfimprove.train.shared_prompt import SharedPromptGRPOTrainer
    from selfimprove.train.trainer_loop import prepare_model

    args = grpo_arguments(config, {"reward_weights": reward_weights, **(arg_defaults or {})})
    model, tokenizer, peft_config = prepare_model(config)
    trainer = SharedPromptGRPOTrainer(model=model, reward_funcs=reward_funcs, args=args,
                                      train_dataset=Dataset.from_list(rows), processing_class=tokenizer,
                                      peft_config=peft_config, rollout_func=rollout_func,
                                      callbacks=[HealthCallback(Path(config.output_dir) / "health.jsonl")])
    trainer.logprob_pass = config.logprob_pass
    if rollout_func is None:  # single-turn: through the cached decoder where `rollout_generation` says so
        trainer.rollout_func = single_turn_rollout_func(trainer, config.rollout_generation)
    return trainer


def run_grpo(config: GRPORunConfig, rows: list[dict[str, Any]], reward_funcs: list, reward_weights: list[float],
             rollout_func: Any = None, resume: bool = False, merge: bool | None = None,
             extra: dict[str, Any] | None = None, arg_defaults: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train, save the adapter (and merged model when asked), write the run record; returns the summary."""
    from selfimprove.train.outputs import training_run

    with training_run(config, resume, "train " + (extra or {}).get("method", "grpo")):
        return _run_grpo(config, rows, reward_funcs, reward_weights, rollout_func, resume, merge, extra, arg_defaults)


def _run_grpo(config: GRPORunConfig, rows: list[dict[str, Any]], reward_funcs: list, reward_weights: list[float],
              rollout_func: Any, resume: bool, merge: bool | None, extra: dict[str, Any] | None,
              arg_defaults: dict[str, Any] | None) -> dict[str, Any]:
    import os

    from selfimprove.train.outputs import last_checkpoint, merge_adapter, save_adapter, write_run_record

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    checkpoint = last_checkpoint(config.output_dir) if resume else None
    trainer = build_trainer(config, rows, reward_funcs, reward_weights, rollout_func, arg_defaults)
    trainer.train(resume_from_checkpoint=checkpoint)
    adapter = save_adapter(trainer.model, trainer.processing_class, config.output_dir)
    merged = merge_adapter(config.model.spec, adapter, config.output_dir,
                           config.trainer.get("chat_template_path")) if (merge or config.merge) else None
    summary = {"kind": "grpo", "rows": len(rows), "adapter": str(adapter), "merged": str(merged) if merged else None,
               "resumed_from": checkpoint, "health": str(Path(config.output_dir) / "health.jsonl"), **(extra or {})}
    return write_run_record(trainer, config.output_dir, summary)


def train_grpo(config: GRPORunConfig, resume: bool = False, merge: bool | None = None) -> dict[str, Any]:
    """`selfimprove train grpo`: single-turn, or multi-turn with an `agent:` block."""
    from selfimprove.rewards import build_reward_funcs
    from selfimprove.train.vllm_settings import check_vllm_settings

    check_vllm_settings(config.trainer)
    if not config.rewards:
        raise ConfigError("rewards: a GRPO run needs at least one reward entry")
    task, examples = load_examples(config)
    funcs, weights = build_reward_funcs(config.rewards, task=config.task)
    rollout = agent_rollout_func(config.agent, examples, config.rollout_generation) if config.agent is not None else None
    rows = build_rows(task, examples, config.agent)
    return run_grpo(config, rows, funcs, weights, rollout, resume=resume, merge=merge,
                    extra={"task": config.task, "multi_turn": config.agent is not None})
