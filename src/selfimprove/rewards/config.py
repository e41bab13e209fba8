"""Rewards picked by name from YAML-style entries: `{name, weight, params, label}`.

`get_reward(name, params)` returns a reward function: a plain reward as is (params are then an
error), a factory called with its params. `build_reward(entry)` also understands composition:
`{name: weighted_sum, parts: [entries]}`, `{name: gate, reward: entry, condition: entry,
threshold: t}`, `{name: cap, reward: entry, low, high}`, `{name: scale, reward: entry, factor}`.
`label` renames the result (the logged metric). `build_reward_funcs(entries, task=...)` returns
`(funcs, weights)` for TRL, with weighted sums split into their parts so TRL logs each.

Entries are typed: every entry takes `name`, `weight` and `label`; a reward takes `params`, a
composition only its own keys (above). Any other key, and a param the reward's factory does not
take, is a ConfigError naming the entry, with a did-you-mean (`{name: exact_match, threshold:
0.5}` is refused, not ignored). A factory with a `task` or `task_name` parameter that the entry
leaves out gets the run's task (`task=`: the GRPO config's `task`, or a rewards file's `task:`).
Unknown names are ConfigErrors too.
"""

from __future__ import annotations

import difflib
import inspect
import math
from typing import Any

from selfimprove.errors import ConfigError, UserError
from selfimprove.rewards.compose import cap, gate, reward_name, scale, split_parts, weighted_sum
from selfimprove.rewards.text import RewardFn, named

_COMMON_KEYS = {"name", "weight", "label"}
_COMPOSITION_KEYS = {"weighted_sum": {"parts"}, "gate": {"reward", "condition", "threshold", "otherwise"},
                     "cap": {"reward", "low", "high"}, "scale": {"reward", "factor", "offset"}}
_REWARD_KEYS = {"params"}
TASK_PARAMS = ("task_name", "task")  # a factory parameter that takes the run's task when the entry has none


def did_you_mean(word: str, choices: Any) -> str:
    """"; did you mean 'x'?" for the closest choice, or "".

    >>> did_you_mean("treshold", ["threshold", "weight"]), did_you_mean("zzz", ["weight"])
    ("; did you mean 'threshold'?", '')
    """
    close = difflib.get_close_matches(word, sorted(choices), n=1)
    return f"; did you mean '{close[0]}'?" if close else ""


def factory_params(target: Any) -> tuple[set[str], bool]:
    """(the keyword parameters a factory takes, whether it takes any other keyword too)."""
    try:
        parameters = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):
        return set(), True
    named_ = {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return named_, any(p.kind is p.VAR_KEYWORD for p in parameters)


def _checked_params(name: str, target: Any, params: dict[str, Any], task: str | None) -> dict[str, Any]:
    """`params` with the run's task filled in; a param the factory does not take is a ConfigError."""
    accepted, any_keyword = factory_params(target)
    unknown = sorted(map(str, set(params) - accepted))
    if unknown and not any_keyword:
        raise ConfigError(f"reward '{name}' takes no param '{unknown[0]}'{did_you_mean(unknown[0], accepted)} "
                          f"(its params: {', '.join(sorted(accepted)) or 'none'})")
    slot = next((p for p in TASK_PARAMS if p in accepted), None)
    if slot is None or any(p in params for p in TASK_PARAMS):
        return params
    if task:
        return {**params, slot: task}
    if inspect.signature(target).parameters[slot].default is inspect.Parameter.empty:
        raise ConfigError(f"reward '{name}' needs a task: give `params: {{{slot}: NAME}}` or use it in a run "
                          "with a `task:`")
    return params


def get_reward(name: str, params: dict[str, Any] | None = None, task: str | None = None) -> RewardFn:
    """A reward by registered name or "module:attr", factories called with `params` (checked against
    the factory's signature; `task`, the run's task, fills a `task`/`task_name` parameter left out).

    >>> get_reward("soft_format").__name__
    'soft_format'
    >>> get_reward("length_penalty", {"max_words": 10}).__name__
    'length_penalty'
    >>> get_reward("task_reward", task="countdown").__name__
    'countdown_value'
    """
    from selfimprove.rewards.catalog import REWARDS

    if params is not None and not isinstance(params, dict):
        raise ConfigError(f"reward '{name}': `params` must be a mapping, got {type(params).__name__}")
    target = REWARDS.get(name)
    if getattr(target, "is_reward_factory", False):
        params = _checked_params(name, target, params or {}, task)
        try:
            return target(**params)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"reward '{name}': bad params {sorted(map(str, params))}: {exc}") from None
    if params:
        raise ConfigError(f"reward '{name}' takes no params (got {sorted(params)})")
    if not callable(target):
        raise ConfigError(f"reward '{name}' is not callable")
    return target


