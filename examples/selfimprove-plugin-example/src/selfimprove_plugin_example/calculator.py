"""The calculator environment: one file, a tool other than search, run by both episode drivers.

The model may write `<calc>expression</calc>` (the turn stops there); the environment answers
`<result>value</result>` in the same assistant message, and the model goes on. The episode ends
at `<answer>...</answer>` (answered), or after `max_turns` model turns (step limit). A turn with
neither block gets `<result>error: ...</result>` and counts as a parse error. The expression is
never `eval`-ed: it goes through selfimprove's Countdown equation parser (whole numbers,
+ - * / and parentheses, exact fractions, bounded length and depth), so any text is safe.

`CalculatorEnvironment(prompt)` follows `selfimprove.agent.environment.Environment`; the text
loop (`selfimprove.agent.loop.drive_text`) and GRPO's token-level driver
(`calculator_rollout_func()`, TRL's `rollout_func`) run the same objects.
"""

from __future__ import annotations

from typing import Any

from selfimprove.agent.environment import EpisodeFacts, ModelTurn, ToolCall, TurnSpec
from selfimprove.agent.formats import prefill
from selfimprove.tasks.countdown.equation import EquationError, evaluate_equation
from selfimprove.tasks.tags import last_tag_block

INSTRUCTIONS = ("Solve the problem. To compute, write <calc>expression</calc> (whole numbers, + - * / and "
                "parentheses) and wait for <result>value</result>. Give the final answer as <answer>number</answer>.")


def calculate(expression: str) -> str:
    """The exact value of an arithmetic expression, or why there is none (never `eval`).

    >>> calculate("(17 + 25) * 3"), calculate("7 / 2"), calculate("1 / 0")
    ('126', '7/2', 'error: division by zero')
    >>> calculate("__import__('os').system('ls')")
    "error: unexpected character '_' at 0"
    """
    try:
        return str(evaluate_equation(expression).value)
    except EquationError as exc:
        return f"error: {exc}"


class Calculator:
    """The tool: many expressions per call (`Tool.run`), one result text each."""

    name = "calculator"

    def run(self, arguments: list[str]) -> list[str]:
        return [calculate(argument) for argument in arguments]


def calculator_prompt(question: str) -> list[dict[str, str]]:
    """The first conversation of an episode (also a GRPO row's `prompt` column)."""
    return [{"role": "system", "content": INSTRUCTIONS}, {"role": "user", "content": question}]


class CalculatorEnvironment:
    """One episode: calculate until an answer or `max_turns` model turns."""

    def __init__(self, prompt: list[dict[str, str]], tool: Calculator | None = None, max_turns: int = 4):
        self.prompt, self.tool, self.max_turns = list(prompt), tool or Calculator(), max_turns
        self.text = ""  # the assistant message so far: model turns and <result> blocks
        self.turns, self.expressions, self.parse_errors = 0, [], 0
        self.answer: str | None = None

    @property
    def done(self) -> bool:
        return self.answer is not None or self.turns >= self.max_turns

    @property
    def finished(self) -> bool:
        return self.answer is not None

    def messages(self) -> list[dict[str, str]]:
        return prefill(self.prompt, self.text)

    def next_turn(self) -> TurnSpec:
        return TurnSpec(stop=("</calc>",))

    def step(self, turn: ModelTurn) -> ToolCall | None:
        self.text, self.turns = self.text + turn.text, self.turns + 1
        self.answer = last_tag_block(turn.text, "answer")
        expression = last_tag_block(turn.text, "calc")
        if self.answer is not None:
            return None
        if expression is None:
            self.parse_errors += 1
            return None
        self.expressions.append(expression)
        return None if self.done else ToolCall(self.tool, expression)  # the last turn's is not run

    def observe(self, result: str | None) -> None:
        shown = result if result is not None else "error: write <calc>expression</calc> or <answer>number</answer>"
        self.text += f"<result>{shown}</result>"

    def facts(self) -> EpisodeFacts:
        return EpisodeFacts(num_parse_errors=self.parse_errors, answered=self.finished, num_turns=self.turns,
                            hit_step_limit=self.done and not self.finished)

    def fields(self) -> dict[str, Any]:
        """The facts plus `num_calculations`: columns TRL hands to reward functions."""
        return {**self.facts().to_dict(), "num_calculations": len(self.expressions)}


def calculator_rollout_func(max_turns: int = 4):
    """GRPO's token-level driver over this environment: pass it as `GRPOTrainer(..., rollout_func=...)`."""
    from selfimprove.train.rollouts import make_rollout_func

    return make_rollout_func(lambda prompt, tokenizer: CalculatorEnvironment(prompt, max_turns=max_turns))
