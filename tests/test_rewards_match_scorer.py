"""Property: every answer reward equals its task's evaluation scorer on every generated completion.

For each task (hotpotqa, countdown, function_calling, refiner) completions are built from the
pieces models and environments write (free text, `<think>`, `<search>`, tool results that quote
the gold, `<answer>` blocks closed or not, ReAct answer steps, tool calls, cited snippets), in
both shapes TRL passes: a plain string and ONE assistant message holding the whole episode. The
reward must equal `get_task(name).score(example, text)` (the field evaluation reports), and an
answer reward must be 0 whenever the scorer finds no final answer.
"""

from __future__ import annotations

import json

from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from selfimprove.rewards.answer import (
    countdown_correct,
    exact_match,
    function_call_correct,
    numeric_match,
    task_reward,
    token_f1,
)
from selfimprove.tasks import get_task

PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

WORDS = ["Paris", "paris", "France", "the", "capital", "of", "Lyon", "2", "3", "4", "20", "1,000", "yes", "no",
         "Eiffel", "Tower", ",", ".", "+", "*", "(", ")", "-", "/", "add", "a=2", "b=2", "é", "İ", "🙂"]
words = st.lists(st.sampled_from(WORDS), max_size=6).map(" ".join)


def pieces(answers: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """One piece of a completion; `answers` are what the task's own answers look like."""
    inner = st.one_of(words, answers)
    return st.one_of(
        words, st.just("\n"),
        inner.map(lambda t: f"<think>{t}</think>"),
        inner.map(lambda t: f"<search> {t} </search>"),
        inner.map(lambda t: f"<information> [Paris] {t} </information>"),
        inner.map(lambda t: f"<answer>{t}</answer>"),
        inner.map(lambda t: f"<ANSWER> {t} </Answer>"),
        inner.map(lambda t: f"<answer>{t}"),
        st.just("</answer>"),
        inner.map(lambda t: f"Action: [action: Answer, action_input: {t}]"),
        answers,
    )


def completions(answers: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.lists(pieces(answers), max_size=7).map("".join)


shapes = st.sampled_from(["string", "one assistant message"])


def shaped(text: str, shape: str):
    return text if shape == "string" else [{"role": "assistant", "content": text}]


def scorer(task_name: str, row: dict):
    task = get_task(task_name)
    return lambda text: task.score(task.from_row(row), text)


def columns(row: dict) -> dict[str, list]:
    return {key: [value] for key, value in row.items()}


# --- the four tasks: a row, what its answers look like, and the rewards that must match -------------

HOTPOT_ROW = {"example_id": "h", "question": "What is the capital of France?", "answer": "Paris"}
COUNTDOWN_ROW = {"example_id": "c", "nums": [2, 3, 4], "target": 20}
CALLS_ROW = {"example_id": "f", "question": "2+2?", "tools": "[]", "messages": "[]",
             "gold_calls": json.dumps([{"add": {"a": [2], "b": [2]}}])}
REFINER_ROW = {"example_id": "r", "question": "Where is the tower?", "snippet_ids": ["a1", "b2"],
               "tool_output": "<snippet id=a1>The tower is in Paris.</snippet><snippet id=b2>It is tall.</snippet>"}

hotpot_answers = st.sampled_from(["Paris", "the Paris", "Paris, France", "Lyon", "", "capital of France"])
countdown_answers = st.sampled_from(["(2 + 3) * 4", "2 * 3 * 4", "(2+3)*4", "2 + 3", "4 * 5", "1 / 0", "20"])
call_answers = st.sampled_from(['<tool_call>{"name": "add", "arguments": {"a": 2, "b": 2}}</tool_call>',
                                '<tool_call>{"name": "add", "arguments": {"a": 2, "b": 3}}</tool_call>',
                                "add(a=2, b=2)", "add(b=2, a=2)", "add(a=2)", '{"name": "add"}', "[add(a=2, b=2)]"])
refiner_answers = st.sampled_from(["<snippet id=a1>It is in Paris</snippet>", "<snippet id=zz>Made up</snippet>",
                                   "<snippet id=a1,b2>It is a tall tower in Paris</snippet>.", "plain claim"])

cases = st.one_of(
    st.tuples(st.just("hotpotqa"), completions(hotpot_answers)),
    st.tuples(st.just("countdown"), completions(countdown_answers)),
    st.tuples(st.just("function_calling"), completions(call_answers)),
    st.tuples(st.just("refiner"), completions(refiner_answers)),
)
ROWS = {"hotpotqa": HOTPOT_ROW, "countdown": COUNTDOWN_ROW, "function_calling": CALLS_ROW, "refiner": REFINER_ROW}


def reward_and_scorer_pairs(task_name: str):
    """(reward function, how to read the scorer's Score) for every answer reward of the task."""
    pairs = [(task_reward(task_name), lambda s: s.value), (task_reward(task_name, field="correct"), lambda s: s.correct)]
    if task_name == "hotpotqa":
        pairs += [(token_f1, lambda s: s.value), (exact_match, lambda s: s.breakdown["em"])]
    if task_name == "countdown":
        pairs += [(countdown_correct(), lambda s: s.correct)]
    if task_name == "function_calling":
        pairs += [(function_call_correct(), lambda s: s.correct)]
    return pairs


@PROPERTY
@given(case=cases, shape=shapes)
@example(case=("hotpotqa", "<search> capital </search><information> [Paris] Paris is the capital </information>"),
         shape="one assistant message")
@example(case=("hotpotqa", "Paris"), shape="string")
@example(case=("countdown", "(2 + 3) * 4"), shape="string")
@example(case=("function_calling", "add(a=2, b=2)"), shape="one assistant message")
@example(case=("refiner", "<answer><snippet id=a1>It is in Paris</snippet></answer>"), shape="string")
def test_every_answer_reward_equals_its_task_scorer(case, shape):
    task_name, text = case
    row, score = ROWS[task_name], scorer(task_name, ROWS[task_name])(text)
    for reward, field in reward_and_scorer_pairs(task_name):
        assert reward([shaped(text, shape)], **columns(row)) == [float(field(score))], reward.__name__


@PROPERTY
@given(case=cases, shape=shapes)
@example(case=("hotpotqa", "<search> capital </search><information> Paris, 2 </information>"), shape="string")
def test_no_final_answer_scores_zero_on_every_answer_reward(case, shape):
    task_name, text = case
    row = ROWS[task_name]
    assume(get_task(task_name).extract(text) is None)
    rewards = [reward for reward, _ in reward_and_scorer_pairs(task_name)]
    if task_name == "hotpotqa":
        rewards.append(numeric_match())
    for reward in rewards:
        assert reward([shaped(text, shape)], **columns(row)) == [0.0], reward.__name__
