"""Answer rewards: exact match, token F1 (HotpotQA normalisation), numeric match, task verifiers.

The answer is read from the completion by `final_answer`: the last complete `<answer>...</answer>`
block, the same extraction every built-in task's scorer uses (`selfimprove.tasks.tags.last_tag_block`).
A completion without one has NO final answer and every answer reward gives it 0: an unanswered
episode never beats a wrong answer (retrieved passages are not scored as if they were an answer).
When the rollout passed an `answered` column (one bool per completion, see
`selfimprove.rewards.agent`), an episode the environment records as unanswered also scores 0, and
when it passed an `episode_answer` column too (the search environment's: the answer action's argument
as the agent format parsed it), that is the answer read, so a ReAct episode's
`[action: Answer, action_input: ...]` is scored like an `<answer>` block (the completion's text is
read where that column is absent or holds None; without the rollout's `answered` column it is never
read, so a dataset column of that name is not taken for the model's answer).
Normalisation and F1 are `selfimprove.tasks.hotpotqa.metrics` (the official HotpotQA script's),
so `token_f1`/`exact_match` equal the hotpotqa task's `value`/`em` on every input (a property test
checks this). `task_reward` rebuilds each row's Example with the task's `from_row` and returns
its verifier's score. A dataset only needs the task's own columns (its `reward_columns`; `example_id`
and `prompt` are optional): a missing one is a UserError naming the reward and the column, raised
once per call before any row is scored. A row whose values cannot be read (None, wrong type, bad
JSON) scores None, which TRL treats as "not applicable" (left out of the group baseline; a warning
is logged per call), so one bad row never crashes a GRPO run. An unparseable completion simply
scores what the task says (0).
"""

from __future__ import annotations

import logging
import math
import re
from typing import Any

from selfimprove.rewards.text import (
    TRL_EXTRAS,
    column,
    completion_text,
    named,
    require_columns,
    reward_factory,
    rollout_column,
    rows_from_kwargs,
    unanswered,
)
from selfimprove.tasks.tags import last_tag_block

logger = logging.getLogger(__name__)

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:[eE][-+]?\d+)?|-?\.\d+")


def final_answer(completion: Any) -> str | None:
    """The completion's final answer: the stripped last complete `<answer>` block, or None.

    >>> final_answer("think <answer> Paris </answer>")
    'Paris'
    >>> final_answer("<search>q</search><information>Paris is big.</information>") is None
    True
    """
    return last_tag_block(completion_text(completion), "answer")


def extract_answer(completion: Any) -> str:
    """`final_answer` as a string: "" when the completion has no final answer.

    >>> extract_answer("<answer>a</answer> <answer>b</answer>"), extract_answer(" 42 ")
    ('b', '')
    """
    answer = final_answer(completion)
    return "" if answer is None else answer


def final_answers(completions: list, kwargs: dict[str, Any]) -> list[str | None]:
    """Each completion's final answer: the rollout's `episode_answer` column where it holds one (read only
    beside the rollout's `answered` column), else `final_answer` of the text; None where `answered` is False.

    >>> final_answers(["[action: Answer, action_input: Paris]", "<answer>x</answer>", "<answer>y</answer>"],
    ...               {"answered": [True, True, False], "episode_answer": ["Paris", None, "y"]})
    ['Paris', 'x', None]
    >>> final_answers(["<answer>Lyon</answer>"], {"episode_answer": ["Paris"]})  # a dataset column: not read
    ['Lyon']
    """
    missing = unanswered(kwargs, len(completions))
    rollout = rollout_column(kwargs, "answered", len(completions)) is not None
    parsed = (rollout_column(kwargs, "episode_answer", len(completions)) if rollout else None) \
        or [None] * len(completions)
    return [None if none else (str(answer).strip() if answer is not None else final_answer(c))
            for c, none, answer in zip(completions, missing, parsed, strict=True)]


def _golds(gold: Any) -> list[str]:
    if isinstance(gold, (list, tuple)):
        return [str(g) for g in gold] or [""]
    return [str(gold)]


