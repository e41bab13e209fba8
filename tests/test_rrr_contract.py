"""RRR trains on the retry it evaluates: the same retry context and budget in training and evaluation.

(1) For one episode, the token ids the retry is generated from in training (the rollout_func) and
in evaluation (`evaluate_reflection` through `TransformersGenerator`) are identical, with a plain
ChatML template and with a Qwen3-style template that drops earlier turns' thinking.
(2) The retry's token budget in training is the evaluation's (`eval.max_tokens`), and the
reflection's is `eval.reflection_max_tokens`, through `rrr experiment`'s wiring and in a real TRL
trainer. (3) `rrr experiment` refuses a failure set and an evaluation from the same source.
"""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import pytest

from selfimprove.agent.reflect_retry import REFLECTION_PROMPT, RETRY_PROMPT, reflection_conversation
from selfimprove.data.jsonl import write_jsonl
from selfimprove.eval.reflection import ReflectionSettings, evaluate_reflection
from selfimprove.models.generator import Completion
from selfimprove.models.scripted import ScriptedGenerator
from selfimprove.tasks import get_task

# Qwen3's chat template, without tools: an assistant turn before the last user message loses its
# <think> block; the generation prompt leaves the thinking to the model.
QWEN3_STYLE = (
    "{%- set ns = namespace(searching=true, last_query_index=messages|length - 1) -%}"
    "{%- for message in messages[::-1] -%}{%- if ns.searching and message.role == 'user' -%}{%- set ns.searching = false"
    " -%}{%- set ns.last_query_index = (messages|length - 1) - loop.index0 -%}{%- endif -%}{%- endfor -%}"
    "{%- for message in messages -%}{%- set content = message.content -%}"
    "{%- if message.role == 'assistant' -%}{%- set reasoning = '' -%}"
    "{%- if '</think>' in content -%}"
    "{%- set reasoning = content.split('</think>')[0].rstrip('\\n').split('<think>')[-1].lstrip('\\n') -%}"
    "{%- set content = content.split('</think>')[-1].lstrip('\\n') -%}{%- endif -%}"
    "{%- if loop.index0 > ns.last_query_index and (loop.last or reasoning) -%}"
    "{{- '<|im_start|>assistant\\n<think>\\n' + reasoning.strip('\\n') + '\\n</think>\\n\\n' + content.lstrip('\\n') -}}"
    "{%- else -%}{{- '<|im_start|>assistant\\n' + content -}}{%- endif -%}{{- '<|im_end|>\\n' -}}"
    "{%- else -%}{{- '<|im_start|>' + message.role + '\\n' + content + '<|im_end|>\\n' -}}{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}"
    "{%- if enable_thinking is defined and enable_thinking is false -%}{{- '<think>\\n\\n</think>\\n\\n' -}}{%- endif -%}"
    "{%- endif -%}"
)
FIRST = "<think>\nAdd them all.\n</think>\n\n<answer>1 + 1</answer>"
REFLECTION = "<think>\nI added, but the target needs a product.\n</think>\n\nMultiply the two largest numbers first."
RETRY = "<think>\nProduct first.\n</think>\n\n<answer>2 * 3</answer>"
SOURCE_A, SOURCE_B = "generate:n=3,seed=4,min_nums=3,max_nums=3", "generate:n=3,seed=5,min_nums=3,max_nums=3"


class ScriptedTrainer:
    """Stands in for GRPOTrainer inside a rollout_func: its tokenizer, budget and `_generate_single_turn`.

    Call i returns `turns[i]` for every sequence, cut at the budget the trainer has at that moment;
    `calls` records (sequences, budget) per call.
    """

    def __init__(self, tokenizer, turns: list[list[int]], max_completion_length: int):
        self.processing_class, self.turns, self.calls = tokenizer, turns, []
        self.max_completion_length = max_completion_length
        self.generation_config = SimpleNamespace(max_new_tokens=max_completion_length)
        self.eos_token_ids = [tokenizer.eos_token_id]

    def _log_metric(self, name, value):  # GRPOTrainer's metric hook (pinned by the private-API contract test)
        self.metrics = {**getattr(self, "metrics", {}), name: value}

    def _generate_single_turn(self, sequences, images, multimodal_fields, num_generations):
        budget = self.generation_config.max_new_tokens
        self.calls.append(([list(s) for s in sequences], budget))
        return [list(self.turns[len(self.calls) - 1][:budget]) for _ in sequences], None


