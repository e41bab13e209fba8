"""Rewards read an episode's recorded facts (rollout columns) and give 0 to unanswered episodes.

Completions come in the shapes TRL passes: plain strings, and ONE assistant message holding a
whole multi-turn episode (tool results included). Rollout fields arrive as keyword columns with
one value per completion: num_searches, num_parse_errors, answered, num_turns, hit_step_limit,
queries.
"""

from __future__ import annotations

import pytest

from selfimprove.rewards import REWARDS, get_reward
from selfimprove.rewards.agent import (
    parse_error_penalty,
    repeated_query_penalty,
    search_count_capped,
    search_diversity,
    search_effort,
    step_limit_penalty,
)
from selfimprove.rewards.answer import exact_match, numeric_match, task_reward, token_f1
from selfimprove.rewards.classic import xml_correctness, xml_int_answer
from selfimprove.rewards.text import assistant_turns

PASSAGE = "<information> [Paris] Paris is the capital of France, population 2 million. </information>\n"


def episode(searches: int, answer: str | None = "Lyon") -> str:
    """A multi-turn search episode as TRL hands it over: model turns and tool results in one text."""
    turns = "".join(f"<think> look up part {i} </think>\n<search> capital of France {i} </search>\n{PASSAGE}"
                    for i in range(searches))
    return turns + (f"<answer> {answer} </answer>" if answer is not None else "")


