"""First-try and second-try (after a self-reflection) accuracy of a model on a task.

For each example the model makes one attempt (first try). Each failed attempt gets the
reflection prompt; the model writes a reflection, then the retry prompt, then answers again
(second try), all in one conversation: one `agent.reflect_retry.ReflectRetryEnvironment` per
example, run by the text loop, the environment RRR training runs token by token; so the retry
sees the same context (the retry conversation rendered by the chat template) with the same
budget (`max_tokens`, which training uses as `retry_max_tokens`). second_try = share of examples
solved at the first OR the second try (a first-try success is not retried). Sampling uses the
configured temperature (default 0.9, as in the paper) and seed, so numbers vary with the seed;
with n examples the standard error is about sqrt(p(1-p)/n), reported as `stderr`. The share of
attempts in which the task could extract an answer at all (`first_try_answer_found`,
`retry_answer_found`) tells "wrong answer" apart from "no answer". Run it for a
model before and after RRR training to get the paper's four numbers.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import Field

from selfimprove.agent.reflect_retry import REFLECTION_PROMPT, RETRY_PROMPT
from selfimprove.config import StrictModel

MAX_TOKENS = 256  # first try and retry (the retry budget of RRR training too)
REFLECTION_MAX_TOKENS = 128  # the reflection (RRR training's max_completion_length)


class ReflectionSettings(StrictModel):
    """Sampling of the first/second-try evaluation (`rrr eval`, an experiment's `eval:` block): `max_tokens`
    for the first try and the retry, `reflection_max_tokens` for the reflection."""

    temperature: float = Field(0.9, ge=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_tokens: int = Field(MAX_TOKENS, ge=1)
    reflection_max_tokens: int = Field(REFLECTION_MAX_TOKENS, ge=1)
    seed: int | None = 0
    reflection_prompt: str = REFLECTION_PROMPT
    retry_prompt: str = RETRY_PROMPT


def evaluate_reflection(task: Any, examples: list, generator: Any, settings: ReflectionSettings) -> dict[str, Any]:
    """First- and second-try accuracy plus per-example records: one reflect-retry episode per example
    (`agent.reflect_retry.ReflectRetryEnvironment`) run by the text loop; turn t samples with seed + t."""
    from selfimprove.agent.loop import drive_text
    from selfimprove.agent.reflect_retry import FIRST_TRY, RETRY, ReflectRetryEnvironment
    from selfimprove.models import SamplingParams

    envs = [ReflectRetryEnvironment(task.render(e), score=lambda text, e=e: task.score(e, text), start=FIRST_TRY,
                                    max_tokens=settings.max_tokens, reflection_max_tokens=settings.reflection_max_tokens,
                                    reflection_prompt=settings.reflection_prompt, retry_prompt=settings.retry_prompt)
            for e in examples]

    def sampling(spec: Any, turn: int) -> SamplingParams:
        seed = None if settings.seed is None else settings.seed + turn
        return SamplingParams(max_tokens=spec.max_tokens, temperature=settings.temperature, top_p=settings.top_p,
                              seed=seed)

    drive_text(envs, generator, sampling)
    first_ok = [env.scores[FIRST_TRY].correct for env in envs]
    second_ok = [ok or (RETRY in env.scores and env.scores[RETRY].correct) for ok, env in zip(first_ok, envs, strict=True)]
    records = [reflection_record(e, env) for e, env in zip(examples, envs, strict=True)]
    retried = [env for env in envs if RETRY in env.scores]
    parsed = {"first_try_answer_found": sum(env.scores[FIRST_TRY].parsed is not None for env in envs) / max(len(envs), 1),
              "retry_answer_found": (sum(env.scores[RETRY].parsed is not None for env in retried) / len(retried)
                                     if retried else None)}
    return {**accuracy_summary(first_ok, second_ok), **parsed, "records": records}


def reflection_record(example: Any, env: Any) -> dict[str, Any]:
    """One example's record: first try, and for a failed one its reflection, retry and verdict."""
    from selfimprove.agent.reflect_retry import FIRST_TRY, REFLECTION, RETRY

    record = {"example_id": str(example.id), "first": env.texts[FIRST_TRY], "first_correct": env.scores[FIRST_TRY].correct}
    if RETRY in env.texts:
        record.update(reflection=env.texts[REFLECTION], retry=env.texts[RETRY], retry_correct=env.scores[RETRY].correct)
    return record


def accuracy_summary(first_ok: list[bool], second_ok: list[bool]) -> dict[str, Any]:
    """Accuracies (and their standard errors) of the first and the second try.

    >>> accuracy_summary([True, False, False, False], [True, True, False, False])["second_try"]
    0.5
    """
    n = len(first_ok)
    first, second = sum(first_ok) / max(n, 1), sum(second_ok) / max(n, 1)
    fixed = sum(s and not f for f, s in zip(first_ok, second_ok, strict=True))
    return {"n": n, "first_try": first, "second_try": second, "fixed_by_reflection": fixed,
            "stderr": {"first_try": _stderr(first, n), "second_try": _stderr(second, n)}}


def _stderr(p: float, n: int) -> float:
    return round(math.sqrt(p * (1 - p) / n), 4) if n else 0.0


def try_values(result: dict[str, Any]) -> dict[str, dict[str, list[float]]]:
    """{"first_try"|"second_try": {example_id: [0/1]}} from an evaluation's per-example records.

    >>> try_values({"records": [{"example_id": "a", "first_correct": False, "retry_correct": True}]})
    {'first_try': {'a': [0.0]}, 'second_try': {'a': [1.0]}}
    """
    records = result.get("records") or []
    first = {str(r["example_id"]): [float(bool(r.get("first_correct")))] for r in records}
    second = {str(r["example_id"]): [float(bool(r.get("first_correct") or r.get("retry_correct")))] for r in records}
    return {"first_try": first, "second_try": second}


def four_number_changes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per try: each row's 95% interval over examples and the trained-minus-vanilla paired change (empty without records)."""
    from selfimprove.eval.significance import bootstrap_mean, paired_bootstrap

    a, b = try_values(before), try_values(after)
    if not a["first_try"] or not b["first_try"]:
        return {}
    return {name: {"vanilla": bootstrap_mean(a[name]), "rrr_trained": bootstrap_mean(b[name]),
                   "change": paired_bootstrap(a[name], b[name]).to_dict()} for name in ("first_try", "second_try")}


def four_number_table(before: dict[str, Any], after: dict[str, Any], title: str) -> str:
    """The paper's four numbers as a markdown table (percentages); with per-example `records`, each value
    has its 95% bootstrap interval over examples, and a second table gives trained - vanilla per try
    (paired over the same examples) with its interval and verdict.

    >>> print(four_number_table({"n": 2, "first_try": 0.0, "second_try": 0.5},
    ...                         {"n": 2, "first_try": 0.5, "second_try": 1.0}, "demo"))
    ### demo
    <BLANKLINE>
    | model | n | first try | second try (+reflection) |
    |---|---|---|---|
    | vanilla | 2 | 0.0 | 50.0 |
    | RRR-trained | 2 | 50.0 | 100.0 |
    """
    from selfimprove.eval.significance import format_change

    changes = four_number_changes(before, after)
    lines = [f"### {title}", "", "| model | n | first try | second try (+reflection) |", "|---|---|---|---|"]
    for name, key, result in (("vanilla", "vanilla", before), ("RRR-trained", "rrr_trained", after)):
        cells = [f"{100 * result[t]:.1f}" + _interval_text(changes.get(t, {}).get(key)) for t in ("first_try", "second_try")]
        lines.append(f"| {name} | {result['n']} | {cells[0]} | {cells[1]} |")
    if changes:
        lines += ["", "Values: % with a 95% bootstrap interval over examples. RRR-trained - vanilla, paired over the "
                  "same examples (`gain`/`loss` only when the interval excludes 0):", "",
                  "| try | vanilla | RRR-trained | change | 95% CI | n | verdict |", "|---|---|---|---|---|---|---|"]
        for label, key in (("first try", "first_try"), ("second try (+reflection)", "second_try")):
            lines.append("| " + " | ".join([label, *format_change(changes[key]["change"], True)]) + " |")
    return "\n".join(lines)


def _interval_text(interval: dict[str, Any] | None) -> str:
    if not interval or interval.get("low") is None:
        return ""
    return f" [{100 * interval['low']:.1f}, {100 * interval['high']:.1f}]"
