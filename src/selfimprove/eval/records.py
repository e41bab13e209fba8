"""Eval rows: the flat per-(model, repeat, example) view of trajectory records that metrics use.

An eval run stores full trajectories (the shared schema, `selfimprove.data.trajectory`), one
file per model and repeat. `eval_row(trajectories, model, repeat)` flattens the attempts of one
example into a row: the first attempt gives the main score (`score`, `correct`, `metrics` =
the task's breakdown), its step count, tokens and wall time; all attempts, in order, give
`attempts` (first vs second try) when there is more than one or the run was a reflection run
(meta "try" set; a solved first try is not retried, so it has one attempt); a multi-turn agent's row also
gets `behaviour` (`episode_behaviour`: answered, parse-error and repeated-query shares of that episode,
which paired comparisons use). Run-level agent behaviour comes from
`selfimprove.data.trajectory_metrics.trajectory_metrics` (the numbers `agent run` and `distill`
report) over the first attempts of each repeat (see `behaviour_by_repeat`). Rows hold no model
text except the final answer.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

Row = dict[str, Any]


def tokens(trajectory: dict[str, Any]) -> dict[str, int]:
    """Prompt and completion tokens summed over the episode's steps."""
    steps = trajectory.get("steps") or []
    return {"prompt": sum(int(s.get("prompt_tokens", 0)) for s in steps),
            "completion": sum(int(s.get("completion_tokens", 0)) for s in steps)}


def outcome(trajectory: dict[str, Any]) -> dict[str, Any]:
    """score value, correct and breakdown metrics from a trajectory's `score` dict."""
    score = trajectory.get("score") or {}
    return {"score": float(score.get("value", 0.0) or 0.0), "correct": bool(score.get("correct", False)),
            "metrics": {k: float(v) for k, v in (score.get("breakdown") or {}).items()
                        if isinstance(v, int | float)}}


BEHAVIOUR_METRICS = ("answered", "parse_error_share", "repeated_query_share")


def episode_behaviour(trajectory: dict[str, Any]) -> dict[str, float]:
    """One agent episode's behaviour as numbers a paired comparison can average over examples: `answered` (0/1),
    `parse_error_share` (its turns that did not parse, / its turns), `repeated_query_share` (its searches that
    repeated an earlier query of the episode, / its searches; absent without a search). The run-level rates in
    the summary (`parse_error_rate`, `repeated_query_rate`) pool turns and searches over episodes instead.

    >>> episode_behaviour({"steps": [{"action": "search"}, {"action": "search"}, {"action": "invalid"}],
    ...                    "flags": {"parse_errors": 1, "repeated_queries": 1}, "final_answer": None})
    {'answered': 0.0, 'parse_error_share': 0.3333, 'repeated_query_share': 0.5}
    """
    steps, flags = trajectory.get("steps") or [], trajectory.get("flags") or {}
    found = {"answered": float(trajectory.get("final_answer") is not None)}
    if steps:
        found["parse_error_share"] = round(int(flags.get("parse_errors", 0)) / len(steps), 4)
    searches = sum(step.get("action") == "search" for step in steps)
    if searches:
        found["repeated_query_share"] = round(int(flags.get("repeated_queries", 0)) / searches, 4)
    return found


def eval_row(attempts: list[dict[str, Any]], model: str, repeat: int, agent: bool = False) -> Row:
    """One example's row from its trajectories (any order; sorted by `attempt`); with `agent` (a multi-turn agent
    format) its first attempt's `behaviour` too."""
    ordered = sorted(attempts, key=lambda t: t.get("attempt", 0))
    first = ordered[0]
    row: Row = {"model": model, "repeat": repeat, "example_id": str(first["example_id"]),
                "level": first.get("level"), "type": first.get("type"), "answer": first.get("final_answer"),
                **outcome(first), "steps": len(first.get("steps") or []), "tokens": tokens(first),
                "wall_s": float((first.get("timing") or {}).get("seconds", 0.0))}
    if agent:
        row["behaviour"] = episode_behaviour(first)
    if len(ordered) > 1 or (first.get("meta") or {}).get("try"):
        row["attempts"] = [{"score": outcome(t)["score"], "correct": outcome(t)["correct"]} for t in ordered]
    return row


def eval_rows(trajectories: list[dict[str, Any]], model: str, repeat: int, agent: bool = False) -> list[Row]:
    """Rows for every example in one (model, repeat) trajectory file, in first-seen order (`agent`: see `eval_row`)."""
    by_example: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for trajectory in trajectories:
        by_example[str(trajectory["example_id"])].append(trajectory)
    return [eval_row(items, model, repeat, agent) for items in by_example.values()]


def behaviour_by_repeat(trajectories: list[dict[str, Any]]) -> dict[str, float]:
    """`trajectory_metrics` over the first attempts of one repeat: its numbers (None and `breakdown` dropped;
    the score means are in the rows)."""
    from selfimprove.data.trajectory import Trajectory
    from selfimprove.data.trajectory_metrics import trajectory_metrics

    first = [Trajectory.from_dict(t) for t in trajectories if t.get("attempt", 0) == 0]
    metrics = trajectory_metrics(first)
    return {k: float(v) for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)}
