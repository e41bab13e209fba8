"""`selfimprove train grpo CONFIG.yaml`: GRPO (single-turn or multi-turn agent) from a YAML config.

The command is attached to the `train` sub-app of `selfimprove.commands.train` (importing it
here is enough: typer builds the command tree when the CLI runs, so the order of `cli.COMMAND_MODULES` does not
matter). Config as `CONFIG.yaml` or `--config`, `--set` overrides and TRL-style `--key value`
flags for `GRPOConfig` fields, as every train command (see `commands/train.py`).
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from selfimprove.commands.train import (
    CONFIG_ARG,
    CONFIG_OPT,
    MERGE,
    PROCESSES,
    RESUME,
    SET,
    TRAINER_FLAGS,
    config_and_overrides,
    train_app,
)


def train_group(app: typer.Typer) -> typer.Typer:
    """The shared `train` sub-app (defined in commands/train.py)."""
    return train_app


def grpo(ctx: typer.Context, config: Path | None = CONFIG_ARG, config_option: Path | None = CONFIG_OPT,
         overrides: list[str] = SET, resume: bool = RESUME, merge: bool | None = MERGE,
         num_processes: int = PROCESSES) -> None:
    """GRPO with TRL on a task and the rewards library (multi-turn with `agent:`); `--key value` sets GRPOConfig."""
    from selfimprove.config import load_config
    from selfimprove.launch import maybe_relaunch

    path, overrides = config_and_overrides(ctx, config, config_option, overrides, "GRPOConfig")
    maybe_relaunch(num_processes)
    from selfimprove.train.grpo import GRPORunConfig, train_grpo

    run_config = load_config(path, GRPORunConfig, overrides)
    typer.echo(json.dumps(train_grpo(run_config, resume=resume, merge=merge), indent=2))


def register(app: typer.Typer) -> None:
    train_group(app).command("grpo", context_settings=TRAINER_FLAGS)(grpo)
