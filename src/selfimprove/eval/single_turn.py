"""Single-turn evaluation (no agent): the single-turn environment on `task.render()`, scored by `task.score()`.

Every completion is stored as a one-step trajectory of the shared schema (action "answer" when
the task could extract an answer, "invalid" otherwise), so the summary, the viewer and the other
stages read single-turn and agent runs alike. With `reflect`, failed first tries get the
Reflect-Retry-Reward reflection and a second try (`selfimprove.eval.reflection.evaluate_reflection`):
the first try is attempt 0 (meta try=1), the retry attempt 1 (meta try=2, with the reflection
text). Batches are appended as they finish, the retry before the first try, so a stored
attempt 0 means the example is complete and a resumed run skips it. Model text is only scored.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from selfimprove.data.jsonl import RecordStore
from selfimprove.data.trajectory import Flags, Step, Timing, Trajectory
from selfimprove.models.generator import Generator, SamplingParams
from selfimprove.tasks.base import Example, Task

SINGLE_TURN = "single"


def text_trajectory(task: Task, example: Example, attempt: int, text: str, model: str, seconds: float,
                    generation: dict[str, Any], tokens: tuple[int, int] = (0, 0),
                    meta: dict[str, Any] | None = None, finish_reason: str = "stop") -> Trajectory:
    """A one-step trajectory for one completion, scored by the task (finish_reason "length" = cut)."""
    score = task.score(example, text)
    answer = None if score.parsed is None else str(score.parsed)
    step = Step(index=0, text=text, action="answer" if answer is not None else "invalid", argument=answer or "",
                parse_error=score.error if answer is None else None, prompt_tokens=tokens[0],
                completion_tokens=tokens[1], finish_reason=finish_reason)
    example_meta = example.meta or {}
    return Trajectory(task=task.name, example_id=str(example.id), attempt=attempt, question=example.question,
                      gold=_json_safe(example.answer), steps=[step], final_answer=answer, score=score.to_dict(),
                      flags=Flags(parse_errors=int(answer is None), finished=True),
                      level=_str_or_none(example_meta.get("level")), type=_str_or_none(example_meta.get("type")),
                      model=model, agent_format=SINGLE_TURN, generation=generation,
                      timing=Timing(seconds=round(seconds, 4), generate_seconds=round(seconds, 4)), meta=meta or {})


def _json_safe(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except TypeError:
        return repr(value)


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def run_single_turn(generator: Generator, task: Task, examples: list[Example], params: SamplingParams,
                    batch_size: int, store: RecordStore, reflect: bool = False) -> None:
    """Run the examples whose attempt 0 is not stored yet, `batch_size` at a time."""
    pending = [ex for ex in examples if (str(ex.id), 0) not in store]
    run_batch = _reflect_batch if reflect else _plain_batch
    with progress_bar(len(pending), "reflect + retry" if reflect else "single-turn") as advance:
        for start in range(0, len(pending), batch_size):
            batch = pending[start : start + batch_size]
            began = time.perf_counter()
            trajectories = run_batch(generator, task, batch, params)
            share = (time.perf_counter() - began) / len(batch)
            for trajectory in trajectories:
                trajectory.timing.seconds = trajectory.timing.generate_seconds = round(share, 4)
                store.append(trajectory.to_dict())
            for _ in batch:
                advance()


def _plain_batch(generator: Generator, task: Task, batch: list[Example], params: SamplingParams) -> list[Trajectory]:
    """One single-turn episode per example (`agent.single_turn`), run by the text loop."""
    from selfimprove.agent.single_turn import single_turns

    turns = single_turns([task.render(ex) for ex in batch], generator, lambda spec, turn: params, task.extract)
    name = getattr(generator, "name", "")
    return [text_trajectory(task, ex, 0, t.text, name, 0.0, params.to_dict(), (t.prompt_tokens, t.completion_tokens),
                            finish_reason=t.finish_reason) for ex, t in zip(batch, turns, strict=True)]


def _reflect_batch(generator: Generator, task: Task, batch: list[Example], params: SamplingParams) -> list[Trajectory]:
    from selfimprove.eval.reflection import ReflectionSettings, evaluate_reflection

    settings = ReflectionSettings(temperature=params.temperature, top_p=params.top_p, max_tokens=params.max_tokens,
                                  seed=params.seed)
    result = evaluate_reflection(task, batch, generator, settings)
    name, generation = getattr(generator, "name", ""), {**params.to_dict(), "reflection": True}
    trajectories = []
    for example, record in zip(batch, result["records"], strict=True):
        if "retry" in record:
            trajectories.append(text_trajectory(task, example, 1, record["retry"], name, 0.0, generation,
                                                meta={"try": 2, "reflection": record["reflection"]}))
        trajectories.append(text_trajectory(task, example, 0, record["first"], name, 0.0, generation,
                                            meta={"try": 1}))
    return trajectories


class progress_bar:
    """A rich progress bar; the context value is a function that advances it by one."""

    def __init__(self, total: int, label: str):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        self.bar = self.progress.add_task(label, total=total)

    def __enter__(self) -> Callable[[], None]:
        self.progress.__enter__()
        return lambda: self.progress.advance(self.bar)

    def __exit__(self, *exc: Any) -> None:
        self.progress.__exit__(*exc)
