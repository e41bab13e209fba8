"""Reflect-Retry-Reward: masks (only reflection tokens trained), reward wiring, failures, eval, configs."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from selfimprove.agent.reflect_retry import REFLECTION_PROMPT, reflection_conversation, retry_conversation
from selfimprove.data.jsonl import read_jsonl, write_jsonl
from selfimprove.eval.reflection import ReflectionSettings, evaluate_reflection
from selfimprove.models.scripted import ScriptedGenerator
from selfimprove.tasks import get_task
from selfimprove.workflows.rrr.failures import FailureSettings, collect_failures
from selfimprove.workflows.rrr.rollout import retry_correct, rrr_rollout_func

REPO = Path(__file__).resolve().parents[1]
SOLVE = "<answer>{solution}</answer>"


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="module")
def countdown():
    task = get_task("countdown")
    return task, task.load("generate:n=4,seed=0,min_nums=3,max_nums=3")


def rrr_prompt(task, example):
    return reflection_conversation(task.render(example), "<answer>1 + 1</answer>")


class ScriptedTrainer:
    """Stands in for GRPOTrainer in RRR's rollout_func: call 0 returns the reflection for every sequence, call 1 the retries."""

    def __init__(self, tokenizer, reflection: list[int], retries: list[list[int]]):
        self.processing_class, self.replies, self.calls = tokenizer, (reflection, retries), []
        self.max_completion_length = 64
        self.generation_config = SimpleNamespace(max_new_tokens=64)
        self.eos_token_ids = [tokenizer.eos_token_id]

    def _log_metric(self, name, value):  # GRPOTrainer's metric hook (pinned by the private-API contract test)
        self.metrics = {**getattr(self, "metrics", {}), name: value}

    def _generate_single_turn(self, sequences, images, multimodal_fields, num_generations):
        self.calls.append([list(s) for s in sequences])
        return ([self.replies[0]] * len(sequences) if len(self.calls) == 1 else self.replies[1]), None


def run_rrr_episodes(tokenizer, task, example, reflection: str, retries: list[str]):
    """One RRR rollout over len(retries) episodes of one failure point (same reflection, scripted retries)."""
    prompt = rrr_prompt(task, example)
    eos = [tokenizer.eos_token_id]
    reflection_ids = tokenizer.encode(reflection, add_special_tokens=False) + eos
    trainer = ScriptedTrainer(tokenizer, reflection_ids, [tokenizer.encode(r, add_special_tokens=False) + eos
                                                          for r in retries])
    output = rrr_rollout_func(extract=task.extract)([prompt] * len(retries), trainer)
    return output, trainer, reflection_ids, prompt


def test_only_reflection_tokens_are_trained(tokenizer, countdown):
    task, examples = countdown
    retry = SOLVE.format(solution=examples[0].meta["solution"])
    output, trainer, reflection, _ = run_rrr_episodes(tokenizer, task, examples[0], "I used 1 twice.", [retry])
    assert output["completion_ids"] == [reflection]  # exactly the sampled reflection (with its EOS)
    assert output["env_mask"] == [[1] * len(reflection)]  # all of it trained
    assert output["retry_completion"] == [retry]  # the retry fills the reward's column, outside the sequence
    assert output["retry_ended"] == [True] and output["num_turns"] == [2] and output["answered"] == [True]


def test_sequence_and_retry_context_follow_the_chat_template(tokenizer, countdown):
    task, examples = countdown
    output, trainer, _, prompt = run_rrr_episodes(tokenizer, task, examples[1], "Check the target.", ["<answer>3</answer>"])
    trained = tokenizer.decode(output["prompt_ids"][0] + output["completion_ids"][0])
    conversation = [*prompt, {"role": "assistant", "content": "Check the target."}]
    assert trained == tokenizer.apply_chat_template(conversation, tokenize=False).rstrip("\n")
    (retry_context,) = trainer.calls[1]
    expected = tokenizer.apply_chat_template(retry_conversation(prompt, "Check the target."), tokenize=False,
                                             add_generation_prompt=True)
    assert tokenizer.decode(retry_context) == expected


def test_reward_is_binary_on_the_retry_only(tokenizer, countdown):
    task, examples = countdown
    good = SOLVE.format(solution=examples[0].meta["solution"])
    output, *_ = run_rrr_episodes(tokenizer, task, examples[0], good, [good, "<answer>1</answer>"])
    row = task.to_row(examples[0])
    columns = {key: [row[key]] * 2 for key in ("example_id", "nums", "target")}
    logged = {}
    scores = retry_correct("countdown")(["ignored", "ignored"], retry_completion=output["retry_completion"],
                                        reflection_text=output["reflection_text"],
                                        reflection_ended=output["reflection_ended"], retry_ended=output["retry_ended"],
                                        log_metric=lambda k, v: logged.setdefault(k, v), **columns)
    assert scores == [1.0, 0.0]  # a correct equation inside the REFLECTION earns nothing
    assert logged["rrr/reflection_clipped_ratio"] == 0.0 and logged["rrr/retry_clipped_ratio"] == 0.0


