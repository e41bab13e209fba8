"""Countdown: reference solutions score 1, hostile input is rejected fast, generator, CLI, loaders."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from selfimprove.cli import app
from selfimprove.errors import DataError, UserError
from selfimprove.tasks import get_task
from selfimprove.tasks.countdown.equation import EquationError, evaluate_equation
from selfimprove.tasks.countdown.task import CountdownTask, check_equation

runner = CliRunner()


@pytest.fixture(scope="module")
def parquet_examples(shared_data):
    return CountdownTask().load(str(shared_data / "countdown_test_1024.parquet"))


def test_all_1024_reference_solutions_score_one(parquet_examples):
    task = CountdownTask()
    assert len(parquet_examples) == 1024
    scores = [task.score(e, f"<think>...</think>\n<answer> {e.meta['solution']} </answer>") for e in parquet_examples]
    assert all(s.value == 1.0 and s.correct for s in scores)


HOSTILE = [
    ("reuse", "<answer>(1 + 2) * 3 + 3</answer>", "wrong_numbers"),
    ("unused number", "<answer>1 + 2</answer>", "wrong_numbers"),
    ("foreign number", "<answer>(1 + 2) * 4</answer>", "wrong_numbers"),
    ("wrong target", "<answer>1 + 2 + 3</answer>", "wrong_target"),
    ("division by zero", "<answer>3 / (2 - 2)</answer>", "unparseable"),
    ("import", "<answer>__import__('os').system('echo pwned')</answer>", "unparseable"),
    ("power tower", "<answer>9**9**9**9</answer>", "unparseable"),
    ("deep nesting", "<answer>" + "(" * 100_000 + "1" + ")" * 100_000 + "</answer>", "unparseable"),
    ("1MB string", "<answer>" + "1+" * 500_000 + "1</answer>", "unparseable"),
    ("1MB no tags", "x" * 1_000_000, "no_answer"),
    ("float literal", "<answer>1.5 * 2 * 3</answer>", "unparseable"),
    ("names", "<answer>a + b</answer>", "unparseable"),
    ("equals sign", "<answer>1 + 2 * 3 = 7</answer>", "unparseable"),
    ("no answer", "I think 1 + 2 * 3", "no_answer"),
]


@pytest.mark.parametrize("name, completion, reason", HOSTILE, ids=[h[0] for h in HOSTILE])
@pytest.mark.timeout(60, method="thread")  # a hang guard ("9**9**9**9" must be refused, not computed)
def test_bad_answers_score_zero(name, completion, reason):
    example = CountdownTask().from_row({"example_id": "x", "nums": [1, 2, 3], "target": 9})
    strict = CountdownTask(format_score=0.0).score(example, completion)
    default = CountdownTask().score(example, completion)
    assert strict.value == 0.0 and not strict.correct and strict.breakdown[reason] == 1.0
    assert default.value == (0.1 if reason in ("wrong_numbers", "wrong_target") else 0.0)
    assert (strict.error is None) == (reason == "correct")


def test_correct_answer_and_last_block_wins():
    task = CountdownTask()
    example = task.from_row({"example_id": "x", "nums": [1, 2, 3], "target": 9})
    assert task.score(example, "<answer>1+2</answer> no wait <answer>(1 + 2) * 3</answer>").value == 1.0
    assert task.score(example, "<answer>(1 + 2) * 3</answer> no wait <answer>1+2</answer>").value == 0.1


@pytest.mark.parametrize(
    "equation, nums, target, use_all, reason",
    [("3 * 2", [1, 2, 3], 6, False, "correct"), ("3 * 2", [1, 2, 3], 6, True, "wrong_numbers"),
     ("3 * 3", [1, 2, 3], 9, False, "wrong_numbers"), ("-(1 - 3) * 3", [1, 2, 3], 6, True, "wrong_numbers"),
     ("-(1 - 2) * 3", [1, 2, 3], 3, True, "correct"), ("(3 / 2) * 2 + 1", [3, 2, 2, 1], 4, True, "correct"),
     ("6 / 4 * 4", [6, 4, 4], 6, True, "correct")],
)
def test_number_rules_and_exact_arithmetic(equation, nums, target, use_all, reason):
    assert check_equation(equation, nums, target, use_all_numbers=use_all)[0] == reason


def test_unary_minus_is_configurable():
    assert evaluate_equation("-3 + 4").value == 1
    with pytest.raises(EquationError):
        evaluate_equation("-3 + 4", allow_unary_minus=False)


@pytest.mark.timeout(300, method="thread")  # a hang guard
@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="0123456789+-*/() .x_=e", max_size=600))
def test_parser_fuzz_never_crashes(text):
    try:
        result = evaluate_equation(text)
    except EquationError:
        result = None
    assert result is None or result.numbers


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_scorer_fuzz_any_text(text):
    example = CountdownTask().from_row({"example_id": "x", "nums": [1, 2, 3], "target": 9})
    score = CountdownTask().score(example, f"<answer>{text}</answer>")
    assert score.value in (0.0, 0.1, 1.0)


def test_generator_is_seeded_solvable_and_in_range():
    task = CountdownTask()
    source = "generate:n=300,seed=5,min_nums=3,max_nums=6,max_number=50,max_target=500"
    first, again = task.load(source), task.load(source)
    assert first == again and len(first) == 300
    assert first != task.load("generate:n=300,seed=6,min_nums=3,max_nums=6")
    assert {len(e.meta["nums"]) for e in first} == {3, 4, 5, 6}
    assert all(1 <= n <= 50 for e in first for n in e.meta["nums"]) and all(1 <= e.answer <= 500 for e in first)
    assert all(task.score(e, f"<answer>{e.meta['solution']}</answer>").correct for e in first)
    assert task.load(None, n=5, seed=1) == task.load("generate:n=5,seed=1")


@pytest.mark.parametrize("source", ["generate:n=ten", "generate:nums=3", "generate:min_nums=5,max_nums=3"])
def test_bad_generator_sources(source):
    with pytest.raises(UserError):
        CountdownTask().load(source)


def test_row_round_trip_and_tinyzero_prompt():
    task = get_task("countdown")
    example = task.load("generate:n=3,seed=0")[1]
    row = task.to_row(example)
    json.dumps(row)
    assert task.from_row(row) == example
    content = row["prompt"][-1]["content"]
    assert str(example.meta["nums"]) in content and "<answer>" in content and "<think>" in content


@pytest.mark.parametrize(
    "content, line, field",
    [('{"nums": [1, 2], "target": 3}\n{"nums": [1, "2"], "target": 3}\n', 2, "nums"),
     ('{"nums": [1, 2]}\n', 1, "target"), ('{"nums": [1, 2], "target": 3}\n[1]\n', 2, None)],
)
def test_malformed_files(tmp_path, content, line, field):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(DataError) as info:
        CountdownTask().load(str(path))
    assert (info.value.path, info.value.line, info.value.field) == (str(path), line, field)


def test_score_cli(tmp_path):
    rows = [{"nums": [1, 2, 3], "target": 9, "completion": "<answer>(1+2)*3</answer>"},
            {"nums": [1, 2, 3], "target": 9, "completion": "<answer>1+2+3</answer>"},
            {"nums": [1, 2, 3], "target": 9, "completion": "<answer>__import__('os')</answer>"},
            {"nums": [4, 5], "target": 20, "completion": "no answer"}]
    path = tmp_path / "completions.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    result = runner.invoke(app, ["score", "countdown", str(path), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["accuracy"] == 0.25 and summary["mean_score"] == pytest.approx(1.1 / 4)
    assert summary["breakdown"] == {"correct": 1, "wrong_target": 1, "wrong_numbers": 0, "unparseable": 1,
                                    "no_answer": 1, "format": 2}
    text = runner.invoke(app, ["score", "countdown", str(path)]).output
    assert "accuracy=0.2500" in text and "unparseable=1" in text
