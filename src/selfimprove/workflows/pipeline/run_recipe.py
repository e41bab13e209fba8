"""Run a recipe: each stage in its own directory, finished stages skipped, `--from` to restart.

`run_recipe(recipe, out_dir, from_stage=None)` resolves each stage's inputs to paths, skips
stages whose manifest is done with the same config and inputs, otherwise runs the stage
function (see `stages.py`) and records its outputs and timing. Before any stage runs, every
stage's params are validated and the train/eval overlap check (`overlap.py`) runs; its result is
written to `overlap.json` in the run directory, and a recipe allowed to overlap gets a warning
banner on top of every markdown report its stages write. A stage that fails leaves its
manifest at "running" with the error, and the exception propagates: the next run resumes there.
A stage whose manifest records another config or other inputs starts afresh (its directory is
emptied first), so a stage never resumes records written with other settings. The stage `--from` names
starts from an empty directory too (`set_aside`: the earlier files move to `STAGE.previous/`); the
stages after it re-run as before (resuming what they hold when their config and inputs are unchanged).
A crash during a `--from` run resumes with the same command without `--from`. The run directory
is locked (`RUN_DIR/.lock`) for the whole run: a second `selfimprove run` into it is refused.
Every stage directory and `STAGE:FILE` input is resolved and must lie inside the run directory.
"""

from __future__ import annotations

import json
import shutil
import time
import traceback
from pathlib import Path
from typing import Any

from rich.console import Console

from selfimprove.errors import ConfigError
from selfimprove.workflows.pipeline import manifest as mf
from selfimprove.workflows.pipeline.overlap import check_overlap, refuse_overlap
from selfimprove.workflows.pipeline.recipe import Recipe, Stage, is_stage_ref

console = Console(stderr=True)


def resolve_inputs(stage: Stage, out_dir: Path) -> dict[str, Path]:
    """Turn `STAGE:FILE` references into paths under the producing stage's directory."""
    resolved = {}
    for key, ref in stage.inputs.items():
        if is_stage_ref(ref):
            producer, _, rel = ref.partition(":")
            resolved[key] = confined(out_dir, out_dir / producer / rel if rel else out_dir / producer,
                                     f"stage {stage.name}: input '{key}' ({ref})")
        else:
            resolved[key] = Path(ref)
    return resolved


def confined(out_dir: Path, path: Path, what: str) -> Path:
    """`path` when it lies inside the run directory `out_dir` (after resolving `..` and links)."""
    root = out_dir.resolve()
    if not path.resolve().is_relative_to(root) or path.resolve() == root:
        raise ConfigError(f"{what}: {path} is not inside the run directory {out_dir}")
    return path


def stage_dir_of(out_dir: Path, stage: Stage) -> Path:
    return confined(out_dir, out_dir / stage.name, f"stage {stage.name!r}")


def start_afresh_if_changed(stage_dir: Path, config: dict, hashes: dict) -> None:
    """Empty a stage directory whose manifest records another config or other inputs."""
    manifest = mf.read_manifest(stage_dir)
    if manifest is None or (manifest.get("stage") == config and manifest.get("inputs") == hashes):
        return
    console.print(f"{stage_dir.name}: config or inputs changed since the last run: starting the stage afresh",
                  markup=False)
    shutil.rmtree(stage_dir)


def set_aside(stage_dir: Path) -> None:
    """`--from STAGE`: that stage starts from an empty directory (its library settings may have changed with the
    code, e.g. a new default, which its own run guard would refuse to resume); what an earlier run left there is
    moved to `STAGE.previous/` (replacing an older one), not deleted."""
    if not stage_dir.exists():
        return
    previous = stage_dir.with_name(stage_dir.name + ".previous")
    if previous.exists():
        shutil.rmtree(previous)
    stage_dir.rename(previous)
    console.print(f"{stage_dir.name}: --from: starting the stage afresh (the earlier run's files: {previous.name}/)",
                  markup=False)


