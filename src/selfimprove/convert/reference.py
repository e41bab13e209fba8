"""Verified reference solutions -> SFT rows (a warm start from the task's own solved examples).

Some tasks carry a solution with each example (Countdown's generator and parquet files keep the
expression that built the target; function-calling data keeps the gold calls). A task that can
turn it into a completion implements `reference_completion(example) -> str | None`. Each
candidate is scored with the task's own verifier and kept only if it is accepted, exactly like
distillation from a teacher whose answers are checked. Rows use TRL's conversational
prompt/completion format with the task's single-turn prompt (`task.render`), so training sees
what evaluation sees. It does not invent solutions: examples without one are skipped and counted.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from selfimprove.errors import UserError
from selfimprove.tasks.base import Example, Task


def verified_references(task: Task, examples: Iterable[Example]) -> tuple[list[tuple[Example, str]], dict[str, int]]:
    """((example, reference completion) of every example whose reference the task's verifier accepts, counts)."""
    make = getattr(task, "reference_completion", None)
    if make is None:
        raise UserError(f"task {task.name} has no reference answers (no reference_completion method)")
    kept, counts = [], {"examples": 0, "no_solution": 0, "rejected": 0, "kept": 0}
    for example in examples:
        counts["examples"] += 1
        completion = make(example)
        if completion is None:
            counts["no_solution"] += 1
        elif not task.score(example, completion).correct:
            counts["rejected"] += 1
        else:
            counts["kept"] += 1
            kept.append((example, completion))
    return kept, counts


def reference_sft_rows(task: Task, examples: Iterable[Example]) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """(rows, counts): one row per example whose reference completion passes the verifier."""
    kept, counts = verified_references(task, examples)
    rows = [{"prompt": task.render(example), "completion": [{"role": "assistant", "content": completion}],
             "example_id": str(example.id)} for example, completion in kept]
    return rows, counts
