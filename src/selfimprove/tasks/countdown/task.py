"""Countdown (TinyZero style): reach the target with + - * / using the given numbers.

Sources: None (200 generated examples, seed 0), "generate:n=100,seed=0,min_nums=3,max_nums=4,..."
(or the same keys as `load` options), or a .parquet/.json/.jsonl file with `nums` and `target`
(e.g. Countdown-Tasks-3to4; a reference `<answer>` in an `answer`/`solution` column is kept as
meta["solution"]). Generated examples are always solvable: each is built from a random
expression over its numbers. The verifier takes the LAST `<answer>` block and evaluates it with
`countdown.equation` (never eval), which accepts no more than TinyZero's scorer does: ASCII digits
without leading zeros, the equation on one line (Arabic-Indic or fullwidth digits, "044", or a line
break inside the equation are "unparseable"). Numbers must be used exactly once by default, as TinyZero's
`validate_equation` does (`use_all_numbers=False`: each at most once). Score: `correct_score` (1)
when right, `format_score` (0.1) for a well-formed but wrong equation, 0 otherwise
(no answer, unparseable, division by zero); the breakdown has a 0/1 entry per reason in
`REASONS` (summing them over a file counts each failure kind) and `format`.
"""

from __future__ import annotations

import numbers
import random
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from selfimprove.errors import DataError, UserError
from selfimprove.tasks.base import SINGLE_TURN_FORMAT, Example, Message, Score
from selfimprove.tasks.countdown.equation import EquationError, evaluate_equation
from selfimprove.tasks.records import read_located, require
from selfimprove.tasks.tags import last_tag_block

PROMPT = (
    "Using the numbers {nums}, create an equation that equals {target}. You can use basic arithmetic "
    "operations (+, -, *, /) and each number can only be used once. Show your work in <think> </think> "
    "tags. And return the final answer in <answer> </answer> tags, for example <answer> (1 + 2) / 3 </answer>."
)
SYSTEM_PROMPT = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant solves it. "
    "The assistant first thinks about the reasoning process in the mind and then provides the user with the answer."
)
REASONS = ("correct", "wrong_target", "wrong_numbers", "unparseable", "no_answer")
WELL_FORMED = ("correct", "wrong_target", "wrong_numbers")


@dataclass
class GeneratorConfig:
    """What `generate:` accepts (all keys optional)."""

    n: int = 200
    seed: int = 0
    min_nums: int = 3
    max_nums: int = 4
    min_number: int = 1
    max_number: int = 100
    min_target: int = 1
    max_target: int = 1000

    def check(self) -> GeneratorConfig:
        if not 2 <= self.min_nums <= self.max_nums <= 6:
            raise UserError("countdown: need 2 <= min_nums <= max_nums <= 6")
        if not 1 <= self.min_number <= self.max_number or not 1 <= self.min_target <= self.max_target:
            raise UserError("countdown: number and target ranges must be positive and ordered")
        return self


