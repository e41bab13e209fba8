"""The CPU variant of every shipped recipe, end to end, on the tiny model (slow: a few minutes).

Sizes come from each recipe's `cpu` variant; only the model is swapped for the tiny random one
(and, for araft, the teacher for a scripted ReAct agent, since a random model never writes a
parseable step). What is checked: every stage finished with a manifest, adapters were saved,
and the before/after comparison was written.
"""

from __future__ import annotations

import json

import pytest

from selfimprove.workflows.pipeline.recipe import load_recipe
from selfimprove.workflows.pipeline.run_recipe import run_recipe

pytestmark = pytest.mark.slow

EXTRA = {
    "araft": ["vars.teacher=scripted:recipe_scripts:react_teacher", "vars.threshold=0.0", "vars.distill_limit=3",
              "vars.eval_per_level=1", "vars.max_tokens=16", "vars.sft_steps=2", "vars.dpo_steps=2",
              "vars.max_length=8192"],  # the tiny tokenizer spends many tokens on the few-shot prompt
    "self-distill": ["vars.threshold=0.0", "vars.eval_per_level=1", "vars.max_tokens=16", "vars.warm_steps=2",
                     "vars.sft_steps=2", "vars.dpo_steps=2", "vars.max_length=8192"],
    "search-grpo": ["vars.eval_per_level=1", "vars.completion_tokens=8", "vars.steps=2", "vars.turns=2"],
    "refiner": [],
    "rrr-countdown": ["vars.max_tokens=16", "vars.reflection_tokens=8", "vars.steps=1"],
    "rrr-countdown-warm": ["vars.sft_n=16", "vars.sft_max_length=4096", "vars.max_tokens=16", "vars.reflection_tokens=8", "vars.steps=1"],
    "function-calling": ["vars.completion_tokens=16"],
    "grpo-countdown": ["vars.sft_n=16", "vars.sft_max_length=4096", "vars.train_n=8", "vars.eval_n=6", "vars.steps=1", "vars.max_tokens=16"],
}


def script_the_warmed_student(monkeypatch) -> list[str]:
    """self-distill: load the real tiny student with its warm-start adapter merged (the wiring under
    test), then let a scripted ReAct agent write its steps (a random model writes none that parse)."""
    import selfimprove.workflows.distill
    from recipe_scripts import react_teacher
    from selfimprove.models.scripted import ScriptedGenerator

    loaded, load_teacher = [], selfimprove.workflows.distill.load_teacher

    def scripted_after_loading(config, examples):
        teacher = load_teacher(config, examples)
        if config.teacher == "gold-path":
            return teacher
        loaded.append(teacher.name)
        return ScriptedGenerator(react_teacher)

    monkeypatch.setattr(selfimprove.workflows.distill, "load_teacher", scripted_after_loading)
    return loaded


@pytest.mark.parametrize("name", sorted(EXTRA))
def test_cpu_variant_runs_end_to_end(name, tmp_path, tiny_model_dir, monkeypatch):
    if name == "function-calling":
        pytest.importorskip("bfcl_eval", reason="BFCL data comes from the bfcl-eval package")
    loaded = script_the_warmed_student(monkeypatch) if name == "self-distill" else []
    recipe = load_recipe(name, [f"vars.model={tiny_model_dir}", *EXTRA[name]], variant="cpu")
    results = run_recipe(recipe, tmp_path)
    for stage in recipe.stages:
        manifest = json.loads((tmp_path / stage.name / "manifest.json").read_text())
        assert manifest["status"] == "done", stage.name
        assert stage.name in results
    trained = [s.name for s in recipe.stages if s.kind.startswith("train_")]
    for stage in trained:
        assert (tmp_path / stage / "adapter" / "adapter_config.json").is_file(), stage
    for stage in [s.name for s in recipe.stages if s.kind == "compare"]:
        assert list((tmp_path / stage).glob("*/compare.md")), stage
    if name == "self-distill":
        assert loaded == [f"{tiny_model_dir}+{tmp_path / 'warm' / 'adapter'}"]
    if name == "grpo-countdown":  # then the reward ablation: only its own stages run
        from selfimprove.workflows.pipeline.ablation import ablate

        ablated = ablate(recipe, "countdown_correct")
        run_recipe(ablated, tmp_path)
        assert (tmp_path / "ablate-countdown_correct-after" / "correct" / "compare.md").is_file()
        assert (tmp_path / "ablate-countdown_correct-forgetting-after" / "logprob" / "compare.md").is_file()
        assert (tmp_path / "forgetting" / "logprob" / "compare.md").is_file()
    if name == "rrr-countdown-warm":  # the experiment started from the SFT adapter, before and after
        result = json.loads((tmp_path / "rrr" / "results.json").read_text())
        assert result["start_adapter"] == str(tmp_path / "sft" / "adapter")
