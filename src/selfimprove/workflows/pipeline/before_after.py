"""The before/after report of a recipe: every overall metric of two eval stages, side by side.

`write_before_after(out_dir, before, after)` reads the two eval stages' summary.json files,
writes `out_dir/report.md` (a table of each metric's overall mean before, after and the
difference, per model, plus links to the per-metric comparison plots when a compare stage wrote
them) and returns its path and text. Each change has its 95% paired-bootstrap interval over the
examples both stages evaluated, the number of those examples and a verdict (`gain`, `loss`,
`within noise`; see `selfimprove.eval.significance`) when both stages wrote records.jsonl.
"""

from __future__ import annotations

import json
from pathlib import Path

from selfimprove.workflows.pipeline.stages import overall_means


def before_after_rows(before: dict, after: dict) -> list[tuple[str, str, float, float]]:
    """(model, metric, before mean, after mean) for every metric both runs measured.

    >>> s = lambda v: {"models": {"m": {"by_level": {"all": {"metrics": {"correct": {"mean": v}}}}}}}
    >>> before_after_rows(s(0.1), s(0.4))
    [('m', 'correct', 0.1, 0.4)]
    """
    first, second = overall_means(before), overall_means(after)
    rows = []
    for model, metrics in first.items():
        for name, value in sorted(metrics.items()):
            if name in second.get(model, {}):
                rows.append((model, name, value, second[model][name]))
    return rows


def write_before_after(out_dir: Path, before: str = "baseline", after: str = "after",
                       compare: str = "report") -> tuple[Path, str]:
    from selfimprove.eval.compare import overall_changes

    summaries = [json.loads((out_dir / name / "summary.json").read_text(encoding="utf-8")) for name in (before, after)]
    examples = summaries[0].get("run", {}).get("examples")
    lines = [f"# Before / after ({out_dir.name})", "",
             f"Overall means on {examples} held-out examples (`{before}` vs `{after}`).", "",
             "| model | metric | before | after | change | 95% CI | n | verdict |",
             "|---|---|---:|---:|---:|---|---:|---|"]
    judged = {(m, name): c for m, name, c in overall_changes(out_dir / before, out_dir / after)}
    for model, metric, old, new in before_after_rows(*summaries):
        c = judged.get((model, metric))
        ci = "-" if not c or c["low"] is None else f"[{c['low']:+.3f}, {c['high']:+.3f}]"
        n, verdict = (c["n_examples"], c["verdict"]) if c else ("-", "-")
        shown = f"{metric} (lower is better)" if c and c.get("lower_is_better") else metric
        lines.append(f"| {model} | {shown} | {old:.3f} | {new:.3f} | {new - old:+.3f} | {ci} | {n} | {verdict} |")
    plots = sorted((out_dir / compare).glob("*/compare.png"))
    if plots:
        lines += ["", "Plots: " + ", ".join(f"[{p.parent.name}]({p.relative_to(out_dir)})" for p in plots)]
    text = "\n".join(lines) + "\n"
    path = out_dir / "report.md"
    path.write_text(text, encoding="utf-8")
    return path, text
