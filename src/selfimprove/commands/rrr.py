"""`selfimprove rrr failures|eval|experiment` and `selfimprove train rrr` (Reflect-Retry-Reward)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from selfimprove.commands.grpo import train_group
from selfimprove.commands.train import (
    CONFIG_ARG,
    CONFIG_OPT,
    MERGE,
    RESUME,
    SET,
    TRAINER_FLAGS,
    config_and_overrides,
)

rrr_app = typer.Typer(help="Reflect-Retry-Reward: failure sets, four-number evaluation, experiments.",
                      no_args_is_help=True)
TASK = typer.Option("countdown", "--task", help="Task name.")
DATA = typer.Option(None, "--data", help="Task source (file, or generate:... for countdown); default: the task's.")
MODEL = typer.Option("smollm2-135m", "--model", "-m", help="Model spec.")
N = typer.Option(None, "--limit", "-n", min=1, help="Use the first N examples.")
OVERWRITE = typer.Option(False, "--overwrite", help="Start afresh: delete this command's outputs first "
                         "(needed to re-run an existing output dir with other settings).")


def _examples(task_name: str, data: str | None, n: int | None):
    from selfimprove.tasks import get_task

    task = get_task(task_name)
    return task, task.load(data)[:n]


@rrr_app.command("failures")
def failures(out: Path = typer.Option(..., "--output-dir", "--out", help="Output dir (resumable); --out for short."),
             task: str = TASK,
             data: str | None = DATA, model: str = MODEL, n: int | None = N, k: int = typer.Option(4, "-k", min=1),
             temperature: float = typer.Option(0.9, min=0.01), max_tokens: int = typer.Option(256),
             per_example: int = typer.Option(1, min=1, help="Distinct failed attempts kept per example."),
             seed: int = typer.Option(0), overwrite: bool = OVERWRITE) -> None:
    """Sample k attempts per example and keep the failed ones (the offline failure dataset)."""
    from selfimprove.models.adapters import LazyGenerator
    from selfimprove.workflows.rrr.failures import FailureSettings, collect_failures

    settings = FailureSettings(k=k, temperature=temperature, max_tokens=max_tokens, per_example=per_example, seed=seed,
                               overwrite=overwrite)
    the_task, examples = _examples(task, data, n)
    source = {"data": data}
    typer.echo(json.dumps(collect_failures(the_task, examples, LazyGenerator(model), settings, out, source=source),
                          indent=2))


@rrr_app.command("eval")
def evaluate(task: str = TASK, data: str | None = DATA, model: str = MODEL, n: int | None = N,
             adapter: Path | None = typer.Option(None, "--adapter", help="PEFT adapter dir to evaluate."),
             temperature: float = typer.Option(0.9, min=0.0),
             max_tokens: int = typer.Option(256, help="First try and retry (train rrr's retry_max_tokens)."),
             reflection_max_tokens: int = typer.Option(128, help="Reflection (train rrr's max_completion_length)."),
             seed: int = typer.Option(0), out: Path | None = typer.Option(None, "--out", help="Write JSON here.")) -> None:
    """First-try and second-try (after reflection) accuracy."""
    from selfimprove.eval.reflection import ReflectionSettings, evaluate_reflection
    from selfimprove.models.adapters import load_generator_with_adapter

    the_task, examples = _examples(task, data, n)
    settings = ReflectionSettings(temperature=temperature, max_tokens=max_tokens,
                                  reflection_max_tokens=reflection_max_tokens, seed=seed)
    result = evaluate_reflection(the_task, examples, load_generator_with_adapter(model, adapter), settings)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1), encoding="utf-8")
    typer.echo(json.dumps({k: v for k, v in result.items() if k != "records"}, indent=2))


@rrr_app.command("experiment", context_settings=TRAINER_FLAGS)
def experiment(ctx: typer.Context, config: Path | None = CONFIG_ARG, config_option: Path | None = CONFIG_OPT,
               overrides: list[str] = SET, overwrite: bool = OVERWRITE) -> None:
    """Failures -> eval before -> RRR training -> eval after -> results table (resumable); flags set GRPOConfig."""
    from selfimprove.config import load_config
    from selfimprove.workflows.rrr.experiment import ExperimentConfig, run_experiment

    path, overrides = config_and_overrides(ctx, config, config_option, overrides, "GRPOConfig")
    loaded = load_config(path, ExperimentConfig, overrides)
    result = run_experiment(loaded.model_copy(update={"overwrite": overwrite or loaded.overwrite}))
    typer.echo(json.dumps({k: result[k] for k in ("vanilla", "rrr_trained", "stage_seconds")}, indent=2))


def train_rrr(ctx: typer.Context, config: Path | None = CONFIG_ARG, config_option: Path | None = CONFIG_OPT,
              overrides: list[str] = SET, resume: bool = RESUME, merge: bool | None = MERGE) -> None:
    """Reflect-Retry-Reward: GRPO from failures (reflection tokens trained); `--key value` sets GRPOConfig."""
    from selfimprove.config import load_config
    from selfimprove.workflows.rrr.train import RRRConfig
    from selfimprove.workflows.rrr.train import train_rrr as run

    path, overrides = config_and_overrides(ctx, config, config_option, overrides, "GRPOConfig")
    run_config = load_config(path, RRRConfig, overrides)
    typer.echo(json.dumps(run(run_config, resume=resume, merge=merge), indent=2))


def register(app: typer.Typer) -> None:
    app.add_typer(rrr_app, name="rrr")
    train_group(app).command("rrr", context_settings=TRAINER_FLAGS)(train_rrr)