def _entry(raw: Any, where: str) -> dict[str, Any]:
    entry = {"name": raw} if isinstance(raw, str) else raw
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        raise ConfigError(f"{where}: a reward entry needs a `name` (got {str(raw)[:80]!r})")
    allowed = _COMMON_KEYS | _COMPOSITION_KEYS.get(entry["name"], _REWARD_KEYS)
    unknown = sorted(map(str, set(entry) - allowed))
    if unknown:
        raise ConfigError(f"{where}: reward entry '{entry['name']}' takes no key '{unknown[0]}'"
                          f"{did_you_mean(unknown[0], allowed)}{_params_hint(entry['name'], unknown[0])} "
                          f"(its keys: {', '.join(sorted(allowed))})")
    return entry


def _params_hint(name: str, key: str) -> str:
    """"; it is a param: put it under `params:`" when the reward's factory takes `key`."""
    from selfimprove.rewards.catalog import REWARDS

    try:
        target = REWARDS.get(name)
    except UserError:
        return ""
    if getattr(target, "is_reward_factory", False) and key in factory_params(target)[0]:
        return "; it is a param: put it under `params:`"
    return ""


def build_reward(raw: Any, where: str = "rewards", task: str | None = None) -> RewardFn:
    """One reward function from an entry (a name or a mapping); `task` is the run's task."""
    entry = _entry(raw, where)
    kind, label = entry["name"], entry.get("label")
    if kind in _COMPOSITION_KEYS:
        return _composition(entry, where, task)
    try:
        fn = get_reward(kind, entry.get("params"), task)
    except UserError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return _relabel(fn, label) if label else fn


def _composition(entry: dict[str, Any], where: str, task: str | None) -> RewardFn:
    kind, label = entry["name"], entry.get("label")
    if kind == "weighted_sum":
        parts = [(build_reward(p, f"{where}.parts[{i}]", task), _number(_entry(p, where), "weight", 1.0,
                                                                         f"{where}.parts[{i}]"))
                 for i, p in enumerate(_need_list(entry, "parts", where))]
        if not parts:
            raise ConfigError(f"{where}: weighted_sum needs `parts`")
        return weighted_sum(parts, name=label or "weighted_sum")
    inner = build_reward(_need(entry, "reward", where), f"{where}.reward", task)
    if kind == "gate":
        return gate(inner, build_reward(_need(entry, "condition", where), f"{where}.condition", task),
                    _number(entry, "threshold", 1.0, where), _number(entry, "otherwise", 0.0, where), name=label)
    if kind == "cap":
        return cap(inner, _number(entry, "low", None, where), _number(entry, "high", None, where), name=label)
    return scale(inner, _number(entry, "factor", 1.0, where), _number(entry, "offset", 0.0, where), name=label)


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


def build_reward_funcs(config: Any, split: bool = True, task: str | None = None) -> tuple[list[RewardFn], list[float]]:
    """`(reward_funcs, reward_weights)` for GRPOTrainer/GRPOConfig from a list of entries.

    `config` is a list of entries or a mapping with a `rewards` list. Weighted sums are split into
    their parts (weights multiplied) unless `split=False`. Metric names must be unique. `task` (the
    run's task) is given to every task reward whose entry names none.

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
        fn = build_reward(raw, f"rewards[{i}]", task)
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


def load_reward_set(names: str | None = None, config_path: str | None = None,
                    task: str | None = None) -> tuple[list[RewardFn], list[float]]:
    """Rewards from a comma-separated list of names (weight 1, default params) or a YAML file
    with a `rewards:` list of entries; exactly one of the two. The run's task for task rewards is
    `task`, else the file's `task:`."""
    from selfimprove.config import read_yaml

    if bool(names) == bool(config_path):
        raise ConfigError("give either --rewards NAME[,NAME...] or --config FILE.yaml")
    if config_path:
        data = read_yaml(config_path)
        if "rewards" not in data:
            raise ConfigError(f"{config_path}: expected a `rewards:` list")
        try:
            return build_reward_funcs(data["rewards"], task=task or _file_task(data))
        except ConfigError as exc:
            raise ConfigError(f"{config_path}: {exc}") from None
    return build_reward_funcs([n.strip() for n in names.split(",") if n.strip()], task=task)


def _file_task(data: dict[str, Any]) -> str | None:
    task = data.get("task")
    if task is not None and not isinstance(task, str):
        raise ConfigError(f"`task` must be a task name, got {type(task).__name__}")
    return task


def describe_rewards() -> list[tuple[str, str, str]]:
    """(name, "reward", "factory" or "unavailable", first docstring line) for every registered reward
    and plugin (a plugin that cannot be loaded is listed as unavailable, with the reason)."""
    from selfimprove.rewards.catalog import REWARDS

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
