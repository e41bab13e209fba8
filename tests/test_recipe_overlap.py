"""Nothing trains on what it is judged on: fingerprints, de-duplicated generation, the recipe overlap check."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from selfimprove.cli import app
from selfimprove.errors import ConfigError, UserError
from selfimprove.tasks import get_task
from selfimprove.tasks.base import Example
from selfimprove.tasks.countdown.task import GeneratorConfig, generate_examples, make_example
from selfimprove.workflows.pipeline.overlap import check_overlap
from selfimprove.workflows.pipeline.recipe import load_recipe, shipped_recipes
from selfimprove.workflows.pipeline.run_recipe import put_banner_on_reports, run_recipe
from selfimprove.workflows.pipeline.stages import STAGE_KINDS

SHIPPED = [(name, variant) for name, path in shipped_recipes().items()
           for variant in [None, *load_recipe(path).variants]]


# ---------------------------------------------------------------- fingerprints


def test_fingerprints_ignore_ids_order_case_and_punctuation():
    countdown, hotpot, calls = get_task("countdown"), get_task("hotpotqa"), get_task("function_calling")
    assert countdown.fingerprint(make_example("a", [5, 1, 3], 15)) == countdown.fingerprint(make_example("b", [3, 5, 1], 15))
    assert countdown.fingerprint(make_example("a", [5, 1, 3], 15)) != countdown.fingerprint(make_example("a", [5, 1, 3], 16))
    assert hotpot.fingerprint(Example("x", "Who wrote  DUNE?", "")) == hotpot.fingerprint(Example("y", "who wrote dune", ""))
    tools_a, tools_b = [{"name": "f", "parameters": {"a": 1, "b": 2}}], [{"name": "g"}]
    same = calls.fingerprint(Example("1", "Add 2 and 3.", [], {"tools": tools_a}))
    assert same == calls.fingerprint(Example("2", "add 2 and 3", [], {"tools": [{"parameters": {"b": 2, "a": 1}, "name": "f"}]}))
    assert same != calls.fingerprint(Example("3", "Add 2 and 3.", [], {"tools": tools_b}))


def test_generated_countdown_sets_are_distinct_and_unchanged_when_they_had_no_repeats():
    narrow = GeneratorConfig(n=32, seed=2, min_nums=3, max_nums=3, max_number=6, max_target=20)
    task = get_task("countdown")
    examples = generate_examples(narrow)
    assert len({task.fingerprint(e) for e in examples}) == 32  # the old generator gave 28 distinct of 32
    assert [e.id for e in examples] == [f"countdown-2-{i}" for i in range(32)]
    quickstart_eval = generate_examples(GeneratorConfig(n=48, seed=1000, min_nums=3, max_nums=3))
    assert quickstart_eval[0].meta["nums"] and len({task.fingerprint(e) for e in quickstart_eval}) == 48
    with pytest.raises(UserError, match="distinct puzzles"):
        generate_examples(GeneratorConfig(n=500, seed=0, min_nums=2, max_nums=2, max_number=3, max_target=4))


# ---------------------------------------------------------------- shipped recipes


@pytest.mark.parametrize("name, variant", SHIPPED, ids=[f"{n}-{v or 'full'}" for n, v in SHIPPED])
def test_every_shipped_recipe_and_variant_has_zero_overlap(name, variant):
    report = check_overlap(load_recipe(name, variant=variant))
    assert report.ok, report.lines()
    assert report.pairs, "every shipped recipe trains and evaluates"
    assert all(not pair.shared_ids and not pair.unchecked for pair in report.pairs), report.lines()
    assert all(not evaluation.duplicates for evaluation in report.evaluations), report.lines()


# ---------------------------------------------------------------- a leaking recipe is refused


def leaking_recipe(tmp_path: Path, allow: bool = False, skip: bool = False) -> Path:
    """Araft as it was: eval on the demo, distil + SFT on the same demo questions."""
    distill = {"teacher": "scripted:recipe_scripts:react_teacher", "task": "hotpotqa"}
    if skip:
        distill["skip_eval_per_level"] = 2
    train = {"name": "sft", "kind": "train_sft", "inputs": {"data": "sft-data:sft.jsonl"},
             "params": {"model": {"spec": "does-not-exist/never-loaded"}}}
    if allow:
        train["allow_overlap"] = True
    path = tmp_path / "leaky.yaml"
    path.write_text(json.dumps({
        "name": "leaky", "out": str(tmp_path / "out"),
        "stages": [
            {"name": "baseline", "kind": "eval", "params": {"task": "hotpotqa", "models": ["scripted:x:y"], "per_level": 2}},
            {"name": "distill", "kind": "distill", "params": distill},
            {"name": "sft-data", "kind": "convert_sft", "inputs": {"trajectories": "distill:kept.jsonl"}},
            train,
        ],
    }))
    return path


def test_run_refuses_overlap_before_any_stage_runs(tmp_path):
    recipe = load_recipe(leaking_recipe(tmp_path))
    with pytest.raises(ConfigError) as caught:
        run_recipe(recipe, tmp_path / "out")
    message = str(caught.value)
    assert "'sft'" in message and "'baseline'" in message and "trains on 6 examples" in message
    assert message.count(", ") >= 2 and "allow_overlap" in message
    assert not (tmp_path / "out" / "baseline").exists()


def test_check_prints_one_line_per_pair_and_exits_2_on_overlap(tmp_path):
    result = CliRunner().invoke(app, ["run", str(leaking_recipe(tmp_path)), "--check"])
    assert result.exit_code == 2, result.output
    assert "train sft (30 examples) x eval baseline (6 examples): overlap=6" in result.output
    assert not (tmp_path / "out").exists()
    fixed = CliRunner().invoke(app, ["run", str(leaking_recipe(tmp_path, skip=True)), "--check"])
    assert fixed.exit_code == 0, fixed.output
    assert "overlap=0" in fixed.output


def test_shipped_recipe_check_through_the_cli():
    result = CliRunner().invoke(app, ["run", "araft", "--variant", "cpu", "--check"])
    assert result.exit_code == 0, result.output
    assert result.output.count("overlap=0") == 4


def test_allow_overlap_runs_records_and_warns(tmp_path, monkeypatch):
    report = check_overlap(load_recipe(leaking_recipe(tmp_path, allow=True)))
    assert report.ok and report.pairs[0].allowed and len(report.pairs[0].shared_ids) == 6
    assert "allow_overlap" in report.warning()
    ran = []

    def fake_stage(params, stage_dir, inputs):
        ran.append(stage_dir.name)
        stage_dir.mkdir(parents=True, exist_ok=True)
        (stage_dir / "report.md").write_text("# numbers\n", encoding="utf-8")
        for name in ("kept.jsonl", "sft.jsonl"):
            (stage_dir / name).write_text("", encoding="utf-8")
        return {}

    for kind in ("eval", "distill", "convert_sft", "train_sft"):
        monkeypatch.setitem(STAGE_KINDS._loaded, kind, fake_stage)
    recipe = load_recipe(leaking_recipe(tmp_path, allow=True))
    run_recipe(recipe, tmp_path / "out")
    assert ran == ["baseline", "distill", "sft-data", "sft"]
    assert json.loads((tmp_path / "out" / "overlap.json").read_text())["pairs"][0]["overlap"] == 6
    manifest = json.loads((tmp_path / "out" / "sft" / "manifest.json").read_text())
    assert manifest["stage"]["allow_overlap"] is True
    for stage in ran:
        assert (tmp_path / "out" / stage / "report.md").read_text().startswith("WARNING: allow_overlap")


def test_banner_is_put_once(tmp_path):
    (tmp_path / "a.md").write_text("body\n")
    put_banner_on_reports(tmp_path, "WARNING: x")
    put_banner_on_reports(tmp_path, "WARNING: x")
    assert (tmp_path / "a.md").read_text() == "WARNING: x\n\nbody\n"


def test_rrr_experiment_never_takes_failures_from_its_eval_problems():
    from selfimprove.workflows.rrr.experiment import ExperimentConfig, experiment_examples

    source = "generate:n=16,seed=1,min_nums=3,max_nums=3,max_number=6,max_target=20"
    other = "generate:n=16,seed=2,min_nums=3,max_nums=3,max_number=6,max_target=20"
    task, train, evaluation = experiment_examples(ExperimentConfig(train_data=source, eval_data=other,
                                                                   output_dir=".", results="."))
    held = {task.fingerprint(e) for e in evaluation}
    assert train and len(train) < 16 and not any(task.fingerprint(e) in held for e in train)
