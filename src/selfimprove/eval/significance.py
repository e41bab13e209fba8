"""Confidence intervals and verdicts for comparisons: the paired bootstrap over examples.

Every before/after number in the toolkit (`report compare`, the recipes' `compare` stage, the RRR
four-number table) is judged here, one way:

- per example, the repeats are averaged (an example is the unit; repeats are not independent
  draws of the task);
- only examples present in both runs are paired (`n_dropped` says how many were not);
- the example ids are resampled with replacement `n_boot` times (numpy, seeded, so a report is
  reproducible) and the 95% interval is the 2.5th..97.5th percentile of the mean difference B - A
  (widened, if ever needed, to hold the observed difference);
- the verdict is `gain` when the whole interval is above 0, `loss` when it is below 0 (the other way
  round for a metric where lower is better: `LOWER_IS_BETTER`, `judged`), and
  `within noise` otherwise. Fewer than 2 paired examples give no interval; fewer than
  `MIN_EXAMPLES` (6) give an interval but always `within noise`: the percentile bootstrap is too
  narrow on a handful of examples (3 of 3 improved gives [+100, +100]), and 6 of 6 is the fewest
  that a two-sided sign test at 5% would accept.

`bootstrap_mean` is the unpaired interval of one run's mean (the error bars of plots).
`example_values` turns eval records (`records.jsonl` rows) into {example_id: [value per repeat]}
for a metric, pass@k (`pass@2`: one value per example, the unbiased estimator over its repeats)
or the first/second-try rates of reflection runs.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

GAIN, LOSS, NOISE = "gain", "loss", "within noise"
N_BOOT = 10_000
MIN_EXAMPLES = 6
_CHUNK = 500  # bootstrap replicates drawn at once (bounds memory for large example counts)


@dataclass(frozen=True)
class Change:
    """B - A over the paired examples, with its 95% interval and verdict."""

    mean_a: float
    mean_b: float
    diff: float
    low: float | None
    high: float | None
    n_examples: int
    n_dropped: int
    verdict: str

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values (NaN, for no paired example, becomes None)."""
        return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in asdict(self).items()}


def verdict(low: float | None, high: float | None, n: int = MIN_EXAMPLES) -> str:
    """`gain` / `loss` only when the interval excludes 0 (and there are at least MIN_EXAMPLES examples).

    >>> verdict(0.01, 0.2), verdict(-0.3, -0.1), verdict(-0.1, 0.2), verdict(0.0, 0.2), verdict(None, None)
    ('gain', 'loss', 'within noise', 'within noise', 'within noise')
    >>> verdict(1.0, 1.0, n=3)
    'within noise'
    """
    if low is None or high is None or n < MIN_EXAMPLES:
        return NOISE
    return GAIN if low > 0 else LOSS if high < 0 else NOISE


def example_means(values: dict[str, list[float]]) -> dict[str, float]:
    """The mean over repeats of each example (examples without values are left out).

    >>> example_means({"a": [1.0, 0.0], "b": [], "c": [0.5]})
    {'a': 0.5, 'c': 0.5}
    """
    return {str(k): float(np.mean(v)) for k, v in values.items() if len(v)}


