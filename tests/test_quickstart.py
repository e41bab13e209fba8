"""The quickstart recipe end to end on the tiny model (the real run uses the embedded model)."""

from __future__ import annotations

import json

import pytest
import yaml

from selfimprove.workflows.pipeline.recipe import load_recipe, shipped_recipes
from selfimprove.workflows.pipeline.run_recipe import run_recipe


def tiny_quickstart(tmp_path, model_dir):
    data = yaml.safe_load(shipped_recipes()["quickstart"].read_text())
    stages = {stage["name"]: stage for stage in data["stages"]}
    for name in ("baseline", "after"):
        stages[name]["params"] = {**stages[name]["params"], "models": [str(model_dir)], "max_tokens": 8,
                                  "data": "generate:n=4,seed=1000,min_nums=3,max_nums=3"}
    stages["sft-data"]["params"]["data"] = "generate:n=8,seed=0,min_nums=3,max_nums=3"
    stages["sft"]["params"]["model"]["spec"] = str(model_dir)
    stages["sft"]["params"]["trainer"].update(per_device_train_batch_size=4, save_steps=1, logging_steps=1, max_length=2048)
    path = tmp_path / "quickstart.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_recipe(path)


@pytest.fixture(scope="module")
def quickstart_run(tmp_path_factory, tiny_model_dir):
    tmp_path = tmp_path_factory.mktemp("quickstart")
    out = tmp_path / "run"
    return out, run_recipe(tiny_quickstart(tmp_path, tiny_model_dir), out)


def test_quickstart_recipe_runs_end_to_end_on_tiny_model(quickstart_run, tiny_model_dir):
    out, results = quickstart_run
    assert results["sft-data"]["kept"] == 8
    assert (out / "sft" / "adapter" / "adapter_config.json").is_file()
    train = json.loads((out / "sft" / "train_summary.json").read_text())
    assert train["global_step"] == 2 and train["first_loss"] is not None
    after = json.loads((out / "after" / "summary.json").read_text())
    assert after["run"]["adapter"].endswith("adapter")
    for metric in ("correct", "format", "score"):
        assert (out / "report" / metric / "compare.md").is_file()
    assert set(results["baseline"]["overall"][str(tiny_model_dir)]) >= {"correct", "format", "score"}


def test_before_after_report_lists_every_shared_metric(quickstart_run):
    from selfimprove.workflows.pipeline.before_after import write_before_after

    path, text = write_before_after(quickstart_run[0])
    assert path.is_file()
    for metric in ("correct", "format", "score"):
        assert f"| {metric} |" in text
    assert "compare.png" in text
    assert "| 95% CI | n | verdict |" in text and "| within noise |" in text  # 4 tiny-model examples: noise