@pytest.fixture(scope="module")
def countdown():
    task = get_task("countdown")
    return task, task.load(SOURCE_A)[0]


@pytest.fixture(scope="module")
def tiny_model(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_model_dir)


def tokenizer_with(tiny_model_dir, template: str | None):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    if template is not None:
        tokenizer.chat_template = template
    return tokenizer


def eval_contexts(tokenizer, model, task, example) -> list[list[int]]:
    """The prompt ids `evaluate_reflection` feeds a local model: first try, reflection, retry."""
    from selfimprove.models.transformers_backend import TransformersGenerator

    generator = TransformersGenerator("tiny", model=model, tokenizer=tokenizer)
    seen: list[list[int]] = []
    replies = iter([FIRST, REFLECTION, RETRY])

    def generate_chunk(prompt_ids, params):
        seen.extend(prompt_ids)
        return [Completion(text=next(replies)) for _ in prompt_ids]

    generator._generate_chunk = generate_chunk
    evaluate_reflection(task, [example], generator, ReflectionSettings(max_tokens=64, reflection_max_tokens=64))
    return seen


def train_contexts(tokenizer, task, example) -> tuple[ScriptedTrainer, dict]:
    """The same episode through RRR's rollout_func: the failure point is the eval's first try."""
    from selfimprove.workflows.rrr.rollout import rrr_rollout_func

    eos = [tokenizer.eos_token_id]
    turns = [tokenizer.encode(REFLECTION, add_special_tokens=False) + eos,
             tokenizer.encode(RETRY, add_special_tokens=False) + eos]
    trainer = ScriptedTrainer(tokenizer, turns, 64)
    prompt = reflection_conversation(task.render(example), FIRST, REFLECTION_PROMPT)
    return trainer, rrr_rollout_func(RETRY_PROMPT, 64)([prompt], trainer)


@pytest.mark.parametrize("template", [None, QWEN3_STYLE], ids=["chatml", "qwen3-thinking"])
def test_retry_context_is_identical_in_training_and_evaluation(tiny_model_dir, tiny_model, countdown, template):
    task, example = countdown
    tokenizer = tokenizer_with(tiny_model_dir, template)
    _, eval_reflection_ids, eval_retry_ids = eval_contexts(tokenizer, tiny_model, task, example)
    trainer, output = train_contexts(tokenizer, task, example)
    (train_reflection_ids,), _ = trainer.calls[0]
    (train_retry_ids,), _ = trainer.calls[1]
    assert train_reflection_ids == eval_reflection_ids
    assert train_retry_ids == eval_retry_ids
    assert output["retry_completion"] == [RETRY]
    thinking_kept = "I added, but" in tokenizer.decode(train_retry_ids)
    assert thinking_kept is (template is None)  # the thinking template drops the reflection's <think> in both


def test_retry_budget_is_the_evaluation_budget(tmp_path, monkeypatch, tiny_model_dir, countdown):
    from selfimprove.train import grpo
    from selfimprove.workflows.rrr import experiment

    task, example = countdown
    config = experiment.ExperimentConfig(train_data=SOURCE_A, eval_data=SOURCE_B, output_dir=str(tmp_path / "out"),
                                         results=str(tmp_path / "table"), eval={"max_tokens": 9, "reflection_max_tokens": 5})
    budgets: list[int] = []

    class Recording(ScriptedGenerator):
        def generate(self, conversations, params):
            budgets.append(params.max_tokens)
            return super().generate(conversations, params)

    evaluate_reflection(task, [example], Recording(lambda conversation, i: "wrong"), config.eval)
    first_budget, eval_reflection_budget, eval_retry_budget = budgets
    captured = {}
    monkeypatch.setattr(grpo, "run_grpo", lambda run_config, rows, rewards, weights, rollout, **kwargs:
                        captured.update(config=run_config, rows=rows, rollout=rollout, defaults=kwargs["arg_defaults"]))
    write_jsonl(tmp_path / "out" / "failures" / "failures.jsonl",
                [{"example_id": example.id, "row": task.to_row(example), "completion": "wrong"}])
    experiment._train(config, tmp_path / "out")
    budget = grpo.grpo_arguments(captured["config"], captured["defaults"]).max_completion_length
    tokenizer = tokenizer_with(tiny_model_dir, None)
    never_stops = [tokenizer.encode(" 7", add_special_tokens=False) * 100] * 2
    trainer = ScriptedTrainer(tokenizer, never_stops, budget)
    output = captured["rollout"]([captured["rows"][0]["prompt"]], trainer)
    (_, train_reflection_budget), (_, train_retry_budget) = trainer.calls
    assert (train_reflection_budget, train_retry_budget) == (eval_reflection_budget, eval_retry_budget) == (5, 9)
    assert len(output["completion_ids"][0]) == 5 and output["retry_ended"] == [False]
    assert trainer.generation_config.max_new_tokens == trainer.max_completion_length == 5  # restored after the retry


