"""Reflect-Retry-Reward inside GRPO training (a TRL `rollout_func`), and its binary reward.

Each training prompt is a failure point: the task prompt, the failed attempt, the reflection
request. The episode is `agent.reflect_retry.ReflectRetryEnvironment` started at the reflection,
run by the token-level driver (`train.rollouts`), the same environment the evaluation runs with
the text loop:
1. the reflection, sampled from the prompt with the trainer's budget (`max_completion_length`):
   the episode's whole completion and the only tokens trained;
2. the retry, a side turn: generated with the trainer's own generation path from the retry
   conversation rendered whole, exactly as the evaluation renders it, within `retry_max_tokens`
   (the evaluation's `max_tokens`). It is not part of the trained sequence: no gradient and no
   cost in the loss.

`retry_correct` gives 1.0 when the retry passes the task's verifier, else 0.0, so the only tokens
that receive the advantage are the reflection's. The retry text reaches the reward as the
`retry_completion` column. Not guaranteed: an evaluation through a remote OpenAI-compatible
server renders the same messages with the server's template and tokenizer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from selfimprove.agent.reflect_retry import REFLECTION, RETRY_PROMPT, ReflectRetryEnvironment
from selfimprove.eval.reflection import MAX_TOKENS
from selfimprove.rewards.text import named, reward_factory, rows_from_kwargs


def rrr_rollout_func(retry_prompt: str = RETRY_PROMPT, retry_max_tokens: int = MAX_TOKENS,
                     extract: Callable[[str], Any] | None = None, generation: str = "auto"):
    """TRL rollout_func for RRR prompts: the reflection is the completion; the retry fills the columns."""
    from selfimprove.train.rollouts import make_rollout_func

    return make_rollout_func(lambda prompt, tokenizer: ReflectRetryEnvironment(
        prompt, extract=extract, start=REFLECTION, max_tokens=retry_max_tokens, retry_prompt=retry_prompt), generation)


@reward_factory
def retry_correct(task_name: str = "countdown", **task_options: Any):
    """Factory: 1.0 when the retry (column `retry_completion`) passes the task's verifier, else 0.0.

    >>> reward = retry_correct("countdown")
    >>> reward(["(reflection)", "(reflection)"], retry_completion=["<answer>1 + 2 + 3</answer>", "no"],
    ...        nums=[[1, 2, 3], [1, 2, 3]], target=[6, 6], example_id=["a", "b"])
    [1.0, 0.0]
    """
    from selfimprove.tasks import get_task

    task = get_task(task_name, **task_options)

    def retry_correct(completions, **kwargs) -> list[float]:
        rows = rows_from_kwargs(kwargs, len(completions))
        scores = [float(task.score(task.from_row(row), str(row.get("retry_completion") or "")).correct) for row in rows]
        _log_reflection_stats(kwargs, rows)
        return scores

    return named(retry_correct, "retry_correct", task=task)


def _log_reflection_stats(kwargs: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    log_metric = kwargs.get("log_metric")
    if callable(log_metric) and rows and "reflection_ended" in rows[0]:
        log_metric("rrr/reflection_clipped_ratio", sum(not r["reflection_ended"] for r in rows) / len(rows))
        log_metric("rrr/reflection_chars_mean", sum(len(str(r.get("reflection_text") or "")) for r in rows) / len(rows))
    if callable(log_metric) and rows and "retry_ended" in rows[0]:
        log_metric("rrr/retry_clipped_ratio", sum(not r["retry_ended"] for r in rows) / len(rows))
