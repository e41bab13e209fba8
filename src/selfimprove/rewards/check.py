"""Checking rewards before training with them, and re-scoring saved trajectories.

`check_rewards(rows, funcs, weights)` scores completions labelled correct/incorrect (JSONL rows:
`completion`, `label` (bool), optional `prompt`, `group`, plus any dataset columns the rewards
read) and reports per reward, and for the weighted total: mean on correct and incorrect rows,
separation AUC (Mann-Whitney: the chance a correct row outscores an incorrect one, ties count
0.5), `rewards_wrong` (share of incorrect rows scored above the midpoint m between the two
means), `punishes_right` (share of correct rows scored below m), `zero_variance_groups`
(share of groups, by `group` or else by prompt, whose scores are all equal: no GRPO signal) and a
verdict: "FLAG" when AUC < min_auc or punishes_right > max_punished, else "ok". Samples a
reward left unscored (None) are counted and left out; judged rewards add their judge's counters
(`judge`: requests, failures, garbage, timeouts, ...). It says nothing about how training with
a reward will go; it catches rewards that do not separate right from wrong.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from selfimprove.data.jsonl import iter_jsonl, write_jsonl
from selfimprove.errors import DataError, UserError
from selfimprove.rewards.compose import reward_name
from selfimprove.rewards.text import RewardFn

RESERVED = {"completion", "label", "group", "prompt"}


def load_labelled(path: str | Path) -> list[dict[str, Any]]:
    """Rows with a `completion` and a boolean `label`; errors name file, line and field."""
    rows = []
    for line, row in iter_jsonl(path):
        if "completion" not in row:
            raise DataError(path, "missing", line=line, field="completion")
        check_completion(row["completion"], path, line)
        if not isinstance(row.get("label"), bool):
            raise DataError(path, f"must be true or false, got {row.get('label')!r}", line=line, field="label")
        rows.append(row)
    if not rows:
        raise DataError(path, "no rows")
    return rows


def check_completion(value: Any, path: str | Path, line: int | None) -> None:
    """A completion is text or a list of {role, content} messages; anything else is a located DataError.

    >>> check_completion([{"role": "assistant", "content": "4"}], "rows.jsonl", 1)
    >>> check_completion(3, "rows.jsonl", 2)
    Traceback (most recent call last):
    selfimprove.errors.DataError: rows.jsonl:2: field 'completion': expected text or a list of messages, got int
    """
    if isinstance(value, str):
        return
    if isinstance(value, list) and all(isinstance(m, dict) and isinstance(m.get("content"), str) for m in value):
        return
    raise DataError(path, f"expected text or a list of messages, got {type(value).__name__}", line=line,
                    field="completion")


def reward_columns(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """TRL-style keyword columns from rows (missing values None); `prompt` becomes `prompts`."""
    keys = sorted({k for row in rows for k in row} - RESERVED)
    columns = {k: [row.get(k) for row in rows] for k in keys}
    if any("prompt" in row for row in rows):
        columns["prompts"] = [row.get("prompt") for row in rows]
    return columns


def score_all(rows: list[dict[str, Any]], funcs: list[RewardFn]) -> dict[str, list[float | None]]:
    """Each reward's scores for all rows (one batched call per reward)."""
    completions, columns = [row["completion"] for row in rows], reward_columns(rows)
    scores = {}
    for fn in funcs:
        try:
            values = list(fn(completions, **columns))
        except (TypeError, ValueError, KeyError, AttributeError) as exc:  # a column of the wrong type or absent
            raise UserError(f"reward '{reward_name(fn)}' cannot score these rows ({type(exc).__name__}: {exc}); "
                            f"check the columns it reads (given: {', '.join(sorted(columns)) or 'none'})") from None
        if len(values) != len(rows):
            raise UserError(f"reward '{reward_name(fn)}' returned {len(values)} scores for {len(rows)} rows")
        scores[reward_name(fn)] = [None if v is None or math.isnan(v) else float(v) for v in values]
    return scores


def weighted_total(scores: dict[str, list[float | None]], weights: list[float]) -> list[float | None]:
    """TRL's combination: sum of weight * score over the rewards that scored (None if none did)."""
    columns = list(scores.values())
    totals = []
    for values in zip(*columns, strict=True):
        present = [(v, w) for v, w in zip(values, weights, strict=True) if v is not None]
        totals.append(sum(v * w for v, w in present) if present else None)
    return totals


def auc(positives: list[float], negatives: list[float]) -> float:
    """Mann-Whitney AUC: P(positive > negative) + 0.5 * P(tie).

    >>> auc([1.0, 1.0], [0.0, 1.0])
    0.75
    >>> auc([0.0], [1.0])
    0.0
    """
    if not positives or not negatives:
        return float("nan")
    wins = sum((p > n) + 0.5 * (p == n) for p in positives for n in negatives)
    return wins / (len(positives) * len(negatives))


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def _share(flags: list[bool]) -> float:
    return sum(flags) / len(flags) if flags else 0.0


