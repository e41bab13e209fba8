"""`selfimprove train sft|dpo`: LoRA training from a YAML config (see configs/train/*.yaml)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

train_app = typer.Typer(help="Train LoRA adapters with TRL: sft, dpo, grpo, rrr.", no_args_is_help=True)

CONFIG = typer.Option(..., "--config", "-c", help="Training YAML (configs/train/*.yaml).")
SET = typer.Option([], "--set", help="Override a config value: a.b=c (repeatable).")
RESUME = typer.Option(False, "--resume", help="Continue from the last checkpoint-N in output_dir.")
MERGE = typer.Option(None, "--merge/--no-merge", help="Also write output_dir/merged (base + adapter).")
PROCESSES = typer.Option(1, "--num-processes", min=1,
                         help="Re-run this command under `accelerate launch` with N processes (DDP; gloo on CPU).")


def _run(kind: str, config_path: Path, overrides: list[str], resume: bool, merge: bool | None,
         num_processes: int) -> None:
    from rich.console import Console

    from selfimprove.config import load_config
    from selfimprove.launch import maybe_relaunch

    maybe_relaunch(num_processes)
    from selfimprove.train.config import TrainConfig

    config = load_config(config_path, TrainConfig, overrides)
    if kind == "sft":
        from selfimprove.train.sft import train_sft as train
    else:
        from selfimprove.train.dpo import train_dpo as train
    summary = train(config, resume=resume, merge=merge, console=Console(stderr=True))
    typer.echo(json.dumps(summary, indent=2))


@train_app.command("sft")
def sft(config: Path = CONFIG, overrides: list[str] = SET, resume: bool = RESUME, merge: bool | None = MERGE,
        num_processes: int = PROCESSES) -> None:
    """Supervised fine-tuning on `convert sft` rows (one row per agent step)."""
    _run("sft", config, overrides, resume, merge, num_processes)


@train_app.command("dpo")
def dpo(config: Path = CONFIG, overrides: list[str] = SET, resume: bool = RESUME, merge: bool | None = MERGE,
        num_processes: int = PROCESSES) -> None:
    """DPO on `convert dpo` pairs; with model.adapter = the SFT adapter, the reference is the SFT model."""
    _run("dpo", config, overrides, resume, merge, num_processes)


def register(app: typer.Typer) -> None:
    app.add_typer(train_app, name="train")
