"""`selfimprove train grpo CONFIG.yaml`: GRPO (single-turn or multi-turn agent) from a YAML config.

The command is attached to the `train` sub-app of `selfimprove.commands.train` (importing it
here is enough: typer builds the command tree when the CLI runs, so discovery order does not
matter).
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from selfimprove.commands.train import MERGE, PROCESSES, RESUME, SET, train_app

CONFIG_ARG = typer.Argument(None, help="YAML config (configs/grpo/*.yaml).", show_default=False)
CONFIG_OPT = typer.Option(None, "--config", "-c", help="The same config, as an option (like train sft/dpo).")


def train_group(app: typer.Typer) -> typer.Typer:
    """The shared `train` sub-app (defined in commands/train.py)."""
    return train_app


def config_path(argument: Path | None, option: Path | None) -> Path:
    from selfimprove.errors import UserError

    if (argument is None) == (option is None):
        raise UserError("give the config file once: `CONFIG.yaml` or `--config CONFIG.yaml`")
    return argument or option


def grpo(config: Path | None = CONFIG_ARG, config_option: Path | None = CONFIG_OPT, overrides: list[str] = SET,
         resume: bool = RESUME, merge: bool | None = MERGE, num_processes: int = PROCESSES) -> None:
    """GRPO with TRL on a task and the rewards library; multi-turn agent episodes with an `agent:` block."""
    from selfimprove.config import load_config
    from selfimprove.launch import maybe_relaunch
    from selfimprove.train.grpo import GRPORunConfig, train_grpo

    maybe_relaunch(num_processes)
    run_config = load_config(config_path(config, config_option), GRPORunConfig, overrides)
    typer.echo(json.dumps(train_grpo(run_config, resume=resume, merge=merge), indent=2))


def register(app: typer.Typer) -> None:
    train_group(app).command("grpo")(grpo)
