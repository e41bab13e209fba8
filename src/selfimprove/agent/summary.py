"""Summaries of a set of trajectories: mean score and breakdown, steps, parse errors, repeats.

Means are over trajectories (every attempt counts once); breakdown keys are averaged over the
trajectories that have them. It reports, it does not judge: no thresholds, no significance.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from selfimprove.data.trajectory import Trajectory


def summarize(trajectories: list[Trajectory]) -> dict[str, Any]:
    """Aggregate numbers for a run.

    >>> from selfimprove.data.trajectory import Flags, Step
    >>> t = Trajectory("t", "1", 0, "q", "a", steps=[Step(0, "x")], score={"value": 1.0, "breakdown": {"em": 1.0}},
    ...                flags=Flags(finished=True))
    >>> summarize([t])["mean"]["em"], summarize([t])["episodes"]
    (1.0, 1)
    """
    count = len(trajectories)
    breakdown: dict[str, list[float]] = defaultdict(list)
    for t in trajectories:
        for key, value in (t.score.get("breakdown") or {}).items():
            if isinstance(value, int | float):
                breakdown[key].append(float(value))
    mean = {key: sum(values) / len(values) for key, values in sorted(breakdown.items())}
    mean["value"] = sum(t.value for t in trajectories) / count if count else 0.0
    return {
        "episodes": count,
        "mean": mean,
        "mean_steps": sum(len(t.steps) for t in trajectories) / count if count else 0.0,
        "parse_errors": sum(t.flags.parse_errors for t in trajectories),
        "repeated_queries": sum(t.flags.repeated_queries for t in trajectories),
        "step_limit": sum(t.flags.step_limit for t in trajectories),
        "finished": sum(t.flags.finished for t in trajectories),
    }


def summary_lines(summary: dict[str, Any]) -> list[str]:
    """Human-readable lines for the CLI."""
    means = ", ".join(f"{k}={v:.3f}" for k, v in summary["mean"].items())
    return [
        f"episodes: {summary['episodes']} (finished {summary['finished']}, step limit {summary['step_limit']})",
        f"mean: {means}",
        f"mean steps: {summary['mean_steps']:.2f}; parse errors: {summary['parse_errors']}; "
        f"repeated queries: {summary['repeated_queries']}",
    ]
