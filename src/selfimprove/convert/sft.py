"""Trajectories -> SFT rows: one row per step, in TRL's conversational prompt/completion format.

For step i of a trajectory, `prompt` is exactly what the agent saw before writing it, rebuilt
with the trajectory's own agent format (`get_format(t.agent_format).conversation(question,
steps[:i])`: system prompt + question + scratchpad so far), and `completion` is
`[{"role": "assistant", "content": <step i's raw text>}]`. No chat template is applied here:
TRL renders both with the STUDENT's template at training time. Steps whose action is "invalid"
(unparseable turns) are never training targets. Rows also carry `example_id`, `attempt` and
`step` for tracing; trainers ignore them. Output order follows input order, so it is stable.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from selfimprove.data.trajectory import Step, Trajectory

Row = dict[str, Any]


def format_of(trajectory: Trajectory):
    """The agent format that produced `trajectory` (so training prompts match inference)."""
    from selfimprove.agent.formats import get_format

    return get_format(trajectory.agent_format or "react")


def step_prompt(trajectory: Trajectory, index: int, fmt: Any = None) -> list[dict[str, Any]]:
    """The chat prompt the agent saw before step `index`."""
    fmt = fmt or format_of(trajectory)
    return fmt.conversation(trajectory.question, trajectory.steps[:index])


def assistant(text: str) -> list[dict[str, str]]:
    """A one-message assistant turn (TRL's completion / chosen / rejected shape)."""
    return [{"role": "assistant", "content": text}]


def is_target(step: Step) -> bool:
    """Whether a step may be learnt from: it parsed and its turn was not cut by max_tokens."""
    return step.action != "invalid" and step.finish_reason != "length" and bool(step.text.strip())


def trace(trajectory: Trajectory, index: int) -> Row:
    return {"example_id": trajectory.example_id, "attempt": trajectory.attempt, "step": index}


def sft_rows(trajectories: Iterable[Trajectory], min_score: float | None = None) -> Iterator[Row]:
    """One SFT row per usable step of each trajectory scoring at least `min_score` (if given)."""
    for trajectory in trajectories:
        if min_score is not None and trajectory.value < min_score:
            continue
        fmt = format_of(trajectory)
        for index, step in enumerate(trajectory.steps):
            if is_target(step):
                yield {"prompt": step_prompt(trajectory, index, fmt), "completion": assistant(step.text),
                       **trace(trajectory, index)}
