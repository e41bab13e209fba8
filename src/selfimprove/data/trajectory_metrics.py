"""Behaviour metrics over agent trajectories: the failure modes DPO is meant to fix, beside F1.

`agent_behaviour_metrics(trajectories)` returns plain numbers (JSON-able):
- episodes, mean_score (the task's main score), accuracy (share judged correct), mean_f1 (mean
  of `score.breakdown.f1` over episodes that report one; None when none do);
- repeated_query_rate: repeated searches / all searches (a search whose query was already
  issued in the episode, as flagged by the agent loop); episodes_with_repeat: share of episodes;
- parse_error_rate: unparseable turns / all turns; episodes_with_parse_error: share of episodes;
- steps_per_episode, searches_per_episode, finished_rate (gave an answer), step_limit_rate.
`metric_value(t, metric)` reads one score ("value" or a breakdown key) for filters.
`metrics_by_level` adds the same per HotpotQA level. Empty input gives episodes = 0 and None
elsewhere. It trusts the flags the agent loop wrote; it does not re-parse model text.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from selfimprove.data.trajectory import Trajectory


def _ratio(part: float, whole: float) -> float | None:
    return round(part / whole, 4) if whole else None


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def metric_value(trajectory: Trajectory, metric: str) -> float:
    """The score used to keep or drop a trajectory ("value" or a breakdown key; missing = 0).

    >>> t = Trajectory("hotpotqa", "1", 0, "q", "a", score={"value": 0.5, "breakdown": {"f1": 0.5, "em": 0.0}})
    >>> metric_value(t, "f1"), metric_value(t, "em"), metric_value(t, "value"), metric_value(t, "nope")
    (0.5, 0.0, 0.5, 0.0)
    """
    if metric == "value":
        return trajectory.value
    value = (trajectory.score.get("breakdown") or {}).get(metric, 0.0)
    return float(value) if isinstance(value, int | float) else 0.0


def agent_behaviour_metrics(trajectories: Iterable[Trajectory]) -> dict[str, Any]:
    """Aggregate behaviour metrics (see the module docstring).

    >>> from selfimprove.data.trajectory import Step
    >>> def s(action, arg="q", rep=False):
    ...     return Step(index=0, text="t", action=action, argument=arg, repeated_query=rep)
    >>> a = Trajectory("hotpotqa", "1", 0, "Q?", "x", steps=[s("search"), s("search", rep=True), s("answer")],
    ...                score={"value": 1.0, "correct": True, "breakdown": {"f1": 1.0}})
    >>> b = Trajectory("hotpotqa", "2", 0, "Q?", "y", steps=[s("invalid")], score={"value": 0.0})
    >>> m = agent_behaviour_metrics([a, b])
    >>> m["repeated_query_rate"], m["parse_error_rate"], m["steps_per_episode"], m["mean_f1"]
    (0.5, 0.25, 2.0, 1.0)
    """
    items = list(trajectories)
    steps = [step for t in items for step in t.steps]
    searches = [step for step in steps if step.action == "search"]
    f1s = [float(t.score["breakdown"]["f1"]) for t in items if "f1" in (t.score.get("breakdown") or {})]
    return {
        "episodes": len(items),
        "mean_score": _mean([t.value for t in items]),
        "accuracy": _mean([1.0 if t.score.get("correct") else 0.0 for t in items]),
        "mean_f1": _mean(f1s),
        "repeated_query_rate": _ratio(sum(step.repeated_query for step in searches), len(searches)),
        "episodes_with_repeat": _mean([1.0 if any(s.repeated_query for s in t.steps) else 0.0 for t in items]),
        "parse_error_rate": _ratio(sum(step.action == "invalid" for step in steps), len(steps)),
        "episodes_with_parse_error": _mean([1.0 if any(s.action == "invalid" for s in t.steps) else 0.0
                                            for t in items]),
        "steps_per_episode": _mean([float(len(t.steps)) for t in items]),
        "searches_per_episode": _mean([float(sum(s.action == "search" for s in t.steps)) for t in items]),
        "finished_rate": _mean([1.0 if t.final_answer is not None else 0.0 for t in items]),
        "step_limit_rate": _mean([1.0 if t.flags.step_limit else 0.0 for t in items]),
    }


def metrics_by_level(trajectories: Iterable[Trajectory]) -> dict[str, dict[str, Any]]:
    """`agent_behaviour_metrics` for all trajectories ("all") and per level (missing level: "none")."""
    items = list(trajectories)
    groups: dict[str, list[Trajectory]] = defaultdict(list)
    for t in items:
        groups[t.level or "none"].append(t)
    return {"all": agent_behaviour_metrics(items),
            **{level: agent_behaviour_metrics(group) for level, group in sorted(groups.items())}}
