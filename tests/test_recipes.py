"""Every shipped recipe (and each variant) loads, and every stage's params validate against the
library's config classes and TRL's own config classes, without running anything."""

from __future__ import annotations

import pytest

from selfimprove.errors import ConfigError
from selfimprove.workflows.pipeline.recipe import load_recipe, shipped_recipes
from selfimprove.workflows.pipeline.run_recipe import check_recipe_params

EXPECTED = {"quickstart", "araft", "search-grpo", "rrr-countdown", "refiner", "function-calling", "self-distill"}
CASES = [(name, variant) for name, path in sorted(shipped_recipes().items())
         for variant in [None, *load_recipe(path).variants]]


def test_all_expected_recipes_are_shipped_with_cpu_variants():
    assert EXPECTED <= set(shipped_recipes())
    for name in EXPECTED - {"quickstart"}:
        assert "cpu" in load_recipe(name).variants, name


@pytest.mark.parametrize("name, variant", CASES)
def test_recipe_loads_and_validates(name, variant):
    recipe = load_recipe(name, variant=variant)
    check_recipe_params(recipe)
    assert shipped_recipes()[name].read_text().startswith("# selfimprove ")


def test_a_typo_in_stage_params_fails_before_running():
    recipe = load_recipe("quickstart")
    recipe.stages[2].params["trainer"]["learnin_rate"] = 1.0
    with pytest.raises(ConfigError, match="learnin_rate"):
        check_recipe_params(recipe)


def test_unknown_variant_and_variable_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="no variant 'gpu'"):
        load_recipe("araft", variant="gpu")
    path = tmp_path / "r.yaml"
    path.write_text("name: r\nstages:\n  - {name: a, kind: eval, params: {models: ['${nope}']}}\n")
    with pytest.raises(ConfigError, match=r"unknown variable \$\{nope\}"):
        load_recipe(path)


def test_countdown_grpo_config_is_the_cpu_recipes_grpo_stage_from_the_quickstarts_sft():
    """configs/grpo/countdown-cpu.yaml is `grpo-countdown --variant cpu`'s GRPO stage as one command (same data,
    rewards and trainer settings), continuing the adapter the quickstart's SFT leaves, which is the recipe's SFT."""
    from pathlib import Path

    import yaml

    config = yaml.safe_load((Path(__file__).parents[1] / "configs" / "grpo" / "countdown-cpu.yaml").read_text())
    recipe = {stage.name: stage for stage in load_recipe("grpo-countdown", variant="cpu").stages}
    quickstart = {stage.name: stage for stage in load_recipe("quickstart").stages}
    grpo = recipe["grpo"].params
    assert config["model"] == {"spec": grpo["model"]["spec"], "adapter": "runs/quickstart/sft/adapter"}
    assert (config["task"], config["data"], config["rewards"]) == (grpo["task"], grpo["data"], grpo["rewards"])
    bookkeeping = {"logging_steps", "save_steps"}
    assert {k: v for k, v in config["trainer"].items() if k not in bookkeeping} == \
        {k: v for k, v in grpo["trainer"].items() if k not in bookkeeping}
    for name in ("sft-data", "sft"):
        assert quickstart[name].params == recipe[name].params, name
