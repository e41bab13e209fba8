"""Verifiers are no more lenient than their references.

Countdown against TinyZero's `compute_score` (verl/utils/reward_score/countdown.py: the last line's
`<answer>`, then Python `eval`, so Python's tokenizer decides) and reasoning-gym's `score_answer`
(sympy `parse_expr`): neither accepts Arabic-Indic or fullwidth digits, a leading zero ("044"), a
non-breaking space, or a line break between numbers. Where they disagree (a line break inside
parentheses: reasoning-gym accepts, TinyZero cannot see a multi-line answer) the stricter one wins.
Function calling against BFCL's `ast_checker` (Python): a tuple literal is a list only for a `tuple`
parameter, array items must have the `items` type (no int for float, no float for int), a bool is
never an integer.
"""

from __future__ import annotations

import importlib.util

import pytest

from selfimprove.tasks.countdown.equation import EquationError, evaluate_equation
from selfimprove.tasks.countdown.task import CountdownTask, make_example
from selfimprove.tasks.function_calling.calls import parse_calls
from selfimprove.tasks.function_calling.checker import check_calls
from selfimprove.tasks.function_calling.task import FunctionCallingTask

COUNTDOWN = make_example("c", [44, 19, 35], 98)

# Each was scored 1.0 (correct) before; TinyZero and reasoning-gym both refuse it.
REJECTED = {
    "arabic-indic digits": "<answer>٤٤+19+35</answer>",
    "fullwidth digits": "<answer>４４+19+35</answer>",
    "leading zero": "<answer>044+19+35</answer>",
    "line break between tokens": "<answer>44\n+19+35</answer>",
    "line break inside parentheses": "<answer>(44\n+19+35)</answer>",
    "carriage return": "<answer>44\r+19+35</answer>",
    "non-breaking space": "<answer>44\u00a0+19+35</answer>",
}


@pytest.mark.parametrize("completion", list(REJECTED.values()), ids=list(REJECTED))
def test_countdown_rejects_what_the_references_reject(completion):
    score = CountdownTask().score(COUNTDOWN, completion)
    assert (score.value, score.correct) == (0.0, False)
    assert score.breakdown["unparseable"] == 1.0


def test_countdown_verdict_table_matches_tinyzero():
    """What TinyZero's `eval` accepts (ASCII digits; spaces, tabs, form feeds between tokens; "00"
    is zero, as in Python) next to what it refuses. Line breaks around the equation are stripped, as
    reasoning-gym does; TinyZero only reads an `<answer>` written on the completion's last line."""
    table = {
        "<answer>44+19+35</answer>": 1.0,
        "<answer> 44 +\t19 + 35 </answer>": 1.0,
        "<answer>44\f+19+35</answer>": 1.0,
        "<answer>\n(44 + 19) + 35\n</answer>": 1.0,
        "<answer>44 + 19 + 35 + 00</answer>": 0.1,  # well formed, but 0 is not one of the numbers
        "<answer>4\n4+19+35</answer>": 0.0,
        "<answer>٤٤+19+35</answer>": 0.0,
        "<answer>044+19+35</answer>": 0.0,
    }
    task = CountdownTask()
    assert {answer: task.score(COUNTDOWN, answer).value for answer in table} == table


@pytest.mark.parametrize("text", ["١ + 2", "1 + ２", "07 * 3", "1 +\n2", "1\u2003+ 2"])
def test_equation_lexer_is_ascii_and_single_line(text):
    with pytest.raises(EquationError):
        evaluate_equation(text)


def schema(param_type: str, items: str | None = None) -> list[dict]:
    declared = {"type": param_type, **({"items": {"type": items}} if items else {})}
    return [{"name": "f", "parameters": {"type": "dict", "properties": {"p": declared}, "required": ["p"]}}]


# (declared type, items type, model output, gold values for p, BFCL's verdict); each was True before.
BFCL_REJECTS = {
    "tuple literal for an array": ("array", "float", "f(p=(1.0, 3.0))", [[1.0, 3.0]]),
    "tuple literal for an array of strings": ("array", "string", "f(p=('a', 'b'))", [["a", "b"]]),
    "int items for an array of float": ("array", "float", "f(p=[1, 3])", [[1.0, 3.0]]),
    "float items for an array of integer": ("array", "integer", "f(p=[10.0, 15.0])", [[10, 15]]),
    "tuples inside an array": ("array", "array", "f(p=[(10, 20), (30, 40)])", [[[10, 20], [30, 40]]]),
}


@pytest.mark.parametrize("case", list(BFCL_REJECTS.values()), ids=list(BFCL_REJECTS))
def test_function_call_checker_rejects_what_bfcl_rejects(case):
    param_type, items, text, gold = case
    verdict = check_calls(parse_calls(text), [{"f": {"p": gold}}], schema(param_type, items))
    assert not verdict.valid and verdict.errors


def test_function_call_verdict_table_matches_bfcl():
    """BFCL's own rules: a tuple is a list for a `tuple` parameter, an int passes for a top-level
    float, a bool is not an integer, and "" among the options skips the item-type check."""
    table = [
        ("tuple", "integer", "f(p=(1, 2))", [[1, 2]], True),
        ("array", "float", "f(p=[1.0, 3.0])", [[1.0, 3.0]], True),
        ("float", None, "f(p=2)", [2.0], True),
        ("integer", None, "f(p=True)", [1], False),
        ("array", "float", "f(p=[1, 2])", [[1.0, 2.0], ""], True),
        ("array", "float", "f(p=(1.0, 3.0))", [[1.0, 3.0]], False),
        ("array", "float", "f(p=[1, 3])", [[1.0, 3.0]], False),
    ]
    verdicts = [check_calls(parse_calls(text), [{"f": {"p": gold}}], schema(kind, items)).valid
                for kind, items, text, gold, _ in table]
    assert verdicts == [expected for *_, expected in table]


@pytest.mark.skipif(importlib.util.find_spec("bfcl_eval") is None, reason="BFCL data comes from bfcl-eval")
def test_bfcl_simple_python_13_tuple_interval_scores_zero():
    task = FunctionCallingTask()
    example = next(e for e in task.load("bfcl:simple_python") if e.id == "simple_python_13")
    call = "calculate_area_under_curve(function='x**2', interval={}, method='trapezoidal')"
    assert task.score(example, call.format("[1.0, 3.0]")).value == 1.0
    assert task.score(example, call.format("(1.0, 3.0)")).value == 0.0
