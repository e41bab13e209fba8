"""Rewards picked by name from YAML-style entries: `{name, weight, params, label}`.

`get_reward(name, params)` returns a reward function: a plain reward as is (params are then an
error), a factory called with its params. `build_reward(entry)` also understands composition:
`{name: weighted_sum, parts: [entries]}`, `{name: gate, reward: entry, condition: entry,
threshold: t}`, `{name: cap, reward: entry, low, high}`, `{name: scale, reward: entry, factor}`.
`label` renames the result (the logged metric). `build_reward_funcs(entries)` returns
`(funcs, weights)` for TRL, with weighted sums split into their parts so TRL logs each.
Unknown names and keys are ConfigErrors naming the entry.
"""

from __future__ import annotations

import math
from typing import Any

from selfimprove.errors import ConfigError, UserError
from selfimprove.rewards.compose import cap, gate, reward_name, scale, split_parts, weighted_sum
from selfimprove.rewards.text import RewardFn, named

_ENTRY_KEYS = {"name", "weight", "params", "label", "parts", "reward", "condition", "threshold", "otherwise",
               "low", "high", "factor", "offset"}


def get_reward(name: str, params: dict[str, Any] | None = None) -> RewardFn:
    """A reward by registered name or "module:attr", factories called with `params`.

    >>> get_reward("soft_format").__name__
    'soft_format'
    >>> get_reward("length_penalty", {"max_words": 10}).__name__
    'length_penalty'
    """
    from selfimprove.rewards import REWARDS

    if params is not None and not isinstance(params, dict):
        raise ConfigError(f"reward '{name}': `params` must be a mapping, got {type(params).__name__}")
    target = REWARDS.get(name)
    if getattr(target, "is_reward_factory", False):
        try:
            return target(**(params or {}))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"reward '{name}': bad params {sorted(map(str, params or {}))}: {exc}") from None
    if params:
        raise ConfigError(f"reward '{name}' takes no params (got {sorted(params)})")
    if not callable(target):
        raise ConfigError(f"reward '{name}' is not callable")
    return target


def _entry(raw: Any, where: str) -> dict[str, Any]:
    entry = {"name": raw} if isinstance(raw, str) else raw
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        raise ConfigError(f"{where}: a reward entry needs a `name` (got {str(raw)[:80]!r})")
    unknown = sorted(map(str, set(entry) - _ENTRY_KEYS))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown} in reward entry '{entry['name']}'")
    return entry


def build_reward(raw: Any, where: str = "rewards") -> RewardFn:
    """One reward function from an entry (a name or a mapping)."""
    entry = _entry(raw, where)
    kind, label = entry["name"], entry.get("label")
    if kind == "weighted_sum":
        parts = [(build_reward(p, f"{where}.parts[{i}]"), _number(_entry(p, where), "weight", 1.0,
                                                                   f"{where}.parts[{i}]"))
                 for i, p in enumerate(_need_list(entry, "parts", where))]
        if not parts:
            raise ConfigError(f"{where}: weighted_sum needs `parts`")
        return weighted_sum(parts, name=label or "weighted_sum")
    if kind == "gate":
        return gate(build_reward(_need(entry, "reward", where), f"{where}.reward"),
                    build_reward(_need(entry, "condition", where), f"{where}.condition"),
                    _number(entry, "threshold", 1.0, where), _number(entry, "otherwise", 0.0, where), name=label)
    if kind == "cap":
        return cap(build_reward(_need(entry, "reward", where), f"{where}.reward"), _number(entry, "low", None, where),
                   _number(entry, "high", None, where), name=label)
    if kind == "scale":
        return scale(build_reward(_need(entry, "reward", where), f"{where}.reward"),
                     _number(entry, "factor", 1.0, where), _number(entry, "offset", 0.0, where), name=label)
    try:
        fn = get_reward(kind, entry.get("params"))
    except UserError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return _relabel(fn, label) if label else fn


