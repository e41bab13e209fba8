"""`selfimprove run RECIPE --ablate REWARD`: the ablated chain, its with/without compare, reuse of finished stages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from selfimprove.cli import app
from selfimprove.errors import ConfigError
from selfimprove.workflows.pipeline.ablation import ablate, reward_names
from selfimprove.workflows.pipeline.recipe import load_recipe
from selfimprove.workflows.pipeline.run_recipe import run_recipe
from selfimprove.workflows.pipeline.stages import STAGE_KINDS


def test_ablating_the_verifiable_reward_of_grpo_countdown():
    recipe = load_recipe("grpo-countdown", variant="cpu")
    ablated = ablate(recipe, "countdown_correct")
    by_name = {stage.name: stage for stage in ablated.stages}
    assert [s.model_dump() for s in ablated.stages[:len(recipe.stages)]] == [s.model_dump() for s in recipe.stages]
    added = [stage.name for stage in ablated.stages[len(recipe.stages):]]
    assert added == ["grpo-without-countdown_correct", "after-without-countdown_correct",
                     "report-without-countdown_correct", "forgetting-after-without-countdown_correct",
                     "forgetting-without-countdown_correct", "ablate-countdown_correct-after",
                     "ablate-countdown_correct-forgetting-after"]
    grpo = by_name["grpo-without-countdown_correct"]
    assert reward_names(grpo) == ["think_answer_format"] and grpo.inputs == {"adapter": "sft:"}
    assert {k: v for k, v in grpo.params.items() if k != "rewards"} == \
        {k: v for k, v in by_name["grpo"].params.items() if k != "rewards"}
    assert by_name["after-without-countdown_correct"].inputs == {"adapter": "grpo-without-countdown_correct:"}
    assert by_name["report-without-countdown_correct"].inputs == {"before": "before:",
                                                                  "after": "after-without-countdown_correct:"}
    compare = by_name["ablate-countdown_correct-after"]
    assert compare.kind == "compare"
    assert compare.inputs == {"with": "after:", "without": "after-without-countdown_correct:"}
    assert compare.params == {"order": ["with", "without"], "metrics": ["correct", "format", "score"]}
    assert by_name["ablate-countdown_correct-forgetting-after"].params["metrics"] == ["logprob"]
    assert by_name["forgetting-without-countdown_correct"].inputs == {
        "before": "forgetting-before:", "after": "forgetting-after-without-countdown_correct:"}


@pytest.mark.parametrize(("reward", "message"), [
    ("exact_match", "no stage of recipe grpo-countdown trains with it (rewards used: countdown_correct, think_answer_format)"),
])
def test_unknown_reward_is_refused_with_the_rewards_in_use(reward, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ablate(load_recipe("grpo-countdown", variant="cpu"), reward)


def test_ablating_the_only_reward_is_refused():
    recipe = load_recipe("function-calling", variant="cpu")
    with pytest.raises(ConfigError, match="stage grpo trains with no other reward"):
        ablate(recipe, "function_call_correct")


def test_check_through_the_cli_covers_the_ablated_stages():
    result = CliRunner().invoke(app, ["run", "grpo-countdown", "--variant", "cpu", "--ablate", "countdown_correct",
                                      "--check"])
    assert result.exit_code == 0, result.output
    assert "train grpo-without-countdown_correct (496 examples) x eval after-without-countdown_correct" in result.output
    assert "no train/eval overlap" in result.output


def write_recipe(tmp_path: Path) -> Path:
    rewards = [{"name": "countdown_correct"}, {"name": "countdown_format", "weight": 0.1}]
    path = tmp_path / "recipe.yaml"
    path.write_text(json.dumps({"name": "demo", "stages": [
        {"name": "grpo", "kind": "train_grpo", "params": {"rewards": rewards}},
        {"name": "after", "kind": "eval", "inputs": {"adapter": "grpo:"}},
        {"name": "report", "kind": "compare", "inputs": {"after": "after:"}, "params": {"metrics": ["correct"]}},
    ]}))
    return path


def test_a_finished_recipe_runs_only_the_ablation(tmp_path, monkeypatch):
    ran = []

    def fake_stage(params, stage_dir, inputs):
        ran.append((stage_dir.name, sorted(str(p.name) for p in inputs.values()), reward_names_of(params)))
        stage_dir.mkdir(parents=True, exist_ok=True)
        return {}

    for kind in ("train_grpo", "eval", "compare"):
        monkeypatch.setitem(STAGE_KINDS._loaded, kind, fake_stage)
    monkeypatch.setattr("selfimprove.workflows.pipeline.run_recipe.check_recipe_params", lambda recipe: None)
    monkeypatch.setattr("selfimprove.workflows.pipeline.run_recipe.check_overlap", lambda recipe: NoOverlap())
    monkeypatch.setattr("selfimprove.workflows.pipeline.run_recipe.refuse_overlap", lambda report, recipe: None)
    recipe = load_recipe(write_recipe(tmp_path))
    run_recipe(recipe, tmp_path / "out")
    assert [name for name, _, _ in ran] == ["grpo", "after", "report"]
    ran.clear()
    run_recipe(ablate(recipe, "countdown_correct"), tmp_path / "out")
    assert ran == [("grpo-without-countdown_correct", [], ["countdown_format"]),
                   ("after-without-countdown_correct", ["grpo-without-countdown_correct"], []),
                   ("report-without-countdown_correct", ["after-without-countdown_correct"], []),
                   ("ablate-countdown_correct-after", ["after", "after-without-countdown_correct"], [])]


class NoOverlap:
    """What the overlap check reports for stages without data (the fake stages here read none)."""

    clean = ok = True

    def warning(self) -> str:
        return ""

    def to_dict(self) -> dict:
        return {"pairs": []}


def reward_names_of(params: dict) -> list[str]:
    return [entry["name"] for entry in params.get("rewards", [])]


def test_a_chain_of_training_stages_is_ablated_whole(tmp_path):
    rewards = [{"name": "countdown_correct"}, {"name": "think_answer_format", "weight": 0.1}]
    path = tmp_path / "chain.yaml"
    path.write_text(json.dumps({"name": "chain", "stages": [
        {"name": "g1", "kind": "train_grpo", "params": {"rewards": rewards}},
        {"name": "g2", "kind": "train_grpo", "inputs": {"adapter": "g1:"}, "params": {"rewards": rewards}},
        {"name": "e", "kind": "eval", "inputs": {"adapter": "g2:"}},
        {"name": "lk", "kind": "likelihood", "inputs": {"adapter": "g2:"}},
    ]}))
    by_name = {s.name: s for s in ablate(load_recipe(path), "countdown_correct").stages}
    second = by_name["g2-without-countdown_correct"]
    assert second.inputs == {"adapter": "g1-without-countdown_correct:"}
    assert reward_names(second) == reward_names(by_name["g1-without-countdown_correct"]) == ["think_answer_format"]
    assert by_name["e-without-countdown_correct"].inputs == {"adapter": "g2-without-countdown_correct:"}
    assert by_name["ablate-countdown_correct-lk"].params["metrics"] == ["logprob"]


@pytest.mark.parametrize("key", ["reward_weights", "push_to_hub"])
def test_trainer_settings_the_copy_cannot_keep_are_refused(tmp_path, key):
    path = tmp_path / "r.yaml"
    value = [1.0, 0.1] if key == "reward_weights" else True
    path.write_text(json.dumps({"name": "r", "stages": [{"name": "g", "kind": "train_grpo", "params": {
        "rewards": ["countdown_correct", "think_answer_format"], "trainer": {key: value}}}]}))
    with pytest.raises(ConfigError, match=f"stage g sets trainer.{key}"):
        ablate(load_recipe(path), "countdown_correct")
