"""Hostile model output into every parser and reward: no crash, no hang.

Extends the owners' fuzzing (agent formats with text fragments in test_agent_fuzz.py, Countdown
equations over an arithmetic alphabet, python-like calls over a small alphabet) with: any
unicode text, structured JSON inside tool calls, citation markup, `<answer>` extraction, huge
adversarial strings (many unclosed tags: the classic quadratic-regex trap), and every reward of
the registry called on hostile completions (strings, chat messages, non-string content) with
judges that answer garbage. Rewards must return one float or None per completion. A hang or a
super-linear blow-up (on the ~100k-character inputs, quadratic means hours) trips the tests'
watchdog; wall-clock speed is not asserted here (that belongs in benchmarks/).
"""

from __future__ import annotations

import json
import math
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from selfimprove.agent.formats import ReactFormat, ToolCallFormat, XmlFormat
from selfimprove.models.scripted import ScriptedGenerator
from selfimprove.rewards import REWARDS, get_reward
from selfimprove.rewards.answer import extract_answer
from selfimprove.rewards.classic import SOFT_PATTERN, soft_matches
from selfimprove.rewards.text import tool_result_spans
from selfimprove.tasks import get_task
from selfimprove.tasks.citations import parse_cited_answer, snippet_ids
from selfimprove.tasks.countdown_equation import EquationError, evaluate_equation
from selfimprove.tasks.function_calls import CallParseError, parse_calls
from selfimprove.tasks.tags import last_tag_block, tag_blocks

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
pytestmark = pytest.mark.timeout(300, method="thread")  # a hang guard: each test here takes seconds

TAGS = ["<answer>", "</answer>", "<ANSWER>", "<snippet id=", "<snippet ids='", "</snippet>", ">", "'", '"', ",",
        "S1", "S2", "<tool_call>", "</tool_call>", "<think>", "</think>", "<search>", "</search>", "\n", " ",
        "Action:", "[action: Answer, action_input: ", "]", "{", "}", "İ", "\x00", "🙂", "1 + 2", "(", ")"]
fragments = st.lists(st.sampled_from(TAGS), max_size=60).map("".join)
model_text = st.one_of(st.text(max_size=400), fragments)
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=10)),
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.sampled_from(["name", "arguments", "query", "q", "x"]) | st.text(max_size=4),
                                            inner, max_size=4)),
    max_leaves=20)
HUGE = ["<answer>" * 12_500, "</answer>" * 11_000, "<snippet id=x>" * 7_000, "<snippet id=" * 8_000,
        "<answer><snippet id=S1>" * 4_000, "<tool_call>{" * 9_000, "{" * 100_000, "[" * 100_000,
        "(" * 100_000, "action: Answer, action_input: " * 3_000, "1+" * 50_000, "9" * 100_000]


@FUZZ
@given(model_text, st.sampled_from(["answer", "search", "think", "x", ""]))
def test_tag_extraction_never_raises(text, tag):
    found = last_tag_block(text, tag)
    assert found is None or isinstance(found, str)
    assert isinstance(extract_answer(text), str)


@FUZZ
@given(st.one_of(st.none(), st.integers(), json_values, st.lists(st.dictionaries(st.sampled_from(["role", "content"]),
                                                                                 json_values, max_size=2), max_size=3)))
def test_answer_extraction_takes_any_completion_shape(completion):
    assert isinstance(extract_answer(completion), str)


@FUZZ
@given(model_text, st.one_of(st.none(), st.sets(st.sampled_from(["S1", "S2", "x"]))))
def test_citation_parsing_never_raises(text, known):
    parsed = parse_cited_answer(text, known)
    assert all(isinstance(claim.text, str) and all(isinstance(i, str) for i in claim.ids) for claim in parsed.claims)
    assert parsed.valid == (bool(parsed.claims) and not parsed.errors)
    assert all(isinstance(i, str) for i in snippet_ids(text))


@FUZZ
@given(st.text(max_size=600))
def test_countdown_equations_from_any_unicode(text):
    try:
        result = evaluate_equation(text)
    except EquationError:
        result = None
    assert result is None or all(isinstance(n, int) for n in result.numbers)


@FUZZ
@given(json_values, st.sampled_from(["{}", "<tool_call>{}</tool_call>", "```json\n{}\n```", "[{}]", "x {} y"]))
def test_tool_calls_with_any_json_inside(value, wrapper):
    text = wrapper.replace("{}", json.dumps(value), 1)
    try:
        calls = parse_calls(text)
    except CallParseError:
        calls = []
    assert all(isinstance(call.name, str) and isinstance(call.arguments, dict) for call in calls)
    for fmt in (ToolCallFormat(), XmlFormat(), ReactFormat()):
        parsed = fmt.parse(text)
        assert parsed.action in ("search", "answer", "invalid")


TASKS = {name: get_task(name) for name in ("hotpotqa", "countdown", "function_calling", "refiner")}
EXAMPLES = {name: task.load(None)[0] for name, task in TASKS.items()}


@FUZZ
@given(model_text)
def test_every_task_scores_any_text(text):
    for name, task in TASKS.items():
        score = task.score(EXAMPLES[name], text)
        assert 0.0 <= score.value <= 1.0 or name == "countdown" and score.value in (0.0, 0.1, 1.0)
        assert isinstance(score.correct, bool)


