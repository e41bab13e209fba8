"""Markdown tables and PNG plots from run summaries (see `selfimprove.eval.summary`).

`markdown_report(summary)` renders the Araft-style table (rows: models; columns: easy / medium /
hard / all; one table per metric; cells "mean ± std" over repeats, in percent for rates), the
question-type table, pass@k, first vs second try, agent behaviour and cost. `compare_runs`
lines several runs up against the first (differences B - A of the means). Plots use
matplotlib's Agg backend (no display needed). Nothing here reads model output; it only formats
numbers, and it never re-computes scores.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from selfimprove.eval.metrics import ALL, ordered_groups
from selfimprove.eval.records import BEHAVIOUR_METRICS

RATE_METRICS = {"f1", "em", "prec", "recall", "score", "correct", "first_try", "second_try", *BEHAVIOUR_METRICS}


def shown_levels(groups) -> list[str]:
    """The levels to show, then "all": a lone "unknown" (a task without levels, e.g. Countdown) is not a level.

    >>> shown_levels(["unknown", "all"]), shown_levels(["hard", "easy", "all"])
    (['all'], ['easy', 'hard', 'all'])
    """
    names = {g for g in groups if g != ALL}
    return ([] if names == {"unknown"} else ordered_groups(names)) + [ALL]


def table_metrics(summary: dict[str, Any]) -> tuple[str, str]:
    """("f1", "em") when the task reports F1 (HotpotQA), else ("score", "correct")."""
    has_f1 = any("f1" in m["by_level"][ALL]["metrics"] for m in summary["models"].values())
    return ("f1", "em") if has_f1 else ("score", "correct")


def format_cell(stats: dict[str, float] | None, rate: bool) -> str:
    """"mean ± std" (x100 for rates); "-" when missing.

    >>> format_cell({"mean": 0.258, "std": 0.012}, rate=True)
    '25.8 ± 1.2'
    >>> format_cell({"mean": 3.25, "std": 0.0}, rate=False)
    '3.25 ± 0.00'
    """
    if not stats or stats.get("n") == 0:
        return "-"
    scale, digits = (100.0, 1) if rate else (1.0, 2)
    return f"{stats['mean'] * scale:.{digits}f} ± {stats['std'] * scale:.{digits}f}"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A GitHub markdown table.

    >>> print(markdown_table(["a", "b"], [["1", "2"]]))
    | a | b |
    |---|---|
    | 1 | 2 |
    """
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def group_table(summary: dict[str, Any], field: str, metric: str) -> str | None:
    """Models x groups of `field` ("by_level"/"by_type") for one metric; None if no model has it."""
    models = summary["models"]
    groups = shown_levels({g for m in models.values() for g in m[field]})  # a lone "unknown" is no group
    if not any(metric in m[field][ALL]["metrics"] for m in models.values()) or (field != "by_level" and groups == [ALL]):
        return None  # a by-type table without types would repeat the by-level one
    header = ["model"] + [f"{g} (n={_count(models, field, g)})" for g in groups]
    rows = [[name] + [format_cell(m[field].get(g, {}).get("metrics", {}).get(metric), metric in RATE_METRICS)
                      for g in groups] for name, m in models.items()]
    return markdown_table(header, rows)


def _count(models: dict[str, Any], field: str, group: str) -> int:
    return max((m[field].get(group, {}).get("count", 0) for m in models.values()), default=0)


def markdown_report(summary: dict[str, Any]) -> str:
    """The whole summary.md text."""
    run, parts = summary.get("run", {}), []
    parts.append(f"# Evaluation: {run.get('task', '?')}\n\n" + _settings_line(run))
    main, accepted = table_metrics(summary)
    for field, title, metrics in (("by_level", "by level", (main, accepted)), ("by_type", "by question type", (main,))):
        for metric in metrics:
            table = group_table(summary, field, metric)
            if table:
                parts.append(f"## {metric.upper()} {title} (mean ± std over repeats, %)\n\n{table}")
    parts += [p for p in (_pass_at_k_section(summary), _attempts_section(summary),
                          _stats_section(summary, "behaviour", "Agent behaviour (counts, and rates per episode or turn)"),
                          _cost_section(summary)) if p]
    return "\n\n".join(parts) + "\n"


