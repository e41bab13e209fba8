"""`selfimprove train grpo CONFIG.yaml`: GRPO (single-turn or multi-turn agent) from a YAML config.

The command is attached to the `train` sub-app of `selfimprove.commands.train` (importing it
here is enough: typer builds the command tree when the CLI runs, so discovery order does not
matter). If that module has no `train_app`, a `train` group is created here instead.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

CONFIG_ARG = typer.Argument(None, help="YAML config (configs/grpo/*.yaml).", show_default=False)
CONFIG_OPT = typer.Option(None, "--config", "-c", help="The same config, as an option (like train sft/dpo).")
SET = typer.Option([], "--set", help="Override a config value: a.b=c (repeatable).")
RESUME = typer.Option(False, "--resume", help="Continue from the last checkpoint-N in output_dir.")
MERGE = typer.Option(None, "--merge/--no-merge", help="Also write output_dir/merged (base + adapter).")
_FALLBACK: dict[str, typer.Typer] = {}


def train_group(app: typer.Typer) -> typer.Typer:
    """The shared `train` sub-app (or a fallback one registered on `app` once)."""
    try:
        from selfimprove.commands.train import train_app
        return train_app
    except ImportError:
        if "train" not in _FALLBACK:
            _FALLBACK["train"] = typer.Typer(help="Train LoRA adapters with TRL.", no_args_is_help=True)
            app.add_typer(_FALLBACK["train"], name="train")
        return _FALLBACK["train"]


def config_path(argument: Path | None, option: Path | None) -> Path:
    from selfimprove.errors import UserError

    if (argument is None) == (option is None):
        raise UserError("give the config file once: `CONFIG.yaml` or `--config CONFIG.yaml`")
    return argument or option


def grpo(config: Path | None = CONFIG_ARG, config_option: Path | None = CONFIG_OPT, overrides: list[str] = SET,
         resume: bool = RESUME, merge: bool | None = MERGE) -> None:
    """GRPO with TRL on a task and the rewards library; multi-turn agent episodes with an `agent:` block."""
    from selfimprove.config import load_config
    from selfimprove.train.grpo import GRPORunConfig, train_grpo

    run_config = load_config(config_path(config, config_option), GRPORunConfig, overrides)
    typer.echo(json.dumps(train_grpo(run_config, resume=resume, merge=merge), indent=2))


def register(app: typer.Typer) -> None:
    train_group(app).command("grpo")(grpo)
