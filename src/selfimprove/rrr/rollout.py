"""The Reflect-Retry-Reward episode inside GRPO training (a TRL `rollout_func`), and its binary reward.

Each training prompt is a failure point: the task prompt, the failed attempt, the reflection
request (see `prompts`). One episode has two model turns:

1. the reflection, sampled by the generic multi-turn driver (`train.rollouts`) from the prompt,
   at most `max_completion_length` tokens (the trainer's budget). These tokens are the episode's
   whole completion and the only ones trained (env_mask 1).
2. the retry, sampled afterwards with the trainer's own generation path from `retry_context_ids`:
   the retry conversation (`prompts.retry_conversation`: ... + the reflection as an assistant
   message + the retry request) rendered by the chat template exactly as the evaluation's
   generator renders it (`models.transformers_backend.render_prompt`), at most `retry_max_tokens`
   tokens. So the retry sees the same context and gets the same budget in training and in
   `evaluate` (with a thinking template such as Qwen3's, which drops the `<think>` block of
   earlier assistant turns, the retry sees the reflection without its thinking in both). The
   retry is not part of the trained sequence: it gets no gradient and costs nothing in the loss.

`retry_correct` gives 1.0 when the retry passes the task's verifier, else 0.0, so the only tokens
that receive the advantage are the reflection's. The retry text reaches the reward as the
`retry_completion` column. Not guaranteed: an evaluation through a remote OpenAI-compatible
server renders the same messages with the server's template and tokenizer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from selfimprove.rewards.text import named, reward_factory, rows_from_kwargs
from selfimprove.rrr.evaluate import MAX_TOKENS
from selfimprove.rrr.prompts import RETRY_PROMPT, retry_conversation


def retry_context_ids(tokenizer: Any, reflection_messages: list[dict], reflection: str,
                      retry_prompt: str = RETRY_PROMPT) -> list[int]:
    """The token ids the retry is generated from, in training and (for local models) in evaluation.

    The retry conversation rendered with the chat template, ready for the assistant's answer, and
    encoded exactly as `TransformersGenerator` encodes an evaluation prompt.
    """
    from selfimprove.models.transformers_backend import render_prompt

    text = render_prompt(tokenizer, retry_conversation(reflection_messages, reflection, retry_prompt))
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


class ReflectRetryEnvironment:
    """The reflection turn (trained, ends the token sequence); the retry is recorded by `set_retry`."""

    max_turns = 1
    stop: tuple[str, ...] = ()

    def __init__(self, prompt: list[dict], tokenizer: Any, retry_prompt: str = RETRY_PROMPT,
                 extract: Callable[[str], Any] | None = None):
        self.prompt, self.tokenizer, self.retry_prompt, self.extract = prompt, tokenizer, retry_prompt, extract
        self.reflection = self.retry = ""
        self.reflection_ended = self.retry_ended = self.answered = False
        self.num_turns = 0

    def trainable(self, turn: int) -> bool:
        return turn == 0

    def respond(self, turn: int, text: str, ended: bool) -> str | None:
        self.reflection, self.reflection_ended, self.num_turns = text, ended, 1
        return None

    def retry_context(self) -> list[int]:
        return retry_context_ids(self.tokenizer, self.prompt, self.reflection, self.retry_prompt)

    def set_retry(self, text: str, ended: bool) -> None:
        self.retry, self.retry_ended, self.num_turns = text, ended, 2
        self.answered = self.extract is not None and self.extract(text) is not None

    def fields(self) -> dict[str, Any]:
        return {"retry_completion": self.retry, "reflection_text": self.reflection,
                "reflection_ended": self.reflection_ended, "retry_ended": self.retry_ended,
                "answered": self.answered, "num_turns": self.num_turns, "hit_step_limit": False,
                "num_searches": 0, "num_parse_errors": 0, "queries": []}


@contextmanager
def generation_budget(trainer: Any, max_tokens: int) -> Iterator[None]:
    """Let the trainer's generation path (transformers or vLLM) sample up to `max_tokens` tokens, then restore it."""
    slots = [(trainer, "max_completion_length"), (getattr(trainer, "generation_config", None), "max_new_tokens"),
             (getattr(trainer, "vllm_generation", None), "max_completion_length")]
    saved = [(owner, name, getattr(owner, name)) for owner, name in slots
             if owner is not None and getattr(owner, name, None) is not None]
    kwargs = getattr(trainer, "generation_kwargs", None)
    kwarg = kwargs.get("max_new_tokens") if isinstance(kwargs, dict) else None
    if len(saved) < 2:
        raise RuntimeError("RRR: cannot set the retry's token budget on this trainer (no generation_config or "
                           "vllm_generation found); this TRL version is not supported")
    try:
        for owner, name, _ in saved:
            setattr(owner, name, max_tokens)
        if kwarg is not None:
            kwargs["max_new_tokens"] = max_tokens
        yield
    finally:
        for owner, name, value in saved:
            setattr(owner, name, value)
        if kwarg is not None:
            kwargs["max_new_tokens"] = kwarg


def sample_retries(trainer: Any, environments: list[ReflectRetryEnvironment], max_tokens: int) -> None:
    """Generate every episode's retry from `retry_context_ids` with `max_tokens` tokens at most."""
    from selfimprove.train.rollouts import eos_token_ids, trainer_generate

    if not environments:
        return
    tokenizer = trainer.processing_class
    eos = eos_token_ids(trainer, tokenizer)
    with generation_budget(trainer, max_tokens):
        outputs, _ = trainer_generate(trainer)([env.retry_context() for env in environments])
    for env, ids in zip(environments, outputs, strict=True):
        env.set_retry(tokenizer.decode(ids, skip_special_tokens=True), bool(ids) and ids[-1] in eos)


def rrr_rollout_func(retry_prompt: str = RETRY_PROMPT, retry_max_tokens: int = MAX_TOKENS,
                     extract: Callable[[str], Any] | None = None):
    """TRL rollout_func for RRR prompts: the reflection is the completion; the retry fills the columns."""
    from selfimprove.train.rollouts import make_rollout_func

    def rollout_func(prompts: list, trainer: Any) -> dict[str, Any]:
        environments: list[ReflectRetryEnvironment] = []

        def environment(prompt: list[dict], tokenizer: Any) -> ReflectRetryEnvironment:
            environments.append(ReflectRetryEnvironment(prompt, tokenizer, retry_prompt, extract))
            return environments[-1]

        output = make_rollout_func(environment)(prompts, trainer)
        sample_retries(trainer, environments, retry_max_tokens)
        fields = [env.fields() for env in environments]
        output.update({key: [f[key] for f in fields] for key in (fields[0] if fields else {})})
        return output

    return rollout_func


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