def exact_match(completions, **kwargs) -> list[float]:
    """1.0 when the normalised answer equals a normalised gold `answer` (HotpotQA EM), else 0.0.

    >>> exact_match(["<answer>The Eiffel Tower!</answer>", "<answer>Paris</answer>", "Eiffel Tower"],
    ...             answer=["eiffel tower", "Lyon", "Eiffel Tower"])
    [1.0, 0.0, 0.0]
    """
    from selfimprove.tasks.hotpotqa.metrics import exact_match_score

    golds = column(kwargs, "answer", len(completions))
    answers = final_answers(completions, kwargs)
    return [_best(exact_match_score, answer, gold) for answer, gold in zip(answers, golds, strict=True)]


def _best(metric, answer: str | None, gold: Any) -> float:
    """The best `metric(answer, gold)` over the golds; 0.0 without a final answer."""
    if answer is None:
        return 0.0
    return max(float(metric(answer, g)) for g in _golds(gold))


def token_f1(completions, **kwargs) -> list[float]:
    """Token F1 of the final answer against the gold `answer` (official HotpotQA normalisation); 0
    without a final answer, however many gold words the completion's retrieved passages hold.

    >>> token_f1(["<answer>the Eiffel Tower, Paris</answer>", "<answer>no</answer>", "the Eiffel Tower"],
    ...          answer=["Eiffel Tower", "yes", "Eiffel Tower"])
    [0.8, 0.0, 0.0]
    """
    from selfimprove.tasks.hotpotqa.metrics import f1_score

    golds = column(kwargs, "answer", len(completions))
    answers = final_answers(completions, kwargs)
    return [_best(lambda a, g: f1_score(a, g)[0], answer, gold) for answer, gold in zip(answers, golds, strict=True)]


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
    """Factory: 1.0 when the final answer's last number equals the gold number within tolerance.

    >>> numeric_match()(["<answer>x = 3.0</answer>", "<answer>none</answer>", "3"], answer=["3", "3", "3"])
    [1.0, 0.0, 0.0]
    """
    def numeric_match(completions, **kwargs) -> list[float]:
        golds = column(kwargs, answer_column, len(completions))
        answers = final_answers(completions, kwargs)
        return [_numbers_match(a, g, rel_tol, abs_tol) for a, g in zip(answers, golds, strict=True)]

    return named(numeric_match, "numeric_match")


def _numbers_match(answer: str | None, gold: Any, rel_tol: float, abs_tol: float) -> float:
    if answer is None:
        return 0.0
    got, want = parse_number(answer), parse_number(str(gold))
    if got is None or want is None:
        return 0.0
    return 1.0 if math.isclose(got, want, rel_tol=rel_tol, abs_tol=abs_tol) else 0.0


@reward_factory
def task_reward(task_name: str, field: str = "value", name: str | None = None, **task_options: Any):
    """Factory: score each completion with a task's verifier, rebuilding examples from the columns.

    `field` is "value" (the task's main score), "correct" (1.0/0.0) or a part of the task's score
    breakdown (Countdown: "format", 1.0 for a well-formed `<answer>` equation). The reward is named
    `<task>_<field>` unless `name` is given. Columns come from TRL's keyword arguments; each row
    is rebuilt with `task.from_row(row)`, so the dataset needs the task's own columns
    (its `reward_columns`), nothing else. The value is exactly `task.score(example, completion_text(completion))`,
    except 0 where the rollout's `answered` column says the episode gave no final answer, and None
    for a row whose values cannot be read.

    >>> countdown = task_reward("countdown")
    >>> columns = {"nums": [[2, 3, 4]] * 4, "target": [20, 20, 20, None]}
    >>> countdown(["<answer>(2 + 3) * 4</answer>", "<answer>2 * 3 * 4</answer>", "(2 + 3) * 4", "<answer>1</answer>"],
    ...           **columns)
    [1.0, 0.1, 0.0, None]
    """
    from selfimprove.errors import ConfigError
    from selfimprove.tasks import get_task

    task = get_task(task_name, **task_options)
    fields = tuple(dict.fromkeys(("value", "correct", *getattr(task, "score_parts", ()))))
    if field not in fields:
        choices = ", ".join(repr(f) for f in fields)
        raise ConfigError(f"task_reward field for task {task_name} must be one of {choices}, got '{field}'")
    reward_name = name or f"{task_name.rsplit(':', 1)[-1]}_{field}"

    def score_with_task(completions, **kwargs) -> list[float | None]:
        require_columns(reward_name, getattr(task, "reward_columns", ()), kwargs)
        rows = rows_from_kwargs(kwargs, len(completions))
        examples = [_example(task, row, reward_name, kwargs) for row in rows]
        _warn_unreadable(reward_name, examples)
        missing = unanswered(kwargs, len(completions))
        return [None if isinstance(example, str) else 0.0 if none else _task_score(task, example, c, field)
                for c, example, none in zip(completions, examples, missing, strict=True)]

    return named(score_with_task, reward_name, task=task)


