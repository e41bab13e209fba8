"""`report compare`: line several eval runs up against the first, with intervals and verdicts.

A run is an eval output directory (its summary.json is read) or a summary.json path. The side-by-side
table of means and the plot come from `selfimprove.eval.report`. When a run's `records.jsonl` sits
beside its summary.json, every change against the first row is also judged by the paired bootstrap
over the examples both runs have (`selfimprove.eval.significance`): per level, for the chosen metric,
and at level "all" for pass@k, first/second-try rates and a multi-turn agent's per-episode behaviour.
The JSON gains per row `interval` (the run's own 95% interval per level, drawn as the plot's error
bars), `change` (per level) and `changes` (pass@k, tries, behaviour); the markdown gains a table with
A, B, B-A, the 95% CI, the number of paired examples and the verdict (`gain`, `loss`, `within noise`;
for a lower-is-better metric, labelled so, a fall is the gain). A run without records.jsonl is
compared by its stored means only, without intervals.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from selfimprove.data.safe_load import read_json_file
from selfimprove.errors import DataError, UserError
from selfimprove.eval.metrics import ALL
from selfimprove.eval.report import RATE_METRICS, compare_runs, markdown_compare, markdown_table, plot_compare
from selfimprove.eval.significance import (
    LOWER_IS_BETTER,
    bootstrap_mean,
    example_values,
    format_change,
    judged,
    paired_bootstrap,
)


def _summary_path(run: str | Path) -> Path:
    path = Path(run)
    return path / "summary.json" if path.is_dir() else path


def load_summary(run: str | Path) -> dict[str, Any]:
    """summary.json of a run directory (or the file itself), checked to have `models`."""
    path = _summary_path(run)
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


def load_records(run: str | Path) -> list[dict[str, Any]] | None:
    """The run's records.jsonl rows (beside summary.json), or None when there is none."""
    from selfimprove.data.jsonl import read_jsonl

    path = _summary_path(run).parent / "records.jsonl"
    return list(read_jsonl(path)) if path.is_file() else None


def compare_files(runs: list[str], metric: str = "f1", out: str | None = None) -> tuple[str, list[Path]]:
    """The markdown comparison of `runs`; with `out`, also writes compare.md, compare.json and compare.png there."""
    if len(runs) < 2:
        raise UserError("report compare needs at least two runs")
    summaries = [(Path(run).name or run, load_summary(run)) for run in runs]
    comparison = compare_runs(summaries, metric)
    add_significance(comparison, [(summary, load_records(run)) for (_, summary), run in zip(summaries, runs, strict=True)])
    text = markdown_compare(comparison) + markdown_changes(comparison)
    if out is None:
        return text, []
    target = Path(out)
    target.mkdir(parents=True, exist_ok=True)
    (target / "compare.md").write_text(text, encoding="utf-8")
    (target / "compare.json").write_text(json.dumps(comparison, indent=2), encoding="utf-8")
    return text, [target / "compare.md", target / "compare.json", plot_compare(comparison, target / "compare.png")]


def _row_records(runs: list[tuple[dict[str, Any], list[dict[str, Any]] | None]]) -> list[list[dict[str, Any]] | None]:
    """Records of each comparison row (run x model, in `compare_runs` order)."""
    rows = []
    for summary, records in runs:
        for model in summary["models"]:
            rows.append(None if records is None else [r for r in records if str(r.get("model")) == model])
    return rows


def _metric_for(records: list[dict[str, Any]], metric: str) -> str:
    """`metric` when the records have it, else "score" (as the table of means does)."""
    return metric if example_values(records, metric) else "score"


def add_significance(comparison: dict[str, Any], runs: list[tuple[dict[str, Any], list[dict[str, Any]] | None]]) -> None:
    """Add `interval`, `change` and `changes` to the comparison rows that have records (in place)."""
    rows, row_records = comparison["rows"], _row_records(runs)
    base = row_records[0] if row_records else None
    comparison["significance"] = {"method": "paired bootstrap over examples, repeats averaged", "level": 0.95,
                                  "n_boot": 10_000, "seed": 0}
    for row, records in zip(rows, row_records, strict=True):
        if not records:
            continue
        name = _metric_for(records, comparison["metric"])
        values = {g: example_values(records, name, g) for g in comparison["levels"]}
        row["interval"] = {g: bootstrap_mean(v) for g, v in values.items() if v}
        if row is rows[0] or not base:
            continue
        row["change"] = {g: judged(name, paired_bootstrap(example_values(base, name, g), v).to_dict())
                         for g, v in values.items() if v}
        row["changes"] = {extra: judged(extra, paired_bootstrap(example_values(base, extra),
                                                                example_values(records, extra)).to_dict())
                          for extra in _extra_metrics(base, records)}


def _extra_metrics(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> list[str]:
    """pass@k for the k both runs' repeats allow (k >= 2; pass@1 is the accuracy), first/second try, then an agent's
    behaviour per episode (answered, parse-error and repeated-query shares)."""
    from selfimprove.eval.records import BEHAVIOUR_METRICS

    repeats = min(len({r.get("repeat", 0) for r in rows}) for rows in (a, b))
    names = [f"pass@{k}" for k in range(2, repeats + 1)] + ["first_try", "second_try", *BEHAVIOUR_METRICS]
    return [n for n in names if example_values(a, n) and example_values(b, n)]


def markdown_changes(comparison: dict[str, Any]) -> str:
    """The table of changes against the first row (empty when no row has records)."""
    lines = []
    for row in comparison["rows"][1:]:
        items = [(comparison["metric"], g, c) for g, c in row.get("change", {}).items()]
        items += [(name, ALL, c) for name, c in row.get("changes", {}).items()]
        for name, level, change in items:
            rate = name in RATE_METRICS or name.startswith("pass@")
            shown = f"{name} (lower is better)" if name in LOWER_IS_BETTER else name
            lines.append([row["run"], row["model"], shown, level, *format_change(change, rate)])
    if not lines:
        return ""
    header = ["run", "model", "metric", "level", "A", "B", "B-A", "95% CI", "n", "verdict"]
    return ("\n## Changes vs the first row (paired bootstrap over examples, 95% CI; "
            "`gain`/`loss` only when the interval excludes 0)\n\n" + markdown_table(header, lines) + "\n")


def overall_changes(before: str | Path, after: str | Path) -> list[tuple[str, str, dict[str, Any]]]:
    """(model, metric, change) at level "all" for every model and record metric both runs have
    (empty when either run has no records.jsonl): the before/after report's intervals and verdicts
    (`significance.judged`: for a lower-is-better metric a fall is the gain)."""
    from selfimprove.eval.metrics import record_metrics

    a, b = load_records(before), load_records(after)
    if not a or not b:
        return []
    found = []
    for model in dict.fromkeys(str(r.get("model")) for r in a):
        rows_a = [r for r in a if str(r.get("model")) == model]
        rows_b = [r for r in b if str(r.get("model")) == model]
        names = {n for r in rows_a for n in record_metrics(r)} & {n for r in rows_b for n in record_metrics(r)}
        found += [(model, name, judged(name, paired_bootstrap(example_values(rows_a, name),
                                                              example_values(rows_b, name)).to_dict()))
                  for name in sorted(names)]
    return found
