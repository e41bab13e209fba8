"""Evaluation statistics: unbiased pass@k, mean and std over repeats, grouped breakdowns.

Everything here works on plain eval records (dicts, one per model x repeat x example; see
`selfimprove.eval.records`). Grouped scores are computed per repeat first (the mean over the
examples of one repeat), then averaged over repeats, so `std` is the spread BETWEEN repeats
(sample standard deviation, 0.0 with a single repeat), as in the Araft paper's "averaged over
5 runs". pass@k uses the unbiased estimator of Chen et al. (2021) over the repeats of each
example. Nothing here knows about models or tasks; missing metrics are skipped, not zeroed.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

Record = dict[str, Any]
LEVEL_ORDER = ("easy", "medium", "hard")
ALL = "all"


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k: 1 - C(n-c, k) / C(n, k), in the numerically stable product form.

    n samples, c of them correct. Equals 1 - prod_{i=n-c+1}^{n} (1 - k/i).

    >>> pass_at_k(5, 0, 1), pass_at_k(5, 5, 1)
    (0.0, 1.0)
    >>> round(pass_at_k(5, 2, 1), 6)
    0.4
    >>> round(pass_at_k(10, 3, 5), 6) == round(1 - math.comb(7, 5) / math.comb(10, 5), 6)
    True
    >>> pass_at_k(4, 3, 2)
    1.0
    >>> pass_at_k(200, 1, 100) > 0.49
    True
    """
    if not 0 <= c <= n or k < 1 or k > n:
        raise ValueError(f"pass_at_k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def mean_std(values: Iterable[float]) -> dict[str, float]:
    """Mean and sample standard deviation (0.0 for fewer than two values).

    >>> mean_std([0.2, 0.4])
    {'mean': 0.30000000000000004, 'std': 0.1414213562373095, 'n': 2}
    >>> mean_std([1.0])
    {'mean': 1.0, 'std': 0.0, 'n': 1}
    """
    items = [float(v) for v in values]
    if not items:
        return {"mean": float("nan"), "std": float("nan"), "n": 0}
    std = statistics.stdev(items) if len(items) > 1 else 0.0
    return {"mean": statistics.fmean(items), "std": std, "n": len(items)}


def record_metrics(record: Record) -> dict[str, float]:
    """The numeric metrics of one record: its `metrics` dict plus `score` and `correct`."""
    metrics = {k: float(v) for k, v in (record.get("metrics") or {}).items() if _is_number(v)}
    if _is_number(record.get("score")):
        metrics["score"] = float(record["score"])
    if record.get("correct") is not None:
        metrics["correct"] = float(bool(record["correct"]))
    return metrics


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def over_repeats(records: list[Record], value: Callable[[Record], dict[str, float]]) -> dict[str, dict]:
    """Per metric: the mean over examples within each repeat, then mean/std over repeats."""
    per_repeat: dict[Any, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for record in records:
        for name, number in value(record).items():
            per_repeat[record.get("repeat", 0)][name].append(number)
    names = sorted({name for metrics in per_repeat.values() for name in metrics})
    return {name: mean_std(statistics.fmean(per_repeat[r][name]) for r in sorted(per_repeat)
                           if per_repeat[r][name]) for name in names}


def grouped(records: list[Record], field: str) -> dict[str, dict]:
    """`over_repeats` of record metrics per value of `field` (e.g. level), plus "all"."""
    groups: dict[str, list[Record]] = defaultdict(list)
    for record in records:
        groups[str(record.get(field) or "unknown")].append(record)
    result = {name: _group_summary(groups[name]) for name in ordered_groups(groups)}
    result[ALL] = _group_summary(records)
    return result


def _group_summary(records: list[Record]) -> dict[str, Any]:
    examples = {record.get("example_id") for record in records}
    return {"count": len(examples), "metrics": over_repeats(records, record_metrics)}


def ordered_groups(names: Iterable[str]) -> list[str]:
    """HotpotQA levels in difficulty order first, then the rest alphabetically.

    >>> ordered_groups(["hard", "unknown", "easy", "bridge"])
    ['easy', 'hard', 'bridge', 'unknown']
    """
    names = set(names)
    return [n for n in LEVEL_ORDER if n in names] + sorted(names - set(LEVEL_ORDER))


def correct_by_example(records: Iterable[Record]) -> dict[Any, list[bool]]:
    """Each example's verdicts over its repeats (records without `correct` are left out).

    >>> correct_by_example([{"example_id": "a", "correct": True}, {"example_id": "a", "correct": False}])
    {'a': [True, False]}
    """
    outcomes: dict[Any, list[bool]] = defaultdict(list)
    for record in records:
        if record.get("correct") is not None:
            outcomes[record.get("example_id")].append(bool(record["correct"]))
    return dict(outcomes)


def pass_at_k_table(records: list[Record], ks: Iterable[int] | None = None) -> dict[str, float]:
    """Mean over examples of pass@k, with n = that example's repeats, c = its correct ones.

    >>> rows = [{"example_id": "a", "correct": c} for c in (True, False)]
    >>> pass_at_k_table(rows + [{"example_id": "b", "correct": False}] * 2)
    {'1': 0.25, '2': 0.5}
    """
    outcomes = correct_by_example(records)
    if not outcomes:
        return {}
    n_min = min(len(v) for v in outcomes.values())
    ks = sorted({k for k in (ks or range(1, n_min + 1)) if 1 <= k <= n_min})
    return {str(k): statistics.fmean(pass_at_k(len(v), sum(v), k) for v in outcomes.values()) for k in ks}


def try_outcomes(record: Record) -> dict[str, float]:
    """1/0 for solved at the first try, and at the first or second (a solved first try stays solved).

    >>> try_outcomes({"attempts": [{"correct": False}, {"correct": True}]})
    {'first_try': 0.0, 'second_try': 1.0}
    """
    attempts = record["attempts"]
    first = bool(attempts[0].get("correct"))
    second = first or (len(attempts) > 1 and bool(attempts[1].get("correct")))
    return {"first_try": float(first), "second_try": float(second)}


def attempt_table(records: list[Record]) -> dict[str, dict] | None:
    """First vs second try (Reflect-Retry-Reward): accuracy of attempt 1 and of attempt <= 2.

    A record's `attempts` is a list of {"correct", "score"} in order; the second try counts only
    when the first failed (a solved first try stays solved). None when no record has attempts.
    """
    with_attempts = [r for r in records if r.get("attempts")]
    if not with_attempts:
        return None

    table = over_repeats(with_attempts, try_outcomes)
    table["records"] = {"mean": float(len(with_attempts)), "std": 0.0, "n": 1}
    return table