def _example(task: Any, row: dict[str, Any], reward_name: str, kwargs: dict[str, Any]) -> Any:
    """`task.from_row(row)`, or why the row cannot be read (a str); a column absent from the whole
    dataset (a KeyError for a key the row lacks) is a UserError naming it."""
    from selfimprove.errors import DataError, UserError

    try:
        return task.from_row(row)
    except KeyError as exc:
        key = exc.args[0] if exc.args else None
        if isinstance(key, str) and key not in row:
            known = ", ".join(sorted(k for k in kwargs if k not in TRL_EXTRAS)) or "none"
            raise UserError(f"{reward_name} needs dataset column '{key}' (columns passed: {known})") from None
        return f"KeyError: {exc}"
    except (ValueError, TypeError, DataError) as exc:
        return f"{type(exc).__name__}: {exc}"


def _warn_unreadable(reward_name: str, examples: list[Any]) -> None:
    problems = [example for example in examples if isinstance(example, str)]
    if problems:
        logger.warning("%s: %d of %d rows cannot be read and score None (%s)", reward_name, len(problems),
                       len(examples), problems[0][:200])


def _task_score(task: Any, example: Any, completion: Any, field: str) -> float:
    score = task.score(example, completion_text(completion))
    if field in ("value", "correct"):
        return float(getattr(score, field))
    return float(score.breakdown.get(field, 0.0))


@reward_factory
def countdown_correct(**task_options: Any):
    """Factory: 1.0 when the Countdown verifier accepts the `<answer>` equation (columns nums, target).

    `selfimprove.rewards.countdown_correct` is a ready-made instance (for `trl grpo --reward_funcs`).

    >>> countdown_correct()(["<answer>(2 + 3) * 4</answer>", "<answer>(2 + 3) * 4</answer>", "<answer>4</answer>"],
    ...                     nums=[[2, 3, 4]] * 3, target=[20, 20, "twenty"], answered=[True, False, True])
    [1.0, 0.0, None]
    """
    return task_reward("countdown", field="correct", name="countdown_correct", **task_options)


@reward_factory
def countdown_format(**task_options: Any):
    """Factory: 1.0 when the `<answer>` holds a well-formed equation, right or wrong (columns nums, target).

    The format half of "correctness + format" rewards: `countdown_correct` checks the arithmetic.

    >>> countdown_format()(["<answer>(2 + 3) * 4</answer>", "<answer>2 * 3 * 4</answer>", "(2 + 3) * 4"],
    ...                    nums=[[2, 3, 4]] * 3, target=[20] * 3)
    [1.0, 1.0, 0.0]
    """
    return task_reward("countdown", field="format", name="countdown_format", **task_options)


@reward_factory
def function_call_correct(**task_options: Any):
    """Factory: 1.0 when the function-calling verifier accepts the calls (columns: tools or function,
    and gold_calls, ground_truth or xLAM's answers).

    >>> columns = {"tools": ['[{"name": "add", "parameters": {"a": {"type": "int"}, "b": {"type": "int"}}}]'] * 2,
    ...            "answers": ['[{"name": "add", "arguments": {"a": 2, "b": 2}}]'] * 2}
    >>> function_call_correct()(["add(a=2, b=2)", "I cannot call anything."], **columns)
    [1.0, 0.0]
    """
    return task_reward("function_calling", field="correct", name="function_call_correct", **task_options)
