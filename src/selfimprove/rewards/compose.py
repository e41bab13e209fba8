"""Composing rewards: weighted sums, gates, caps and scaling, each reporting its parts.

Every composite is a plain TRL reward function with
- `.parts`: the last call's per-part scores, `{part name: [score per completion]}`;
- `.components`: its (reward, weight) pairs, so `split_parts` can hand the parts to TRL as
  separate reward functions with `reward_weights` (TRL then logs `rewards/<part>/mean` each);
- and, when TRL passes `log_metric`, it logs `rewards/<composite>/<part>/mean` itself.
None (a part that could not score a sample, e.g. a failed judge) follows TRL: a weighted sum
ignores None parts and is None only when every part is None; a gate whose condition is None
gives None; caps and scaling keep None.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from selfimprove.errors import ConfigError
from selfimprove.rewards.text import RewardFn, named

Score = float | None


def reward_name(fn: Any) -> str:
    """The metric name TRL would log for `fn`."""
    return getattr(fn, "__name__", type(fn).__name__)


def _call_parts(components: Sequence[tuple[RewardFn, float]], completions, kwargs) -> dict[str, list[Score]]:
    parts: dict[str, list[Score]] = {}
    for fn, _ in components:
        scores = list(fn(completions, **kwargs))
        if len(scores) != len(completions):
            raise ValueError(f"reward '{reward_name(fn)}' returned {len(scores)} scores for {len(completions)}")
        parts[reward_name(fn)] = scores
    return parts


def _log_parts(kwargs: dict[str, Any], name: str, parts: dict[str, list[Score]]) -> None:
    log_metric = kwargs.get("log_metric")
    if not callable(log_metric):
        return
    for part, scores in parts.items():
        present = [s for s in scores if s is not None and not math.isnan(s)]
        if present:
            log_metric(f"rewards/{name}/{part}/mean", sum(present) / len(present))


def weighted_sum(components: Sequence[tuple[RewardFn, float]], name: str = "weighted_sum") -> RewardFn:
    """sum(weight * part) per completion, None parts skipped.

    >>> from selfimprove.rewards.classic import soft_format, xml_int_answer
    >>> total = weighted_sum([(soft_format, 2.0), (xml_int_answer, 1.0)], name="format_and_int")
    >>> total(["<reasoning>r</reasoning><answer>7</answer>", "<answer>x</answer>"])
    [1.5, 0.0]
    >>> total.parts
    {'soft_format': [0.5, 0.0], 'xml_int_answer': [0.5, 0.0]}
    """
    _check_unique(components, name)

    def composite(completions, **kwargs) -> list[Score]:
        composite.parts = _call_parts(components, completions, kwargs)
        _log_parts(kwargs, name, composite.parts)
        columns = [composite.parts[reward_name(fn)] for fn, _ in components]
        weights = [w for _, w in components]
        return [_weighted(values, weights) for values in zip(*columns, strict=True)]

    return named(composite, name, parts={}, components=list(components), kind="sum")


def _weighted(values: Sequence[Score], weights: Sequence[float]) -> Score:
    present = [(v, w) for v, w in zip(values, weights, strict=True) if v is not None and not math.isnan(v)]
    return sum(v * w for v, w in present) if present else None


def _check_unique(components: Sequence[tuple[RewardFn, float]], name: str) -> None:
    names = [reward_name(fn) for fn, _ in components]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"composite '{name}' has two parts named {duplicates[0]}; give one a `label`")


def gate(reward: RewardFn, condition: RewardFn, threshold: float = 1.0, otherwise: float = 0.0,
         name: str | None = None) -> RewardFn:
    """`reward` where `condition` >= threshold, else `otherwise` (e.g. format counts only if correct).

    >>> from selfimprove.rewards.classic import soft_format, xml_correctness
    >>> gated = gate(soft_format, xml_correctness, threshold=2.0)
    >>> gated(["<reasoning>r</reasoning><answer>4</answer>", "<reasoning>r</reasoning><answer>5</answer>"], answer=["4", "4"])
    [0.5, 0.0]
    >>> gated.__name__
    'soft_format_if_xml_correctness'
    """
    label = name or f"{reward_name(reward)}_if_{reward_name(condition)}"

    def gated(completions, **kwargs) -> list[Score]:
        gated.parts = _call_parts([(reward, 1.0), (condition, 1.0)], completions, kwargs)
        _log_parts(kwargs, label, gated.parts)
        values, checks = gated.parts[reward_name(reward)], gated.parts[reward_name(condition)]
        return [None if c is None else (v if c >= threshold else otherwise) for v, c in zip(values, checks, strict=True)]

    return named(gated, label, parts={}, components=[(reward, 1.0)], kind="gate")


def _map_scores(reward: RewardFn, label: str, transform: Callable[[float], float]) -> RewardFn:
    def mapped(completions, **kwargs) -> list[Score]:
        mapped.parts = _call_parts([(reward, 1.0)], completions, kwargs)
        return [None if v is None else transform(v) for v in mapped.parts[reward_name(reward)]]

    return named(mapped, label, parts={}, components=[(reward, 1.0)], kind="map")


def cap(reward: RewardFn, low: float | None = None, high: float | None = None, name: str | None = None) -> RewardFn:
    """Clip scores into [low, high] (either bound may be None).

    >>> from selfimprove.rewards.classic import xml_correctness
    >>> cap(xml_correctness, high=1.0)(["<answer>4</answer>"], answer=["4"])
    [1.0]
    """
    def clip(v: float) -> float:
        v = v if low is None else max(low, v)
        return v if high is None else min(high, v)

    return _map_scores(reward, name or f"capped_{reward_name(reward)}", clip)


def scale(reward: RewardFn, factor: float, offset: float = 0.0, name: str | None = None) -> RewardFn:
    """factor * score + offset.

    >>> from selfimprove.rewards.classic import xml_correctness
    >>> scale(xml_correctness, 0.5, name="correct_01")(["<answer>4</answer>", "x"], answer=["4", "4"])
    [1.0, 0.0]
    """
    return _map_scores(reward, name or f"scaled_{reward_name(reward)}", lambda v: factor * v + offset)


def split_parts(reward: RewardFn, weight: float = 1.0) -> tuple[list[RewardFn], list[float]]:
    """A weighted sum as separate TRL reward functions + weights (TRL logs each part); others as is.

    >>> from selfimprove.rewards.classic import soft_format, xmlcount
    >>> funcs, weights = split_parts(weighted_sum([(soft_format, 2.0), (xmlcount, 1.0)]), weight=0.5)
    >>> [f.__name__ for f in funcs], weights
    (['soft_format', 'xmlcount'], [1.0, 0.5])
    """
    if getattr(reward, "kind", None) != "sum":
        return [reward], [weight]
    funcs, weights = [], []
    for fn, w in reward.components:
        sub_funcs, sub_weights = split_parts(fn, w * weight)
        funcs += sub_funcs
        weights += sub_weights
    return funcs, weights

