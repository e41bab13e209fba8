"""Hostile model output into every parser and reward: no crash, no hang.

Extends the owners' fuzzing (agent formats with text fragments in test_agent_fuzz.py, Countdown
equations over an arithmetic alphabet, python-like calls over a small alphabet) with: any
unicode text, structured JSON inside tool calls, citation markup, `<answer>` extraction, huge
adversarial strings (many unclosed tags: the classic quadratic-regex trap), and every reward of
the registry called on hostile completions (strings, chat messages, non-string content) with
judges that answer garbage. Rewards must return one float or None per completion. A hang or a
super-linear blow-up (on the ~100k-character inputs, quadratic means hours) trips the tests'
watchdog; wall-clock speed is not asserted here (that belongs in benchmarks/).

"Model output never crashes a run": `HOSTILE_TEXTS` (lone surrogates, bytes kept by
surrogateescape, NUL bytes, 5 000-digit numbers in every call shape, NaN/Infinity, 10 000-deep
brackets) go into every agent format, every task's score, every registered reward (TRL's string
and conversational shapes) and every writer of records (RecordStore, write_jsonl, trajectories,
the viewer, eval, agent run and distillation through scripted generators): no exception, the
text is recorded (made writable: lone surrogates become U+FFFD) and a re-run resumes.
"""

from __future__ import annotations

import json
import math
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from selfimprove.agent.formats import FORMATS, ReactFormat, ToolCallFormat, XmlFormat, get_format
from selfimprove.data.jsonl import RecordStore, read_jsonl, writable, writable_text, write_jsonl
from selfimprove.models.scripted import ScriptedGenerator
from selfimprove.rewards import REWARDS, get_reward
from selfimprove.rewards.answer import extract_answer
from selfimprove.rewards.classic import SOFT_PATTERN, soft_matches
from selfimprove.rewards.text import tool_result_spans
from selfimprove.tasks import get_task
from selfimprove.tasks.countdown.equation import EquationError, evaluate_equation
from selfimprove.tasks.function_calling.calls import CallParseError, parse_calls
from selfimprove.tasks.refiner.citations import parse_cited_answer, snippet_ids
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


