"""What a training run leaves behind: adapter, optional merged model, log history, summary.

Layout of `output_dir`: `checkpoint-N/` (TRL/transformers checkpoints, used by `--resume`),
`adapter/` (the PEFT adapter of the trained policy + tokenizer), `merged/` (with `--merge`: base +
adapter merged into a plain transformers checkpoint usable as a model spec), `log_history.json`
(every logged step), `curves.png` (learning curves drawn from that history), `runs/` (TensorBoard
events, the default tracker) and `train_summary.json` (steps, first/last loss, runtime, paths). The
merged model is rebuilt from the unquantized base, so it is exact even after QLoRA training.
`training_run(config, resume)` holds `output_dir/.lock` for the run (on the main process only:
other ranks of a distributed run share the directory) and records the settings in
`output_dir/run.json`; `--resume` with other settings (bar the step/epoch budget and logging or
saving cadence, which resuming may extend) is a ConfigError naming them.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from selfimprove.errors import UserError
from selfimprove.train.curves import plotted_metrics, write_learning_curves

RESUMABLE_TRAINER_KEYS = {"max_steps", "num_train_epochs", "save_steps", "save_total_limit", "logging_steps",
                          "report_to", "eval_steps"}


def is_main_process() -> bool:
    """False on the non-zero ranks of a distributed launch (torchrun/accelerate set RANK)."""
    return os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")) in ("0", "")


def resume_settings(config: Any) -> dict[str, Any]:
    """The settings a resumed training run must share with the one it continues."""
    settings = config.model_dump(exclude={"output_dir", "merge"})
    settings["trainer"] = {k: v for k, v in settings.get("trainer", {}).items() if k not in RESUMABLE_TRAINER_KEYS}
    return settings


@contextlib.contextmanager
def training_run(config: Any, resume: bool, command: str) -> Iterator[None]:
    """Lock `config.output_dir` and check (on resume) or record its settings; a run that fails
    before writing anything leaves no trace."""
    from selfimprove.run_dir import exclusive, read_run, refuse_if_different, tidy_failed_start, write_run

    if not is_main_process():
        yield
        return
    settings, created = resume_settings(config), not Path(config.output_dir).exists()
    try:
        with exclusive(config.output_dir) as out:
            previous = read_run(out)
            if resume and previous is not None:
                refuse_if_different(out, previous, command, settings, fresh="run without --resume to start afresh")
            else:
                write_run(out, command, settings)
            yield
    except BaseException:
        tidy_failed_start(config.output_dir, created)
        raise


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


def merge_adapter(base_spec: str, adapter_dir: str | Path, output_dir: str | Path,
                  chat_template_path: str | None = None) -> Path:
    """Write base + adapter merged into `output_dir/merged` (float32 on CPU, bf16 on GPU), with the chat
    template the run trained with (`trainer.chat_template_path`) when the base has none."""
    from selfimprove.models.adapters import merge_into_base
    from selfimprove.train.config import ModelSettings
    from selfimprove.train.model_loading import load_base_for_training

    base, tokenizer = load_base_for_training(ModelSettings(spec=base_spec), quantize=False,
                                             chat_template_path=chat_template_path)
    merged = merge_into_base(base, adapter_dir)
    target = Path(output_dir) / "merged"
    merged.save_pretrained(str(target))
    tokenizer.save_pretrained(str(target))
    return target


def tensorboard_dir(args: Any, output_dir: str | Path) -> str | None:
    """Where TensorBoard events went (`output_dir/runs/` by default), or None when it was not a tracker."""
    if "tensorboard" not in (getattr(args, "report_to", None) or []):
        return None
    return str(os.environ.get("TENSORBOARD_LOGGING_DIR") or Path(output_dir) / "runs")


def write_run_record(trainer: Any, output_dir: str | Path, extra: dict[str, Any]) -> dict[str, Any]:
    """Write log_history.json, curves.png (see `selfimprove.train.curves`) and train_summary.json."""
    output_dir = Path(output_dir)
    history = list(trainer.state.log_history)
    (output_dir / "log_history.json").write_text(json.dumps(history, indent=1), encoding="utf-8")
    losses = [row["loss"] for row in history if "loss" in row]
    runtime = next((row["train_runtime"] for row in reversed(history) if "train_runtime" in row), None)
    curves = write_learning_curves(history, output_dir) if is_main_process() else []
    summary = {"global_step": trainer.state.global_step, "first_loss": losses[0] if losses else None,
               "last_loss": losses[-1] if losses else None, "logged_steps": len(losses),
               "train_runtime_s": runtime, "curves": str(curves[0]) if curves else None,
               "curve_metrics": plotted_metrics(history) if curves else [],
               "tensorboard_logs": tensorboard_dir(trainer.args, output_dir), **extra}
    (output_dir / "train_summary.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    return summary
