"""Training resume reproduces the uninterrupted run: step count, data order and losses.

On the tiny model, SFT with save_steps=1 runs 4 steps straight through (6 rows, batch 2: the
run crosses an epoch boundary). A second run with the same config is stopped after step 2 (as
a crash would stop it; checkpoint-2 is on disk), then `resume=True` continues to step 4. The
resumed steps must see the same batches, in the same order, as steps 3-4 of the straight run,
and log the same losses (float tolerance), ending at global_step 4. The trainer is TRL's
SFTTrainer with a recording `training_step` (through `run_training`'s TrainerKind, not a patch).
A checkpoint directory cut short by a crash mid-save must not be picked for resuming.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path

import pytest

from selfimprove.train.config import TrainConfig
from selfimprove.train.sft import SFT
from selfimprove.train.trainer_loop import run_training

SEEN: list[tuple[int, str]] = []
STOP_AT: dict[str, int | None] = {"step": None}


def recording_sft_classes() -> tuple[type, type]:
    """SFTTrainer that records (step, batch fingerprint) and can stop after a given step."""
    from transformers import TrainerCallback
    from trl import SFTConfig, SFTTrainer

    class StopAfter(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if STOP_AT["step"] is not None and state.global_step >= STOP_AT["step"]:
                control.should_training_stop = True

    class RecordingSFTTrainer(SFTTrainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.add_callback(StopAfter())

        def training_step(self, model, inputs, *args, **kwargs):
            ids = inputs["input_ids"].tolist()
            SEEN.append((self.state.global_step + 1, hashlib.sha256(json.dumps(ids).encode()).hexdigest()[:12]))
            return super().training_step(model, inputs, *args, **kwargs)

    return RecordingSFTTrainer, SFTConfig


RECORDING_SFT = dataclasses.replace(SFT, load=recording_sft_classes)


@pytest.fixture(scope="module")
def rows(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("resume-data") / "sft.jsonl"
    lines = [{"prompt": [{"role": "user", "content": f"Question {i}: which city is number {i}?"}],
              "completion": [{"role": "assistant", "content": f"Answer: city {i} " * (1 + i % 3)}]} for i in range(6)]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return path


def config(model_dir: Path, data: Path, out: Path) -> TrainConfig:
    trainer = {"max_steps": 4, "save_steps": 1, "save_total_limit": None, "learning_rate": 1e-2,
               "per_device_train_batch_size": 2, "gradient_accumulation_steps": 1, "gradient_checkpointing": False}
    return TrainConfig(model={"spec": str(model_dir), "lora": {"r": 4, "alpha": 8}}, data=str(data),
                       output_dir=str(out), trainer=trainer)


def train(cfg: TrainConfig, stop_at: int | None = None, resume: bool = False) -> tuple[dict, list, list]:
    SEEN.clear()
    STOP_AT["step"] = stop_at
    summary = run_training(RECORDING_SFT, cfg, resume=resume)
    history = json.loads((Path(cfg.output_dir) / "log_history.json").read_text())
    losses = {row["step"]: row["loss"] for row in history if "loss" in row}
    return summary, list(SEEN), losses


@pytest.fixture(scope="module")
def runs(tiny_model_dir, rows, tmp_path_factory):
    straight = train(config(tiny_model_dir, rows, tmp_path_factory.mktemp("straight")))
    interrupted_dir = tmp_path_factory.mktemp("interrupted")
    first = train(config(tiny_model_dir, rows, interrupted_dir), stop_at=2)
    resumed = train(config(tiny_model_dir, rows, interrupted_dir), resume=True)
    return straight, first, resumed, interrupted_dir


def test_interrupted_run_stopped_at_step_2_with_checkpoints(runs):
    _, (summary, seen, _), _, out = runs
    assert summary["global_step"] == 2 and [step for step, _ in seen] == [1, 2]
    assert (out / "checkpoint-2" / "trainer_state.json").is_file()


def test_resume_ends_at_the_same_step_count(runs):
    (straight, _, _), _, (resumed, _, _), _ = runs
    assert straight["global_step"] == resumed["global_step"] == 4
    assert resumed["resumed_from"].endswith("checkpoint-2")


def test_resume_sees_the_same_batches_in_the_same_order(runs):
    (_, straight_seen, _), (_, first_seen, _), (_, resumed_seen, _), _ = runs
    assert len(straight_seen) == 4
    assert first_seen == straight_seen[:2]
    assert resumed_seen == straight_seen[2:]
    assert len({fingerprint for _, fingerprint in straight_seen[:3]}) == 3, "an epoch shows each batch once"


def test_resume_logs_the_same_losses(runs):
    (_, _, straight_losses), _, (_, _, resumed_losses), _ = runs
    assert sorted(resumed_losses) == [1, 2, 3, 4]  # the log history is carried over from the checkpoint
    for step in range(1, 5):
        assert resumed_losses[step] == pytest.approx(straight_losses[step], rel=1e-4, abs=1e-6), step


def test_resume_skips_a_checkpoint_cut_short_by_a_crash(runs, tmp_path):
    from selfimprove.train.outputs import last_checkpoint

    _, _, _, out = runs
    copy = tmp_path / "run"
    shutil.copytree(out / "checkpoint-3", copy / "checkpoint-3")
    partial = copy / "checkpoint-4"
    partial.mkdir()
    (partial / "adapter_model.safetensors").write_bytes(b"\0" * 10)  # torn mid-save: no trainer_state.json
    assert last_checkpoint(copy).endswith("checkpoint-3")