class CountdownTask:
    """The Countdown numbers game with an exact, safe verifier.

    >>> task = CountdownTask()
    >>> example = task.from_row({"example_id": "e", "nums": [2, 3, 4], "target": 20})
    >>> [task.score(example, c).value for c in ("<answer>(2 + 3) * 4</answer>", "<answer>2 * 3 * 4</answer>", "hm")]
    [1.0, 0.1, 0.0]
    """

    name = "countdown"
    agent_format = SINGLE_TURN_FORMAT
    reward_columns = (("nums",), ("target",))
    score_parts = (*REASONS, "format")  # the breakdown's keys (task_reward's `field` may name one)

    def __init__(self, format_score: float = 0.1, correct_score: float = 1.0, use_all_numbers: bool = True,
                 allow_unary_minus: bool = True):
        self.format_score, self.correct_score = format_score, correct_score
        self.use_all_numbers, self.allow_unary_minus = use_all_numbers, allow_unary_minus

    def load(self, source: Any = None, limit: int | None = None, **options: Any) -> list[Example]:
        from selfimprove.tasks.records import unique_ids

        if source is None or (isinstance(source, str) and source.startswith("generate")):
            examples = generate_examples(parse_generator_source(source or "generate", options))
        elif options:
            raise UserError(f"countdown.load: options {sorted(options)} only apply to generate:")
        else:
            examples = load_file(source)
        unique_ids(examples, source or "generate")
        return examples[:limit] if limit is not None else examples

    def render(self, example: Example) -> list[Message]:
        user = PROMPT.format(nums=list(example.meta["nums"]), target=example.meta["target"])
        return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]

    def extract(self, completion: str) -> str | None:
        return last_tag_block(completion, "answer")

    def score_answer(self, example: Example, answer: Any) -> Score:
        reason, error = check_equation(answer, example.meta["nums"], example.meta["target"],
                                       self.use_all_numbers, self.allow_unary_minus)
        value = self.correct_score if reason == "correct" else self.format_score if reason in WELL_FORMED else 0.0
        breakdown = {name: float(name == reason) for name in REASONS}
        breakdown["format"] = float(reason in WELL_FORMED)
        return Score(value, reason == "correct", answer, breakdown, error)

    def score(self, example: Example, completion: str) -> Score:
        return self.score_answer(example, self.extract(completion))

    def reference_completion(self, example: Example) -> str | None:
        """A worked completion from the example's stored solution (None when it has none).

        >>> task = CountdownTask()
        >>> example = make_example("e", [5, 1, 3], 15, "(5 / 1) * 3")
        >>> task.score(example, task.reference_completion(example)).correct
        True
        """
        solution = (example.meta or {}).get("solution")
        if not solution:
            return None
        return f"<think>\n{solution} = {example.meta['target']}\n</think>\n<answer>{solution}</answer>"

    def fingerprint(self, example: Example) -> str:
        """The sorted numbers and the target: the same puzzle in any order is one puzzle.

        >>> CountdownTask().fingerprint(make_example("x", [5, 1, 3], 15))
        'nums=1,3,5 target=15'
        """
        nums = ",".join(str(n) for n in sorted(int(n) for n in example.meta["nums"]))
        return f"nums={nums} target={int(example.meta['target'])}"

    def to_row(self, example: Example) -> dict[str, Any]:
        return {"example_id": example.id, "prompt": self.render(example), "nums": list(example.meta["nums"]),
                "target": example.meta["target"], "solution": example.meta.get("solution") or ""}

    def from_row(self, row: dict[str, Any]) -> Example:
        """Rebuild an example from dataset columns: `nums` and `target` (the only required ones),
        optional `example_id` (made from the numbers when absent) and `solution`. A missing column
        is a KeyError; a value that is not a non-empty list of whole numbers / a whole number
        (ints, integral floats, digit strings) is a ValueError naming the column.

        >>> CountdownTask().from_row({"nums": [2, 3.0, "4"], "target": 20}).id
        'countdown:2,3,4=20'
        """
        raw_nums, raw_target = row["nums"], row["target"]
        if not isinstance(raw_nums, (list, tuple)) or not raw_nums:
            raise ValueError(f"column 'nums': expected a non-empty list of integers, got {_shown(raw_nums)}")
        nums, target = [_whole_number(n, "nums") for n in raw_nums], _whole_number(raw_target, "target")
        meta = {"nums": nums, "target": target, "solution": row.get("solution") or None}
        example_id = row.get("example_id")
        example_id = f"countdown:{','.join(map(str, nums))}={target}" if example_id is None else str(example_id)
        return Example(example_id, question_text(nums, target), target, meta)


def _whole_number(value: Any, column: str) -> int:
    """`value` as an int when it is one exactly (bool, 2.5, "x" and None are refused); for `from_row`."""
    if isinstance(value, str) and re.fullmatch(r"[+-]?[0-9]{1,30}", value.strip()):
        return int(value)
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise ValueError(f"column '{column}': expected an integer, got {_shown(value)}")


def _shown(value: Any) -> str:
    return f"{type(value).__name__} {str(value)[:40]!r}"


def check_equation(answer: Any, nums: list[int], target: int, use_all_numbers: bool = True,
                   allow_unary_minus: bool = True) -> tuple[str, str | None]:
    """(reason, error): reason is one of REASONS; never raises on model output.

    >>> check_equation("(1 + 2) * 3", [1, 2, 3], 9)
    ('correct', None)
    >>> check_equation("1 + 1 + 2 * 3", [1, 2, 3], 8)
    ('wrong_numbers', 'numbers used [1, 1, 2, 3], allowed [1, 2, 3] (each exactly once)')
    >>> check_equation("1 / (2 - 2)", [1, 2, 2], 1)[0]
    'unparseable'
    """
    if not isinstance(answer, str):
        return "no_answer", "no <answer> block"
    try:
        evaluation = evaluate_equation(answer, allow_unary_minus)
    except EquationError as exc:
        return "unparseable", str(exc)
    used, allowed = Counter(evaluation.numbers), Counter(int(n) for n in nums)
    if (used != allowed) if use_all_numbers else (used - allowed):
        rule = "exactly" if use_all_numbers else "at most"
        return "wrong_numbers", f"numbers used {sorted(used.elements())}, allowed {sorted(allowed.elements())} (each {rule} once)"
    if evaluation.value != target:
        return "wrong_target", f"equation equals {evaluation.value}, target {target}"
    return "correct", None


def question_text(nums: list[int], target: int) -> str:
    return PROMPT.format(nums=list(nums), target=target)


def make_example(example_id: str, nums: list[int], target: int, solution: str | None = None) -> Example:
    return Example(example_id, question_text(nums, target), target,
                   {"nums": list(nums), "target": target, "solution": solution})