def run_recipe(recipe: Recipe, out_dir: Path, from_stage: str | None = None) -> dict[str, dict[str, Any]]:
    """Run (or resume) a recipe; returns each stage's outputs by stage name."""
    from selfimprove.run_dir import exclusive

    out_dir = Path(out_dir)
    names = [s.name for s in recipe.stages]
    if from_stage is not None and from_stage not in names:
        raise ConfigError(f"--from {from_stage}: no such stage (stages: {', '.join(names)})")
    for stage in recipe.stages:  # before anything is written
        stage_dir_of(out_dir, stage)
        resolve_inputs(stage, out_dir)
    check_recipe_params(recipe)
    overlap = check_overlap(recipe)
    refuse_overlap(overlap, recipe)
    with exclusive(out_dir):
        return _run_recipe(recipe, out_dir, from_stage, overlap)


def _run_recipe(recipe: Recipe, out_dir: Path, from_stage: str | None, overlap: Any) -> dict[str, dict[str, Any]]:
    from selfimprove.workflows.pipeline.stages import STAGE_KINDS

    banner = overlap.warning()
    if banner:
        console.print(banner, markup=False, style="bold red")
    (out_dir / "overlap.json").write_text(json.dumps(overlap.to_dict(), indent=2) + "\n", encoding="utf-8")
    forced = False
    results: dict[str, dict[str, Any]] = {}
    for index, stage in enumerate(recipe.stages, start=1):
        forced = forced or stage.name == from_stage
        stage_dir = stage_dir_of(out_dir, stage)
        inputs = resolve_inputs(stage, out_dir)
        hashes = {key: mf.hash_path(path) for key, path in inputs.items()}
        config = stage.model_dump()
        header = f"[{index}/{len(recipe.stages)}] {stage.name} ({stage.kind})"
        if not forced and mf.is_done(stage_dir, config, hashes):
            console.print(f"{header}: done already, skipped", markup=False)
            results[stage.name] = (mf.read_manifest(stage_dir) or {}).get("outputs", {})
            continue
        _check_inputs_exist(stage, inputs)
        if stage.name == from_stage:
            set_aside(stage_dir)
        start_afresh_if_changed(stage_dir, config, hashes)
        console.print(header, style="bold", markup=False)
        results[stage.name] = _run_stage(STAGE_KINDS.get(stage.kind), stage, stage_dir, inputs, config, hashes)
        if banner:
            put_banner_on_reports(stage_dir, banner)
    return results


def put_banner_on_reports(stage_dir: Path, banner: str) -> None:
    """Prepend the overlap warning to every markdown report a stage wrote (once)."""
    for report in stage_dir.rglob("*.md"):
        text = report.read_text(encoding="utf-8")
        if not text.startswith(banner):
            report.write_text(f"{banner}\n\n{text}", encoding="utf-8")


def check_recipe_params(recipe: Recipe) -> None:
    """Validate every stage's params before anything runs (a typo fails in seconds, not hours)."""
    from selfimprove.workflows.pipeline.stages import check_params

    for stage in recipe.stages:
        check_params(stage.kind, stage.params, f"recipe {recipe.name}: stage {stage.name}")


def _check_inputs_exist(stage: Stage, inputs: dict[str, Path]) -> None:
    for key, path in inputs.items():
        if not path.exists():
            raise ConfigError(f"stage {stage.name}: input '{key}' ({path}) does not exist")


def _run_stage(fn, stage: Stage, stage_dir: Path, inputs: dict[str, Path], config: dict, hashes: dict) -> dict:
    manifest = mf.new_manifest(config, hashes)
    mf.write_manifest(stage_dir, manifest)
    start = time.perf_counter()
    try:
        outputs = fn(dict(stage.params), stage_dir, inputs) or {}
    except BaseException as exc:
        manifest["error"] = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        manifest["seconds"] = round(time.perf_counter() - start, 3)
        mf.write_manifest(stage_dir, manifest)
        raise
    manifest.update(status="done", seconds=round(time.perf_counter() - start, 3), outputs=outputs)
    mf.write_manifest(stage_dir, manifest)
    return outputs
