"""SFT and DPO on the tiny model: two steps each, loss logged, LoRA weights changed, adapters reload."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from selfimprove.config import load_config
from selfimprove.errors import BackendUnavailable, ConfigError, UserError
from selfimprove.train.config import TrainConfig

REPO = Path(__file__).resolve().parents[1]
PROMPT = [{"role": "system", "content": "You answer."}, {"role": "user", "content": "Question: Which city?\n"}]
SEARCH = "Thought: I need to search.\nAction: [action: Search, action_input: Paris]"
ANSWER = "Thought: It is Paris.\nAction: [action: Answer, action_input: Paris]"


def write_rows(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("train-data")
    write_rows(root / "sft.jsonl", [{"prompt": PROMPT, "completion": [{"role": "assistant", "content": SEARCH}],
                                     "example_id": str(i)} for i in range(8)])
    write_rows(root / "dpo.jsonl", [{"prompt": PROMPT, "chosen": [{"role": "assistant", "content": ANSWER}],
                                     "rejected": [{"role": "assistant", "content": SEARCH}]} for _ in range(8)])
    return root


def config(model_dir: Path, data: Path, out: Path, **trainer) -> TrainConfig:
    settings = {"max_steps": 2, "save_steps": 1, "learning_rate": 1e-2, "per_device_train_batch_size": 2,
                "gradient_accumulation_steps": 1, "gradient_checkpointing": False, **trainer}
    return TrainConfig(model={"spec": str(model_dir)}, data=str(data), output_dir=str(out), trainer=settings)


def lora_tensors(adapter_dir: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(adapter_dir / "adapter_model.safetensors"))


@pytest.fixture(scope="module")
def sft_run(tiny_model_dir, data_dir, tmp_path_factory) -> tuple[Path, dict]:
    from selfimprove.train.sft import train_sft

    out = tmp_path_factory.mktemp("sft")
    return out, train_sft(config(tiny_model_dir, data_dir / "sft.jsonl", out), merge=True)


def test_sft_logs_loss_and_changes_lora_weights(sft_run):
    out, summary = sft_run
    assert summary["global_step"] == 2 and summary["logged_steps"] == 2
    assert summary["first_loss"] > 0
    history = json.loads((out / "log_history.json").read_text())
    assert sum("loss" in row for row in history) == 2
    tensors = lora_tensors(out / "adapter")
    lora_b = [t for name, t in tensors.items() if "lora_B" in name]
    assert lora_b and all(t.abs().sum() > 0 for t in lora_b)  # lora_B starts at zero
    assert any("mlp" in name for name in tensors) and any("self_attn" in name for name in tensors)  # all-linear


def test_sft_adapter_reloads_and_merged_model_matches(sft_run, tiny_model_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    out, _ = sft_run
    base = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    peft_model = PeftModel.from_pretrained(base, str(out / "adapter")).eval()
    merged = AutoModelForCausalLM.from_pretrained(str(out / "merged")).eval()
    ids = torch.tensor([[1, 5, 9, 20, 33]])
    with torch.no_grad():
        assert torch.allclose(peft_model(ids).logits, merged(ids).logits, atol=1e-4)
        plain = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir)).eval()
        assert not torch.allclose(plain(ids).logits, merged(ids).logits, atol=1e-4)


def test_dpo_from_the_sft_adapter_uses_it_as_reference(sft_run, tiny_model_dir, data_dir, tmp_path):
    from selfimprove.train.dpo import train_dpo

    sft_out, _ = sft_run
    cfg = config(tiny_model_dir, data_dir / "dpo.jsonl", tmp_path)
    cfg.model.adapter = str(sft_out / "adapter")
    summary = train_dpo(cfg)
    assert summary["logged_steps"] == 2 and summary["reference"] == "the starting adapter"
    # Policy == reference at the first step, so the DPO loss starts at log(2).
    assert summary["first_loss"] == pytest.approx(0.6931, abs=1e-3)
    before, after = lora_tensors(sft_out / "adapter"), lora_tensors(tmp_path / "adapter")
    assert before.keys() == after.keys()  # only the trained adapter is saved, not TRL's "ref" copy
    assert any(not torch.equal(before[k], after[k]) for k in before)


def test_dpo_with_a_fresh_lora(tiny_model_dir, data_dir, tmp_path):
    from selfimprove.train.dpo import train_dpo

    summary = train_dpo(config(tiny_model_dir, data_dir / "dpo.jsonl", tmp_path))
    assert summary["logged_steps"] == 2 and summary["reference"] is None
    assert (tmp_path / "adapter" / "adapter_config.json").is_file()


def test_resume_continues_from_the_last_checkpoint(tiny_model_dir, data_dir, tmp_path):
    from selfimprove.train.sft import train_sft

    train_sft(config(tiny_model_dir, data_dir / "sft.jsonl", tmp_path))
    summary = train_sft(config(tiny_model_dir, data_dir / "sft.jsonl", tmp_path, max_steps=3), resume=True)
    assert summary["resumed_from"].endswith("checkpoint-2")
    assert summary["global_step"] == 3 and summary["logged_steps"] == 3


def test_resume_without_a_checkpoint_is_a_user_error(tiny_model_dir, data_dir, tmp_path):
    from selfimprove.train.sft import train_sft

    with pytest.raises(UserError, match="no complete checkpoint"):
        train_sft(config(tiny_model_dir, data_dir / "sft.jsonl", tmp_path), resume=True)


def test_overlong_rows_are_dropped_not_truncated(tiny_model_dir, data_dir, tmp_path):
    from selfimprove.errors import DataError
    from selfimprove.train.sft import train_sft

    with pytest.raises(DataError, match="longer than trainer.max_length=8"):
        train_sft(config(tiny_model_dir, data_dir / "sft.jsonl", tmp_path, max_length=8))


def test_unknown_trainer_field_is_a_config_error(tiny_model_dir, data_dir, tmp_path):
    from selfimprove.train.sft import train_sft

    with pytest.raises(ConfigError, match="trainer.learnig_rate: not a SFTConfig field.*learning_rate"):
        train_sft(config(tiny_model_dir, data_dir / "sft.jsonl", tmp_path, learnig_rate=1e-3))


def test_bad_rows_name_the_file_line_and_field(tiny_model_dir, tmp_path):
    from selfimprove.errors import DataError
    from selfimprove.train.sft import train_sft

    bad = write_rows(tmp_path / "bad.jsonl", [{"prompt": PROMPT, "completion": "just text"}])
    with pytest.raises(DataError, match=r"bad.jsonl:1: field 'completion'"):
        train_sft(config(tiny_model_dir, bad, tmp_path / "out"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only message")
def test_qlora_without_cuda_says_what_is_missing():
    from selfimprove.train.model_loading import wants_4bit

    with pytest.raises(BackendUnavailable, match="needs a CUDA GPU"):
        wants_4bit("4bit")
    assert wants_4bit("auto") is False and wants_4bit("none") is False


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only rule")
def test_bf16_on_cpu_is_a_config_error(tiny_model_dir, data_dir, tmp_path):
    from selfimprove.train.sft import train_sft

    with pytest.raises(ConfigError, match="bf16"):
        train_sft(config(tiny_model_dir, data_dir / "sft.jsonl", tmp_path, bf16=True))


def test_remote_specs_cannot_be_trained():
    from selfimprove.train.model_loading import local_model_path

    with pytest.raises(ConfigError, match="only local/hub/embedded"):
        local_model_path("openai:gpt-4o-mini@http://localhost:8000/v1")


@pytest.mark.parametrize("path", sorted((REPO / "configs" / "train").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_training_configs_load(path):
    from trl import DPOConfig, SFTConfig

    from selfimprove.train.config import trainer_arguments

    first_line = path.read_text().splitlines()[0]
    kind = "sft" if "train sft" in first_line else "dpo"
    assert first_line.startswith(f"# selfimprove train {kind} --config configs/train/{path.name}")
    loaded = load_config(path, TrainConfig, ["seed=3"])
    assert loaded.seed == 3
    trainer_arguments(SFTConfig if kind == "sft" else DPOConfig, {}, loaded.trainer, source=str(path))


def test_train_cli_runs_sft_with_overrides(tiny_model_dir, data_dir, tmp_path):
    from selfimprove.cli import app

    cfg = tmp_path / "sft.yaml"
    cfg.write_text(f"model: {{spec: {tiny_model_dir}}}\ndata: {data_dir / 'sft.jsonl'}\noutput_dir: {tmp_path / 'o'}\n"
                   "trainer: {max_steps: 5, save_steps: 1}\n")
    result = CliRunner().invoke(app, ["train", "sft", "--config", str(cfg), "--set", "trainer.max_steps=1"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "o" / "train_summary.json").read_text())["global_step"] == 1


def test_prefill_prompts_continue_the_assistant_message(tiny_model_dir):
    from transformers import AutoTokenizer

    from selfimprove.train.trainer_loop import render_prefill_rows

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    plain = {"prompt": PROMPT, "completion": [{"role": "assistant", "content": SEARCH}]}
    assert render_prefill_rows([plain], tokenizer, ("completion",)) == [plain]
    prefill = {"prompt": [*PROMPT, {"role": "assistant", "content": "<search>x</search>"}],
               "completion": [{"role": "assistant", "content": "<answer>Paris</answer>"}]}
    rendered = render_prefill_rows([plain, prefill], tokenizer, ("completion",))
    assert rendered[1]["prompt"].endswith("<|im_start|>assistant\n<search>x</search>")
    assert rendered[1]["completion"] == "<answer>Paris</answer>"
    assert rendered[0]["prompt"].endswith("<|im_start|>assistant\n") and rendered[0]["completion"] == SEARCH
