"""`selfimprove score hotpotqa PRED GOLD` and `selfimprove score countdown FILE`: score files offline."""

from __future__ import annotations

import json

import typer

score_app = typer.Typer(help="Score prediction files with a task's verifier.", no_args_is_help=True)


def _print_metrics(title: str, metrics: dict, keys: list[str]) -> None:
    typer.echo(f"{title}: " + "  ".join(f"{key}={metrics[key]:.4f}" for key in keys))


@score_app.command("hotpotqa")
def hotpotqa(prediction: str = typer.Argument(..., help='Official format {"answer": {id: text}, "sp": {...}}.'),
             gold: str = typer.Argument(..., help="Gold .json/.jsonl (original or Hugging Face layout)."),
             as_json: bool = typer.Option(False, "--json", help="Print the full result as JSON.")) -> None:
    """Official HotpotQA metrics (hotpot_evaluate_v1.py) plus per-level and per-type breakdowns."""
    from selfimprove.tasks.hotpotqa.metrics import METRIC_KEYS
    from selfimprove.tasks.hotpotqa.task import evaluate_files

    result = evaluate_files(prediction, gold)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    typer.echo(f"questions={result['count']}  missing_answer={result['missing_answer']}  missing_sp={result['missing_sp']}")
    _print_metrics("all", result, list(METRIC_KEYS))
    for group in ("by_level", "by_type"):
        for name, metrics in result[group].items():
            _print_metrics(f"{group[3:]}={name} (n={metrics['count']})", metrics, ["em", "f1", "sp_f1", "joint_f1"])


@score_app.command("countdown")
def countdown(path: str = typer.Argument(..., help="JSONL of {nums, target, completion}."),
              format_score: float = typer.Option(0.1, help="Score of a well-formed wrong equation."),
              at_most_once: bool = typer.Option(False, help="Allow leaving numbers unused."),
              as_json: bool = typer.Option(False, "--json", help="Print the result as JSON.")) -> None:
    """Accuracy and failure breakdown of Countdown completions (the last <answer> is checked)."""
    from selfimprove.tasks.countdown.task import CountdownTask, score_file

    result = score_file(path, CountdownTask(format_score=format_score, use_all_numbers=not at_most_once))
    if not result["count"]:
        from selfimprove.errors import DataError

        raise DataError(path, "no completions to score (the file is empty)")
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    typer.echo(f"count={result['count']}  accuracy={result['accuracy']:.4f}  mean_score={result['mean_score']:.4f}")
    typer.echo("  ".join(f"{key}={int(value)}" for key, value in result["breakdown"].items()))


def register(app: typer.Typer) -> None:
    app.add_typer(score_app, name="score")
