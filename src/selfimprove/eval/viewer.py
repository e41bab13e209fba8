"""A static, self-contained HTML viewer for trajectory files (eval, agent run, distillation).

`write_viewer(paths, out)` reads JSONL files (each file is one run), turns each line into a small
"episode" dict (question, gold, answer, correct, score, level, type, flags, steps of thought /
action / observation) and writes ONE html file with inline CSS/JS and the data embedded as JSON:
aggregate figures per run on top (`run_figures`, from the project's trajectory aggregations, not
a copy of them), then the episodes. Given exactly two files (or `compare=True`) the page puts run
A and run B side by side, one row per example id present in both (`pair_episodes`), with B - A
beside the figures.
Safety: model text is hostile, so the JSON is embedded with `<`, `>`, `&` and U+2028/9 escaped
(no `</script>` can close the block), the page builds the DOM with textContent only (never
innerHTML), and a Content-Security-Policy forbids any network access. It guarantees the page
renders what it is given; it does not validate the trajectory schema beyond the fields it reads
(unknown fields are ignored, missing ones shown as empty). Any text is writable (lone surrogates,
e.g. from a file name kept by surrogateescape, become U+FFFD: `selfimprove.data.jsonl.writable_text`).
"""

from __future__ import annotations

import html
import json
import math
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from selfimprove.data.jsonl import read_jsonl, writable_text
from selfimprove.data.trajectory import Trajectory
from selfimprove.errors import DataError, UserError
from selfimprove.eval.viewer_page import SCRIPT, STYLE, TEMPLATE

_JSON_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def embed_json(value: Any) -> str:
    """JSON that is safe inside a <script> element.

    >>> embed_json({"t": "</script><b>&"})
    '{"t": "\\\\u003c/script\\\\u003e\\\\u003cb\\\\u003e\\\\u0026"}'
    """
    text = json.dumps(value, ensure_ascii=False)
    return "".join(_JSON_ESCAPES.get(ch, ch) for ch in text)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _score(value: Any) -> float:
    """A finite score for the page (NaN, infinities and huge integers from a hostile file show as 0)."""
    try:
        number = float(value) if isinstance(value, int | float) else 0.0
    except OverflowError:
        return 0.0
    return round(number, 4) if math.isfinite(number) else 0.0


def episode_from_record(trajectory: dict[str, Any], source: str = "", run: int = 0) -> dict[str, Any]:
    """One viewer episode from a trajectory dict (the shared schema; missing fields become empty);
    `source` labels its run and `run` is that run's index."""
    score = trajectory.get("score")
    score = score if isinstance(score, dict) else {"value": score}
    value = score.get("value")
    return {
        "id": _text(trajectory.get("example_id")), "model": _text(trajectory.get("model")),
        "attempt": trajectory.get("attempt"), "question": _text(trajectory.get("question")) or "",
        "gold": _text(trajectory.get("gold")) or "", "answer": _text(trajectory.get("final_answer")),
        "correct": bool(score.get("correct")),
        "score": _score(value),
        "level": _text(trajectory.get("level")) or "", "type": _text(trajectory.get("type")) or "",
        "flags": episode_flags(trajectory), "steps": [step_view(s) for s in _list(trajectory.get("steps"))],
        "reflection": _text(_dict(trajectory.get("meta")).get("reflection")), "source": source, "run": run,
    }


def step_view(step: Any) -> dict[str, str | None]:
    """Thought / action / observation / raw text of one step, all as plain strings."""
    if not isinstance(step, dict):
        return {"raw": _text(step)}
    action = _text(step.get("action")) or ""
    if step.get("argument"):
        action = f"{action}[{_text(step['argument'])}]"
    error = step.get("parse_error") or ("repeated query" if step.get("repeated_query") else None)
    return {"thought": _text(step.get("thought")), "action": action, "observation": _text(step.get("observation")),
            "raw": _text(step.get("text")), "error": _text(error)}


def episode_flags(trajectory: dict[str, Any]) -> list[str]:
    """Behaviour flags from the trajectory's `flags` (as the agent loop wrote them)."""
    flags = _dict(trajectory.get("flags"))
    found = [label for key, label in (("repeated_queries", "repeated query"), ("parse_errors", "parse error"),
                                      ("step_limit", "step limit")) if flags.get(key)]
    if trajectory.get("final_answer") is None:
        found.append("no answer")
    return found


