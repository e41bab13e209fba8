"""One spelling per knob: old spellings are refused naming the new one; `AgentSettings` is the one agent block.

Covers eval (`EvalSettings`), distillation (`DistillConfig`), GRPO (`GRPORunConfig`), RRR configs, recipe
stage params and `--set` overrides, and that every shipped config and recipe still loads.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from selfimprove.agent.settings import AgentSettings
from selfimprove.config import load_config, validate
from selfimprove.errors import ConfigError
from selfimprove.eval.harness import EvalSettings, agent_settings
from selfimprove.workflows.distill import DistillConfig

REPO = Path(__file__).resolve().parents[1]


def grpo_config():
    from selfimprove.train.grpo import GRPORunConfig

    return GRPORunConfig


@pytest.mark.parametrize("old, new", [("out", "output_dir"), ("search", "searcher"), ("max_steps", "max_turns"),
                                      ("index", "index_dir")])
def test_eval_refuses_old_spellings_naming_the_new_one(old, new):
    with pytest.raises(ConfigError, match=f"'{old}' is now '{new}'"):
        validate(EvalSettings, {old: "3" if old == "max_steps" else "x"}, "eval.yaml")


@pytest.mark.parametrize("data, message", [
    ({"out": "x"}, "'out' is now 'output_dir'"),
    ({"output_dir": "x", "search": "bm25"}, "'search' is now 'agent.searcher'"),
    ({"output_dir": "x", "format": "xml"}, "'format' is now 'agent.format'"),
    ({"output_dir": "x", "index": "idx"}, "'index' is now 'agent.index_dir'"),
    ({"output_dir": "x", "agent": {"max_steps": 3}}, "agent: 'max_steps' is now 'max_turns'"),
])
def test_distill_refuses_old_spellings_naming_the_new_one(data, message):
    with pytest.raises(ConfigError, match=message):
        validate(DistillConfig, data, "distill.yaml")


@pytest.mark.parametrize("data, message", [
    ({"max_samples": 8}, "'max_samples' is now 'limit'"),
    ({"out": "x"}, "'out' is now 'output_dir'"),
    ({"agent": {"max_steps": 3}}, "agent: 'max_steps' is now 'max_turns'"),
    ({"agent": {"search": "bm25"}}, "agent: 'search' is now 'searcher'"),
    ({"agent": {"temperature": 0.5}}, "agent: 'temperature'.*set trainer.temperature"),
    ({"agent": {"attempts": 4}}, "agent: 'attempts'.*set trainer.num_generations"),
    ({"agent": {"max_tokens": 64}}, "agent: 'max_tokens'.*trainer.max_completion_length"),
])
def test_grpo_refuses_old_spellings_and_sampling_keys(data, message):
    with pytest.raises(ConfigError, match=message):
        validate(grpo_config(), {"task": "countdown", "output_dir": "x", **data}, "grpo.yaml")


def test_rrr_configs_take_limit():
    from selfimprove.workflows.rrr.experiment import ExperimentConfig
    from selfimprove.workflows.rrr.train import RRRConfig

    with pytest.raises(ConfigError, match="'max_samples' is now 'limit'"):
        validate(RRRConfig, {"failures": "f.jsonl", "output_dir": "x", "max_samples": 2})
    base = {"train_data": "generate:n=2,seed=1", "eval_data": "generate:n=2,seed=2", "output_dir": "x", "results": "r"}
    with pytest.raises(ConfigError, match="'max_train_samples' is now 'train_limit'"):
        validate(ExperimentConfig, {**base, "max_train_samples": 2})
    assert validate(RRRConfig, {"failures": "f.jsonl", "output_dir": "x", "limit": 2}).limit == 2


def test_set_overrides_and_recipe_stage_params_name_the_new_spelling(tmp_path):
    from selfimprove.workflows.pipeline.stages import check_params

    path = tmp_path / "grpo.yaml"
    path.write_text("task: countdown\noutput_dir: x\nrewards: [{name: countdown_correct}]\n")
    with pytest.raises(ConfigError, match="'max_samples' is now 'limit'"):
        load_config(path, grpo_config(), ["max_samples=4"])
    assert load_config(path, grpo_config(), ["limit=4"]).limit == 4
    with pytest.raises(ConfigError, match="'max_steps' is now 'max_turns'"):
        check_params("eval", {"task": "hotpotqa", "max_steps": 3}, "recipe stage baseline")
    with pytest.raises(ConfigError, match="'search' is now 'agent.searcher'"):
        check_params("distill", {"search": "bm25"}, "recipe stage distill")


def test_agent_settings_is_the_one_agent_block():
    import selfimprove.agent
    import selfimprove.train.grpo as grpo

    assert grpo_config().model_fields["agent"].annotation == AgentSettings | None
    assert DistillConfig.model_fields["agent"].annotation is AgentSettings
    assert selfimprove.agent.AgentSettings is AgentSettings and not hasattr(selfimprove.agent, "AgentConfig")
    assert not hasattr(grpo, "AgentRolloutSettings")
    built = agent_settings(EvalSettings(format="xml", max_turns=3, searcher="bm25", on_parse_error="end"), seed=7)
    assert isinstance(built, AgentSettings)
    assert (built.format, built.max_turns, built.on_parse_error, built.seed) == ("xml", 3, "end", 7)


def test_one_default_per_knob_across_eval_distill_and_grpo():
    grpo = validate(grpo_config(), {"task": "hotpotqa", "output_dir": "x", "agent": {"format": "react"}})
    blocks = [AgentSettings(), DistillConfig(output_dir="x").agent, grpo.agent,
              agent_settings(EvalSettings(), seed=0)]
    for block in blocks:
        assert (block.max_observation_chars, block.max_query_chars, block.search_k) == (500, 300, 2)
    assert grpo.agent.format == "react"  # any agent format name, not only xml
    defaults = validate(grpo_config(), {"task": "hotpotqa", "output_dir": "x", "agent": {}}).agent
    assert (defaults.format, defaults.max_turns) == ("xml", 3)  # GRPO's own defaults, as before


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("[gr]*/*.yaml")), ids=lambda p: p.name)
def test_every_shipped_grpo_and_rrr_config_loads(path):
    from selfimprove.workflows.rrr.experiment import ExperimentConfig
    from selfimprove.workflows.rrr.train import RRRConfig

    first = path.read_text().splitlines()[0]
    model = grpo_config() if "train grpo" in first else ExperimentConfig if "rrr experiment" in first else RRRConfig
    load_config(path, model)


@pytest.mark.parametrize("name", sorted(__import__("selfimprove.workflows.pipeline.recipe", fromlist=["x"]).shipped_recipes()))
def test_every_shipped_recipe_checks(name):
    from selfimprove.workflows.pipeline.recipe import load_recipe
    from selfimprove.workflows.pipeline.run_recipe import check_recipe_params

    for variant in [None, *load_recipe(name).variants]:
        check_recipe_params(load_recipe(name, variant=variant))
