"""`selfimprove train rrr`: GRPO from the failure point, rewarding only the reflection.

Rows come from a failures file (`selfimprove rrr failures`): each row keeps the task's columns
(so the verifier can rebuild the example) and its `prompt` becomes task prompt + failed attempt
+ reflection prompt. The rollout is `selfimprove.workflows.rrr.rollout`: the reflection (trained, at most
`trainer.max_completion_length` tokens), then the retry (not trained, at most `retry_max_tokens`
tokens, from the same context as `rrr eval` gives it); the only reward is `retry_correct` (binary).
For a train/eval match, set `retry_max_tokens` to the eval's `max_tokens` and
`max_completion_length` to its `reflection_max_tokens` (`rrr experiment` does both). Everything else (model, LoRA, `trainer:` block,
health log, outputs) is the GRPO machinery of `selfimprove.train.grpo`. Temperature must be > 0
(default 0.9): the retry has to be able to differ from the failure.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from selfimprove.agent.reflect_retry import REFLECTION_PROMPT, RETRY_PROMPT, reflection_conversation
from selfimprove.config import StrictModel
from selfimprove.data.jsonl import iter_jsonl
from selfimprove.errors import DataError
from selfimprove.eval.reflection import MAX_TOKENS, REFLECTION_MAX_TOKENS
from selfimprove.train.config import LogprobPass, ModelSettings
from selfimprove.train.rollouts import RolloutGeneration

RRR_DEFAULTS: dict[str, Any] = {"temperature": 0.9, "max_completion_length": REFLECTION_MAX_TOKENS}


class RRRConfig(StrictModel):
    """One RRR training run."""

    task: str = "countdown"
    task_options: dict[str, Any] = Field(default_factory=dict)
    failures: str
    limit: int | None = Field(None, ge=1)
    reflection_prompt: str = REFLECTION_PROMPT
    retry_prompt: str = RETRY_PROMPT
    retry_max_tokens: int = Field(MAX_TOKENS, ge=1)
    rollout_generation: RolloutGeneration = "auto"  # see train.rollouts
    logprob_pass: LogprobPass = "auto"  # see train.shared_prompt
    model: ModelSettings = Field(default_factory=ModelSettings)
    output_dir: str
    seed: int = 0
    merge: bool = False
    trainer: dict[str, Any] = Field(default_factory=dict)


def failure_rows(path: str, reflection_prompt: str, limit: int | None = None) -> list[dict[str, Any]]:
    """Training rows from a failures file: the task row with the reflection conversation as `prompt`."""
    rows = []
    for line, record in iter_jsonl(path):
        row, attempt = record.get("row"), record.get("completion")
        if not isinstance(row, dict) or not isinstance(row.get("prompt"), list):
            raise DataError(path, "expected the task row with a chat `prompt`", line=line, field="row")
        if not isinstance(attempt, str):
            raise DataError(path, "expected the failed attempt's text", line=line, field="completion")
        rows.append({**row, "prompt": reflection_conversation(row["prompt"], attempt, reflection_prompt),
                     "failed_attempt": attempt})
        if limit is not None and len(rows) >= limit:
            break
    if not rows:
        raise DataError(path, "no failures to train on (did every attempt succeed?)")
    return rows


def train_rrr(config: RRRConfig, resume: bool = False, merge: bool | None = None) -> dict[str, Any]:
    """Run RRR training; returns the run summary (as `train grpo` does)."""
    from selfimprove.train.grpo import run_grpo
    from selfimprove.train.vllm_settings import check_vllm_settings
    from selfimprove.workflows.rrr.rollout import retry_correct, rrr_rollout_func

    check_vllm_settings(config.trainer)  # a vLLM config without a GPU/vllm fails here, before any data or model
    rows = failure_rows(config.failures, config.reflection_prompt, config.limit)
    reward = retry_correct(config.task, **config.task_options)
    rollout = rrr_rollout_func(config.retry_prompt, config.retry_max_tokens, reward.task.extract,
                               config.rollout_generation)
    return run_grpo(config, rows, [reward], [1.0], rollout, resume=resume,
                    merge=merge, extra={"task": config.task, "method": "reflect-retry-reward"},
                    arg_defaults=RRR_DEFAULTS)