def build_viewer_html(records: list[dict[str, Any]], title: str = "Trajectories",
                      sources: list[str] | None = None, compare: bool = False) -> str:
    """The whole page as a string; `sources` labels each record with its run (e.g. the file it came from).

    Each run gets its column of aggregate figures on top. With `compare` the records must come
    from exactly two runs, A (the first label seen) and B: the page then shows one row per example
    id present in both, A's and B's episodes side by side, then the episodes found in one run only.
    """
    sources = sources or [""] * len(records)
    runs: dict[str, list[dict[str, Any]]] = {}
    for record, source in zip(records, sources, strict=True):
        runs.setdefault(source, []).append(record)
    if compare and len(runs) != 2:
        raise UserError(f"compare needs exactly two runs (files), got {len(runs)}")
    index = {label: i for i, label in enumerate(runs)}
    episodes = [episode_from_record(record, source, index[source]) for record, source in
                zip(records, sources, strict=True)]
    data = {"mode": "compare" if compare else "list", "runs": list(runs), "episodes": episodes,
            "figures": figure_rows([run_figures(rows) for rows in runs.values()], compare),
            **(pair_episodes(episodes) if compare else {})}
    values = {"STYLE": STYLE, "SCRIPT": SCRIPT, "TITLE": html.escape(title), "DATA": embed_json(data)}
    return re.sub(r"__(STYLE|SCRIPT|TITLE|DATA)__", lambda match: values[match.group(1)], TEMPLATE)


def write_viewer(paths: list[str | Path], out: str | Path, title: str | None = None,
                 compare: bool | None = None) -> Path:
    """Read trajectory/eval-record JSONL files and write the viewer page to `out`.

    Each file is one run. `compare` (default: exactly two files given) puts the two side by side.
    """
    compare = len(paths) == 2 if compare is None else compare
    if compare and len(paths) != 2:
        raise UserError(f"--compare needs exactly two trajectory files, got {len(paths)}")
    labels = run_labels(paths)
    records: list[dict[str, Any]] = []
    sources: list[str] = []
    for path, label in zip(paths, labels, strict=True):
        loaded = read_jsonl(path)
        records.extend(loaded)
        sources.extend([label] * len(loaded))
    if not records:
        raise DataError(paths[0] if paths else "-", "no trajectories to show")
    present = set(sources)
    empty = [path for path, label in zip(paths, labels, strict=True) if label not in present]
    if compare and empty:
        raise DataError(empty[0], "no trajectories to compare")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    title = title or (" vs ".join(labels) if compare else ", ".join(labels))
    out.write_text(writable_text(build_viewer_html(records, title, sources, compare)), encoding="utf-8")
    return out


def run_labels(paths: list[str | Path]) -> list[str]:
    """`source_label` of each file, with " (2)", " (3)"... added where two would read the same.

    >>> run_labels(["a/run/x.jsonl", "b/run/x.jsonl", "c/y.jsonl"])
    ['run/x', 'run/x (2)', 'c/y']
    """
    labels: list[str] = []
    for path in paths:
        label = base = source_label(path)
        count = 1
        while label in labels:
            count += 1
            label = f"{base} ({count})"
        labels.append(label)
    return labels


