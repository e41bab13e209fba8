"""Turn eval records into the run summary (summary.json): per model, overall and per group.

The summary of one run is `{"run": {...settings}, "models": {MODEL: MODEL_SUMMARY}}` where a
model summary holds `by_level` and `by_type` (each group, plus "all": example count and
metric -> {mean, std, n} over repeats), `pass_at_k`, `attempts` (first vs second try, or None),
`behaviour` (`selfimprove.data.trajectory_metrics.trajectory_metrics` of each repeat's first
attempts, the numbers `agent run` and `distill` report: counts, repeated-query and parse-error
rates, steps, answered and step-limit rates..., as mean/std over repeats; its score means live in
`by_level`), `tokens` and `wall_s` per example, and the record count. It summarises the records it
is given; it does not check that every repeat covers the same examples (a partial run is
summarised as it is, and `records` says how many there were).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from selfimprove.eval.metrics import Record, attempt_table, grouped, mean_std, over_repeats, pass_at_k_table

SCORE_METRICS = {"mean_score", "accuracy", "mean_f1"}  # already in by_level, not behaviour


def summarize_run(records: list[Record], run: dict[str, Any],
                  behaviour: dict[str, list[dict[str, float]]] | None = None) -> dict[str, Any]:
    """The whole summary: run settings and one entry per model (in first-seen order).

    `behaviour` maps a model to its per-repeat agent behaviour metrics (one dict per repeat).
    """
    by_model: dict[str, list[Record]] = defaultdict(list)
    for record in records:
        by_model[str(record.get("model"))].append(record)
    behaviour = behaviour or {}
    return {"run": run, "models": {model: summarize_model(rows, behaviour.get(model, []))
                                   for model, rows in by_model.items()}}


def summarize_model(records: list[Record], behaviour: list[dict[str, float]] | None = None) -> dict[str, Any]:
    """The summary of one model's records over all its repeats."""
    per_repeat = behaviour or []
    names = sorted({name for metrics in per_repeat for name in metrics} - SCORE_METRICS)
    return {
        "records": len(records),
        "repeats": len({record.get("repeat", 0) for record in records}),
        "by_level": grouped(records, "level"),
        "by_type": grouped(records, "type"),
        "pass_at_k": pass_at_k_table(records),
        "attempts": attempt_table(records),
        "behaviour": {name: mean_std(m[name] for m in per_repeat if name in m) for name in names},
        "tokens": over_repeats(records, _numeric_field("tokens")),
        "wall_s": over_repeats(records, lambda r: {"per_example": float(r.get("wall_s") or 0.0)}),
    }


def _numeric_field(field: str):
    def values(record: Record) -> dict[str, float]:
        raw = record.get(field) or {}
        return {key: float(value) for key, value in raw.items()
                if isinstance(value, int | float) and value is not None}

    return values


def headline(summary: dict[str, Any], model: str, metric: str = "f1") -> float | None:
    """The overall mean of `metric` for `model` (falls back to "score"), or None.

    >>> s = {"models": {"m": {"by_level": {"all": {"metrics": {"score": {"mean": 0.5}}}}}}}
    >>> headline(s, "m")
    0.5
    """
    metrics = summary["models"].get(model, {}).get("by_level", {}).get("all", {}).get("metrics", {})
    for name in (metric, "score"):
        if name in metrics:
            return metrics[name]["mean"]
    return None
