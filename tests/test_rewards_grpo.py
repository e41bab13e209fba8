"""GRPOTrainer (TRL 1.16) runs two steps with a composite of selfimprove rewards and logs each part."""

from __future__ import annotations

import pytest

pytest.importorskip("trl")


def _dataset():
    from datasets import Dataset

    questions = [("What is 2+2?", "4"), ("What is 3+3?", "6"), ("Capital of France?", "Paris"), ("1+1?", "2")]
    return Dataset.from_list([{"prompt": [{"role": "user", "content": q}], "answer": a} for q, a in questions])


def test_grpo_trainer_logs_every_reward_of_a_composite(tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from selfimprove.rewards import build_reward_funcs

    funcs, weights = build_reward_funcs([
        {"name": "weighted_sum", "label": "answer_and_format", "weight": 1.0,
         "parts": [{"name": "xml_correctness", "weight": 1.0}, {"name": "soft_format", "weight": 0.5}]},
        {"name": "xmlcount", "weight": 0.5},
        {"name": "length_penalty", "params": {"max_words": 0, "per_word": 0.01, "unit": "chars"}},
        {"name": "search_effort"},
    ])
    args = GRPOConfig(output_dir=str(tmp_path), max_steps=2, per_device_train_batch_size=2, num_generations=2,
                      max_completion_length=8, logging_steps=1, report_to="none", use_cpu=True,
                      reward_weights=weights, save_strategy="no", seed=0, learning_rate=1e-3)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer = GRPOTrainer(model=model, reward_funcs=funcs, args=args, train_dataset=_dataset(),
                          processing_class=tokenizer)
    trainer.train()

    logged = {key for entry in trainer.state.log_history for key in entry}
    for name in ("xml_correctness", "soft_format", "xmlcount", "length_penalty", "search_effort"):
        assert f"rewards/{name}/mean" in logged, sorted(logged)
    assert trainer.state.global_step == 2
    assert any("loss" in entry for entry in trainer.state.log_history)
    assert any(not (p.detach() == before[n]).all() for n, p in model.named_parameters() if p.requires_grad)


def test_a_composite_given_whole_logs_its_parts_through_log_metric(tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from selfimprove.rewards import build_reward_funcs

    funcs, weights = build_reward_funcs([{"name": "weighted_sum", "label": "shaped", "parts": [
        "xmlcount", {"name": "length_penalty", "params": {"max_words": 2}}]}], split=False)
    args = GRPOConfig(output_dir=str(tmp_path), max_steps=1, per_device_train_batch_size=2, num_generations=2,
                      max_completion_length=8, logging_steps=1, report_to="none", use_cpu=True,
                      reward_weights=weights, save_strategy="no", seed=0)
    trainer = GRPOTrainer(model=AutoModelForCausalLM.from_pretrained(tiny_model_dir), reward_funcs=funcs, args=args,
                          train_dataset=_dataset(), processing_class=AutoTokenizer.from_pretrained(tiny_model_dir))
    trainer.train()
    logged = {key for entry in trainer.state.log_history for key in entry}
    assert {"rewards/shaped/mean", "rewards/shaped/xmlcount/mean", "rewards/shaped/length_penalty/mean"} <= logged
