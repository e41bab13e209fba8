"""Rewards layer: plain functions with TRL's reward signature, a registry, factories, composition.

A reward is `fn(completions, **dataset_columns, **kwargs) -> list[float | None]`, named after
what it scores (TRL logs `rewards/<__name__>/mean`). Parameterised rewards are factories (marked
`is_reward_factory`) that return a named function. `REWARDS` maps names to either; configs pick
them as `{name, weight, params, label}` entries, and `build_reward_funcs(entries)` returns the
`(reward_funcs, reward_weights)` pair for `GRPOTrainer` / `GRPOConfig`. The names
`weighted_sum`, `gate`, `cap` and `scale` compose other entries (see `selfimprove.rewards.config`).
A "package.module:attr" name resolves only for modules the user allowed (`--allow-import`,
$SELFIMPROVE_ALLOW_IMPORT) or plugins of the `selfimprove.rewards` entry point group; the standard
library never (`selfimprove.registry`).

Plain TRL: `selfimprove.rewards.<name>` is a ready-made reward for every built-in name (a factory
called with its defaults, built on first access), so `GRPOTrainer(reward_funcs=[selfimprove.rewards.
countdown_correct])` and `trl grpo --reward_funcs selfimprove.rewards.countdown_correct` work as
they are. `citation` is a submodule name: its reward is `selfimprove.rewards.citation_reward`. Factories
that need params (`task_reward`, the judged rewards) are an AttributeError saying so; build them
from their module (`selfimprove.rewards.answer.task_reward("hotpotqa")`).
"""

from __future__ import annotations

from selfimprove.errors import UserError
from selfimprove.rewards.catalog import REWARDS
from selfimprove.rewards.config import build_reward, build_reward_funcs, get_reward

__all__ = ["REWARDS", "build_reward", "build_reward_funcs", "get_reward"]


def _ready_names() -> dict[str, str]:
    """Attribute name -> registered name of every built-in reward (a submodule's name is left to the
    submodule; its reward goes by its function's name, e.g. `citation_reward`)."""
    import pkgutil

    submodules = {module.name for module in pkgutil.iter_modules(__path__)}
    built_in = REWARDS._targets
    return {(name if name not in submodules else target.rpartition(":")[2]): name for name, target in built_in.items()
            if target.startswith("selfimprove.")}


def __getattr__(attribute: str):
    """`selfimprove.rewards.<name>`: the built-in reward `name` with default params, built once."""
    name = None if attribute.startswith("_") else _ready_names().get(attribute)
    if name is None:
        raise AttributeError(f"module 'selfimprove.rewards' has no attribute '{attribute}'")
    try:
        reward = get_reward(name)
    except UserError as exc:  # a factory whose params have no defaults
        raise AttributeError(f"selfimprove.rewards.{attribute} needs params ({exc}); build it with "
                             f"{REWARDS._targets[name].replace(':', '.')}(...)") from None
    globals()[attribute] = reward
    return reward


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_ready_names()))
