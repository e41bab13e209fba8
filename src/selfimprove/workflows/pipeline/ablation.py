"""`selfimprove run RECIPE --ablate REWARD`: the same training without one reward, compared with intervals.

`ablate(recipe, reward)` returns the recipe with stages added after the original ones:

- every stage whose `rewards:` list names `reward` gets a copy, `<stage>-without-<reward>`, with the
  same params and inputs except that reward (refused when it would leave no reward, or when its
  trainer sets `reward_weights` or `push_to_hub`, which the copy cannot keep);
- every stage downstream of such a stage (its evals, reports, later training) gets a copy with the
  same suffix, reading the copies instead of the originals, so the ablated chain runs whole;
- for each evaluating stage downstream (`eval`, `likelihood`), one `compare` stage `ablate-<reward>-<eval>` puts the eval with
  the reward (`with`) beside the copy without it (`without`): the paired bootstrap over the same
  examples gives each metric's change with its 95% interval and verdict. Its metrics are those of
  the recipe's own `compare` stages over that eval (default `score`; `logprob` for a likelihood stage).

The original stages keep their names, params and inputs, so a recipe that already ran is not run
again: its finished stages are skipped by their manifests and only the ablation runs. Both chains
use the same seeds and data; the only difference is the reward.
"""

from __future__ import annotations

from selfimprove.errors import ConfigError
from selfimprove.workflows.pipeline.recipe import Recipe, Stage, check_recipe, is_stage_ref

DEFAULT_METRICS = {"eval": ["score"], "likelihood": ["logprob"]}  # when no compare stage of the recipe names any
EVALUATING_KINDS = tuple(DEFAULT_METRICS)


def reward_names(stage: Stage) -> list[str]:
    """The names the rewards of a stage log as (an entry's `label`, else its `name`; a bare string is a name)."""
    entries = stage.params.get("rewards") or []
    return [entry if isinstance(entry, str) else str(entry.get("label") or entry.get("name")) for entry in entries]


def ablate(recipe: Recipe, reward: str) -> Recipe:
    """The recipe plus the chain trained without `reward` and one with/without compare per eval."""
    suffix = f"-without-{reward}"
    trained = [stage for stage in recipe.stages if reward in reward_names(stage)]
    if not trained:
        raise ConfigError(f"--ablate {reward}: no stage of recipe {recipe.name} trains with it "
                          f"(rewards used: {', '.join(_all_rewards(recipe)) or 'none'})")
    copied: dict[str, Stage] = {}
    for stage in recipe.stages:
        downstream = any(_producer(ref) in copied for ref in stage.inputs.values())
        if stage in trained or downstream:
            copy = _renamed(stage, suffix, copied)
            copied[stage.name] = _without_reward(copy, reward, stage.name) if stage in trained else copy
    compares = [_with_without(recipe, stage, copied[stage.name], reward) for stage in recipe.stages
                if stage.kind in EVALUATING_KINDS and stage.name in copied]
    result = recipe.model_copy(update={"stages": [*recipe.stages, *copied.values(), *compares]})
    check_recipe(result, f"recipe {recipe.name} --ablate {reward}")
    return result


def _all_rewards(recipe: Recipe) -> list[str]:
    return sorted({name for stage in recipe.stages for name in reward_names(stage)})


def _producer(ref: str) -> str | None:
    return ref.partition(":")[0] if is_stage_ref(ref) else None


def _without_reward(stage: Stage, reward: str, original: str) -> Stage:
    """`stage` (a copy of the recipe's stage `original`) without the reward entry named `reward`."""
    kept = [entry for entry, name in zip(stage.params["rewards"], reward_names(stage), strict=True) if name != reward]
    if not kept:
        raise ConfigError(f"--ablate {reward}: stage {original} trains with no other reward; nothing would be left")
    trainer = stage.params.get("trainer") or {}
    for key in ("reward_weights", "push_to_hub"):
        if trainer.get(key):
            raise ConfigError(f"--ablate {reward}: stage {original} sets trainer.{key}; the copy without the reward "
                              f"cannot keep it (weights per reward / one hub repo): remove it to ablate")
    return stage.model_copy(update={"params": {**stage.params, "rewards": kept}}, deep=True)


def _renamed(stage: Stage, suffix: str, copied: dict[str, Stage]) -> Stage:
    """A downstream stage reading the ablated copies of its inputs."""
    inputs = {}
    for key, ref in stage.inputs.items():
        producer = _producer(ref)
        inputs[key] = copied[producer].name + ref[len(producer):] if producer in copied else ref
    return stage.model_copy(update={"name": stage.name + suffix, "inputs": inputs}, deep=True)


def _with_without(recipe: Recipe, original: Stage, ablated: Stage, reward: str) -> Stage:
    default = DEFAULT_METRICS[original.kind]
    metrics = next((list(stage.params.get("metrics") or default) for stage in recipe.stages
                    if stage.kind == "compare" and any(_producer(ref) == original.name for ref in stage.inputs.values())),
                   default)
    return Stage(name=f"ablate-{reward}-{original.name}", kind="compare",
                 inputs={"with": f"{original.name}:", "without": f"{ablated.name}:"},
                 params={"order": ["with", "without"], "metrics": metrics})
