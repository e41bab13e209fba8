"""The task contract: examples + prompt rendering + answer extraction + scoring with a breakdown.

A task is a small object with these methods (see `Task`). Examples are plain dataclasses whose
task-specific fields live in `meta` (HotpotQA: level, type, context, supporting_facts;
Countdown: nums, target; function calling: tools, gold calls). `to_row`/`from_row` flatten an
example to JSON-able dataset columns and back, so that TRL reward functions (which receive
dataset columns as keyword arguments) can rebuild the example and call the task's scorer.
Scoring never executes model output, and unparseable output scores 0 with `error` set.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

Message = dict[str, str]


@dataclass
class Example:
    """One task instance. `answer` is the gold answer in the task's own form."""

    id: str
    question: str
    answer: Any
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Score:
    """The verdict on one completion.

    value: the task's main score (1.0 = fully correct); correct: whether the verifier accepts it;
    parsed: the extracted answer (None when nothing could be extracted); breakdown: named parts
    (e.g. em, f1, format); error: why extraction or checking failed, if it did.
    """

    value: float
    correct: bool
    parsed: Any = None
    breakdown: dict[str, float] = field(default_factory=dict)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


SINGLE_TURN_FORMAT = "single"


@runtime_checkable
class Task(Protocol):
    """What every task provides.

    Two declarations tell the other layers how to run and reward the task, so that none of them
    lists task names: `agent_format` is the agent format an eval runs it with by default ("single":
    one prompt, one answer; "react", "xml" or "tools": a search agent), and `reward_columns` are the
    dataset columns `from_row` needs (one tuple per column, its accepted names in order), which the
    task reward checks before scoring. A task without them is single-turn and declares no columns.
    """

    name: str
    agent_format: str
    reward_columns: tuple[tuple[str, ...], ...]

    def load(self, source: str | None = None, **options: Any) -> list[Example]:
        """Load examples from a file path, a hub name, or a generator config; None = bundled demo."""
        ...

    def render(self, example: Example) -> list[Message]:
        """The single-turn chat prompt for this example."""
        ...

    def extract(self, completion: str) -> Any:
        """Extract the answer from a completion; None when there is none."""
        ...

    def score_answer(self, example: Example, answer: Any) -> Score:
        """Score an already extracted answer (used by agents, which extract answers themselves)."""
        ...

    def score(self, example: Example, completion: str) -> Score:
        """Extract then score a raw completion."""
        ...

    def to_row(self, example: Example) -> dict[str, Any]:
        """Flatten to JSON-able dataset columns (includes `example_id`, `prompt` as messages)."""
        ...

    def from_row(self, row: dict[str, Any]) -> Example:
        """Inverse of `to_row` (extra columns are ignored)."""
        ...