def _number(entry: dict[str, Any], key: str, default: float | None, where: str) -> float | None:
    """`entry[key]` as a finite float (default when absent); anything else is a ConfigError naming the key.

    >>> _number({"name": "x", "weight": "0.5"}, "weight", 1.0, "rewards[0]")
    0.5
    >>> _number({"name": "x", "weight": "abc"}, "weight", 1.0, "rewards[0]")
    Traceback (most recent call last):
    selfimprove.errors.ConfigError: rewards[0].weight: expected a number, got 'abc'
    """
    value = entry.get(key, default)
    if value is None:
        return None
    try:
        number = math.nan if isinstance(value, bool) else float(value)
    except (TypeError, ValueError, OverflowError):
        number = math.nan
    if not math.isfinite(number):
        raise ConfigError(f"{where}.{key}: expected a number, got {str(value)[:80]!r}")
    return number


def _need_list(entry: dict[str, Any], key: str, where: str) -> list:
    value = entry.get(key) or []
    if not isinstance(value, list):
        raise ConfigError(f"{where}: `{key}` must be a list of reward entries, got {type(value).__name__}")
    return value


def _need(entry: dict[str, Any], key: str, where: str) -> Any:
    if key not in entry:
        raise ConfigError(f"{where}: '{entry['name']}' needs `{key}`")
    return entry[key]


def _relabel(fn: RewardFn, label: str) -> RewardFn:
    """A differently named wrapper (never renames a shared module-level function)."""
    def relabelled(completions, **kwargs):
        return fn(completions, **kwargs)

    return named(relabelled, label, wrapped=fn)


def build_reward_funcs(config: Any, split: bool = True) -> tuple[list[RewardFn], list[float]]:
    """`(reward_funcs, reward_weights)` for GRPOTrainer/GRPOConfig from a list of entries.

    `config` is a list of entries or a mapping with a `rewards` list. Weighted sums are split into
    their parts (weights multiplied) unless `split=False`. Metric names must be unique.

    >>> funcs, weights = build_reward_funcs([{"name": "xml_correctness"}, {"name": "soft_format", "weight": 0.5}])
    >>> [f.__name__ for f in funcs], weights
    (['xml_correctness', 'soft_format'], [1.0, 0.5])
    """
    entries = config.get("rewards") if isinstance(config, dict) else config
    if not isinstance(entries, list) or not entries:
        raise ConfigError("rewards config must be a non-empty list of {name, weight, params} entries")
    funcs: list[RewardFn] = []
    weights: list[float] = []
    for i, raw in enumerate(entries):
        fn = build_reward(raw, f"rewards[{i}]")
        weight = _number(_entry(raw, f"rewards[{i}]"), "weight", 1.0, f"rewards[{i}]")
        more_funcs, more_weights = split_parts(fn, weight) if split else ([fn], [weight])
        funcs += more_funcs
        weights += more_weights
    _check_names(funcs)
    return funcs, weights


def _check_names(funcs: list[RewardFn]) -> None:
    names = [reward_name(f) for f in funcs]
    for name in names:
        if names.count(name) > 1:
            raise ConfigError(f"two rewards log as '{name}'; give one a `label`")


def load_reward_set(names: str | None = None, config_path: str | None = None) -> tuple[list[RewardFn], list[float]]:
    """Rewards from a comma-separated list of names (weight 1, default params) or a YAML file
    with a `rewards:` list of entries; exactly one of the two."""
    from selfimprove.config import read_yaml

    if bool(names) == bool(config_path):
        raise ConfigError("give either --rewards NAME[,NAME...] or --config FILE.yaml")
    if config_path:
        data = read_yaml(config_path)
        if "rewards" not in data:
            raise ConfigError(f"{config_path}: expected a `rewards:` list")
        try:
            return build_reward_funcs(data["rewards"])
        except ConfigError as exc:
            raise ConfigError(f"{config_path}: {exc}") from None
    return build_reward_funcs([n.strip() for n in names.split(",") if n.strip()])


def describe_rewards() -> list[tuple[str, str, str]]:
    """(name, "reward", "factory" or "unavailable", first docstring line) for every registered reward
    and plugin (a plugin that cannot be loaded is listed as unavailable, with the reason)."""
    from selfimprove.rewards import REWARDS

    described = []
    for name in REWARDS.names():
        try:
            target = REWARDS.get(name)
        except UserError as exc:
            described.append((name, "unavailable", str(exc)))
            continue
        kind = "factory" if getattr(target, "is_reward_factory", False) else "reward"
        doc = (target.__doc__ or "").strip().splitlines()
        described.append((name, kind, doc[0] if doc else ""))
    return described
