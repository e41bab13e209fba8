"""The shared-prompt log-prob pass (`train.shared_prompt`) against TRL's own pass, in the trainer's shapes.

Rows arrive as TRL builds them in `_compute_loss` / the reference pass: left-padded prompts of several
lengths, right-padded completions, the rows of a group not necessarily next to each other, a LoRA policy
(its adapter on and off). Log-probs, entropies and the LoRA gradients must agree to 1e-5.
"""

from __future__ import annotations

import pytest
import torch

from selfimprove.train.shared_prompt import SharedPromptGRPOTrainer, prompt_groups, shared_prompt_applies

SYSTEM = "You answer questions by searching. " * 4


def build_trainer(tiny_model_dir, tmp_path, **grpo):
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    config = AutoConfig.from_pretrained(tiny_model_dir)
    config.initializer_range = 0.3  # output that depends on the prompt
    torch.manual_seed(1)
    model = AutoModelForCausalLM.from_config(config)
    args = GRPOConfig(output_dir=str(tmp_path), num_generations=2, per_device_train_batch_size=4, max_steps=1,
                      max_completion_length=6, report_to=[], save_strategy="no", seed=0, use_cpu=True,
                      **{"temperature": 0.7, "beta": 0.1, "gradient_checkpointing": False, "bf16": False, **grpo})
    lora = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", lora_dropout=0.0, init_lora_weights=False)
    return SharedPromptGRPOTrainer(model=model, reward_funcs=[lambda completions, **kw: [float(len(c)) for c in completions]],
                                   args=args, train_dataset=Dataset.from_list([{"prompt": SYSTEM + "hi"},
                                                                               {"prompt": SYSTEM + "who wrote it?"}] * 2),
                                   processing_class=tokenizer, peft_config=lora)


@pytest.fixture(scope="module")
def trainer(tiny_model_dir, tmp_path_factory):
    return build_trainer(tiny_model_dir, tmp_path_factory.mktemp("grpo"))


def trl_batch(trainer):
    """Five rows, two prompts interleaved (A B A B A), as TRL pads them: prompts left, completions right."""
    encode = trainer.processing_class
    prompts = [encode(SYSTEM + text, add_special_tokens=False)["input_ids"]
               for text in ("Who wrote it?", "Which river is the longest one in the world?")]
    completions = [[5, 9, 11, 3], [7, 7], [13, 2, 4, 4, 8, 1], [21], []]
    rows = [prompts[i % 2] for i in range(5)]
    width, length = max(map(len, prompts)), max(map(len, completions))
    pad = encode.pad_token_id
    ids = [[pad] * (width - len(p)) + p + c + [pad] * (length - len(c)) for p, c in zip(rows, completions, strict=True)]
    mask = [[0] * (width - len(p)) + [1] * (len(p) + len(c)) + [0] * (length - len(c)) for p, c in zip(rows, completions, strict=True)]
    return torch.tensor(ids), torch.tensor(mask), length


def both_passes(trainer, grad: bool):
    from trl import GRPOTrainer

    ids, mask, keep = trl_batch(trainer)
    assert trainer.uses_shared_prompt(trainer.accelerator.unwrap_model(trainer.model), False, {})
    results = []
    for method in (GRPOTrainer._get_per_token_logps_and_entropies, SharedPromptGRPOTrainer._get_per_token_logps_and_entropies):
        trainer.model.zero_grad()
        with torch.set_grad_enabled(grad):
            logps, entropy, _ = method(trainer, trainer.model, ids, mask, keep, compute_entropy=True)
        completion_mask = mask[:, -keep:].float()
        grads = {}
        if grad:
            ((logps * completion_mask).sum() + 0.1 * (entropy * completion_mask).sum()).backward()
            grads = {n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None}
        results.append((logps * completion_mask, entropy * completion_mask, grads))
    return results


def test_same_logps_entropies_and_lora_gradients_as_trls_pass(trainer):
    (trl_logps, trl_entropy, trl_grads), (logps, entropy, grads) = both_passes(trainer, grad=True)
    assert torch.allclose(logps, trl_logps, atol=1e-5) and torch.allclose(entropy, trl_entropy, atol=1e-5)
    assert trl_logps.abs().sum() > 0 and set(grads) == set(trl_grads) and grads
    for name, value in trl_grads.items():  # relative to the gradient's size (float32 sums of ~10^2 terms)
        assert (grads[name] - value).norm() <= 1e-5 * value.norm() + 1e-6, name


def test_the_reference_pass_with_the_adapter_off_agrees_too(trainer):
    with trainer.model.disable_adapter():
        (trl_logps, _, _), (logps, _, _) = both_passes(trainer, grad=False)
    (policy_logps, _, _), _ = both_passes(trainer, grad=False)
    assert torch.allclose(logps, trl_logps, atol=1e-5)
    assert not torch.allclose(policy_logps, trl_logps, atol=1e-3)  # the adapter was really off


def test_rows_are_grouped_by_prompt_tokens_whatever_their_padding():
    ids = torch.tensor([[0, 0, 4, 5, 1], [0, 3, 4, 5, 2], [0, 0, 4, 5, 3]])
    mask = torch.tensor([[0, 0, 1, 1, 1], [0, 1, 1, 1, 1], [0, 0, 1, 1, 1]])
    assert prompt_groups(ids, mask, 4) == [[0, 2], [1]]


def test_where_it_applies(trainer, tiny_model_dir):
    from transformers import AutoConfig, AutoModelForCausalLM

    model = trainer.accelerator.unwrap_model(trainer.model)
    assert shared_prompt_applies(model, gradient_checkpointing=False)
    assert not shared_prompt_applies(model, gradient_checkpointing=True)  # checkpointing drops the KV states
    config = AutoConfig.from_pretrained(tiny_model_dir)
    config.final_logit_softcapping = 30.0
    assert not shared_prompt_applies(AutoModelForCausalLM.from_config(config), gradient_checkpointing=False)


def test_logprob_pass_setting(trainer, monkeypatch):
    from selfimprove.errors import ConfigError

    monkeypatch.setattr(trainer, "logprob_pass", "trl")
    assert not trainer.uses_shared_prompt(trainer.model, False, {})
    monkeypatch.setattr(trainer, "logprob_pass", "auto")
    assert trainer.uses_shared_prompt(trainer.model, False, {})
    assert not trainer.uses_shared_prompt(trainer.model, False, {"pixel_values": torch.zeros(1)})
    monkeypatch.setattr(trainer, "logprob_pass", "shared_prompt")
    with pytest.raises(ConfigError, match="logprob_pass"):
        trainer.uses_shared_prompt(trainer.model, True, {})


def test_a_real_training_step_runs_every_pass_through_it(tiny_model_dir, tmp_path, monkeypatch):
    import selfimprove.train.shared_prompt as shared

    calls = []
    original = shared.shared_prompt_logps

    def spy(*args, **kwargs):
        calls.append(torch.is_grad_enabled())
        return original(*args, **kwargs)

    monkeypatch.setattr(shared, "shared_prompt_logps", spy)
    trainer = build_trainer(tiny_model_dir, tmp_path)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    trainer.train()
    assert True in calls and False in calls  # the loss pass (grad) and the reference pass (beta > 0)
    after = dict(trainer.model.named_parameters())
    assert any(not torch.equal(value, after[name].detach()) for name, value in before.items())
    assert trainer.state.log_history and "entropy" in trainer.state.log_history[0]
