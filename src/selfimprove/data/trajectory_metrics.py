"""The one aggregation of trajectory metrics: `agent run`, `eval` and `distill` all report these.

`trajectory_metrics(trajectories)` returns plain JSON-able numbers read from the schema and the
episode facts the trajectories record (`flags`, `final_answer`, step actions); it does not
re-parse model text. Definitions (one spelling each):
- episodes: trajectories given; steps: model turns (`len(t.steps)`, parse errors included);
  searches: steps whose action is "search";
- answered: episodes with a final answer (`final_answer is not None`); step_limit: episodes
  flagged `step_limit`; parse_errors: sum of `flags.parse_errors`; repeated_queries: sum of
  `flags.repeated_queries` (a search whose query the episode had already issued);
- rates: answered_rate, step_limit_rate (over episodes), parse_error_rate (parse errors / steps),
  repeated_query_rate (repeated queries / searches), episodes_with_parse_error and
  episodes_with_repeat (share of episodes with at least one), steps_per_episode,
  searches_per_episode;
- scores: mean_score (mean `score.value`), accuracy (share `score.correct`), mean_f1 (mean
  `score.breakdown.f1` over episodes that report one) and `breakdown` (every numeric breakdown key,
  averaged over the episodes that report it).
Rates and means are rounded to 4 places; an empty denominator gives None (counts give 0).
`metric_value(t, metric)` reads one score ("value" or a breakdown key) for filters;
`metrics_by_level` adds the same per level; `summary_lines` prints the headline for the CLI.
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


def _numeric_breakdown(trajectory: Trajectory) -> dict[str, float]:
    breakdown = trajectory.score.get("breakdown") or {}
    return {k: float(v) for k, v in breakdown.items() if isinstance(v, int | float) and not isinstance(v, bool)}


def breakdown_means(trajectories: list[Trajectory]) -> dict[str, float | None]:
    """Each numeric breakdown key averaged over the trajectories that report it."""
    values: dict[str, list[float]] = defaultdict(list)
    for t in trajectories:
        for key, value in _numeric_breakdown(t).items():
            values[key].append(value)
    return {key: _mean(found) for key, found in sorted(values.items())}


def _counts(items: list[Trajectory]) -> dict[str, int]:
    return {
        "episodes": len(items),
        "answered": sum(t.final_answer is not None for t in items),
        "step_limit": sum(bool(t.flags.step_limit) for t in items),
        "steps": sum(len(t.steps) for t in items),
        "searches": sum(s.action == "search" for t in items for s in t.steps),
        "parse_errors": sum(t.flags.parse_errors for t in items),
        "repeated_queries": sum(t.flags.repeated_queries for t in items),
    }


def _rates(items: list[Trajectory], counts: dict[str, int]) -> dict[str, float | None]:
    episodes = counts["episodes"]
    return {
        "answered_rate": _ratio(counts["answered"], episodes),
        "step_limit_rate": _ratio(counts["step_limit"], episodes),
        "steps_per_episode": _ratio(counts["steps"], episodes),
        "searches_per_episode": _ratio(counts["searches"], episodes),
        "parse_error_rate": _ratio(counts["parse_errors"], counts["steps"]),
        "episodes_with_parse_error": _ratio(sum(t.flags.parse_errors > 0 for t in items), episodes),
        "repeated_query_rate": _ratio(counts["repeated_queries"], counts["searches"]),
        "episodes_with_repeat": _ratio(sum(t.flags.repeated_queries > 0 for t in items), episodes),
    }


def _scores(items: list[Trajectory]) -> dict[str, Any]:
    breakdown = breakdown_means(items)
    return {
        "mean_score": _mean([t.value for t in items]),
        "accuracy": _mean([1.0 if t.score.get("correct") else 0.0 for t in items]),
        "mean_f1": breakdown.get("f1"),
        "breakdown": breakdown,
    }


def trajectory_metrics(trajectories: Iterable[Trajectory]) -> dict[str, Any]:
    """Counts, rates and score means of a set of trajectories (see the module docstring).

    >>> from selfimprove.data.trajectory import Flags, Step
    >>> def s(action):
    ...     return Step(index=0, text="t", action=action, argument="q")
    >>> a = Trajectory("hotpotqa", "1", 0, "Q?", "x", steps=[s("search"), s("search"), s("answer")],
    ...                final_answer="x", flags=Flags(repeated_queries=1, finished=True),
    ...                score={"value": 1.0, "correct": True, "breakdown": {"f1": 1.0}})
    >>> b = Trajectory("hotpotqa", "2", 0, "Q?", "y", steps=[s("invalid")], flags=Flags(parse_errors=1),
    ...                score={"value": 0.0})
    >>> m = trajectory_metrics([a, b])
    >>> m["repeated_query_rate"], m["parse_error_rate"], m["steps_per_episode"], m["mean_f1"], m["answered"]
    (0.5, 0.25, 2.0, 1.0, 1)
    """
    items = list(trajectories)
    counts = _counts(items)
    return {**counts, **_rates(items, counts), **_scores(items)}


def metrics_by_level(trajectories: Iterable[Trajectory]) -> dict[str, dict[str, Any]]:
    """`trajectory_metrics` for all trajectories ("all") and per level (missing level: "none")."""
    items = list(trajectories)
    groups: dict[str, list[Trajectory]] = defaultdict(list)
    for t in items:
        groups[t.level or "none"].append(t)
    return {"all": trajectory_metrics(items),
            **{level: trajectory_metrics(group) for level, group in sorted(groups.items())}}


def _show(value: Any) -> str:
    return "n/a" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def summary_lines(metrics: dict[str, Any]) -> list[str]:
    """Human-readable lines of `trajectory_metrics` for the CLI.

    >>> summary_lines(trajectory_metrics([]))[0]
    'episodes: 0 (answered 0, step limit 0)'
    """
    means = ", ".join(f"{k}={_show(v)}" for k, v in {"score": metrics["mean_score"], **metrics["breakdown"]}.items())
    return [
        f"episodes: {metrics['episodes']} (answered {metrics['answered']}, step limit {metrics['step_limit']})",
        f"mean: {means}",
        f"steps per episode: {_show(metrics['steps_per_episode'])}; searches: {metrics['searches']}; "
        f"parse errors: {metrics['parse_errors']}; repeated queries: {metrics['repeated_queries']}",
    ]
