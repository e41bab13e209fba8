"""The recipe runner: manifests, skipping finished stages, --from, crash then resume, validation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from selfimprove.data.jsonl import RecordStore
from selfimprove.errors import ConfigError
from selfimprove.workflows.pipeline.recipe import load_recipe
from selfimprove.workflows.pipeline.run_recipe import run_recipe
from selfimprove.workflows.pipeline.stages import STAGE_KINDS

CALLS: list[str] = []


class Crash(Exception):
    pass


def count_stage(params, stage_dir: Path, inputs):
    """Writes params['n'] records resumably; crashes after params['crash_after'] new ones if set."""
    CALLS.append(stage_dir.name)
    store = RecordStore(stage_dir / "records.jsonl", key=lambda r: r["i"])
    written = 0
    for i in range(params["n"]):
        if i in store:
            continue
        if params.get("crash_after") is not None and written == params["crash_after"]:
            raise Crash("simulated crash")
        store.append({"i": i})
        written += 1
    source = inputs.get("source")
    extra = len(source.read_text().splitlines()) if source else 0
    return {"records": len(store), "upstream": extra}


STAGE_KINDS.register("test_count", count_stage)


def write_recipe(tmp_path: Path, crash_after=None) -> Path:
    path = tmp_path / "recipe.yaml"
    second = {"n": 2} if crash_after is None else {"n": 4, "crash_after": crash_after}
    path.write_text(json.dumps({
        "name": "demo", "out": str(tmp_path / "out"),
        "stages": [
            {"name": "first", "kind": "test_count", "params": {"n": 3}},
            {"name": "second", "kind": "test_count", "params": second, "inputs": {"source": "first:records.jsonl"}},
        ],
    }))
    return path


def test_runs_stages_writes_manifests_and_skips_when_done(tmp_path):
    CALLS.clear()
    recipe = load_recipe(write_recipe(tmp_path))
    results = run_recipe(recipe, tmp_path / "out")
    assert results["second"] == {"records": 2, "upstream": 3}
    manifest = json.loads((tmp_path / "out" / "first" / "manifest.json").read_text())
    assert manifest["status"] == "done" and "torch" in manifest["versions"]
    run_recipe(recipe, tmp_path / "out")
    assert CALLS == ["first", "second"]
    left = tmp_path / "out" / "second" / "left-by-an-earlier-run.txt"
    left.write_text("x")
    assert run_recipe(recipe, tmp_path / "out", from_stage="second")["second"] == {"records": 2, "upstream": 3}
    assert CALLS == ["first", "second", "second"] and not left.exists()  # --from starts the stage afresh
    assert (tmp_path / "out" / "second.previous" / left.name).exists()  # the earlier files are set aside


def test_changed_input_reruns_downstream(tmp_path):
    CALLS.clear()
    recipe = load_recipe(write_recipe(tmp_path))
    run_recipe(recipe, tmp_path / "out")
    with (tmp_path / "out" / "first" / "records.jsonl").open("a") as handle:
        handle.write('{"i": 99}\n')
    run_recipe(recipe, tmp_path / "out")
    assert CALLS == ["first", "second", "second"]


def test_crash_then_resume_keeps_every_record_once(tmp_path):
    recipe = load_recipe(write_recipe(tmp_path, crash_after=2))
    with pytest.raises(Crash):
        run_recipe(recipe, tmp_path / "out")
    manifest = json.loads((tmp_path / "out" / "second" / "manifest.json").read_text())
    assert manifest["status"] == "running" and "simulated crash" in manifest["error"]
    recipe.stages[1].params["crash_after"] = None
    run_recipe(recipe, tmp_path / "out")
    lines = (tmp_path / "out" / "second" / "records.jsonl").read_text().splitlines()
    assert sorted(json.loads(x)["i"] for x in lines) == [0, 1, 2, 3]


@pytest.mark.parametrize(
    "stages, message",
    [
        ([{"name": "a", "kind": "nope"}], "unknown stage kind 'nope'"),
        ([{"name": "a", "kind": "test_count"}, {"name": "a", "kind": "test_count"}], "duplicate stage name"),
        ([{"name": "a", "kind": "test_count", "inputs": {"x": "later:f"}}], "not an earlier stage"),
        ([{"name": "a", "kind": "test_count", "color": 1}], "Extra inputs are not permitted"),
    ],
)
def test_bad_recipes_fail_before_running(tmp_path, stages, message):
    path = tmp_path / "r.yaml"
    path.write_text(json.dumps({"name": "bad", "stages": stages}))
    with pytest.raises(ConfigError, match=message):
        load_recipe(path)
