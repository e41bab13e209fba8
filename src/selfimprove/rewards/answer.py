"""Answer rewards: exact match, token F1 (HotpotQA normalisation), numeric match, task verifiers.

The answer is read from the completion by `extract_answer`: the last `<answer>...</answer>`
block, else a ReAct `[action: Answer, action_input: X]` step, else the whole completion
(stripped). The gold comes from a dataset column (`answer` by default); a list of golds (aliases)
scores the best one. Normalisation and F1 are `selfimprove.tasks.hotpotqa_metrics` (the official
HotpotQA script's), so rewards and evaluation agree. `task_reward` rebuilds each row's Example
with the task's `from_row` and returns its verifier's score; a row that cannot be rebuilt is a
data error (raised), while an unparseable completion simply scores what the task says (0).
"""

from __future__ import annotations

import math
import re
from typing import Any

from selfimprove.rewards.text import (
    column,
    completion_text,
    named,
    reward_factory,
    rows_from_kwargs,
)
from selfimprove.tasks.tags import last_tag_block

_REACT_ANSWER = re.compile(r"action:\s*Answer\s*,\s*action_input:\s*(.*?)\s*\]?\s*$", re.IGNORECASE | re.DOTALL)
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:[eE][-+]?\d+)?|-?\.\d+")


def extract_answer(completion: Any) -> str:
    """The answer inside a completion (see the module docstring for the order tried).

    >>> extract_answer("think <answer> Paris </answer>")
    'Paris'
    >>> extract_answer("Thought: done\\nAction: [action: Answer, action_input: Yes]")
    'Yes'
    >>> extract_answer(" 42 ")
    '42'
    """
    text = completion_text(completion)
    tagged = last_tag_block(text, "answer")
    if tagged is not None:
        return tagged
    react = _REACT_ANSWER.search(text)
    return react.group(1).strip() if react else text.strip()


def _golds(gold: Any) -> list[str]:
    if isinstance(gold, (list, tuple)):
        return [str(g) for g in gold] or [""]
    return [str(gold)]


def exact_match(completions, **kwargs) -> list[float]:
    """1.0 when the normalised answer equals a normalised gold `answer` (HotpotQA EM), else 0.0.

    >>> exact_match(["<answer>The Eiffel Tower!</answer>", "<answer>Paris</answer>"], answer=["eiffel tower", "Lyon"])
    [1.0, 0.0]
    """
    from selfimprove.tasks.hotpotqa_metrics import exact_match_score

    golds = column(kwargs, "answer", len(completions))
    return [max(float(exact_match_score(extract_answer(c), g)) for g in _golds(gold))
            for c, gold in zip(completions, golds, strict=True)]


def token_f1(completions, **kwargs) -> list[float]:
    """Token F1 of the answer against the gold `answer` (official HotpotQA normalisation).

    >>> token_f1(["<answer>the Eiffel Tower, Paris</answer>", "<answer>no</answer>"], answer=["Eiffel Tower", "yes"])
    [0.8, 0.0]
    """
    from selfimprove.tasks.hotpotqa_metrics import f1_score

    golds = column(kwargs, "answer", len(completions))
    return [max(float(f1_score(extract_answer(c), g)[0]) for g in _golds(gold))
            for c, gold in zip(completions, golds, strict=True)]


def parse_number(text: str) -> float | None:
    """The last number written in `text` (commas as thousands separators), or None.

    >>> parse_number("so the total is 1,234.5 apples")
    1234.5
    >>> parse_number("none") is None
    True
    """
    found = _NUMBER.findall(text)
    if not found:
        return None
    try:
        return float(found[-1].replace(",", ""))
    except ValueError:
        return None


@reward_factory
def numeric_match(rel_tol: float = 1e-6, abs_tol: float = 1e-9, answer_column: str = "answer"):
    """Factory: 1.0 when the answer's last number equals the gold number within tolerance.

    >>> numeric_match()(["<answer>x = 3.0</answer>", "<answer>none</answer>"], answer=["3", "3"])
    [1.0, 0.0]
    """
    def numeric_match(completions, **kwargs) -> list[float]:
        golds = column(kwargs, answer_column, len(completions))
        return [_numbers_match(extract_answer(c), g, rel_tol, abs_tol) for c, g in zip(completions, golds, strict=True)]

    return named(numeric_match, "numeric_match")


def _numbers_match(answer: str, gold: Any, rel_tol: float, abs_tol: float) -> float:
    got, want = parse_number(answer), parse_number(str(gold))
    if got is None or want is None:
        return 0.0
    return 1.0 if math.isclose(got, want, rel_tol=rel_tol, abs_tol=abs_tol) else 0.0


@reward_factory
def task_reward(task_name: str, field: str = "value", name: str | None = None, **task_options: Any):
    """Factory: score each completion with a task's verifier, rebuilding examples from the columns.

    `field` is "value" (the task's main score) or "correct" (1.0/0.0). The reward is named
    `<task>_<field>` unless `name` is given. Columns come from TRL's keyword arguments; each row
    is rebuilt with `task.from_row(row)`, so the dataset must hold the columns `to_row` wrote.
    """
    from selfimprove.errors import ConfigError
    from selfimprove.tasks import get_task

    if field not in ("value", "correct"):
        raise ConfigError(f"task_reward field must be 'value' or 'correct', got '{field}'")
    task = get_task(task_name, **task_options)

    def score_with_task(completions, **kwargs) -> list[float]:
        rows = rows_from_kwargs(kwargs, len(completions))
        scores = [task.score(task.from_row(row), completion_text(c)) for c, row in zip(completions, rows, strict=True)]
        return [float(s.correct) if field == "correct" else float(s.value) for s in scores]

    return named(score_with_task, name or f"{task_name.rsplit(':', 1)[-1]}_{field}", task=task)


@reward_factory
def countdown_correct(**task_options: Any):
    """Factory: 1.0 when the Countdown verifier accepts the `<answer>` equation (columns nums, target)."""
    return task_reward("countdown", field="correct", name="countdown_correct", **task_options)


@reward_factory
def function_call_correct(**task_options: Any):
    """Factory: 1.0 when the function-calling verifier accepts the calls (ground-truth columns)."""
    return task_reward("function_calling", field="correct", name="function_call_correct", **task_options)