def test_real_trainer_samples_the_retry_with_its_own_budget(tiny_model_dir, tmp_path, countdown):
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from trl import GRPOConfig, GRPOTrainer

    from selfimprove.workflows.rrr.rollout import rrr_rollout_func

    task, example = countdown
    tokenizer = tokenizer_with(tiny_model_dir, None)
    prompt = reflection_conversation(task.render(example), "wrong", REFLECTION_PROMPT)
    args = GRPOConfig(output_dir=str(tmp_path), max_steps=1, per_device_train_batch_size=4, num_generations=4,
                      max_completion_length=6, report_to="none", use_cpu=True, save_strategy="no", seed=0)
    trainer = GRPOTrainer(model=AutoModelForCausalLM.from_pretrained(tiny_model_dir), reward_funcs=[lambda **k: [0.0]],
                          args=args, train_dataset=Dataset.from_list([{"prompt": prompt}]), processing_class=tokenizer)
    lengths: list[list[int]] = []
    generate = trainer._generate_single_turn

    def spy(*a, **k):
        ids, logprobs = generate(*a, **k)
        lengths.append([len(i) for i in ids])
        return ids, logprobs

    trainer._generate_single_turn = spy
    torch.manual_seed(0)
    rrr_rollout_func(RETRY_PROMPT, 12, generation="trl")([prompt] * 4, trainer)  # TRL's own hook, spied
    reflections, retries = lengths
    assert max(reflections) <= 6 < max(retries) <= 12
    assert trainer.generation_config.max_new_tokens == trainer.max_completion_length == 6


def test_experiment_refuses_the_same_source_for_failures_and_evaluation(tmp_path):
    from selfimprove.config import validate
    from selfimprove.errors import ConfigError
    from selfimprove.workflows.rrr.experiment import ExperimentConfig, experiment_examples

    base = {"output_dir": str(tmp_path), "results": str(tmp_path / "r")}
    for train, evaluation in ((SOURCE_A, SOURCE_A), (SOURCE_A, "generate:seed=4, max_nums=3,n=3,min_nums=3")):
        with pytest.raises(ConfigError, match="same source"):
            validate(ExperimentConfig, {**base, "train_data": train, "eval_data": evaluation})
    with pytest.raises(ConfigError, match="train_data"):  # no default shared by both any more
        validate(ExperimentConfig, base)
    same_examples = ExperimentConfig(**base, train_data="generate:n=3", eval_data="generate:n=3,seed=0")
    with pytest.raises(ConfigError, match="also in eval_data"):
        experiment_examples(same_examples)
    _, train, evaluation = experiment_examples(ExperimentConfig(**base, train_data=SOURCE_A, eval_data=SOURCE_B))
    assert len(train) == len(evaluation) == 3


def test_cli_refuses_the_same_source_with_one_error_line(tmp_path):
    config = tmp_path / "same.yaml"
    config.write_text(f"train_data: '{SOURCE_A}'\neval_data: '{SOURCE_A}'\noutput_dir: {tmp_path / 'out'}\n"
                      f"results: {tmp_path / 'table'}\n")
    done = subprocess.run([sys.executable, "-m", "selfimprove", "rrr", "experiment", str(config)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "same source" in lines[0]
    assert not (tmp_path / "out").exists()
