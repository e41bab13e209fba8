"""The episode contract: an `Environment` owns one episode; two thin drivers run it.

An environment decides everything about its episode:
- `messages()`: the conversation the next model turn continues (before turn 0: the first prompt).
  A conversation ending with an assistant message is continued (prefill), not closed.
- `next_turn()`: how that turn is generated (`TurnSpec`: stop strings, token budget or None for
  the driver's default, and whether its tokens are trained).
- `step(turn)`: reads a model turn (`ModelTurn`: its text with the stop string it wrote, whether
  it ended on EOS or ran out of tokens) and returns a `ToolCall` to run, or None.
- `observe(result)`: takes the tool's result (None when `step` asked for no tool) and appends what
  the model sees next. It is only called while the episode is not `done`.
- `done` (the episode is over), `finished` (it ended at its format's own end, an answer: a token
  sequence is closed with EOS), `facts()` (the episode facts rewards, metrics and reports read)
  and `fields()` (per-episode reward columns: the facts plus anything the environment adds).

The drivers: the text-level loop (`agent.loop`: eval, distill, `agent run`, RRR evaluation) and
the token-level driver inside TRL's `rollout_func` (`train.rollouts`: GRPO, RRR training). Both
call the same methods in the same order (next_turn, generate, step, run the tool calls batched
with `run_tool_calls`, observe), so no observation, truncation, parse-error or stop logic exists
twice. The token driver appends, after a model turn, exactly the text by which the rendered
conversation grew (`messages()` before the turn + the turn's text is a prefix of it), so a token
sequence and the text driver's prompts show the model the same text. Not guaranteed: identical
token ids (the text driver re-tokenises its prompts; the token driver keeps the sampled ids).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from selfimprove.models.generator import Conversation

FACT_KEYS = ("num_searches", "num_parse_errors", "answered", "num_turns", "hit_step_limit", "queries")


@dataclass
class EpisodeFacts:
    """What happened in an episode, as the environment understood it (never re-parsed from text).

    `num_turns` counts model turns; `num_searches` and `num_parse_errors` count every model turn,
    the last one included; `queries` are the search queries in order; `hit_step_limit` is true
    when the turns ran out without an answer.
    """

    num_searches: int = 0
    num_parse_errors: int = 0
    answered: bool = False
    num_turns: int = 0
    hit_step_limit: bool = False
    queries: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ModelTurn:
    """One model turn as a driver hands it to `Environment.step`."""

    text: str  # what the model wrote, the stop string it ended on included
    ended: bool = False  # it ended on EOS (the model closed its message)
    ran_out: bool = False  # it reached its token budget (no EOS, no stop string)
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def finish_reason(self) -> str:
        return "length" if self.ran_out else "stop"


@dataclass(frozen=True)
class TurnSpec:
    """How a driver generates the next turn."""

    stop: tuple[str, ...] = ()
    max_tokens: int | None = None  # None: the driver's default budget
    trained: bool = True  # the turn's tokens carry gradient (token driver)


class Tool(Protocol):
    """A tool that runs many calls at once (a searcher, a calculator...): one result text per argument."""

    def run(self, arguments: list[str]) -> list[str]: ...


@dataclass(frozen=True)
class ToolCall:
    tool: Tool
    argument: str


class Environment(Protocol):
    """One episode (see the module doc)."""

    done: bool
    finished: bool

    def messages(self) -> Conversation: ...

    def next_turn(self) -> TurnSpec: ...

    def step(self, turn: ModelTurn) -> ToolCall | None: ...

    def observe(self, result: str | None) -> None: ...

    def facts(self) -> EpisodeFacts: ...

    def fields(self) -> dict[str, Any]: ...


def run_tool_calls(calls: Sequence[ToolCall | None]) -> list[str | None]:
    """Run the calls, one batched `run` per tool object; results in input order (None for None)."""
    results: list[str | None] = [None] * len(calls)
    by_tool: dict[int, list[int]] = {}
    for index, call in enumerate(calls):
        if call is not None:
            by_tool.setdefault(id(call.tool), []).append(index)
    for indices in by_tool.values():
        tool = calls[indices[0]].tool  # type: ignore[union-attr]
        outputs = tool.run([calls[i].argument for i in indices])  # type: ignore[union-attr]
        for index, output in zip(indices, outputs, strict=True):
            results[index] = output
    return results


def observe_all(environments: Sequence[Environment], calls: Sequence[ToolCall | None]) -> None:
    """Run the calls of the environments still going (batched) and hand each its result."""
    going = [i for i, env in enumerate(environments) if not env.done]
    results = run_tool_calls([calls[i] for i in going])
    for index, result in zip(going, results, strict=True):
        environments[index].observe(result)
