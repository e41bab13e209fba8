"""The single-turn environment: the task's own prompt, one model turn, done.

The episode is answered when the task can extract an answer from the turn (`task.extract`);
nothing is run and nothing is observed. It is the environment of Countdown-style tasks: the
text driver evaluates with it, and GRPO's default single-turn path generates the same prompt.
"""

from __future__ import annotations

from typing import Any

from selfimprove.agent.environment import EpisodeFacts, ModelTurn, ToolCall, TurnSpec
from selfimprove.models.generator import Conversation


class SingleTurnEnvironment:
    """One prompt (`messages`), one turn; `extract(text)` tells whether it holds an answer."""

    def __init__(self, prompt: Conversation, extract: Any = None, max_tokens: int | None = None):
        self.prompt, self.extract, self.max_tokens = list(prompt), extract, max_tokens
        self.turn: ModelTurn | None = None
        self.answered = False

    @property
    def done(self) -> bool:
        return self.turn is not None

    @property
    def text(self) -> str | None:
        return None if self.turn is None else self.turn.text

    @property
    def finished(self) -> bool:
        return False  # the model's own EOS ends the turn; nothing is appended

    def messages(self) -> Conversation:
        return list(self.prompt)

    def next_turn(self) -> TurnSpec:
        return TurnSpec(max_tokens=self.max_tokens)

    def step(self, turn: ModelTurn) -> ToolCall | None:
        self.turn = turn
        self.answered = self.extract is not None and self.extract(turn.text) is not None
        return None

    def observe(self, result: str | None) -> None:
        raise RuntimeError("a single-turn episode observes nothing")

    def facts(self) -> EpisodeFacts:
        return EpisodeFacts(answered=self.answered, num_turns=int(self.done))

    def fields(self) -> dict[str, Any]:
        return self.facts().to_dict()


def single_turns(prompts: list[Conversation], generator: Any, sampling: Any, extract: Any = None) -> list[ModelTurn]:
    """One model turn per prompt through the text loop (`sampling(spec, turn)` -> SamplingParams), in order."""
    from selfimprove.agent.loop import drive_text

    envs = [SingleTurnEnvironment(prompt, extract) for prompt in prompts]
    drive_text(envs, generator, sampling)
    return [env.turn for env in envs]
