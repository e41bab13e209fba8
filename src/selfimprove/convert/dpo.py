"""Trajectories -> DPO pairs in TRL's conversational preference format (prompt, chosen, rejected).

Two sources of pairs, both at the state where the agent must write step i (same prompt):
1. Repetition pairs (Araft), from successful trajectories: chosen = the correct step i,
   rejected = a repeat of step i-1 (the SFT model's main failure is repeating its last query
   until the step limit). At step 0 nothing can be repeated: `first_step="fixed"` uses a fixed
   useless reply (`FIXED_USELESS_REPLY` unless overridden), `"skip"` emits no pair.
2. Failure pairs (optional), from an attempts file with failed trajectories: for a failed and a
   successful attempt of the same example, at the first step where their texts differ (the
   steps before are identical, so the prompt is the same), chosen = the successful step,
   rejected = the failed one. One pair per (failed, successful) attempt pair.
Pairs whose chosen equals rejected are dropped; exact duplicates are written once. It does not
check that the rejected text would parse; an unparseable rejected step is a fine negative.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Iterator
from typing import Any, Literal

from selfimprove.convert.sft import assistant, format_of, is_target, step_prompt, trace
from selfimprove.data.trajectory import Trajectory
from selfimprove.data.trajectory_metrics import metric_value

Row = dict[str, Any]
FIXED_USELESS_REPLY = "I am not sure what to do, so I will not take any action."


def pair(prompt: list[dict[str, Any]], chosen: str, rejected: str, source: str, **tracing: Any) -> Row:
    return {"prompt": prompt, "chosen": assistant(chosen), "rejected": assistant(rejected), "source": source,
            **tracing}


def repetition_pairs(trajectory: Trajectory, first_step: Literal["fixed", "skip"] = "fixed",
                     fixed_reply: str = FIXED_USELESS_REPLY) -> Iterator[Row]:
    """Araft pairs for every usable step of one (successful) trajectory."""
    fmt = format_of(trajectory)
    for index, step in enumerate(trajectory.steps):
        if not is_target(step):
            continue
        if index == 0 and first_step == "skip":
            continue
        rejected = trajectory.steps[index - 1].text if index else fixed_reply
        if rejected.strip() != step.text.strip():
            yield pair(step_prompt(trajectory, index, fmt), step.text, rejected, "repetition",
                       **trace(trajectory, index))


def first_divergence(good: Trajectory, bad: Trajectory) -> int | None:
    """Index of the first step whose text differs (None when one is a prefix of the other)."""
    for index, (a, b) in enumerate(zip(good.steps, bad.steps, strict=False)):
        if a.text.strip() != b.text.strip():
            return index
    return None


def failure_pair(good: Trajectory, bad: Trajectory) -> Row | None:
    """chosen = the successful step, rejected = the failed one, at their first divergence."""
    index = first_divergence(good, bad)
    if index is None or not is_target(good.steps[index]):
        return None
    prompt = step_prompt(good, index)
    if prompt != step_prompt(bad, index):
        return None
    return pair(prompt, good.steps[index].text, bad.steps[index].text, "failure",
                **trace(good, index), rejected_attempt=bad.attempt)


def failure_pairs(attempts: Iterable[Trajectory], metric: str = "value", success: float = 1.0) -> Iterator[Row]:
    """Failure pairs for every example with a successful (`metric` >= `success`) and a failed attempt."""
    by_example: dict[str, list[Trajectory]] = defaultdict(list)
    for trajectory in attempts:
        by_example[trajectory.example_id].append(trajectory)
    for group in by_example.values():
        good = [t for t in group if metric_value(t, metric) >= success]
        bad = [t for t in group if metric_value(t, metric) < success]
        for g in good:
            for b in bad:
                row = failure_pair(g, b)
                if row is not None:
                    yield row


def dpo_rows(kept: Iterable[Trajectory], attempts: Iterable[Trajectory] = (), metric: str = "value",
             success: float = 1.0, first_step: Literal["fixed", "skip"] = "fixed", fixed_reply: str = FIXED_USELESS_REPLY) -> list[Row]:
    """All pairs: repetition pairs from `kept`, failure pairs from `attempts`, deduplicated."""
    rows = [row for t in kept for row in repetition_pairs(t, first_step, fixed_reply)]
    rows += list(failure_pairs(attempts, metric, success))
    return deduplicate(rows)


def deduplicate(rows: list[Row]) -> list[Row]:
    seen: set[str] = set()
    unique = []
    for row in rows:
        key = json.dumps([row["prompt"], row["chosen"], row["rejected"]], sort_keys=True)
        if key not in seen:
            seen.add(key)
            unique.append(row)
    return unique