def _boot_means(values: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """Means of `n_boot` resamples (with replacement) of `values`, deterministic under `seed`."""
    rng = np.random.default_rng(seed)
    n, out = len(values), np.empty(n_boot)
    for start in range(0, n_boot, _CHUNK):
        size = min(_CHUNK, n_boot - start)
        out[start:start + size] = values[rng.integers(0, n, size=(size, n))].mean(axis=1)
    return out


def _interval(values: np.ndarray, n_boot: int, seed: int, level: float) -> tuple[float | None, float | None]:
    if len(values) < 2:
        return None, None
    boot = _boot_means(values, n_boot, seed)
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(boot, [tail, 100 - tail])
    observed = float(values.mean())  # the percentile interval always holds the observed value
    return min(float(low), observed), max(float(high), observed)


def paired_bootstrap(a: dict[str, list[float]], b: dict[str, list[float]], n_boot: int = N_BOOT,
                     seed: int = 0, level: float = 0.95) -> Change:
    """Paired bootstrap of mean(B) - mean(A) over the examples both have.

    >>> c = paired_bootstrap({"x": [1.0], "y": [0.0]}, {"x": [1.0], "y": [0.0], "z": [1.0]})
    >>> c.diff, c.low, c.high, c.n_examples, c.n_dropped, c.verdict
    (0.0, 0.0, 0.0, 2, 1, 'within noise')
    """
    ma, mb = example_means(a), example_means(b)
    shared = sorted(set(ma) & set(mb))
    dropped = len(set(ma) ^ set(mb))
    xa = np.array([ma[k] for k in shared], dtype=float)
    xb = np.array([mb[k] for k in shared], dtype=float)
    if not shared:
        return Change(math.nan, math.nan, math.nan, None, None, 0, dropped, NOISE)
    low, high = _interval(xb - xa, n_boot, seed, level)
    return Change(float(xa.mean()), float(xb.mean()), float((xb - xa).mean()), low, high, len(shared),
                  dropped, verdict(low, high, len(shared)))


def bootstrap_mean(values: dict[str, list[float]], n_boot: int = N_BOOT, seed: int = 0,
                   level: float = 0.95) -> dict[str, Any]:
    """Unpaired: {mean, low, high, n} of one run's mean over examples (repeats averaged first).

    >>> bootstrap_mean({"a": [1.0, 1.0], "b": [1.0]})
    {'mean': 1.0, 'low': 1.0, 'high': 1.0, 'n': 2}
    """
    xs = np.array(list(example_means(values).values()), dtype=float)
    if not len(xs):
        return {"mean": math.nan, "low": None, "high": None, "n": 0}
    low, high = _interval(xs, n_boot, seed, level)
    return {"mean": float(xs.mean()), "low": low, "high": high, "n": len(xs)}


def example_values(records: Iterable[dict[str, Any]], metric: str, level: str | None = None) -> dict[str, list[float]]:
    """{example_id: [value per repeat]} of `metric` in eval records (optionally one level only).

    `metric` is a record metric (`f1`, `score`, `correct`, ...; see `metrics.record_metrics`),
    `first_try` / `second_try` (records with `attempts`), an agent episode's behaviour
    (`records.BEHAVIOUR_METRICS`, rows with `behaviour`) or `pass@K` (one value per example).

    >>> rows = [{"example_id": "a", "repeat": r, "correct": c, "score": float(c)} for r, c in enumerate([1, 0])]
    >>> example_values(rows, "score"), example_values(rows, "pass@2")
    ({'a': [1.0, 0.0]}, {'a': [1.0]})
    """
    from selfimprove.eval.metrics import record_metrics
    from selfimprove.eval.records import BEHAVIOUR_METRICS

    rows = [r for r in records if level in (None, "all") or str(r.get("level") or "unknown") == level]
    if metric.startswith("pass@"):
        return _pass_at_k_values(rows, int(metric[5:]))
    found: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        if metric in ("first_try", "second_try"):
            value = _attempt_value(row, metric)
        elif metric in BEHAVIOUR_METRICS:
            value = (row.get("behaviour") or {}).get(metric)
        else:
            value = record_metrics(row).get(metric)
        if value is not None:
            found[str(row.get("example_id"))].append(float(value))
    return dict(found)


def _attempt_value(row: dict[str, Any], metric: str) -> float | None:
    from selfimprove.eval.metrics import try_outcomes

    return try_outcomes(row)[metric] if row.get("attempts") else None


def _pass_at_k_values(rows: list[dict[str, Any]], k: int) -> dict[str, list[float]]:
    from selfimprove.eval.metrics import correct_by_example, pass_at_k

    outcomes = correct_by_example(rows)
    return {str(key): [pass_at_k(len(v), sum(v), k)] for key, v in outcomes.items() if len(v) >= k}


# metrics where lower is better: an agent's per-episode error shares (eval.records), Countdown's failure reasons
# (tasks.countdown REASONS), the refiner's citation errors (tasks.refiner)
LOWER_IS_BETTER = {"parse_error_share", "repeated_query_share", "no_answer", "unparseable", "wrong_target",
                   "wrong_numbers", "uncited_claims", "unknown_ids"}


def judged(metric: str, change: dict[str, Any]) -> dict[str, Any]:
    """`change` with its verdict read as better/worse: for a metric where lower is better an interval wholly below
    0 is the `gain` (and `lower_is_better: true` says why the verdict and the sign differ).

    >>> judged("repeated_query_share", {"verdict": "loss"}), judged("f1", {"verdict": "loss"})
    ({'verdict': 'gain', 'lower_is_better': True}, {'verdict': 'loss'})
    """
    if metric not in LOWER_IS_BETTER:
        return change
    flipped = {"gain": "loss", "loss": "gain"}.get(change["verdict"], change["verdict"])
    return {**change, "verdict": flipped, "lower_is_better": True}


def format_change(change: dict[str, Any], rate: bool) -> list[str]:
    """Table cells [A, B, B-A, 95% CI, n, verdict] (x100 for rates).

    >>> ids = "abcdef"
    >>> format_change(paired_bootstrap({i: [0.0] for i in ids}, {i: [1.0] for i in ids}).to_dict(), True)
    ['0.0', '100.0', '+100.0', '[+100.0, +100.0]', '6', 'gain']
    """
    scale, digits = (100.0, 1) if rate else (1.0, 3)

    def show(value: float | None, sign: str = "") -> str:
        return "-" if value is None or math.isnan(value) else f"{value * scale:{sign}.{digits}f}"

    interval = "-" if change["low"] is None else f"[{show(change['low'], '+')}, {show(change['high'], '+')}]"
    n = str(change["n_examples"]) + (f" ({change['n_dropped']} unpaired)" if change.get("n_dropped") else "")
    return [show(change["mean_a"]), show(change["mean_b"]), show(change["diff"], "+"), interval, n, change["verdict"]]