def one_message(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


def facts(searches: int, answered: bool = True, **overrides) -> dict[str, list]:
    """The rollout columns for one completion."""
    columns = {"num_searches": searches, "num_parse_errors": 0, "answered": answered, "num_turns": searches + 1,
               "hit_step_limit": False, "queries": [f"capital of France {i}" for i in range(searches)]}
    columns.update(overrides)
    return {name: [value] for name, value in columns.items()}


SHAPES = [pytest.param(lambda text: text, id="string"), pytest.param(one_message, id="one-assistant-message")]


# --- answer rewards: no final answer, no reward ------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
def test_an_unanswered_episode_scores_zero_and_never_beats_a_wrong_answer(shape):
    unanswered, wrong = shape(episode(2, answer=None)), shape(episode(2, answer="Lyon"))
    assert token_f1([unanswered, wrong], answer=["Paris", "Paris"]) == [0.0, 0.0]
    assert exact_match([shape("Paris")], answer=["Paris"]) == [0.0]
    assert numeric_match()([shape(episode(1, answer=None))], answer=["2"]) == [0.0]


def test_the_classic_answer_rewards_score_zero_without_an_answer_tag():
    assert xml_correctness(["4", "<answer>4</answer>"], answer=["4", "4"]) == [0.0, 2.0]
    assert xml_int_answer(["12", one_message("<answer>12</answer>")]) == [0.0, 0.5]
    assert xml_correctness(["<answer>4</answer>"], answer=["4"], answered=[False]) == [0.0]


def test_an_episode_the_environment_records_as_unanswered_scores_zero():
    answered = "<answer>Paris</answer>"
    assert token_f1([answered, answered], answer=["Paris", "Paris"], answered=[True, False]) == [1.0, 0.0]
    assert exact_match([answered], answer=["Paris"], answered=[False]) == [0.0]
    columns = {"example_id": ["a"], "question": ["Capital of France?"], "answer": ["Paris"], "answered": [False]}
    assert task_reward("hotpotqa")([answered], **columns) == [0.0]


# --- search_effort: DeepSearch's reward_retry --------------------------------------------------


def test_search_effort_from_columns_never_drops_with_more_searches_and_is_zero_without_one():
    values = [search_effort([one_message(episode(n))], **facts(n))[0] for n in range(8)]
    assert values[0] == 0.0
    assert values == sorted(values)
    assert values[:4] == [0.0, 0.35, 0.5, 0.65]


@pytest.mark.parametrize("shape", SHAPES)
def test_search_effort_parsed_from_one_message_never_drops_with_more_searches(shape):
    values = [search_effort([shape(episode(n))])[0] for n in range(8)]
    assert values[:4] == [0.0, 0.35, 0.5, 0.65]
    assert values == sorted(values)
    twice = "<search>a</search><information>r</information><search>b</search><information>r</information>"
    assert search_effort([one_message(twice + "<answer>x</answer>")]) >= search_effort(
        [one_message("<search>a</search><information>r</information><answer>x</answer>")])


def test_search_effort_trusts_the_columns_over_the_text():
    text = one_message(episode(1))
    assert search_effort([text], **facts(3)) == [0.65]
    assert search_effort([text], **facts(1, answered=False)) == [0.0]
    assert search_effort([one_message("no tags at all")], num_searches=[2], answered=[True]) == [0.5]


def test_a_column_of_the_wrong_length_falls_back_to_the_text():
    text = one_message(episode(2))
    assert search_effort([text], num_searches=[5, 5], answered=[False, False]) == [0.5]


def test_searches_quoted_inside_tool_results_are_not_the_models():
    text = "<search>a</search><information>see <search>b</search></information><answer>x</answer>"
    assert search_effort([one_message(text)]) == [0.35]
    assert search_count_capped([one_message(text)]) == [0.0]


def test_columns_win_over_a_trajectory():
    trajectory = {"steps": [{"action": "search", "argument": "a"}, {"action": "search", "argument": "b"},
                            {"action": "answer", "argument": "x"}], "final_answer": "x", "flags": {}}
    assert search_count_capped([""], trajectories=[trajectory]) == [0.5]
    assert search_count_capped([""], trajectories=[trajectory], num_searches=[1]) == [0.0]


# --- the other agent rewards read the columns ---------------------------------------------------


def test_step_limit_penalty_fires_on_the_recorded_step_limit():
    text = one_message(episode(2, answer=None))
    assert step_limit_penalty()([text], hit_step_limit=[True]) == [-1.0]
    assert step_limit_penalty(max_turns=2)([text], hit_step_limit=[False]) == [0.0]
    assert step_limit_penalty(max_turns=3)([text], num_turns=[3], answered=[False]) == [-1.0]


def test_step_limit_penalty_counts_the_turns_inside_one_assistant_message():
    three_searches = one_message(episode(3, answer=None))
    assert step_limit_penalty(max_turns=3)([three_searches]) == [-1.0]
    assert step_limit_penalty(max_turns=3)([one_message(episode(2))]) == [0.0]


def test_parse_error_and_search_count_rewards_read_the_columns():
    clean = one_message(episode(1))
    assert parse_error_penalty()([clean], num_parse_errors=[2]) == [-0.5]
    assert search_count_capped([clean], num_searches=[3]) == [0.5]


def test_query_rewards_read_the_queries_column():
    clean = one_message(episode(2))
    queries = [["paris population", "Paris population?", "lyon"]]
    assert repeated_query_penalty()([clean], queries=queries) == [pytest.approx(-1 / 3)]
    assert search_diversity()([clean], queries=queries) == [pytest.approx(2 / 3)]


def test_one_assistant_message_is_split_into_turns_around_tool_results():
    assert assistant_turns(one_message(episode(2, answer="x"))) == [
        "<think> look up part 0 </think>\n<search> capital of France 0 </search>",
        "<think> look up part 1 </think>\n<search> capital of France 1 </search>",
        "<answer> x </answer>"]


# --- AutoDidact's reward_formatting ----------------------------------------------------------


def test_reward_formatting_is_registered_and_gives_0_7_without_tool_errors():
    reward = get_reward("reward_formatting")
    assert "reward_formatting" in REWARDS
    errored = [{"role": "assistant", "content": "{bad json"},
               {"role": "system", "content": "Error during post-processing: Expecting value"}]
    ours = one_message("<search>a</search><information>could not parse action: no tag</information>")
    assert reward([one_message(episode(2)), errored, ours, "no tool call"]) == [0.7, 0.0, 0.0, 0.7]
    assert reward([one_message(episode(2))] * 2, num_parse_errors=[0, 1]) == [0.7, 0.0]