def run_figures(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The aggregate figures of one run, from the project's trajectory aggregations.

    Rates, means, turns and the parse-error total come from `trajectory_metrics` (the numbers
    `agent run`, `eval` and `distill` report). Records that are not valid trajectories are counted in
    `skipped` and left out; a score that is not a finite number counts as 0 (as on the page).

    >>> good = {"schema_version": 1, "task": "t", "example_id": "1", "attempt": 0, "question": "q", "gold": "a",
    ...         "steps": [{"index": 0, "text": "?", "action": "invalid"}], "final_answer": None,
    ...         "flags": {"parse_errors": 1}, "score": {"value": 10 ** 400}}
    >>> f = run_figures([good, {"not": "a trajectory"}])
    >>> f["episodes"], f["skipped"], f["mean_score"], f["parse_errors"], f["answered"]
    (2, 1, 0.0, 1, 0.0)
    """
    from selfimprove.data.trajectory_metrics import trajectory_metrics

    trajectories = [t for t in map(_trajectory, records) if t is not None]
    behaviour = trajectory_metrics(trajectories)
    parse_errors = behaviour["parse_errors"]
    return {"episodes": len(records), "skipped": len(records) - len(trajectories),
            "answered": behaviour["answered_rate"], "correct": behaviour["accuracy"],
            "mean_score": behaviour["mean_score"], "parse_errors": parse_errors,
            "parse_errors_per_episode": round(parse_errors / len(trajectories), 4) if trajectories else None,
            "episodes_with_parse_error": behaviour["episodes_with_parse_error"],
            "turns_per_episode": behaviour["steps_per_episode"]}


def _trajectory(record: dict[str, Any]) -> Trajectory | None:
    """The record as a Trajectory whose score holds only a finite value and `correct`, or None."""
    try:
        trajectory = Trajectory.from_dict(record)
    except DataError:
        return None
    score = trajectory.score
    return replace(trajectory, score={"value": _score(score.get("value")), "correct": bool(score.get("correct"))})


# (key in run_figures, label on the page, how it is shown: pct, count or num)
FIGURES = (("episodes", "episodes", "count"), ("answered", "answered", "pct"), ("correct", "correct", "pct"),
           ("mean_score", "mean score (reward)", "num"), ("parse_errors", "parse errors", "count"),
           ("parse_errors_per_episode", "parse errors per episode", "num"),
           ("episodes_with_parse_error", "episodes with a parse error", "pct"),
           ("turns_per_episode", "turns per episode", "num"),
           ("skipped", "records left out (not the trajectory schema)", "count"))


def show_figure(kind: str, value: float | None) -> str:
    """A figure as the page shows it.

    >>> show_figure("pct", 0.5), show_figure("num", 0.25), show_figure("count", 3), show_figure("pct", None)
    ('50.0%', '0.250', '3', 'n/a')
    """
    if value is None:
        return "n/a"
    return {"pct": f"{100 * value:.1f}%", "count": f"{int(value)}"}.get(kind, f"{value:.3f}")


def show_difference(kind: str, a: float | None, b: float | None) -> str:
    """B - A as the page shows it (percentage points for rates).

    >>> show_difference("pct", 0.5, 1.0), show_difference("num", 0.5, 0.25), show_difference("count", 3, 1)
    ('+50.0 pts', '-0.250', '-2')
    """
    if a is None or b is None:
        return "n/a"
    return {"pct": f"{100 * (b - a):+.1f} pts", "count": f"{int(b - a):+d}"}.get(kind, f"{b - a:+.3f}")


def figure_rows(figures: list[dict[str, Any]], compare: bool) -> list[dict[str, Any]]:
    """The aggregates table: one row per figure, one cell per run, and B - A when comparing."""
    rows = []
    for key, label, kind in FIGURES:
        if key == "skipped" and not any(f["skipped"] for f in figures):
            continue
        row = {"key": key, "label": label, "cells": [show_figure(kind, f[key]) for f in figures]}
        if compare:
            row["diff"] = show_difference(kind, figures[0][key], figures[1][key])
        rows.append(row)
    return rows


def pair_episodes(episodes: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """Episode indices of runs 0 (A) and 1 (B): `pairs` for example ids in both, `only_a`, `only_b`.

    >>> eps = [{"id": "1", "run": 0}, {"id": "2", "run": 0}, {"id": "1", "run": 1}, {"id": None, "run": 1}]
    >>> pair_episodes(eps)
    {'pairs': [{'id': '1', 'a': [0], 'b': [2]}], 'only_a': [1], 'only_b': [3]}
    """
    by_id: list[dict[Any, list[int]]] = [{}, {}]
    for index, episode in enumerate(episodes):
        by_id[episode["run"]].setdefault(episode["id"], []).append(index)
    shared = [key for key in by_id[0] if key is not None and key in by_id[1]]
    only = [[i for key, found in side.items() if key not in shared for i in found] for side in by_id]
    return {"pairs": [{"id": key, "a": by_id[0][key], "b": by_id[1][key]} for key in shared],
            "only_a": only[0], "only_b": only[1]}


def source_label(path: str | Path) -> str:
    """The file's parent folder and stem, e.g. "smollm2-135m/repeat-0".

    >>> source_label("runs/eval/trajectories/smollm2-135m/repeat-0.jsonl")
    'smollm2-135m/repeat-0'
    """
    path = Path(path)
    return f"{path.parent.name}/{path.stem}" if path.parent.name else path.stem
