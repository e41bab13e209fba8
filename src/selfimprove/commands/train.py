"""`selfimprove train sft|dpo`: LoRA training from a YAML config (see configs/train/*.yaml).

Every train command (and `rrr experiment`) takes its config as `CONFIG.yaml` or `--config
CONFIG.yaml`, `--set a.b=c` overrides, and TRL-style trainer flags: an option the command does
not know, `--learning_rate 1e-5` or `--max_steps=10`, sets `trainer.<name>` after the `--set`
overrides, checked against the TRL config class (a did-you-mean error otherwise).
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

train_app = typer.Typer(help="Train LoRA adapters with TRL: sft, dpo, grpo, rrr.", no_args_is_help=True)

TRAINER_FLAGS = {"allow_extra_args": True, "ignore_unknown_options": True}
CONFIG_ARG = typer.Argument(None, help="Training YAML (configs/train/*.yaml, configs/grpo/*.yaml, ...).",
                            show_default=False)
CONFIG_OPT = typer.Option(None, "--config", "-c", help="The same config, as an option.")
SET = typer.Option([], "--set", help="Override a config value: a.b=c (repeatable).")
RESUME = typer.Option(False, "--resume", help="Continue from the last checkpoint-N in output_dir.")
MERGE = typer.Option(None, "--merge/--no-merge", help="Also write output_dir/merged (base + adapter).")
PROCESSES = typer.Option(1, "--num-processes", min=1,
                         help="Re-run this command under `accelerate launch` with N processes (DDP; gloo on CPU).")


def own_options(ctx: typer.Context) -> tuple[str, ...]:
    """The command's own long option names (for the did-you-mean of a mistyped flag)."""
    return tuple(opt[2:] for param in ctx.command.params for opt in param.opts if opt.startswith("--"))


def config_and_overrides(ctx: typer.Context, argument: Path | None, option: Path | None, overrides: list[str],
                         trl_class: str) -> tuple[Path, list[str]]:
    """The config path (positional or --config, once) and `--set` overrides + TRL-style trainer flags.

    An unknown option may have taken the positional slot (`--config X --max_steps 10`): every
    word typer left over is parsed again, so flags and the positional config can come in any order.
    """
    import importlib

    from selfimprove.errors import UserError
    from selfimprove.train.config import trainer_flags

    tokens = ([str(argument)] if argument is not None else []) + list(ctx.args)
    config_class = getattr(importlib.import_module("trl"), trl_class) if ctx.args else None
    flags, positionals = trainer_flags(tokens, config_class, own_options(ctx))
    given = positionals + ([str(option)] if option is not None else [])
    if len(given) != 1:
        raise UserError("give the config file once: `CONFIG.yaml` or `--config CONFIG.yaml`"
                        + (f" (got {', '.join(given)})" if given else ""))
    return Path(given[0]), [*overrides, *flags]


def _run(kind: str, ctx: typer.Context, config: Path | None, config_option: Path | None, overrides: list[str],
         resume: bool, merge: bool | None, num_processes: int) -> None:
    from rich.console import Console

    from selfimprove.config import load_config
    from selfimprove.launch import maybe_relaunch

    path, overrides = config_and_overrides(ctx, config, config_option, overrides, kind.upper() + "Config")
    maybe_relaunch(num_processes)
    from selfimprove.train.config import TrainConfig

    run_config = load_config(path, TrainConfig, overrides)
    if kind == "sft":
        from selfimprove.train.sft import train_sft as train
    else:
        from selfimprove.train.dpo import train_dpo as train
    summary = train(run_config, resume=resume, merge=merge, console=Console(stderr=True))
    typer.echo(json.dumps(summary, indent=2))


@train_app.command("sft", context_settings=TRAINER_FLAGS)
def sft(ctx: typer.Context, config: Path | None = CONFIG_ARG, config_option: Path | None = CONFIG_OPT,
        overrides: list[str] = SET, resume: bool = RESUME, merge: bool | None = MERGE,
        num_processes: int = PROCESSES) -> None:
    """Supervised fine-tuning on `convert sft` rows; `--key value` flags set SFTConfig fields."""
    _run("sft", ctx, config, config_option, overrides, resume, merge, num_processes)


@train_app.command("dpo", context_settings=TRAINER_FLAGS)
def dpo(ctx: typer.Context, config: Path | None = CONFIG_ARG, config_option: Path | None = CONFIG_OPT,
        overrides: list[str] = SET, resume: bool = RESUME, merge: bool | None = MERGE,
        num_processes: int = PROCESSES) -> None:
    """DPO on `convert dpo` pairs (model.adapter = the SFT adapter is the reference); flags set DPOConfig fields."""
    _run("dpo", ctx, config, config_option, overrides, resume, merge, num_processes)


def register(app: typer.Typer) -> None:
    app.add_typer(train_app, name="train")
