"""`report compare`: read several eval runs' summary.json and line them up against the first.

A run is an eval output directory (its summary.json is read) or a summary.json path. The
comparison table and plot come from `selfimprove.eval.report`; this module only loads files and
writes compare.md / compare.png. It compares the stored means; it does not test significance.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from selfimprove.data.safe_load import read_json_file
from selfimprove.errors import DataError, UserError
from selfimprove.eval.report import compare_runs, markdown_compare, plot_compare


def load_summary(run: str | Path) -> dict[str, Any]:
    """summary.json of a run directory (or the file itself), checked to have `models`."""
    path = Path(run)
    path = path / "summary.json" if path.is_dir() else path
    if not path.is_file():
        raise DataError(path, "no eval summary here (run `selfimprove eval` first)")
    summary = read_json_file(path)
    if not isinstance(summary, dict) or not isinstance(summary.get("models"), dict):
        raise DataError(path, "not an eval summary", field="models")
    for model, data in summary["models"].items():
        levels = data.get("by_level") if isinstance(data, dict) else None
        if not isinstance(levels, dict) or not all(
                isinstance(g, dict) and isinstance(g.get("metrics"), dict)
                and all(isinstance(m, dict) and isinstance(m.get("mean", 0), int | float) for m in g["metrics"].values())
                for g in levels.values()):
            raise DataError(path, "expected {level: {metrics: {name: {mean: number}}}}", field=f"models.{model}.by_level")
    return summary


def compare_files(runs: list[str], metric: str = "f1", out: str | None = None) -> tuple[str, list[Path]]:
    """The markdown comparison of `runs`; with `out`, also writes compare.md and compare.png there."""
    if len(runs) < 2:
        raise UserError("report compare needs at least two runs")
    comparison = compare_runs([(Path(run).name or run, load_summary(run)) for run in runs], metric)
    text = markdown_compare(comparison)
    if out is None:
        return text, []
    target = Path(out)
    target.mkdir(parents=True, exist_ok=True)
    (target / "compare.md").write_text(text, encoding="utf-8")
    (target / "compare.json").write_text(json.dumps(comparison, indent=2), encoding="utf-8")
    return text, [target / "compare.md", target / "compare.json", plot_compare(comparison, target / "compare.png")]