def _settings_line(run: dict[str, Any]) -> str:
    keys = ("models", "repeats", "seed", "examples", "data", "format", "searcher", "temperature", "adapter")
    shown = {k: ", ".join(map(str, run[k])) if isinstance(run.get(k), list) else run.get(k) for k in keys}
    return "; ".join(f"{k}: {v}" for k, v in shown.items() if v not in (None, ""))


def _pass_at_k_section(summary: dict[str, Any]) -> str | None:
    ks = sorted({k for m in summary["models"].values() for k in m["pass_at_k"]}, key=int)
    if not ks:
        return None
    rows = [[name] + [f"{m['pass_at_k'][k] * 100:.1f}" if k in m["pass_at_k"] else "-" for k in ks]
            for name, m in summary["models"].items()]
    table = markdown_table(["model"] + [f"pass@{k}" for k in ks], rows)
    return f"## pass@k (unbiased estimator over repeats, correct = verifier accepts, %)\n\n{table}"


def _attempts_section(summary: dict[str, Any]) -> str | None:
    rows = [[name, format_cell(m["attempts"]["first_try"], True), format_cell(m["attempts"]["second_try"], True)]
            for name, m in summary["models"].items() if m.get("attempts")]
    if not rows:
        return None
    return "## First vs second try (%)\n\n" + markdown_table(["model", "first try", "second try"], rows)


def _stats_section(summary: dict[str, Any], field: str, title: str) -> str | None:
    """Rows: the statistics in `field`; columns: models (mean ± std over repeats)."""
    models = summary["models"]
    names = sorted({k for m in models.values() for k in m.get(field, {})})
    if not names:
        return None
    rows = [[name] + [format_cell(m.get(field, {}).get(name), False) for m in models.values()] for name in names]
    return f"## {title}\n\n" + markdown_table([field] + list(models), rows)


def _cost_section(summary: dict[str, Any]) -> str | None:
    merged = {"models": {name: {"cost": {**m.get("tokens", {}), **{"wall_s": m["wall_s"].get("per_example")}}}
                         for name, m in summary["models"].items()}}
    for model in merged["models"].values():
        model["cost"] = {k: v for k, v in model["cost"].items() if v}
    return _stats_section(merged, "cost", "Cost per example (tokens, seconds)")


def compare_runs(summaries: list[tuple[str, dict[str, Any]]], metric: str = "f1") -> dict[str, Any]:
    """Each (run label, model) row's per-level means of `metric` and its difference from the first row."""
    known = {name for _, summary in summaries for m in summary["models"].values()
             for stats in m["by_level"].values() for name in stats["metrics"]}
    if known and metric not in known:
        from selfimprove.errors import UserError

        raise UserError(f"unknown metric '{metric}' for these runs (available: {', '.join(sorted(known))})")
    rows = [{"run": label, "model": model, "levels": _level_means(m, metric)}
            for label, summary in summaries for model, m in summary["models"].items()]
    if not rows:
        return {"metric": metric, "levels": [], "rows": []}
    levels = shown_levels({g for r in rows for g in r["levels"]})
    base = rows[0]["levels"]
    for row in rows:
        row["delta"] = {g: row["levels"][g] - base[g] for g in levels if g in row["levels"] and g in base}
    return {"metric": metric, "levels": levels, "rows": rows}


def _level_means(model_summary: dict[str, Any], metric: str) -> dict[str, float]:
    found = {}
    for group, stats in model_summary["by_level"].items():
        metrics = stats["metrics"]
        chosen = metrics.get(metric) or metrics.get("score")
        if chosen:
            found[group] = chosen["mean"]
    return found