REWARD_TASK = {"countdown_correct": "countdown", "countdown_format": "countdown", "function_call_correct": "function_calling",
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


# --------------------------------------------------------------------- model output never crashes a run

BIG = "9" * 5000
SURROGATE_ESCAPED = b"bad \xff\xfe utf-8 \xed\xa0\xbd end".decode("utf-8", "surrogateescape")
HOSTILE_TEXTS = [
    "\ud83d", "Thought: \ud83d\n[action: Answer, action_input: \udcff]", "<answer>\ud83d</answer>", SURROGATE_ESCAPED,
    "<search>\ud83d</search>", '<tool_call>{"name": "search", "arguments": {"query": "\\ud83d"}}</tool_call>',
    "<reasoning>\ud83d</reasoning>\n<answer>\n\udcff\n</answer>", "<snippet id=\ud83d>x</snippet> [\udcff]",
    "\x00" * 10 + "<answer>\x00</answer>", "<search>\x00</search>", "Thought: \x00\nAction: [action: Search, action_input: \x00]",
    BIG, "<answer>" + BIG + "</answer>", "<answer>-" + BIG + "." + BIG + "</answer>",
    '<tool_call>{"name": "search", "arguments": {"query": "q", "n": ' + BIG + "}}</tool_call>",
    '<tool_call>{"name": ' + BIG + ', "arguments": {}}</tool_call>',
    '{"name": "f", "arguments": {"x": ' + BIG + "}}", '[{"name": "f", "arguments": "{\\"x\\": ' + BIG + '}"}]',
    "[f(x=" + "7" * 4000 + ")]", "f(x=" + BIG + ")", '{"name": "f", "arguments": {"x": ' + "1" * 400 + ".5e300}}",
    '{"name": "f", "arguments": {"x": NaN, "y": Infinity, "z": -Infinity, "w": 1e999}}',
    '<tool_call>{"name": "search", "arguments": {"query": NaN}}</tool_call>',
    "[" * 10_000, "{" * 10_000, "(" * 10_000, '{"a": ' * 10_000, "<tool_call>" + "[" * 10_000 + "</tool_call>",
    "f(x=" + "[" * 10_000 + ")", "<answer>" + "(" * 10_000 + "1" + ")" * 10_000 + "</answer>",
    "<answer>" + "1+" * 5000 + "1</answer>", "<answer>" + "[" * 10_000 + "</answer>",
]
hostile_text = st.lists(st.sampled_from(HOSTILE_TEXTS[:12] + [BIG, "[" * 3000, "\ud83d", "\udcff", "\x00"] + TAGS),
                        max_size=6).map("".join)
pytest_ids = {"ids": lambda t: f"{t[:16]!r}x{len(t)}"}


@pytest.mark.parametrize("text", HOSTILE_TEXTS, **pytest_ids)
def test_every_format_and_task_takes_hostile_model_output(text):
    for name in FORMATS.names():
        parsed = get_format(name).parse(text)
        assert parsed.action in ("search", "answer", "invalid") and (parsed.error is None) != (parsed.action == "invalid")
    for name, task in TASKS.items():
        score = task.score(EXAMPLES[name], text)
        assert isinstance(score.correct, bool) and math.isfinite(score.value), name
    try:
        calls = parse_calls(text)
    except CallParseError:
        calls = []
    assert all(isinstance(call.arguments, dict) for call in calls)


def call_every_reward(batch: list, judge_reply: str) -> None:
    for name in REWARDS.names():
        reward = get_reward(name, reward_params(name, judge_reply))
        values = reward(batch, **rows_for(REWARD_TASK.get(name, "hotpotqa"), len(batch)))
        assert len(values) == len(batch), name
        assert all(v is None or isinstance(v, float | int) and math.isfinite(v) for v in values), (name, values)


@pytest.mark.parametrize("text", HOSTILE_TEXTS, **pytest_ids)
def test_every_reward_takes_hostile_model_output_in_both_trl_shapes(text):
    call_every_reward([text, [{"role": "assistant", "content": text}]], judge_reply=text)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(hostile_text)
def test_mixed_hostile_fragments_never_raise(text):
    for name in FORMATS.names():
        assert get_format(name).parse(text).action in ("search", "answer", "invalid")
    for name, task in TASKS.items():
        assert isinstance(task.score(EXAMPLES[name], text).correct, bool)
    call_every_reward([text, [{"role": "assistant", "content": text}]], judge_reply=text)


def hostile_record(i: int, text: str) -> dict:
    return {"id": i, "text": text, "nested": {f"key {text[:20]}": [text, {"n": 10 ** 5000 if i == 0 else i}]}}


def assert_recorded(read: list[dict], texts: list[str]) -> None:
    assert [r["text"] for r in read] == [writable_text(t) for t in texts]
    for r in read:  # everything read back can be written again
        json.dumps(r, ensure_ascii=False).encode("utf-8")


def test_record_store_and_write_jsonl_record_hostile_text(tmp_path):
    store = RecordStore(tmp_path / "store.jsonl", key=lambda r: r["id"])
    assert all(store.append(hostile_record(i, t)) for i, t in enumerate(HOSTILE_TEXTS))
    assert_recorded(store.records(), HOSTILE_TEXTS)
    again = RecordStore(tmp_path / "store.jsonl", key=lambda r: r["id"])
    assert len(again) == len(HOSTILE_TEXTS) and not any(again.append(hostile_record(i, "x")) for i in range(3))
    assert write_jsonl(tmp_path / "out.jsonl", (hostile_record(i, t) for i, t in enumerate(HOSTILE_TEXTS))) \
        == len(HOSTILE_TEXTS)
    assert_recorded(read_jsonl(tmp_path / "out.jsonl"), HOSTILE_TEXTS)
    assert read_jsonl(tmp_path / "out.jsonl")[0]["nested"]


def test_a_json_file_spelling_a_lone_surrogate_reads_back_writable(tmp_path):
    path = tmp_path / "escaped.jsonl"
    path.write_text('{"text": "a \\ud83d b", "k": "\\uDCFF"}\n', encoding="ascii")
    (record,) = read_jsonl(path)
    assert record == {"text": "a \ufffd b", "k": "\ufffd"} == writable(record)


def test_the_viewer_writes_hostile_records_and_file_names(tmp_path):
    from selfimprove.eval.viewer import write_viewer

    path = tmp_path / ("run-" + SURROGATE_ESCAPED + ".jsonl")  # a file name that is not UTF-8
    path.write_text("".join(json.dumps({"example_id": str(i), "final_answer": t, "score": {"value": v}}) + "\n"
                            for i, (t, v) in enumerate(zip(HOSTILE_TEXTS[:4], [1e999, float("nan"), 10 ** 400, 1], strict=True))))
    page = write_viewer([path], tmp_path / "view.html").read_text(encoding="utf-8")
    assert "\ufffd" in page and "NaN" not in page and "Infinity" not in page


def cycling(texts: list[str]):
    return ScriptedGenerator(lambda conversation, index: texts[(len(conversation) + index) % len(texts)])


def trajectory_texts(paths) -> list[str]:
    return [step["text"] for path in paths for record in read_jsonl(path) for step in record["steps"]]


@pytest.mark.parametrize("task,fmt", [("countdown", "auto"), ("hotpotqa", "react"), ("hotpotqa", "xml"),
                                      ("hotpotqa", "tools"), ("function_calling", "auto")])
def test_eval_records_hostile_replies_and_resumes(tmp_path, task, fmt):
    from selfimprove.eval.harness import EvalSettings, run_eval
    from selfimprove.eval.viewer import write_viewer

    settings = EvalSettings(task=task, models=["scripted:hostile"], limit=3, format=fmt, max_turns=2,
                            output_dir=str(tmp_path / "eval"))
    generator = cycling(HOSTILE_TEXTS)
    run_eval(settings, generator_factory=lambda spec: generator)
    files = sorted((tmp_path / "eval" / "trajectories").rglob("*.jsonl"))
    texts = trajectory_texts(files)
    assert texts and all(isinstance(t, str) for t in texts)
    assert len(read_jsonl(tmp_path / "eval" / "records.jsonl")) == 3
    calls = len(generator.calls)
    run_eval(settings, generator_factory=lambda spec: generator)
    assert len(generator.calls) == calls and trajectory_texts(files) == texts  # resumed: nothing re-run
    page = write_viewer(files, tmp_path / "view.html")
    assert "\ufffd" in page.read_text(encoding="utf-8") or "\\ufffd" in page.read_text(encoding="utf-8")


def test_agent_run_and_distillation_record_hostile_replies(tmp_path):
    from selfimprove.agent import AgentSettings, run_agent
    from selfimprove.agent.searchers import searcher_for_run
    from selfimprove.data.trajectory import read_trajectories, trajectory_key
    from selfimprove.workflows.distill import DistillConfig, distill

    examples = TASKS["hotpotqa"].load(None)[:3]
    searcher = searcher_for_run("bm25", examples, None, None)
    for fmt in ("react", "xml", "tools"):
        store = RecordStore(tmp_path / f"agent-{fmt}.jsonl", key=trajectory_key)
        run_agent(cycling(HOSTILE_TEXTS), TASKS["hotpotqa"], examples, searcher, fmt,
                  AgentSettings(max_turns=3, progress=False), store)
        assert len(read_trajectories(store.path)) == 3
    config = DistillConfig(teacher="scripted:hostile", limit=3, threshold=0.0, output_dir=str(tmp_path / "distill"),
                           agent=AgentSettings(max_turns=2, progress=False))
    distill(config, generator=cycling(HOSTILE_TEXTS))
    attempts = read_trajectories(tmp_path / "distill" / "attempts.jsonl")
    assert len(attempts) == 3 and all(isinstance(t.value, float) for t in attempts)
    distill(config, generator=cycling(["unused"]))
    assert read_trajectories(tmp_path / "distill" / "attempts.jsonl") == attempts
