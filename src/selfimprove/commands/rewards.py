"""`selfimprove rewards list|check|rescore`: see and check rewards before training with them."""

from __future__ import annotations

import json
from pathlib import Path

import typer

rewards_app = typer.Typer(help="Reward functions: list them, check them on labelled data, re-score trajectories.",
                          no_args_is_help=True)

REWARDS_OPT = typer.Option(None, "--rewards", "-r", help="Comma-separated reward names (default params).")
CONFIG_OPT = typer.Option(None, "--config", "-c", help="YAML file with a `rewards:` list of {name, weight, params}.")
TIMEOUT_OPT = typer.Option(None, "--timeout", min=0.001, help="Judges: seconds per call (overrides `timeout_s` of the config).")
RETRIES_OPT = typer.Option(None, "--retries", min=0, help="Judges: further rounds for failed calls (overrides `retries`).")
BUDGET_OPT = typer.Option(None, "--budget", min=0.001, help="Judges: seconds in all for each judge; then the rest scores None.")


def _load(rewards: str | None, config: str | None, timeout: float | None, retries: int | None,
          budget: float | None) -> tuple[list, list[float]]:
    """The reward set, its judges (if any) held to the time limits given on the command line."""
    from selfimprove.rewards.config import load_reward_set
    from selfimprove.rewards.judge_client import limit_judges

    funcs, weights = load_reward_set(rewards, config)
    limit_judges(funcs, timeout_s=timeout, retries=retries, budget_s=budget)
    return funcs, weights


@rewards_app.command("list")
def list_rewards() -> None:
    """List the registered rewards (factories take params in configs)."""
    from selfimprove.rewards.config import describe_rewards

    for name, kind, doc in describe_rewards():
        typer.echo(f"{name:24s} {kind:8s} {doc}")


@rewards_app.command("check")
def check(data: Path = typer.Option(..., "--data", "-d", help="JSONL: completion, label (bool), prompt?, group?, columns."),
          rewards: str | None = REWARDS_OPT, config: str | None = CONFIG_OPT,
          min_auc: float = typer.Option(0.6, help="Flag rewards whose separation AUC is below this."),
          max_punished: float = typer.Option(0.1, help="Flag rewards punishing more than this share of right answers."),
          as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
          timeout: float | None = TIMEOUT_OPT, retries: int | None = RETRIES_OPT,
          budget: float | None = BUDGET_OPT) -> None:
    """Does each reward separate correct from incorrect completions? Exit 1 if any reward is flagged."""
    from selfimprove.rewards.check import check_rewards, jsonable, load_labelled
    from selfimprove.rewards.report import print_check_report

    funcs, weights = _load(rewards, config, timeout, retries, budget)
    report = check_rewards(load_labelled(data), funcs, weights, min_auc, max_punished)
    if as_json:
        typer.echo(json.dumps(jsonable(report), indent=2))
    else:
        print_check_report(report)
    if any(r["verdict"] == "FLAG" for r in report.values()):
        raise typer.Exit(1)


@rewards_app.command("rescore")
def rescore(trajectories: Path = typer.Argument(..., help="Trajectories (or completion rows) JSONL."),
            rewards: str | None = REWARDS_OPT, config: str | None = CONFIG_OPT,
            out: Path | None = typer.Option(None, "--out", "-o", help="Output file (default: <input>.rescored.jsonl)."),
            timeout: float | None = TIMEOUT_OPT, retries: int | None = RETRIES_OPT,
            budget: float | None = BUDGET_OPT) -> None:
    """Re-score saved trajectories with another reward set into a new file (the input is never touched)."""
    from selfimprove.rewards.check import rescore_file

    funcs, weights = _load(rewards, config, timeout, retries, budget)
    target = out or trajectories.with_name(trajectories.stem + ".rescored.jsonl")
    count = rescore_file(trajectories, target, funcs, weights)
    typer.echo(f"wrote {count} records to {target}")


def register(app: typer.Typer) -> None:
    app.add_typer(rewards_app, name="rewards")
