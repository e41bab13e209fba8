"""Direct preference optimisation (TRL DPOTrainer + LoRA) on `selfimprove convert dpo` pairs.

Rows are TRL's conversational preference format: `prompt` (chat messages), `chosen` and
`rejected` (each `[{"role": "assistant", ...}]`). Defaults are Araft's: beta 0.1, lr 5e-5 cosine.

Reference model: when `model.adapter` names the SFT adapter, the policy is base + that adapter
(trainable) and TRL keeps a frozen copy of it as a second adapter named "ref", so the reference
is exactly the SFT model (Araft's choice) at the cost of one extra adapter, not a second model;
it also works unchanged on a 4-bit base, where merging would be lossy. The saved adapter is the
SFT adapter after DPO: base + it is the DPO model. Without `model.adapter` a fresh LoRA is trained
and the reference is the base model with adapters disabled (use that with a merged SFT model).
"""

from __future__ import annotations

from typing import Any

from selfimprove.train.config import ARAFT_DPO_TRAINER, TrainConfig
from selfimprove.train.trainer_loop import DPO_FORMATS, TrainerKind, run_training


def _load_classes() -> tuple[type, type]:
    from trl import DPOConfig, DPOTrainer

    return DPOTrainer, DPOConfig


DPO = TrainerKind("dpo", _load_classes, ARAFT_DPO_TRAINER, ("prompt", "chosen", "rejected"), ("chosen", "rejected"),
                  DPO_FORMATS)


def train_dpo(config: TrainConfig, resume: bool = False, merge: bool | None = None, console: Any = None) -> dict:
    """Run DPO; returns the summary written to `output_dir/train_summary.json`."""
    return run_training(DPO, config, resume=resume, merge=merge, console=console)
