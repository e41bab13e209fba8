"""Learning curves of a training run as one PNG, drawn from the trainer's own log history.

`write_learning_curves(log_history, out_dir)` draws `out_dir/curves.png`: one panel per metric
that the history holds, in this order: GRPO/RRR `reward`, each `rewards/<name>/mean`,
`frac_reward_zero_std`, `kl`, `entropy`; then `loss`, `eval_loss`, `completions/clipped_ratio`, DPO
`rewards/margins` and `rewards/accuracies`, and `learning_rate`. A metric that was never logged
(e.g. `kl` with beta = 0) gets no panel; None and NaN values are skipped. `log_history` is
`trainer.state.log_history` or the `log_history.json` a run leaves behind, so the PNG can be
redrawn from a saved run. Plotting never fails a training run: an error is logged and no file
is written. With 20 or more points a panel also draws the rolling mean over a tenth of them (with
a few new examples a step, the raw values are mostly which examples were drawn). `redraw_curves(run_dir)` redraws from a saved run (`selfimprove report curves`) and
fails loudly instead. Not guaranteed: that the curves are smooth enough to read on very short runs.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

CURVES_FILE = "curves.png"
LEADING = ("reward",)
TRAILING = ("frac_reward_zero_std", "kl", "entropy", "loss", "eval_loss", "completions/clipped_ratio", "rewards/margins",
            "rewards/accuracies", "learning_rate")


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def plotted_metrics(log_history: Iterable[Mapping[str, Any]]) -> list[str]:
    """The metrics that get a panel, in panel order.

    >>> plotted_metrics([{"step": 1, "loss": 2.0, "rewards/acc/mean": 0.5, "reward": 0.5, "kl": None}])
    ['reward', 'rewards/acc/mean', 'loss']
    """
    rows = list(log_history)
    present = {key for row in rows for key, value in row.items() if _number(value) is not None}
    per_reward = sorted(k for k in present if k.startswith("rewards/") and k.endswith("/mean"))
    order = [*LEADING, *per_reward, *TRAILING]
    return [key for key in order if key in present]


def metric_series(log_history: Iterable[Mapping[str, Any]], metric: str) -> tuple[list[float], list[float]]:
    """(steps, values) of one metric; rows without a finite value are skipped.

    >>> metric_series([{"step": 1, "loss": 2.0}, {"step": 2, "loss": float("nan")}, {"step": 3, "loss": 1.0}], "loss")
    ([1.0, 3.0], [2.0, 1.0])
    """
    steps, values = [], []
    for index, row in enumerate(log_history):
        value = _number(row.get(metric))
        if value is not None:
            step = _number(row.get("step"))
            steps.append(step if step is not None else float(index))
            values.append(value)
    return steps, values


def rolling_mean(values: list[float], window: int) -> list[float]:
    """Mean of each value and the `window - 1` before it (fewer at the start).

    >>> rolling_mean([1.0, 3.0, 5.0, 7.0], 2)
    [1.0, 2.0, 4.0, 6.0]
    """
    means, total = [], 0.0
    for index, value in enumerate(values):
        total += value - (values[index - window] if index >= window else 0.0)
        means.append(total / min(index + 1, window))
    return means


SMOOTH_FROM = 20  # points in a panel from which the rolling mean is drawn


def _draw(rows: list[Mapping[str, Any]], metrics: list[str], target: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    columns = min(3, len(metrics))
    lines = math.ceil(len(metrics) / columns)
    figure = Figure(figsize=(4.2 * columns, 2.9 * lines), layout="constrained")
    FigureCanvasAgg(figure)  # Agg without switching pyplot's global backend
    for position, metric in enumerate(metrics, start=1):
        axes = figure.add_subplot(lines, columns, position)
        steps, values = metric_series(rows, metric)
        smooth = len(steps) >= SMOOTH_FROM
        axes.plot(steps, values, marker="o" if len(steps) <= 30 else None, markersize=3, linewidth=1.2,
                  alpha=0.35 if smooth else 1.0, label="per step" if smooth else None)
        if smooth:
            window = max(2, len(steps) // 10)
            axes.plot(steps, rolling_mean(values, window), linewidth=2.0, color="C1", label=f"mean of {window}")
            axes.legend(fontsize=7)
        axes.set_title(metric, fontsize=10)
        axes.set_xlabel("step", fontsize=8)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.tick_params(labelsize=8)
        axes.grid(alpha=0.3)
    figure.savefig(target, dpi=100)


def write_learning_curves(log_history: Iterable[Mapping[str, Any]], out_dir: str | Path) -> list[Path]:
    """Draw `out_dir/curves.png`; returns the files written ([] when nothing was plottable or drawing failed)."""
    target = Path(out_dir) / CURVES_FILE
    try:
        rows = [row for row in log_history if isinstance(row, Mapping)]
        metrics = plotted_metrics(rows)
        if not metrics:
            return []
        _draw(rows, metrics, target)
    except Exception as error:  # noqa: BLE001 - a plot must never fail the training run
        logger.warning("learning curves not written to %s: %s: %s", target, type(error).__name__, error)
        return []
    return [target]


def redraw_curves(run_dir: str | Path, out_dir: str | Path | None = None) -> tuple[Path, list[str]]:
    """Redraw `curves.png` from a saved run's `log_history.json` (into `out_dir`, default the run dir).

    Unlike the end-of-training call this fails loudly: a missing or malformed log history, or one
    without any plottable metric, is a UserError. Returns (the PNG, the metrics it plots).
    """
    from selfimprove.errors import DataError, UserError

    run_dir = Path(run_dir)
    source = run_dir / "log_history.json" if run_dir.is_dir() else run_dir
    if not source.is_file():
        raise UserError(f"{source}: not found (expected a training output dir holding log_history.json)")
    try:
        rows = json.loads(source.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataError(source, f"not valid JSON ({error})") from None
    if not isinstance(rows, list) or not all(isinstance(row, Mapping) for row in rows):
        raise DataError(source, "expected a list of logged steps (trainer.state.log_history)")
    metrics = plotted_metrics(rows)
    if not metrics:
        raise UserError(f"{source}: no plottable metric (nothing was logged with a number)")
    target = Path(out_dir or source.parent)
    target.mkdir(parents=True, exist_ok=True)
    _draw(rows, metrics, target / CURVES_FILE)
    return target / CURVES_FILE, metrics