def parse_generator_source(source: str, options: dict[str, Any]) -> GeneratorConfig:
    """"generate:n=100,seed=0,..." plus keyword options -> a checked GeneratorConfig."""
    values: dict[str, Any] = {}
    _, _, spec = source.partition(":")
    for item in filter(None, (part.strip() for part in spec.split(","))):
        key, sep, raw = item.partition("=")
        if not sep or not raw.strip().lstrip("-").isdigit():
            raise UserError(f"countdown source '{source}': expected key=INTEGER, got '{item}'")
        values[key.strip()] = int(raw)
    values.update(options)
    unknown = set(values) - set(GeneratorConfig.__dataclass_fields__)
    if unknown:
        raise UserError(f"countdown generator: unknown keys {sorted(unknown)}")
    return GeneratorConfig(**values).check()


def generate_examples(config: GeneratorConfig) -> list[Example]:
    """`config.n` DISTINCT solvable puzzles (by fingerprint); the same config always gives the same examples.

    A draw whose sorted numbers and target an earlier example has is discarded and drawn again, so a
    set that had no repeats is unchanged. Ranges too narrow for `n` distinct puzzles are an error.
    """
    rng, task = random.Random(config.seed), CountdownTask()
    examples: list[Example] = []
    seen: set[str] = set()
    for _ in range(max(50 * config.n, 1000)):
        if len(examples) == config.n:
            return examples
        example = _generate_one(rng, config, f"countdown-{config.seed}-{len(examples)}")
        if task.fingerprint(example) not in seen:
            seen.add(task.fingerprint(example))
            examples.append(example)
    if len(examples) == config.n:
        return examples
    raise UserError(f"countdown generator: only {len(examples)} distinct puzzles found for n={config.n}; "
                    "widen the number or target ranges")


def _generate_one(rng: random.Random, config: GeneratorConfig, example_id: str) -> Example:
    for _ in range(10_000):
        nums = [rng.randint(config.min_number, config.max_number)
                for _ in range(rng.randint(config.min_nums, config.max_nums))]
        built = _random_expression(rng, nums)
        if built is not None and config.min_target <= built[0] <= config.max_target:
            rng.shuffle(nums)
            return make_example(example_id, nums, int(built[0]), built[1])
    raise UserError("countdown generator: no solvable example found in 10000 tries; widen the ranges")


def _random_expression(rng: random.Random, nums: list[int]) -> tuple[int, str] | None:
    """Combine the numbers pairwise in random order with random exact operations."""
    items = [(n, str(n)) for n in nums]
    rng.shuffle(items)
    while len(items) > 1:
        (a, text_a), (b, text_b) = items.pop(), items.pop()
        options = [(a + b, "+"), (a * b, "*")]
        options += [(a - b, "-")] if a > b else [(b - a, "-r")] if b > a else []
        options += [(a // b, "/")] if b and a % b == 0 else [(b // a, "/r")] if a and b % a == 0 else []
        value, op = rng.choice(options)
        left, right = (text_b, text_a) if op.endswith("r") else (text_a, text_b)
        items.append((value, f"({left} {op[0]} {right})"))
    value, text = items[0]
    return (value, text[1:-1] if text.startswith("(") else text) if value > 0 else None


def load_file(source: Any) -> list[Example]:
    """Examples from any data source (`tasks.records`) with `nums` (list of ints) and `target` (int) per record."""
    examples = []
    for index, (path, line, record) in enumerate(read_located(source)):
        nums = require(record, "nums", path, line, (list, tuple))
        if not nums or not all(isinstance(n, int) and not isinstance(n, bool) for n in nums):
            raise DataError(path, "expected a non-empty list of integers", line=line, field="nums")
        target = require(record, "target", path, line, int)
        solution = record.get("solution") or last_tag_block(str(record.get("answer") or ""), "answer")
        examples.append(make_example(str(record.get("id", index)), [int(n) for n in nums], int(target), solution))
    return examples


def score_file(path: str, task: CountdownTask | None = None) -> dict[str, Any]:
    """Score a JSONL of {nums, target, completion}: accuracy, mean score, counts per reason."""
    from selfimprove.data.jsonl import iter_jsonl

    task = task or CountdownTask()
    totals = dict.fromkeys((*REASONS, "format"), 0.0)
    count = correct = 0
    value_sum = 0.0
    for line, record in iter_jsonl(path):
        example = _example_from_scored_record(record, path, line)
        score = task.score(example, require(record, "completion", path, line, str))
        count, correct, value_sum = count + 1, correct + score.correct, value_sum + score.value
        for key, part in score.breakdown.items():
            totals[key] += part
    return {"count": count, "accuracy": correct / count if count else 0.0,
            "mean_score": value_sum / count if count else 0.0, "breakdown": totals}


def _example_from_scored_record(record: dict[str, Any], path: str, line: int | None) -> Example:
    nums = require(record, "nums", path, line, list)
    if not all(isinstance(n, int) and not isinstance(n, bool) for n in nums):
        raise DataError(path, "expected a list of integers", line=line, field="nums")
    return make_example(str(record.get("id", line)), nums, require(record, "target", path, line, int))
