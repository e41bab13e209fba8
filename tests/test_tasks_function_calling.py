"""Function calling: call parsing (JSON, <tool_call>, python-like, never executed), the BFCL-style
checker, BFCL gold answers scoring 1 on whole categories, xLAM files, loader errors, fuzz."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from selfimprove.errors import DataError, UserError
from selfimprove.tasks import get_task
from selfimprove.tasks.function_calling.calls import Call, CallParseError, parse_calls
from selfimprove.tasks.function_calling.checker import check_calls, gold_to_calls
from selfimprove.tasks.function_calling.task import FunctionCallingTask, bfcl_data_path

XLAM_RECORD = {
    "id": 7,
    "query": "What is the weather in Paris and in Rome, in celsius?",
    "tools": json.dumps([{"name": "get_weather", "description": "Weather of a city.",
                          "parameters": {"city": {"type": "str", "description": "City"},
                                         "unit": {"type": "str, optional", "default": "celsius"},
                                         "days": {"type": "int, optional", "default": 1}}}]),
    "answers": json.dumps([{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}},
                           {"name": "get_weather", "arguments": {"city": "Rome", "unit": "celsius"}}]),
}


@pytest.fixture
def xlam_example(tmp_path):
    path = tmp_path / "xlam.json"
    path.write_text(json.dumps([XLAM_RECORD]))
    return FunctionCallingTask().load(str(path))[0]


def calls_json(*calls):
    return json.dumps([{"name": n, "arguments": a} for n, a in calls])


PARIS, ROME = ("get_weather", {"city": "Paris", "unit": "celsius"}), ("get_weather", {"city": "Rome", "unit": "celsius"})


@pytest.mark.parametrize(
    "completion, correct",
    [(calls_json(PARIS, ROME), True),
     (calls_json(ROME, PARIS), True),  # parallel calls: order-insensitive
     ("<tool_call>" + json.dumps({"name": "get_weather", "arguments": PARIS[1]}) + "</tool_call>\n<tool_call>"
      + json.dumps({"name": "get_weather", "arguments": json.dumps(ROME[1])}) + "</tool_call>", True),
     ('[get_weather(city="paris", unit="Celsius"), get_weather(city="Rome", unit="celsius")]', True),
     ("```json\n" + calls_json(PARIS, ROME) + "\n```", True),
     (calls_json(PARIS), False),  # missing call
     (calls_json(PARIS, PARIS), False),  # same call twice
     (calls_json(PARIS, ("get_weathr", ROME[1])), False),  # wrong name
     (calls_json(PARIS, ("get_weather", {"city": "Milan", "unit": "celsius"})), False),  # wrong value
     (calls_json(PARIS, ("get_weather", {"city": "Rome"})), False),  # missing argument
     (calls_json(PARIS, ("get_weather", {"city": "Rome", "unit": "celsius", "days": 1})), False),  # extra
     (calls_json(PARIS, ("get_weather", {"city": 5, "unit": "celsius"})), False),  # wrong type
     ("I would call get_weather", False)],
)
def test_xlam_scoring(xlam_example, completion, correct):
    score = FunctionCallingTask().score(xlam_example, completion)
    assert score.correct is correct and score.value == float(correct)
    assert (score.error is None) == correct


@pytest.mark.parametrize(
    "value, possible, declared, ok",
    [(5, [5.0], {"type": "float"}, True),  # int accepted for float
     (5.0, [5], {"type": "integer"}, False),  # float is not an int
     (True, [1], {"type": "integer"}, False),  # bool is not an int
     (1, [True], {"type": "boolean"}, False),
     ("New York, NY", ["new york ny"], {"type": "string"}, True),  # BFCL string normalisation
     ("Boston", ["New York"], {"type": "string"}, False),
     (["A-1", "b"], [["a1", "B"]], {"type": "array", "items": {"type": "string"}}, True),
     (["b", "a"], [["a", "b"]], {"type": "array", "items": {"type": "string"}}, False),  # lists keep order
     ({"k": "V"}, [{"k": ["v"], "opt": ["", 1]}], {"type": "dict"}, True),
     ({"k": "v", "x": 1}, [{"k": ["v"]}], {"type": "dict"}, False),
     (3, [2, 3], {}, True)],
)
def test_value_rules(value, possible, declared, ok):
    gold = [{"f": {"p": possible}}]
    schema = [{"name": "f", "parameters": {"type": "dict", "properties": {"p": declared}, "required": []}}]
    assert check_calls([Call("f", {"p": value})], gold, schema if declared else None).valid is ok


def test_optional_parameters_follow_possible_answers():
    gold = [{"f": {"a": [1], "b": ["", 2]}}]
    assert check_calls([Call("f", {"a": 1})], gold).valid
    assert check_calls([Call("f", {"a": 1, "b": 2})], gold).valid
    assert not check_calls([Call("f", {"a": 1, "b": 3})], gold).valid
    assert not check_calls([Call("f", {"b": 2})], gold).valid


@pytest.mark.parametrize(
    "text",
    ["__import__('os').system('echo pwned')", "f(x=__import__('os'))", "f(x=open('/etc/passwd').read())",
     "f(x=1 + 2)", "f(x=[i for i in range(10)])", "f(1, 2)", "f(**{'a': 1})", "lambda: 0", "f(x=y)",
     "f(x=" + "[" * 100_000 + "]" * 100_000 + ")", "f(x='" + "a" * 1_000_000 + "')", "9**9**9**9",
     '{"name": 5}', '[{"name": "f", "arguments": "{not json"}]', "<tool_call>{oops}</tool_call>"],
)
@pytest.mark.timeout(60, method="thread")  # a hang guard ("9**9**9**9" must be refused, not computed)
def test_hostile_or_malformed_calls_are_rejected_without_running(text):
    with pytest.raises(CallParseError):
        parse_calls(text)


@pytest.mark.timeout(300, method="thread")  # a hang guard
@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([*"f(x=1,'\"[]{}:.) ab-\n", "True", "None", "<tool_call>", "</tool_call>",
                                 '"name"', '"arguments"', "**", "__import__"]), max_size=150).map("".join))
def test_call_parser_fuzz_never_crashes(text):
    try:
        calls = parse_calls(text)
    except CallParseError:
        calls = []
    assert all(isinstance(call.name, str) and isinstance(call.arguments, dict) for call in calls)


def python_syntax(calls):
    return "[" + ", ".join(f"{c.name}(" + ", ".join(f"{k}={v!r}" for k, v in c.arguments.items()) + ")"
                           for c in calls) + "]"


def tool_call_blocks(calls):
    return "".join(f"<tool_call>{json.dumps({'name': c.name, 'arguments': c.arguments})}</tool_call>" for c in calls)


# live_simple_106-63-0, live_simple_112-68-0: the possible answer leaves out a parameter the schema
# marks required, so BFCL's own checker (which checks required parameters first) fails them too.
BFCL_GOLD_GAPS = {"live_simple": {"live_simple_106-63-0", "live_simple_112-68-0"}}


def bfcl_available() -> bool:
    try:
        bfcl_data_path("simple_python")
    except UserError:
        return False
    return True


needs_bfcl = pytest.mark.skipif(not bfcl_available(), reason="bfcl-eval not installed")


@needs_bfcl
@pytest.mark.parametrize("category", ["simple_python", "live_simple", "parallel", "live_parallel",
                                      "multiple", "parallel_multiple"])
def test_bfcl_gold_calls_score_one(category):
    task = FunctionCallingTask()
    examples = task.load(f"bfcl:{category}")
    assert len(examples) >= 16
    failures = set()
    for example in examples:
        calls = gold_to_calls(example.answer, example.meta["tools"])
        for completion in (tool_call_blocks(calls), python_syntax(calls)):
            if not task.score(example, completion).correct:
                failures.add(example.id)
    assert failures == BFCL_GOLD_GAPS.get(category, set())


@needs_bfcl
@pytest.mark.parametrize("category", ["simple_python", "parallel"])
def test_bfcl_wrong_names_and_values_score_zero(category):
    task = FunctionCallingTask()
    for example in task.load(f"bfcl:{category}", limit=60):
        calls = gold_to_calls(example.answer, example.meta["tools"])
        renamed = [Call(c.name + "_x", c.arguments) for c in calls]
        changed = [Call(c.name, {**c.arguments, k: "__wrong__"}) for c in calls for k in list(c.arguments)[:1]]
        changed += calls[len(changed):]
        assert task.score(example, tool_call_blocks(renamed)).value == 0.0
        if any(c.arguments for c in calls):
            assert task.score(example, tool_call_blocks(changed)).value == 0.0
        if len(calls) > 1:
            assert task.score(example, tool_call_blocks(calls[:-1])).value == 0.0


@needs_bfcl
def test_bfcl_rows_round_trip():
    task = get_task("function_calling")
    example = task.load("bfcl:parallel", limit=1)[0]
    row = task.to_row(example)
    json.dumps(row)
    assert task.from_row(row) == example
    assert row["prompt"][0]["role"] == "system" and example.meta["tools"][0]["name"] in row["prompt"][0]["content"]


def test_bfcl_file_with_possible_answer_dir(tmp_path):
    (tmp_path / "possible_answer").mkdir()
    question = {"id": "q1", "question": [[{"role": "user", "content": "area?"}]],
                "function": [{"name": "area", "parameters": {"type": "dict", "properties": {
                    "r": {"type": "float"}}, "required": ["r"]}}]}
    (tmp_path / "cat.json").write_text(json.dumps(question) + "\n")
    (tmp_path / "possible_answer" / "cat.json").write_text(json.dumps({"id": "q1", "ground_truth": [
        {"area": {"r": [2.0]}}]}) + "\n")
    example = FunctionCallingTask().load(str(tmp_path / "cat.json"))[0]
    assert FunctionCallingTask().score(example, "area(r=2)").correct
    assert not FunctionCallingTask().score(example, "area(r='2')").correct


@pytest.mark.parametrize(
    "record, field",
    [({"query": "q", "tools": "[", "answers": "[]"}, "tools"),
     ({"query": "q", "tools": "[]", "answers": '[{"arguments": {}}]'}, "answers"),
     ({"query": "q", "tools": "[]"}, "answers"),
     ({"id": "b", "question": [[{"role": "user", "content": "x"}]], "function": []}, "ground_truth"),
     ({"something": "else"}, None)],
)
def test_malformed_records(tmp_path, record, field):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(XLAM_RECORD) + "\n" + json.dumps(record) + "\n")
    with pytest.raises(DataError) as info:
        FunctionCallingTask().load(str(path))
    assert (info.value.path, info.value.line, info.value.field) == (str(path), 2, field)


def test_unknown_bfcl_category_is_a_user_error():
    if not bfcl_available():
        pytest.skip("bfcl-eval not installed")
    with pytest.raises(UserError, match="unknown category"):
        FunctionCallingTask().load("bfcl:nonsense")
