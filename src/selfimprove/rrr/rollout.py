"""The Reflect-Retry-Reward episode as a multi-turn rollout, and its binary reward.

Each training prompt is a failure point: the task prompt, the failed attempt, the reflection
request (see `prompts`). The rollout (TRL `rollout_func`, built on `selfimprove.train.rollouts`)
samples the reflection (turn 0, TRAINED: env_mask 1), appends the chat-template text that closes
the assistant turn and asks for the retry (env_mask 0), and samples the retry (turn 1, env_mask
0: generated in the same sequence, never trained). `retry_correct` gives 1.0 when the retry
passes the task's verifier, else 0.0, so the only tokens that receive the advantage are the
reflection's. The retry text reaches the reward as the `retry_completion` column, taken from
the retry turn alone (never from a decode of the whole sequence).
"""

from __future__ import annotations

from typing import Any

from selfimprove.rewards.text import named, reward_factory, rows_from_kwargs
from selfimprove.rrr.prompts import RETRY_PROMPT, retry_message

_PLACEHOLDER = "\u2063RRR-REFLECTION\u2063"


def next_user_turn_text(tokenizer: Any, messages: list[dict], user_message: dict, ended: bool) -> str:
    """The chat-template text between the end of a generated assistant turn and the next generation.

    `messages` ends with the user turn the assistant answered; `ended` says whether the assistant's
    tokens already include the end-of-turn token (EOS), which is then not repeated.
    """
    rendered = tokenizer.apply_chat_template(
        [*messages, {"role": "assistant", "content": _PLACEHOLDER}, user_message],
        tokenize=False, add_generation_prompt=True)
    text = rendered[rendered.index(_PLACEHOLDER) + len(_PLACEHOLDER):]
    eos = tokenizer.eos_token or ""
    return text[len(eos):] if ended and eos and text.startswith(eos) else text


class ReflectRetryEnvironment:
    """Two model turns: the reflection (trained), then the retry (masked)."""

    max_turns = 2
    stop: tuple[str, ...] = ()

    def __init__(self, prompt: list[dict], tokenizer: Any, retry_prompt: str = RETRY_PROMPT):
        self.prompt, self.tokenizer, self.retry_prompt = prompt, tokenizer, retry_prompt
        self.reflection = self.retry = ""
        self.reflection_ended = False

    def trainable(self, turn: int) -> bool:
        return turn == 0

    def respond(self, turn: int, text: str, ended: bool) -> str | None:
        if turn == 0:
            self.reflection, self.reflection_ended = text, ended
            return next_user_turn_text(self.tokenizer, self.prompt, retry_message(self.prompt, self.retry_prompt), ended)
        self.retry = text
        return None

    def fields(self) -> dict[str, Any]:
        return {"retry_completion": self.retry, "reflection_text": self.reflection,
                "reflection_ended": self.reflection_ended}


def rrr_rollout_func(retry_prompt: str = RETRY_PROMPT):
    """TRL rollout_func for RRR prompts."""
    from selfimprove.train.rollouts import make_rollout_func

    return make_rollout_func(lambda prompt, tokenizer: ReflectRetryEnvironment(prompt, tokenizer, retry_prompt))


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