def separation(values: list[float | None], rows: list[dict[str, Any]], min_auc: float = 0.6,
               max_punished: float = 0.1) -> dict[str, Any]:
    """The report for one reward's scores (see the module docstring)."""
    right = [v for v, r in zip(values, rows, strict=True) if v is not None and r["label"]]
    wrong = [v for v, r in zip(values, rows, strict=True) if v is not None and not r["label"]]
    mean_right, mean_wrong = _mean(right), _mean(wrong)
    midpoint = (mean_right + mean_wrong) / 2
    report = {"mean_correct": mean_right, "mean_incorrect": mean_wrong, "auc": auc(right, wrong),
              "rewards_wrong": _share([v > midpoint for v in wrong]),
              "punishes_right": _share([v < midpoint for v in right]),
              "zero_variance_groups": _zero_variance_share(values, rows),
              "unscored": sum(v is None for v in values)}
    bad = not report["auc"] >= min_auc or report["punishes_right"] > max_punished
    report["verdict"] = "FLAG" if bad else "ok"
    return report


def _zero_variance_share(values: list[float | None], rows: list[dict[str, Any]]) -> float:
    groups: dict[str, list[float]] = defaultdict(list)
    for value, row in zip(values, rows, strict=True):
        key = row.get("group", row.get("prompt"))
        if key is not None and value is not None:
            groups[json.dumps(key, sort_keys=True)].append(value)
    scored = [g for g in groups.values() if len(g) > 1]
    return _share([max(g) - min(g) < 1e-9 for g in scored])


def check_rewards(rows: list[dict[str, Any]], funcs: list[RewardFn], weights: list[float],
                  min_auc: float = 0.6, max_punished: float = 0.1) -> dict[str, dict[str, Any]]:
    """Per-reward reports, plus `TOTAL` (the weighted sum TRL optimises) when there are several."""
    scores = score_all(rows, funcs)
    if len(funcs) > 1:
        scores["TOTAL"] = weighted_total(scores, weights)
    report = {name: separation(values, rows, min_auc, max_punished) for name, values in scores.items()}
    for fn in funcs:
        if getattr(fn, "stats", None):
            report[reward_name(fn)]["judge"] = dict(fn.stats)
    return report


def jsonable(value: Any) -> Any:
    """The report with NaN (no rows on one side) as None, so it is strict JSON.

    >>> jsonable({"auc": float("nan"), "n": [1.0]})
    {'auc': None, 'n': [1.0]}
    """
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    return value


def trajectory_completion(record: dict[str, Any]) -> str:
    """A trajectory's steps as one completion: each step's text, observations as `<information>`.

    >>> trajectory_completion({"steps": [{"text": "<search>q</search>", "observation": "r"}, {"text": "<answer>a</answer>"}]})
    '<search>q</search>\\n<information>r</information>\\n<answer>a</answer>'
    """
    parts = []
    for step in record.get("steps") or []:
        parts.append(str(step.get("text") or ""))
        if step.get("observation") is not None:
            parts.append(f"<information>{step['observation']}</information>")
    return "\n".join(parts)


def rescore_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Reward rows from trajectory records (completion rebuilt, gold as `answer`) or completion rows."""
    rows = []
    for record in records:
        if "steps" in record:
            row = {"completion": trajectory_completion(record), "answer": record.get("gold"),
                   "question": record.get("question"), "trajectories": record}
            row.update({k: v for k, v in (record.get("meta") or {}).items() if k not in row and k not in RESERVED})
        else:
            row = dict(record)
        rows.append(row)
    return rows


def rescore_file(source: str | Path, target: str | Path, funcs: list[RewardFn], weights: list[float]) -> int:
    """Write `target`: each input record plus `rewards` {name: score} and `reward` (weighted total)."""
    source, target = Path(source), Path(target)
    if target.resolve() == source.resolve():
        raise UserError(f"rescore never overwrites its input: choose another --out than {source}")
    located = list(iter_jsonl(source))
    if not located:
        raise DataError(source, "no records to re-score")
    for line, record in located:
        steps = record.get("steps", [])
        if not isinstance(steps, list) or not all(isinstance(step, dict) for step in steps):
            raise DataError(source, "expected a list of step objects", line=line, field="steps")
    records = [record for _, record in located]
    rows = rescore_rows(records)
    for (line, _), row in zip(located, rows, strict=True):
        row.setdefault("completion", "")
        check_completion(row["completion"], source, line)
    scores = score_all(rows, funcs)
    totals = weighted_total(scores, weights)
    out = [{**record, "rewards": {name: values[i] for name, values in scores.items()}, "reward": totals[i]}
           for i, record in enumerate(records)]
    return write_jsonl(target, out)