def markdown_compare(comparison: dict[str, Any]) -> str:
    """Side-by-side table: one row per run/model, each level as "value (+delta)" against row 1."""
    levels, rate = comparison["levels"], comparison["metric"] in RATE_METRICS
    scale = 100.0 if rate else 1.0
    rows = []
    for index, row in enumerate(comparison["rows"]):
        cells = []
        for g in levels:
            value, delta = row["levels"].get(g), row["delta"].get(g)
            text = "-" if value is None else f"{value * scale:.1f}"
            cells.append(text if index == 0 or delta is None else f"{text} ({delta * scale:+.1f})")
        rows.append([row["run"], row["model"]] + cells)
    title = f"# Comparison: {comparison['metric'].upper()} by level (difference vs the first row)\n\n"
    return title + markdown_table(["run", "model"] + levels, rows) + "\n"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_levels(series: list[tuple[str, dict[str, tuple[float, ...]]]], levels: list[str],
                ylabel: str, path: Path, title: str = "") -> Path:
    """Grouped bars: one bar per series per level; error bars from (mean, std) or (mean, low, high)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(5.0, 1.4 * len(levels) * max(1, len(series)) / 2 + 3), 3.8))
    width = 0.8 / max(1, len(series))
    for index, (label, values) in enumerate(series):
        xs = [i + index * width for i in range(len(levels))]
        means = [values.get(g, (0.0, 0.0))[0] for g in levels]
        ax.bar(xs, means, width, yerr=_error_bars(values, levels, means), capsize=3, label=label)
    ax.set_xticks([i + width * (len(series) - 1) / 2 for i in range(len(levels))], levels)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _error_bars(values: dict[str, tuple[float, ...]], levels: list[str], means: list[float]) -> list[list[float]]:
    """[below, above] bar lengths: std both ways, or the distance to an interval's ends."""
    below, above = [], []
    for g, mean in zip(levels, means, strict=True):
        item = values.get(g, (0.0, 0.0))
        low, high = (mean - item[1], mean + item[1]) if len(item) == 2 else item[1:3]
        below.append(max(mean - low, 0.0))
        above.append(max(high - mean, 0.0))
    return [below, above]


def write_run_plots(summary: dict[str, Any], out_dir: Path) -> list[Path]:
    """levels.png (F1 or score by level, per model) and pass_at_k.png; returns the written paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    models = summary["models"]
    if not models:
        return []
    metric = table_metrics(summary)[0]
    levels = shown_levels({g for m in models.values() for g in m["by_level"]})
    series = [(name, {g: (s["metrics"][metric]["mean"] * 100, s["metrics"][metric]["std"] * 100)
                      for g, s in m["by_level"].items() if metric in s["metrics"]}) for name, m in models.items()]
    repeats = max(m["repeats"] for m in models.values())
    title = f"{summary.get('run', {}).get('task', '')}: {metric} by level, mean ± std over {repeats} repeat(s)"
    paths = [plot_levels(series, levels, f"{metric} (%)", out_dir / "levels.png", title)]
    if any(m["pass_at_k"] for m in models.values()):
        paths.append(_plot_pass_at_k(models, out_dir / "pass_at_k.png"))
    return paths


def _plot_pass_at_k(models: dict[str, Any], path: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for name, m in models.items():
        ks = sorted(m["pass_at_k"], key=int)
        ax.plot([int(k) for k in ks], [m["pass_at_k"][k] * 100 for k in ks], marker="o", label=name)
    ax.set_xticks(sorted({int(k) for m in models.values() for k in m["pass_at_k"]}))
    ax.set_xlabel("k")
    ax.set_ylabel("pass@k (%)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_compare(comparison: dict[str, Any], path: Path) -> Path:
    """Grouped bars of each compared row by level, with the row's 95% bootstrap interval when it has one."""
    scale = 100.0 if comparison["metric"] in RATE_METRICS else 1.0
    series = [(f"{r['run']}: {r['model']}", {g: _bar(v, r.get("interval", {}).get(g), scale)
                                              for g, v in r["levels"].items() if g in comparison["levels"]})
              for r in comparison["rows"]]
    has_ci = any(r.get("interval") for r in comparison["rows"])
    title = "comparison by level" + (" (95% CI, bootstrap over examples)" if has_ci else "")
    return plot_levels(series, comparison["levels"], comparison["metric"], path, title)


def _bar(mean: float, interval: dict[str, Any] | None, scale: float) -> tuple[float, ...]:
    if not interval or interval.get("low") is None:
        return (mean * scale, 0.0)
    return (mean * scale, interval["low"] * scale, interval["high"] * scale)