def test_failures_keep_failed_attempts_and_resume(tmp_path, countdown):
    task, examples = countdown
    solved = examples[0].id

    samples = itertools.count()  # every sample differs, as sampling at temperature 0.9 would

    def script(conversation, index):
        example = next(e for e in examples if e.question in conversation[-1]["content"])
        return SOLVE.format(solution=example.meta["solution"]) if example.id == solved else f"wrong {next(samples)}"

    generator = ScriptedGenerator(script)
    settings = FailureSettings(k=3, per_example=2, batch_examples=2)
    summary = collect_failures(task, examples, generator, settings, tmp_path, progress=False)
    failures = read_jsonl(tmp_path / "failures.jsonl")
    assert summary["attempts"] == 12 and summary["examples_solved_at_least_once"] == 1
    assert len(failures) == 3 * 2 and all(not f["correct"] and f["example_id"] != solved for f in failures)
    assert failures[0]["row"]["prompt"] == task.render(examples[1])
    calls = len(generator.calls)
    collect_failures(task, examples, generator, settings, tmp_path, progress=False)
    assert len(generator.calls) == calls  # resumed: nothing sampled again
    assert len(read_jsonl(tmp_path / "attempts.jsonl")) == 12


def test_four_number_eval_counts_fixes_by_reflection(countdown):
    task, examples = countdown

    def script(conversation, index):
        last = conversation[-1]["content"]
        if last == REFLECTION_PROMPT:
            return "I should use each number once."
        example = next(e for e in examples if e.question in last)
        retrying = len(conversation) > 2 and conversation[-2]["role"] == "assistant"
        fixed = retrying and example.id == examples[1].id
        return SOLVE.format(solution=example.meta["solution"]) if example.id == examples[0].id or fixed else "no"

    result = evaluate_reflection(task, examples, ScriptedGenerator(script), ReflectionSettings())
    assert (result["first_try"], result["second_try"], result["fixed_by_reflection"]) == (0.25, 0.5, 1)
    assert result["records"][1]["reflection"] == "I should use each number once."
    assert "retry" not in result["records"][0]  # a first-try success is not retried


def test_train_rrr_rows_from_failures(tmp_path, countdown):
    from selfimprove.errors import DataError
    from selfimprove.workflows.rrr.train import failure_rows

    task, examples = countdown
    path = tmp_path / "failures.jsonl"
    write_jsonl(path, [{"example_id": examples[0].id, "row": task.to_row(examples[0]), "completion": "bad"}])
    rows = failure_rows(str(path), "Reflect!")
    assert rows[0]["prompt"][-2:] == [{"role": "assistant", "content": "bad"}, {"role": "user", "content": "Reflect!"}]
    assert rows[0]["nums"] == examples[0].meta["nums"]
    write_jsonl(path, [{"example_id": "x", "row": {"prompt": "not messages"}, "completion": "bad"}])
    with pytest.raises(DataError, match="row"):
        failure_rows(str(path), "Reflect!")


def test_shipped_rrr_configs_load_and_name_their_command():
    from trl import GRPOConfig

    from selfimprove.config import load_config
    from selfimprove.train.config import trainer_arguments
    from selfimprove.workflows.rrr.experiment import ExperimentConfig
    from selfimprove.workflows.rrr.train import RRRConfig

    paths = sorted((REPO / "configs" / "rrr").glob("*.yaml"))
    assert paths
    for path in paths:
        first = path.read_text().splitlines()[0]
        assert first.startswith("# selfimprove ") and f"configs/rrr/{path.name}" in first
        model = ExperimentConfig if " rrr experiment " in first else RRRConfig
        config = load_config(path, model)
        trainer_arguments(GRPOConfig, {}, config.trainer)