@pytest.mark.parametrize("text", HUGE, ids=lambda t: f"{t[:14]!r}x{len(t)}")
def test_huge_adversarial_inputs_parse_without_blowing_up(text):
    found = last_tag_block(text, "answer")
    assert found is None or isinstance(found, str)
    assert isinstance(extract_answer(text), str)
    assert isinstance(parse_cited_answer(text).valid, bool) and isinstance(snippet_ids(text), list)
    for fmt in (ReactFormat(), XmlFormat(), ToolCallFormat()):
        assert fmt.parse(text).action in ("search", "answer", "invalid")
    for fn, error in ((evaluate_equation, EquationError), (parse_calls, CallParseError)):
        try:
            fn(text)
        except error:
            pass
    for name, task in TASKS.items():
        assert isinstance(task.score(EXAMPLES[name], text).correct, bool)


@pytest.mark.parametrize("text", HUGE[:6], ids=lambda t: f"{t[:14]!r}x{len(t)}")
def test_huge_adversarial_inputs_parse_in_bounded_memory(text):
    """Peak allocation while parsing ~100k characters stays under 64 MiB (no blow-up by copying)."""
    import tracemalloc

    tracemalloc.start()
    try:
        for fn in (extract_answer, parse_cited_answer, ToolCallFormat().parse, XmlFormat().parse):
            fn(text)
        for name, task in TASKS.items():
            task.score(EXAMPLES[name], text)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * 2**20, f"peak {peak / 2**20:.1f} MiB"


def rows_for(task_name: str, size: int) -> dict[str, list]:
    row = TASKS[task_name].to_row(EXAMPLES[task_name])
    return {key: [value] * size for key, value in row.items()}


REWARD_TASK = {"countdown_correct": "countdown", "function_call_correct": "function_calling",
               "citation": "refiner", "refiner_reward": "refiner", "xml_int_answer": "countdown"}
JUDGED = {"llm_judge_correctness", "rubric_judge", "citation", "refiner_reward"}
completions = st.lists(st.one_of(model_text, st.lists(st.fixed_dictionaries(
    {"role": st.sampled_from(["assistant", "tool", "user"]), "content": st.one_of(model_text, st.none(), json_values)}),
    max_size=3)), min_size=1, max_size=4)


def reward_params(name: str, judge_reply: str) -> dict:
    params = {"task_name": "hotpotqa"} if name == "task_reward" else {}
    if name in JUDGED:
        params["judge"] = ScriptedGenerator(lambda conversation, index: judge_reply)
        if name in ("llm_judge_correctness", "rubric_judge"):
            params["timeout_s"] = 5.0
    if name == "rubric_judge":
        params["static_rubrics"] = ["cites sources"]
    return params


@pytest.mark.parametrize("name", REWARDS.names())
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=completions, judge_reply=st.one_of(model_text, st.sampled_from(["Verdict: yes", "Score: 0.5", ""])))
def test_every_reward_survives_hostile_completions(name, batch, judge_reply):
    reward = get_reward(name, reward_params(name, judge_reply))
    columns = rows_for(REWARD_TASK.get(name, "hotpotqa"), len(batch))
    values = reward(batch, **columns)
    assert len(values) == len(batch)
    assert all(v is None or isinstance(v, float | int) and math.isfinite(v) for v in values), values


# The linear string scanners give exactly what the lazy regexes they replaced give (those regexes
# rescan to the end of the text from every unclosed opening tag: quadratic, see benchmarks/bench_parsers.py).
TOOL_RESULT_REGEX = re.compile(r"<(information|result)>.*?</\1>|\nObservation:[^\n]*", re.DOTALL)
scanner_text = st.lists(st.sampled_from(["<information>", "</information>", "<result>", "</result>", "\nObservation:",
                                         "\n", "a", " ", "<search>", "</search>", "<SEARCH>", "<tool_call>",
                                         "</tool_call>", "<Tool_Call>", "İ"]), max_size=20).map("".join)


@FUZZ
@given(scanner_text)
def test_tool_result_spans_match_the_regex(text):
    assert list(tool_result_spans(text)) == [match.span() for match in TOOL_RESULT_REGEX.finditer(text)]


@FUZZ
@given(scanner_text, st.sampled_from(["search", "tool_call"]), st.booleans())
def test_tag_blocks_match_the_lazy_regex(text, tag, ignore_case):
    flags = re.DOTALL | (re.IGNORECASE | re.ASCII if ignore_case else 0)
    expected = re.findall(f"<{tag}>(.*?)</{tag}>", text, flags)
    assert tag_blocks(text, tag, ignore_case=ignore_case) == expected


soft_text = st.lists(st.sampled_from(["<reasoning>", "</reasoning>", "<answer>", "</answer>", "\n", " ", "\t", "x",
                                      "\x1c", "\u2003", "\x85", "\r", "<"]), max_size=16).map("".join)


@FUZZ
@given(soft_text, st.booleans())
def test_soft_format_matches_the_gist_regex(text, starts_right):
    text = "<reasoning>" + text if starts_right else text
    assert soft_matches(text) == bool(re.match(SOFT_PATTERN, text))
