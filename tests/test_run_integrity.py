"""Runs do not mix: other settings, a second process, duplicate ids, stage names outside the run dir.

Every resumable command records its settings in `OUT/run.json` and refuses to resume other ones
(unless `overwrite`), holds `OUT/.lock` while it runs (a second process is refused, a lock left by
a killed process is taken over), task loaders refuse duplicate example ids, and recipe stages stay
inside the run directory. Scripted generators only; no model is loaded.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from selfimprove.errors import ConfigError, DataError

HERE = Path(__file__).parent
HOLD = ("import sys, time\nfrom selfimprove.run_dir import exclusive\n"
        "with exclusive(sys.argv[1], name=sys.argv[2]):\n    print('held', flush=True)\n    time.sleep(60)\n")


def distill_config(out: Path, threshold: float = 1.0, overwrite: bool = False):
    from selfimprove.agent import AgentSettings
    from selfimprove.workflows.distill import DistillConfig

    return DistillConfig(output_dir=str(out), limit=8, metric="f1", threshold=threshold,
                         agent=AgentSettings(attempts=2, temperature=0.7, progress=False),
                         **({"overwrite": True} if overwrite else {}))


def run_distill(out: Path, threshold: float = 1.0, overwrite: bool = False) -> dict:
    """The same run as tests/distill_entry.py (scripted teacher: even questions right, odd wrong)."""
    from distill_entry import EchoSearcher, teacher
    from selfimprove.tasks import get_task
    from selfimprove.workflows.distill import distill

    examples = get_task("hotpotqa").load(None)[:8]
    return distill(distill_config(out, threshold, overwrite), generator=teacher(examples, 0.0),
                   searcher=EchoSearcher())


def keys(path: Path) -> Counter:
    return Counter((r["example_id"], r["attempt"]) for r in map(json.loads, path.read_text().splitlines()))


def start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, *args], cwd=HERE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def wait_for(condition, process: subprocess.Popen, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def hold_lock(out: Path, name: str = ".lock") -> subprocess.Popen:
    """Another process holding the lock on `out` until killed."""
    holder = start(["-c", HOLD, str(out), name])
    assert holder.stdout.readline().strip() == "held"
    return holder


# --- other settings --------------------------------------------------------------------------


def test_distill_rerun_with_another_threshold_is_refused_and_names_it(tmp_path):
    run_distill(tmp_path, threshold=0.0)
    kept_before = (tmp_path / "kept.jsonl").read_text()
    with pytest.raises(ConfigError, match=r"threshold: 0\.0 -> 1\.0"):
        run_distill(tmp_path, threshold=1.0)
    assert (tmp_path / "kept.jsonl").read_text() == kept_before
    assert json.loads((tmp_path / "summary.json").read_text())["threshold"] == 0.0


def test_distill_with_another_teacher_is_refused(tmp_path):
    from selfimprove.workflows.distill import distill

    run_distill(tmp_path)
    with pytest.raises(ConfigError, match=r'teacher: "smollm2-135m" -> "gold-path"'):
        distill(distill_config(tmp_path).model_copy(update={"teacher": "gold-path"}))


def test_overwrite_starts_afresh_and_summary_matches_kept(tmp_path):
    run_distill(tmp_path, threshold=0.0)
    summary = run_distill(tmp_path, threshold=1.0, overwrite=True)
    kept = [json.loads(line) for line in (tmp_path / "kept.jsonl").read_text().splitlines()]
    assert summary["threshold"] == 1.0 and summary["kept"] == len(kept) == 8  # even questions, 2 attempts
    assert all(record["score"]["breakdown"]["f1"] >= 1.0 for record in kept)
    assert sum(keys(tmp_path / "attempts.jsonl").values()) == summary["tried"] == 16


def test_same_settings_resume_and_the_manifest_records_them(tmp_path):
    from selfimprove.run_dir import read_run, settings_fingerprint
    from selfimprove.workflows.distill import run_settings

    run_distill(tmp_path)
    (tmp_path / "summary.json").unlink()
    summary = run_distill(tmp_path)
    assert summary["tried"] == 16 and set(keys(tmp_path / "attempts.jsonl").values()) == {1}
    manifest = read_run(tmp_path)
    assert manifest["command"] == "distill" and manifest["settings"]["threshold"] == 1.0
    assert manifest["fingerprint"] == settings_fingerprint(run_settings(distill_config(tmp_path)))


def test_outputs_without_a_manifest_are_not_resumed(tmp_path):
    (tmp_path / "attempts.jsonl").write_text("")
    with pytest.raises(ConfigError, match="no run.json.*--overwrite"):
        run_distill(tmp_path)
    assert run_distill(tmp_path, overwrite=True)["tried"] == 16


def test_a_run_that_fails_before_writing_leaves_no_manifest(tmp_path):
    from selfimprove.errors import UserError
    from selfimprove.workflows.distill import distill

    with pytest.raises(UserError):
        distill(distill_config(tmp_path / "run").model_copy(update={"teacher": "no-such-model-xyz"}))
    assert not (tmp_path / "run").exists()


def countdown_reply(conversation, sample) -> str:
    return "<answer>1 + 2</answer>"


def test_eval_and_failures_reruns_with_other_settings_are_refused(tmp_path):
    from selfimprove.eval.harness import EvalSettings, run_eval
    from selfimprove.models.scripted import ScriptedGenerator
    from selfimprove.tasks import get_task
    from selfimprove.workflows.rrr.failures import FailureSettings, collect_failures

    settings = EvalSettings(task="countdown", data="generate:n=4,seed=1", models=["scripted"], format="single",
                            output_dir=str(tmp_path / "eval"))
    factory = lambda spec: ScriptedGenerator(countdown_reply)  # noqa: E731
    run_eval(settings, generator_factory=factory)
    with pytest.raises(ConfigError, match=r"temperature: 0\.0 -> 0\.2"):
        run_eval(settings.model_copy(update={"temperature": 0.2}), generator_factory=factory)
    run_eval(settings.model_copy(update={"temperature": 0.2, "overwrite": True}), generator_factory=factory)

    task = get_task("countdown")
    examples = task.load("generate:n=4,seed=1")
    collect_failures(task, examples, ScriptedGenerator(countdown_reply), FailureSettings(k=2), tmp_path / "f",
                     progress=False)
    with pytest.raises(ConfigError, match="k: 2 -> 3"):
        collect_failures(task, examples, ScriptedGenerator(countdown_reply), FailureSettings(k=3), tmp_path / "f",
                         progress=False)


def test_training_resume_with_other_settings_is_refused(tmp_path):
    from selfimprove.train.config import TrainConfig
    from selfimprove.train.outputs import training_run

    config = TrainConfig(data="rows.jsonl", output_dir=str(tmp_path), trainer={"learning_rate": 1e-4})
    with training_run(config, resume=False, command="train sft"):
        pass
    longer = config.model_copy(update={"trainer": {"learning_rate": 1e-4, "max_steps": 9}})
    with training_run(longer, resume=True, command="train sft"):  # extending the step budget is a resume
        pass
    other = config.model_copy(update={"trainer": {"learning_rate": 1e-2}})
    with pytest.raises(ConfigError, match=r"trainer.learning_rate: 0\.0001 -> 0\.01"), \
            training_run(other, resume=True, command="train sft"):
        pass


# --- two processes ---------------------------------------------------------------------------


def test_a_second_distill_on_the_same_out_is_refused_and_the_first_writes_each_key_once(tmp_path):
    first = start([str(HERE / "distill_entry.py"), str(tmp_path), "0.05"])
    try:
        wait_for(lambda: (tmp_path / "attempts.jsonl").is_file(), first)
        with pytest.raises(ConfigError, match=rf"is in use by process {first.pid} .*another --out"):
            run_distill(tmp_path)
        assert first.wait(timeout=120) == 0, first.communicate()
    finally:
        first.kill()
    assert set(keys(tmp_path / "attempts.jsonl").values()) == {1} and len(keys(tmp_path / "attempts.jsonl")) == 16
    assert json.loads((tmp_path / "summary.json").read_text())["tried"] == 16


def test_a_lock_left_by_a_killed_process_is_taken_over(tmp_path):
    first = start([str(HERE / "distill_entry.py"), str(tmp_path), "0.05"])
    try:
        wait_for(lambda: (tmp_path / "attempts.jsonl").is_file() and (tmp_path / "attempts.jsonl").stat().st_size,
                 first)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        first.kill()
    assert f'"pid": {first.pid}' in (tmp_path / ".lock").read_text()  # the stale holder's text is still there
    summary = run_distill(tmp_path)
    assert summary["tried"] == 16 and set(keys(tmp_path / "attempts.jsonl").values()) == {1}
    assert (tmp_path / ".lock").read_text() == ""  # released


def _eval(out: Path):
    from selfimprove.eval.harness import EvalSettings, run_eval
    from selfimprove.models.scripted import ScriptedGenerator

    run_eval(EvalSettings(task="countdown", data="generate:n=2,seed=1", models=["scripted"], format="single",
                          output_dir=str(out)), generator_factory=lambda spec: ScriptedGenerator(countdown_reply))


def _failures(out: Path):
    from selfimprove.models.scripted import ScriptedGenerator
    from selfimprove.tasks import get_task
    from selfimprove.workflows.rrr.failures import FailureSettings, collect_failures

    task = get_task("countdown")
    collect_failures(task, task.load("generate:n=2,seed=1"), ScriptedGenerator(countdown_reply),
                     FailureSettings(k=2), out, progress=False)


def _agent_run(out: Path):
    from typer.testing import CliRunner

    from selfimprove.cli import app

    result = CliRunner().invoke(app, ["agent", "run", "--model", "scripted:recipe_scripts:react_teacher",
                                      "--limit", "1", "--out", str(out)])
    assert result.exit_code == 2, result.output
    raise ConfigError(f"{result.exception} {result.output}")  # the CLI's one-line error (or the exception)


def _train(out: Path):
    from selfimprove.train.config import TrainConfig
    from selfimprove.train.outputs import training_run

    with training_run(TrainConfig(data="rows.jsonl", output_dir=str(out)), resume=False, command="train sft"):
        pass


@pytest.mark.parametrize("run", [_eval, _failures, _agent_run, _train])
def test_every_resumable_command_refuses_a_locked_out(tmp_path, run):
    holder = hold_lock(tmp_path)
    try:
        with pytest.raises(ConfigError, match=rf"in use by process {holder.pid} "):
            run(tmp_path)
    finally:
        holder.kill()
        holder.wait()
    assert not list(tmp_path.glob("*.jsonl"))


def test_convert_refuses_an_output_being_written(tmp_path):
    from typer.testing import CliRunner

    from selfimprove.cli import app

    run_distill(tmp_path / "distill", threshold=0.0)
    source = tmp_path / "distill" / "kept.jsonl"
    holder = hold_lock(tmp_path, ".sft.jsonl.lock")
    try:
        result = CliRunner().invoke(app, ["convert", "sft", "--in", str(source), "--out", str(tmp_path / "sft.jsonl")])
    finally:
        holder.kill()
        holder.wait()
    assert result.exit_code == 2 and f"in use by process {holder.pid}" in str(result.exception) + result.output
    assert not (tmp_path / "sft.jsonl").exists()


def test_split_eval_repeats_share_the_out_but_a_plain_run_is_refused(tmp_path):
    from selfimprove.eval.harness import EvalSettings, run_eval
    from selfimprove.models.scripted import ScriptedGenerator

    holder = hold_lock(tmp_path, ".lock-repeat-1")  # another process running repeat 1 only
    settings = EvalSettings(task="countdown", data="generate:n=2,seed=1", models=["scripted"], format="single",
                            repeats=2, only_repeats=[0], output_dir=str(tmp_path))
    factory = lambda spec: ScriptedGenerator(countdown_reply)  # noqa: E731
    try:
        run_eval(settings, generator_factory=factory)
        with pytest.raises(ConfigError, match="in use by process"):
            run_eval(settings.model_copy(update={"only_repeats": None}), generator_factory=factory)
    finally:
        holder.kill()
        holder.wait()
    assert (tmp_path / "trajectories" / "scripted" / "repeat-0.jsonl").is_file()
    assert not (tmp_path / "trajectories" / "scripted" / "repeat-1.jsonl").exists()


# --- duplicate ids ---------------------------------------------------------------------------


def test_duplicate_example_ids_are_refused_with_the_ids_named(tmp_path):
    from selfimprove.tasks import get_task

    rows = [{"id": i, "nums": [1, 2], "target": 3} for i in ("a", "b", "a", "c", "b", "d")]
    path = tmp_path / "countdown.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    with pytest.raises(DataError, match=r"countdown.jsonl: duplicate example ids: a, b \(4 of 6 examples"):
        get_task("countdown").load(str(path))
    demo = json.loads((Path(__file__).parents[1] / "src/selfimprove/assets/hotpotqa/demo.json").read_text())
    hotpot = tmp_path / "hotpot.json"
    hotpot.write_text(json.dumps([*demo[:3], demo[0]]))
    with pytest.raises(DataError, match=f"duplicate example ids: {demo[0]['_id']} "):
        get_task("hotpotqa").load(str(hotpot))
    for task, source in (("hotpotqa", None), ("refiner", None), ("countdown", "generate:n=300,seed=7")):
        examples = get_task(task).load(source)  # the shipped and generated sets have unique ids
        assert len({e.id for e in examples}) == len(examples) > 0


# --- recipe stages stay inside the run dir ---------------------------------------------------


@pytest.mark.parametrize("name", ["../../x", "/abs", "a/b", "..", ""])
def test_stage_names_outside_the_run_dir_are_refused(tmp_path, name):
    from selfimprove.workflows.pipeline.recipe import load_recipe

    path = tmp_path / "recipe.yaml"
    path.write_text(json.dumps({"name": "r", "stages": [{"name": name, "kind": "eval", "params": {}}]}))
    with pytest.raises(ConfigError, match="stage name .* is not a plain name"):
        load_recipe(path)


def test_the_runner_confines_stages_and_inputs_even_without_the_loader(tmp_path):
    from selfimprove.workflows.pipeline.recipe import Recipe, Stage
    from selfimprove.workflows.pipeline.run_recipe import run_recipe

    out = tmp_path / "deep" / "run"
    for stage in (Stage(name="../../x", kind="eval"), Stage(name=str(tmp_path / "abs"), kind="eval"),
                  Stage(name="ok", kind="eval", inputs={"data": "ok:../../../x.jsonl"})):
        with pytest.raises(ConfigError, match="not inside the run directory"):
            run_recipe(Recipe(name="r", stages=[stage]), out)
    assert sorted(p.name for p in tmp_path.rglob("*")) == []  # nothing written anywhere


def test_stage_inputs_with_dotdot_are_refused_when_loading(tmp_path):
    from selfimprove.workflows.pipeline.recipe import load_recipe

    path = tmp_path / "recipe.yaml"
    path.write_text(json.dumps({"name": "r", "stages": [
        {"name": "a", "kind": "eval"}, {"name": "b", "kind": "eval", "inputs": {"x": "a:../../secret"}}]}))
    with pytest.raises(ConfigError, match="must be inside stage 'a'"):
        load_recipe(path)


def test_a_second_recipe_run_into_the_same_dir_is_refused(tmp_path):
    from selfimprove.workflows.pipeline.recipe import Recipe, Stage
    from selfimprove.workflows.pipeline.run_recipe import run_recipe

    holder = hold_lock(tmp_path)
    try:
        with pytest.raises(ConfigError, match=f"in use by process {holder.pid}"):
            run_recipe(Recipe(name="r", stages=[Stage(name="e", kind="eval")]), tmp_path)
    finally:
        holder.kill()
        holder.wait()


def _threshold_stage(params, stage_dir: Path, inputs) -> dict:
    return {"kept": run_distill(stage_dir, threshold=params["threshold"])["kept"]}


def test_a_recipe_stage_with_changed_params_starts_afresh(tmp_path):
    from selfimprove.workflows.pipeline.recipe import Recipe, Stage
    from selfimprove.workflows.pipeline.run_recipe import run_recipe
    from selfimprove.workflows.pipeline.stages import STAGE_KINDS

    if "integrity_distill" not in STAGE_KINDS.names():
        STAGE_KINDS.register("integrity_distill", _threshold_stage)
    for threshold in (0.0, 1.0):
        stage = Stage(name="distill", kind="integrity_distill", params={"threshold": threshold})
        outputs = run_recipe(Recipe(name="r", stages=[stage]), tmp_path)
    kept = [json.loads(line) for line in (tmp_path / "distill" / "kept.jsonl").read_text().splitlines()]
    assert outputs["distill"]["kept"] == len(kept) == 8
    assert all(record["score"]["breakdown"]["f1"] >= 1.0 for record in kept)
