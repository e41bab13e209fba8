"""What a training run leaves behind: adapter, optional merged model, log history, summary.

Layout of `output_dir`: `checkpoint-N/` (TRL/transformers checkpoints, used by `--resume`),
`adapter/` (the PEFT adapter of the trained policy + tokenizer), `merged/` (with `--merge`: base +
adapter merged into a plain transformers checkpoint usable as a model spec), `log_history.json`
(every logged step) and `train_summary.json` (steps, first/last loss, runtime, paths). The
merged model is rebuilt from the unquantized base, so it is exact even after QLoRA training.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from selfimprove.errors import UserError


def last_checkpoint(output_dir: str | Path) -> str:
    """The newest complete `checkpoint-N` dir in `output_dir`; a UserError when there is none.

    A checkpoint is complete when it holds `trainer_state.json`, which transformers writes last, so
    a crash in the middle of a save never makes `--resume` pick a torn checkpoint.
    """
    output_dir = Path(output_dir)
    found = [p for p in output_dir.glob("checkpoint-*")
             if p.is_dir() and p.name.split("-")[-1].isdigit() and (p / "trainer_state.json").is_file()]
    if not found:
        raise UserError(f"--resume: no complete checkpoint-N directory in {output_dir}")
    return str(max(found, key=lambda p: int(p.name.split("-")[-1])))


def save_adapter(model: Any, tokenizer: Any, output_dir: str | Path) -> Path:
    """Save only the trained "default" adapter (not TRL's frozen "ref" copy) in PEFT format."""
    target = Path(output_dir) / "adapter"
    model.save_pretrained(str(target), selected_adapters=["default"])
    tokenizer.save_pretrained(str(target))
    return target


def merge_adapter(base_spec: str, adapter_dir: str | Path, output_dir: str | Path) -> Path:
    """Write base + adapter merged into `output_dir/merged` (float32 on CPU, bf16 on GPU)."""
    from peft import PeftModel

    from selfimprove.train.config import ModelSettings
    from selfimprove.train.model_loading import load_base_for_training

    base, tokenizer = load_base_for_training(ModelSettings(spec=base_spec), quantize=False)
    merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    target = Path(output_dir) / "merged"
    merged.save_pretrained(str(target))
    tokenizer.save_pretrained(str(target))
    return target


def write_run_record(trainer: Any, output_dir: str | Path, extra: dict[str, Any]) -> dict[str, Any]:
    """Write log_history.json and train_summary.json; return the summary."""
    output_dir = Path(output_dir)
    history = list(trainer.state.log_history)
    (output_dir / "log_history.json").write_text(json.dumps(history, indent=1), encoding="utf-8")
    losses = [row["loss"] for row in history if "loss" in row]
    runtime = next((row["train_runtime"] for row in reversed(history) if "train_runtime" in row), None)
    summary = {"global_step": trainer.state.global_step, "first_loss": losses[0] if losses else None,
               "last_loss": losses[-1] if losses else None, "logged_steps": len(losses),
               "train_runtime_s": runtime, **extra}
    (output_dir / "train_summary.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    return summary
