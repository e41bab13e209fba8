"""The eval harness end to end with scripted generators (agent and single-turn), kill-and-resume,
and the CLI (`selfimprove eval`, `report compare`, `report view`) on the tiny random model."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from selfimprove.cli import app
from selfimprove.data.jsonl import read_jsonl
from selfimprove.errors import UserError
from selfimprove.eval.harness import EvalSettings, run_eval, trajectory_path
from selfimprove.models.scripted import ScriptedGenerator
from selfimprove.tasks import get_task

DEMO = get_task("hotpotqa").load(None)
GOLD = {example.question: example.answer for example in DEMO}
EASY = {example.question for example in DEMO if example.meta["level"] == "easy"}


def react_script(conversation, index):
    """Search once, then answer: right on easy questions, wrong elsewhere."""
    user = "\n".join(m["content"] for m in conversation[1:])  # question + the ReAct scratchpad (prefill)
    question = user.split("Question: ", 1)[1].split("\n", 1)[0]
    if "Observation:" not in user:
        return f"Thought: look it up.\nAction: [action: Search, action_input: {question[:40]}]"
    answer = GOLD[question] if question in EASY else "certainly not this"
    return f"Thought: found it.\nAction: [action: Answer, action_input: {answer}]"


def scripted_factory(calls):
    def factory(spec):
        calls.append(spec)
        return ScriptedGenerator(react_script, name=spec)
    return factory


def test_agent_eval_gives_the_level_table_and_all_outputs(tmp_path):
    settings = EvalSettings(output_dir=str(tmp_path), repeats=2, models=["a", "b"], seed=3)
    summary = run_eval(settings, generator_factory=scripted_factory([]))
    levels = summary["models"]["a"]["by_level"]
    assert levels["easy"]["metrics"]["f1"]["mean"] == 1.0
    assert levels["hard"]["metrics"]["em"]["mean"] == 0.0
    assert levels["all"]["metrics"]["f1"] == {"mean": pytest.approx(1 / 3), "std": 0.0, "n": 2}
    assert levels["all"]["count"] == 30 and summary["models"]["b"]["repeats"] == 2
    assert summary["models"]["a"]["behaviour"]["steps_per_episode"]["mean"] == 2.0
    assert summary["models"]["a"]["pass_at_k"]["2"] == pytest.approx(1 / 3)
    assert len(read_jsonl(tmp_path / "records.jsonl")) == 2 * 2 * 30
    for name in ("summary.json", "summary.md", "levels.png", "pass_at_k.png"):
        assert (tmp_path / name).is_file(), name
    assert "| a | 100.0 ± 0.0 | 0.0 ± 0.0 | 0.0 ± 0.0 | 33.3 ± 0.0 |" in (tmp_path / "summary.md").read_text()
    assert json.loads((tmp_path / "summary.json").read_text())["run"]["format"] == "react"


def test_repeats_use_different_seeds(tmp_path):
    run_eval(EvalSettings(output_dir=str(tmp_path), repeats=2, models=["a"], seed=5, limit=2),
             generator_factory=scripted_factory([]))
    seeds = [read_jsonl(trajectory_path(tmp_path, "a", r))[0]["generation"]["seed"] for r in range(2)]
    assert seeds == [5, 1005]


class Killed(RuntimeError):
    pass


def test_killed_eval_resumes_without_duplicates_or_rework(tmp_path):
    settings = EvalSettings(output_dir=str(tmp_path), repeats=2, models=["a"], limit=6, batch_size=2,
                            format="single", task="countdown")
    task = get_task("countdown")
    solutions = {task.render(ex)[-1]["content"]: ex.meta["solution"] for ex in task.load(None, limit=6)}
    prompts_seen = []

    def solver(conversation, index):
        prompts_seen.append(conversation[-1]["content"])
        if len(prompts_seen) == 9:
            raise Killed("simulated kill in the middle of repeat 1")
        return f"<think>easy</think><answer>{solutions[conversation[-1]['content']]}</answer>"

    with pytest.raises(Killed):
        run_eval(settings, generator_factory=lambda spec: ScriptedGenerator(solver, name=spec))
    written = len(read_jsonl(trajectory_path(tmp_path, "a", 1)))
    assert written == 2  # repeat 0 (6) done, repeat 1 got one batch of 2 before the kill
    summary = run_eval(settings, generator_factory=lambda spec: ScriptedGenerator(solver, name=spec))
    assert len(prompts_seen) == 9 + 4  # only the 4 missing examples were generated again
    for repeat in range(2):
        ids = [t["example_id"] for t in read_jsonl(trajectory_path(tmp_path, "a", repeat))]
        assert sorted(ids) == sorted(set(ids)) and len(ids) == 6
    assert summary["models"]["a"]["by_level"]["all"]["metrics"]["correct"]["mean"] == 1.0
    assert "## SCORE by level" in (tmp_path / "summary.md").read_text()


def test_finished_eval_does_not_load_the_model_again(tmp_path):
    calls = []
    settings = EvalSettings(output_dir=str(tmp_path), models=["a"], limit=3)
    run_eval(settings, generator_factory=scripted_factory(calls))
    run_eval(settings, generator_factory=scripted_factory(calls))
    assert calls == ["a"]


def test_cli_eval_compare_and_view_on_the_tiny_model(tmp_path, tiny_model_dir):
    runner = CliRunner()
    result = runner.invoke(app, ["eval", "--model", str(tiny_model_dir), "--limit", "2", "--max-turns", "1",
                                 "--max-tokens", "4", "--seed", "1", "--out", str(tmp_path / "run-a")])
    assert result.exit_code == 0, result.output
    assert "| model | easy (n=2) | all (n=2) |" in result.output
    run_eval(EvalSettings(output_dir=str(tmp_path / "run-b"), models=["scripted"], limit=2),
             generator_factory=scripted_factory([]))
    result = runner.invoke(app, ["report", "compare", str(tmp_path / "run-a"), str(tmp_path / "run-b"),
                                 "--out", str(tmp_path / "cmp")])
    assert result.exit_code == 0, result.output
    assert "| run-b | scripted | 100.0 (+100.0) | 100.0 (+100.0) |" in result.output
    assert (tmp_path / "cmp" / "compare.png").is_file()
    trajectories = sorted((tmp_path / "run-a" / "trajectories").glob("*/*.jsonl"))
    result = runner.invoke(app, ["report", "view", *map(str, trajectories), "--out", str(tmp_path / "v.html")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "v.html").read_text().count('"question": ') == 2


def test_cli_errors_are_one_line(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["report", "compare", str(tmp_path / "missing"), str(tmp_path)])
    assert result.exit_code == 2 and result.stderr.startswith("error:") and "no eval summary" in result.stderr
    result = runner.invoke(app, ["eval", "--format", "react", "--adapter", str(tmp_path), "--out", str(tmp_path),
                                 "--model", "smollm2-135m", "--limit", "1"])
    assert result.exit_code == 2 and "not a PEFT adapter directory" in result.stderr


def test_reflection_run_reports_first_and_second_try(tmp_path):
    task = get_task("countdown")
    examples = task.load(None, limit=4)
    solutions = {task.render(ex)[-1]["content"]: ex.meta["solution"] for ex in examples}
    fixable = {task.render(ex)[-1]["content"] for ex in examples[:2]}  # examples 0, 1: wrong, then right

    def solver(conversation, index):
        prompt = conversation[1]["content"]
        if len(conversation) == 2:  # first try: system + task
            return "<answer>1 + 1</answer>" if prompt in fixable else f"<answer>{solutions[prompt]}</answer>"
        if len(conversation) == 4:  # + failed attempt + reflection request
            return "I used the wrong numbers </script>."
        return f"<answer>{solutions[prompt]}</answer>"  # the retry

    settings = EvalSettings(task="countdown", format="single", reflect=True, output_dir=str(tmp_path), limit=4,
                            models=["s"], batch_size=3)
    summary = run_eval(settings, generator_factory=lambda spec: ScriptedGenerator(solver, name=spec))
    attempts = summary["models"]["s"]["attempts"]
    assert attempts["first_try"]["mean"] == 0.5 and attempts["second_try"]["mean"] == 1.0
    stored = read_jsonl(trajectory_path(tmp_path, "s", 0))
    assert sorted((t["example_id"], t["attempt"]) for t in stored)[:3] == [
        (examples[0].id, 0), (examples[0].id, 1), (examples[1].id, 0)]
    assert {t["meta"].get("reflection") for t in stored if t["attempt"] == 1} == {"I used the wrong numbers </script>."}
    assert "| s | 50.0 ± 0.0 | 100.0 ± 0.0 |" in (tmp_path / "summary.md").read_text()


def test_reflection_needs_single_turn(tmp_path):
    with pytest.raises(UserError, match="--reflect"):
        run_eval(EvalSettings(reflect=True, output_dir=str(tmp_path), limit=1), generator_factory=scripted_factory([]))


@pytest.mark.slow
def test_embedded_model_eval_end_to_end(tmp_path):
    summary = run_eval(EvalSettings(output_dir=str(tmp_path), models=["smollm2-135m"], per_level=1, max_turns=2,
                                    max_tokens=48, repeats=2))
    model = summary["models"]["smollm2-135m"]
    assert model["records"] == 6 and list(model["by_level"]) == ["easy", "medium", "hard", "all"]
    assert model["tokens"]["prompt"]["mean"] > 500  # the 3-shot ReAct prompt was really tokenised
    assert 0.0 <= model["by_level"]["all"]["metrics"]["f1"]["mean"] <= 1.0


def test_repeats_split_across_processes_then_summarised(tmp_path):
    calls = []
    split = EvalSettings(output_dir=str(tmp_path), models=["a"], limit=3, repeats=2, only_repeats=[1])
    summary = run_eval(split, generator_factory=scripted_factory(calls))
    assert not trajectory_path(tmp_path, "a", 0).exists() and summary["models"]["a"]["repeats"] == 1
    summary = run_eval(split.model_copy(update={"only_repeats": None}), generator_factory=scripted_factory(calls))
    assert summary["models"]["a"]["repeats"] == 2 and len(read_jsonl(trajectory_path(tmp_path, "a", 1))) == 3
    assert calls == ["a", "a"]  # the second run only ran repeat 0