def test_rrr_training_step_masks_everything_but_the_reflection(tiny_model_dir, tmp_path, monkeypatch, countdown):
    from trl import GRPOTrainer

    from selfimprove.workflows.rrr import rollout as rrr_rollout
    from selfimprove.workflows.rrr.train import RRRConfig, train_rrr

    task, examples = countdown
    write_jsonl(tmp_path / "f.jsonl", [{"example_id": e.id, "row": task.to_row(e), "completion": "<answer>1</answer>"}
                                       for e in examples[:2]])
    captured: dict[str, list] = {"rollouts": [], "outputs": []}
    make = rrr_rollout.rrr_rollout_func

    def spy_rollout(*args):
        inner = make(*args)

        def rollout(prompts, trainer):
            output = inner(prompts, trainer)
            captured["rollouts"].append(output)
            return output

        return rollout

    original = GRPOTrainer._generate_and_score_completions

    def spy_scoring(self, inputs):
        output = original(self, inputs)
        captured["outputs"].append(output)
        return output

    monkeypatch.setattr(rrr_rollout, "rrr_rollout_func", spy_rollout)
    monkeypatch.setattr(GRPOTrainer, "_generate_and_score_completions", spy_scoring)
    config = RRRConfig(failures=str(tmp_path / "f.jsonl"), output_dir=str(tmp_path / "run"),
                       model={"spec": str(tiny_model_dir), "lora": {"r": 4, "alpha": 8}},
                       trainer={"max_steps": 1, "num_generations": 2, "per_device_train_batch_size": 2,
                                "max_completion_length": 6, "gradient_checkpointing": False})
    summary = train_rrr(config)
    assert summary["global_step"] == 1
    rollout, output = captured["rollouts"][0], captured["outputs"][0]
    loss_mask = (output["completion_mask"] * output["tool_mask"]).tolist()
    for row, ids, env_mask in zip(loss_mask, rollout["completion_ids"], rollout["env_mask"], strict=True):
        trained = [i for i, m in enumerate(row) if m]
        assert trained == [i for i, m in enumerate(env_mask) if m]  # TRL trains exactly the reflection positions
        assert 0 < len(trained) == len(ids) <= 6  # the sequence is the reflection; the retry is sampled apart
    health = json.loads(Path(summary["health"]).read_text().splitlines()[0])
    assert health["rewards/retry_correct/mean"] == 0.0 and "rrr/reflection_clipped_ratio" in health
    from selfimprove.models.adapters import load_generator_with_adapter

    generator = load_generator_with_adapter(str(tiny_model_dir), summary["adapter"])  # the trained adapter, merged
    result = evaluate_reflection(task, examples[:2], generator, ReflectionSettings(max_tokens=4, reflection_max_tokens=4))
    assert result["n"] == 2 and len(result["records"]) == 2


def test_experiment_writes_the_table_and_resumes(tmp_path, monkeypatch, countdown):
    from selfimprove.workflows.rrr import experiment

    task, examples = countdown
    made, trained_runs = [], []

    def fake_generator(spec, adapter=None):
        trained = adapter is not None

        def script(conversation, index):
            example = next((e for e in task.load("generate:n=3,seed=5,min_nums=3,max_nums=3")
                            if e.question in conversation[-1]["content"]), None)
            return SOLVE.format(solution=example.meta["solution"]) if trained and example else "no answer"

        made.append(ScriptedGenerator(script))
        return made[-1]

    def fake_train(config, out):
        trained_runs.append(out)
        return {"adapter": "ADAPTER", "global_step": 1}

    monkeypatch.setattr(experiment, "load_generator_with_adapter", fake_generator)
    monkeypatch.setattr(experiment, "LazyGenerator", fake_generator)
    monkeypatch.setattr(experiment, "_train", fake_train)
    config = experiment.ExperimentConfig(
        train_data="generate:n=2,seed=4,min_nums=3,max_nums=3", eval_data="generate:n=3,seed=5,min_nums=3,max_nums=3",
        failures={"k": 2}, output_dir=str(tmp_path / "out"), results=str(tmp_path / "results" / "table"))
    result = experiment.run_experiment(config)
    assert (result["vanilla"]["first_try"], result["rrr_trained"]["second_try"]) == (0.0, 1.0)
    assert result["failures"]["failures_kept"] == 2
    table = (tmp_path / "results" / "table.md").read_text()
    assert "| vanilla | 3 | 0.0 [0.0, 0.0] | 0.0 [0.0, 0.0] |" in table
    assert "| RRR-trained | 3 | 100.0 [100.0, 100.0] | 100.0 [100.0, 100.0] |" in table
    # 3 of 3 fixed: a zero-width bootstrap interval, but too few examples to call it a gain
    assert "| first try | 0.0 | 100.0 | +100.0 | [+100.0, +100.0] | 3 | within noise |" in table
    intervals = json.loads((tmp_path / "results" / "table.json").read_text())["intervals"]
    assert intervals["second_try"]["change"]["n_examples"] == 3
    seconds = json.loads((tmp_path / "results" / "table.json").read_text())["stage_seconds"]
    generate_calls = sum(len(g.calls) for g in made)
    again = experiment.run_experiment(config)  # every stage is reused: nothing generated or trained again
    assert sum(len(g.calls) for g in made) == generate_calls and len(trained_runs) == 1
    assert again["stage_seconds"] == seconds
