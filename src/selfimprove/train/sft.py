"""Supervised fine-tuning (TRL SFTTrainer + LoRA) on `selfimprove convert sft` rows.

Rows are TRL's conversational prompt/completion format: `prompt` is a list of chat messages
(system, user, and earlier turns), `completion` is `[{"role": "assistant", ...}]`. TRL renders
both with the student's own chat template and computes the loss on the completion only.
Defaults are Araft's: lr 2e-4 linear, warmup 0.1, weight decay 0.01, batch 1 x accumulation 4.
"""

from __future__ import annotations

from typing import Any

from selfimprove.train.config import ARAFT_SFT_TRAINER, TrainConfig
from selfimprove.train.trainer_loop import SFT_FORMATS, TrainerKind, run_training


def _load_classes() -> tuple[type, type]:
    from trl import SFTConfig, SFTTrainer

    return SFTTrainer, SFTConfig


SFT = TrainerKind("sft", _load_classes, ARAFT_SFT_TRAINER, ("prompt", "completion"), ("completion",), SFT_FORMATS)


def train_sft(config: TrainConfig, resume: bool = False, merge: bool | None = None, console: Any = None) -> dict:
    """Run SFT; returns the summary written to `output_dir/train_summary.json`."""
    return run_training(SFT, config, resume=resume, merge=merge, console=console)
