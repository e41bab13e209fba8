"""Table-driven tests for every reward, the registry and config building, and composition."""

from __future__ import annotations

import pytest

from selfimprove.errors import ConfigError, UserError
from selfimprove.rewards import REWARDS, build_reward_funcs, get_reward
from selfimprove.rewards.agent import (
    parse_error_penalty,
    repeated_query_penalty,
    search_count_capped,
    search_diversity,
    search_effort,
    step_limit_penalty,
)
from selfimprove.rewards.answer import exact_match, extract_answer, numeric_match, token_f1
from selfimprove.rewards.classic import soft_format, strict_format, xml_correctness, xml_int_answer, xmlcount
from selfimprove.rewards.compose import cap, gate, scale, split_parts, weighted_sum

GOOD = "<reasoning>\nadd them\n</reasoning>\n<answer>\n4\n</answer>\n"


def chat(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


CLASSIC = [
    # (reward, completion, gold, expected)
    (xml_correctness, GOOD, "4", 2.0),
    (xml_correctness, GOOD, "5", 0.0),
    (xml_correctness, "<answer>4</answer>", "4", 2.0),
    (xml_correctness, "4", "4", 0.0),  # no <answer> = no final answer (was 2.0: the gist compares the whole text)
    (xml_correctness, "<answer> 4 </answer> trailing", "4", 2.0),
    (xml_int_answer, GOOD, None, 0.5),
    (xml_int_answer, "<answer>4.5</answer>", None, 0.0),
    (xml_int_answer, "<answer>-4</answer>", None, 0.0),
    (strict_format, GOOD, None, 0.5),
    (strict_format, GOOD.rstrip("\n"), None, 0.0),
    (strict_format, "<reasoning>\na\nb\n</reasoning>\n<answer>\n4\n</answer>\n", None, 0.0),  # no DOTALL
    (strict_format, "<reasoning>\nr\n</reasoning>\n<answer>\n4\n</answer>\n\n", None, 0.5),  # `$` before a final \n
    (soft_format, "<reasoning>r</reasoning>\n<answer>4</answer>", None, 0.5),
    (soft_format, "<reasoning>r</reasoning><answer>4</answer> and more", None, 0.5),
    (soft_format, "x<reasoning>r</reasoning><answer>4</answer>", None, 0.0),  # re.match: anchored
    (soft_format, GOOD, None, 0.0),  # multi-line reasoning fails without DOTALL, as in the gist
    (xmlcount, GOOD, None, 0.5),
    (xmlcount, GOOD + "xyz", None, 0.494),
    (xmlcount, "<reasoning>\nr\n</reasoning>\n", None, 0.25),
    (xmlcount, "plain", None, 0.0),
]


@pytest.mark.parametrize(("reward", "completion", "gold", "expected"), CLASSIC)
def test_classic_rewards_match_the_gist(reward, completion, gold, expected):
    kwargs = {"answer": [gold]} if gold is not None else {}
    assert reward([completion], **kwargs) == pytest.approx([expected])
    assert reward([chat(completion)], **kwargs) == pytest.approx([expected])  # conversational form


def gist_count_xml(text) -> float:
    """The willccbb GRPO gist's count_xml, copied as the reference."""
    count = 0.0
    if text.count("<reasoning>\n") == 1:
        count += 0.125
    if text.count("\n</reasoning>\n") == 1:
        count += 0.125
    if text.count("\n<answer>\n") == 1:
        count += 0.125
        count -= len(text.split("\n</answer>\n")[-1]) * 0.001
    if text.count("\n</answer>") == 1:
        count += 0.125
        count -= (len(text.split("\n</answer>")[-1]) - 1) * 0.001
    return count


@pytest.mark.parametrize("text", [GOOD, GOOD.rstrip("\n"), GOOD + "tail", GOOD * 2, "<answer>\n4\n</answer>",
                                  "\n<answer>\nx", "<reasoning>\n", "", "\n</answer>"])
def test_xmlcount_equals_the_gist_including_its_quirks(text):
    assert xmlcount([text]) == pytest.approx([gist_count_xml(text)])


ANSWERS = [
    (exact_match, "<answer>The Eiffel Tower</answer>", "eiffel tower", 1.0),
    (exact_match, "<answer>Eiffel</answer>", "eiffel tower", 0.0),
    # no <answer> block = no final answer, as the hotpotqa scorer reads it (was 1.0: the ReAct step was read)
    (exact_match, "Action: [action: Answer, action_input: yes]", "Yes", 0.0),
    (exact_match, "<answer>Paris</answer>", ["Lyon", "paris"], 1.0),
    (token_f1, "<answer>Eiffel</answer>", "eiffel tower", 2 / 3),
    (token_f1, "<answer>yes</answer>", "no", 0.0),
    (token_f1, "<answer></answer>", "no", 0.0),
    (numeric_match(), "<answer>1,000</answer>", "1000", 1.0),
    (numeric_match(), "<answer>about 3.14159</answer>", "3.14159", 1.0),
    (numeric_match(), "<answer>12</answer>", "13", 0.0),
    (numeric_match(), "<answer>no idea</answer>", "13", 0.0),
    (numeric_match(rel_tol=0.1), "<answer>105</answer>", "100", 1.0),
]


@pytest.mark.parametrize(("reward", "completion", "gold", "expected"), ANSWERS)
def test_answer_rewards(reward, completion, gold, expected):
    assert reward([completion], answer=[gold]) == pytest.approx([expected])
    assert reward([chat(completion)], answer=[gold]) == pytest.approx([expected])


def test_extract_answer_prefers_the_last_tag():
    assert extract_answer("<answer>a</answer> <answer>b</answer>") == "b"


def test_missing_answer_column_names_the_column():
    with pytest.raises(UserError, match="answer"):
        exact_match(["<answer>x</answer>"], question=["q"])


SEARCHES = "<search>paris population</search><information>r</information><search>lyon</search>" \
           "<information>r</information><answer>x</answer>"
DOUBLE = "<search>a</search><search>b</search><information>r</information><answer>x</answer>"
AGENT = [
    (search_count_capped, "<search>a</search><answer>x</answer>", 0.0),
    (search_count_capped, SEARCHES, 0.5),
    (search_count_capped, "<search>q</search>" * 5, 0.5),
    (search_count_capped, "<search>q</search>" * 6, 0.0),
    (search_effort, "<answer>x</answer>", 0.0),  # DeepSearch: no searches = no reward (was 0.2)
    (search_effort, SEARCHES, 0.5),
    (search_effort, "<search>q</search><information>r</information>" * 7 + "<answer>x</answer>", 0.95),
    (search_effort, DOUBLE, 0.25),
    (search_effort, SEARCHES.replace("<answer>x</answer>", ""), 0.0),
    (repeated_query_penalty(), SEARCHES, 0.0),
    (repeated_query_penalty(), "<search>Paris population</search><search>population, paris?</search>", -0.5),
    (repeated_query_penalty(0.6), "<search>Paris population</search><search>population of paris</search>", -0.5),
    (repeated_query_penalty(threshold=1.0), "<search>Paris population</search><search>population of paris</search>",
     0.0),
    (repeated_query_penalty(), "<answer>x</answer>", 0.0),
    (search_diversity(), SEARCHES, 1.0),
    (search_diversity(), "<search>q</search>" * 4, 0.25),
    (search_diversity(), "<answer>x</answer>", 0.0),
    (step_limit_penalty(max_turns=2), SEARCHES.replace("<answer>x</answer>", ""), -1.0),
    (step_limit_penalty(max_turns=2), SEARCHES, 0.0),
    (step_limit_penalty(max_turns=5), SEARCHES.replace("<answer>x</answer>", ""), 0.0),
    (parse_error_penalty(), SEARCHES, 0.0),
    (parse_error_penalty(), "<search>unclosed", -0.25),
    (parse_error_penalty(), "", -0.25),
    (parse_error_penalty(per_error=0.6), "x<information>r</information>y<information>r</information>z", -1.0),
    (get_reward("length_penalty", {"max_words": 2, "per_word": 0.5}), "a b c d e", -1.0),
    (get_reward("length_penalty", {"max_words": 2, "per_word": 0.5}), "a b", 0.0),
]


@pytest.mark.parametrize(("reward", "completion", "expected"), AGENT)
def test_agent_rewards_on_text(reward, completion, expected):
    assert reward([completion]) == pytest.approx([expected])


def test_agent_rewards_read_chat_turns():
    messages = [{"role": "assistant", "content": "<search>a</search>"}, {"role": "tool", "content": "r"},
                {"role": "assistant", "content": "<search>b</search>"}, {"role": "tool", "content": "r"},
                {"role": "assistant", "content": "<answer>x</answer>"}]
    assert search_effort([messages]) == pytest.approx([0.5])
    crowded = [{"role": "assistant", "content": "<search>a</search><search>b</search>"},
               {"role": "assistant", "content": "<answer>x</answer>"}]
    assert search_effort([crowded]) == pytest.approx([0.25])


def _trajectory(actions, **flags):
    steps = [{"index": i, "text": "", "action": a, "argument": arg} for i, (a, arg) in enumerate(actions)]
    final = next((arg for a, arg in actions if a == "answer"), None)
    return {"steps": steps, "final_answer": final, "flags": {"parse_errors": 0, "repeated_queries": 0,
                                                            "step_limit": False, "finished": final is not None, **flags}}


TRAJECTORIES = [
    (search_count_capped, _trajectory([("search", "a"), ("search", "b"), ("answer", "x")]), 0.5),
    (search_effort, _trajectory([("search", "a"), ("search", "b"), ("answer", "x")]), 0.5),
    (search_effort, _trajectory([("search", "a")], step_limit=True), 0.0),
    (repeated_query_penalty(), _trajectory([("search", "a"), ("search", "b"), ("answer", "x")], repeated_queries=1),
     -0.5),
    (search_diversity(), _trajectory([("search", "paris"), ("search", "Paris"), ("answer", "x")]), 0.5),
    (step_limit_penalty(), _trajectory([("search", "a")] * 5, step_limit=True), -1.0),
    (step_limit_penalty(), _trajectory([("search", "a"), ("answer", "x")]), 0.0),
    (parse_error_penalty(), _trajectory([("invalid", ""), ("answer", "x")], parse_errors=2), -0.5),
]


@pytest.mark.parametrize(("reward", "trajectory", "expected"), TRAJECTORIES)
def test_agent_rewards_on_trajectories(reward, trajectory, expected):
    assert reward([""], trajectories=[trajectory]) == pytest.approx([expected])


def test_agent_rewards_accept_trajectory_objects():
    from selfimprove.data.trajectory import Trajectory

    record = Trajectory.from_dict({"schema_version": 1, "task": "hotpotqa", "example_id": "e", "attempt": 0,
                                   "question": "q", "gold": "x", "steps": [
                                       {"index": 0, "text": "t", "action": "search", "argument": "a"},
                                       {"index": 1, "text": "t", "action": "search", "argument": "b"},
                                       {"index": 2, "text": "t", "action": "answer", "argument": "x"}],
                                   "final_answer": "x"})
    assert search_count_capped([""], trajectories=[record]) == [0.5]


# --- composition -----------------------------------------------------------------------------


def test_weighted_sum_reports_parts_and_skips_none():
    def sometimes(completions, **kwargs):
        return [None, 1.0]

    total = weighted_sum([(soft_format, 2.0), (sometimes, 1.0)], name="total")
    assert total(["<reasoning>r</reasoning><answer>1</answer>", "x"]) == [1.0, 1.0]
    assert total.parts == {"soft_format": [0.5, 0.0], "sometimes": [None, 1.0]}

    def never(completions, **kwargs):
        return [None] * len(completions)

    assert weighted_sum([(never, 1.0)])(["x"]) == [None]


def test_weighted_sum_logs_parts_through_log_metric():
    logged = {}
    total = weighted_sum([(soft_format, 1.0), (xmlcount, 1.0)], name="shaped")
    total([GOOD, "x"], log_metric=lambda name, value: logged.__setitem__(name, value))
    assert logged == {"rewards/shaped/soft_format/mean": 0.0, "rewards/shaped/xmlcount/mean": 0.25}


def test_gate_cap_scale():
    gated = gate(soft_format, xml_correctness, threshold=2.0, otherwise=-0.1)
    right, wrong = "<reasoning>r</reasoning><answer>4</answer>", "<reasoning>r</reasoning><answer>5</answer>"
    assert gated([right, wrong], answer=["4", "4"]) == [0.5, -0.1]
    assert cap(xml_correctness, high=1.5)([right], answer=["4"]) == [1.5]
    assert cap(scale(xml_correctness, -1.0), low=-1.0)([right], answer=["4"]) == [-1.0]
    assert scale(xml_correctness, 0.5, offset=1.0, name="half")([wrong], answer=["4"]) == [1.0]


def test_split_parts_multiplies_nested_weights():
    inner = weighted_sum([(soft_format, 2.0), (xmlcount, 1.0)], name="inner")
    outer = weighted_sum([(inner, 0.5), (xml_int_answer, 3.0)], name="outer")
    funcs, weights = split_parts(outer)
    assert [f.__name__ for f in funcs] == ["soft_format", "xmlcount", "xml_int_answer"]
    assert weights == [1.0, 0.5, 3.0]


def test_duplicate_part_names_are_a_config_error():
    with pytest.raises(ConfigError, match="label"):
        weighted_sum([(soft_format, 1.0), (soft_format, 2.0)])


# --- registry and configs ----------------------------------------------------------------------


def test_every_registered_reward_resolves_and_is_named():
    needs_params = {"task_reward", "llm_judge_correctness", "rubric_judge", "refiner_reward"}
    for name in REWARDS.names():
        if name in needs_params:
            continue
        fn = get_reward(name)
        assert callable(fn) and fn.__name__ != "<lambda>", name


def test_build_reward_funcs_from_yaml_style_entries():
    funcs, weights = build_reward_funcs({"rewards": [
        "xml_correctness",
        {"name": "length_penalty", "weight": 0.1, "params": {"max_words": 5}, "label": "short"},
        {"name": "gate", "reward": "soft_format", "condition": "xml_correctness", "threshold": 2.0},
        {"name": "weighted_sum", "weight": 2.0, "parts": [{"name": "xmlcount", "weight": 0.5}, "xml_int_answer"]},
    ]})
    assert [f.__name__ for f in funcs] == ["xml_correctness", "short", "soft_format_if_xml_correctness",
                                           "xmlcount", "xml_int_answer"]
    assert weights == [1.0, 0.1, 1.0, 1.0, 2.0]
    assert funcs[1](["a b c d e f g"]) == pytest.approx([-0.004])


@pytest.mark.parametrize(("config", "message"), [
    ([{"name": "sofft_format"}], "did you mean 'soft_format'"),
    ([{"name": "soft_format", "params": {"x": 1}}], "takes no params"),
    ([{"name": "length_penalty", "params": {"max_wrds": 1}}], "takes no param 'max_wrds'; did you mean 'max_words'"),
    ([{"name": "soft_format", "wieght": 1}], "takes no key 'wieght'; did you mean 'weight'"),
    (["soft_format", "soft_format"], "label"),
    ([], "non-empty"),
    ([{"name": "gate", "reward": "soft_format"}], "needs `condition`"),
])
def test_bad_reward_configs_fail_with_a_clear_message(config, message):
    with pytest.raises(ConfigError, match=message):
        build_reward_funcs(config)


def test_user_rewards_by_module_path():
    fn = get_reward("selfimprove.rewards.classic:xmlcount")
    assert fn([GOOD]) == [0.5]


# --- task verifiers ----------------------------------------------------------------------------


class TinyTask:
    """A task whose answer is correct when it equals the `target` column, half credit when it contains it."""

    name = "tiny"

    def from_row(self, row):
        from selfimprove.tasks.base import Example

        return Example(str(row["example_id"]), "q", row["target"])

    def score(self, example, completion):
        from selfimprove.tasks.base import Score

        got = extract_answer(completion)
        value = 1.0 if got == example.answer else 0.5 if example.answer in got else 0.0
        return Score(value, value == 1.0, got)


def test_task_reward_rebuilds_examples_from_columns():
    from selfimprove.rewards.answer import task_reward

    columns = {"example_id": ["a", "b", "c"], "target": ["7", "7", "7"], "trainer_state": None}
    completions = ["<answer>7</answer>", "<answer>77</answer>", "<answer>x</answer>"]
    value = task_reward(f"{__name__}:TinyTask")
    correct = task_reward(f"{__name__}:TinyTask", field="correct")
    assert value.__name__ == "TinyTask_value" and correct.__name__ == "TinyTask_correct"
    assert value(completions, **columns) == [1.0, 0.5, 0.0]
    assert correct(completions, **columns) == [1.0, 0.0, 0.0]
    with pytest.raises(ConfigError):
        task_reward(f"{__name__}:TinyTask", field="f1")


def test_countdown_correct_uses_the_countdown_verifier():
    from selfimprove.tasks import get_task

    task = get_task("countdown")
    rows = [task.to_row(e) for e in task.load(None)[:2]]
    columns = {key: [row[key] for row in rows] for key in rows[0]}
    reward = get_reward("countdown_correct")
    right = [f"<answer>{row['solution']}</answer>" for row in rows]
    assert reward(right, **columns) == [1.0, 1.0]
    assert reward(["<answer>1 + 1</answer>", "no answer"], **columns) == [0.0, 0.0]


def test_countdown_format_reads_the_breakdown_and_task_reward_names_the_parts():
    from selfimprove.tasks import get_task

    task = get_task("countdown")
    rows = [task.to_row(e) for e in task.load(None)[:3]]
    columns = {key: [row[key] for row in rows] for key in rows[0]}
    reward = get_reward("countdown_format")
    completions = [f"<answer>{rows[0]['solution']}</answer>", "<answer>1 + 1</answer>", "<answer>1 +</answer>"]
    assert reward(completions, **columns) == [1.0, 1.0, 0.0]  # right, well-formed but wrong, unparseable
    assert [task.score(task.from_row(r), c).breakdown["format"] for r, c in zip(rows, completions, strict=True)] == \
        [1.0, 1.0, 0.0]
    from selfimprove.rewards.answer import task_reward

    with pytest.raises(ConfigError, match="'value', 'correct', 'wrong_target'.*'format', got 'f1'"):
        task_reward("countdown", field="f1")


def test_think_answer_format_anchors_the_end_in_both_trl_shapes():
    reward = get_reward("think_answer_format")
    good = "<think>\n(6 - 2) * 5 = 20\n</think>\n<answer>(6 - 2) * 5</answer>"
    repeated = good + "\n</think>\n<answer>(6 - 2) * 5</answer>"  # what a policy without its end of turn writes
    texts = [good, repeated, good + " extra", "<answer>(6 - 2) * 5</answer>", good.replace("<think>", "<think><think>")]
    assert reward(texts) == [1.0, 0.0, 0.0, 0.0, 0.0]
    conversational = [[{"role": "assistant", "content": t}] for t in texts]
    assert reward(conversational) == [1.0, 0.0, 0.0, 0.0, 0.0]
    assert reward([good, good], answered=[True, False]) == [1.0, 0.0]


def test_function_call_correct_uses_the_function_calling_verifier():
    from selfimprove.tasks import get_task

    task = get_task("function_calling")
    rows = [task.to_row(task.load(None)[0])]
    columns = {key: [row[key] for row in rows] for key in rows[0]}
    reward = get_reward("function_call_correct")
    call = '<tool_call>{"name": "calculate_triangle_area", "arguments": {"base": %d, "height": 5}}</tool_call>'
    assert reward([call % 10], **columns) == [1.0]
    assert reward([call % 11], **columns) == [0.0]
    assert reward(["I cannot call tools"], **columns) == [0.0]
